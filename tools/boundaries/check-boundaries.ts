import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * The import rules of STYLE.md, checked on the sources (Nx's module-boundary lint needs
 * typescript-eslint, which TypeScript 7 cannot run):
 * - apps never import apps, and nothing imports an app;
 * - each tag may import only the tags listed in ALLOWED; test files may add `type:testing`;
 * - contracts and the model import no I/O library (node builtins, NATS, pino, ...);
 * - the command-line tools never touch qubes.xml code (`type:model`);
 * - a project imports another one only by its package name, declared in its package.json;
 * - relative imports stay inside their project.
 * And one rule on size (checkFileSizes): no source file is over MAX_FILE_LINES lines.
 */
export type Tag = 'type:service' | 'type:cli' | 'type:contract' | 'type:model' | 'type:infra' | 'type:testing';

const ALLOWED: Readonly<Record<Tag, readonly Tag[]>> = {
  'type:contract': ['type:contract'],
  'type:model': ['type:contract', 'type:model'],
  'type:infra': ['type:contract', 'type:infra'],
  'type:testing': ['type:contract', 'type:infra', 'type:testing'],
  'type:service': ['type:contract', 'type:model', 'type:infra'],
  'type:cli': ['type:contract', 'type:infra'],
};

/** Third-party packages that pure projects may use: no I/O among them. */
const PURE_PACKAGES: Readonly<Partial<Record<Tag, readonly string[]>>> = {
  'type:contract': ['zod'],
  'type:model': ['zod', 'fast-xml-parser'],
};

export interface Project {
  name: string;
  root: string;
  tags: Tag[];
  dependencies: Set<string>;
}

export interface Violation {
  file: string;
  line: number;
  message: string;
}

const IMPORT = /(?:^|[^\w$.])(?:import|export)\s+(?:type\s+)?(?:[^'"`;]*?\s+from\s+)?['"]([^'"]+)['"]|(?:^|[^\w$.])(?:require|import)\s*\(\s*['"]([^'"]+)['"]\s*\)/g;

export function findProjects(workspace: string): Project[] {
  const projects: Project[] = [];
  for (const group of ['apps', 'libs']) {
    const dir = path.join(workspace, group);
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      const root = path.join(dir, name);
      try {
        const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
          name: string;
          nx?: { tags?: string[] };
          dependencies?: Record<string, string>;
          devDependencies?: Record<string, string>;
        };
        projects.push({
          name: pkg.name,
          root,
          tags: (pkg.nx?.tags ?? []) as Tag[],
          dependencies: new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.devDependencies ?? {})]),
        });
      } catch {
        // not a project
      }
    }
  }
  return projects;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    if (entry === 'node_modules' || entry === 'dist') continue;
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) out.push(...sourceFiles(full));
    else if (/\.(ts|mts|cts)$/.test(entry) && !entry.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

function isTestFile(project: Project, file: string): boolean {
  const rel = path.relative(project.root, file);
  return rel.startsWith(`test${path.sep}`) || /\.spec\.ts$/.test(file);
}

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

export function checkBoundaries(workspace: string): Violation[] {
  const projects = findProjects(workspace);
  const byName = new Map(projects.map((p) => [p.name, p]));
  const violations: Violation[] = [];

  for (const project of projects) {
    if (project.tags.length !== 1 || !(project.tags[0]! in ALLOWED)) {
      violations.push({ file: path.join(project.root, 'package.json'), line: 1, message: `${project.name} needs exactly one type:* tag (nx.tags)` });
      continue;
    }
    const tag = project.tags[0]!;
    const isApp = path.basename(path.dirname(project.root)) === 'apps';
    for (const file of sourceFiles(project.root)) {
      const test = isTestFile(project, file);
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(IMPORT)) {
        const specifier = match[1] ?? match[2] ?? '';
        const line = text.slice(0, match.index + match[0].length).split('\n').length;
        const report = (message: string): void => {
          violations.push({ file, line, message: `${project.name}: ${message}` });
        };

        if (specifier.startsWith('.')) {
          const target = path.resolve(path.dirname(file), specifier);
          if (!target.startsWith(project.root + path.sep) && target !== project.root) {
            report(`'${specifier}' reaches outside the project; import another project by its package name`);
          }
          continue;
        }
        const pkg = packageName(specifier);
        const other = byName.get(pkg);
        if (other !== undefined) {
          if (other === project) continue;
          const otherIsApp = path.basename(path.dirname(other.root)) === 'apps';
          const otherTag = other.tags[0];
          if (otherIsApp) {
            report(`imports the app ${pkg}; ${isApp ? 'apps never import apps' : 'nothing imports an app'}: meet on the bus through libs/contracts`);
          } else if (otherTag === 'type:testing' && !test) {
            report(`imports ${pkg} (type:testing) outside a test file`);
          } else if (otherTag !== 'type:testing' && (otherTag === undefined || !ALLOWED[tag].includes(otherTag))) {
            const why = tag === 'type:cli' && otherTag === 'type:model' ? ': the command-line tools never touch qubes.xml code' : '';
            report(`${tag} may not import ${pkg} (${otherTag ?? 'untagged'})${why}`);
          }
          if (!project.dependencies.has(pkg)) report(`imports ${pkg} without declaring it in package.json`);
          continue;
        }
        const pure = PURE_PACKAGES[tag];
        if (pure !== undefined && !test && !pure.includes(pkg)) {
          report(`${tag} imports no I/O library, but imports '${specifier}'`);
        }
      }
    }
  }
  return violations;
}

/** The most lines a source file may have: a longer one is split along its seams (issue 16). */
export const MAX_FILE_LINES = 400;

/**
 * Files allowed over MAX_FILE_LINES for a while (none since issue 16's splits), relative to the
 * workspace. Each must still be over the limit: once it is split (or gone) the check names it,
 * so that it is taken off this list and the list cannot go stale.
 */
export const OVERSIZED_FILES: readonly string[] = [];

/** Where the size rule looks, and the endings of the files it counts there. */
const SIZED_SOURCES: ReadonlyArray<{ dir: string; perProject: boolean; endings: readonly string[] }> = [
  { dir: 'apps', perProject: true, endings: ['.ts'] },
  { dir: 'libs', perProject: true, endings: ['.ts'] },
  { dir: 'tools', perProject: false, endings: ['.ts', '.mjs'] },
  { dir: 'bench', perProject: false, endings: ['.ts'] },
];

/** Lines as an editor numbers them: a last line without its newline counts too. */
function lineCount(text: string): number {
  if (text === '') return 0;
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

/** The non-test sources under `dir` (tests: `*.spec.ts`, and anything in a `test/` directory). */
function sizedFiles(dir: string, endings: readonly string[]): string[] {
  const out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (entry === 'node_modules' || entry === 'dist' || entry === 'test') continue;
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) out.push(...sizedFiles(full, endings));
    else if (endings.some((ending) => entry.endsWith(ending)) && !entry.endsWith('.spec.ts')) out.push(full);
  }
  return out;
}

/**
 * Every non-test source file (under `apps/<project>/src`, `libs/<project>/src`, `tools`, `bench`)
 * over `limit` lines, with its count, and every listed exception that is no longer over it.
 */
export function checkFileSizes(workspace: string, exceptions: readonly string[] = OVERSIZED_FILES, limit = MAX_FILE_LINES): Violation[] {
  const violations: Violation[] = [];
  const excused = new Set(exceptions);
  for (const { dir, perProject, endings } of SIZED_SOURCES) {
    const root = path.join(workspace, dir);
    let roots = [root];
    if (perProject) {
      try {
        roots = readdirSync(root).map((name) => path.join(root, name, 'src'));
      } catch {
        roots = [];
      }
    }
    for (const file of roots.flatMap((r) => sizedFiles(r, endings))) {
      const rel = path.relative(workspace, file).split(path.sep).join('/');
      const lines = lineCount(readFileSync(file, 'utf8'));
      if (lines > limit && !excused.has(rel)) {
        violations.push({ file, line: limit + 1, message: `${lines} lines, more than ${limit}: split it along its seams` });
      }
    }
  }
  const listed = 'listed in OVERSIZED_FILES (tools/boundaries/check-boundaries.ts)';
  for (const rel of exceptions) {
    const file = path.join(workspace, ...rel.split('/'));
    let lines: number;
    try {
      lines = lineCount(readFileSync(file, 'utf8'));
    } catch {
      violations.push({ file, line: 1, message: `${listed} but not there: take it off the list` });
      continue;
    }
    if (lines <= limit) violations.push({ file, line: 1, message: `${listed} but has ${lines} lines, at most ${limit}: take it off the list` });
  }
  return violations;
}

if (require.main === module) {
  const workspace = path.resolve(__dirname, '../..');
  const imports = checkBoundaries(workspace);
  const sizes = checkFileSizes(workspace);
  for (const v of [...imports, ...sizes]) process.stderr.write(`${path.relative(workspace, v.file)}:${v.line}: ${v.message}\n`);
  if (imports.length > 0) process.stderr.write(`${imports.length} import rule violation(s)\n`);
  if (sizes.length > 0) process.stderr.write(`${sizes.length} file size violation(s)\n`);
  if (imports.length > 0 || sizes.length > 0) process.exit(1);
  process.stdout.write(`import rules hold in ${findProjects(workspace).length} projects; no source file is over ${MAX_FILE_LINES} lines${OVERSIZED_FILES.length === 0 ? '' : ` but the ${OVERSIZED_FILES.length} in OVERSIZED_FILES`}\n`);
}
