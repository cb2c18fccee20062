import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { QubesError } from '@qubes-bus/contracts';
import type { CommandRunner } from './command-runner';
import type { BlockDevice } from './types';

// The file pool's device layer: loop devices and device-mapper snapshots, as Qubes'
// block-snapshot script makes them, and the on-disk form of a snapshot's store.

/** dm-snapshot's chunk, in 512-byte sectors (Qubes' block-snapshot script: 256, 128 KiB). */
export const CHUNK_SECTORS = 256;
export const SECTOR = 512;
/**
 * A persistent snapshot store nothing was written to: the header dm-snap-persistent writes
 * ("SnAp", valid, version 1, the chunk size) and a zeroed first metadata chunk.
 */
const EMPTY_COW = Buffer.alloc(2 * CHUNK_SECTORS * SECTOR);
EMPTY_COW.write('SnAp', 0, 'latin1');
EMPTY_COW.writeUInt32LE(1, 4);
EMPTY_COW.writeUInt32LE(1, 8);
EMPTY_COW.writeUInt32LE(CHUNK_SECTORS, 12);

/** Whether a persistent snapshot store holds any exception (anything beyond an empty header). */
export async function cowHoldsData(cow: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(cow, 'r');
  } catch {
    return false;
  }
  try {
    // the first exception goes into the first metadata chunk, right after the header: a store
    // whose header and first metadata chunk are those of an empty one (or all holes) holds none
    const head = Buffer.alloc(EMPTY_COW.length);
    await handle.read(head, 0, head.length, 0);
    return !head.equals(EMPTY_COW) && head.some((byte) => byte !== 0);
  } finally {
    await handle.close();
  }
}

/** A file's `stat -c %D:%i`: device number in hex, inode in decimal (Qubes' device names). */
export async function devIno(file: string): Promise<string> {
  const s = await stat(file, { bigint: true });
  return `${s.dev.toString(16)}:${s.ino}`;
}

export async function snapshotName(image: string, cow: string): Promise<string> {
  return `snapshot-${await devIno(image)}-${await devIno(cow)}`;
}

export interface DmDevice {
  name: string;
  open: number;
}

/** losetup and dmsetup as Qubes' block-snapshot script uses them, through the command runner. */
export class DeviceMapper {
  constructor(
    private readonly runner: CommandRunner,
    private readonly mapperDir: string,
  ) {}

  run(program: string, args: readonly string[]): Promise<string> {
    return this.runner.run(program, args);
  }

  /** The devices there are, with how many holders each has open. */
  async devices(): Promise<DmDevice[]> {
    const out = await this.run('dmsetup', ['info', '-c', '--noheadings', '--separator', ':', '-o', 'name,open']);
    return out
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && line !== 'No devices found')
      .map((line) => {
        const at = line.lastIndexOf(':');
        return { name: line.slice(0, at), open: Number(line.slice(at + 1)) };
      });
  }

  async loopAttachedTo(file: string): Promise<string | null> {
    const out = await this.run('losetup', ['-j', file]);
    return /^(\/dev\/loop\d+):/m.exec(out)?.[1] ?? null;
  }

  /**
   * The loop device of `file`: the one it has (a device's layers must share it), else a new one,
   * noted in `made` (let go again if the device it was for cannot be made).
   */
  async loopOf(file: string, made: string[] = []): Promise<string> {
    const attached = await this.loopAttachedTo(file);
    if (attached !== null) return attached;
    const loop = (await this.run('losetup', ['-f', '--show', file])).trim();
    made.push(loop);
    return loop;
  }

  /** Makes the device `name` unless it is there, its table from `table` (given the loops it makes). */
  private async ensure(name: string, table: (made: string[]) => Promise<string>): Promise<BlockDevice> {
    if (!(await this.devices()).some((d) => d.name === name)) {
      const made: string[] = [];
      try {
        await this.run('dmsetup', ['create', name, '--table', await table(made)]);
      } catch (err) {
        for (const loop of made) await this.run('losetup', ['-d', loop]).catch(() => undefined);
        throw err;
      }
    }
    return { path: path.join(this.mapperDir, name), type: 'block' };
  }

  /** `snapshot-<image>-<cow>`: the image as it was when the store was new. */
  async snapshot(image: string, cow: string, sectors: number): Promise<{ device: BlockDevice; name: string; loop: string | null }> {
    const name = await snapshotName(image, cow);
    let loop: string | null = null;
    const device = await this.ensure(name, async (made) => {
      loop = await this.loopOf(image, made);
      return `0 ${sectors} snapshot ${loop} ${await this.loopOf(cow, made)} P ${CHUNK_SECTORS}`;
    });
    return { device, name, loop };
  }

  /** A writable snapshot of a snapshot device, its own store in `cow`. */
  async snapshotOf(lower: { device: BlockDevice; name: string }, cow: string, sectors: number): Promise<BlockDevice> {
    const name = `${lower.name}-${await devIno(cow)}`;
    return this.ensure(name, async (made) => `0 ${sectors} snapshot ${lower.device.path} ${await this.loopOf(cow, made)} P ${CHUNK_SECTORS}`);
  }

  /**
   * `origin-<image>`: writes go to the image, the blocks they replace to its snapshots' stores. It
   * must sit on the very loop its snapshot does (dm links them by block device): the one the
   * snapshot was just made on, else the one its table names.
   */
  async origin(image: string, snapshot: { name: string; loop: string | null }, sectors: number): Promise<BlockDevice> {
    return this.ensure(`origin-${await devIno(image)}`, async () => {
      const loop = snapshot.loop ?? (await this.loopsUnder(snapshot.name))[0] ?? (await this.loopOf(image));
      return `0 ${sectors} snapshot-origin ${loop}`;
    });
  }

  /** A new, larger table for a live device: loaded, then swapped in. */
  async grow(name: string, table: string): Promise<void> {
    if (!(await this.devices()).some((d) => d.name === name)) return;
    await this.run('dmsetup', ['reload', name, '--table', table]);
    await this.run('dmsetup', ['resume', name]);
  }

  /** The loop devices a device sits on, in its table's order (an image's, then its store's). */
  private async loopsUnder(name: string): Promise<string[]> {
    const table = await this.run('dmsetup', ['table', name]);
    return [...table.matchAll(/\b(\d+):(\d+)\b|(\/dev\/loop\d+)/g)].flatMap((m) => (m[3] !== undefined ? [m[3]] : m[1] === '7' ? [`/dev/loop${m[2]}`] : []));
  }

  async hasOrigin(image: string): Promise<boolean> {
    return (await this.users(image)).origin;
  }

  /** Who uses the image: its origin (a run writing it), and the VMs holding snapshots of it. */
  async users(image: string): Promise<{ origin: boolean; held: DmDevice[] }> {
    const id = await devIno(image);
    const devices = await this.devices();
    return {
      origin: devices.some((d) => d.name === `origin-${id}`),
      held: devices.filter((d) => d.name.startsWith(`snapshot-${id}-`) && d.open > 0),
    };
  }

  async snapshotsOf(image: string): Promise<DmDevice[]> {
    const prefix = `snapshot-${await devIno(image)}-`;
    return (await this.devices()).filter((d) => d.name.startsWith(prefix));
  }

  /** Removes the image's snapshot devices no VM holds (the newest layers first). */
  async removeUnusedSnapshotsOf(image: string): Promise<void> {
    const unused = (await this.snapshotsOf(image)).filter((d) => d.open === 0).sort((a, b) => b.name.length - a.name.length);
    for (const device of unused) await this.removeIfUnused(device.name);
  }

  async removeIfThere(name: string): Promise<void> {
    const device = (await this.devices()).find((d) => d.name === name);
    if (device === undefined) return;
    if (device.open > 0) throw new QubesError('STORAGE_COMMAND_FAILED', `the device ${name} is still open (${device.open}): it cannot be removed`, { details: { command: 'dmsetup' } });
    await this.remove(name);
  }

  async removeIfUnused(name: string): Promise<void> {
    const device = (await this.devices()).find((d) => d.name === name);
    if (device !== undefined && device.open === 0) await this.remove(name);
  }

  /** Removes a device, then lets go of its loop devices (one still held is freed by its last holder). */
  private async remove(name: string): Promise<void> {
    const deps = await this.run('dmsetup', ['deps', '-o', 'devname', name]);
    await this.run('dmsetup', ['remove', name]);
    for (const [, dev] of deps.matchAll(/\((loop\d+)\)/g)) {
      await this.run('losetup', ['-d', `/dev/${dev}`]).catch(() => undefined);
    }
  }

  /** Merges a snapshot store back into its image and waits until the merge is done. */
  async merge(image: string, cow: string, sectors: number): Promise<void> {
    const name = await snapshotName(image, cow);
    await this.ensure(name, async (made) => `0 ${sectors} snapshot-merge ${await this.loopOf(image, made)} ${await this.loopOf(cow, made)} P ${CHUNK_SECTORS}`);
    for (;;) {
      const status = (await this.run('dmsetup', ['status', name])).trim();
      // "<start> <length> snapshot-merge <allocated>/<total> <metadata>": done when only metadata is left
      const progress = /(\d+)\/\d+ (\d+)$/.exec(status);
      if (progress === null) throw new QubesError('STORAGE_COMMAND_FAILED', `the merge into ${image} failed: ${status}`, { details: { command: 'dmsetup' } });
      if (progress[1] === progress[2]) break;
      await sleep(100);
    }
    await this.remove(name);
  }
}
