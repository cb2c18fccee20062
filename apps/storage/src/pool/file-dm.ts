import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { QubesError } from '@qubes-bus/contracts';
import { removeDurably, renameDurably } from '@qubes-bus/durable';
import { ExecRunner, type CommandRunner } from './command-runner';
import { checkOptions, DirPool, poolInvalid } from './dir-pool';
import { copyImage, createSparse, diskUsage, exists, growFile, removeEmptyDir, replaceFile, type CopyOptions, type CopyResult } from './files';
import { checkResize, copyFrom, requirePersistent, revisionToRevert, writeImportFile } from './volume-rules';
import { PoolDriverName, type BlockDevice, type ImportOptions, type Pool, type Revision, type Volume, type VolumeConfig, type VolumeContext } from './types';

/** dm-snapshot's chunk, in 512-byte sectors (Qubes' block-snapshot script: 256, 128 KiB). */
const CHUNK_SECTORS = 256;
const SECTOR = 512;
/**
 * A persistent snapshot store nothing was written to: the header dm-snap-persistent writes
 * ("SnAp", valid, version 1, the chunk size) and a zeroed first metadata chunk.
 */
const EMPTY_COW = Buffer.alloc(2 * CHUNK_SECTORS * SECTOR);
EMPTY_COW.write('SnAp', 0, 'latin1');
EMPTY_COW.writeUInt32LE(1, 4);
EMPTY_COW.writeUInt32LE(1, 8);
EMPTY_COW.writeUInt32LE(CHUNK_SECTORS, 12);

/**
 * `file` (the seed era's storage, kept in Qubes R4 as the `file` driver): sparse image files, with
 * device-mapper snapshots over loop devices for the copy-on-write layers. Files, as Qubes names
 * them under dir_path:
 *
 *   <vid>.img          the volume's data (a snapshot volume reads its source's)
 *   <vid>-cow.img      the copy-on-write store of its snapshot layer
 *   <vid>-cow.img.old  the store of the run before: the one revision this driver keeps
 *
 * The layers, with device names as Qubes' block-snapshot script makes them (`<img>` is the
 * image's `stat -c %D:%i`, so every VM of a template finds the same device):
 *
 * - a persistent volume (a template's root, a private): `origin-<img>` (snapshot-origin of
 *   <vid>.img) is the disk; `snapshot-<img>-<cow>` beside it keeps in <vid>-cow.img each block
 *   as it was before the run overwrote it. At stop the store becomes the revision and a new one
 *   is made: the commit. A revert merges the revision back (snapshot-merge).
 * - a template-based root of a PV or PVH VM: `snapshot-<root>-<root-cow>`, the template's root as
 *   last committed, read-only and shared by every VM of the template; the VM stacks its volatile
 *   volume over it itself (Qubes' initramfs).
 * - a template-based root of an HVM (no Qubes initramfs): one writable layer in dom0,
 *   `snapshot-<root>-<volatile>`, the VM's volatile image (reset at each start) as its store;
 *   the volatile volume gives the domain no disk of its own then.
 * - any other snapshot volume (a disposable VM's private): the source's committed snapshot,
 *   then a writable snapshot of it with <vid>-cow.img as store, new at each start.
 * - a volatile volume: <vid>.img, new and empty at each start.
 *
 * Every device-mapper and loop command goes through the command runner.
 */
export class FilePool extends DirPool implements Pool {
  readonly driver = PoolDriverName.File;
  readonly revisionsToKeep: number;
  readonly dm: DeviceMapper;

  constructor(name: string, options: Readonly<Record<string, string>>, runner: CommandRunner = new ExecRunner(), mapperDir = '/dev/mapper') {
    checkOptions(name, PoolDriverName.File, options, ['dir_path', 'revisions_to_keep']);
    super(name, PoolDriverName.File, options);
    const keep = options['revisions_to_keep'] ?? '1';
    if (keep !== '0' && keep !== '1') throw poolInvalid(name, `the file driver keeps one revision at most: revisions_to_keep is 0 or 1, not ${JSON.stringify(keep)}`, 'revisions_to_keep');
    this.revisionsToKeep = Number(keep);
    this.dm = new DeviceMapper(runner, mapperDir);
  }

  get config(): Record<string, string> {
    return { name: this.name, driver: this.driver, dir_path: this.dirPath, revisions_to_keep: String(this.revisionsToKeep) };
  }

  private devicesFree: Promise<unknown> = Promise.resolve();

  /**
   * Runs `work` on the pool's loop and device-mapper devices once the work before it is done: a
   * template and its VMs share devices, so their starts and stops (each under its own VM's lock)
   * must not interleave.
   */
  withDevices<T>(work: () => Promise<T>): Promise<T> {
    const run = this.devicesFree.then(work);
    this.devicesFree = run.catch(() => undefined);
    return run;
  }

  volume(config: VolumeConfig, source?: Volume, vm?: VolumeContext): Volume {
    if (config.snap_on_start && config.save_on_stop) {
      throw poolInvalid(this.name, `${config.vid}: a volume both snap_on_start and save_on_stop is not supported by the file driver`, 'driver');
    }
    if (config.snap_on_start && !(source instanceof FileVolume)) {
      throw new QubesError('VOLUME_DATA_MISSING', `volume ${config.vid} is a snapshot of ${config.source ?? 'nothing'}, which is not a file volume`, {
        details: { vid: config.vid, source: config.source },
      });
    }
    return new FileVolume(this, config, config.snap_on_start ? (source as FileVolume) : null, layoutOf(this, config, vm));
  }
}

type Layout =
  | { kind: 'origin' }
  | { kind: 'volatile'; layerOfRoot: boolean }
  | { kind: 'shared-snapshot' }
  | { kind: 'hvm-root'; volatile: string }
  | { kind: 'own-snapshot' };

/** How a volume is layered: by its flags, and for a template-based root by the VM's virt_mode. */
function layoutOf(pool: FilePool, config: VolumeConfig, vm: VolumeContext | undefined): Layout {
  if (config.save_on_stop) return { kind: 'origin' };
  const hvm = vm?.virtMode === 'hvm';
  const sibling = (name: string): VolumeConfig | undefined => vm?.volumes.find((v) => v.name === name && v.pool === pool.name);
  if (!config.snap_on_start) return { kind: 'volatile', layerOfRoot: hvm && config.name === 'volatile' && sibling('root')?.snap_on_start === true };
  if (config.name !== 'root') return { kind: 'own-snapshot' };
  const volatile = sibling('volatile');
  if (hvm && volatile !== undefined && !volatile.snap_on_start && !volatile.save_on_stop) return { kind: 'hvm-root', volatile: pool.imagePath(volatile.vid, '.img') };
  return { kind: 'shared-snapshot' };
}

class FileVolume implements Volume {
  private device: BlockDevice | null = null;

  constructor(
    private readonly pool: FilePool,
    readonly config: VolumeConfig,
    private readonly source: FileVolume | null,
    private readonly layout: Layout,
  ) {}

  /** The volume's data: its own image, or for a snapshot its source's. */
  get image(): string {
    return this.source?.image ?? this.pool.imagePath(this.config.vid, '.img');
  }

  private get cow(): string {
    return this.pool.imagePath(this.config.vid, '-cow.img');
  }

  private get oldCow(): string {
    return `${this.cow}.old`;
  }

  private get dm(): DeviceMapper {
    return this.pool.dm;
  }

  get blockDevice(): BlockDevice | null {
    if (this.layout.kind === 'volatile') return this.layout.layerOfRoot ? null : { path: this.image, type: 'file' };
    if (this.device === null) throw new Error(`volume ${this.config.vid} has no device before it starts`);
    return this.device;
  }

  async create(): Promise<void> {
    if (!this.config.snap_on_start) await createSparse(this.image, this.config.size);
  }

  async remove(): Promise<void> {
    if (!this.config.snap_on_start) await removeDurably(this.image);
    await removeDurably(this.cow);
    await removeDurably(this.oldCow);
    await removeEmptyDir(path.dirname(this.pool.imagePath(this.config.vid, '.img')));
  }

  async verify(): Promise<void> {
    if (!this.config.snap_on_start && !this.config.save_on_stop) return;
    if (!(await exists(this.image))) {
      throw new QubesError('VOLUME_DATA_MISSING', `the image ${this.image} of volume ${this.config.vid} is missing`, { details: { vid: this.config.vid, file: this.image } });
    }
  }

  start(): Promise<void> {
    return this.pool.withDevices(() => this.startDevices());
  }

  private async startDevices(): Promise<void> {
    await this.verify();
    if (this.layout.kind === 'volatile') {
      if (!this.layout.layerOfRoot) await this.resetImage(this.image, this.config.size);
      return;
    }
    const sectors = Math.floor((await this.sizeOf(this.image)) / SECTOR);
    switch (this.layout.kind) {
      case 'origin': {
        // A store left by a run that never stopped still holds that run's undo: kept, as Qubes does.
        if (!(await exists(this.cow))) await createSparse(this.cow, this.config.size);
        this.device = await this.dm.origin(this.image, await this.dm.snapshot(this.image, this.cow, sectors), sectors);
        return;
      }
      case 'shared-snapshot':
        this.device = { ...(await this.source!.committedSnapshot(sectors)).device, readOnly: true };
        return;
      case 'hvm-root':
        await this.resetImage(this.layout.volatile, await this.sizeOf(this.image));
        this.device = (await this.dm.snapshot(this.image, this.layout.volatile, sectors)).device;
        return;
      case 'own-snapshot': {
        const lower = await this.source!.committedSnapshot(sectors);
        await this.resetImage(this.cow, this.config.size);
        this.device = await this.dm.snapshotOf(lower, this.cow, sectors);
        return;
      }
    }
  }

  /** This (persistent) volume as last committed: the snapshot of its image over its store. */
  private async committedSnapshot(sectors: number): Promise<{ device: BlockDevice; name: string }> {
    if (!(await exists(this.cow))) await createSparse(this.cow, (await this.sizeOf(this.image)));
    const { device, name } = await this.dm.snapshot(this.image, this.cow, sectors);
    return { device, name };
  }

  stop(): Promise<void> {
    return this.pool.withDevices(() => this.stopDevices());
  }

  private async stopDevices(): Promise<void> {
    switch (this.layout.kind) {
      case 'volatile':
        await removeDurably(this.image);
        return;
      case 'origin':
        await this.dm.removeIfThere(`origin-${await devIno(this.image)}`);
        await this.dm.removeUnusedSnapshotsOf(this.image);
        await this.commit();
        return;
      case 'shared-snapshot':
        // The template may run (its origin is up): the snapshot then stays for its commit.
        if (!(await this.dm.hasOrigin(this.image))) await this.dm.removeUnusedSnapshotsOf(this.image);
        return;
      case 'hvm-root':
        // the store goes only with its device: one still open would write into a deleted file
        if (await exists(this.layout.volatile)) await this.dm.removeIfThere(await snapshotName(this.image, this.layout.volatile));
        await removeDurably(this.layout.volatile);
        return;
      case 'own-snapshot':
        if (await exists(this.cow)) {
          const lower = await snapshotName(this.image, this.source!.cow);
          await this.dm.removeIfUnused(`${lower}-${await devIno(this.cow)}`);
        }
        await removeDurably(this.cow);
        if (!(await this.dm.hasOrigin(this.image))) await this.dm.removeUnusedSnapshotsOf(this.image);
        return;
    }
  }

  /** What the run wrote becomes the volume: its store of old blocks becomes the revision. */
  private async commit(): Promise<void> {
    if (!(await this.isDirty())) return; // nothing written: the revision there stays
    if (this.config.revisions_to_keep > 0) await renameDurably(this.cow, this.oldCow);
    else await removeDurably(this.cow);
    await createSparse(this.cow, this.config.size);
  }

  /** A persistent volume whose store holds blocks: a run is writing it, or ended without a stop. */
  async isDirty(): Promise<boolean> {
    if (this.layout.kind !== 'origin') return false;
    return cowHoldsData(this.cow);
  }

  async isOutdated(): Promise<boolean> {
    return false; // a snapshot reads its source's image itself: it is never behind
  }

  async usage(): Promise<number> {
    // what is the volume's own: a snapshot's source image is its source's usage
    const own = { origin: [this.image, this.cow], volatile: [this.image], 'own-snapshot': [this.cow], 'shared-snapshot': [], 'hvm-root': [] }[this.layout.kind];
    let bytes = 0;
    for (const file of own) if (await exists(file)) bytes += await diskUsage(file);
    return bytes;
  }

  async resize(size: number): Promise<void> {
    checkResize(this.config, size);
    if (this.config.snap_on_start) {
      throw new QubesError('VOLUME_READ_ONLY', `volume ${this.config.vid} is a snapshot of ${this.config.source ?? 'its source'}: resize that one instead`, { details: { vid: this.config.vid } });
    }
    if (this.layout.kind === 'origin' && (await exists(this.cow))) await growFile(this.cow, size);
    if (await exists(this.image)) await this.pool.withDevices(() => this.growImage(size));
    this.config.size = size;
  }

  /**
   * Grows the image; a running volume's loop device, then its origin device, take the new size
   * (the snapshot keeping the old blocks covers what was there, which is all it needs).
   */
  private async growImage(size: number): Promise<void> {
    await growFile(this.image, size);
    const loop = await this.dm.loopAttachedTo(this.image);
    if (loop === null) return;
    await this.dm.run('losetup', ['--set-capacity', loop]);
    if (this.layout.kind === 'origin') await this.dm.grow(`origin-${await devIno(this.image)}`, `0 ${Math.floor(size / SECTOR)} snapshot-origin ${loop}`);
  }

  async revisions(): Promise<Revision[]> {
    if (this.layout.kind !== 'origin') return [];
    try {
      const name = `${new Date((await stat(this.oldCow)).mtimeMs).toISOString().slice(0, -1)}Z`;
      return [{ name, timestamp: name.slice(0, -1) }];
    } catch {
      return [];
    }
  }

  /**
   * Back to the revision: its store (the blocks the last run overwrote) is merged into the image
   * by a snapshot-merge device, as Qubes' qvm-revert-template-changes did. The revision is used
   * up: this driver keeps one, and the current data does not become one.
   */
  revert(revision?: string): Promise<void> {
    return this.pool.withDevices(() => this.revertDevices(revision));
  }

  private async revertDevices(revision?: string): Promise<void> {
    revisionToRevert(this.config, await this.isDirty(), await this.revisions(), revision);
    const others = (await this.dm.users(this.image)).held;
    if (others.length > 0) {
      throw new QubesError('VM_RUNNING', `VMs still run on ${this.config.vid} (${others.map((d) => d.name).join(', ')}): shut them down before a revert`, {
        details: { vid: this.config.vid },
      });
    }
    await this.dm.removeUnusedSnapshotsOf(this.image);
    await this.dm.merge(this.image, this.oldCow, Math.floor((await this.sizeOf(this.image)) / SECTOR));
    await removeDurably(this.oldCow);
    this.config.size = await this.sizeOf(this.image);
  }

  async importData(data: AsyncIterable<Uint8Array>, options: ImportOptions = {}): Promise<{ bytes: number }> {
    const limit = options.size ?? this.config.size;
    const bytes = await this.replaceData('import into', (temp) => writeImportFile(temp, data, this.config, limit, options));
    this.config.size = limit;
    return { bytes };
  }

  async importFile(file: string, options: ImportOptions = {}): Promise<{ bytes: number }> {
    const limit = options.size ?? this.config.size;
    const bytes = await this.replaceData('import into', (temp) => copyFrom(file, temp, this.config, limit, options));
    this.config.size = limit;
    return { bytes };
  }

  scratchDir(): string | null {
    return this.pool.scratchDir();
  }

  async importVolume(source: Volume, options: CopyOptions = {}): Promise<CopyResult> {
    const from = await source.exportPath();
    const result = await this.replaceData('clone into', (temp) => copyImage(from, temp, options));
    this.config.size = result.bytes;
    return result;
  }

  /**
   * The data replaced by what `write` makes at a temporary path, while nothing uses the image;
   * the stores, which hold blocks of the old image, no longer mean anything then.
   */
  private async replaceData<T>(what: string, write: (temp: string) => Promise<T>): Promise<T> {
    requirePersistent(this.config, what);
    await this.refuseWhileDirty(what);
    const result = await replaceFile(this.image, write);
    await removeDurably(this.oldCow);
    await removeDurably(this.cow);
    return result;
  }

  /** The image holds the volume as committed only while no run writes to it. */
  async exportPath(): Promise<string> {
    requirePersistent(this.config, 'export');
    await this.verify();
    await this.refuseWhileDirty('export');
    return this.image;
  }

  /**
   * The image is written in place while the volume runs (its origin is up), and read by every
   * snapshot of it that a VM holds: neither may change under an export or an import.
   */
  private async refuseWhileDirty(what: string): Promise<void> {
    const { origin, held } = await this.dm.users(this.image);
    if (origin || held.length > 0 || (await this.isDirty())) {
      throw new QubesError('VM_RUNNING', `cannot ${what} ${this.config.vid} while a run writes to it: stop its VM first`, { details: { vid: this.config.vid } });
    }
  }

  private async resetImage(file: string, size: number): Promise<void> {
    await removeDurably(file);
    await createSparse(file, size);
  }

  private async sizeOf(file: string): Promise<number> {
    try {
      return (await stat(file)).size;
    } catch {
      return this.config.size;
    }
  }
}

/** Whether a persistent snapshot store holds any exception (anything beyond an empty header). */
async function cowHoldsData(cow: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(cow, 'r');
  } catch {
    return false;
  }
  try {
    // the first exception goes into the first metadata chunk, right after the header: a store
    // whose header and first metadata chunk are those of an empty one (or all holes) holds none
    const head = Buffer.alloc(EMPTY_COW.length);
    await handle.read(head, 0, head.length, 0);
    return !head.equals(EMPTY_COW) && head.some((byte) => byte !== 0);
  } finally {
    await handle.close();
  }
}

/** A file's `stat -c %D:%i`: device number in hex, inode in decimal (Qubes' device names). */
async function devIno(file: string): Promise<string> {
  const s = await stat(file, { bigint: true });
  return `${s.dev.toString(16)}:${s.ino}`;
}

async function snapshotName(image: string, cow: string): Promise<string> {
  return `snapshot-${await devIno(image)}-${await devIno(cow)}`;
}

interface DmDevice {
  name: string;
  open: number;
}

/** losetup and dmsetup as Qubes' block-snapshot script uses them, through the command runner. */
class DeviceMapper {
  constructor(
    private readonly runner: CommandRunner,
    private readonly mapperDir: string,
  ) {}

  run(program: string, args: readonly string[]): Promise<string> {
    return this.runner.run(program, args);
  }

  /** The devices there are, with how many holders each has open. */
  async devices(): Promise<DmDevice[]> {
    const out = await this.run('dmsetup', ['info', '-c', '--noheadings', '--separator', ':', '-o', 'name,open']);
    return out
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && line !== 'No devices found')
      .map((line) => {
        const at = line.lastIndexOf(':');
        return { name: line.slice(0, at), open: Number(line.slice(at + 1)) };
      });
  }

  async loopAttachedTo(file: string): Promise<string | null> {
    const out = await this.run('losetup', ['-j', file]);
    return /^(\/dev\/loop\d+):/m.exec(out)?.[1] ?? null;
  }

  /**
   * The loop device of `file`: the one it has (a device's layers must share it), else a new one,
   * noted in `made` (let go again if the device it was for cannot be made).
   */
  async loopOf(file: string, made: string[] = []): Promise<string> {
    const attached = await this.loopAttachedTo(file);
    if (attached !== null) return attached;
    const loop = (await this.run('losetup', ['-f', '--show', file])).trim();
    made.push(loop);
    return loop;
  }

  /** Makes the device `name` unless it is there, its table from `table` (given the loops it makes). */
  private async ensure(name: string, table: (made: string[]) => Promise<string>): Promise<BlockDevice> {
    if (!(await this.devices()).some((d) => d.name === name)) {
      const made: string[] = [];
      try {
        await this.run('dmsetup', ['create', name, '--table', await table(made)]);
      } catch (err) {
        for (const loop of made) await this.run('losetup', ['-d', loop]).catch(() => undefined);
        throw err;
      }
    }
    return { path: path.join(this.mapperDir, name), type: 'block' };
  }

  /** `snapshot-<image>-<cow>`: the image as it was when the store was new. */
  async snapshot(image: string, cow: string, sectors: number): Promise<{ device: BlockDevice; name: string; loop: string | null }> {
    const name = await snapshotName(image, cow);
    let loop: string | null = null;
    const device = await this.ensure(name, async (made) => {
      loop = await this.loopOf(image, made);
      return `0 ${sectors} snapshot ${loop} ${await this.loopOf(cow, made)} P ${CHUNK_SECTORS}`;
    });
    return { device, name, loop };
  }

  /** A writable snapshot of a snapshot device, its own store in `cow`. */
  async snapshotOf(lower: { device: BlockDevice; name: string }, cow: string, sectors: number): Promise<BlockDevice> {
    const name = `${lower.name}-${await devIno(cow)}`;
    return this.ensure(name, async (made) => `0 ${sectors} snapshot ${lower.device.path} ${await this.loopOf(cow, made)} P ${CHUNK_SECTORS}`);
  }

  /**
   * `origin-<image>`: writes go to the image, the blocks they replace to its snapshots' stores. It
   * must sit on the very loop its snapshot does (dm links them by block device): the one the
   * snapshot was just made on, else the one its table names.
   */
  async origin(image: string, snapshot: { name: string; loop: string | null }, sectors: number): Promise<BlockDevice> {
    return this.ensure(`origin-${await devIno(image)}`, async () => {
      const loop = snapshot.loop ?? (await this.loopsUnder(snapshot.name))[0] ?? (await this.loopOf(image));
      return `0 ${sectors} snapshot-origin ${loop}`;
    });
  }

  /** A new, larger table for a live device: loaded, then swapped in. */
  async grow(name: string, table: string): Promise<void> {
    if (!(await this.devices()).some((d) => d.name === name)) return;
    await this.run('dmsetup', ['reload', name, '--table', table]);
    await this.run('dmsetup', ['resume', name]);
  }

  /** The loop devices a device sits on, in its table's order (an image's, then its store's). */
  private async loopsUnder(name: string): Promise<string[]> {
    const table = await this.run('dmsetup', ['table', name]);
    return [...table.matchAll(/\b(\d+):(\d+)\b|(\/dev\/loop\d+)/g)].flatMap((m) => (m[3] !== undefined ? [m[3]] : m[1] === '7' ? [`/dev/loop${m[2]}`] : []));
  }

  async hasOrigin(image: string): Promise<boolean> {
    return (await this.users(image)).origin;
  }

  /** Who uses the image: its origin (a run writing it), and the VMs holding snapshots of it. */
  async users(image: string): Promise<{ origin: boolean; held: DmDevice[] }> {
    const id = await devIno(image);
    const devices = await this.devices();
    return {
      origin: devices.some((d) => d.name === `origin-${id}`),
      held: devices.filter((d) => d.name.startsWith(`snapshot-${id}-`) && d.open > 0),
    };
  }

  async snapshotsOf(image: string): Promise<DmDevice[]> {
    const prefix = `snapshot-${await devIno(image)}-`;
    return (await this.devices()).filter((d) => d.name.startsWith(prefix));
  }

  /** Removes the image's snapshot devices no VM holds (the newest layers first). */
  async removeUnusedSnapshotsOf(image: string): Promise<void> {
    const unused = (await this.snapshotsOf(image)).filter((d) => d.open === 0).sort((a, b) => b.name.length - a.name.length);
    for (const device of unused) await this.removeIfUnused(device.name);
  }

  async removeIfThere(name: string): Promise<void> {
    const device = (await this.devices()).find((d) => d.name === name);
    if (device === undefined) return;
    if (device.open > 0) throw new QubesError('STORAGE_COMMAND_FAILED', `the device ${name} is still open (${device.open}): it cannot be removed`, { details: { command: 'dmsetup' } });
    await this.remove(name);
  }

  async removeIfUnused(name: string): Promise<void> {
    const device = (await this.devices()).find((d) => d.name === name);
    if (device !== undefined && device.open === 0) await this.remove(name);
  }

  /** Removes a device, then lets go of its loop devices (one still held is freed by its last holder). */
  private async remove(name: string): Promise<void> {
    const deps = await this.run('dmsetup', ['deps', '-o', 'devname', name]);
    await this.run('dmsetup', ['remove', name]);
    for (const [, dev] of deps.matchAll(/\((loop\d+)\)/g)) {
      await this.run('losetup', ['-d', `/dev/${dev}`]).catch(() => undefined);
    }
  }

  /** Merges a snapshot store back into its image and waits until the merge is done. */
  async merge(image: string, cow: string, sectors: number): Promise<void> {
    const name = await snapshotName(image, cow);
    await this.ensure(name, async (made) => `0 ${sectors} snapshot-merge ${await this.loopOf(image, made)} ${await this.loopOf(cow, made)} P ${CHUNK_SECTORS}`);
    for (;;) {
      const status = (await this.run('dmsetup', ['status', name])).trim();
      // "<start> <length> snapshot-merge <allocated>/<total> <metadata>": done when only metadata is left
      const progress = /(\d+)\/\d+ (\d+)$/.exec(status);
      if (progress === null) throw new QubesError('STORAGE_COMMAND_FAILED', `the merge into ${image} failed: ${status}`, { details: { command: 'dmsetup' } });
      if (progress[1] === progress[2]) break;
      await sleep(100);
    }
    await this.remove(name);
  }
}
