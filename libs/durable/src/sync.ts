import { closeSync, constants, fsync, openSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';

/** fsync(2) of an open descriptor, waited for in libuv's thread pool (it takes milliseconds). */
export const fsyncFd: (fd: number) => Promise<void> = promisify(fsync);

/**
 * Makes the entries of `dir` durable: a file created, renamed or removed in it is only sure to
 * stay so once its directory is synced. Opening and closing a directory are quick system calls
 * made in line (a save on a busy event loop would pay a turn for each); only the fsync waits.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes the data of the file at `file` durable (its name is the directory's: see fsyncDir). */
export async function fsyncFile(file: string): Promise<void> {
  const handle = await open(file, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
