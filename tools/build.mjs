#!/usr/bin/env node
// Bundles each app (apps/<name>/src/main.ts) and the embedded stack (tools/stack/stack.ts)
// into dist/ with esbuild: one file each, so that a tool starts without resolving hundreds of
// modules (qvm-ls must answer within 300 ms). Type checking is tsc's job (npm test).
import { build } from 'esbuild';
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// Each app's main.ts, and any worker-thread entries (src/*.worker.ts) beside it.
const entries = readdirSync(path.join(root, 'apps'))
  .filter((app) => existsSync(path.join(root, 'apps', app, 'src/main.ts')))
  .flatMap((app) => [
    { in: path.join(root, 'apps', app, 'src/main.ts'), out: `apps/${app}/main` },
    ...readdirSync(path.join(root, 'apps', app, 'src'))
      .filter((f) => f.endsWith('.worker.ts'))
      .map((f) => ({ in: path.join(root, 'apps', app, 'src', f), out: `apps/${app}/${f.slice(0, -'.ts'.length)}` })),
  ]);
entries.push({ in: path.join(root, 'tools/stack/stack.ts'), out: 'tools/stack' });

const started = Date.now();
const result = await build({
  entryPoints: entries,
  outdir: path.join(root, 'dist'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  tsconfig: path.join(root, 'tsconfig.base.json'),
  // Native addons and the Docker client stay outside the bundle.
  external: ['@unraid/libvirt', 'fs-ext', 'testcontainers', '@testcontainers/*'],
  logLevel: 'warning',
  write: false,
});
// Each file is renamed into place whole: a service or tool starting while another build runs
// (the tests build too) never loads half a bundle.
for (const file of result.outputFiles) {
  mkdirSync(path.dirname(file.path), { recursive: true });
  const temp = `${file.path}.${process.pid}.tmp`;
  writeFileSync(temp, file.contents);
  renameSync(temp, file.path);
}
if (!process.argv.includes('--quiet')) {
  console.log(`built ${entries.map((e) => e.out).join(', ')} into dist/ in ${Date.now() - started} ms`);
}
