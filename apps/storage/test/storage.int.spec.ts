import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { copyFileInto, receiveBytes, sendBytes, type Bus } from '@qubes-bus/bus';
import {
  AdminPoolAdd,
  AdminPoolInfo,
  AdminPoolList,
  AdminPoolListDrivers,
  AdminPoolRemove,
  AdminVmCreate,
  AdminVmProperty,
  AdminVmRemove,
  AdminVmVolumeClear,
  AdminVmVolumeCloneFrom,
  AdminVmVolumeCloneTo,
  AdminVmVolumeImportWithSize,
  AdminVmVolumeInfo,
  AdminVmVolumeList,
  AdminVmVolumeListSnapshots,
  AdminVmVolumeResize,
  AdminVmVolumeRevert,
  StorageExportVolume,
  StoragePostStop,
  StoragePreStart,
  Subjects,
  type DiskInfo,
} from '@qubes-bus/contracts';
import {
  buildBundles,
  collectEvents,
  loopFilesystem,
  rejectionOf,
  startNats,
  startRegistry,
  startUnderTest,
  tmpDataDir,
  type LoopFilesystem,
  type Started,
  type TestNats,
  type TmpDir,
  type UnderTest,
} from '@qubes-bus/testing';
import { createStorage, type StorageService } from '../src/service';
import { GiB, MiB, pieces, readAt, writeAt } from './images';

/**
 * The storage service over a real nats-server, beside a real vm-registry process (its bundle)
 * that keeps the volume config in qubes.xml; the data dir on a loop-mounted xfs, so clones are
 * reflinks. The registry has no hypervisor here: the start and stop hooks are called as it
 * would call them.
 */

let nats: TestNats;
let xfs: LoopFilesystem;
/** ext4: no reflinks. */
let spare: LoopFilesystem;
let dataDir: string;
let registry: Started;
let underTest: UnderTest<StorageService>;
let client: Bus;
let runDir: TmpDir;

beforeAll(async () => {
  [nats] = await Promise.all([startNats(), buildBundles()]);
  xfs = loopFilesystem('xfs', 2048);
  spare = loopFilesystem('ext4', 64);
  dataDir = path.join(xfs.path, 'qubes');
  registry = await startRegistry(nats.url, dataDir);
  runDir = tmpDataDir('qubes-bus-run-');
  underTest = await startUnderTest('storage', ({ bus, log }) => createStorage({ bus, log, localDir: runDir.path }), { nats, dataDir });
  client = underTest.client;
}, 120_000);

afterAll(async () => {
  await underTest?.stop();
  await registry?.stop();
  await nats?.stop();
  xfs?.remove();
  spare?.remove();
  runDir?.remove();
});

/**
 * An import as a tool on this host sends it (on the storage service's socket, or copied into the
 * file it offers), or as one elsewhere does (over the bus).
 */
async function importInto(vm: string, volume: string, data: Buffer, size = data.length, via: 'socket' | 'file' | 'bus' = 'socket'): Promise<unknown> {
  const offer = await client.request(AdminVmVolumeImportWithSize, { arg: volume, payload: { size } }, { dest: vm });
  const source = path.join(xfs.path, 'import-source.img');
  writeFileSync(source, data);
  const options =
    via === 'bus' ? {} : via === 'socket' ? { socket: offer.socket, token: offer.token } : { socket: offer.socket, token: offer.token, file: offer.file, writeFile: copyFileInto(source) };
  return sendBytes(client.nc, offer.stream, pieces(data, 256 * 1024), options);
}

async function run(vm: string, during: (disks: DiskInfo[]) => void): Promise<void> {
  const { disks } = await client.request(StoragePreStart, { payload: { vm, uuid: '' } });
  during(disks);
  await client.request(StoragePostStop, { payload: { vm, uuid: '' } });
}

const qubesXml = (): string => readFileSync(path.join(dataDir, 'qubes.xml'), 'utf8');
const image = (vid: string): string => path.join(dataDir, `${vid}.img`);

describe('the storage service', () => {
  it('gives each new VM the volumes of its class, kept in qubes.xml, and runs an AppVM on its template', async () => {
    await client.request(AdminVmCreate.TemplateVM, { payload: { name: 'fedora', label: 'black' } });
    await client.request(AdminVmCreate.AppVM, { arg: 'fedora', payload: { name: 'work', label: 'red' } });

    expect(await client.request(AdminVmVolumeList, {}, { dest: 'work' })).toEqual(['root', 'private', 'volatile']);
    const root = await client.request(AdminVmVolumeInfo, { arg: 'root' }, { dest: 'work' });
    expect(root).toMatchObject({ pool: 'varlibqubes', vid: 'appvms/work/root', snap_on_start: true, save_on_stop: false, source: 'vm-templates/fedora/root', size: 10 * GiB });
    const privateInfo = await client.request(AdminVmVolumeInfo, { arg: 'private' }, { dest: 'work' });
    expect(privateInfo).toMatchObject({ vid: 'appvms/work/private', save_on_stop: true, rw: true, size: 2 * GiB, usage: 0 });
    expect(qubesXml()).toContain('<volume name="private" pool="varlibqubes" vid="appvms/work/private"');
    expect(statSync(image('vm-templates/fedora/root')).size).toBe(10 * GiB);
    expect(statSync(image('appvms/work/private')).blocks).toBe(0); // sparse
    expect(existsSync(image('appvms/work/root'))).toBe(false); // a snapshot, taken at each start

    // the template gets an OS; the AppVM sees it, and its private data stays across runs
    const os = Buffer.from('a template root filesystem');
    await run('fedora', (disks) => writeAt(disks.find((d) => d.frontend === 'xvda')!.path, 0, os));
    const note = randomBytes(MiB);
    await run('work', (disks) => {
      expect(disks.map((d) => [d.frontend, d.read_only])).toEqual([['xvda', false], ['xvdb', false], ['xvdc', false]]);
      expect(readAt(disks[0]!.path, 0, os.length).equals(os)).toBe(true);
      writeAt(disks[1]!.path, 3 * MiB, note);
    });
    expect(readAt(image('appvms/work/private'), 3 * MiB, MiB).equals(note)).toBe(true);
  });

  it('imports data whole or not at all, clones with a reflink, grows, and removes every file with the VM', async () => {
    const data = Buffer.concat([randomBytes(4 * MiB), Buffer.alloc(8 * MiB), randomBytes(MiB)]);
    expect(await importInto('work', 'private', data)).toEqual({ bytes: data.length });
    expect((await client.request(AdminVmVolumeInfo, { arg: 'private' }, { dest: 'work' })).size).toBe(data.length);
    expect(readFileSync(image('appvms/work/private')).equals(data)).toBe(true);

    for (const via of ['socket', 'bus'] as const) {
      const tooBig = await rejectionOf(importInto('work', 'private', randomBytes(3 * MiB), 2 * MiB, via));
      expect(tooBig.code).toBe('VOLUME_TOO_BIG');
      expect(readFileSync(image('appvms/work/private')).equals(data)).toBe(true);
    }
    // the bus carries it whole too (a sender on another host), and a file here is copied in
    for (const via of ['bus', 'file'] as const) {
      expect(await importInto('work', 'private', data, data.length, via)).toEqual({ bytes: data.length });
      expect(readFileSync(image('appvms/work/private')).equals(data)).toBe(true);
    }
    const tooBig = await rejectionOf(importInto('work', 'private', randomBytes(3 * MiB), 2 * MiB, 'file'));
    expect(`${tooBig.code}: ${tooBig.message}`).toBe('VOLUME_TOO_BIG: the data for appvms/work/private is larger than declared (2097152 bytes)');
    expect(readFileSync(image('appvms/work/private')).equals(data)).toBe(true);
    // the files offered are gone, in a directory the tools' group may enter but not list
    expect(readdirSync(path.join(dataDir, '.import'))).toEqual([]);
    expect(statSync(path.join(dataDir, '.import')).mode & 0o777).toBe(0o710);

    await client.request(AdminVmCreate.AppVM, { arg: 'fedora', payload: { name: 'copy', label: 'green' } });
    const events = await client.subscribe(Subjects.vmEvents('copy'));
    const { token } = await client.request(AdminVmVolumeCloneFrom, { arg: 'private' }, { dest: 'work' });
    expect(await client.request(AdminVmVolumeCloneTo, { arg: 'private', payload: { token } }, { dest: 'copy' })).toEqual({ bytes: data.length, reflinked: true });
    expect(readFileSync(image('appvms/copy/private')).equals(data)).toBe(true);
    expect((await rejectionOf(client.request(AdminVmVolumeCloneTo, { arg: 'private', payload: { token } }, { dest: 'copy' }))).code).toBe('BAD_REQUEST');

    await client.request(AdminVmVolumeResize, { arg: 'private', payload: { size: 64 * MiB } }, { dest: 'copy' });
    expect(statSync(image('appvms/copy/private')).size).toBe(64 * MiB);
    expect(readAt(image('appvms/copy/private'), 0, 4 * MiB).equals(data.subarray(0, 4 * MiB))).toBe(true);
    const shrink = await rejectionOf(client.request(AdminVmVolumeResize, { arg: 'private', payload: { size: MiB } }, { dest: 'copy' }));
    expect(shrink.code).toBe('VOLUME_SHRINK_REFUSED');
    expect(qubesXml()).toMatch(/<volume name="private" pool="varlibqubes" vid="appvms\/copy\/private"[^>]* size="67108864"/);

    const seen = (await collectEvents(events, 3)).map((e) => e.message as { event: string; action?: string; done?: number; total?: number });
    expect(seen.map((e) => `${e.event} ${e.action ?? `${e.done}/${e.total}`}`)).toEqual([
      `volume-progress:private ${data.length}/${data.length}`,
      'volume-changed:private clone',
      'volume-changed:private resize',
    ]);
    await events.stop();

    await client.request(AdminVmRemove, {}, { dest: 'copy' });
    expect(existsSync(path.join(dataDir, 'appvms/copy'))).toBe(false);
  });

  it("starts a disposable VM on snapshots of its AppVM's private and its template's root, and keeps nothing of its run", async () => {
    await client.request(AdminVmProperty.Set, { arg: 'template_for_dispvms', payload: { value: true } }, { dest: 'work' });
    await client.request(AdminVmCreate.DispVM, { arg: 'work', payload: { name: 'disp1', label: 'red' } });
    const root = await client.request(AdminVmVolumeInfo, { arg: 'root' }, { dest: 'disp1' });
    const privateInfo = await client.request(AdminVmVolumeInfo, { arg: 'private' }, { dest: 'disp1' });
    expect(root).toMatchObject({ snap_on_start: true, save_on_stop: false, source: 'vm-templates/fedora/root' });
    expect(privateInfo).toMatchObject({ snap_on_start: true, save_on_stop: false, source: 'appvms/work/private' });
    const workData = readFileSync(image('appvms/work/private'));
    await run('disp1', (disks) => {
      expect(readFileSync(disks[1]!.path).equals(workData)).toBe(true);
      writeAt(disks[1]!.path, 0, Buffer.from('written in a disposable'));
    });
    expect(readFileSync(image('appvms/work/private')).equals(workData)).toBe(true);
    expect(existsSync(path.join(dataDir, 'appvms/disp1/private.img'))).toBe(false);
    await client.request(AdminVmRemove, {}, { dest: 'disp1' });
    await client.request(AdminVmProperty.Set, { arg: 'template_for_dispvms', payload: { value: false } }, { dest: 'work' });
  });

  it("sends a volume's committed data to a stream a backup opened", async () => {
    const stream = await receiveBytes<null>(client.nc);
    const received = (async () => {
      const parts: Buffer[] = [];
      for await (const chunk of stream.chunks) parts.push(Buffer.from(chunk));
      stream.finish({ ok: true, value: null });
      return Buffer.concat(parts);
    })();
    const reply = await client.request(StorageExportVolume, { payload: { vm: 'work', volume: 'private', stream: stream.subject, chunk_bytes: stream.chunkBytes, window: stream.window } });
    const data = await received;
    expect(reply.bytes).toBe(data.length);
    expect(data.equals(readFileSync(image('appvms/work/private')))).toBe(true);
    const volatile = await rejectionOf(client.request(StorageExportVolume, { payload: { vm: 'work', volume: 'volatile', stream: stream.subject, chunk_bytes: 1024, window: 1 } }));
    expect(volatile.code).toBe('VOLUME_NOT_PERSISTENT');
  });

  it("commits a template's root at each stop, and reverts it to the revision before", async () => {
    const rootImage = image('vm-templates/fedora/root');
    await run('fedora', (disks) => writeAt(disks[0]!.path, 0, Buffer.from('update one')));
    await run('fedora', (disks) => writeAt(disks[0]!.path, 0, Buffer.from('update two')));
    expect(readAt(rootImage, 0, 10).toString()).toBe('update two');
    const snapshots = await client.request(AdminVmVolumeListSnapshots, { arg: 'root' }, { dest: 'fedora' });
    expect(snapshots).toHaveLength(1); // the pool keeps one (revisions_to_keep 1)
    await client.request(AdminVmVolumeRevert, { arg: 'root' }, { dest: 'fedora' });
    expect(readAt(rootImage, 0, 10).toString()).toBe('update one');
    await client.request(AdminVmVolumeClear, { arg: 'root' }, { dest: 'fedora' });
    expect(readAt(rootImage, 0, 10).equals(Buffer.alloc(10))).toBe(true);
    expect(statSync(rootImage).size).toBe(10 * GiB);
  });

  it('adds and removes pools, refusing what cannot work', async () => {
    expect(await client.request(AdminPoolList, {})).toEqual(['varlibqubes', 'linux-kernel']);
    expect(Object.keys(await client.request(AdminPoolListDrivers, {}))).toEqual(expect.arrayContaining(['file-reflink', 'file', 'lvm_thin', 'linux-kernel']));
    const info = await client.request(AdminPoolInfo, { arg: 'varlibqubes' });
    expect(info).toMatchObject({ name: 'varlibqubes', driver: 'file-reflink', dir_path: dataDir });
    expect(Number(info['size'])).toBeGreaterThan(GiB);

    const extra = path.join(spare.path, 'extra');
    mkdirSync(extra);
    await client.request(AdminPoolAdd, { arg: 'file-reflink', payload: { name: 'extra', options: { dir_path: extra, setup_check: 'no' } } });
    expect(qubesXml()).toContain(`<pool name="extra" driver="file-reflink" dir_path="${extra}"`);
    await client.request(AdminVmCreate.StandaloneVM, { payload: { name: 'elsewhere', label: 'blue', pool: 'extra' } });
    expect(existsSync(path.join(extra, 'appvms/elsewhere/private.img'))).toBe(true);
    expect((await rejectionOf(client.request(AdminPoolRemove, { arg: 'extra' }))).code).toBe('POOL_IN_USE');
    await client.request(AdminVmRemove, {}, { dest: 'elsewhere' });
    await client.request(AdminPoolRemove, { arg: 'extra' });
    expect(qubesXml()).not.toContain('name="extra"');

    const missing = await rejectionOf(client.request(AdminPoolAdd, { arg: 'file-reflink', payload: { name: 'gone', options: { dir_path: path.join(spare.path, 'nope') } } }));
    expect(missing.code).toBe('POOL_INVALID');
    const noReflinks = await rejectionOf(client.request(AdminPoolAdd, { arg: 'file-reflink', payload: { name: 'slow', options: { dir_path: extra } } }));
    expect(noReflinks.code).toBe('POOL_INVALID');
    expect(noReflinks.message).toContain('setup_check=no');
    const driver = await rejectionOf(client.request(AdminPoolAdd, { arg: 'zfs', payload: { name: 'z', options: {} } }));
    expect(driver.code).toBe('POOL_DRIVER_UNKNOWN');
    expect((await rejectionOf(client.request(AdminPoolAdd, { arg: 'file-reflink', payload: { name: 'varlibqubes', options: { dir_path: extra } } }))).code).toBe('POOL_EXISTS');
    expect((await rejectionOf(client.request(AdminPoolRemove, { arg: 'varlibqubes' }))).code).toBe('POOL_IN_USE');
    expect((await rejectionOf(client.request(AdminPoolInfo, { arg: 'nope' }))).code).toBe('POOL_NOT_FOUND');
    expect(await client.request(AdminPoolList, {})).toEqual(['varlibqubes', 'linux-kernel']);
  });

  it('names what is missing: an unknown VM, volume or pool, and dom0 has no volumes', async () => {
    expect((await rejectionOf(client.request(AdminVmVolumeInfo, { arg: 'swap' }, { dest: 'work' }))).code).toBe('VOLUME_NOT_FOUND');
    expect((await rejectionOf(client.request(AdminVmVolumeList, {}, { dest: 'nobody' }))).code).toBe('VM_NOT_FOUND');
    expect(await client.request(AdminVmVolumeList, {}, { dest: 'dom0' })).toEqual([]);
    const unknownPool = await rejectionOf(client.request(AdminVmCreate.AppVM, { arg: 'fedora', payload: { name: 'lost', label: 'red', pool: 'nowhere' } }));
    expect(unknownPool.code).toBe('PROPERTY_VALUE_INVALID');
    expect(qubesXml()).not.toContain('lost');
  });

  it('answers a malformed request with BAD_REQUEST and goes on serving', async () => {
    for (const body of ['{not json', JSON.stringify({ arg: '../../etc/passwd' }), JSON.stringify({ arg: 'private', payload: { size: -1 } })]) {
      const subject = (body.includes('size') ? AdminVmVolumeResize : AdminVmVolumeInfo).subject('work');
      const reply = await client.nc.request(subject, new TextEncoder().encode(body), { timeout: 5_000 });
      expect(JSON.parse(new TextDecoder().decode(reply.data)).code).toBe('BAD_REQUEST');
    }
    expect((await client.request(AdminVmVolumeInfo, { arg: 'private' }, { dest: 'work' })).vid).toBe('appvms/work/private');
  });
});
