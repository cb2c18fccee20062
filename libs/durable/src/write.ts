import { randomBytes } from 'node:crypto';
import { link, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir, fsyncFile } from './sync';

/**
 * A file is changed as Qubes changes qubes.xml (qubes/app.py save): written whole under a
 * temporary name beside it, fsynced, renamed over it, and the directory fsynced. A crash leaves
 * the old file or the new one, never half of one; what it may leave besides is a temporary
 * file, which removeStaleTemps clears. Failures keep Node's error (its `code`: ENOSPC, EROFS,
 * EPERM...), for the caller to say what they mean to its own callers.
 */

export interface WriteOptions {
  /** Permissions of a file made new (less the umask); default 0o666 as for fs.writeFile. */
  mode?: number;
}

/** A temporary file's name beside `target`: hidden, unique, and known to removeStaleTemps. */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Removes the temporary files a write of `target` left behind when its process died. Only the
 * process holding the lock on `target` (or the only one writing it) may: another's temporary
 * file could be a write under way.
 */
export async function removeStaleTemps(target: string): Promise<void> {
  const prefix = `.${path.basename(target)}.`;
  for (const name of await readdir(path.dirname(target)).catch(() => [] as string[])) {
    if (name.startsWith(prefix) && /^[0-9a-f]{12}\.tmp$/.test(name.slice(prefix.length))) {
      await rm(path.join(path.dirname(target), name), { force: true });
    }
  }
}

/**
 * Replaces (or creates) `target` with the file `fill` makes at the path it is given, durably,
 * and answers what `fill` answers. On a failure before the rename the temporary file is removed
 * and `target` is as it was; if the directory's fsync fails after it, the new file is in place
 * but may not survive a crash.
 */
export async function replaceFileDurably<T>(target: string, fill: (temp: string) => Promise<T>): Promise<T> {
  const temp = tempPathFor(target);
  try {
    const result = await fill(temp);
    await fsyncFile(temp);
    await renameDurably(temp, target);
    return result;
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined); // the first failure is the one to tell
    throw err;
  }
}

/** Replaces (or creates) `target` with `data`, durably (see replaceFileDurably). */
export async function writeFileDurably(target: string, data: string | Uint8Array, options: WriteOptions = {}): Promise<void> {
  await replaceFileDurably(target, (temp) => writeFile(temp, data, { mode: options.mode ?? 0o666, flag: 'wx' }));
}

/**
 * Creates `target` holding `data` if there is no file at that path, atomically and durably, and
 * answers whether it did: a file already there (or made meanwhile by someone else) is left as it
 * is. The new file is linked into place, never renamed, so it can never replace one. Its
 * temporary file is not one removeStaleTemps removes: a creator holds no lock on a file that is
 * not there yet.
 */
export async function createFileDurably(target: string, data: string | Uint8Array, options: WriteOptions = {}): Promise<boolean> {
  const temp = `${tempPathFor(target).slice(0, -'.tmp'.length)}.new`;
  try {
    await writeFile(temp, data, { mode: options.mode ?? 0o666, flag: 'wx' });
    await fsyncFile(temp);
    try {
      await link(temp, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
    await fsyncDir(path.dirname(target));
    return true;
  } finally {
    await rm(temp, { force: true });
  }
}

/** Renames `from` to `to` (replacing a file there atomically), with both directories synced. */
export async function renameDurably(from: string, to: string): Promise<void> {
  await rename(from, to);
  await fsyncDir(path.dirname(to));
  if (path.dirname(from) !== path.dirname(to)) await fsyncDir(path.dirname(from));
}

/** Removes a file if it is there, durably; answers whether it was. */
export async function removeDurably(file: string): Promise<boolean> {
  try {
    await rm(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  await fsyncDir(path.dirname(file));
  return true;
}

/** mkdir -p, with each directory it made synced into its parent. */
export async function mkdirDurably(dir: string, options: WriteOptions = {}): Promise<void> {
  const first = await mkdir(dir, { recursive: true, ...(options.mode === undefined ? {} : { mode: options.mode }) });
  if (first === undefined) return;
  for (let made = dir; made.length >= first.length; made = path.dirname(made)) {
    await fsyncDir(path.dirname(made));
  }
}
