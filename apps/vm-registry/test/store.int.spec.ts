import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { connectBus, type Bus } from '@qubes-bus/bus';
import { AdminVmCreate, AdminVmList, AdminVmProperty, isQubesError } from '@qubes-bus/contracts';
import { loadQubesXml } from '@qubes-bus/qubes-model';
import { captureLog, rejectionOf, startNats, startUnderTest, tmpDataDir, type TestNats, type TmpDir, type UnderTest } from '@qubes-bus/testing';
import { createRegistry, type RegistryService } from '../src/service';

let nats: TestNats;
let client: Bus;
const running: Array<UnderTest<RegistryService>> = [];
const dirs: TmpDir[] = [];

beforeAll(async () => {
  nats = await startNats();
  client = await connectBus({ url: nats.url, name: 'client', log: captureLog('client').log, mode: 'tool' });
});

afterEach(async () => {
  for (const underTest of running.splice(0)) await underTest.stop();
});

afterAll(async () => {
  for (const dir of dirs) {
    execFileSync('chattr', ['-i', dir.path]);
    dir.remove();
  }
  await client?.close();
  await nats?.stop();
});

function dataDir(): string {
  const dir = tmpDataDir();
  dirs.push(dir);
  return dir.path;
}

/** The dirs are the suite's: made immutable mid-test, so unlocked before they are removed. */
async function start(dir: string): Promise<RegistryService> {
  const underTest = await startUnderTest('vm-registry', ({ bus, log, dataDir }) => createRegistry({ bus, log, dataDir }), { nats, dataDir: dir });
  running.push(underTest);
  return underTest.service;
}

describe('the qubes.xml store', () => {
  it('refuses a save it cannot make (an immutable data dir) with STORE_WRITE_FAILED, and undoes the change in memory too', async () => {
    const dir = dataDir();
    await start(dir);
    await client.request(AdminVmCreate.StandaloneVM, { payload: { name: 'work', label: 'red', properties: { memory: 500 } } });
    const before = readFileSync(path.join(dir, 'qubes.xml'), 'utf8');
    execFileSync('chattr', ['+i', dir]); // not even root may create the new file now
    try {
      const err = await rejectionOf(client.request(AdminVmProperty.Set, { arg: 'memory', payload: { value: 900 } }, { dest: 'work' }));
      expect(err.code).toBe('STORE_WRITE_FAILED');
      expect((await client.request(AdminVmProperty.Get, { arg: 'memory' }, { dest: 'work' })).value).toBe(500);
      expect(readFileSync(path.join(dir, 'qubes.xml'), 'utf8')).toBe(before);
    } finally {
      execFileSync('chattr', ['-i', dir]);
    }
    await client.request(AdminVmProperty.Set, { arg: 'memory', payload: { value: 900 } }, { dest: 'work' });
    expect(readFileSync(path.join(dir, 'qubes.xml'), 'utf8')).toContain('<property name="memory">900</property>');
  });

  it('keeps the file before the last save as qubes.xml.bak, and will not start afresh beside it', async () => {
    const dir = dataDir();
    await start(dir);
    await client.request(AdminVmCreate.StandaloneVM, { payload: { name: 'work', label: 'red' } });
    const beforeSet = readFileSync(path.join(dir, 'qubes.xml'), 'utf8');
    await client.request(AdminVmProperty.Set, { arg: 'vcpus', payload: { value: 3 } }, { dest: 'work' });
    expect(readFileSync(path.join(dir, 'qubes.xml.bak'), 'utf8')).toBe(beforeSet);
    for (const underTest of running.splice(0)) await underTest.stop();
    renameSync(path.join(dir, 'qubes.xml'), path.join(dir, 'lost.xml'));
    let caught: unknown;
    try {
      await start(dir);
    } catch (err) {
      caught = err;
    }
    expect(isQubesError(caught, 'STORE_MISSING')).toBe(true);
    expect((caught as Error).message).toMatch(/qubes\.xml is missing, but qubes\.xml\.bak is there: restore it/);
    expect(existsSync(path.join(dir, 'qubes.xml'))).toBe(false);
  });

  it('converts a Qubes 3 qubes.xml on first start, keeping the original as qubes.xml.r3', async () => {
    const dir = dataDir();
    const r3 = readFileSync(path.join(__dirname, '../../../libs/qubes-model/test/fixtures/qubes-r3.xml'), 'utf8');
    writeFileSync(path.join(dir, 'qubes.xml'), r3);
    await start(dir);
    expect(readFileSync(path.join(dir, 'qubes.xml.r3'), 'utf8')).toBe(r3);
    const { app } = loadQubesXml(readFileSync(path.join(dir, 'qubes.xml'), 'utf8'));
    expect(app.property('sys-firewall', 'netvm').value).toBe('sys-net');
    const { domains } = await client.request(AdminVmList, {});
    expect(domains.map((d) => d.name).sort()).toEqual(['dom0', 'fedora-23', 'fedora-23-dvm', 'sys-firewall', 'sys-net', 'vault', 'win7', 'work']);
  });
});
