import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import path from 'node:path';
import { connectBus, type Bus } from '@qubes-bus/bus';
import {
  AdminHostInfo,
  AdminVmCreate,
  AdminVmCurrentState,
  AdminVmKill,
  AdminVmList,
  AdminVmPause,
  AdminVmProperty,
  AdminVmShutdown,
  AdminVmStart,
  AdminVmUnpause,
  Subjects,
} from '@qubes-bus/contracts';
import { DomainFlavor, LibvirtHypervisor } from '@qubes-bus/hypervisor';
import { captureLog, collectEvents, rejectionOf, startLibvirtd, startNats, startUnderTest, tmpDataDir, type Libvirtd, type TestNats, type TmpDir, type UnderTest } from '@qubes-bus/testing';
import { createRegistry, type RegistryService } from '../src/service';

/** A registry whose libvirtd goes away and comes back, and one that has none at all: one after the other, on one nats, in subdirs of one dir. */
let nats: TestNats;
let dir: TmpDir;
let client: Bus;

const small = { memory: 128, vcpus: 1 };

async function stateOf(vm: string): Promise<string> {
  return (await client.request(AdminVmList, {}, { dest: vm })).domains[0]!.state;
}

beforeAll(async () => {
  nats = await startNats();
  dir = tmpDataDir();
  client = await connectBus({ url: nats.url, name: 'client', log: captureLog('client').log, mode: 'tool' });
});

afterAll(async () => {
  await client?.close();
  await nats?.stop();
  dir?.remove();
});

describe('a registry whose libvirtd is killed and restarted (libvirt test driver, private daemon)', () => {
  let libvirtd: Libvirtd;
  let registry: UnderTest<RegistryService>;
  const daemonDir = (): string => path.join(dir.path, 'libvirtd');

  beforeAll(async () => {
    libvirtd = await startLibvirtd({ driver: 'test', dir: daemonDir() });
    const hypervisor = new LibvirtHypervisor(libvirtd.uri, { flavor: DomainFlavor.Qemu });
    registry = await startUnderTest('vm-registry', ({ bus, log, dataDir }) => createRegistry({ bus, log, dataDir, hypervisor }), { nats, dataDir: path.join(dir.path, 'restart') });
  }, 60_000);

  afterAll(async () => {
    await registry?.stop();
    await libvirtd?.stop();
  });

  it('answers the next call once libvirtd is back, without a restart of its own, and sees what changed meanwhile', async () => {
    await client.request(AdminVmCreate.StandaloneVM, { payload: { name: 'before', label: 'red', properties: small } });
    await client.request(AdminVmStart, {}, { dest: 'before' });
    expect(await stateOf('before')).toBe('Running');
    const events = await client.subscribe(Subjects.vmEvents('before'));

    await libvirtd.stop(); // killed: the test driver forgets every domain it had
    const unreachable = await rejectionOf(client.request(AdminVmCurrentState, {}, { dest: 'before' }));
    expect(unreachable.code).toBe('VMM_UNREACHABLE');
    libvirtd = await startLibvirtd({ driver: 'test', dir: daemonDir() });

    // The very next call works, on a new connection.
    const { uuid } = await client.request(AdminVmCreate.StandaloneVM, { payload: { name: 'after', label: 'red', properties: small } });
    await client.request(AdminVmStart, {}, { dest: 'after' });
    expect(await stateOf('after')).toBe('Running');
    expect((await client.request(AdminVmCurrentState, {}, { dest: 'after' })).power_state).toBe('Running');
    expect(uuid).toMatch(/^[0-9a-f-]{36}$/);

    // The event monitor came back too, read the domains again, and found 'before' gone.
    const [shutdown, stopped] = await collectEvents(events, 2, 15_000);
    await events.stop();
    expect([shutdown!.message.event, stopped!.message.event]).toEqual(['domain-shutdown', 'domain-stopped']);
    expect(await stateOf('before')).toBe('Halted');
    await client.request(AdminVmKill, {}, { dest: 'after' });
    expect(await stateOf('after')).toBe('Halted');
  }, 60_000);
});

describe('a registry without a hypervisor (offline)', () => {
  let registry: UnderTest<RegistryService>;

  beforeAll(async () => {
    registry = await startUnderTest('vm-registry', ({ bus, log, dataDir }) => createRegistry({ bus, log, dataDir }), { nats, dataDir: path.join(dir.path, 'offline') });
  });

  afterAll(async () => {
    await registry?.stop();
  });

  it('refuses every lifecycle call with VMM_OFFLINE, while qubes.xml is edited as ever', async () => {
    await client.request(AdminVmCreate.StandaloneVM, { payload: { name: 'installing', label: 'green' } });
    await client.request(AdminVmProperty.Set, { arg: 'memory', payload: { value: 600 } }, { dest: 'installing' });
    expect((await client.request(AdminVmProperty.Get, { arg: 'memory' }, { dest: 'installing' })).value).toBe(600);
    for (const endpoint of [AdminVmStart, AdminVmKill, AdminVmPause, AdminVmUnpause, AdminVmShutdown]) {
      const err = await rejectionOf(client.request(endpoint, {}, { dest: 'installing' }));
      expect([endpoint.method, err.code, err.message]).toEqual([endpoint.method, 'VMM_OFFLINE', 'no hypervisor: the registry runs without LIBVIRT_URI']);
    }
    expect((await rejectionOf(client.request(AdminHostInfo, {}))).code).toBe('VMM_OFFLINE');
    expect(await stateOf('installing')).toBe('Halted');
    expect((await client.request(AdminVmCurrentState, {}, { dest: 'installing' })).power_state).toBe('Halted');
  });
});
