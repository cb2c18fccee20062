import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { XMLParser } from 'fast-xml-parser';
import { isQubesError, type ErrorCode } from '@qubes-bus/contracts';
import { startLibvirtd, tmpDataDir, type Libvirtd } from '@qubes-bus/testing';
import { buildDomainXml, buildHotplugDiskXml, DomainFlavor, LibvirtHypervisor, OfflineHypervisor, type DomainSpec, type LifecycleEvent } from '../src';

const scratch = tmpDataDir();
let qemu: Libvirtd;
let hv: LibvirtHypervisor;
const NAME = `qb-hv-${process.pid}`;

const spec = (overrides: Partial<DomainSpec> = {}): DomainSpec => ({
  name: NAME,
  memoryMiB: 128,
  maxmemMiB: 128,
  vcpus: 1,
  virtMode: 'hvm',
  kernel: null,
  disks: [],
  debug: false,
  ...overrides,
});

/** virt-xml-validate's verdict, which it writes on stderr (exit status 0 when valid). */
function validate(file: string): string {
  const run = spawnSync('virt-xml-validate', [file, 'domain'], { encoding: 'utf8' });
  return `${run.status} ${run.stderr}${run.stdout}`;
}

function virsh(uri: string, ...args: string[]): string {
  return execFileSync('virsh', ['-c', uri, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function failure(promise: Promise<unknown>): Promise<{ code: ErrorCode; message: string }> {
  try {
    await promise;
  } catch (err) {
    if (isQubesError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a failure');
}

beforeAll(async () => {
  qemu = await startLibvirtd({ driver: 'qemu' });
  hv = new LibvirtHypervisor(qemu.uri);
}, 120_000);

afterAll(async () => {
  await hv?.undefine((await hv.list()).find((d) => d.name === NAME)?.uuid ?? '00000000-0000-0000-0000-000000000000').catch(() => undefined);
  await hv?.close();
  await qemu?.stop();
  scratch.remove();
});

describe('the libvirt adapter, on real QEMU domains', () => {
  it('defines a domain (libvirt gives the UUID), runs it through its lifecycle, and reports every step as an event', async () => {
    const events: LifecycleEvent[] = [];
    const watcher = hv.watch((e) => e.domain === NAME && events.push(e), () => undefined);
    await sleep(300); // virsh event is listening
    const { uuid, name } = await hv.define(buildDomainXml(spec(), DomainFlavor.Qemu));
    expect(name).toBe(NAME);
    expect(uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect((await hv.lookup(uuid))?.state).toBe('shutoff');
    await hv.start(uuid);
    expect(virsh(qemu.uri, 'list', '--name').split('\n')).toContain(NAME);
    expect((await hv.lookup(uuid))?.state).toBe('running');
    await hv.pause(uuid);
    expect((await hv.lookup(uuid))?.state).toBe('paused');
    await hv.resume(uuid);
    await hv.destroy(uuid);
    expect((await hv.lookup(uuid))?.state).toBe('shutoff');
    await hv.undefine(uuid);
    expect(await hv.lookup(uuid)).toBeNull();
    const deadline = Date.now() + 5_000;
    while (!events.some((e) => e.kind === 'undefined') && Date.now() < deadline) await sleep(20);
    await watcher.stop();
    expect(events.map((e) => `${e.kind} ${e.detail}`)).toEqual(
      expect.arrayContaining(['defined Added', 'started Booted', 'suspended Paused', 'resumed Unpaused', 'stopped Destroyed', 'undefined Removed']),
    );
    const kinds = events.map((e) => e.kind);
    expect(kinds.indexOf('started')).toBeLessThan(kinds.indexOf('suspended'));
    expect(kinds.indexOf('suspended')).toBeLessThan(kinds.indexOf('stopped'));
  });

  it('attaches a disk to a running domain and detaches it, each call done when the domain shows it', async () => {
    // QEMU runs as its own user (libvirt-qemu): it must reach the file through the directories.
    chmodSync(scratch.path, 0o711);
    const image = path.join(scratch.path, 'stick.img');
    writeFileSync(image, Buffer.alloc(1024 * 1024));
    const { uuid } = await hv.define(buildDomainXml(spec(), DomainFlavor.Qemu));
    await hv.start(uuid);
    try {
      const stick = buildHotplugDiskXml({ path: image, type: 'file', frontend: 'xvdi', readOnly: true }, DomainFlavor.Qemu);
      await hv.attachDevice(uuid, stick);
      expect(await hv.xml(uuid)).toMatch(new RegExp(`<source file='${image}'[^>]*/>\\s*(<backingStore/>\\s*)?<target dev='sdi' bus='scsi'/>`));
      await hv.detachDevice(uuid, stick);
      expect(await hv.xml(uuid)).not.toContain(image);
      const refused = await failure(hv.detachDevice(uuid, stick));
      expect(refused.code).toBe('VMM_ERROR');
      expect(refused.message).toBe('libvirt could not detach device: device not found: disk sdi not found');
    } finally {
      await hv.undefine(uuid);
    }
  });

  it('refuses a second domain under a taken name (DOMAIN_CONFLICT), and reports a removed one as missing', async () => {
    const { uuid } = await hv.define(buildDomainXml(spec(), DomainFlavor.Qemu));
    const other = '11111111-2222-3333-4444-555555555555';
    expect((await failure(hv.define(buildDomainXml(spec({ uuid: other }), DomainFlavor.Qemu)))).code).toBe('DOMAIN_CONFLICT');
    expect(virsh(qemu.uri, 'list', '--all', '--name').split('\n').filter((n) => n === NAME)).toHaveLength(1);
    virsh(qemu.uri, 'undefine', NAME); // someone else
    expect(await hv.lookup(uuid)).toBeNull();
    const missing = await failure(hv.start(uuid));
    expect(missing.code).toBe('DOMAIN_MISSING');
    expect(missing.message).toContain(uuid);
  });

  it('defines KVM domains only where libvirt offers KVM (not wherever /dev/kvm exists), Xen ones on Xen, or what it is told', async () => {
    const offersKvm = spawnSync('virsh', ['-c', qemu.uri, 'domcapabilities', '--virttype', 'kvm'], { stdio: 'ignore' }).status === 0;
    expect(await new LibvirtHypervisor(qemu.uri).domainFlavor()).toBe(offersKvm ? 'kvm' : 'qemu');
    expect(await new LibvirtHypervisor('xen:///system').domainFlavor()).toBe('xen'); // no connection needed
    expect(await new LibvirtHypervisor(qemu.uri, { flavor: DomainFlavor.Qemu }).domainFlavor()).toBe('qemu');
    expect((await failure(new LibvirtHypervisor('qemu:///system?socket=/nonexistent/sock').domainFlavor())).code).toBe('VMM_UNREACHABLE');
  });

  it('reads the host through libvirt: memory, CPUs and, from the second reading on, CPU usage', async () => {
    const first = await hv.hostInfo();
    expect(first.cpus).toBeGreaterThan(0);
    expect(first.memoryTotal).toBeGreaterThan(first.memoryFree);
    expect(first.memoryFree).toBeGreaterThan(0);
    await sleep(200);
    const second = await hv.hostInfo();
    expect(second.cpuUsage).toEqual(expect.any(Number));
  });
});

describe('a libvirtd that goes away', () => {
  it('is reached again by the next call once it is back, on the same adapter', async () => {
    const dir = path.join(scratch.path, 'test-driver');
    let daemon = await startLibvirtd({ driver: 'test', dir });
    const adapter = new LibvirtHypervisor(daemon.uri);
    try {
      expect((await adapter.list()).map((d) => d.name)).toContain('test');
      await daemon.stop();
      expect((await failure(adapter.list())).code).toBe('VMM_UNREACHABLE');
      daemon = await startLibvirtd({ driver: 'test', dir });
      expect((await adapter.list()).map((d) => d.name)).toContain('test');
    } finally {
      await adapter.close();
      await daemon.stop();
    }
  });

  it('offline, every call says so with VMM_OFFLINE', async () => {
    const offline = new OfflineHypervisor('offline mode (installation)');
    for (const call of [offline.start('x'), offline.list(), offline.define('<domain/>'), offline.hostInfo()]) {
      const err = await failure(call);
      expect(err).toEqual({ code: 'VMM_OFFLINE', message: 'no hypervisor: offline mode (installation)' });
    }
  });
});

describe('domain XML', () => {
  const parser = new XMLParser({ ignoreAttributes: false, parseTagValue: false, trimValues: false });
  const hostile = 'quiet </cmdline><init>/bin/sh</init><cmdline> & "\'';

  it.each([
    ['xen', 'pv'],
    ['xen', 'pvh'],
    ['xen', 'hvm'],
    ['qemu', 'hvm'],
    ['kvm', 'pvh'],
  ] as const)('for %s in %s mode validates against libvirt\'s schema (virt-xml-validate)', (flavor, virtMode) => {
    const file = path.join(scratch.path, `${flavor}-${virtMode}.xml`);
    const kernel = virtMode === 'hvm' ? null : { path: '/var/lib/qubes/vm-kernels/6.6/vmlinuz', initrd: '/var/lib/qubes/vm-kernels/6.6/initramfs', cmdline: 'nopat' };
    const disks = [
      { path: '/var/lib/qubes/appvms/work/root.img', type: 'file' as const, frontend: 'xvda', readOnly: true },
      { path: '/dev/loop7', type: 'block' as const, frontend: 'xvdb', readOnly: false },
    ];
    writeFileSync(file, buildDomainXml(spec({ virtMode, kernel, disks, uuid: '6f2a6b8d-1d72-4c9f-8b2d-3c1b5f7a8b55' }), flavor));
    expect(validate(file)).toMatch(/^0 .*validates/);
  });

  it('keeps an injection attempt through every free-text value as text, the XML still valid', () => {
    const xml = buildDomainXml(
      spec({
        virtMode: 'pv',
        kernel: { path: `/k/${hostile}`, initrd: `/i/${hostile}`, cmdline: hostile },
        disks: [{ path: `/img/${hostile}`, type: 'file', frontend: 'xvda', readOnly: false }],
      }),
      DomainFlavor.Xen,
    );
    const file = path.join(scratch.path, 'hostile.xml');
    writeFileSync(file, xml);
    expect(validate(file)).toMatch(/^0 .*validates/);
    const parsed = parser.parse(xml) as { domain: { os: Record<string, unknown>; devices: { disk: { source: Record<string, string> } } } };
    expect(parsed.domain.os['cmdline']).toBe(hostile);
    expect(parsed.domain.os['kernel']).toBe(`/k/${hostile}`);
    expect(parsed.domain.os['init']).toBeUndefined();
    expect(parsed.domain.devices.disk.source['@_file']).toBe(`/img/${hostile}`);
  });
});
