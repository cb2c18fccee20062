import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SparseWriter } from './sparse-writer';

const MiB = 1024 * 1024;

describe('the sparse writer (its own thread)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'qubes-bus-writer-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the chunks in order, leaves the zeros as holes, and takes a chunk handed over without a copy', async () => {
    const file = path.join(dir, 'image');
    const head = randomBytes(3 * MiB);
    const tail = randomBytes(MiB + 123);
    const whole = Buffer.concat([head, Buffer.alloc(8 * MiB), tail]);
    const owned = Buffer.from(tail); // a buffer of its own
    const handle = await open(file, 'w');
    try {
      const writer = new SparseWriter(handle, { handOver: true, maxPendingBytes: 2 * MiB });
      for (let at = 0; at < head.length; at += MiB) await writer.write(head.subarray(at, at + MiB)); // views: copied
      await writer.write(new Uint8Array(8 * MiB));
      await writer.write(owned);
      expect(owned.length).toBe(0); // moved to the writing thread
      expect(head.length).toBe(3 * MiB); // the caller's views untouched
      await writer.finish();
      expect(writer.bytes).toBe(whole.length);
    } finally {
      await handle.close();
    }
    expect(readFileSync(file).equals(whole)).toBe(true);
    expect(statSync(file).blocks * 512).toBeLessThan(6 * MiB); // the 8 MiB of zeros take no space
  });

  it('reports a write that fails (a descriptor it cannot write) with its errno code, and writes nothing after it', async () => {
    const file = path.join(dir, 'read-only');
    const handle = await open(file, 'w');
    await handle.close();
    const readOnly = await open(file, 'r');
    try {
      const writer = new SparseWriter(readOnly);
      await writer.write(randomBytes(MiB));
      await expect(writer.finish()).rejects.toMatchObject({ code: 'EBADF' });
      await expect(writer.write(randomBytes(10))).rejects.toMatchObject({ code: 'EBADF' });
    } finally {
      await readOnly.close();
    }
    expect(statSync(file).size).toBe(0);
  });
});
