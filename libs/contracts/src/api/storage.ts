import * as z from 'zod/mini';
import { defineApi, defineEvent, defineInternal, DestScope } from '../descriptors';
import type { ErrorCode } from '../errors';
import { ServiceName } from '../subjects';
import { powerStateSchema, vmClassSchema } from './vm';

/**
 * Pools and volumes (qubes/api/admin.py vm_volume_* and pool_*, qubes/storage/__init__.py).
 * The storage service serves them; the volume config and the pools live in qubes.xml, which
 * only the registry writes, so it keeps them for the storage service through internal calls.
 */

export const poolNameSchema = z.string().check(z.regex(/^[A-Za-z0-9_.-]{1,64}$/, 'is not a pool name'));
export const volumeNameSchema = z.string().check(z.regex(/^[A-Za-z0-9_-]{1,32}$/, 'is not a volume name'));
/** A pool or volume as qubes.xml keeps it: its attributes, as text (`True`/`False`, sizes in bytes). */
export const storageAttrsSchema = z.record(z.string(), z.string());
export type StorageAttrs = z.infer<typeof storageAttrsSchema>;

const sizeSchema = z.int().check(z.nonnegative());

export const volumeInfoSchema = z.object({
  pool: z.string(),
  vid: z.string(),
  size: z.number(),
  /** Bytes in use as the VM sees it. */
  usage: z.number(),
  rw: z.boolean(),
  snap_on_start: z.boolean(),
  save_on_stop: z.boolean(),
  source: z.nullable(z.string()),
  revisions_to_keep: z.number(),
  /** A snapshot older than its source: the template changed since the VM started. */
  is_outdated: z.boolean(),
});
export type VolumeInfo = z.infer<typeof volumeInfoSchema>;

/**
 * Where to send an import's data (libs/bus `sendBytes`): the subject, and for a sender on the
 * receiver's host a local socket and the token to write on it first (null when none is offered).
 */
export const byteStreamSchema = z.object({
  stream: z.string(),
  chunk_bytes: z.number(),
  window: z.number(),
  socket: z.nullable(z.string()),
  token: z.nullable(z.string()),
  /** A file beside the volume a sender on this host may write the whole data into instead. */
  file: z.nullable(z.string()),
});

const VOLUME_ERRORS: readonly ErrorCode[] = ['VM_NOT_FOUND', 'VOLUME_NOT_FOUND', 'POOL_NOT_FOUND'];
const volumeCall = { service: ServiceName.Storage, scope: DestScope.Vm, arg: volumeNameSchema } as const;

export const AdminVmVolumeList = defineApi({
  service: ServiceName.Storage,
  scope: DestScope.Vm,
  method: 'admin.vm.volume.List',
  summary: "The names of a VM's volumes",
  reply: z.array(z.string()),
  errors: ['VM_NOT_FOUND'],
});

export const AdminVmVolumeInfo = defineApi({
  ...volumeCall,
  method: 'admin.vm.volume.Info',
  summary: 'A volume: pool, vid, size, usage, rw, snap_on_start, save_on_stop, source, revisions_to_keep, is_outdated',
  reply: volumeInfoSchema,
  errors: VOLUME_ERRORS,
});

export const AdminVmVolumeListSnapshots = defineApi({
  ...volumeCall,
  method: 'admin.vm.volume.ListSnapshots',
  summary: "A volume's revisions, oldest first",
  reply: z.array(z.string()),
  errors: VOLUME_ERRORS,
});

export const AdminVmVolumeRevert = defineApi({
  ...volumeCall,
  method: 'admin.vm.volume.Revert',
  summary: 'Put a volume back to a revision (default: the newest); the VM must be halted',
  payload: z.optional(z.object({ revision: z.optional(z.string().check(z.regex(/^[0-9T:.-]{1,40}Z$/, 'is not a revision name'))) })),
  reply: z.null(),
  errors: [...VOLUME_ERRORS, 'VM_RUNNING', 'REVISION_NOT_FOUND', 'VOLUME_NOT_PERSISTENT', 'STORAGE_FULL'],
});

export const AdminVmVolumeResize = defineApi({
  ...volumeCall,
  method: 'admin.vm.volume.Resize',
  summary: 'Grow a volume to `size` bytes (never shrink)',
  payload: z.object({ size: sizeSchema }),
  reply: z.null(),
  errors: [...VOLUME_ERRORS, 'VOLUME_SHRINK_REFUSED', 'VOLUME_READ_ONLY', 'STORAGE_FULL'],
});

export const AdminVmVolumeSetRevisionsToKeep = defineApi({
  ...volumeCall,
  method: 'admin.vm.volume.Set.revisions_to_keep',
  summary: 'How many earlier images of the volume to keep for revert',
  payload: z.object({ value: z.int().check(z.gte(0), z.lte(1000)) }),
  reply: z.null(),
  errors: VOLUME_ERRORS,
});

export const AdminVmVolumeSetRw = defineApi({
  ...volumeCall,
  method: 'admin.vm.volume.Set.rw',
  summary: 'Whether the VM may write the volume',
  payload: z.object({ value: z.boolean() }),
  reply: z.null(),
  errors: [...VOLUME_ERRORS, 'VM_RUNNING'],
});

export const AdminVmVolumeClear = defineApi({
  ...volumeCall,
  method: 'admin.vm.volume.Clear',
  summary: "Empty a volume (all zeros; the old data becomes a revision); the VM must be halted",
  reply: z.null(),
  errors: [...VOLUME_ERRORS, 'VM_RUNNING', 'VOLUME_NOT_PERSISTENT', 'STORAGE_FULL'],
});

const importErrors: readonly ErrorCode[] = [...VOLUME_ERRORS, 'VM_RUNNING', 'VOLUME_NOT_PERSISTENT', 'VOLUME_TOO_BIG', 'VOLUME_IMPORT_SHORT', 'STORAGE_FULL', 'TIMEOUT'];

export const AdminVmVolumeImport = defineApi({
  ...volumeCall,
  method: 'admin.vm.volume.Import',
  summary: "Replace a volume's data (at most its size); answers where to send it, and the end of the data is answered with the outcome",
  reply: byteStreamSchema,
  errors: importErrors,
});

export const AdminVmVolumeImportWithSize = defineApi({
  ...volumeCall,
  method: 'admin.vm.volume.ImportWithSize',
  summary: "Replace a volume's data with exactly `size` bytes (the volume takes that size)",
  payload: z.object({ size: sizeSchema }),
  reply: byteStreamSchema,
  errors: importErrors,
});

/** What the end of an import's data is answered with. */
export const importResultSchema = z.object({ bytes: z.number() });

export const AdminVmVolumeCloneFrom = defineApi({
  ...volumeCall,
  method: 'admin.vm.volume.CloneFrom',
  summary: 'Begin a clone of this volume: answers a token for CloneTo on the destination volume',
  reply: z.object({ token: z.string() }),
  errors: [...VOLUME_ERRORS, 'VOLUME_NOT_PERSISTENT', 'VOLUME_DATA_MISSING'],
});

export const AdminVmVolumeCloneTo = defineApi({
  ...volumeCall,
  method: 'admin.vm.volume.CloneTo',
  summary: "Replace this volume's data with a copy of the volume CloneFrom gave the token for (a reflink where it can be); progress as volume-progress events",
  payload: z.object({ token: z.string() }),
  reply: z.object({ bytes: z.number(), reflinked: z.boolean() }),
  errors: [...VOLUME_ERRORS, 'VM_RUNNING', 'VOLUME_NOT_PERSISTENT', 'VOLUME_DATA_MISSING', 'STORAGE_FULL', 'OPERATION_CANCELLED', 'BAD_REQUEST'],
});

export const AdminVmVolumeCloneCancel = defineApi({
  ...volumeCall,
  method: 'admin.vm.volume.CloneCancel',
  summary: "Stop a clone into this volume that is under way (a deviation: Qubes cancels by ending the call's qrexec connection)",
  reply: z.boolean(),
  errors: VOLUME_ERRORS,
});

// --- pools ---------------------------------------------------------------------------------------

const poolCall = { service: ServiceName.Storage, scope: DestScope.Dom0 } as const;

export const AdminPoolList = defineApi({
  ...poolCall,
  method: 'admin.pool.List',
  summary: 'The names of the storage pools',
  reply: z.array(z.string()),
  errors: [],
});

export const AdminPoolListDrivers = defineApi({
  ...poolCall,
  method: 'admin.pool.ListDrivers',
  summary: 'The pool drivers and the options each takes',
  reply: z.record(z.string(), z.array(z.string())),
  errors: [],
});

export const AdminPoolInfo = defineApi({
  ...poolCall,
  method: 'admin.pool.Info',
  summary: "A pool's options, with its size and usage in bytes",
  arg: poolNameSchema,
  reply: z.record(z.string(), z.string()),
  errors: ['POOL_NOT_FOUND'],
});

export const AdminPoolUsageDetails = defineApi({
  ...poolCall,
  method: 'admin.pool.UsageDetails',
  summary: "A pool's size and usage in bytes",
  arg: poolNameSchema,
  reply: z.object({ data_size: z.number(), data_usage: z.number() }),
  errors: ['POOL_NOT_FOUND', 'POOL_INVALID'],
});

export const AdminPoolAdd = defineApi({
  ...poolCall,
  method: 'admin.pool.Add',
  summary: 'Add a pool; arg: its driver; payload: its name and the driver options',
  arg: z.string(),
  payload: z.object({ name: poolNameSchema, options: z.record(z.string().check(z.regex(/^[a-z_]{1,32}$/, 'is not an option name')), z.string()) }),
  reply: z.null(),
  errors: ['POOL_EXISTS', 'POOL_DRIVER_UNKNOWN', 'POOL_INVALID'],
});

export const AdminPoolRemove = defineApi({
  ...poolCall,
  method: 'admin.pool.Remove',
  summary: 'Remove a pool that holds no volumes (its files stay)',
  arg: poolNameSchema,
  reply: z.null(),
  errors: ['POOL_NOT_FOUND', 'POOL_IN_USE'],
});

// --- events --------------------------------------------------------------------------------------

export const VolumeChanged = defineEvent({
  name: 'volume-changed',
  scope: 'vm',
  qualifier: 'volume name',
  summary: "A VM's volume was made, removed, grown, reverted, imported, cleared, cloned into, or reconfigured",
  fields: z.object({
    volume: z.string(),
    action: z.enum(['create', 'remove', 'resize', 'revert', 'import', 'clear', 'clone', 'set']),
    size: z.number(),
  }),
});

export const VolumeProgress = defineEvent({
  name: 'volume-progress',
  scope: 'vm',
  qualifier: 'volume name',
  summary: 'How far a clone into, or an import into, a volume has come',
  fields: z.object({ volume: z.string(), operation: z.enum(['clone', 'import']), done: z.number(), total: z.number() }),
});

export const PoolAdd = defineEvent({
  name: 'pool-add',
  scope: 'app',
  qualifier: 'pool name',
  summary: 'A storage pool was added',
  fields: z.object({ pool: z.string(), driver: z.string() }),
});

export const PoolDelete = defineEvent({
  name: 'pool-delete',
  scope: 'app',
  qualifier: 'pool name',
  summary: 'A storage pool was removed',
  fields: z.object({ pool: z.string() }),
});

// --- internal: the storage service and the registry ----------------------------------------------

/** What the storage service needs to know of a VM to place and run its volumes. */
export const vmStorageSchema = z.object({
  vm: z.string(),
  class: vmClassSchema,
  template: z.nullable(z.string()),
  power_state: powerStateSchema,
  /** The kernel property: the kernel volume comes from it, and there is none without one. */
  kernel: z.nullable(z.string()),
  /** pv, pvh or hvm: how the `file` pool layers a template-based root (the seed); null for dom0. */
  virt_mode: z.nullable(z.string()),
  volumes: z.array(storageAttrsSchema),
});
export type VmStorage = z.infer<typeof vmStorageSchema>;

export const RegistryVmStorage = defineInternal({
  service: ServiceName.VmRegistry,
  method: 'vm-storage',
  summary: "A VM's class, template, power state, kernel and volume config, for the storage service",
  payload: z.object({ vm: z.string() }),
  reply: vmStorageSchema,
  errors: ['VM_NOT_FOUND'],
});

export const RegistrySetVolumes = defineInternal({
  service: ServiceName.VmRegistry,
  method: 'vm-volumes-set',
  summary: "Replace a VM's volume config in qubes.xml (the storage service's call)",
  payload: z.object({ vm: z.string(), volumes: z.array(storageAttrsSchema) }),
  reply: z.null(),
  errors: ['VM_NOT_FOUND', 'STORE_WRITE_FAILED'],
});

export const poolsStateSchema = z.object({
  pools: z.array(storageAttrsSchema),
  /** default_pool, default_pool_root, default_pool_private, default_pool_volatile, default_pool_kernel. */
  defaults: z.record(z.string(), z.nullable(z.string())),
});

export const RegistryPools = defineInternal({
  service: ServiceName.VmRegistry,
  method: 'pools',
  summary: 'The pools in qubes.xml and the global default_pool* properties',
  reply: poolsStateSchema,
  errors: [],
});

export const RegistrySetPools = defineInternal({
  service: ServiceName.VmRegistry,
  method: 'pools-set',
  summary: 'Replace the pools in qubes.xml (the storage service\'s call)',
  payload: z.object({ pools: z.array(storageAttrsSchema) }),
  reply: z.null(),
  errors: ['STORE_WRITE_FAILED'],
});

export const RegistryPoolUsers = defineInternal({
  service: ServiceName.VmRegistry,
  method: 'pool-users',
  summary: 'What keeps a pool from being removed: the VMs with volumes in it, the global properties naming it',
  payload: z.object({ pool: poolNameSchema }),
  reply: z.object({ vms: z.array(z.string()), properties: z.array(z.string()) }),
  errors: [],
});

/**
 * A running VM's volume grew: the registry, which owns the domains, tells its domain (libvirt
 * blockresize), so the guest sees the new size without a restart. `told` is false when the VM
 * does not run (it sees the size at its next start).
 */
export const RegistryResizeDisk = defineInternal({
  service: ServiceName.VmRegistry,
  method: 'vm-disk-resize',
  summary: "Tell a running VM's domain that one of its disks grew",
  payload: z.object({
    vm: z.string(),
    /** Qubes' frontend name of the disk: xvda (root), xvdb (private), ... */
    frontend: z.string().check(z.regex(/^xvd[a-z]{1,2}$/, 'is not a frontend name (xvdX)')),
    size: z.int().check(z.positive()),
  }),
  reply: z.object({ told: z.boolean() }),
  errors: ['VM_NOT_FOUND', 'VMM_ERROR', 'VMM_OFFLINE', 'VMM_UNREACHABLE', 'DOMAIN_MISSING'],
});

/** The registry asks the storage service for a new VM's volumes, and stores the config it answers. */
export const StorageCreateVolumes = defineInternal({
  service: ServiceName.Storage,
  method: 'vm-create',
  summary: "Make a new VM's volumes, as its class has them, in its pool (or the default pools); answers their config",
  payload: z.object({ vm: vmStorageSchema, template: z.nullable(vmStorageSchema), pool: z.optional(poolNameSchema) }),
  reply: z.object({ volumes: z.array(storageAttrsSchema) }),
  errors: ['POOL_NOT_FOUND', 'POOL_INVALID', 'STORAGE_FULL', 'VOLUME_DATA_MISSING'],
});

export const StorageRemoveVolumes = defineInternal({
  service: ServiceName.Storage,
  method: 'vm-remove',
  summary: "Remove a removed VM's volumes (every image and revision)",
  payload: z.object({ vm: vmStorageSchema }),
  reply: z.null(),
  errors: [],
});

/**
 * A volume's committed data, sent to a stream the caller opened (libs/bus `receiveBytes`): what a
 * backup reads. Answered once all of it has been taken, with its size.
 */
export const StorageExportVolume = defineInternal({
  service: ServiceName.Storage,
  method: 'volume-export',
  summary: "Send a volume's committed data to the caller's stream (for backups)",
  payload: z.object({
    vm: z.string(),
    volume: volumeNameSchema,
    stream: z.string(),
    chunk_bytes: z.number(),
    window: z.number(),
    socket: z.optional(z.nullable(z.string())),
    token: z.optional(z.nullable(z.string())),
  }),
  reply: z.object({ bytes: z.number() }),
  errors: ['VM_NOT_FOUND', 'VOLUME_NOT_FOUND', 'VOLUME_NOT_PERSISTENT', 'VOLUME_DATA_MISSING', 'TIMEOUT'],
});
