import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { QubesError } from '@qubes-bus/contracts';
import type { CommandRunner } from './command-runner';
import { FilePool } from './file-dm';
import { MiB, volumeConfig } from '../../test/images';
import type { Volume, VolumeConfig, VolumeContext } from './types';

/**
 * A fake device-mapper and loop driver, because this kernel has no device-mapper: it records each
 * command the `file` pool runs and keeps the loops and devices those commands would leave, with
 * their holders, so that `losetup -j`, `dmsetup info` and `dmsetup deps` answer as the real ones
 * would. A test opens a device to stand for a domain using it.
 */
class FakeDeviceMapper implements CommandRunner {
  readonly calls: string[] = [];
  /** loop device → the dev:ino of its file. */
  readonly loops = new Map<string, { file: string; id: string; autoclear: boolean }>();
  readonly devices = new Map<string, { table: string; open: number; deps: string[] }>();
  mergeStatus = (sectors: string): string => `0 ${sectors} snapshot-merge 16/${sectors} 16`;
  /** What `dmsetup create` says, when it is to fail (a kernel out of memory, a bad table). */
  createFails: string | null = null;

  async run(program: string, args: readonly string[]): Promise<string> {
    await new Promise((resolve) => setTimeout(resolve, 1)); // a command takes its time, as a real one does
    const command = `${program} ${args.join(' ')}`;
    const fail = (why: string): never => {
      throw new QubesError('STORAGE_COMMAND_FAILED', `${command}: ${why}`);
    };
    if (program === 'dmsetup' && args[0] === 'info') {
      return [...this.devices].map(([name, d]) => `${name}:${d.open}`).join('\n') || 'No devices found';
    }
    this.calls.push(command);
    if (program === 'losetup') {
      if (args[0] === '-j') {
        const id = fileId(args[1]!);
        return [...this.loops].filter(([, l]) => l.id === id).map(([dev]) => `${dev}: []: (${args[1]})\n`).join('');
      }
      if (args[0] === '-f') {
        const dev = `/dev/loop${this.loops.size === 0 ? 0 : Math.max(...[...this.loops.keys()].map((d) => Number(d.slice(9)))) + 1}`;
        this.loops.set(dev, { file: args[2]!, id: fileId(args[2]!), autoclear: false });
        return `${dev}\n`;
      }
      if (args[0] === '-d') {
        const loop = this.loops.get(args[1]!) ?? fail('no such loop');
        if (this.holders(args[1]!) > 0) loop.autoclear = true;
        else this.loops.delete(args[1]!);
        return '';
      }
      if (args[0] === '--set-capacity') return this.loops.has(args[1]!) ? '' : fail('no such loop');
    }
    if (program === 'dmsetup') {
      const name = args[0] === 'create' || args[0] === 'reload' ? args[1]! : args.at(-1)!;
      const device = this.devices.get(name);
      switch (args[0]) {
        case 'create': {
          if (device !== undefined) fail('exists');
          if (this.createFails !== null) fail(this.createFails);
          const table = args[3]!;
          const deps = table.split(' ').filter((word) => word.startsWith('/dev/'));
          for (const dep of deps) {
            if (dep.startsWith('/dev/loop') ? !this.loops.has(dep) : !this.devices.has(path.basename(dep))) fail(`no ${dep}`);
            if (!dep.startsWith('/dev/loop')) this.devices.get(path.basename(dep))!.open++;
          }
          this.devices.set(name, { table, open: 0, deps });
          return '';
        }
        case 'remove': {
          if (device === undefined) return fail('no such device');
          if (device.open > 0) fail('busy');
          this.devices.delete(name);
          for (const dep of device.deps) {
            if (!dep.startsWith('/dev/loop')) this.devices.get(path.basename(dep))!.open--;
            else if (this.loops.get(dep)?.autoclear === true && this.holders(dep) === 0) this.loops.delete(dep);
          }
          return '';
        }
        case 'deps':
          return ` ${device!.deps.length} dependencies\t: ${device!.deps.map((d) => `(${path.basename(d)})`).join(' ')}\n`;
        case 'reload':
          device!.table = args[3]!;
          return '';
        case 'resume':
          return '';
        case 'status':
          return this.mergeStatus(device!.table.split(' ')[1]!);
        case 'table': // as the kernel shows it: devices by major:minor
          return `${device!.table.replace(/\/dev\/loop(\d+)/g, '7:$1')}\n`;
      }
    }
    return fail('not faked');
  }

  private holders(loop: string): number {
    return [...this.devices.values()].filter((d) => d.deps.includes(loop)).length;
  }

  /** The commands run since the last take, and forget them. */
  take(): string[] {
    return this.calls.splice(0);
  }
}

/** `stat -c %D:%i`, the id Qubes names its devices by. */
function fileId(file: string): string {
  const s = statSync(file, { bigint: true });
  return `${s.dev.toString(16)}:${s.ino}`;
}

const SECTORS = (64 * MiB) / 512;

describe('the file pool, with device-mapper faked (this kernel has none): its images for real, the loop and dmsetup commands and tables checked', () => {
  let dir: string;
  let dm: FakeDeviceMapper;
  let pool: FilePool;

  const config = (vm: string, name: string, overrides: Partial<VolumeConfig> = {}): VolumeConfig =>
    volumeConfig(`appvms/${vm}/${name}`, { pool: 'varlibqubes', size: 64 * MiB, ...overrides });
  const image = (vid: string): string => path.join(dir, `${vid}.img`);

  /** A template's root and private, and an AppVM of it with root, private and volatile. */
  async function templateAndAppVm(virtMode: string): Promise<{ templateRoot: Volume; app: Record<string, Volume> }> {
    const templateRoot = pool.volume(config('fedora', 'root', { vid: 'vm-templates/fedora/root' }));
    await templateRoot.create();
    const configs = [
      config('work', 'root', { snap_on_start: true, save_on_stop: false, source: 'vm-templates/fedora/root' }),
      config('work', 'private'),
      config('work', 'volatile', { save_on_stop: false }),
    ];
    const context: VolumeContext = { virtMode, volumes: configs };
    const app: Record<string, Volume> = {};
    for (const c of configs) {
      app[c.name] = pool.volume(c, c.snap_on_start ? templateRoot : undefined, context);
      await app[c.name]!.create();
    }
    return { templateRoot, app };
  }

  /**
   * What dm-snapshot does to a persistent store when a run overwrites a block: the header, the
   * exception (old chunk 0 kept in chunk 8) in the first metadata chunk, the old block at chunk 8.
   */
  function recordWrite(cow: string, byte: number): void {
    const header = Buffer.alloc(16);
    header.write('SnAp', 0, 'latin1');
    header.writeUInt32LE(1, 4);
    header.writeUInt32LE(1, 8);
    header.writeUInt32LE(256, 12);
    const exception = Buffer.alloc(16);
    exception.writeBigUInt64LE(8n, 8);
    const fd = openSync(cow, 'r+');
    writeSync(fd, header, 0, 16, 0);
    writeSync(fd, exception, 0, 16, 128 * 1024);
    writeSync(fd, Buffer.alloc(4096, byte), 0, 4096, MiB);
    closeSync(fd);
  }

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'qubes-bus-file-pool-'));
    dm = new FakeDeviceMapper();
    pool = new FilePool('varlibqubes', { dir_path: dir }, dm, '/dev/mapper');
    await pool.setup();
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("runs a template's root as origin-<root> with snapshot-<root>-<root-cow> keeping the old blocks, and commits at stop: the store becomes the one revision", async () => {
    const root = pool.volume(config('fedora', 'root', { vid: 'vm-templates/fedora/root' }));
    await root.create();
    const [img, cow] = [image('vm-templates/fedora/root'), `${dir}/vm-templates/fedora/root-cow.img`];
    expect(statSync(img).size).toBe(64 * MiB);
    await root.start();
    const snapshot = `snapshot-${fileId(img)}-${fileId(cow)}`;
    const origin = `origin-${fileId(img)}`;
    expect(dm.take()).toEqual([
      `losetup -j ${img}`,
      `losetup -f --show ${img}`,
      `losetup -j ${cow}`,
      `losetup -f --show ${cow}`,
      `dmsetup create ${snapshot} --table 0 ${SECTORS} snapshot /dev/loop0 /dev/loop1 P 256`,
      `dmsetup create ${origin} --table 0 ${SECTORS} snapshot-origin /dev/loop0`,
    ]);
    expect(root.blockDevice).toEqual({ path: `/dev/mapper/${origin}`, type: 'block' });
    expect(await root.isDirty()).toBe(false);
    // written in place while it runs: not exported, even before the first write
    await expect(root.exportPath()).rejects.toMatchObject({ code: 'VM_RUNNING' });

    recordWrite(cow, 9);
    expect(await root.isDirty()).toBe(true);
    await expect(root.exportPath()).rejects.toMatchObject({ code: 'VM_RUNNING' });
    await root.stop();
    expect(dm.take()).toEqual([
      `dmsetup deps -o devname ${origin}`,
      `dmsetup remove ${origin}`,
      'losetup -d /dev/loop0',
      `dmsetup deps -o devname ${snapshot}`,
      `dmsetup remove ${snapshot}`,
      'losetup -d /dev/loop0',
      'losetup -d /dev/loop1',
    ]);
    expect([dm.devices.size, dm.loops.size]).toEqual([0, 0]);
    expect(readFileSync(`${cow}.old`).subarray(MiB, MiB + 4096).equals(Buffer.alloc(4096, 9))).toBe(true);
    expect(statSync(cow).blocks).toBe(0);
    expect(await root.revisions()).toHaveLength(1);
    expect(await root.exportPath()).toBe(img);

    // a run that writes nothing keeps the revision there is
    const revision = await root.revisions();
    await root.start();
    await root.stop();
    expect(await root.revisions()).toEqual(revision);
  });

  it("gives every PV VM of a template one shared, read-only snapshot-<root>-<root-cow>, kept while the template runs, and a volatile file new at each start", async () => {
    const { templateRoot, app } = await templateAndAppVm('pvh');
    const other = pool.volume(config('mail', 'root', { snap_on_start: true, save_on_stop: false, source: 'vm-templates/fedora/root' }), templateRoot);
    const [img, cow] = [image('vm-templates/fedora/root'), `${dir}/vm-templates/fedora/root-cow.img`];

    await templateRoot.start();
    const snapshot = `snapshot-${fileId(img)}-${fileId(cow)}`;
    dm.take();
    await app['root']!.start();
    await other.start();
    // the template's committed snapshot is there already: the VMs take it as it is
    expect(dm.take().filter((c) => c.startsWith('dmsetup create'))).toEqual([]);
    expect(app['root']!.blockDevice).toEqual({ path: `/dev/mapper/${snapshot}`, type: 'block', readOnly: true });
    expect(other.blockDevice).toEqual(app['root']!.blockDevice);

    await app['volatile']!.start();
    expect(app['volatile']!.blockDevice).toEqual({ path: image('appvms/work/volatile'), type: 'file' });
    recordWrite(image('appvms/work/volatile'), 3);
    dm.devices.get(snapshot)!.open = 2; // two domains hold it

    // the template stops (its origin goes, its run committed); the VMs' snapshot stays, in use
    await templateRoot.stop();
    expect(dm.devices.has(snapshot)).toBe(true);
    expect(existsSync(`${cow}.old`)).toBe(false); // the template wrote nothing: nothing to commit

    dm.devices.get(snapshot)!.open = 1;
    await other.stop();
    expect(dm.devices.has(snapshot)).toBe(true);
    dm.devices.get(snapshot)!.open = 0;
    await app['root']!.stop();
    await app['volatile']!.stop();
    expect([dm.devices.size, dm.loops.size]).toEqual([0, 0]);
    expect(existsSync(image('appvms/work/volatile'))).toBe(false);
    await app['volatile']!.start();
    expect(statSync(image('appvms/work/volatile')).blocks).toBe(0);
  });

  it('gives a template-based HVM one writable layer in dom0, snapshot-<template root>-<volatile>, with volatile reset at each start and no disk of its own', async () => {
    const { app } = await templateAndAppVm('hvm');
    const [img, volatile] = [image('vm-templates/fedora/root'), image('appvms/work/volatile')];
    recordWrite(volatile, 5); // left by an earlier run
    await app['root']!.start();
    await app['volatile']!.start();
    const layer = `snapshot-${fileId(img)}-${fileId(volatile)}`;
    expect(dm.take().filter((c) => c.startsWith('dmsetup create'))).toEqual([`dmsetup create ${layer} --table 0 ${SECTORS} snapshot /dev/loop0 /dev/loop1 P 256`]);
    expect(statSync(volatile).blocks).toBe(0);
    expect(statSync(volatile).size).toBe(statSync(img).size);
    expect(app['root']!.blockDevice).toEqual({ path: `/dev/mapper/${layer}`, type: 'block' });
    expect(app['volatile']!.blockDevice).toBeNull();

    await app['root']!.stop();
    await app['volatile']!.stop();
    expect([dm.devices.size, dm.loops.size, existsSync(volatile)]).toEqual([0, 0, false]);
  });

  it("gives a disposable VM's private a writable snapshot over its AppVM's committed private, its store new at each start", async () => {
    const source = pool.volume(config('work', 'private'));
    await source.create();
    const dispPrivate = pool.volume(config('disp1', 'private', { snap_on_start: true, save_on_stop: false, source: 'appvms/work/private' }), source);
    await dispPrivate.start();
    const [img, sourceCow, cow] = [image('appvms/work/private'), `${dir}/appvms/work/private-cow.img`, `${dir}/appvms/disp1/private-cow.img`];
    const lower = `snapshot-${fileId(img)}-${fileId(sourceCow)}`;
    const upper = `${lower}-${fileId(cow)}`;
    expect(dm.take().filter((c) => c.startsWith('dmsetup create'))).toEqual([
      `dmsetup create ${lower} --table 0 ${SECTORS} snapshot /dev/loop0 /dev/loop1 P 256`,
      `dmsetup create ${upper} --table 0 ${SECTORS} snapshot /dev/mapper/${lower} /dev/loop2 P 256`,
    ]);
    expect(dispPrivate.blockDevice).toEqual({ path: `/dev/mapper/${upper}`, type: 'block' });
    await dispPrivate.stop();
    expect(dm.take().filter((c) => c.startsWith('dmsetup remove'))).toEqual([`dmsetup remove ${upper}`, `dmsetup remove ${lower}`]);
    expect([dm.devices.size, dm.loops.size, existsSync(cow)]).toEqual([0, 0, false]);
  });

  it('reverts by merging the revision into the image with a snapshot-merge device, waiting for the merge; refused while a VM runs on the volume', async () => {
    const { templateRoot, app } = await templateAndAppVm('pv');
    const [img, cow] = [image('vm-templates/fedora/root'), `${dir}/vm-templates/fedora/root-cow.img`];
    await expect(templateRoot.revert()).rejects.toMatchObject({ code: 'REVISION_NOT_FOUND' });
    await templateRoot.start();
    recordWrite(cow, 1);
    await templateRoot.stop();
    const [revision] = await templateRoot.revisions();

    await app['root']!.start();
    const snapshot = `snapshot-${fileId(img)}-${fileId(cow)}`;
    dm.devices.get(snapshot)!.open = 1;
    await expect(templateRoot.revert()).rejects.toMatchObject({ code: 'VM_RUNNING', message: expect.stringContaining(snapshot) });
    // nor is new data imported under a VM that reads the image
    await expect(templateRoot.importData((async function* () { yield Buffer.alloc(512, 1); })())).rejects.toMatchObject({ code: 'VM_RUNNING' });
    dm.devices.get(snapshot)!.open = 0;
    await app['root']!.stop();

    let polls = 0;
    dm.mergeStatus = (sectors) => (++polls < 3 ? `0 ${sectors} snapshot-merge 2064/${sectors} 16` : `0 ${sectors} snapshot-merge 16/${sectors} 16`);
    const merge = `snapshot-${fileId(img)}-${fileId(`${cow}.old`)}`;
    dm.take();
    await templateRoot.revert(revision!.name);
    expect(dm.take()).toEqual([
      `losetup -j ${img}`,
      `losetup -f --show ${img}`,
      `losetup -j ${cow}.old`,
      `losetup -f --show ${cow}.old`,
      `dmsetup create ${merge} --table 0 ${SECTORS} snapshot-merge /dev/loop0 /dev/loop1 P 256`,
      `dmsetup status ${merge}`,
      `dmsetup status ${merge}`,
      `dmsetup status ${merge}`,
      `dmsetup deps -o devname ${merge}`,
      `dmsetup remove ${merge}`,
      'losetup -d /dev/loop0',
      'losetup -d /dev/loop1',
    ]);
    expect(existsSync(`${cow}.old`)).toBe(false);
    expect(await templateRoot.revisions()).toEqual([]);

    dm.mergeStatus = (sectors) => `0 ${sectors} snapshot-merge Merge failed`;
    await templateRoot.start();
    recordWrite(cow, 2);
    await templateRoot.stop();
    await expect(templateRoot.revert()).rejects.toMatchObject({ code: 'STORAGE_COMMAND_FAILED' });
  });

  it('grows a running image, its loop device and its origin device (a new table), refuses to shrink or to resize a snapshot, and an import replaces the data and drops the stores', async () => {
    const privateVolume = pool.volume(config('work', 'private'));
    await privateVolume.create();
    await privateVolume.start();
    const img = image('appvms/work/private');
    dm.take();
    await privateVolume.resize(128 * MiB);
    const origin = `origin-${fileId(img)}`;
    expect(dm.take()).toEqual([
      `losetup -j ${img}`,
      'losetup --set-capacity /dev/loop0',
      `dmsetup reload ${origin} --table 0 ${(128 * MiB) / 512} snapshot-origin /dev/loop0`,
      `dmsetup resume ${origin}`,
    ]);
    expect(statSync(img).size).toBe(128 * MiB);
    await expect(privateVolume.resize(MiB)).rejects.toMatchObject({ code: 'VOLUME_SHRINK_REFUSED' });
    await expect(privateVolume.resize(256 * MiB + 100)).rejects.toMatchObject({ code: 'BAD_REQUEST' }); // not whole sectors
    const snapshot = pool.volume(config('disp', 'private', { snap_on_start: true, save_on_stop: false, source: 'appvms/work/private' }), privateVolume);
    await expect(snapshot.resize(256 * MiB)).rejects.toMatchObject({ code: 'VOLUME_READ_ONLY' });
    recordWrite(`${dir}/appvms/work/private-cow.img`, 4);
    await expect(privateVolume.importData((async function* () { yield Buffer.alloc(10, 1); })())).rejects.toMatchObject({ code: 'VM_RUNNING' });
    await privateVolume.stop();
    expect(await privateVolume.revisions()).toHaveLength(1);

    const data = Buffer.alloc(MiB, 6);
    expect(await privateVolume.importData((async function* () { yield data; })(), { size: 2 * MiB }).catch((err: QubesError) => err.code)).toBe('VOLUME_IMPORT_SHORT');
    expect(await privateVolume.revisions()).toHaveLength(1); // a failed import changes nothing
    expect(await privateVolume.importData((async function* () { yield data; })(), { size: MiB })).toEqual({ bytes: MiB });
    expect(readFileSync(img).equals(data)).toBe(true);
    expect(await privateVolume.revisions()).toEqual([]); // the old image's undo means nothing now
    expect(existsSync(`${dir}/appvms/work/private-cow.img`)).toBe(false);

    await privateVolume.remove();
    expect(existsSync(path.join(dir, 'appvms/work'))).toBe(false);
  });

  it('starts two VMs of a template at once on one shared snapshot and one loop per file: the pool\'s devices go one operation at a time', async () => {
    const { templateRoot, app } = await templateAndAppVm('pv');
    const other = pool.volume(config('mail', 'root', { snap_on_start: true, save_on_stop: false, source: 'vm-templates/fedora/root' }), templateRoot);
    await Promise.all([app['root']!.start(), other.start()]);
    expect(dm.take().filter((c) => c.startsWith('dmsetup create') || c.startsWith('losetup -f'))).toEqual([
      `losetup -f --show ${image('vm-templates/fedora/root')}`,
      `losetup -f --show ${dir}/vm-templates/fedora/root-cow.img`,
      expect.stringMatching(/^dmsetup create snapshot-/),
    ]);
    await Promise.all([app['root']!.stop(), other.stop()]);
    expect([dm.devices.size, dm.loops.size]).toEqual([0, 0]);
  });

  it('lets go of the loop devices it made when the device-mapper device cannot be made', async () => {
    const root = pool.volume(config('fedora', 'root', { vid: 'vm-templates/fedora/root' }));
    await root.create();
    dm.createFails = 'device-mapper: reload ioctl failed: Cannot allocate memory';
    await expect(root.start()).rejects.toMatchObject({ code: 'STORAGE_COMMAND_FAILED', message: expect.stringContaining('Cannot allocate memory') });
    expect([dm.devices.size, dm.loops.size]).toEqual([0, 0]);
    dm.createFails = null;
    await root.start();
    expect([dm.devices.size, dm.loops.size]).toEqual([2, 2]);
  });

  it('refuses options it does not know, more than one revision, and a dir_path that does not exist', async () => {
    expect(() => new FilePool('x', { dir_path: dir, revisions_to_keep: '2' }, dm)).toThrow(/one revision at most/);
    expect(() => new FilePool('x', { dir_path: dir, thin_pool: 'p' }, dm)).toThrow(/no option "thin_pool"/);
    expect(() => new FilePool('x', { dir_path: 'relative' }, dm)).toThrow(/not an absolute path/);
    await expect(new FilePool('x', { dir_path: path.join(dir, 'missing') }, dm).setup()).rejects.toMatchObject({ code: 'POOL_INVALID' });
    expect(() => pool.volume(config('w', 'root', { snap_on_start: true, save_on_stop: true, source: 'x' }))).toThrow(/not supported by the file driver/);
  });
});
