import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { connectBus, type Bus } from '@qubes-bus/bus';
import { AdminVmList, isQubesError } from '@qubes-bus/contracts';
import { captureLog, rejectionOf, startNats, startUnderTest, tmpDataDir, type TestNats, type TmpDir, type UnderTest } from '@qubes-bus/testing';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createRegistry, type RegistryService } from '../src/service';

let nats: TestNats;
let client: Bus;
const running: Array<UnderTest<RegistryService>> = [];
const dirs: TmpDir[] = [];

async function startRegistry(prepare?: (dataDir: string) => void): Promise<{ registry: RegistryService; dataDir: string }> {
  // The test's own dir: prepared before the start, and still there when a start is refused.
  const dir = tmpDataDir();
  dirs.push(dir);
  prepare?.(dir.path);
  const underTest = await startUnderTest('vm-registry', ({ bus, log, dataDir }) => createRegistry({ bus, log, dataDir }), { nats, dataDir: dir.path });
  running.push(underTest);
  return { registry: underTest.service, dataDir: dir.path };
}

beforeAll(async () => {
  nats = await startNats();
  client = await connectBus({ url: nats.url, name: 'client', log: captureLog('client').log, mode: 'tool' });
});

afterEach(async () => {
  for (const underTest of running.splice(0)) await underTest.stop();
  for (const dir of dirs.splice(0)) dir.remove();
});

afterAll(async () => {
  await client?.close();
  await nats?.stop();
});

const EXISTING = `<?xml version='1.0' encoding='UTF-8'?>
<qubes>
  <labels>
    <label id="label-1" color="0xcc0000">red</label>
    <label id="label-8" color="0x000000">black</label>
  </labels>
  <pools/>
  <properties>
    <property name="default_netvm">sys-firewall</property>
  </properties>
  <domains>
    <domain id="domain-0" class="AdminVM">
      <properties><property name="label" ref="label-8"/></properties>
    </domain>
    <domain id="domain-2" class="TemplateVM">
      <properties><property name="name">fedora-40</property><property name="label" ref="label-8"/><property name="netvm"></property></properties>
    </domain>
    <domain id="domain-3" class="StandaloneVM">
      <properties><property name="name">sys-firewall</property><property name="label" ref="label-1"/><property name="provides_network">True</property><property name="netvm"></property></properties>
    </domain>
    <domain id="domain-5" class="AppVM">
      <properties><property name="name">my.work</property><property name="label" ref="label-1"/><property name="template">fedora-40</property></properties>
    </domain>
  </domains>
</qubes>
`;

describe('vm-registry, first slice', () => {
  it('creates qubes.xml holding dom0 on a fresh data dir and lists it over the bus', async () => {
    const { dataDir } = await startRegistry();
    const xml = readFileSync(path.join(dataDir, 'qubes.xml'), 'utf8');
    expect(xml).toMatch(/^<\?xml version='1.0' encoding='UTF-8'\?>\n<qubes>/);
    expect(xml).toContain('<domain id="domain-0" class="AdminVM">');

    const { domains } = await client.request(AdminVmList, {});
    expect(domains).toEqual([
      { name: 'dom0', class: 'AdminVM', state: 'Running', label: 'black', template: null, netvm: null, revision: expect.any(String) },
    ]);
  });

  it('lists an existing installation without rewriting its qubes.xml', async () => {
    let before = 0;
    const { dataDir } = await startRegistry((dir) => {
      writeFileSync(path.join(dir, 'qubes.xml'), EXISTING);
      before = statSync(path.join(dir, 'qubes.xml')).mtimeMs;
    });
    const { domains } = await client.request(AdminVmList, {});
    expect(domains.map((d) => [d.name, d.class, d.state, d.label, d.template, d.netvm])).toEqual([
      ['dom0', 'AdminVM', 'Running', 'black', null, null],
      ['fedora-40', 'TemplateVM', 'Halted', 'black', null, null],
      ['sys-firewall', 'StandaloneVM', 'Halted', 'red', null, null],
      ['my.work', 'AppVM', 'Halted', 'red', 'fedora-40', 'sys-firewall'],
    ]);
    expect(readFileSync(path.join(dataDir, 'qubes.xml'), 'utf8')).toBe(EXISTING);
    expect(statSync(path.join(dataDir, 'qubes.xml')).mtimeMs).toBe(before);

    const one = await client.request(AdminVmList, {}, { dest: 'my.work' });
    expect(one.domains.map((d) => d.name)).toEqual(['my.work']);
    const ghost = await rejectionOf(client.request(AdminVmList, {}, { dest: 'ghost' }));
    expect([ghost.code, ghost.message]).toEqual(['VM_NOT_FOUND', 'no such domain: ghost']);
  });

  it('refuses to start on a malformed qubes.xml, naming the position, and leaves the file byte for byte', async () => {
    const broken = EXISTING.slice(0, 300);
    let caught: unknown;
    let dataDir = '';
    try {
      await startRegistry((dir) => {
        dataDir = dir;
        writeFileSync(path.join(dir, 'qubes.xml'), broken);
      });
    } catch (err) {
      caught = err;
    }
    expect(isQubesError(caught, 'STORE_MALFORMED')).toBe(true);
    expect((caught as Error).message).toMatch(/qubes\.xml is malformed at line \d+, column \d+/);
    expect(readFileSync(path.join(dataDir, 'qubes.xml'), 'utf8')).toBe(broken);
    const unserved = await rejectionOf(client.request(AdminVmList, {}, { timeoutMs: 2_000 }));
    expect(unserved.code).toBe('SERVICE_UNAVAILABLE');
  });
});
