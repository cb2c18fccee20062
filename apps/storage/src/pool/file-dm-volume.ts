import { stat } from 'node:fs/promises';
import path from 'node:path';
import { QubesError } from '@qubes-bus/contracts';
import { cowHoldsData, devIno, SECTOR, snapshotName, type DeviceMapper } from './device-mapper';
import type { FilePool, Layout } from './file-dm';
import { removeDurably, renameDurably } from '@qubes-bus/durable';
import { copyImage, createSparse, diskUsage, exists, growFile, removeEmptyDir, replaceFile, type CopyOptions, type CopyResult } from './files';
import { checkResize, copyFrom, requirePersistent, revisionToRevert, writeImportFile } from './volume-rules';
import type { BlockDevice, ImportOptions, Revision, Volume, VolumeConfig } from './types';

/** A volume of the `file` pool: its image, its stores and its device-mapper layers (see FilePool). */
export class FileVolume implements Volume {
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
