import { XMLBuilder } from 'fast-xml-parser';
import { QubesError } from '@qubes-bus/contracts';

/**
 * libvirt domain XML, for Xen (libxl, as Qubes runs it: pv, pvh, hvm) and for QEMU/KVM.
 * Built as data and written by fast-xml-parser's builder, which escapes every value: a
 * `kernelopts` holding `</cmdline>` stays text (Qubes QSB-066). Never string templates.
 */
export const DomainFlavor = { Xen: 'xen', Kvm: 'kvm', Qemu: 'qemu' } as const;
export type DomainFlavor = (typeof DomainFlavor)[keyof typeof DomainFlavor];

/** `QUBES_DOMAIN_TYPE`, checked: `kvm`, `qemu` or `xen`; undefined when not set. */
export function parseDomainFlavor(configured: string | undefined): DomainFlavor | undefined {
  if (configured === undefined || configured === '') return undefined;
  if ((Object.values(DomainFlavor) as string[]).includes(configured)) return configured as DomainFlavor;
  throw new QubesError('BAD_REQUEST', `QUBES_DOMAIN_TYPE must be kvm, qemu or xen, not ${JSON.stringify(configured)}`);
}

export interface DiskSpec {
  /** A file or block device in dom0. */
  readonly path: string;
  readonly type: 'file' | 'block';
  /** Qubes' frontend names: xvda (root), xvdb (private), xvdc (volatile), xvdd (modules). */
  readonly frontend: string;
  readonly readOnly: boolean;
}

export interface DomainSpec {
  readonly name: string;
  /** The UUID kept in qubes.xml; absent when defining a new VM (libvirt chooses one). */
  readonly uuid?: string | undefined;
  readonly memoryMiB: number;
  /** Most memory it may balloon to; at least memoryMiB. */
  readonly maxmemMiB: number;
  readonly vcpus: number;
  readonly virtMode: 'pv' | 'pvh' | 'hvm';
  /** Booted by the hypervisor from dom0 files, or null to boot what is inside the VM. */
  readonly kernel: { readonly path: string; readonly initrd?: string | undefined; readonly cmdline: string } | null;
  readonly disks: readonly DiskSpec[];
  /** A serial console log for debugging. */
  readonly debug: boolean;
}

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  textNodeName: '#text',
  format: true,
  indentBy: '  ',
  suppressEmptyNode: true,
  processEntities: true,
});

type Node = Record<string, unknown>;

function os(spec: DomainSpec, flavor: DomainFlavor): Node {
  const kernel = spec.kernel === null ? {} : { kernel: spec.kernel.path, ...(spec.kernel.initrd ? { initrd: spec.kernel.initrd } : {}), cmdline: spec.kernel.cmdline };
  if (flavor !== DomainFlavor.Xen) {
    // QEMU/KVM always emulate a PC; pv and pvh mean a directly booted kernel there.
    return { type: { '@_arch': 'x86_64', '@_machine': 'pc', '#text': 'hvm' }, ...kernel, ...(spec.kernel === null ? { boot: { '@_dev': 'hd' } } : {}) };
  }
  switch (spec.virtMode) {
    case 'pv':
      return { type: { '@_arch': 'x86_64', '@_machine': 'xenpv', '#text': 'linux' }, ...kernel };
    case 'pvh':
      return { type: { '@_arch': 'x86_64', '@_machine': 'xenpvh', '#text': 'xenpvh' }, ...kernel };
    case 'hvm':
      return {
        type: { '@_arch': 'x86_64', '@_machine': 'xenfv', '#text': 'hvm' },
        loader: '/usr/lib/xen/boot/hvmloader',
        ...kernel,
        ...(spec.kernel === null ? { boot: { '@_dev': 'hd' } } : {}),
      };
  }
}

/**
 * The domain's name of a disk with Qubes' `frontend` (xvdb): the same on Xen; QEMU has no xen
 * bus, so the same letters on virtio (vdb) for the disks a VM boots with, and on the virtio-scsi
 * controller (sdi) for those attached while it runs.
 */
export function diskTarget(frontend: string, flavor: DomainFlavor, hotplug = false): { dev: string; bus: 'xen' | 'scsi' | 'virtio' } {
  if (flavor === DomainFlavor.Xen) return { dev: frontend, bus: 'xen' };
  return hotplug ? { dev: frontend.replace(/^xvd/, 'sd'), bus: 'scsi' } : { dev: frontend.replace(/^xvd/, 'vd'), bus: 'virtio' };
}

function disk(d: DiskSpec, flavor: DomainFlavor, hotplug = false): Node {
  const xen = flavor === DomainFlavor.Xen;
  const { dev, bus } = diskTarget(d.frontend, flavor, hotplug);
  const target = { '@_dev': dev, '@_bus': bus };
  return {
    '@_type': d.type,
    '@_device': 'disk',
    driver: xen ? { '@_name': 'phy' } : { '@_name': 'qemu', '@_type': 'raw' },
    source: d.type === 'file' ? { '@_file': d.path } : { '@_dev': d.path },
    target,
    ...(d.readOnly ? { readonly: '' } : {}),
  };
}

/** The `<disk>` of a block device attached to a running domain (virsh attach-device). */
export function buildHotplugDiskXml(d: DiskSpec, flavor: DomainFlavor): string {
  return selfClose(builder.build({ disk: disk(d, flavor, true) }) as string);
}

/** `<readonly/>` and empty `<acpi/>` are elements without content; the builder writes '' as <x></x>. */
function selfClose(xml: string): string {
  return xml.replace(/<(readonly|acpi|apic|pae)><\/\1>/g, '<$1/>');
}

export function buildDomainXml(spec: DomainSpec, flavor: DomainFlavor): string {
  const xen = flavor === DomainFlavor.Xen;
  const domain: Node = {
    '@_type': flavor,
    name: spec.name,
    ...(spec.uuid === undefined ? {} : { uuid: spec.uuid }),
    memory: { '@_unit': 'MiB', '#text': String(Math.max(spec.maxmemMiB, spec.memoryMiB)) },
    currentMemory: { '@_unit': 'MiB', '#text': String(spec.memoryMiB) },
    vcpu: { '@_placement': 'static', '#text': String(spec.vcpus) },
    os: os(spec, flavor),
    features: spec.virtMode === 'hvm' || !xen ? { acpi: '', apic: '', pae: '' } : {},
    clock: { '@_offset': xen && spec.virtMode === 'hvm' ? 'variable' : 'utc' },
    on_poweroff: 'destroy',
    on_reboot: 'destroy',
    on_crash: 'destroy',
    devices: {
      ...(xen ? {} : { emulator: '/usr/bin/qemu-system-x86_64' }),
      disk: spec.disks.map((d) => disk(d, flavor)),
      // For disks hot-plugged later (devices issue): QEMU's virtio-blk cannot unplug without a guest.
      ...(xen ? {} : { controller: { '@_type': 'scsi', '@_index': '0', '@_model': 'virtio-scsi' } }),
      console: { '@_type': 'pty', target: { '@_type': xen ? 'xen' : 'serial', '@_port': '0' } },
      ...(xen ? {} : { memballoon: { '@_model': 'none' } }),
    },
  };
  if (spec.debug && !xen) (domain['devices'] as Node)['serial'] = { '@_type': 'pty', target: { '@_port': '0' } };
  return selfClose(builder.build({ domain }) as string);
}
