import type { FileHandle } from 'node:fs/promises';
import { QubesError } from '@qubes-bus/contracts';
import { checkCancelled } from './files';
import { SparseWriter } from './sparse-writer';
import type { ImportOptions, Revision, VolumeConfig } from './types';

/** What every driver checks the same way (Qubes' Volume base class and its drivers). */

/** A resize only grows, and only a writable volume. */
export function checkResize(config: VolumeConfig, size: number): void {
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
      if (bytes + chunk.byteLength > limit) {
        throw new QubesError('VOLUME_TOO_BIG', `the data for ${config.vid} is larger than ${options.size === undefined ? 'the volume' : 'declared'} (${limit} bytes)`, {
          details: { vid: config.vid, limit },
        });
      }
      const length = chunk.byteLength; // a chunk handed over is empty once written
      await writer.write(chunk);
      bytes += length;
      options.onProgress?.(bytes, limit);
    }
    await writer.finish();
  } finally {
    await writer.settle(); // nothing may write to the file once it is closed
  }
  if (options.size !== undefined && bytes < options.size) {
    throw new QubesError('VOLUME_IMPORT_SHORT', `the data for ${config.vid} ended after ${bytes} of the ${options.size} bytes declared`, {
      details: { vid: config.vid, size: options.size, received: bytes },
    });
  }
  return bytes;
}
