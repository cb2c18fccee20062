import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { flock, flockSync } from 'fs-ext';

/*
 * Kernel locks (flock(2)) through fs-ext: the kernel drops a lock when its holder dies, so no
 * stale lock is ever left to break. A blocking flockSync would freeze the event loop: waiting is
 * done by the async flock, in libuv's thread pool; the synchronous call is only ever made with
 * LOCK_NB. A lock belongs to the open file (not the process): two opens of one file in the same
 * process exclude each other too.
 */
const flockAsync = promisify(flock);

export interface LockOptions {
  /**
   * Called when another holds the lock. Throw to refuse (the file is closed); return to wait
   * for it. Default: wait.
   */
  onBusy?: () => void | Promise<void>;
  /**
   * Called when the file locked after a wait is no longer the one at the path (its holder
   * replaced it), before the one there now is tried; `attempt` counts from 0.
   */
  onReplaced?: (attempt: number) => void;
}

/** Whether a failed non-blocking lock failed because someone else holds it. */
export function isLockBusy(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EWOULDBLOCK' || code === 'EAGAIN';
}

/**
 * Opens `file` (read and write) and takes an exclusive lock on it, answering the open handle:
 * closing it lets the lock go. While we waited, the holder may have replaced the file (renamed a
 * new one over the path, see lockNowSync): we then hold the lock of a file no longer there, and
 * try again on the one that is.
 */
export async function lockFile(file: string, options: LockOptions = {}): Promise<FileHandle> {
  for (let attempt = 0; ; attempt++) {
    const handle = await fs.open(file, 'r+');
    try {
      try {
        await flockAsync(handle.fd, 'exnb');
      } catch (err) {
        if (!isLockBusy(err)) throw err;
        await options.onBusy?.();
        await flockAsync(handle.fd, 'ex');
      }
      const [locked, current] = await Promise.all([handle.stat({ bigint: true }), fs.stat(file, { bigint: true }).catch(() => null)]);
      if (current !== null && locked.ino === current.ino && locked.dev === current.dev) return handle;
      options.onReplaced?.(attempt);
    } catch (err) {
      await handle.close();
      throw err;
    }
    await handle.close();
  }
}

/**
 * Takes an exclusive lock on `fd` at once, or throws (isLockBusy) if another holds it. Made for
 * a new file that is to replace a locked one: locked before it is renamed into place, it is
 * never seen unlocked by a process that finds it at the path.
 */
export function lockNowSync(fd: number): void {
  flockSync(fd, 'exnb');
}
