import type { CopyOptions, CopyResult } from './files';

/** The drivers a pool can have (Qubes' names). */
export const PoolDriverName = { FileReflink: 'file-reflink', File: 'file', LvmThin: 'lvm_thin', LinuxKernel: 'linux-kernel' } as const;
export type PoolDriverName = (typeof PoolDriverName)[keyof typeof PoolDriverName];

/**
 * One volume as qubes.xml's `<volume-config>` holds it (Qubes R4 `qubes.storage.Volume`):
 * - `snap_on_start`: each run starts from a fresh snapshot of `source` (an AppVM's root is its
 *   template's root);
 * - `save_on_stop`: what a run wrote is kept (committed) when it stops; otherwise it is dropped
 *   (volatile), so a volume with neither is a new empty image each run;
 * - `rw`: the domain may write it;
 * - `revisions_to_keep`: how many earlier committed images stay for `revert`.
 */
export interface VolumeConfig {
  name: string;
  pool: string;
  vid: string;
  size: number;
  rw: boolean;
  snap_on_start: boolean;
  save_on_stop: boolean;
  /** The vid of the volume a `snap_on_start` volume is a snapshot of. */
  source: string | null;
  revisions_to_keep: number;
}

export interface Revision {
  /** As Qubes names it: an ISO timestamp ending in Z. */
  name: string;
  timestamp: string;
}

export interface ImportOptions extends CopyOptions {
  /**
   * The exact size of the data: more is VOLUME_TOO_BIG, less VOLUME_IMPORT_SHORT
   * (`admin.vm.volume.ImportWithSize`; the volume grows to it). Without it the data may be up to
   * the volume's size (`admin.vm.volume.Import`).
   */
  size?: number | undefined;
  /**
   * The chunks are the import's to keep (fresh buffers, as a file or socket stream gives): each
   * that is the whole of its memory is moved to the writing thread, not copied.
   */
  handOver?: boolean | undefined;
}

export interface Volume {
  readonly config: VolumeConfig;
  /** Makes the volume's images (a persistent volume gets an empty sparse image). */
  create(): Promise<void>;
  /** Removes every image of the volume, revisions included. */
  remove(): Promise<void>;
  /** VOLUME_DATA_MISSING if an image a run needs is not there. */
  verify(): Promise<void>;
  /** Before a run: take the snapshot, reset the volatile image, open a dirty copy. */
  start(): Promise<void>;
  /** After a run: commit (save_on_stop) or drop what it wrote. */
  stop(): Promise<void>;
  /**
   * What the domain gets once `start()` has run: a file or a block device, read-only where the
   * pool's layering makes it so even if the volume is rw (the `file` pool's PV root); null for
   * a volume that is a layer of another and gives the domain no disk of its own.
   */
  readonly blockDevice: BlockDevice | null;
  /** A run is under way (or ended without a stop): its writes are not committed yet. */
  isDirty(): Promise<boolean>;
  /** A snapshot older than its source (the template changed since the VM started). */
  isOutdated(): Promise<boolean>;
  /** Bytes in use, as the VM sees it (host usage may be lower: shared extents). */
  usage(): Promise<number>;
  /** Grows the volume; VOLUME_SHRINK_REFUSED for a smaller size. */
  resize(size: number): Promise<void>;
  /** Oldest first. */
  revisions(): Promise<Revision[]>;
  /** Back to `revision` (default: the newest); the current image becomes a revision itself. */
  revert(revision?: string): Promise<void>;
  /** Replaces the volume's data with `data`, whole or not at all. */
  importData(data: AsyncIterable<Uint8Array>, options?: ImportOptions): Promise<{ bytes: number }>;
  /**
   * Replaces the volume's data with a copy of the file at `file` (a reflink where it can be), by
   * the same rules as importData: more than the limit is VOLUME_TOO_BIG, less than a declared size
   * VOLUME_IMPORT_SHORT.
   */
  importFile(file: string, options?: ImportOptions): Promise<{ bytes: number }>;
  /**
   * A directory on the volume's filesystem where a file to import from may be made (a copy from
   * it is then a reflink where the filesystem has them); null where the volume is not a file.
   */
  scratchDir(): string | null;
  /** Replaces the volume's data with a copy of `source`'s (a reflink where it can be). */
  importVolume(source: Volume, options?: CopyOptions): Promise<CopyResult>;
  /** The committed image to read for an export or a clone. */
  exportPath(): Promise<string>;
}

export interface BlockDevice {
  path: string;
  type: 'file' | 'block';
  readOnly?: boolean;
}

/** The VM a volume belongs to, for a pool whose layering depends on it (the `file` pool). */
export interface VolumeContext {
  /** pv, pvh or hvm; null for dom0. */
  virtMode: string | null;
  /** The config of the VM's volumes, this one included. */
  volumes: readonly VolumeConfig[];
}

export interface PoolUsage {
  /** Bytes the pool can hold. */
  size: number;
  /** Bytes in use. */
  usage: number;
}

export interface Pool {
  readonly name: string;
  readonly driver: PoolDriverName;
  /** The pool as qubes.xml's `<pool>` element keeps it (name, driver and the driver's options). */
  readonly config: Readonly<Record<string, string>>;
  readonly revisionsToKeep: number;
  /** Checks the options against the host and prepares what the pool needs; POOL_INVALID if it cannot. */
  setup(): Promise<void>;
  usage(): Promise<PoolUsage>;
  /** The id a new volume of `vm` gets in this pool (file pools: `appvms/<vm>/<volume>`). */
  vidFor(vm: { name: string; dirPrefix: string; kernel: string | null }, volume: string): string;
  /**
   * The volume `config` describes; `source` is the volume a snap_on_start volume copies, and
   * `vm` the VM it runs in where the pool needs it (without it: a PV VM's volume on its own).
   */
  volume(config: VolumeConfig, source?: Volume, vm?: VolumeContext): Volume;
}
