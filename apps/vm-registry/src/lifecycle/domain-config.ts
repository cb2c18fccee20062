import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { QUBESDB_BUCKET, QubesError, VmClass, type DiskInfo } from '@qubes-bus/contracts';
import { DomainFlavor, type DomainSpec } from '@qubes-bus/hypervisor';
import type { QubesApp } from '@qubes-bus/qubes-model';

/**
 * What a VM's properties make of its libvirt domain and of its QubesDB, as Qubes does
 * (templates/libvirt/xen.xml, qubes/vm/qubesvm.py create_qdb_entries).
 */

/** Qubes' kernel command line before the VM's own kernelopts. */
const BASE_CMDLINE = 'root=/dev/mapper/dmroot ro nomodeset rd_NO_PLYMOUTH rd.plymouth.disable=1';

/** Qubes' DNS addresses, answered by each netvm (qubes/vm/mix/net.py). */
export const DNS = ['10.139.1.1', '10.139.1.2'] as const;

/** Where the kernels VMs boot live: a directory per version (Qubes: /var/lib/qubes/vm-kernels). */
export function kernelDir(dataDir: string, version: string): string {
  return path.join(dataDir, 'vm-kernels', version);
}

export interface DomainConfigOptions {
  flavor: DomainFlavor;
  dataDir: string;
  disks: readonly DiskInfo[];
  /** Without the kernel: a domain defined at creation, to be redefined before it starts. */
  definitionOnly?: boolean;
}

export function domainSpec(app: QubesApp, vm: string, options: DomainConfigOptions): DomainSpec {
  const value = <T>(property: string): T => app.value(vm, property) as T;
  const memory = value<number>('memory');
  const kernel = value<string | null>('kernel');
  let boot: DomainSpec['kernel'] = null;
  if (kernel !== null && options.definitionOnly !== true) {
    const dir = kernelDir(options.dataDir, kernel);
    const vmlinuz = path.join(dir, 'vmlinuz');
    if (!existsSync(vmlinuz)) {
      throw new QubesError('VM_START_FAILED', `${vm} boots kernel ${kernel}, which is not installed: ${vmlinuz} is missing`, { details: { vm, kernel } });
    }
    const initramfs = path.join(dir, 'initramfs');
    const console = options.flavor === DomainFlavor.Xen ? 'console=hvc0 clocksource=tsc xen_scrub_pages=0' : 'console=ttyS0';
    const kernelopts = value<string>('kernelopts');
    boot = { path: vmlinuz, initrd: existsSync(initramfs) ? initramfs : undefined, cmdline: `${BASE_CMDLINE} ${console}${kernelopts === '' ? '' : ` ${kernelopts}`}` };
  }
  const maxmem = value<number>('maxmem');
  return {
    name: vm,
    uuid: value<string>('uuid'),
    memoryMiB: memory,
    // Memory balancing (qmemman) is Xen's; elsewhere a VM has what it starts with.
    maxmemMiB: options.flavor === DomainFlavor.Xen && maxmem > 0 ? Math.max(maxmem, memory) : memory,
    vcpus: value<number>('vcpus'),
    virtMode: value<'pv' | 'pvh' | 'hvm'>('virt_mode'),
    kernel: boot,
    disks: options.disks.map((d) => ({ path: d.path, type: d.type, frontend: d.frontend, readOnly: d.read_only })),
    debug: value<boolean>('debug'),
  };
}

/** A Qubes feature's truth: an empty value is false (qubes/features.py). */
const truthy = (value: string): boolean => value !== '';

/**
 * The VM type of Qubes 3 that agents still read to choose their services (qubes/ext/
 * r3compatibility.py): a netvm is NetVM, or ProxyVM when it has a netvm of its own.
 */
function r3VmType(app: QubesApp, vm: string): string {
  const klass = app.domain(vm).klass;
  if (klass === VmClass.TemplateVM) return 'TemplateVM';
  if (app.value(vm, 'provides_network') === true) return app.value(vm, 'netvm') === null ? 'NetVM' : 'ProxyVM';
  if (klass === VmClass.DispVM) return 'DisposableVM';
  return 'AppVM';
}

/** The keys a VM's QubesDB starts with (qubes/vm/qubesvm.py create_qdb_entries). */
export function qubesDbEntries(app: QubesApp, vm: string, options: { flavor: DomainFlavor }): Map<string, string> {
  const d = app.domain(vm);
  const value = <T>(property: string): T => app.value(vm, property) as T;
  const has = (property: string): boolean => app.propertyNames(vm).includes(property);
  const updateable = value<boolean>('updateable');
  const entries = new Map<string, string>([
    ['/name', vm],
    ['/type', d.klass],
    ['/qubes-vm-type', r3VmType(app, vm)],
    ['/default-user', value<string>('default_user')],
    ['/qubes-vm-updateable', updateable ? 'True' : 'False'],
    ['/qubes-vm-persistence', d.klass === VmClass.DispVM ? 'none' : updateable ? 'full' : 'rw-only'],
    ['/qubes-debug-mode', value<boolean>('debug') ? '1' : '0'],
    ['/qubes-base-template', has('template') ? (value<string | null>('template') ?? '') : ''],
    ['/qubes-timezone', Intl.DateTimeFormat().resolvedOptions().timeZone],
    ['/keyboard-layout', value<string>('keyboard_layout')],
    ['/qubes-block-devices', ''],
    ['/qubes-usb-devices', ''],
    // Entropy for the guest's first random numbers, new for every run.
    ['/qubes-random-seed', randomBytes(64).toString('base64')],
  ]);
  const ip = value<string | null>('ip');
  if (value<boolean>('provides_network') && ip !== null) {
    // What this VM gives its clients: it is their gateway.
    entries.set('/qubes-netvm-network', ip);
    entries.set('/qubes-netvm-gateway', ip);
    entries.set('/qubes-netvm-netmask', '255.255.255.255');
    entries.set('/qubes-netvm-primary-dns', DNS[0]);
    entries.set('/qubes-netvm-secondary-dns', DNS[1]);
  }
  const netvm = value<string | null>('netvm');
  if (netvm !== null && ip !== null) {
    entries.set('/qubes-ip', ip);
    entries.set('/qubes-netmask', '255.255.255.255');
    entries.set('/qubes-gateway', app.value(netvm, 'ip') as string);
    entries.set('/qubes-primary-dns', DNS[0]);
    entries.set('/qubes-secondary-dns', DNS[1]);
    entries.set('/qubes-mac', value<string>('mac'));
  }
  // Memory balancing (qmemman) is Xen's: the VM reports its memory for it when it may grow.
  if (options.flavor === DomainFlavor.Xen && value<number>('maxmem') > 0) entries.set('/qubes-service/meminfo-writer', '1');
  for (const [feature, featureValue] of d.features) {
    const key = `/qubes-service/${feature.slice('service.'.length)}`;
    // A service name too long for a QubesDB path could never be read by the VM either.
    if (feature.startsWith('service.') && feature.length > 'service.'.length && key.length < QUBESDB_BUCKET.maxPathLength) {
      entries.set(key, truthy(featureValue) ? '1' : '0');
    }
  }
  return entries;
}
