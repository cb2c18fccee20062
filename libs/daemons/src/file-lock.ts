import { promises as fs } from 'node:fs';
import { promisify } from 'node:util';
import { flock } from 'fs-ext';

const flockAsync = promisify(flock);

/**
 * Runs `body` holding an exclusive kernel lock (flock) on `lockPath`, waiting for it in libuv's
 * thread pool so the event loop keeps running. The kernel drops the lock when the holder dies,
 * so no stale lock is ever left to break.
 */
export async function withFileLock<T>(lockPath: string, body: () => Promise<T>): Promise<T> {
  const handle = await fs.open(lockPath, 'a', 0o600);
  try {
    await flockAsync(handle.fd, 'ex');
    return await body();
  } finally {
    await handle.close(); // closing the descriptor releases the lock
  }
}
