import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { QubesError } from '@qubes-bus/contracts';
import type { CommandRunner } from './command-runner';
import { LvmThinPool } from './lvm-thin';
import { GiB, volumeConfig } from '../../test/images';
import type { VolumeConfig } from './types';

/**
 * A fake LVM, because this kernel has no device-mapper: it records each command the driver runs
 * and keeps the LVs those commands would leave (answering `lvs` from them), with a plain file
 * standing for each LV's block device so that imports can write.
 */
class FakeLvm implements CommandRunner {
  readonly calls: string[] = [];
  readonly lvs = new Map<string, { attr: string; size: number }>();
  constructor(
    private readonly vg: string,
    private readonly devDir: string,
  ) {
    this.lvs.set('pool00', { attr: 'twi-aotz--', size: 100 * 1024 ** 3 });
    mkdirSync(path.join(devDir, vg), { recursive: true });
  }

  private dev(lv: string): string {
    return path.join(this.devDir, this.vg, lv);
  }

  private name(vgLv: string): string {
    return vgLv.slice(this.vg.length + 1);
  }

  async run(program: string, args: readonly string[]): Promise<string> {
    if (program === 'lvs') {
      const lv = [...this.lvs].map(([name, { attr, size }]) => ({ lv_name: name, lv_attr: attr, lv_size: String(size), data_percent: name === 'pool00' ? '12.50' : '50.00' }));
      return JSON.stringify({ report: [{ lv }] });
    }
    this.calls.push(`${program} ${args.join(' ')}`);
    const fail = (why: string): never => {
      throw new QubesError('STORAGE_COMMAND_FAILED', `${program}: ${why}`);
    };
    switch (program) {
      case 'lvcreate': {
        const name = args[args.indexOf('-n') + 1]!;
        if (this.lvs.has(name)) fail(`${name} exists`);
        const from = args.includes('-s') ? this.lvs.get(this.name(args[args.indexOf('-s') + 1]!)) : undefined;
        if (args.includes('-s') && from === undefined) fail('no origin');
        const size = from?.size ?? Number(args[args.indexOf('-V') + 1]!.replace(/b$/, ''));
        this.lvs.set(name, { attr: 'Vwi-a-tz--', size });
        writeFileSync(this.dev(name), '');
        truncateSync(this.dev(name), Math.min(size, 64 * 1024 * 1024));
        break;
      }
      case 'lvremove': {
        const name = this.name(args.at(-1)!);
        if (!this.lvs.delete(name)) fail(`no ${name}`);
        rmSync(this.dev(name), { force: true });
        break;
      }
      case 'lvrename': {
        const [from, to] = [this.name(args[0]!), this.name(args[1]!)];
        const lv = this.lvs.get(from) ?? fail(`no ${from}`);
        if (this.lvs.has(to)) fail(`${to} exists`);
        this.lvs.delete(from);
        this.lvs.set(to, lv);
        renameSync(this.dev(from), this.dev(to));
        break;
      }
      case 'lvextend': {
        const lv = this.lvs.get(this.name(args.at(-1)!)) ?? fail('no such LV');
        lv.size = Number(args[1]!.replace(/b$/, ''));
        break;
      }
      default:
        fail('unknown command');
    }
    return '';
  }

  /** The commands run since the last take, and forget them. */
  take(): string[] {
    return this.calls.splice(0);
  }
}


function config(name: string, overrides: Partial<VolumeConfig> = {}): VolumeConfig {
  return volumeConfig(`qubes_dom0/vm-work-${name}`, { name, pool: 'lvm', ...overrides });
}

describe('the lvm_thin pool, with LVM faked (this kernel has no device-mapper): the commands each operation runs', () => {
  let devDir: string;
  let lvm: FakeLvm;
  let pool: LvmThinPool;

  beforeEach(async () => {
    devDir = mkdtempSync(path.join(tmpdir(), 'qubes-bus-lvm-'));
    lvm = new FakeLvm('qubes_dom0', devDir);
    pool = new LvmThinPool('lvm', { volume_group: 'qubes_dom0', thin_pool: 'pool00' }, lvm, devDir);
    await pool.setup();
  });

  afterEach(() => rmSync(devDir, { recursive: true, force: true }));

  it('creates a persistent volume as a thin LV, snapshots it for a run, and commits the run at its stop', async () => {
    const volume = pool.volume(config('private'));
    await volume.create();
    expect(lvm.take()).toEqual(['lvcreate -T qubes_dom0/pool00 -n vm-work-private -V 2147483648b']);
    await volume.start();
    expect(lvm.take()).toEqual(['lvcreate -kn -ay -s qubes_dom0/vm-work-private -n vm-work-private-snap']);
    expect(volume.blockDevice).toEqual({ path: path.join(devDir, 'qubes_dom0/vm-work-private-snap'), type: 'block' });
    expect(await volume.isDirty()).toBe(true);
    await volume.stop();
    const [keep, commit] = lvm.take();
    expect(keep).toMatch(/^lvrename qubes_dom0\/vm-work-private qubes_dom0\/vm-work-private-\d+-back$/);
    expect(commit).toBe('lvrename qubes_dom0/vm-work-private-snap qubes_dom0/vm-work-private');
    expect((await volume.revisions()).map((r) => r.name)).toEqual([keep!.split('-').slice(-2).join('-')]);

    // a second run's commit drops the oldest revision (revisions_to_keep 1)
    await volume.start();
    await volume.stop();
    const calls = lvm.take();
    expect(calls.at(-1)).toMatch(/^lvremove -f qubes_dom0\/vm-work-private-\d+-back$/);
    expect(await volume.revisions()).toHaveLength(1);
  });

  it("snapshots an AppVM's root from its template's at each start and drops it at the stop; resets volatile", async () => {
    const template = pool.volume({ ...config('root'), vid: 'qubes_dom0/vm-fedora-root' });
    await template.create();
    const root = pool.volume(config('root', { snap_on_start: true, save_on_stop: false, source: 'qubes_dom0/vm-fedora-root' }), template);
    const volatile = pool.volume(config('volatile', { save_on_stop: false }));
    lvm.take();
    await root.start();
    await volatile.start();
    expect(lvm.take()).toEqual(['lvcreate -kn -ay -s qubes_dom0/vm-fedora-root -n vm-work-root-snap', 'lvcreate -T qubes_dom0/pool00 -n vm-work-volatile -V 2147483648b']);
    expect(volatile.blockDevice!.path).toBe(path.join(devDir, 'qubes_dom0/vm-work-volatile'));
    await root.stop();
    await volatile.stop();
    expect(lvm.take()).toEqual(['lvremove -f qubes_dom0/vm-work-root-snap', 'lvremove -f qubes_dom0/vm-work-volatile']);
    await template.remove();
    expect((await rootStartFailure(root)).code).toBe('VOLUME_DATA_MISSING');
  });

  async function rootStartFailure(volume: { start(): Promise<void> }): Promise<QubesError> {
    try {
      await volume.start();
    } catch (err) {
      return err as QubesError;
    }
    throw new Error('the start succeeded');
  }

  it('grows with lvextend (the running snapshot too), refuses to shrink, reverts, clones as a thin snapshot, and removes every LV', async () => {
    const volume = pool.volume(config('private', { revisions_to_keep: 2 }));
    await volume.create();
    await volume.start();
    lvm.take();
    await volume.resize(4 * GiB);
    expect(lvm.take()).toEqual(['lvextend -L 4294967296b qubes_dom0/vm-work-private-snap', 'lvextend -L 4294967296b qubes_dom0/vm-work-private']);
    await expect(volume.resize(GiB)).rejects.toMatchObject({ code: 'VOLUME_SHRINK_REFUSED' });
    await expect(volume.revert()).rejects.toMatchObject({ code: 'VM_RUNNING' });
    await volume.stop();
    const [revision] = await volume.revisions();
    lvm.take();
    await volume.revert(revision!.name);
    const reverted = lvm.take();
    expect(reverted[0]).toMatch(/^lvrename qubes_dom0\/vm-work-private qubes_dom0\/vm-work-private-\d+-back$/);
    expect(reverted[1]).toBe(`lvrename qubes_dom0/vm-work-private-${revision!.name} qubes_dom0/vm-work-private`);
    await expect(volume.revert('1-back')).rejects.toMatchObject({ code: 'REVISION_NOT_FOUND' });

    const copy = pool.volume({ ...config('private'), vid: 'qubes_dom0/vm-copy-private' });
    await copy.create();
    lvm.take();
    expect(await copy.importVolume(volume)).toEqual({ reflinked: true, bytes: 4 * GiB });
    const cloned = lvm.take();
    expect(cloned[0]).toBe('lvcreate -kn -ay -s qubes_dom0/vm-work-private -n vm-copy-private-import');
    expect(cloned[1]).toMatch(/^lvrename qubes_dom0\/vm-copy-private qubes_dom0\/vm-copy-private-\d+-back$/); // the empty volume, kept as a revision
    expect(cloned[2]).toBe('lvrename qubes_dom0/vm-copy-private-import qubes_dom0/vm-copy-private');
    expect(cloned).toHaveLength(3);

    await volume.remove();
    expect(lvm.take().every((call) => call.startsWith('lvremove -f qubes_dom0/vm-work-private'))).toBe(true);
    expect([...lvm.lvs.keys()].filter((name) => name.startsWith('vm-work-'))).toEqual([]);
  });

  it('imports into a new -import LV and commits it only once whole; a failed import removes it', async () => {
    const volume = pool.volume(config('private', { size: 1024 * 1024, revisions_to_keep: 0 }));
    await volume.create();
    lvm.take();
    const data = Buffer.alloc(512 * 1024, 7);
    expect(await volume.importData((async function* () { yield data; })(), { size: data.length })).toEqual({ bytes: data.length });
    expect(lvm.take()).toEqual([
      'lvcreate -T qubes_dom0/pool00 -n vm-work-private-import -V 524288b',
      'lvremove -f qubes_dom0/vm-work-private',
      'lvrename qubes_dom0/vm-work-private-import qubes_dom0/vm-work-private',
    ]);
    expect(readFileSync(path.join(devDir, 'qubes_dom0/vm-work-private')).subarray(0, data.length).equals(data)).toBe(true);

    await expect(volume.importData((async function* () { yield Buffer.alloc(2 * data.length, 1); })(), { size: data.length })).rejects.toMatchObject({ code: 'VOLUME_TOO_BIG' });
    expect(lvm.take()).toEqual(['lvcreate -T qubes_dom0/pool00 -n vm-work-private-import -V 524288b', 'lvremove -f qubes_dom0/vm-work-private-import']);
    expect(existsSync(path.join(devDir, 'qubes_dom0/vm-work-private-import'))).toBe(false);
  });

  it('refuses a pool whose thin pool is missing or is not one, and options it does not know', async () => {
    await expect(new LvmThinPool('x', { volume_group: 'qubes_dom0', thin_pool: 'nope' }, lvm, devDir).setup()).rejects.toMatchObject({ code: 'POOL_INVALID' });
    lvm.lvs.set('plain', { attr: '-wi-a-----', size: GiB });
    await expect(new LvmThinPool('x', { volume_group: 'qubes_dom0', thin_pool: 'plain' }, lvm, devDir).setup()).rejects.toThrow(/is not a thin pool/);
    expect(() => new LvmThinPool('x', { volume_group: 'qubes_dom0', thin_pool: 'pool00', dir_path: '/x' }, lvm)).toThrow(/no option "dir_path"/);
    expect(() => new LvmThinPool('x', { volume_group: 'bad/name', thin_pool: 'pool00' }, lvm)).toThrow(/volume_group/);
    expect(await pool.usage()).toEqual({ size: 100 * GiB, usage: 12.5 * GiB });
  });
});
