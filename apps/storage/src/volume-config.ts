import { QubesError, VmClass, type StorageAttrs, type VmStorage } from '@qubes-bus/contracts';
import type { VolumeConfig } from './pool/types';

/**
 * Volume config as qubes.xml holds it (attributes, `True`/`False`) and as the pools use it,
 * and the volumes each VM class gets (qubes/vm/appvm.py, templatevm.py, standalonevm.py,
 * dispvm.py `default_volume_config`).
 */

const GiB = 1024 ** 3;
/** Qubes' defaults (qubes/config.py): root_img_size, private_img_size. */
export const ROOT_IMG_SIZE = 10 * GiB;
export const PRIVATE_IMG_SIZE = 2 * GiB;

/** The order Qubes gives the volumes, and the frontend each gets in the domain. */
export const VOLUME_FRONTENDS: Readonly<Record<string, string>> = { root: 'xvda', private: 'xvdb', volatile: 'xvdc', kernel: 'xvdd' };

/** The frontend of each of a VM's volumes: Qubes' four, then xvde, xvdf, ... for any other, in order. */
export function frontends(names: readonly string[]): Map<string, string> {
  let spare = 'e'.charCodeAt(0);
  return new Map(names.map((name) => [name, VOLUME_FRONTENDS[name] ?? `xvd${String.fromCharCode(spare++)}`]));
}

/** A volume of a class before it has a pool and a vid. */
interface VolumeTemplate {
  name: string;
  size: number | 'template';
  rw: boolean;
  snap_on_start: boolean;
  save_on_stop: boolean;
}

const ROOT_OWN: VolumeTemplate = { name: 'root', size: ROOT_IMG_SIZE, rw: true, snap_on_start: false, save_on_stop: true };
const ROOT_SNAPSHOT: VolumeTemplate = { name: 'root', size: 'template', rw: true, snap_on_start: true, save_on_stop: false };
const PRIVATE_OWN: VolumeTemplate = { name: 'private', size: PRIVATE_IMG_SIZE, rw: true, snap_on_start: false, save_on_stop: true };
const PRIVATE_SNAPSHOT: VolumeTemplate = { name: 'private', size: 'template', rw: true, snap_on_start: true, save_on_stop: false };
const VOLATILE: VolumeTemplate = { name: 'volatile', size: ROOT_IMG_SIZE, rw: true, snap_on_start: false, save_on_stop: false };
const KERNEL: VolumeTemplate = { name: 'kernel', size: 0, rw: false, snap_on_start: false, save_on_stop: false };

/**
 * The seed's rule, kept: a class that has no image of a kind says so here (no entry), and every
 * operation passes over it. dom0 has no volumes; a template-based VM's root is a fresh snapshot
 * of its template's at each start; a disposable VM's private is one of its AppVM's.
 */
export const CLASS_VOLUMES: Readonly<Record<VmClass, readonly VolumeTemplate[]>> = {
  [VmClass.AdminVM]: [],
  [VmClass.TemplateVM]: [ROOT_OWN, PRIVATE_OWN, VOLATILE, KERNEL],
  [VmClass.StandaloneVM]: [ROOT_OWN, PRIVATE_OWN, VOLATILE, KERNEL],
  [VmClass.AppVM]: [ROOT_SNAPSHOT, PRIVATE_OWN, VOLATILE, KERNEL],
  [VmClass.DispVM]: [ROOT_SNAPSHOT, PRIVATE_SNAPSHOT, VOLATILE, KERNEL],
};

/** Where a VM's images go under a file pool (Qubes' dir_path_prefix). */
export function dirPrefix(klass: VmClass): string {
  return klass === VmClass.TemplateVM ? 'vm-templates' : 'appvms';
}

export interface PlannedVolume {
  template: VolumeTemplate;
  pool: string;
  /** For a snapshot: the volume (of the template) it is taken from. */
  source: VolumeConfig | null;
}

export interface PoolDefaults {
  /** The pool the user asked for (qvm-create --pool). */
  requested?: string | undefined;
  /** default_pool_root, default_pool_private, ... and default_pool. */
  defaults: Readonly<Record<string, string | null>>;
}

/**
 * The volumes a new VM gets and the pool of each: a snapshot lives in its source's pool (it is a
 * reflink or a device-mapper snapshot of it); the kernel in default_pool_kernel, and only for a VM
 * with a kernel; the others in the pool asked for, else default_pool_<volume>, else default_pool.
 */
export function planVolumes(vm: VmStorage, template: VmStorage | null, pools: PoolDefaults): PlannedVolume[] {
  const templateVolumes = new Map((template?.volumes ?? []).map((attrs) => [attrs['name'], fromAttrs(attrs)]));
  const planned: PlannedVolume[] = [];
  for (const volume of CLASS_VOLUMES[vm.class]) {
    if (volume.name === 'kernel') {
      if (vm.kernel === null) continue; // no kernel: the domain boots from its own root
      const pool = pools.defaults['default_pool_kernel'] ?? null;
      if (pool !== null) planned.push({ template: volume, pool, source: null });
      continue;
    }
    if (volume.snap_on_start) {
      const source = originOf(templateVolumes.get(volume.name) ?? null, template);
      if (source === null) {
        throw new QubesError('VOLUME_DATA_MISSING', `${vm.vm}'s ${volume.name} volume is a snapshot of its template's, and ${template?.vm ?? 'it has no template'} has none`, {
          details: { vm: vm.vm, volume: volume.name, template: template?.vm ?? null },
        });
      }
      planned.push({ template: volume, pool: source.pool, source });
      continue;
    }
    const pool = pools.requested ?? pools.defaults[`default_pool_${volume.name}`] ?? pools.defaults['default_pool'] ?? null;
    if (pool === null) throw new QubesError('POOL_NOT_FOUND', `there is no pool for ${vm.vm}'s ${volume.name} volume: set default_pool`, { details: { volume: volume.name } });
    planned.push({ template: volume, pool, source: null });
  }
  return planned;
}

/**
 * The persistent volume a snapshot starts from: the template's own, or, where the template's is
 * a snapshot itself (a disposable VM on an AppVM), the one that is taken from (its `source`).
 */
function originOf(volume: VolumeConfig | null, _template: VmStorage | null): VolumeConfig | null {
  if (volume === null) return null;
  if (!volume.snap_on_start) return volume;
  return volume.source === null ? null : { ...volume, vid: volume.source, snap_on_start: false, save_on_stop: true, source: null };
}

const TRUE = 'True';
const FALSE = 'False';

function bool(attrs: StorageAttrs, key: string, fallback: boolean): boolean {
  const value = attrs[key];
  if (value === undefined) return fallback;
  return ['true', 'yes', '1', 'on'].includes(value.toLowerCase());
}

function count(attrs: StorageAttrs, key: string, fallback: number): number {
  const value = Number(attrs[key]);
  return attrs[key] !== undefined && Number.isSafeInteger(value) && value >= 0 ? value : fallback;
}

/** A `<volume>` element's attributes as a VolumeConfig; attributes this code does not know stay in `extra`. */
export function fromAttrs(attrs: StorageAttrs): VolumeConfig & { extra: StorageAttrs } {
  const { name, pool, vid, size, rw, snap_on_start, save_on_stop, source, revisions_to_keep, ...extra } = attrs;
  return {
    name: name ?? '',
    pool: pool ?? '',
    vid: vid ?? '',
    size: count(attrs, 'size', 0),
    rw: bool(attrs, 'rw', false),
    snap_on_start: bool(attrs, 'snap_on_start', false),
    save_on_stop: bool(attrs, 'save_on_stop', false),
    source: source === undefined || source === '' ? null : source,
    revisions_to_keep: count(attrs, 'revisions_to_keep', 1),
    extra,
  };
}

export function toAttrs(config: VolumeConfig & { extra?: StorageAttrs }): StorageAttrs {
  return {
    ...(config.extra ?? {}),
    name: config.name,
    pool: config.pool,
    vid: config.vid,
    size: String(config.size),
    rw: config.rw ? TRUE : FALSE,
    snap_on_start: config.snap_on_start ? TRUE : FALSE,
    save_on_stop: config.save_on_stop ? TRUE : FALSE,
    ...(config.source === null ? {} : { source: config.source }),
    revisions_to_keep: String(config.revisions_to_keep),
  };
}
