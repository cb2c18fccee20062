import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tmpDataDir, type TmpDir } from '@qubes-bus/testing';
import { checkBoundaries, checkFileSizes, MAX_FILE_LINES } from './check-boundaries';

let dir: TmpDir | undefined;
afterEach(() => dir?.remove());

function project(group: 'apps' | 'libs', name: string, tag: string, deps: string[], files: Record<string, string>): void {
  const root = path.join(dir!.path, group, name);
  mkdirSync(path.join(root, 'src'), { recursive: true });
  writeFileSync(
    path.join(root, 'package.json'),
    JSON.stringify({ name: `@x/${name}`, nx: { tags: [tag] }, dependencies: Object.fromEntries(deps.map((d) => [d, '0'])) }),
  );
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text);
  }
}

describe('the import-rule checker', () => {
  it('finds every kind of violation and names file and line', () => {
    dir = tmpDataDir();
    project('libs', 'contracts', 'type:contract', [], {
      'src/index.ts': "import * as z from 'zod/mini';\nimport { readFileSync } from 'node:fs';\n",
      'src/x.spec.ts': "import { readFileSync } from 'node:fs';\n", // tests may read files
    });
    project('libs', 'model', 'type:model', ['@x/contracts'], { 'src/index.ts': "import { a } from '@x/contracts';\n" });
    project('libs', 'testing', 'type:testing', [], { 'src/index.ts': '' });
    project('apps', 'registry', 'type:service', ['@x/model', '@x/testing'], {
      'src/main.ts': "import { m } from '@x/model';\nimport { t } from '@x/testing';\nimport { q } from '@x/qvm';\n",
      'test/a.int.spec.ts': "import { t } from '@x/testing';\n",
    });
    project('apps', 'qvm', 'type:cli', ['@x/model'], {
      'src/main.ts': "import type { M } from '@x/model';\nconst c = require('../../registry/src/main');\nimport('@x/contracts');\n",
    });

    const found = checkBoundaries(dir.path).map((v) => `${path.relative(dir!.path, v.file)}:${v.line} ${v.message}`);
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^libs\/contracts\/src\/index.ts:2 .*type:contract imports no I\/O library, but imports 'node:fs'/),
        expect.stringMatching(/^apps\/registry\/src\/main.ts:2 .*imports @x\/testing \(type:testing\) outside a test file/),
        expect.stringMatching(/^apps\/registry\/src\/main.ts:3 .*imports the app @x\/qvm; apps never import apps/),
        expect.stringMatching(/^apps\/qvm\/src\/main.ts:1 .*type:cli may not import @x\/model \(type:model\): the command-line tools never touch qubes.xml code/),
        expect.stringMatching(/^apps\/qvm\/src\/main.ts:2 .*reaches outside the project/),
        expect.stringMatching(/^apps\/registry\/src\/main.ts:3 .*imports @x\/qvm without declaring it/),
        expect.stringMatching(/^apps\/qvm\/src\/main.ts:3 .*imports @x\/contracts without declaring it/),
      ]),
    );
    expect(found).toHaveLength(7);
  });

  it('passes on this repository', () => {
    expect(checkBoundaries(path.resolve(__dirname, '../..'))).toEqual([]);
  });
});

/** A file of `lines` lines at `rel` in the workspace, ending in a newline unless told not to. */
function sourceOf(rel: string, lines: number, { newlineAtEnd = true } = {}): void {
  const full = path.join(dir!.path, rel);
  mkdirSync(path.dirname(full), { recursive: true });
  const text = Array.from({ length: lines }, (_, i) => `export const l${i} = ${i};`).join('\n');
  writeFileSync(full, newlineAtEnd ? `${text}\n` : text);
}

describe('the file-size checker', () => {
  it('names every non-test source over 400 lines with its count, and every listed exception no longer over it', () => {
    dir = tmpDataDir();
    expect(MAX_FILE_LINES).toBe(400);
    sourceOf('apps/registry/src/big.ts', 401);
    sourceOf('apps/registry/src/exactly-the-limit.ts', 400);
    sourceOf('apps/registry/src/no-newline-at-end.ts', 401, { newlineAtEnd: false });
    sourceOf('libs/model/src/deep/in/it.ts', 450);
    sourceOf('tools/stack/launch.mjs', 401);
    sourceOf('bench/big.bench.ts', 402);
    // tests, and files outside the sources, are not held to it
    sourceOf('apps/registry/src/big.spec.ts', 900);
    sourceOf('apps/registry/src/test/helper.ts', 900);
    sourceOf('apps/registry/test/a.int.spec.ts', 900);
    sourceOf('apps/registry/test/helpers.ts', 900);
    sourceOf('apps/registry/scripts/generate.ts', 900);
    sourceOf('tools/test/e2e-helpers.ts', 900);
    sourceOf('tools/stack/notes.js', 900);
    // the exceptions: one still over the limit, one split since, one gone
    sourceOf('apps/registry/src/being-split.ts', 700);
    sourceOf('apps/registry/src/split-since.ts', 120);
    const exceptions = ['apps/registry/src/being-split.ts', 'apps/registry/src/split-since.ts', 'apps/registry/src/gone.ts'];

    const found = checkFileSizes(dir.path, exceptions).map((v) => `${path.relative(dir!.path, v.file)}:${v.line} ${v.message}`);
    expect(found.sort()).toEqual(
      [
        'apps/registry/src/big.ts:401 401 lines, more than 400: split it along its seams',
        'apps/registry/src/no-newline-at-end.ts:401 401 lines, more than 400: split it along its seams',
        'libs/model/src/deep/in/it.ts:401 450 lines, more than 400: split it along its seams',
        'tools/stack/launch.mjs:401 401 lines, more than 400: split it along its seams',
        'bench/big.bench.ts:401 402 lines, more than 400: split it along its seams',
        'apps/registry/src/split-since.ts:1 listed in OVERSIZED_FILES (tools/boundaries/check-boundaries.ts) but has 120 lines, at most 400: take it off the list',
        'apps/registry/src/gone.ts:1 listed in OVERSIZED_FILES (tools/boundaries/check-boundaries.ts) but not there: take it off the list',
      ].sort(),
    );
  });

  it('passes on this repository, each of its listed exceptions still over the limit', () => {
    expect(checkFileSizes(path.resolve(__dirname, '../..'))).toEqual([]);
  });
});
