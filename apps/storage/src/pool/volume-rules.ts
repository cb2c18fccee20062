import { stat, type FileHandle } from 'node:fs/promises';
import { QubesError } from '@qubes-bus/contracts';
import { checkCancelled, copyImage, growFile, withNewFile } from './files';
import { SparseWriter } from './sparse-writer';
import type { ImportOptions, Revision, VolumeConfig } from './types';

/** What every driver checks the same way (Qubes' Volume base class and its drivers). */

/** A resize only grows, only a writable volume, and to whole 512-byte sectors (what disks hold). */
export function checkResize(config: VolumeConfig, size: number): void {
  if (size % 512 !== 0) {
    throw new QubesError('BAD_REQUEST', `a volume's size is a whole number of 512-byte sectors: ${size} bytes is not`, { details: { field: 'size', vid: config.vid } });
  }
  if (!config.rw) throw new QubesError('VOLUME_READ_ONLY', `volume ${config.vid} is read-only: it cannot be resized`, { details: { vid: config.vid } });
  if (size < config.size) {
    throw new QubesError('VOLUME_SHRINK_REFUSED', `volume ${config.vid} only grows: ${size} bytes is less than its ${config.size}`, {
      details: { vid: config.vid, size: config.size, requested: size },
    });
  }
}

export function requirePersistent(config: VolumeConfig, what: string): void {
  if (!config.save_on_stop) {
    throw new QubesError('VOLUME_NOT_PERSISTENT', `cannot ${what} ${config.vid}: it keeps no data between runs`, { details: { vid: config.vid } });
  }
}

/** The revision a revert goes to: `revision`, else the newest; the volume must be halted. */
export function revisionToRevert(config: VolumeConfig, dirty: boolean, revisions: readonly Revision[], revision: string | undefined): string {
  requirePersistent(config, 'revert');
  if (dirty) throw new QubesError('VM_RUNNING', `volume ${config.vid} is in use by a run: stop the VM first`, { details: { vid: config.vid } });
  const target = revision ?? revisions.at(-1)?.name;
  if (target === undefined || !revisions.some((r) => r.name === target)) {
    throw new QubesError('REVISION_NOT_FOUND', target === undefined ? `volume ${config.vid} has no revisions` : `volume ${config.vid} has no revision ${target}`, {
      details: { vid: config.vid, revision: target ?? null },
    });
  }
  return target;
}

/** A new sparse file of `limit` bytes at `file`, holding an import's data (writeImport's rules). */
export function writeImportFile(file: string, data: AsyncIterable<Uint8Array>, config: VolumeConfig, limit: number, options: ImportOptions): Promise<number> {
  return withNewFile(file, async (out) => {
    await out.truncate(limit);
    return writeImport(out, data, config, limit, options);
  });
}

/**
 * Writes an import's data into `out` (new, sparse, `limit` bytes): more than `limit` is
 * VOLUME_TOO_BIG, less than a declared size VOLUME_IMPORT_SHORT. Answers the bytes written.
 */
export async function writeImport(out: FileHandle, data: AsyncIterable<Uint8Array>, config: VolumeConfig, limit: number, options: ImportOptions): Promise<number> {
  const writer = new SparseWriter(out, { handOver: options.handOver === true });
  let bytes = 0;
  try {
    for await (const chunk of data) {
      checkCancelled(options.signal);
      checkImportSize(config, bytes + chunk.byteLength, limit, options.size, false);
      const length = chunk.byteLength; // a chunk handed over is empty once written
      await writer.write(chunk);
      bytes += length;
      options.onProgress?.(bytes, limit);
    }
    await writer.finish();
  } finally {
    await writer.settle(); // nothing may write to the file once it is closed
  }
  checkImportSize(config, bytes, limit, options.size);
  return bytes;
}

/**
 * The size an import's data has come to, against its limit, and once `complete`, against the
 * size declared (if one was).
 */
export function checkImportSize(config: VolumeConfig, bytes: number, limit: number, declared: number | undefined, complete = true): void {
  if (bytes > limit) {
    throw new QubesError('VOLUME_TOO_BIG', `the data for ${config.vid} is larger than ${declared === undefined ? 'the volume' : 'declared'} (${limit} bytes)`, {
      details: { vid: config.vid, limit },
    });
  }
  if (complete && declared !== undefined && bytes < declared) {
    throw new QubesError('VOLUME_IMPORT_SHORT', `the data for ${config.vid} ended after ${bytes} of the ${declared} bytes declared`, {
      details: { vid: config.vid, size: declared, received: bytes },
    });
  }
}

/**
 * Makes `target` a copy of `file` (a reflink where the filesystem has them), checked as an
 * import's data is, and grown to `limit`; answers the data's size. The size is the copy's: the
 * file may be someone else's to write, and only the copy is sure not to change.
 */
export async function copyFrom(file: string, target: string, config: VolumeConfig, limit: number, options: ImportOptions): Promise<number> {
  checkImportSize(config, (await stat(file)).size, limit, options.size, false); // too big: not even copied
  await copyImage(file, target, options);
  const { size } = await stat(target);
  checkImportSize(config, size, limit, options.size);
  if (size < limit) await growFile(target, limit);
  return size;
}
