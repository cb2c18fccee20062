import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tmpDataDir, type TmpDir } from '@qubes-bus/testing';
import { checkBoundaries } from './check-boundaries';

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
