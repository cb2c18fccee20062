import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, open, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Bus, HandlerContext } from '@qubes-bus/bus';
import {
  PowerState,
  QubesError,
  RegistryPools,
  RegistrySetPools,
  RegistrySetVolumes,
  RegistryVmStorage,
  VolumeChanged,
  VolumeProgress,
  type StorageAttrs,
  type VmStorage,
} from '@qubes-bus/contracts';
import type { Logger } from '@qubes-bus/log';
import { poolFromAttrs } from './pool/drivers';
import type { Pool, Volume, VolumeConfig } from './pool/types';
import { dirPrefix, fromAttrs, planVolumes, toAttrs } from './volume-config';

export type VolumeAction = 'create' | 'remove' | 'resize' | 'revert' | 'import' | 'clear' | 'clone' | 'set';

/** A volume of a VM with its config as qubes.xml holds it (unknown attributes kept). */
export interface VmVolume {
  config: VolumeConfig & { extra: StorageAttrs };
  volume: Volume;
}

type Caller = Pick<HandlerContext, 'request'>;

/**
 * The storage service's state: the pools (from qubes.xml, through the registry), one lock per
 * VM for operations on its volumes, and the clones under way. Volume config is never cached:
 * it is read from the registry for each operation and written back through it.
 */
export class Storage {
  private readonly pools = new Map<string, Pool>();
  /** Pools qubes.xml names but that cannot be used here (a missing directory, ...): why. */
  private readonly broken = new Map<string, QubesError>();
  private poolAttrs: StorageAttrs[] = [];
  private defaults: Record<string, string | null> = {};
  private readonly locks = new Map<string, Promise<void>>();
  private readonly cloneTokens = new Map<string, { vm: string; volume: string; expires: number }>();
  private readonly cancels = new Map<string, AbortController>();

  constructor(
    readonly bus: Bus,
    readonly log: Logger,
    /** Where imports offer a local socket to senders on this host (none: the bus alone). */
    readonly localDir?: string,
  ) {}

  // --- pools -----------------------------------------------------------------------------------

  private loading: Promise<void> | undefined;

  /** The pools, read once (on the first call: the registry may start after this service). */
  ensurePools(caller: Caller): Promise<void> {
    this.loading ??= this.loadPools(caller).catch((err: unknown) => {
      this.loading = undefined; // the next call tries again
      throw err;
    });
    return this.loading;
  }

  /** Reads the pools from qubes.xml and sets each up; one that cannot be is kept aside, with why. */
  async loadPools(caller: Caller): Promise<void> {
    const state = await caller.request(RegistryPools, {});
    this.poolAttrs = state.pools;
    this.defaults = state.defaults;
    this.pools.clear();
    this.broken.clear();
    for (const attrs of state.pools) {
      const name = attrs['name'] ?? '';
      try {
        const pool = poolFromAttrs(attrs);
        await pool.setup();
        this.pools.set(name, pool);
      } catch (err) {
        const error = err instanceof QubesError ? err : new QubesError('POOL_INVALID', `pool ${name}: ${(err as Error).message}`, { cause: err });
        this.broken.set(name, error);
        this.log.error({ err: error, pool: name }, 'a pool cannot be used');
      }
    }
  }

  poolNames(): string[] {
    return this.poolAttrs.map((attrs) => attrs['name'] ?? '');
  }

  poolAttrsOf(name: string): StorageAttrs {
    const attrs = this.poolAttrs.find((a) => a['name'] === name);
    if (attrs === undefined) throw new QubesError('POOL_NOT_FOUND', `there is no pool ${name}`, { details: { pool: name } });
    return attrs;
  }

  pool(name: string): Pool {
    const pool = this.pools.get(name);
    if (pool !== undefined) return pool;
    throw this.broken.get(name) ?? new QubesError('POOL_NOT_FOUND', `there is no pool ${name}`, { details: { pool: name } });
  }

  async addPool(caller: Caller, pool: Pool): Promise<void> {
    if (this.poolAttrs.some((a) => a['name'] === pool.name)) throw new QubesError('POOL_EXISTS', `a pool named ${pool.name} exists already`, { details: { pool: pool.name } });
    await pool.setup();
    const next = [...this.poolAttrs, { ...pool.config }];
    await caller.request(RegistrySetPools, { payload: { pools: next } });
    this.poolAttrs = next;
    this.pools.set(pool.name, pool);
  }

  async removePool(caller: Caller, name: string): Promise<void> {
    this.poolAttrsOf(name);
    const next = this.poolAttrs.filter((a) => a['name'] !== name);
    await caller.request(RegistrySetPools, { payload: { pools: next } });
    this.poolAttrs = next;
    this.pools.delete(name);
    this.broken.delete(name);
  }

  // --- a VM's volumes ----------------------------------------------------------------------------

  vmStorage(caller: Caller, vm: string): Promise<VmStorage> {
    return caller.request(RegistryVmStorage, { payload: { vm } });
  }

  /**
   * The VM's volumes in Qubes' order (or only the one named `only`), each bound to its pool, a
   * snapshot to its source, and each told of the VM (the file pool layers by virt_mode).
   */
  volumesOf(state: VmStorage, only?: string): VmVolume[] {
    const configs = state.volumes.map(fromAttrs);
    const context = { virtMode: state.virt_mode, volumes: configs };
    return configs
      .filter((config) => only === undefined || config.name === only)
      .map((config) => {
        const pool = this.pool(config.pool);
        const source = config.snap_on_start && config.source !== null ? pool.volume(sourceConfig(config)) : undefined;
        return { config, volume: pool.volume(config, source, context) };
      });
  }

  volumeOf(state: VmStorage, name: string): VmVolume {
    const found = state.volumes.find((attrs) => attrs['name'] === name);
    if (found === undefined) {
      throw new QubesError('VOLUME_NOT_FOUND', `${state.vm} has no volume ${name}`, { details: { vm: state.vm, volume: name } });
    }
    return this.volumesOf(state, name)[0]!;
  }

  /** Writes the VM's volume config back (qubes.xml, through the registry). */
  async saveVolumes(caller: Caller, vm: string, volumes: readonly VmVolume[]): Promise<void> {
    await caller.request(RegistrySetVolumes, { payload: { vm, volumes: volumes.map((v) => toAttrs(v.config)) } });
  }

  /** Saves one volume's changed config among the VM's others. */
  async saveVolume(caller: Caller, state: VmStorage, changed: VmVolume): Promise<void> {
    const volumes = state.volumes.map((attrs) => (attrs['name'] === changed.config.name ? toAttrs(changed.config) : attrs));
    await caller.request(RegistrySetVolumes, { payload: { vm: state.vm, volumes } });
  }

  /**
   * Makes a new VM's volumes as its class has them; answers their config. On any failure the
   * volumes made so far are removed again.
   */
  async createVolumes(vm: VmStorage, template: VmStorage | null, requestedPool: string | undefined): Promise<VmVolume[]> {
    if (requestedPool !== undefined) this.pool(requestedPool);
    const planned = planVolumes(vm, template, { requested: requestedPool, defaults: this.defaults });
    const made: VmVolume[] = [];
    try {
      for (const plan of planned) {
        const pool = this.pool(plan.pool);
        const config: VolumeConfig & { extra: StorageAttrs } = {
          name: plan.template.name,
          pool: pool.name,
          vid: pool.vidFor({ name: vm.vm, dirPrefix: dirPrefix(vm.class), kernel: vm.kernel }, plan.template.name),
          size: plan.template.size === 'template' ? (plan.source?.size ?? 0) : plan.template.size,
          rw: plan.template.rw,
          snap_on_start: plan.template.snap_on_start,
          save_on_stop: plan.template.save_on_stop,
          source: plan.source?.vid ?? null,
          revisions_to_keep: pool.revisionsToKeep,
          extra: {},
        };
        const volume = pool.volume(config, plan.source === null ? undefined : pool.volume(plan.source));
        await volume.create();
        made.push({ config, volume });
      }
    } catch (err) {
      await this.removeVolumes(made);
      throw err;
    }
    return made;
  }

  /** Removes volumes, each as far as it goes; the failures are logged, the first one thrown. */
  async removeVolumes(volumes: readonly VmVolume[]): Promise<void> {
    let first: unknown;
    for (const { volume, config } of volumes) {
      try {
        await volume.remove();
      } catch (err) {
        this.log.error({ err, vid: config.vid }, 'a volume could not be removed');
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  // --- locks, clones, events -------------------------------------------------------------------

  /** Runs `work` once the VM's earlier volume operations are done; one at a time per VM. */
  withVm<T>(vm: string, work: () => Promise<T>): Promise<T> {
    return this.holdVm(vm).then(async (release) => {
      try {
        return await work();
      } finally {
        release();
      }
    });
  }

  /** Takes the VM's lock until the returned function is called (an import outlives its call). */
  async holdVm(vm: string): Promise<() => void> {
    const previous = this.locks.get(vm) ?? Promise.resolve();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const mine = previous.then(() => held);
    this.locks.set(vm, mine);
    await previous;
    return () => {
      release();
      if (this.locks.get(vm) === mine) this.locks.delete(vm);
    };
  }

  /**
   * A new, empty file on `volume`'s filesystem that a tool on this host may write an import's data
   * into: mode 0660, in the group of the run directory (the tools' group: who may reach its
   * sockets), in a directory that group may enter but not list, so only the one told its name
   * can find it. Null where there is no run directory or the pool offers no such place.
   */
  async scratchFileFor(volume: Volume): Promise<string | null> {
    const dir = volume.scratchDir();
    if (dir === null || this.localDir === undefined) return null;
    await mkdir(this.localDir, { recursive: true, mode: 0o700 });
    const group = (await stat(this.localDir)).gid;
    await mkdir(dir, { recursive: true });
    await chown(dir, -1, group);
    await chmod(dir, 0o710);
    const file = path.join(dir, `${randomBytes(16).toString('hex')}.img`);
    const handle = await open(file, 'wx', 0o600);
    try {
      await handle.chown(-1, group);
      await handle.chmod(0o660);
    } finally {
      await handle.close();
    }
    return file;
  }

  newCloneToken(vm: string, volume: string): string {
    const now = Date.now();
    for (const [token, entry] of this.cloneTokens) if (entry.expires < now) this.cloneTokens.delete(token);
    const token = randomBytes(16).toString('hex');
    this.cloneTokens.set(token, { vm, volume, expires: now + 3600_000 });
    return token;
  }

  takeCloneToken(token: string): { vm: string; volume: string } {
    const entry = this.cloneTokens.get(token);
    this.cloneTokens.delete(token);
    if (entry === undefined || entry.expires < Date.now()) {
      throw new QubesError('BAD_REQUEST', 'the clone token is unknown, used or expired: ask CloneFrom for a new one', { details: { field: 'token' } });
    }
    return entry;
  }

  cancellable(vm: string, volume: string): { signal: AbortSignal; done(): void } {
    const key = `${vm}\0${volume}`;
    const controller = new AbortController();
    this.cancels.set(key, controller);
    return { signal: controller.signal, done: () => this.cancels.get(key) === controller && this.cancels.delete(key) };
  }

  cancel(vm: string, volume: string): boolean {
    const controller = this.cancels.get(`${vm}\0${volume}`);
    controller?.abort();
    return controller !== undefined;
  }

  /** Tells of a volume change; a lost event is logged and counted (the change is made). */
  changed(vm: string, volume: string, action: VolumeAction, size: number): void {
    this.bus.emit(VolumeChanged, { vm, qualifier: volume }, { volume, action, size });
  }

  /** Progress of a long copy as events, at most four a second (and the last one always). */
  progress(vm: string, volume: string, operation: 'clone' | 'import'): (done: number, total: number) => void {
    let last = 0;
    return (done, total) => {
      const now = Date.now();
      if (done < total && now - last < 250) return;
      last = now;
      this.bus.emit(VolumeProgress, { vm, qualifier: volume }, { volume, operation, done, total });
    };
  }
}

/** A snapshot's source, as far as the pool needs it: the committed image under its vid. */
function sourceConfig(config: VolumeConfig): VolumeConfig {
  return { ...config, vid: config.source!, snap_on_start: false, save_on_stop: true, source: null };
}

export function requireHalted(state: VmStorage, what: string): void {
  if (state.power_state !== PowerState.Halted) {
    throw new QubesError('VM_RUNNING', `${state.vm} is ${state.power_state.toLowerCase()}: shut it down before ${what}`, { details: { vm: state.vm } });
  }
}
