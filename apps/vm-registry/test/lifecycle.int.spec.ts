import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Bus, type EventSubscription, type ReceivedEvent } from '@qubes-bus/bus';
import {
  AdminHostInfo,
  AdminProperty,
  AdminVmCreate,
  AdminVmCurrentState,
  AdminVmKill,
  AdminVmList,
  AdminVmPause,
  AdminVmProperty,
  AdminVmRemove,
  AdminVmShutdown,
  AdminVmStart,
  AdminVmUnpause,
  PropertyType,
  Subjects,
  VmClass,
} from '@qubes-bus/contracts';
import { DomainFlavor, LibvirtHypervisor } from '@qubes-bus/hypervisor';
import { propertyDefs } from '@qubes-bus/qubes-model';
import { QubesDb } from '@qubes-bus/qubesdb';
import { collectEvents, rejectionOf, startLibvirtd, startUnderTest, type Libvirtd, type UnderTest } from '@qubes-bus/testing';
import { createRegistry, type RegistryService } from '../src/service';

/**
 * The VM lifecycle on real QEMU domains (type qemu, TCG, no disks, no OS) under a real libvirtd,
 * driven over a real nats-server. The libvirtd is shared by every test file: VM names carry
 * this process's id.
 */
let libvirtd: Libvirtd;
let underTest: UnderTest<RegistryService>;
let dataDir: string;
let client: Bus;
let registry: RegistryService;
let qubesdb: QubesDb;

const P = `t${process.pid}`;
const vmName = (what: string): string => `${P}-${what}`;

function virsh(...args: string[]): string {
  return execFileSync('virsh', ['-c', libvirtd.uri, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
const running = (): string[] => virsh('list', '--name').split('\n').filter(Boolean);
const defined = (name: string): number => virsh('list', '--all', '--name').split('\n').filter((n) => n === name).length;

async function create(what: string, properties: Record<string, string | number | boolean> = {}): Promise<{ name: string; uuid: string }> {
  const name = vmName(what);
  // Small and quick: 128 MiB, 1 vCPU, no kernel, no disk.
  const reply = await client.request(AdminVmCreate.StandaloneVM, { payload: { name, label: 'red', properties: { memory: 128, vcpus: 1, ...properties } } });
  return { name, uuid: reply.uuid };
}

async function state(name: string): Promise<string> {
  const { domains } = await client.request(AdminVmList, {}, { dest: name });
  return domains[0]!.state;
}

/** The names of the events of one VM, as they come. */
async function subscribe(name: string): Promise<EventSubscription> {
  return client.subscribe(Subjects.vmEvents(name));
}
const names = (events: ReceivedEvent[]): string[] => events.map((e) => e.message.event);

beforeAll(async () => {
  libvirtd = await startLibvirtd({ driver: 'qemu' });
  const hypervisor = new LibvirtHypervisor(libvirtd.uri, { flavor: DomainFlavor.Qemu });
  underTest = await startUnderTest('vm-registry', ({ bus, log, dataDir }) => createRegistry({ bus, log, dataDir, hypervisor }));
  ({ client, dataDir, service: registry } = underTest);
  qubesdb = await QubesDb.open(client.nc);
  await client.request(AdminProperty.Set, { arg: 'default_netvm', payload: { value: '' } });
  await client.request(AdminProperty.Set, { arg: 'default_shutdown_timeout', payload: { value: 1 } });
}, 120_000);

afterAll(async () => {
  // Whatever a failed test left: its domains go with the VMs.
  for (const vm of registry?.store?.app.domains.keys() ?? []) {
    if (vm === 'dom0') continue;
    await client.request(AdminVmKill, {}, { dest: vm }).catch(() => undefined);
  }
  for (const vm of [...(registry?.store?.app.domains.keys() ?? [])].reverse()) {
    if (vm !== 'dom0') await client.request(AdminVmRemove, {}, { dest: vm }).catch(() => undefined);
  }
  await underTest?.stop();
  await libvirtd?.stop();
}, 60_000);

describe('the VM lifecycle on real QEMU domains', () => {
  it('creates a domain whose UUID libvirt gave, starts it, shuts it down, with each event in order', async () => {
    const { name, uuid } = await create('life');
    expect(virsh('domuuid', name).trim()).toBe(uuid);
    expect(readFileSync(path.join(dataDir, 'qubes.xml'), 'utf8')).toContain(`<property name="uuid">${uuid}</property>`);
    expect(await state(name)).toBe('Halted');

    const events = await subscribe(name);
    await client.request(AdminVmStart, {}, { dest: name });
    expect(running()).toContain(name);
    expect(await state(name)).toBe('Running');
    const current = await client.request(AdminVmCurrentState, {}, { dest: name });
    expect(current).toEqual({ power_state: 'Running', mem: 128 * 1024, mem_static_max: 128 * 1024, cputime: expect.any(Number) });

    // No guest answers the ACPI button: after shutdown_timeout (1 s) it is killed.
    await client.request(AdminVmShutdown, { arg: 'wait' }, { dest: name });
    expect(running()).not.toContain(name);
    expect(await state(name)).toBe('Halted');
    const seen = await collectEvents(events, 4);
    await events.stop();
    expect(names(seen)).toEqual(['domain-pre-start', 'domain-start', 'domain-shutdown', 'domain-stopped']);
    expect(seen[2]!.message).toMatchObject({ vm: name, reason: 'destroyed' });
  });

  it('writes the QubesDB of a running VM as Qubes does, and removes it when the VM stops', async () => {
    const net = await create('qdbnet', { provides_network: true });
    const { name } = await create('qdb', { netvm: net.name });
    await client.request(AdminVmProperty.Set, { arg: 'debug', payload: { value: true } }, { dest: name });
    await client.request(AdminVmStart, {}, { dest: name }); // starts its netvm first
    expect(running()).toEqual(expect.arrayContaining([name, net.name]));
    const db = qubesdb.vm(name);
    const ip = (await client.request(AdminVmProperty.Get, { arg: 'ip' }, { dest: name })).value as string;
    const netIp = (await client.request(AdminVmProperty.Get, { arg: 'ip' }, { dest: net.name })).value as string;
    expect(Object.fromEntries(await db.multiread('/'))).toMatchObject({
      '/name': name,
      '/type': 'StandaloneVM',
      '/qubes-vm-type': 'AppVM',
      '/qubes-vm-updateable': 'True',
      '/qubes-vm-persistence': 'full',
      '/qubes-debug-mode': '1',
      '/default-user': 'user',
      '/qubes-ip': ip,
      '/qubes-netmask': '255.255.255.255',
      '/qubes-gateway': netIp,
      '/qubes-primary-dns': '10.139.1.1',
      '/qubes-secondary-dns': '10.139.1.2',
    });
    expect(ip).toMatch(/^10\.137\.0\.\d+$/);
    expect(await qubesdb.vm(net.name).read('/qubes-netvm-gateway')).toBe(netIp);
    expect(await qubesdb.vm(net.name).read('/qubes-vm-type')).toBe('NetVM');

    // A netvm with a running client stays up unless forced.
    const refused = await rejectionOf(client.request(AdminVmShutdown, {}, { dest: net.name }));
    expect(refused.code).toBe('VM_IN_USE');
    expect(refused.message).toBe(`there are other VMs connected to ${net.name}: ${name}; shut them down first, or force`);
    expect(running()).toContain(net.name);

    await client.request(AdminVmKill, {}, { dest: name });
    const disconnected = await rejectionOf(db.read('/name'));
    expect(disconnected.code).toBe('QUBESDB_DISCONNECTED');
    await client.request(AdminVmShutdown, { arg: 'force+wait' }, { dest: net.name });
    expect(running()).not.toContain(net.name);
    expect((await rejectionOf(qubesdb.vm(net.name).read('/name'))).code).toBe('QUBESDB_DISCONNECTED');
  });

  it('sees a domain started and destroyed outside the registry: domain-stopped within a second, and the VM halted', async () => {
    const { name } = await create('outside');
    const started = await subscribe(name);
    virsh('start', name);
    expect(names(await collectEvents(started, 1, 5_000))).toEqual(['domain-start']);
    await started.stop();
    expect(await state(name)).toBe('Running');
    expect(await qubesdb.vm(name).read('/name')).toBe(name);
    const events = await subscribe(name);
    // From the moment the domain is gone (virsh has returned: on a loaded machine the command
    // itself can take a second) to the registry's event at the subscriber.
    virsh('destroy', name);
    const destroyedAt = Date.now();
    const [shutdown, stopped] = await collectEvents(events, 2, 5_000);
    const delay = Date.now() - destroyedAt;
    await events.stop();
    expect([shutdown!.message.event, stopped!.message.event]).toEqual(['domain-shutdown', 'domain-stopped']);
    expect(delay).toBeLessThan(1_000);
    expect(await state(name)).toBe('Halted');
    expect((await rejectionOf(qubesdb.vm(name).read('/name'))).code).toBe('QUBESDB_DISCONNECTED');
  });

  it('pauses and unpauses, refuses what the state does not allow, and starts a VM once when asked twice at once', async () => {
    const { name } = await create('pause');
    expect((await rejectionOf(client.request(AdminVmPause, {}, { dest: name }))).code).toBe('VM_NOT_RUNNING');
    expect((await rejectionOf(client.request(AdminVmShutdown, {}, { dest: name }))).code).toBe('VM_NOT_RUNNING');
    expect((await rejectionOf(client.request(AdminVmKill, {}, { dest: name }))).code).toBe('VM_NOT_RUNNING');
    const events = await subscribe(name);
    await Promise.all([client.request(AdminVmStart, {}, { dest: name }), client.request(AdminVmStart, {}, { dest: name })]);
    expect((await rejectionOf(client.request(AdminVmUnpause, {}, { dest: name }))).code).toBe('VM_NOT_PAUSED');
    await client.request(AdminVmPause, {}, { dest: name });
    expect(virsh('domstate', name).trim()).toBe('paused');
    expect(await state(name)).toBe('Paused');
    await client.request(AdminVmUnpause, {}, { dest: name });
    expect(virsh('domstate', name).trim()).toBe('running');
    await client.request(AdminVmKill, {}, { dest: name });
    const seen = await collectEvents(events, 6);
    await events.stop();
    expect(names(seen)).toEqual(['domain-pre-start', 'domain-start', 'domain-paused', 'domain-unpaused', 'domain-shutdown', 'domain-stopped']);
    expect((await rejectionOf(client.request(AdminVmStart, {}, { dest: 'dom0' }))).code).toBe('VM_CLASS_INVALID');
  });

  it('reports a domain undefined by someone else, and never leaves a second one behind', async () => {
    const { name, uuid } = await create('gone');
    virsh('undefine', name);
    const err = await rejectionOf(client.request(AdminVmStart, {}, { dest: name }));
    expect(err.code).toBe('DOMAIN_MISSING');
    expect(err.message).toBe(`the libvirt domain of ${name} (${uuid}) was removed outside qubes-bus; it is not made anew behind your back`);
    expect(defined(name)).toBe(0);
    // Someone else's domain now holds the name: still no second domain, and a clear error at creation too.
    virsh('define', writeDomain('squatter', name));
    expect((await rejectionOf(client.request(AdminVmStart, {}, { dest: name }))).code).toBe('DOMAIN_MISSING');
    virsh('start', name); // the squatter runs: that is not the VM
    await sleep(300);
    expect(await state(name)).toBe('Halted');
    virsh('destroy', name);
    const taken = await rejectionOf(client.request(AdminVmRemove, {}, { dest: name }).then(() => create('gone')));
    expect(taken.code).toBe('DOMAIN_CONFLICT');
    expect(defined(name)).toBe(1);
    expect(registry.store!.app.exists(name)).toBe(false);
    virsh('undefine', name);
  });

  it('removes a VM with its domain, and refuses to remove one that runs', async () => {
    const { name } = await create('removed');
    await client.request(AdminVmStart, {}, { dest: name });
    expect((await rejectionOf(client.request(AdminVmRemove, {}, { dest: name }))).code).toBe('VM_RUNNING');
    await client.request(AdminVmKill, {}, { dest: name });
    await client.request(AdminVmRemove, {}, { dest: name });
    expect(defined(name)).toBe(0);
  });

  it('keeps an injection attempt through every free-text property as text: the domain XML stays valid', async () => {
    const { name } = await create('inject');
    const kernels = path.join(dataDir, 'vm-kernels', 'inject');
    mkdirSync(kernels, { recursive: true });
    writeFileSync(path.join(kernels, 'vmlinuz'), ''); // no real kernel: the start fails, the definition stays
    await client.request(AdminVmProperty.Set, { arg: 'kernel', payload: { value: 'inject' } }, { dest: name });
    const attack = `x</cmdline><devices><disk type='file'><source file='/etc/shadow'/></disk></devices><cmdline>&amp; "'`;
    const accepted: string[] = [];
    for (const def of propertyDefs(VmClass.StandaloneVM)) {
      if (def.type !== PropertyType.Str || def.writeOnce === true || def.readOnly === true) continue;
      const set = await client.request(AdminVmProperty.Set, { arg: def.name, payload: { value: attack } }, { dest: name }).then(
        () => true,
        () => false,
      );
      if (set) accepted.push(def.name);
    }
    expect(accepted).toContain('kernelopts');
    await client.request(AdminVmStart, {}, { dest: name }).catch(() => undefined);
    const xml = virsh('dumpxml', name);
    const file = path.join(dataDir, 'inject.xml');
    writeFileSync(file, xml);
    const validation = spawnSync('virt-xml-validate', [file, 'domain'], { encoding: 'utf8' });
    expect(validation.status).toBe(0);
    expect(xml).not.toContain('/etc/shadow\'/>');
    const cmdline = /<cmdline>([^<]*)<\/cmdline>/.exec(xml)?.[1] ?? '';
    const unescaped = cmdline.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&quot;', '"').replaceAll('&apos;', "'").replaceAll('&amp;', '&');
    expect(unescaped.endsWith(` ${attack}`)).toBe(true);
  });

  it('tells the host’s memory and CPUs through libvirt', async () => {
    const host = await client.request(AdminHostInfo, {});
    expect(host.cpus).toBeGreaterThan(0);
    expect(host.memory_total).toBeGreaterThan(host.memory_free);
    expect(host.running).toBeGreaterThanOrEqual(1); // dom0
  });
});

function writeDomain(what: string, name: string): string {
  const file = path.join(dataDir, `${what}.xml`);
  writeFileSync(
    file,
    `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><os><type arch='x86_64' machine='pc'>hvm</type></os><devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>`,
  );
  return file;
}
