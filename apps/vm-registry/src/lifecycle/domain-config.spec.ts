import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { VmClass } from '@qubes-bus/contracts';
import { DomainFlavor } from '@qubes-bus/hypervisor';
import { initialQubesApp, type QubesApp } from '@qubes-bus/qubes-model';
import { thrownBy, tmpDataDir } from '@qubes-bus/testing';
import { domainSpec, qubesDbEntries } from './domain-config';

const dir = tmpDataDir();
afterAll(() => dir.remove());

/** A template, a netvm, a firewall behind it and a work VM behind that, as an installation has them. */
function installation(): QubesApp {
  const app = initialQubesApp(dir.path, '2026-11-27T00:00:00.000Z');
  app.createDomain(VmClass.TemplateVM, { name: 'fedora-40', label: 'black' });
  app.setProperty(null, 'default_template', 'fedora-40');
  app.createDomain(VmClass.AppVM, { name: 'sys-net', label: 'red', properties: { provides_network: true, netvm: '' } });
  app.createDomain(VmClass.AppVM, { name: 'work', label: 'blue', properties: { netvm: 'sys-net' } });
  app.createDomain(VmClass.AppVM, { name: 'vault', label: 'black', properties: { netvm: '' } });
  return app;
}

const kvm = { flavor: DomainFlavor.Kvm };

describe('QubesDB entries (create_qdb_entries)', () => {
  it('gives a networked AppVM its name, type, persistence, address, gateway and DNS', () => {
    const app = installation();
    app.setFeature('work', 'service.cups', '1');
    app.setFeature('work', 'service.meminfo-writer', '');
    const entries = Object.fromEntries(qubesDbEntries(app, 'work', kvm));
    const ip = app.value('work', 'ip') as string;
    expect(ip).toBe(`10.137.0.${app.qidOf('work')}`);
    expect(entries).toMatchObject({
      '/name': 'work',
      '/type': 'AppVM',
      '/qubes-vm-type': 'AppVM',
      '/qubes-random-seed': expect.stringMatching(/^[A-Za-z0-9+/]{86}==$/),
      '/qubes-vm-updateable': 'False',
      '/qubes-vm-persistence': 'rw-only',
      '/qubes-base-template': 'fedora-40',
      '/qubes-debug-mode': '0',
      '/default-user': 'user',
      '/qubes-ip': ip,
      '/qubes-netmask': '255.255.255.255',
      '/qubes-gateway': app.value('sys-net', 'ip'),
      '/qubes-primary-dns': '10.139.1.1',
      '/qubes-secondary-dns': '10.139.1.2',
      '/qubes-service/cups': '1',
      '/qubes-service/meminfo-writer': '0',
    });
    expect(entries['/qubes-netvm-gateway']).toBeUndefined();
    expect(qubesDbEntries(app, 'work', kvm).get('/qubes-random-seed')).not.toBe(entries['/qubes-random-seed']);
  });

  it('tells the agent the Qubes 3 type it chooses its services by: NetVM, ProxyVM, TemplateVM, AppVM', () => {
    const app = installation();
    app.createDomain(VmClass.AppVM, { name: 'sys-firewall', label: 'green', properties: { provides_network: true, netvm: 'sys-net' } });
    app.createDomain(VmClass.StandaloneVM, { name: 'standalone', label: 'green' });
    const type = (vm: string): string | undefined => qubesDbEntries(app, vm, kvm).get('/qubes-vm-type');
    expect(['sys-net', 'sys-firewall', 'fedora-40', 'work', 'standalone'].map(type)).toEqual(['NetVM', 'ProxyVM', 'TemplateVM', 'AppVM', 'AppVM']);
    expect(qubesDbEntries(app, 'standalone', kvm).get('/type')).toBe('StandaloneVM');
  });

  it('lets a VM whose memory Xen balances report it (meminfo-writer), unless its feature says no', () => {
    const app = installation();
    const xen = { flavor: DomainFlavor.Xen };
    expect(qubesDbEntries(app, 'work', xen).get('/qubes-service/meminfo-writer')).toBe('1');
    expect(qubesDbEntries(app, 'work', kvm).get('/qubes-service/meminfo-writer')).toBeUndefined();
    app.setProperty('work', 'maxmem', 0);
    expect(qubesDbEntries(app, 'work', xen).get('/qubes-service/meminfo-writer')).toBeUndefined();
    app.setProperty('work', 'maxmem', 4000);
    app.setFeature('work', 'service.meminfo-writer', '');
    expect(qubesDbEntries(app, 'work', xen).get('/qubes-service/meminfo-writer')).toBe('0');
  });

  it('gives a netvm what its clients need, and a VM without network no address at all', () => {
    const app = installation();
    const net = Object.fromEntries(qubesDbEntries(app, 'sys-net', kvm));
    expect(net).toMatchObject({ '/qubes-netvm-gateway': app.value('sys-net', 'ip'), '/qubes-netvm-netmask': '255.255.255.255', '/qubes-netvm-primary-dns': '10.139.1.1' });
    expect(net['/qubes-ip']).toBeUndefined(); // it has no netvm of its own
    const vault = Object.fromEntries(qubesDbEntries(app, 'vault', kvm));
    expect(Object.keys(vault).filter((k) => /ip|gateway|dns/.test(k))).toEqual([]);
    expect(Object.fromEntries(qubesDbEntries(app, 'fedora-40', kvm))).toMatchObject({ '/qubes-vm-updateable': 'True', '/qubes-vm-persistence': 'full', '/qubes-base-template': '' });
  });
});

describe('the domain of a VM', () => {
  it('takes memory, vCPUs and mode from the properties, and no balloon room outside Xen', () => {
    const app = installation();
    app.setProperty('work', 'memory', 800);
    app.setProperty('work', 'maxmem', 2000);
    const options = { dataDir: dir.path, disks: [] };
    expect(domainSpec(app, 'work', { ...options, flavor: DomainFlavor.Xen })).toMatchObject({ name: 'work', uuid: app.value('work', 'uuid'), memoryMiB: 800, maxmemMiB: 2000, vcpus: 2, virtMode: 'pvh', kernel: null });
    expect(domainSpec(app, 'work', { ...options, flavor: DomainFlavor.Qemu }).maxmemMiB).toBe(800);
  });

  it('boots an installed kernel with the kernelopts after Qubes’ own options, and refuses one that is not installed', () => {
    const app = installation();
    app.setProperty('work', 'kernel', '6.6.1');
    const missing = thrownBy(() => domainSpec(app, 'work', { flavor: DomainFlavor.Xen, dataDir: dir.path, disks: [] }));
    expect(missing.code).toBe('VM_START_FAILED');
    expect(missing.message).toBe(`work boots kernel 6.6.1, which is not installed: ${dir.path}/vm-kernels/6.6.1/vmlinuz is missing`);
    mkdirSync(path.join(dir.path, 'vm-kernels', '6.6.1'), { recursive: true });
    writeFileSync(path.join(dir.path, 'vm-kernels', '6.6.1', 'vmlinuz'), '');
    app.setProperty('work', 'kernelopts', 'nopat quiet');
    const { kernel } = domainSpec(app, 'work', { flavor: DomainFlavor.Xen, dataDir: dir.path, disks: [] });
    expect(kernel).toEqual({
      path: `${dir.path}/vm-kernels/6.6.1/vmlinuz`,
      initrd: undefined,
      cmdline: 'root=/dev/mapper/dmroot ro nomodeset rd_NO_PLYMOUTH rd.plymouth.disable=1 console=hvc0 clocksource=tsc xen_scrub_pages=0 nopat quiet',
    });
    // Defined at creation without it: the kernel is only needed to start.
    app.setProperty('work', 'kernel', '9.9.9');
    expect(domainSpec(app, 'work', { flavor: DomainFlavor.Xen, dataDir: dir.path, disks: [], definitionOnly: true }).kernel).toBeNull();
  });
});
