import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectBus, StdioRequester, type Bus } from '@qubes-bus/bus';
import { AdminVmCreate, AdminVmList, AdminVmProperty } from '@qubes-bus/contracts';
import { captureLog, rejectionOf, startNats, startUnderTest, tmpDataDir, type TestNats, type TmpDir } from '@qubes-bus/testing';
import { createRegistry } from '../src/service';

const ROOT = path.resolve(__dirname, '../../..');
const BUNDLE = path.join(ROOT, 'dist/apps/vm-registry/main.js');

let nats: TestNats;
let client: Bus;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  execFileSync(process.execPath, [path.join(ROOT, 'tools/build.mjs'), '--quiet'], { stdio: 'inherit' });
  nats = await startNats();
  client = await connectBus({ url: nats.url, name: 'client', log: captureLog('client').log, mode: 'tool' });
}, 120_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await client?.close();
  await nats?.stop();
});

async function inProcessRegistry(dir: TmpDir): Promise<{ stop: () => Promise<void> }> {
  const underTest = await startUnderTest('registry-a', ({ bus, log, dataDir }) => createRegistry({ bus, log, dataDir }), { nats, dataDir: dir.path });
  cleanups.push(() => underTest.stop()); // a second stop waits for the first
  return { stop: () => underTest.stop() };
}

/** A second registry, as its own process, with its log lines collected. */
function registryProcess(dir: TmpDir): { stop: () => Promise<void>; lines: Array<Record<string, unknown>> } {
  const child = spawn(process.execPath, [BUNDLE], {
    env: { ...process.env, QUBES_NATS_URL: nats.url, QUBES_DATA_DIR: dir.path, LOG_FORMAT: 'json', LOG_LEVEL: 'debug' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Array<Record<string, unknown>> = [];
  let buffer = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    for (const line of parts) if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  cleanups.push(stop);
  return { stop, lines };
}

async function until(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('who holds qubes.xml', () => {
  it('a second registry waiting for the lock while the first replaces the file ends up reading the new file (the seed race)', async () => {
    const dir = tmpDataDir();
    cleanups.push(() => dir.remove());
    const a = await inProcessRegistry(dir);
    await client.request(AdminVmCreate.StandaloneVM, { payload: { name: 'work', label: 'red', properties: { memory: 500 } } });

    const b = registryProcess(dir);
    await until('the second registry to wait for the lock', () => b.lines.some((l) => l['msg'] === 'waiting for the process that holds qubes.xml'));
    // The first registry saves: qubes.xml is replaced by a new file while the second waits on the old one.
    await client.request(AdminVmProperty.Set, { arg: 'memory', payload: { value: 777 } }, { dest: 'work' });
    await until('the second registry to notice', () => b.lines.some((l) => String(l['msg']).includes('was replaced while we waited')));
    expect(b.lines.some((l) => l['msg'] === 'vm-registry serving')).toBe(false); // still waiting, on the new file

    await a.stop();
    await until('the second registry to serve', () => b.lines.some((l) => l['msg'] === 'vm-registry serving'));
    const memory = await client.request(AdminVmProperty.Get, { arg: 'memory' }, { dest: 'work' });
    expect(memory.value).toBe(777);
    await b.stop();
  }, 60_000);

  it('the built registry (validating in a worker thread) refuses a malformed qubes.xml with its position and leaves it untouched', async () => {
    const dir = tmpDataDir();
    cleanups.push(() => dir.remove());
    const broken = "<?xml version='1.0' encoding='UTF-8'?>\n<qubes>\n  <domains>\n    <domain id=\"domain-0\" class=\"AdminVM\">\n  </domains>\n</qubes>\n";
    writeFileSync(path.join(dir.path, 'qubes.xml'), broken);
    const offline = new StdioRequester(process.execPath, [BUNDLE, '--offline-stdio'], { ...process.env, QUBES_DATA_DIR: dir.path });
    cleanups.push(() => offline.close());
    const err = await rejectionOf(offline.request(AdminVmList, {}));
    expect(err.code).toBe('STORE_MALFORMED');
    expect(err.message).toMatch(/qubes\.xml is malformed at line 5, column \d+/);
    expect(readFileSync(path.join(dir.path, 'qubes.xml'), 'utf8')).toBe(broken);
  });

  it('offline tools work on qubes.xml with no registry, and refuse while a registry holds it', async () => {
    const dir = tmpDataDir();
    cleanups.push(() => dir.remove());
    const env = { ...process.env, QUBES_DATA_DIR: dir.path };
    const offline = new StdioRequester(process.execPath, [BUNDLE, '--offline-stdio', '--create-store'], env);
    cleanups.push(() => offline.close());
    await offline.request(AdminVmCreate.TemplateVM, { payload: { name: 'fedora-40', label: 'black' } });
    await offline.request(AdminVmCreate.AppVM, { arg: 'fedora-40', payload: { name: 'work', label: 'blue' } });
    await offline.request(AdminVmProperty.Set, { arg: 'memory', payload: { value: '900' } }, { dest: 'work' });
    await offline.close();

    // the registry then finds what the offline tool wrote
    await inProcessRegistry(dir);
    expect((await client.request(AdminVmProperty.Get, { arg: 'memory' }, { dest: 'work' })).value).toBe(900);

    const refused = new StdioRequester(process.execPath, [BUNDLE, '--offline-stdio'], env);
    cleanups.push(() => refused.close());
    const err = await rejectionOf(refused.request(AdminVmList, {}));
    expect(err.code).toBe('STORE_LOCKED');
    expect(err.message).toMatch(new RegExp(`held by a running vm-registry \\(pid ${process.pid}\\)`));
    await refused.close();
  }, 60_000);
});
