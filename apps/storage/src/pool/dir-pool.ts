import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, open, rm, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { QubesError } from '@qubes-bus/contracts';
import { mkdirDurably } from '@qubes-bus/durable';
import type { PoolDriverName, PoolUsage } from './types';

export function poolInvalid(pool: string, message: string, option: string): QubesError {
  return new QubesError('POOL_INVALID', `pool ${pool}: ${message}`, { details: { pool, option } });
}

/** An option the driver does not take is refused, named (a typo must not pass silently). */
export function checkOptions(pool: string, driver: PoolDriverName, options: Readonly<Record<string, string>>, known: readonly string[]): void {
  for (const option of Object.keys(options)) {
    if (!known.includes(option)) throw poolInvalid(pool, `the ${driver} driver has no option ${JSON.stringify(option)}`, option);
  }
}

/**
 * What the pools that keep each volume as image files under one directory share (file-reflink
 * and file): the dir_path option, the directory's checks, Qubes' vids (`appvms/<vm>/<volume>`,
 * `vm-templates/<vm>/<volume>`) and the images' paths.
 */
export abstract class DirPool {
  abstract readonly driver: PoolDriverName;
  readonly dirPath: string;

  constructor(
    readonly name: string,
    driver: PoolDriverName,
    options: Readonly<Record<string, string>>,
  ) {
    const dir = options['dir_path'];
    if (dir === undefined || dir === '') throw poolInvalid(name, `a ${driver} pool needs dir_path`, 'dir_path');
    if (!path.isAbsolute(dir)) throw poolInvalid(name, `dir_path ${JSON.stringify(dir)} is not an absolute path`, 'dir_path');
    this.dirPath = path.resolve(dir);
  }

  /**
   * The directory must exist already (a pool on a disk that is not mounted must not quietly
   * fill the root filesystem), then what the driver checks of it; then Qubes' subdirectories.
   */
  async setup(): Promise<void> {
    let isDir = false;
    try {
      isDir = (await stat(this.dirPath)).isDirectory();
    } catch {
      // reported below
    }
    if (!isDir) throw poolInvalid(this.name, `dir_path ${this.dirPath} does not exist or is not a directory`, 'dir_path');
    this.reflinks = await reflinkSupported(this.dirPath);
    await this.checkDirectory();
    for (const prefix of ['appvms', 'vm-templates']) await mkdirDurably(path.join(this.dirPath, prefix));
    // files offered to imports that a service that stopped never took in: no import runs yet
    await rm(path.join(this.dirPath, '.import'), { recursive: true, force: true });
  }

  /** What the driver needs of the directory's filesystem, beyond its being there. */
  protected async checkDirectory(): Promise<void> {}

  async usage(): Promise<PoolUsage> {
    const fs = await statfs(this.dirPath);
    return { size: fs.blocks * fs.bsize, usage: (fs.blocks - fs.bfree) * fs.bsize };
  }

  vidFor(vm: { name: string; dirPrefix: string }, volume: string): string {
    return `${vm.dirPrefix}/${vm.name}/${volume}`;
  }

  /**
   * Where imports offer their files (on the pool's filesystem, so that taking one in is a
   * reflink): only where the filesystem makes reflinks, else taking one in would be a second copy.
   */
  scratchDir(): string | null {
    return this.reflinks ? path.join(this.dirPath, '.import') : null;
  }

  /** Whether the filesystem makes reflinks, as setup() found it. */
  protected reflinks = false;

  /** The image of `vid` under this pool, checked to stay inside it. */
  imagePath(vid: string, suffix: string): string {
    const file = path.resolve(this.dirPath, `${vid}${suffix}`);
    if (!file.startsWith(`${this.dirPath}${path.sep}`)) {
      throw new QubesError('BAD_REQUEST', `volume id ${JSON.stringify(vid)} leaves the pool's directory`, { details: { field: 'vid' } });
    }
    return file;
  }
}

/** Whether the filesystem of `dir` shares extents (FICLONE between two files in it). */
export async function reflinkSupported(dir: string): Promise<boolean> {
  const base = path.join(dir, `.reflink-check-${randomBytes(6).toString('hex')}`);
  try {
    const handle = await open(`${base}.a`, 'wx', 0o600);
    try {
      await handle.write('reflink check'); // an empty file clones trivially anywhere
    } finally {
      await handle.close();
    }
    await copyFile(`${base}.a`, `${base}.b`, constants.COPYFILE_FICLONE_FORCE);
    return true;
  } catch {
    return false;
  } finally {
    await rm(`${base}.a`, { force: true });
    await rm(`${base}.b`, { force: true });
  }
}
