import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startNats, tmpDataDir, type TestNats, type TmpDir } from '@qubes-bus/testing';
import { buildBundles, errorLine, startRegistry, tool, toolEnv, type Result } from './harness';

/**
 * --offline: qvm-ls, qvm-prefs and qvm-create on qubes.xml with no bus and no registry
 * (installation, recovery), and refused while a registry holds the file.
 */
let dir: TmpDir;
let nats: TestNats | undefined;

beforeAll(async () => {
  await buildBundles();
  dir = tmpDataDir('qubes-bus-qvm-offline-');
}, 60_000);

afterAll(async () => {
  await nats?.stop();
  dir?.remove();
});

/** No bus at all: nothing listens on port 1. */
const offline = (name: string, ...args: string[]): Promise<Result> => tool(name, ['--offline', ...args], toolEnv('nats://127.0.0.1:1', dir.path));

async function ok(result: Promise<Result>): Promise<string> {
  const { code, stdout, stderr } = await result;
  if (code !== 0) throw new Error(`exited with ${code}: ${stderr}`);
  expect(stderr).toBe('');
  return stdout;
}

describe('--offline', () => {
  it('works on qubes.xml with no bus and no registry running: qvm-create, qvm-prefs, qvm-ls', async () => {
    // Reading tools never create a store: a mistyped data dir is an error, not an empty system.
    const missing = await offline('qvm-ls');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^ERROR: there is no qubes\.xml in .*: check QUBES_DATA_DIR/);
    // Installing does: the first qvm-create makes it, with dom0.
    await ok(offline('qvm-create', '--class', 'TemplateVM', '--label', 'black', 'debian-12'));
    expect(await ok(offline('qvm-ls', 'dom0'))).toBe('NAME  STATE    CLASS    LABEL  TEMPLATE  NETVM\ndom0  Running  AdminVM  black  -         -\n');
    await ok(offline('qvm-create', '--template', 'debian-12', '--label', 'green', '--property', 'vcpus=1', 'rescue'));
    await ok(offline('qvm-prefs', 'rescue', 'memory', '512'));
    expect(await ok(offline('qvm-prefs', 'rescue', 'memory'))).toBe('512\n');
    expect(await ok(offline('qvm-prefs', 'rescue'))).toMatch(/^vcpus +- {2}1$/m);
    expect(await ok(offline('qvm-ls', '--raw-data', '--fields', 'name,class,template,vcpus'))).toBe(
      'debian-12|TemplateVM|-|2\ndom0|AdminVM|-|-\nrescue|AppVM|debian-12|1\n',
    );
    expect(readFileSync(path.join(dir.path, 'qubes.xml'), 'utf8')).toContain('<property name="memory">512</property>');
  });

  it('reports the errors of the offline registry as one ERROR line', async () => {
    const result = await offline('qvm-prefs', 'rescue', 'memory', 'lots');
    expect([result.code, errorLine(result)]).toEqual([1, 'ERROR: memory: "lots" is not an integer']);
  });

  it('refuses with STORE_LOCKED while a registry holds qubes.xml, which serves the offline changes', async () => {
    nats = await startNats();
    const registry = await startRegistry(nats.url, dir.path);
    try {
      const before = readFileSync(path.join(dir.path, 'qubes.xml'), 'utf8');
      for (const args of [['qvm-ls'], ['qvm-prefs', 'rescue', 'memory', '600'], ['qvm-create', '-l', 'red', 'other']]) {
        const [name, ...rest] = args;
        const result = await offline(name!, ...rest);
        expect(result.code).toBe(1);
        expect(errorLine(result)).toMatch(/^ERROR: .*qubes\.xml is held by a running vm-registry \(pid \d+\): use the tools without --offline, or stop it first$/);
      }
      expect(readFileSync(path.join(dir.path, 'qubes.xml'), 'utf8')).toBe(before);
      expect(await ok(tool('qvm-prefs', ['rescue', 'memory'], toolEnv(nats.url, dir.path)))).toBe('512\n');
    } finally {
      await registry.stop();
    }
  });
});
