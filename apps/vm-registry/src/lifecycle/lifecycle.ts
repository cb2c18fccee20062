import { setTimeout as sleep } from 'node:timers/promises';
import { requestIfServed, type Requester } from '@qubes-bus/bus';
import {
  DevicesPostStop,
  DevicesPreStart,
  DomainPaused,
  DomainPreStart,
  DomainShutdown,
  DomainStart,
  DomainStartFailed,
  DomainStopped,
  DomainUnpaused,
  isQubesError,
  PowerState,
  QubesError,
  StoragePostStop,
  StoragePreStart,
  VmClass,
  type CurrentState,
  type DiskInfo,
  type Endpoint,
  type EventDescriptor,
  type EventFieldsOf,
  type HostInfoReply,
  type RequestInputOf,
} from '@qubes-bus/contracts';
import { buildDomainXml, diskTarget, DomainState, type DomainFlavor, type DomainInfo, type Hypervisor, type LifecycleEvent } from '@qubes-bus/hypervisor';
import type { Logger } from '@qubes-bus/log';
import type { QubesApp } from '@qubes-bus/qubes-model';
import type { QubesDb } from '@qubes-bus/qubesdb';
import { notRunning, powerOf, type PowerStates } from './power-state';
import { domainSpec, qubesDbEntries } from './domain-config';

/** Where lifecycle events go: the bus (`Bus.emit`, which logs and counts a lost one), or nowhere offline. */
export interface LifecyclePublisher {
  emit<E extends EventDescriptor>(event: E, target: { vm: string }, fields: EventFieldsOf<E>): void;
}

export interface LifecycleOptions {
  /** The registry's model, as it is now (it changes under us). */
  app: () => QubesApp;
  hypervisor: Hypervisor;
  dataDir: string;
  log: Logger;
  /** Events and hooks: the bus; null offline. */
  bus: (LifecyclePublisher & Requester) | null;
  qubesdb: QubesDb | null;
}

const HOOK_TIMEOUT_MS = 60_000;
/** How often the states are compared with libvirt's, in case an event was lost. */
const RECONCILE_MS = 10_000;
/** How long a stopping registry waits for starts and clean-ups in progress. */
const DETACH_PATIENCE_MS = 15_000;
/** How long a kill waits for the domain to be gone and its run cleaned up. */
const KILL_PATIENCE_MS = 30_000;
/** How often a wait for a stop looks at libvirt itself, in case its event was missed. */
const STOP_POLL_MS = 500;

/**
 * Starts, stops, pauses VMs through the hypervisor port and keeps their power state, driven
 * by libvirt's events so that a domain stopped outside the registry (`virsh destroy`, a crash)
 * is seen: `domain-shutdown`, clean-up (QubesDB, post-stop hooks), then `domain-stopped`.
 *
 * Domains are addressed by the UUID in qubes.xml. A VM's domain is defined when the VM is
 * created (libvirt gives the UUID) and redefined from the current properties before each start.
 * A domain that vanishes while the registry watches is reported (DOMAIN_MISSING), never made
 * anew; a VM that had no domain when the registry came up (created offline, restored, copied
 * from another machine) gets one, under its own UUID, at its first start.
 */
export class Lifecycle implements PowerStates {
  private readonly states = new Map<string, PowerState>();
  /** VMs asked to shut down and not yet halted: shown as Halting. */
  private readonly halting = new Set<string>();
  private readonly starting = new Map<string, Promise<void>>();
  /** The clean-up after a stop, per VM: a start waits for it. */
  private readonly stopping = new Map<string, Promise<void>>();
  private readonly stopWaiters = new Map<string, Array<() => void>>();
  /** UUIDs libvirt has had a domain for while we watched. */
  private readonly seen = new Set<string>();
  private synced = false;
  private syncing: Promise<void> | null = null;
  private syncAgain = false;
  private reconciler: NodeJS.Timeout | undefined;
  /** The reconciliation of each VM in progress, chained: one at a time per VM. */
  private readonly reconciling = new Map<string, Promise<void>>();
  private watcher: { stop(): Promise<void> } | null = null;
  private readonly log: Logger;

  constructor(private readonly options: LifecycleOptions) {
    this.log = options.log;
  }

  private get app(): QubesApp {
    return this.options.app();
  }

  private get hv(): Hypervisor {
    return this.options.hypervisor;
  }

  get online(): boolean {
    return this.hv.uri !== null;
  }

  // --- power state -----------------------------------------------------------------------------

  state(vm: string, klass: VmClass): PowerState {
    if (klass === VmClass.AdminVM) return PowerState.Running;
    if (this.starting.has(vm) && this.states.get(vm) !== PowerState.Running) return PowerState.Transient;
    const state = this.states.get(vm) ?? PowerState.Halted;
    if (state === PowerState.Running && this.halting.has(vm)) return PowerState.Halting;
    // Until libvirt has answered once, we do not know (offline, nothing runs).
    if (!this.synced && this.online) return PowerState.NA;
    return state;
  }

  /** Watches libvirt's events and reads every domain's state once, then every RECONCILE_MS. */
  async attach(): Promise<void> {
    this.watcher = this.hv.watch(
      (event) => this.observe(event),
      () => void this.sync(false),
    );
    await this.sync(true);
    if (this.online) {
      this.reconciler = setInterval(() => void this.sync(false), RECONCILE_MS);
      this.reconciler.unref();
    }
  }

  async detach(): Promise<void> {
    if (this.reconciler !== undefined) clearInterval(this.reconciler);
    await this.watcher?.stop();
    this.watcher = null;
    // A libvirt call that hangs must not hold the registry's exit for ever.
    const work = Promise.allSettled([...this.starting.values(), ...this.stopping.values(), ...this.reconciling.values()]);
    await Promise.race([work, sleep(DETACH_PATIENCE_MS, undefined, { ref: false })]);
    await this.hv.close();
  }

  /**
   * Brings the states in line with libvirt: at start-up (a VM whose QubesDB is open was running
   * when we last knew), after the event monitor (re)started (events may have been missed), and
   * every RECONCILE_MS. One at a time; one asked for meanwhile runs after it.
   */
  sync(initial: boolean): Promise<void> {
    if (!this.online) return Promise.resolve();
    if (this.syncing !== null) {
      this.syncAgain = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      await this.resync(initial);
      while (this.syncAgain) {
        this.syncAgain = false;
        await this.resync(false);
      }
    })().finally(() => (this.syncing = null));
    return this.syncing;
  }

  private async resync(initial: boolean): Promise<void> {
    let domains;
    try {
      domains = await this.hv.list();
    } catch (err) {
      this.log.warn({ err }, 'cannot read the domains from libvirt; states are unknown until it answers');
      return;
    }
    const byUuid = new Map(domains.map((d) => [d.uuid, d]));
    for (const d of domains) this.seen.add(d.uuid);
    const app = this.app;
    if (initial) {
      // What we knew when we last ran: a VM whose QubesDB is open was running.
      const open = new Set(this.options.qubesdb === null ? [] : await this.options.qubesdb.connectedVms().catch(() => []));
      for (const vm of open) if (app.exists(vm) && !this.states.has(vm)) this.states.set(vm, PowerState.Running);
    }
    const differing: string[] = [];
    for (const [vm, d] of app.domains) {
      if (d.klass === VmClass.AdminVM) continue;
      const info = byUuid.get(app.value(vm, 'uuid') as string);
      const observed = info === undefined ? PowerState.Halted : powerOf(info.state);
      if (observed !== (this.states.get(vm) ?? PowerState.Halted)) differing.push(vm);
    }
    this.synced = true;
    // The listing is a snapshot: each VM that differs is looked at again, alone, before acting.
    await Promise.all(differing.map((vm) => this.reconcile(vm, null)));
  }

  /** One lifecycle event from libvirt: a sign that the domain of the VM of that name changed. */
  private observe(event: LifecycleEvent): void {
    const vm = event.domain;
    if (!this.app.exists(vm) || this.app.domain(vm).klass === VmClass.AdminVM) return;
    // Our own redefinitions; a guest's 'shutdown' is followed by 'stopped', which says why.
    if (event.kind === 'defined' || event.kind === 'shutdown') return;
    if (event.kind === 'undefined') {
      this.log.info({ vm }, 'the libvirt domain of a VM was removed');
      return;
    }
    void this.reconcile(vm, event);
  }

  /**
   * Looks at the VM's domain (by UUID: a domain of another UUID that took the name is not the
   * VM's) and makes the VM's state what libvirt says, announcing the change. An event only says
   * when to look: one that arrives late (a stop of the previous run, seen after a new start)
   * finds the domain running and changes nothing. One VM at a time; a start in progress owns
   * the VM's state until it is done.
   */
  private reconcile(vm: string, event: LifecycleEvent | null): Promise<void> {
    const previous = this.reconciling.get(vm) ?? Promise.resolve();
    const next = previous.then(async () => {
      await this.stopping.get(vm);
      if (this.starting.has(vm) || !this.app.exists(vm)) return;
      let info: DomainInfo | null;
      try {
        info = await this.hv.lookup(this.uuidOf(vm));
      } catch (err) {
        this.log.warn({ err, vm }, 'cannot read the state of a VM from libvirt');
        return;
      }
      if (this.starting.has(vm) || !this.app.exists(vm)) return;
      const observed = info === null ? PowerState.Halted : powerOf(info.state);
      const known = this.states.get(vm) ?? PowerState.Halted;
      if (observed === known) return;
      if (observed === PowerState.Halted || observed === PowerState.Crashed) {
        const stopEvent = event !== null && (event.kind === 'stopped' || event.kind === 'crashed');
        this.stopped(vm, stopEvent ? event.detail.toLowerCase() || event.kind : 'unknown');
      } else if (known === PowerState.Halted) {
        await this.started(vm, this.log); // started outside the registry (virsh start)
        if (observed === PowerState.Paused) this.transition(vm, PowerState.Paused, DomainPaused);
      } else if (observed === PowerState.Paused) {
        this.transition(vm, PowerState.Paused, DomainPaused);
      } else if (known === PowerState.Paused && observed === PowerState.Running) {
        this.transition(vm, PowerState.Running, DomainUnpaused);
      } else {
        this.transition(vm, observed, null); // suspended to memory and back, or NA
      }
    });
    const settled = next.finally(() => {
      if (this.reconciling.get(vm) === settled) this.reconciling.delete(vm);
    });
    this.reconciling.set(vm, settled);
    return settled;
  }

  /** A change of state, announced by `event` (an event without fields) unless it is no change. */
  private transition(vm: string, to: PowerState, event: typeof DomainPaused | null): void {
    if (this.states.get(vm) === to) return;
    this.states.set(vm, to);
    if (event !== null) this.emit(event, vm, {});
  }

  private emit<E extends EventDescriptor>(event: E, vm: string, fields: EventFieldsOf<E>): void {
    this.options.bus?.emit(event, { vm }, fields);
  }

  /** A VM runs that did not run: started here, or outside (then its QubesDB is opened too). */
  private async started(vm: string, log: Logger): Promise<void> {
    this.states.set(vm, PowerState.Running);
    await this.openQubesDb(vm, log).catch((err: unknown) => log.error({ err, vm }, "the VM's QubesDB could not be written"));
    this.emit(DomainStart, vm, {});
  }

  /** A VM stopped: `domain-shutdown` at once, then its clean-up, then `domain-stopped`. */
  private stopped(vm: string, reason: string): void {
    const state = this.states.get(vm) ?? PowerState.Halted;
    if (state === PowerState.Halted || this.stopping.has(vm)) return;
    this.states.set(vm, PowerState.Halted);
    this.halting.delete(vm);
    this.emit(DomainShutdown, vm, { reason });
    const cleanup = this.cleanUp(vm, this.log, undefined)
      .then(() => this.emit(DomainStopped, vm, {}))
      .finally(() => {
        this.stopping.delete(vm);
        for (const wake of this.stopWaiters.get(vm) ?? []) wake();
        this.stopWaiters.delete(vm);
      });
    this.stopping.set(vm, cleanup);
  }

  /** What a run leaves behind: QubesDB, then the storage and device services' post-stop hooks. */
  private async cleanUp(vm: string, log: Logger, reqId: string | undefined): Promise<void> {
    const uuid = this.app.exists(vm) ? (this.app.value(vm, 'uuid') as string) : '';
    await this.options.qubesdb?.disconnect(vm).catch((err: unknown) => log.error({ err, vm }, "the VM's QubesDB could not be removed"));
    for (const hook of [StoragePostStop, DevicesPostStop]) {
      await this.hook(hook, { payload: { vm, uuid } }, log, reqId).catch((err: unknown) => log.error({ err, vm, hook: hook.subject() }, 'a post-stop hook failed'));
    }
  }

  private async openQubesDb(vm: string, log: Logger): Promise<void> {
    const qubesdb = this.options.qubesdb;
    if (qubesdb === null) return;
    const uuid = this.app.value(vm, 'uuid') as string;
    const flavor = await this.hv.domainFlavor();
    await qubesdb.connect(vm, { uuid, since: new Date().toISOString() }, qubesDbEntries(this.app, vm, { flavor }));
    log.debug({ vm }, 'QubesDB written');
  }

  /**
   * A hook of another service; null when that service is not running. `reqId` is the request
   * that caused it (a qvm-start's), so the hook's log lines share its id.
   */
  private async hook<E extends Endpoint>(endpoint: E, body: RequestInputOf<E>, log: Logger, reqId: string | undefined): Promise<unknown> {
    const bus = this.options.bus;
    if (bus === null) return null;
    return requestIfServed(bus, log, endpoint, body, { timeoutMs: HOOK_TIMEOUT_MS, quiet: true, ...(reqId === undefined ? {} : { reqId }) });
  }

  // --- calls -----------------------------------------------------------------------------------

  private checkManaged(vm: string): void {
    if (this.app.domain(vm).klass === VmClass.AdminVM) {
      throw new QubesError('VM_CLASS_INVALID', `${vm} is the admin VM: it always runs, and is not a domain to start or stop`, { details: { vm } });
    }
  }

  private uuidOf(vm: string): string {
    return this.app.value(vm, 'uuid') as string;
  }

  /** Starts a VM, its netvm chain first. Two starts of one VM start it once. */
  start(vm: string, log: Logger, reqId?: string): Promise<void> {
    this.checkManaged(vm);
    const running = this.starting.get(vm);
    if (running !== undefined) return running;
    const start = this.doStart(vm, log, reqId).finally(() => this.starting.delete(vm));
    this.starting.set(vm, start);
    return start;
  }

  private async doStart(vm: string, log: Logger, reqId: string | undefined): Promise<void> {
    await this.reconciling.get(vm);
    await this.stopping.get(vm); // the clean-up of the previous run comes first
    const uuid = this.uuidOf(vm);
    const info = await this.hv.lookup(uuid);
    if (info === null && this.seen.has(uuid)) {
      throw new QubesError('DOMAIN_MISSING', `the libvirt domain of ${vm} (${uuid}) was removed outside qubes-bus; it is not made anew behind your back`, { details: { vm, uuid } });
    }
    const known = this.states.get(vm) ?? PowerState.Halted;
    if (info !== null && info.state !== DomainState.ShutOff && info.state !== DomainState.Crashed) {
      // It runs already: nothing to do (Qubes too), but to take note if that is news.
      if (known === PowerState.Halted) await this.started(vm, log);
      else this.states.set(vm, powerOf(info.state));
      return;
    }
    if (known !== PowerState.Halted) {
      // Its stop was missed (an event lost while the monitor restarted): that run ends first,
      // so that its late clean-up cannot fall on the new one.
      this.stopped(vm, 'unknown');
      await this.stopping.get(vm);
    }
    const netvm = this.app.value(vm, 'netvm') as string | null;
    if (netvm !== null && this.state(netvm, this.app.domain(netvm).klass) !== PowerState.Running) {
      try {
        await this.start(netvm, log, reqId);
      } catch (err) {
        const reason = `its netvm ${netvm} cannot start: ${(err as Error).message}`;
        this.emit(DomainStartFailed, vm, { reason });
        throw isQubesError(err) ? new QubesError(err.code, `${vm} cannot start: ${reason}`, { details: { vm, netvm }, cause: err }) : err;
      }
    }
    this.emit(DomainPreStart, vm, {});
    try {
      const storage = (await this.hook(StoragePreStart, { payload: { vm, uuid } }, log, reqId).catch((err: unknown) => {
        throw hookFailure(vm, 'storage', err);
      })) as { disks: DiskInfo[] } | null;
      await this.hook(DevicesPreStart, { payload: { vm, uuid } }, log, reqId).catch((err: unknown) => {
        throw hookFailure(vm, 'devices', err);
      });
      // Redefined from the properties as they are now; the UUID in the XML pins the domain.
      const flavor = await this.hv.domainFlavor();
      const xml = buildDomainXml(domainSpec(this.app, vm, { flavor, dataDir: this.options.dataDir, disks: storage?.disks ?? [] }), flavor);
      await this.hv.define(xml);
      this.seen.add(uuid);
      await this.openQubesDb(vm, log);
      await this.hv.start(uuid);
    } catch (err) {
      await this.cleanUp(vm, log, reqId);
      this.emit(DomainStartFailed, vm, { reason: (err as Error).message });
      log.warn({ err, vm }, 'start failed');
      throw err;
    }
    this.states.set(vm, PowerState.Running);
    this.halting.delete(vm);
    this.emit(DomainStart, vm, {});
    log.info({ vm }, 'started');
  }

  /** The VMs that use `vm` as their netvm and run. */
  runningClients(vm: string): string[] {
    return this.app.usersOf(vm, 'netvm').filter((client) => this.state(client, this.app.domain(client).klass) !== PowerState.Halted);
  }

  private async liveState(vm: string): Promise<PowerState> {
    const info = await this.hv.lookup(this.uuidOf(vm));
    return info === null ? PowerState.Halted : powerOf(info.state);
  }

  async shutdown(vm: string, options: { force: boolean; wait: boolean }, log: Logger): Promise<void> {
    this.checkManaged(vm);
    if ((await this.liveState(vm)) === PowerState.Halted) throw notRunning(vm);
    const clients = this.runningClients(vm);
    if (clients.length > 0 && !options.force) {
      throw new QubesError('VM_IN_USE', `there are other VMs connected to ${vm}: ${clients.join(', ')}; shut them down first, or force`, {
        details: { vm, usedBy: clients.map((client) => ({ vm: client, property: 'netvm' })) },
      });
    }
    const halted = options.wait ? this.whenHalted(vm) : null;
    this.halting.add(vm);
    try {
      await this.hv.shutdown(this.uuidOf(vm));
    } catch (err) {
      this.halting.delete(vm);
      halted?.cancel();
      throw err;
    }
    const timeoutS = this.app.value(vm, 'shutdown_timeout') as number;
    if (halted === null) {
      // Halting until it halts, or until its time is up and it plainly did not listen.
      setTimeout(() => this.halting.delete(vm), timeoutS * 1000).unref();
      return;
    }
    if (await halted.wait(timeoutS * 1000)) return;
    log.warn({ vm, timeoutS }, 'the VM did not shut down in time: killing it');
    await this.kill(vm, log);
  }

  async kill(vm: string, _log: Logger): Promise<void> {
    this.checkManaged(vm);
    if ((await this.liveState(vm)) === PowerState.Halted) throw notRunning(vm);
    const halted = this.whenHalted(vm);
    try {
      await this.hv.destroy(this.uuidOf(vm));
    } catch (err) {
      halted.cancel();
      throw err;
    }
    // Answered once the stop is handled (QubesDB gone, hooks run), as Qubes' kill does.
    if (!(await halted.wait(KILL_PATIENCE_MS))) {
      throw new QubesError('VMM_ERROR', `libvirt destroyed ${vm}, but it did not stop within ${KILL_PATIENCE_MS / 1000} s`, { details: { vm } });
    }
  }

  async pause(vm: string, _log: Logger): Promise<void> {
    this.checkManaged(vm);
    const state = await this.liveState(vm);
    if (state !== PowerState.Running && state !== PowerState.Paused) throw notRunning(vm);
    if (state === PowerState.Running) await this.hv.pause(this.uuidOf(vm));
    this.transition(vm, PowerState.Paused, DomainPaused);
  }

  /**
   * Tells a running (or paused) VM's domain that its disk `frontend` grew to `bytes`; answers
   * false, doing nothing, when the VM does not run.
   */
  async resizeDisk(vm: string, frontend: string, bytes: number, log: Logger): Promise<boolean> {
    this.checkManaged(vm);
    const state = await this.liveState(vm);
    if (state !== PowerState.Running && state !== PowerState.Paused) return false;
    const target = diskTarget(frontend, await this.hv.domainFlavor()).dev;
    await this.hv.resizeDisk(this.uuidOf(vm), target, bytes);
    log.info({ vm, target, bytes }, 'the domain was told its disk grew');
    return true;
  }

  async unpause(vm: string, _log: Logger): Promise<void> {
    this.checkManaged(vm);
    if ((await this.liveState(vm)) !== PowerState.Paused) {
      throw new QubesError('VM_NOT_PAUSED', `${vm} is not paused`, { details: { vm } });
    }
    await this.hv.resume(this.uuidOf(vm));
    this.transition(vm, PowerState.Running, DomainUnpaused);
  }

  async currentState(vm: string): Promise<CurrentState> {
    const d = this.app.domain(vm);
    const halted = { mem: 0, mem_static_max: 0, cputime: 0 };
    if (d.klass === VmClass.AdminVM) return { power_state: PowerState.Running, ...halted };
    if (!this.online) return { power_state: PowerState.Halted, ...halted };
    const info = await this.hv.lookup(this.uuidOf(vm));
    if (info === null || info.state === DomainState.ShutOff) return { power_state: this.state(vm, d.klass) === PowerState.Transient ? PowerState.Transient : PowerState.Halted, ...halted };
    return { power_state: this.state(vm, d.klass), mem: info.memory, mem_static_max: info.maxMemory, cputime: info.cpuTime };
  }

  async hostInfo(): Promise<HostInfoReply> {
    const host = await this.hv.hostInfo();
    let running = 0;
    for (const [vm, d] of this.app.domains) if (this.state(vm, d.klass) !== PowerState.Halted) running++;
    return {
      hostname: host.hostname,
      cpus: host.cpus,
      mhz: host.mhz,
      memory_total: host.memoryTotal,
      memory_free: host.memoryFree,
      cpu_usage: host.cpuUsage,
      running,
    };
  }

  /**
   * A wait for the VM to be halted and cleaned up, armed now (before the call that stops it):
   * `wait` is true once it is, false after `timeoutMs`; libvirt is asked too, in case its event
   * was lost. `cancel` when the call failed and there is nothing to wait for.
   */
  private whenHalted(vm: string): { wait(timeoutMs: number): Promise<boolean>; cancel(): void } {
    let wake!: () => void;
    let finished = false;
    const done = new Promise<void>((resolve) => (wake = resolve)).then(() => {
      finished = true;
    });
    this.stopWaiters.set(vm, [...(this.stopWaiters.get(vm) ?? []), wake]);
    const cancel = (): void => {
      const rest = (this.stopWaiters.get(vm) ?? []).filter((w) => w !== wake);
      if (rest.length > 0) this.stopWaiters.set(vm, rest);
      else this.stopWaiters.delete(vm);
    };
    return {
      cancel,
      wait: async (timeoutMs) => {
        const deadline = Date.now() + timeoutMs;
        try {
          while (!finished && Date.now() < deadline) {
            await Promise.race([done, sleep(Math.min(STOP_POLL_MS, Math.max(0, deadline - Date.now())))]);
            if (finished) break;
            if ((await this.liveState(vm).catch(() => null)) === PowerState.Halted) {
              this.stopped(vm, 'unknown');
              await this.stopping.get(vm);
              return true;
            }
          }
          return finished;
        } finally {
          cancel();
        }
      },
    };
  }

  // --- definition ------------------------------------------------------------------------------

  /**
   * Defines the domain of a VM about to be created, from what the VM will be; returns libvirt's
   * UUID, or null offline (the domain is defined at the first start).
   */
  async defineNew(vm: string, xml: string): Promise<string | null> {
    if (!this.online) return null;
    const { uuid } = await this.hv.define(xml, { newName: vm });
    this.seen.add(uuid);
    return uuid;
  }

  /**
   * Before a VM is removed: its last run cleaned up, and libvirt itself says its domain is not
   * running (the state we keep could miss a start made outside; undefine would kill it).
   */
  async checkHalted(vm: string): Promise<void> {
    if (!this.online || this.app.domain(vm).klass === VmClass.AdminVM) return;
    await this.stopping.get(vm);
    if ((await this.liveState(vm)) !== PowerState.Halted || this.starting.has(vm)) {
      throw new QubesError('VM_RUNNING', `${vm} is running; shut it down first`, { details: { vm } });
    }
  }

  /** Removes a removed VM's domain; offline there is none to remove. */
  async undefine(vm: string, uuid: string, log: Logger): Promise<void> {
    if (!this.online) return;
    this.seen.delete(uuid);
    this.states.delete(vm);
    try {
      await this.hv.undefine(uuid);
    } catch (err) {
      log.error({ err, vm, uuid }, 'the VM is removed, but its libvirt domain could not be: remove it with virsh undefine');
    }
  }

  /** The XML a new VM's domain is first defined with (no UUID yet: libvirt gives it). */
  definitionXml(app: QubesApp, vm: string, flavor: DomainFlavor): string {
    const { uuid: _local, ...spec } = domainSpec(app, vm, { flavor, dataDir: this.options.dataDir, disks: [], definitionOnly: true });
    return buildDomainXml(spec, flavor);
  }

  /** The kind of domain this hypervisor runs (asked of libvirt once). */
  domainFlavor(): Promise<DomainFlavor> {
    return this.hv.domainFlavor();
  }
}

function hookFailure(vm: string, what: string, err: unknown): QubesError {
  const reason = (err as Error).message;
  const how = isQubesError(err) && err.code === 'TIMEOUT' ? 'did not answer in time' : 'refused';
  return new QubesError('VM_START_FAILED', `${vm} cannot start: the ${what} service ${how}: ${reason}`, { details: { vm, service: what }, cause: err });
}
