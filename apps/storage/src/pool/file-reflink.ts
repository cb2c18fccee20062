import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { QubesError } from '@qubes-bus/contracts';
import { removeDurably, renameDurably } from '@qubes-bus/durable';
import {
  copyImage,
  createSparse,
  diskUsage,
  exists,
  growFile,
  removeEmptyDir,
  replaceFile,
  type CopyOptions,
  type CopyResult,
} from './files';
import { checkOptions, DirPool, poolInvalid } from './dir-pool';
import { checkResize, copyFrom, requirePersistent, revisionToRevert, writeImportFile } from './volume-rules';
import { PoolDriverName, type ImportOptions, type Pool, type Revision, type Volume, type VolumeConfig } from './types';

/**
 * `file-reflink` (Qubes R4's default on btrfs and xfs): each volume is plain files under the
 * pool's directory, named as Qubes names them so a Qubes data dir reads as is:
 *
 *   <vid>.img              the committed image
 *   <vid>-dirty.img        the image a run writes (committed, or dropped, when it stops)
 *   <vid>.img@<time>Z      an earlier committed image, kept for revert (revisions_to_keep)
 *
 * Copies are reflinks where the filesystem shares extents (btrfs, xfs with reflink=1): a clone
 * or snapshot of any size takes no time and no space. Elsewhere they are sparse block copies.
 */
export class FileReflinkPool extends DirPool implements Pool {
  readonly driver = PoolDriverName.FileReflink;
  readonly revisionsToKeep: number;
  private readonly setupCheck: boolean;

  /** Options as Qubes spells them: dir_path, revisions_to_keep, setup_check (yes/no). */
  constructor(name: string, options: Readonly<Record<string, string>>) {
    checkOptions(name, PoolDriverName.FileReflink, options, ['dir_path', 'revisions_to_keep', 'setup_check', 'ephemeral_volatile']);
    super(name, PoolDriverName.FileReflink, options);
    this.revisionsToKeep = parseCount(name, 'revisions_to_keep', options['revisions_to_keep'] ?? '1');
    this.setupCheck = parseYesNo(name, 'setup_check', options['setup_check'] ?? 'yes');
  }

  get config(): Record<string, string> {
    return {
      name: this.name,
      driver: this.driver,
      dir_path: this.dirPath,
      revisions_to_keep: String(this.revisionsToKeep),
      ...(this.setupCheck ? {} : { setup_check: 'no' }),
    };
  }

  /** With setup_check (the default) the directory's filesystem must do reflinks. */
  protected override async checkDirectory(): Promise<void> {
    if (this.setupCheck && !this.reflinks) {
      throw poolInvalid(
        this.name,
        `the filesystem of ${this.dirPath} does not do reflinks: copies would take time and space. Add setup_check=no to use it anyway`,
        'setup_check',
      );
    }
  }

  volume(config: VolumeConfig, source?: Volume): Volume {
    if (config.snap_on_start && !(source instanceof ReflinkVolume)) {
      throw new QubesError('VOLUME_DATA_MISSING', `volume ${config.vid} is a snapshot of ${config.source ?? 'nothing'}, which is not a file-reflink volume`, {
        details: { vid: config.vid, source: config.source },
      });
    }
    return new ReflinkVolume(this, config, config.snap_on_start ? (source as ReflinkVolume) : null);
  }
}

class ReflinkVolume implements Volume {
  constructor(
    private readonly pool: FileReflinkPool,
    readonly config: VolumeConfig,
    private readonly source: ReflinkVolume | null,
  ) {}

  private get clean(): string {
    return this.pool.imagePath(this.config.vid, '.img');
  }

  private get dirty(): string {
    return this.pool.imagePath(this.config.vid, '-dirty.img');
  }

  private revisionPath(revision: string): string {
    return `${this.clean}@${revision}`;
  }

  get blockDevice(): { path: string; type: 'file' } {
    return { path: this.dirty, type: 'file' };
  }

  async create(): Promise<void> {
    if (this.config.save_on_stop && !this.config.snap_on_start) await createSparse(this.clean, this.config.size);
  }

  async remove(): Promise<void> {
    await this.pruneRevisions(0);
    await removeDurably(this.clean);
    await removeDurably(this.dirty);
    await removeEmptyDir(path.dirname(this.clean));
  }

  async verify(): Promise<void> {
    const needed = this.config.snap_on_start ? this.source!.clean : this.config.save_on_stop ? this.clean : null;
    if (needed !== null && !(await exists(needed))) {
      throw new QubesError('VOLUME_DATA_MISSING', `the image ${needed} of volume ${this.config.vid} is missing`, {
        details: { vid: this.config.vid, file: needed },
      });
    }
  }

  async start(): Promise<void> {
    await this.verify();
    if (this.config.snap_on_start) await copyImage(this.source!.clean, this.clean);
    // A run that ended without a stop (a crash of dom0) left its writes: they are kept for the
    // next stop to commit, as Qubes does, rather than thrown away.
    if (await this.isDirty()) return;
    if (this.config.save_on_stop || this.config.snap_on_start) {
      await copyImage(this.clean, this.dirty);
      if (this.config.snap_on_start && this.config.size > (await stat(this.dirty)).size) await growFile(this.dirty, this.config.size);
    } else {
      await createSparse(this.dirty, this.config.size);
    }
  }

  async stop(): Promise<void> {
    if (this.config.save_on_stop) {
      if (await exists(this.dirty)) await this.commit(this.dirty);
      return;
    }
    await removeDurably(this.dirty);
    if (this.config.snap_on_start) await removeDurably(this.clean);
  }

  async isDirty(): Promise<boolean> {
    return this.config.save_on_stop && (await exists(this.dirty));
  }

  async isOutdated(): Promise<boolean> {
    if (!this.config.snap_on_start || this.source === null) return false;
    try {
      return (await stat(this.source.clean)).mtimeMs > (await stat(this.clean)).mtimeMs;
    } catch {
      return false;
    }
  }

  async usage(): Promise<number> {
    for (const file of [this.dirty, this.clean]) {
      try {
        return await diskUsage(file);
      } catch {
        // the next one
      }
    }
    return 0;
  }

  async resize(size: number): Promise<void> {
    checkResize(this.config, size);
    // The running image first: its size is what the VM sees; the committed one follows at stop.
    for (const file of [this.dirty, this.clean]) {
      if (await exists(file)) {
        await growFile(file, size);
        break;
      }
    }
    this.config.size = size;
  }

  async revisions(): Promise<Revision[]> {
    const dir = path.dirname(this.clean);
    const prefix = `${path.basename(this.clean)}@`;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return [];
    }
    return names
      .filter((name) => name.startsWith(prefix) && name.endsWith('Z'))
      .map((name) => name.slice(prefix.length))
      .sort()
      .map((name) => ({ name, timestamp: name.slice(0, -1) }));
  }

  async revert(revision?: string): Promise<void> {
    const target = revisionToRevert(this.config, await this.isDirty(), await this.revisions(), revision);
    await this.addRevision();
    await renameDurably(this.revisionPath(target), this.clean);
    this.config.size = (await stat(this.clean)).size;
  }

  async importData(data: AsyncIterable<Uint8Array>, options: ImportOptions = {}): Promise<{ bytes: number }> {
    requirePersistent(this.config, 'import into');
    const limit = options.size ?? this.config.size;
    const bytes = await this.replaceData((temp) => writeImportFile(temp, data, this.config, limit, options));
    this.config.size = limit;
    return { bytes };
  }

  async importFile(file: string, options: ImportOptions = {}): Promise<{ bytes: number }> {
    requirePersistent(this.config, 'import into');
    const limit = options.size ?? this.config.size;
    const bytes = await this.replaceData((temp) => copyFrom(file, temp, this.config, limit, options));
    this.config.size = limit;
    return { bytes };
  }

  scratchDir(): string | null {
    return this.pool.scratchDir();
  }

  async importVolume(source: Volume, options: CopyOptions = {}): Promise<CopyResult> {
    requirePersistent(this.config, 'clone into');
    const from = await source.exportPath();
    const result = await this.replaceData((temp) => copyImage(from, temp, options));
    this.config.size = result.bytes; // a clone is its source, size included (Qubes: import_volume)
    return result;
  }

  /** The data replaced by what `write` makes at a temporary path; the image before, a revision. */
  private async replaceData<T>(write: (temp: string) => Promise<T>): Promise<T> {
    const result = await replaceFile(this.clean, async (temp) => {
      const written = await write(temp);
      await this.addRevision();
      return written;
    });
    await this.pruneRevisions();
    return result;
  }

  async exportPath(): Promise<string> {
    requirePersistent(this.config, 'export');
    await this.verify();
    return this.clean;
  }

  /** The dirty image becomes the committed one; the committed one before it, a revision. */
  private async commit(from: string): Promise<void> {
    await this.addRevision();
    await this.pruneRevisions();
    await renameDurably(from, this.clean);
  }

  private async addRevision(): Promise<void> {
    if (this.config.revisions_to_keep === 0) return;
    let current;
    try {
      current = await stat(this.clean);
    } catch {
      return;
    }
    if (current.blocks === 0) return; // never written: nothing to go back to
    // Qubes names a revision after the time the image was committed; to the millisecond here,
    // so two commits within a second keep two revisions.
    const name = `${new Date(current.ctimeMs).toISOString().slice(0, -1)}Z`;
    await copyImage(this.clean, this.revisionPath(name));
  }

  private async pruneRevisions(keep = this.config.revisions_to_keep): Promise<void> {
    const revisions = await this.revisions();
    for (const revision of revisions.slice(0, Math.max(0, revisions.length - keep))) {
      await removeDurably(this.revisionPath(revision.name));
    }
  }

}


function parseCount(pool: string, option: string, value: string): number {
  if (!/^\d{1,4}$/.test(value)) throw poolInvalid(pool, `${option} must be a whole number, not ${JSON.stringify(value)}`, option);
  return Number(value);
}

function parseYesNo(pool: string, option: string, value: string): boolean {
  const lower = value.toLowerCase();
  if (['yes', 'true', 'on', '1'].includes(lower)) return true;
  if (['no', 'false', 'off', '0'].includes(lower)) return false;
  throw poolInvalid(pool, `${option} must be yes or no, not ${JSON.stringify(value)}`, option);
}
