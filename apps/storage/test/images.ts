import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { VolumeConfig } from '../src/pool/types';

/** Test helpers on image files: what a VM reads and writes on its disk, at an offset. */

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export function readAt(file: string, offset: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, offset);
    return buffer;
  } finally {
    closeSync(fd);
  }
}

export function writeAt(file: string, offset: number, data: Buffer): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** `data` as a stream of pieces, as it comes from a pipe. */
export async function* pieces(data: Buffer, size = MiB): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

/** A persistent, writable 2 GiB volume named after the last part of its vid, with `overrides`. */
export function volumeConfig(vid: string, overrides: Partial<VolumeConfig> = {}): VolumeConfig {
  return {
    name: path.basename(vid),
    pool: 'test',
    vid,
    size: 2 * GiB,
    rw: true,
    snap_on_start: false,
    save_on_stop: true,
    source: null,
    revisions_to_keep: 1,
    ...overrides,
  };
}
