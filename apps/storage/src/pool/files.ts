import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { copyFile, open, rm, rmdir, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { QubesError } from '@qubes-bus/contracts';
import { fsyncDir, mkdirDurably, replaceFileDurably } from '@qubes-bus/durable';

/**
 * Image files are changed the way qubes.xml is, with @qubes-bus/durable: written under a
 * temporary name beside the target, fsynced, renamed into place, and the directory fsynced, so a
 * crash leaves either the old image or the new one, never half of one. What is here is the
 * storage service's own: copies, sparse files, growing in place, STORAGE_FULL.
 */

/** Removes a directory if it is there and empty. */
export async function removeEmptyDir(dir: string): Promise<void> {
  try {
    await rmdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTEMPTY' || code === 'EEXIST') return;
    throw err;
  }
  await fsyncDir(path.dirname(dir));
}

export async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Bytes the file takes on disk (its allocated blocks), not its apparent size. */
export async function diskUsage(file: string): Promise<number> {
  return (await stat(file)).blocks * 512;
}

/**
 * Runs `write` to make a new temporary file beside `target` (at the path it is given), then
 * makes it `target` durably. On any failure the temporary file is removed and `target` is as it
 * was; a full disk becomes STORAGE_FULL.
 */
export async function replaceFile<T>(target: string, write: (temp: string) => Promise<T>): Promise<T> {
  await mkdirDurably(path.dirname(target));
  try {
    return await replaceFileDurably(target, write);
  } catch (err) {
    throw storageError(err, target);
  }
}

export async function withNewFile<T>(file: string, use: (handle: FileHandle) => Promise<T>): Promise<T> {
  const handle = await open(file, 'w', 0o600);
  try {
    return await use(handle);
  } finally {
    await handle.close();
  }
}

/** A new sparse file of `size` bytes (all holes) at `target`. */
export function createSparse(target: string, size: number): Promise<void> {
  return replaceFile(target, (temp) => withNewFile(temp, (handle) => handle.truncate(size)));
}

/** Grows (never shrinks: the caller checked) an image in place, durably. */
export async function growFile(file: string, size: number): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.truncate(size);
    await handle.sync();
  } catch (err) {
    throw storageError(err, file);
  } finally {
    await handle.close();
  }
}

export interface CopyOptions {
  signal?: AbortSignal | undefined;
  /** Called as the copy goes on with the bytes done so far (of the source's size). */
  onProgress?: ((done: number, total: number) => void) | undefined;
}

export interface CopyResult {
  /** Shared extents (FICLONE): no data was copied. */
  reflinked: boolean;
  bytes: number;
}

/**
 * Copies `source` to `target` (replaced durably) as a reflink where the filesystem offers one,
 * else as Qubes does, with `cp --sparse=always` (it skips the holes it finds, and writes none
 * where the data is zeros): a sparse image stays sparse. The copy reports progress (the size
 * written so far, four times a second) and stops at `signal`, removing what it wrote.
 */
export async function copyImage(source: string, target: string, options: CopyOptions = {}): Promise<CopyResult> {
  const { size } = await stat(source);
  return replaceFile(target, async (temp) => {
    checkCancelled(options.signal);
    try {
      await copyFile(source, temp, constants.COPYFILE_FICLONE_FORCE | constants.COPYFILE_EXCL);
      options.onProgress?.(size, size);
      return { reflinked: true, bytes: size };
    } catch (err) {
      if (!reflinkUnsupported(err)) throw err;
    }
    await rm(temp, { force: true });
    await runCopy(['--sparse=always', '--reflink=never', '--', source, temp], temp, size, options);
    options.onProgress?.(size, size);
    return { reflinked: false, bytes: size };
  });
}

function runCopy(args: string[], temp: string, size: number, options: CopyOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('cp', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const poll = setInterval(() => {
      stat(temp).then(
        (s) => options.onProgress?.(Math.min(s.size, size), size),
        () => undefined,
      );
    }, 250);
    const abort = (): void => {
      child.kill('SIGTERM');
    };
    options.signal?.addEventListener('abort', abort, { once: true });
    child.once('error', (err) => {
      clearInterval(poll);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearInterval(poll);
      options.signal?.removeEventListener('abort', abort);
      if (options.signal?.aborted === true) return reject(new QubesError('OPERATION_CANCELLED', 'the copy was cancelled'));
      if (code === 0) return resolve();
      if (/No space left|Disk quota/i.test(stderr)) return reject(Object.assign(new Error(stderr.trim()), { code: 'ENOSPC' }));
      reject(new QubesError('STORAGE_COMMAND_FAILED', `cp ${args.join(' ')} failed (${signal ?? `status ${code}`}): ${stderr.trim()}`, { details: { command: 'cp', status: code } }));
    });
  });
}

function reflinkUnsupported(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EXDEV' || code === 'EINVAL' || code === 'ENOSYS' || code === 'ENOTTY';
}

export function checkCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new QubesError('OPERATION_CANCELLED', 'the operation was cancelled');
}

/** A full disk is the user's STORAGE_FULL; a QubesError passes as it is. */
function storageError(err: unknown, file: string): unknown {
  if (err instanceof QubesError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new QubesError('STORAGE_FULL', `no space left for ${file}`, { details: { file }, cause: err });
  }
  return err;
}
