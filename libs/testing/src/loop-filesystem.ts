import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { requireBinary } from '@qubes-bus/daemons';

export type LoopFsType = 'xfs' | 'btrfs' | 'ext4';

export interface LoopFilesystem {
  /** Where it is mounted. */
  readonly path: string;
  readonly type: LoopFsType;
  /** Unmounts it and removes its image. */
  remove(): void;
}

const MKFS: Record<LoopFsType, { program: string; args: string[] }> = {
  // reflink=1 is xfsprogs' default since 5.1; said anyway
  xfs: { program: 'mkfs.xfs', args: ['-q', '-m', 'reflink=1'] },
  btrfs: { program: 'mkfs.btrfs', args: ['-q'] },
  ext4: { program: 'mkfs.ext4', args: ['-q', '-F'] },
};

/**
 * A real filesystem of `sizeMiB` in an image file, mounted through a loop device (root only): a
 * reflink-capable one (xfs, btrfs) to see shared extents, a small one to run out of space.
 */
export function loopFilesystem(type: LoopFsType, sizeMiB: number): LoopFilesystem {
  const mkfs = MKFS[type];
  const program = requireBinary(mkfs.program, `to make a ${type} filesystem for the tests`);
  const dir = mkdtempSync(path.join(tmpdir(), `qubes-bus-${type}-`));
  const image = path.join(dir, 'fs.img');
  const mountPoint = path.join(dir, 'mnt');
  mkdirSync(mountPoint);
  try {
    execFileSync('truncate', ['-s', `${sizeMiB}M`, image]);
    execFileSync(program, [...mkfs.args, image], { stdio: 'pipe' });
    execFileSync('mount', ['-o', 'loop', image, mountPoint], { stdio: 'pipe' });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    path: mountPoint,
    type,
    remove() {
      execFileSync('umount', [mountPoint], { stdio: 'pipe' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
