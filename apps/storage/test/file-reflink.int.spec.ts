import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statfsSync, statSync } from 'node:fs';
import path from 'node:path';
import { loopFilesystem, rejectionOf, tmpDataDir, type LoopFilesystem, type TmpDir } from '@qubes-bus/testing';
import { FileReflinkPool } from '../src/pool/file-reflink';
import type { Volume, VolumeConfig } from '../src/pool/types';
import { GiB, MiB, pieces, readAt, volumeConfig, writeAt } from './images';


// Buffers are compared with equals(): Jest's toEqual walks a megabyte byte by byte, for seconds.

// Real files on real filesystems: xfs with reflinks, and ext4 without, each loop-mounted.
let xfs: LoopFilesystem;
let ext4: LoopFilesystem;
let small: LoopFilesystem;
let scratch: TmpDir;

beforeAll(() => {
  xfs = loopFilesystem('xfs', 3072);
  ext4 = loopFilesystem('ext4', 3072);
  small = loopFilesystem('ext4', 64);
  scratch = tmpDataDir();
});

afterAll(() => {
  for (const fs of [xfs, ext4, small]) fs?.remove();
  scratch?.remove();
});


function usedBytes(dir: string): number {
  const fs = statfsSync(dir);
  return (fs.blocks - fs.bfree) * fs.bsize;
}

async function persistentVolume(pool: FileReflinkPool, vid: string, overrides: Partial<VolumeConfig> = {}): Promise<Volume> {
  const volume = pool.volume(volumeConfig(vid, overrides));
  await volume.create();
  return volume;
}

describe('the file-reflink pool, on real filesystems', () => {
  it('runs an AppVM on its template: root a fresh snapshot each run, private kept, volatile reset; clones, grows and removes it', async () => {
    const pool = new FileReflinkPool('test', { dir_path: xfs.path });
    await pool.setup();
    const templateRoot = await persistentVolume(pool, 'vm-templates/fedora/root', { size: 1 * GiB });
    const templateData = randomBytes(MiB);
    writeAt(path.join(xfs.path, 'vm-templates/fedora/root.img'), 0, templateData);

    const root = pool.volume(volumeConfig('appvms/work/root', { size: 1 * GiB, snap_on_start: true, save_on_stop: false, source: 'vm-templates/fedora/root' }), templateRoot);
    const privateVolume = await persistentVolume(pool, 'appvms/work/private');
    const volatile = pool.volume(volumeConfig('appvms/work/volatile', { size: GiB, save_on_stop: false }));
    await volatile.create();

    // first run: the VM sees its template's root, writes to all three
    for (const volume of [root, privateVolume, volatile]) await volume.start();
    expect(readAt(root.blockDevice!.path, 0, MiB).equals(templateData)).toBe(true);
    const pattern = Buffer.concat([Buffer.from('private data of work\n'), randomBytes(MiB)]);
    writeAt(privateVolume.blockDevice!.path, 5 * MiB, pattern);
    writeAt(root.blockDevice!.path, 0, Buffer.from('changed in the AppVM'));
    writeAt(volatile.blockDevice!.path, 0, Buffer.from('swap'));
    expect(await privateVolume.isDirty()).toBe(true);
    for (const volume of [root, privateVolume, volatile]) await volume.stop();
    expect(existsSync(path.join(xfs.path, 'appvms/work/root.img'))).toBe(false);
    expect(existsSync(path.join(xfs.path, 'appvms/work/volatile-dirty.img'))).toBe(false);

    // second run: root is the template's again, private kept, volatile empty
    for (const volume of [root, privateVolume, volatile]) await volume.start();
    expect(readAt(root.blockDevice!.path, 0, MiB).equals(templateData)).toBe(true);
    expect(readAt(privateVolume.blockDevice!.path, 5 * MiB, pattern.length).equals(pattern)).toBe(true);
    expect(readAt(volatile.blockDevice!.path, 0, 4).equals(Buffer.alloc(4))).toBe(true);
    for (const volume of [root, privateVolume, volatile]) await volume.stop();

    // clone: shared extents, so no time and no space, whatever the size
    const clone = await persistentVolume(pool, 'appvms/work-clone/private');
    const before = usedBytes(xfs.path);
    const started = performance.now();
    const copied = await clone.importVolume(privateVolume);
    const took = performance.now() - started;
    expect(copied.reflinked).toBe(true);
    expect(took).toBeLessThan(1_000);
    expect(usedBytes(xfs.path) - before).toBeLessThan(4 * MiB);
    const clonePath = path.join(xfs.path, 'appvms/work-clone/private.img');
    expect(readAt(clonePath, 5 * MiB, pattern.length).equals(pattern)).toBe(true);

    // grow: the new size is what the VM sees, the data is intact
    await clone.resize(3 * GiB);
    expect(statSync(clonePath).size).toBe(3 * GiB);
    expect(clone.config.size).toBe(3 * GiB);
    expect(readAt(clonePath, 5 * MiB, pattern.length).equals(pattern)).toBe(true);

    // remove: every file of the volume goes, and the VM's directory with the last of them
    for (const volume of [root, privateVolume, volatile]) await volume.remove();
    await clone.remove();
    expect(existsSync(path.join(xfs.path, 'appvms/work'))).toBe(false);
    expect(existsSync(path.join(xfs.path, 'appvms/work-clone'))).toBe(false);
    expect(readdirSync(path.join(xfs.path, 'vm-templates/fedora'))).toEqual(['root.img']);
  });

  it('clones a 1 GiB volume on xfs in well under a second and nearly no space', async () => {
    // a file offered to an import that a stopped service never took in goes at the next start
    mkdirSync(path.join(xfs.path, '.import'), { recursive: true });
    closeSync(openSync(path.join(xfs.path, '.import/left-over.img'), 'w'));
    const pool = new FileReflinkPool('test', { dir_path: xfs.path });
    await pool.setup();
    expect(pool.scratchDir()).toBe(path.join(xfs.path, '.import'));
    expect(existsSync(path.join(xfs.path, '.import'))).toBe(false);
    const source = await persistentVolume(pool, 'appvms/big/private', { size: GiB });
    const data = path.join(xfs.path, 'appvms/big/private.img');
    // a full gigabyte of data, not holes: a plain copy would take seconds and a gigabyte
    const block = randomBytes(4 * MiB);
    for (let offset = 0; offset < GiB; offset += block.length) writeAt(data, offset, block);
    execFileSync('sync', [data]);
    const clone = await persistentVolume(pool, 'appvms/big-clone/private', { size: GiB });
    const before = usedBytes(xfs.path);
    const started = performance.now();
    expect((await clone.importVolume(source)).reflinked).toBe(true);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(usedBytes(xfs.path) - before).toBeLessThan(8 * MiB);
    expect(readAt(path.join(xfs.path, 'appvms/big-clone/private.img'), 700 * MiB, MiB).equals(readAt(data, 700 * MiB, MiB))).toBe(true);
    await source.remove();
    await clone.remove();
  });

  it('on ext4, which has no reflinks: refuses the pool unless told setup_check=no, and then copies stay sparse', async () => {
    const refused = await rejectionOf(new FileReflinkPool('plain', { dir_path: ext4.path }).setup());
    expect(refused.code).toBe('POOL_INVALID');
    expect(refused.message).toContain('setup_check=no');

    const pool = new FileReflinkPool('plain', { dir_path: ext4.path, setup_check: 'no' });
    await pool.setup();
    expect(pool.scratchDir()).toBeNull(); // an import's file taken in here would be a second copy
    const source = await persistentVolume(pool, 'appvms/sparse/private', { size: GiB });
    const image = path.join(ext4.path, 'appvms/sparse/private.img');
    const pattern = randomBytes(8 * MiB);
    writeAt(image, 100 * MiB, pattern);
    writeAt(image, 900 * MiB, pattern);
    const clone = await persistentVolume(pool, 'appvms/sparse-clone/private', { size: GiB });
    const progress: number[] = [];
    expect((await clone.importVolume(source, { onProgress: (done) => progress.push(done) })).reflinked).toBe(false);
    const copy = path.join(ext4.path, 'appvms/sparse-clone/private.img');
    expect(statSync(copy).size).toBe(GiB);
    expect(statSync(copy).blocks * 512).toBeLessThan(24 * MiB); // 16 MiB of data, the rest holes
    expect(readAt(copy, 900 * MiB, pattern.length).equals(pattern)).toBe(true);
    expect(progress.at(-1)).toBe(GiB);

    // a long copy stops when cancelled, and leaves nothing of itself
    const block = randomBytes(4 * MiB);
    for (let offset = 0; offset < 768 * MiB; offset += block.length) writeAt(image, offset, block);
    const cancel = new AbortController();
    const cancelled = await rejectionOf(clone.importVolume(source, { signal: cancel.signal, onProgress: (done, total) => done < total && cancel.abort() }));
    expect(cancelled.code).toBe('OPERATION_CANCELLED');
    expect(readdirSync(path.dirname(copy))).toEqual(['private.img']);
    expect(readAt(copy, 900 * MiB, pattern.length).equals(pattern)).toBe(true); // the earlier clone, untouched
    await source.remove();
    await clone.remove();
  });

  it("commits a TemplateVM's root at each stop, and reverts it to the revision before", async () => {
    const pool = new FileReflinkPool('test', { dir_path: xfs.path, revisions_to_keep: '2' });
    await pool.setup();
    const root = await persistentVolume(pool, 'vm-templates/debian/root', { size: 64 * MiB, revisions_to_keep: 2 });
    const image = path.join(xfs.path, 'vm-templates/debian/root.img');

    const contents: Buffer[] = [];
    for (const version of ['first', 'second', 'third']) {
      await root.start();
      writeAt(root.blockDevice!.path, 0, Buffer.from(`${version} update of the template\n`));
      await root.stop();
      contents.push(readFileSync(image));
    }
    const revisions = await root.revisions();
    expect(revisions).toHaveLength(2); // revisions_to_keep
    expect(readAt(image, 0, 5).toString()).toBe('third');

    await root.revert();
    expect(readFileSync(image).equals(contents[1]!)).toBe(true);
    // the image reverted from is kept as a revision in its turn
    const after = await root.revisions();
    expect(after.map((r) => r.name)).toContain(revisions[0]!.name);
    await root.revert(revisions[0]!.name);
    expect(readFileSync(image).equals(contents[0]!)).toBe(true);

    expect((await rejectionOf(root.revert('2001-01-01T00:00:00Z'))).code).toBe('REVISION_NOT_FOUND');
    await root.start();
    expect((await rejectionOf(root.revert())).code).toBe('VM_RUNNING');
    await root.stop();
    await root.remove();
    expect(existsSync(path.join(xfs.path, 'vm-templates/debian'))).toBe(false);
  });

  it('refuses bad input clearly and leaves no partial volume behind', async () => {
    const pool = new FileReflinkPool('small', { dir_path: small.path, setup_check: 'no', revisions_to_keep: '0' });
    await pool.setup();
    const volume = await persistentVolume(pool, 'appvms/victim/private', { size: 16 * MiB });
    const image = path.join(small.path, 'appvms/victim/private.img');
    const original = Buffer.from('data that must survive every failed import');
    writeAt(image, 0, original);
    const unchanged = (): void => {
      expect(readAt(image, 0, original.length).equals(original)).toBe(true);
      expect(readdirSync(path.dirname(image))).toEqual(['private.img']);
    };

    const shrink = await rejectionOf(volume.resize(8 * MiB));
    expect(shrink.code).toBe('VOLUME_SHRINK_REFUSED');
    expect(statSync(image).size).toBe(16 * MiB);

    const tooBig = await rejectionOf(volume.importData(pieces(randomBytes(3 * MiB)), { size: 2 * MiB }));
    expect(tooBig.code).toBe('VOLUME_TOO_BIG');
    unchanged();
    expect((await rejectionOf(volume.importData(pieces(randomBytes(17 * MiB))))).code).toBe('VOLUME_TOO_BIG');
    unchanged();
    expect((await rejectionOf(volume.importData(pieces(randomBytes(MiB)), { size: 2 * MiB }))).code).toBe('VOLUME_IMPORT_SHORT');
    unchanged();

    // the filesystem holds 64 MiB: 100 MiB of data cannot fit
    const full = await rejectionOf(volume.importData(pieces(randomBytes(100 * MiB)), { size: 100 * MiB }));
    expect(full.code).toBe('STORAGE_FULL');
    unchanged();

    const cancel = new AbortController();
    const other = pool.volume(volumeConfig('appvms/other/private', { size: 16 * MiB }));
    const cancelled = await rejectionOf(
      other.importData(pieces(randomBytes(16 * MiB)), { signal: cancel.signal, onProgress: (done) => done >= 4 * MiB && cancel.abort() }),
    );
    expect(cancelled.code).toBe('OPERATION_CANCELLED');
    expect(readdirSync(path.join(small.path, 'appvms/other'))).toEqual([]);

    // a good import replaces the data whole
    const fresh = randomBytes(MiB);
    expect(await volume.importData(pieces(fresh), { size: MiB })).toEqual({ bytes: MiB });
    expect(readFileSync(image).equals(fresh)).toBe(true);
    expect(volume.config.size).toBe(MiB);

    const readOnly = pool.volume(volumeConfig('appvms/victim/kernel', { rw: false, save_on_stop: false }));
    expect((await rejectionOf(readOnly.resize(GiB))).code).toBe('VOLUME_READ_ONLY');
    expect((await rejectionOf(readOnly.exportPath())).code).toBe('VOLUME_NOT_PERSISTENT');
  });

  it('refuses pools it cannot set up: a path that does not exist, a relative one, an unknown option', async () => {
    const missing = path.join(scratch.path, 'not-there');
    expect((await rejectionOf(new FileReflinkPool('gone', { dir_path: missing }).setup())).code).toBe('POOL_INVALID');
    expect(existsSync(missing)).toBe(false);
    const file = path.join(scratch.path, 'a-file');
    mkdirSync(path.dirname(file), { recursive: true });
    closeSync(openSync(file, 'w'));
    expect((await rejectionOf(new FileReflinkPool('file', { dir_path: file, setup_check: 'no' }).setup())).code).toBe('POOL_INVALID');
    expect(() => new FileReflinkPool('rel', { dir_path: 'var/lib' })).toThrow(/absolute/);
    expect(() => new FileReflinkPool('odd', { dir_path: scratch.path, colour: 'red' })).toThrow(/no option "colour"/);
    expect(() => new FileReflinkPool('odd', { dir_path: scratch.path, revisions_to_keep: '-1' })).toThrow(/whole number/);
  });
});
