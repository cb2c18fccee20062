import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { QubesError } from '@qubes-bus/contracts';
import { ExecRunner, type CommandRunner } from './command-runner';
import { checkOptions, poolInvalid } from './dir-pool';
import { checkCancelled, type CopyOptions, type CopyResult } from './files';
import { checkResize, requirePersistent, revisionToRevert, writeImport } from './volume-rules';
import { PoolDriverName, type ImportOptions, type Pool, type PoolUsage, type Revision, type Volume, type VolumeConfig } from './types';

/**
 * `lvm_thin` (Qubes R4's default on a fresh install): each volume is a thin LV in
 * `volume_group/thin_pool`, named as Qubes names them (qubes/storage/lvm.py):
 *
 *   <vg>/vm-<vm>-<volume>               the committed volume (a volatile one: its only LV)
 *   <vg>/vm-<vm>-<volume>-snap          what a run writes: a thin snapshot, committed or dropped
 *   <vg>/vm-<vm>-<volume>-<time>-back   an earlier committed volume, kept for revert
 *   <vg>/vm-<vm>-<volume>-import        data being imported, committed once whole
 *
 * Snapshots and clones are thin snapshots: they share blocks, as reflinks do.
 */
export class LvmThinPool implements Pool {
  readonly driver = PoolDriverName.LvmThin;
  readonly volumeGroup: string;
  readonly thinPool: string;
  readonly revisionsToKeep: number;

  constructor(
    readonly name: string,
    options: Readonly<Record<string, string>>,
    readonly runner: CommandRunner = new ExecRunner(),
    /** Where the volumes' block devices appear (`/dev/<vg>/<lv>`). */
    readonly devDir = '/dev',
  ) {
    checkOptions(name, PoolDriverName.LvmThin, options, ['volume_group', 'thin_pool', 'revisions_to_keep', 'ephemeral_volatile']);
    const lvName = /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}$/;
    for (const option of ['volume_group', 'thin_pool']) {
      if (!lvName.test(options[option] ?? '')) throw poolInvalid(name, `an lvm_thin pool needs ${option} (an LVM name)`, option);
    }
    this.volumeGroup = options['volume_group']!;
    this.thinPool = options['thin_pool']!;
    const keep = options['revisions_to_keep'] ?? '1';
    if (!/^\d{1,4}$/.test(keep)) throw poolInvalid(name, `revisions_to_keep must be a whole number, not ${JSON.stringify(keep)}`, 'revisions_to_keep');
    this.revisionsToKeep = Number(keep);
  }

  get config(): Record<string, string> {
    return { name: this.name, driver: this.driver, volume_group: this.volumeGroup, thin_pool: this.thinPool, revisions_to_keep: String(this.revisionsToKeep) };
  }

  /** The thin pool must exist, and be one (lv_attr starting with t). */
  async setup(): Promise<void> {
    let pool: Lv | undefined;
    try {
      pool = (await this.lvs()).get(this.thinPool);
    } catch (err) {
      throw poolInvalid(this.name, `cannot list the volume group ${this.volumeGroup}: ${(err as Error).message}`, 'volume_group');
    }
    if (pool === undefined) throw poolInvalid(this.name, `there is no thin pool ${this.volumeGroup}/${this.thinPool}`, 'thin_pool');
    if (!pool.attr.startsWith('t')) throw poolInvalid(this.name, `${this.volumeGroup}/${this.thinPool} is not a thin pool`, 'thin_pool');
  }

  async usage(): Promise<PoolUsage> {
    const pool = (await this.lvs()).get(this.thinPool);
    return { size: pool?.size ?? 0, usage: pool?.used ?? 0 };
  }

  vidFor(vm: { name: string }, volume: string): string {
    return `${this.volumeGroup}/vm-${vm.name}-${volume}`;
  }

  volume(config: VolumeConfig, source?: Volume): Volume {
    if (!config.vid.startsWith(`${this.volumeGroup}/`)) {
      throw new QubesError('BAD_REQUEST', `volume id ${JSON.stringify(config.vid)} is not in the volume group ${this.volumeGroup}`, { details: { field: 'vid' } });
    }
    if (config.snap_on_start && config.save_on_stop) {
      throw new QubesError('POOL_INVALID', `${config.vid}: a volume both snap_on_start and save_on_stop is not supported by lvm_thin`, { details: { vid: config.vid } });
    }
    return new ThinVolume(this, config, config.snap_on_start ? (source as ThinVolume | undefined) ?? null : null);
  }

  /** The LVs of the volume group, by name: `lvs` in JSON, sizes in bytes. */
  async lvs(): Promise<Map<string, Lv>> {
    const out = await this.runner.run('lvs', ['--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'lv_name,lv_attr,lv_size,data_percent', this.volumeGroup]);
    const report = JSON.parse(out) as { report: Array<{ lv: Array<Record<string, string>> }> };
    const lvs = new Map<string, Lv>();
    for (const row of report.report[0]?.lv ?? []) {
      const size = Number(row['lv_size']);
      lvs.set(row['lv_name'] ?? '', { attr: row['lv_attr'] ?? '', size, used: Math.round((size * Number(row['data_percent'] || 0)) / 100) });
    }
    return lvs;
  }

  run(program: string, args: readonly string[]): Promise<string> {
    return this.runner.run(program, args);
  }
}

interface Lv {
  attr: string;
  size: number;
  used: number;
}

class ThinVolume implements Volume {
  constructor(
    private readonly pool: LvmThinPool,
    readonly config: VolumeConfig,
    private readonly source: ThinVolume | null,
  ) {}

  private get vid(): string {
    return this.config.vid;
  }

  /** The LV name (without the volume group) of `vid` plus `suffix`. */
  private lv(suffix = ''): string {
    return `${this.vid.slice(this.pool.volumeGroup.length + 1)}${suffix}`;
  }

  private get thin(): string {
    return `${this.pool.volumeGroup}/${this.pool.thinPool}`;
  }

  private device(suffix = ''): string {
    return path.join(this.pool.devDir, `${this.vid}${suffix}`);
  }

  get blockDevice(): { path: string; type: 'block' } {
    const runsOnSnapshot = this.config.snap_on_start || this.config.save_on_stop;
    return { path: this.device(runsOnSnapshot ? '-snap' : ''), type: 'block' };
  }

  private async has(suffix = ''): Promise<boolean> {
    return (await this.pool.lvs()).has(this.lv(suffix));
  }

  private createLv(suffix: string, size: number): Promise<string> {
    return this.pool.run('lvcreate', ['-T', this.thin, '-n', this.lv(suffix), '-V', `${size}b`]);
  }

  /** A thin snapshot of `from` (vg/lv), activated (thin snapshots are skipped at activation otherwise). */
  private snapshot(from: string, suffix: string): Promise<string> {
    return this.pool.run('lvcreate', ['-kn', '-ay', '-s', from, '-n', this.lv(suffix)]);
  }

  private removeLv(suffix = ''): Promise<string> {
    return this.pool.run('lvremove', ['-f', `${this.vid}${suffix}`]);
  }

  async create(): Promise<void> {
    if (this.config.save_on_stop && !this.config.snap_on_start) await this.createLv('', this.config.size);
  }

  async remove(): Promise<void> {
    const lvs = await this.pool.lvs();
    const mine = [...lvs.keys()].filter((name) => name === this.lv() || name === this.lv('-snap') || name === this.lv('-import') || this.revisionOf(name) !== null);
    for (const name of mine) await this.pool.run('lvremove', ['-f', `${this.pool.volumeGroup}/${name}`]);
  }

  async verify(): Promise<void> {
    const needed = this.config.snap_on_start ? this.source : this.config.save_on_stop ? this : null;
    if (needed !== null && !(await needed.has())) {
      throw new QubesError('VOLUME_DATA_MISSING', `the logical volume ${needed.vid} of volume ${this.vid} is missing`, { details: { vid: this.vid, file: needed.vid } });
    }
  }

  async start(): Promise<void> {
    await this.verify();
    if (this.config.snap_on_start) {
      if (await this.has('-snap')) await this.removeLv('-snap');
      await this.snapshot(this.source!.vid, '-snap');
    } else if (this.config.save_on_stop) {
      if (!(await this.has('-snap'))) await this.snapshot(this.vid, '-snap'); // else: a run that never stopped, kept
    } else {
      if (await this.has()) await this.removeLv();
      await this.createLv('', this.config.size);
    }
  }

  async stop(): Promise<void> {
    if (this.config.save_on_stop) {
      if (await this.has('-snap')) await this.commit('-snap');
    } else if (this.config.snap_on_start) {
      if (await this.has('-snap')) await this.removeLv('-snap');
    } else if (await this.has()) {
      await this.removeLv();
    }
  }

  async isDirty(): Promise<boolean> {
    return this.config.save_on_stop && (await this.has('-snap'));
  }

  async isOutdated(): Promise<boolean> {
    return false; // LVM keeps no time of change to compare
  }

  async usage(): Promise<number> {
    const lvs = await this.pool.lvs();
    return (lvs.get(this.lv('-snap')) ?? lvs.get(this.lv()))?.used ?? 0;
  }

  async resize(size: number): Promise<void> {
    checkResize(this.config, size);
    const lvs = await this.pool.lvs();
    for (const suffix of ['-snap', '']) if (lvs.has(this.lv(suffix))) await this.pool.run('lvextend', ['-L', `${size}b`, `${this.vid}${suffix}`]);
    this.config.size = size;
  }

  /** `<time>-back` of an LV name of this volume, or null. */
  private revisionOf(name: string): string | null {
    const prefix = `${this.lv()}-`;
    if (!name.startsWith(prefix)) return null;
    const rest = name.slice(prefix.length);
    return /^\d+-back$/.test(rest) ? rest : null;
  }

  async revisions(): Promise<Revision[]> {
    const names = [...(await this.pool.lvs()).keys()].map((name) => this.revisionOf(name)).filter((r): r is string => r !== null);
    return names
      .sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10))
      .map((name) => ({ name, timestamp: new Date(Number.parseInt(name, 10) * 1000).toISOString().slice(0, 19) }));
  }

  async revert(revision?: string): Promise<void> {
    const target = revisionToRevert(this.config, await this.isDirty(), await this.revisions(), revision);
    // the current volume becomes a revision in its turn, then the revision becomes current
    await this.pool.run('lvrename', [this.vid, `${this.vid}-${await this.newRevisionName()}`]);
    await this.pool.run('lvrename', [`${this.vid}-${target}`, this.vid]);
  }

  async importData(data: AsyncIterable<Uint8Array>, options: ImportOptions = {}): Promise<{ bytes: number }> {
    requirePersistent(this.config, 'import into');
    const limit = options.size ?? this.config.size;
    if (await this.has('-import')) await this.removeLv('-import');
    await this.createLv('-import', limit);
    let bytes: number;
    try {
      const out = await open(this.device('-import'), 'r+');
      try {
        bytes = await writeImport(out, data, this.config, limit, options);
        await out.sync();
      } finally {
        await out.close();
      }
    } catch (err) {
      await this.removeLv('-import');
      throw err;
    }
    await this.commit('-import');
    this.config.size = limit;
    return { bytes };
  }

  /** The file's data written into the LV, as a stream's would be. */
  importFile(file: string, options: ImportOptions = {}): Promise<{ bytes: number }> {
    return this.importData(createReadStream(file, { highWaterMark: 1024 * 1024 }), { ...options, handOver: true });
  }

  scratchDir(): null {
    return null; // an LV is no file: an import's data comes as a stream
  }

  async importVolume(source: Volume, options: CopyOptions = {}): Promise<CopyResult> {
    requirePersistent(this.config, 'clone into');
    if (!(source instanceof ThinVolume) || source.pool.volumeGroup !== this.pool.volumeGroup) {
      throw new QubesError('BAD_REQUEST', `${source.config.vid} is not in the volume group ${this.pool.volumeGroup}: clone through an export`, { details: { field: 'token' } });
    }
    checkCancelled(options.signal);
    await source.exportPath();
    if (await this.has('-import')) await this.removeLv('-import');
    await this.snapshot(source.vid, '-import');
    await this.commit('-import');
    this.config.size = source.config.size;
    options.onProgress?.(source.config.size, source.config.size);
    return { reflinked: true, bytes: source.config.size };
  }

  async exportPath(): Promise<string> {
    requirePersistent(this.config, 'export');
    await this.verify();
    return this.device();
  }

  /** `suffix`'s LV becomes the volume; the volume before it, a revision (or is removed). */
  private async commit(suffix: string): Promise<void> {
    if (await this.has()) {
      if (this.config.revisions_to_keep > 0) await this.pool.run('lvrename', [this.vid, `${this.vid}-${await this.newRevisionName()}`]);
      else await this.removeLv();
    }
    await this.pool.run('lvrename', [`${this.vid}${suffix}`, this.vid]);
    const revisions = await this.revisions();
    for (const old of revisions.slice(0, Math.max(0, revisions.length - this.config.revisions_to_keep))) await this.removeLv(`-${old.name}`);
  }

  /** Qubes' revision name: seconds since the epoch, then -back; never one that exists. */
  private async newRevisionName(): Promise<string> {
    const taken = new Set((await this.revisions()).map((r) => r.name));
    let seconds = Math.floor(Date.now() / 1000);
    while (taken.has(`${seconds}-back`)) seconds++;
    return `${seconds}-back`;
  }
}
