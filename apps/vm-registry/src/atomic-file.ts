import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * Writes `text` to `target` so that a crash at any moment leaves either the old file or the
 * new one, never a mix: temp file in the same directory, fsync, rename (or link, which never
 * replaces an existing file), fsync of the directory so the new name itself is durable.
 * Returns false when `exclusive` and the file already existed (it is left as it was).
 */
export async function writeFileAtomic(target: string, text: string, options: { exclusive?: boolean; mode?: number } = {}): Promise<boolean> {
  const dir = path.dirname(target);
  const temp = path.join(dir, `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, options.mode ?? 0o660);
  let created = true;
  try {
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (options.exclusive) {
      try {
        await fs.link(temp, target);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        created = false;
      }
    } else {
      await fs.rename(temp, target);
    }
  } finally {
    await fs.rm(temp, { force: true });
  }
  await fsyncDir(dir);
  return created;
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
