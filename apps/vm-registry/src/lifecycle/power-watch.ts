import { setTimeout as sleep } from 'node:timers/promises';
import { requestIfServed, type Requester } from '@qubes-bus/bus';
import {
  DevicesPostStop,
  DomainPaused,
  DomainShutdown,
  DomainStart,
  DomainStopped,
  DomainUnpaused,
  PowerState,
  StoragePostStop,
  VmClass,
  type Endpoint,
  type EventDescriptor,
  type EventFieldsOf,
  type RequestInputOf,
} from '@qubes-bus/contracts';
import type { DomainInfo, Hypervisor, LifecycleEvent } from '@qubes-bus/hypervisor';
import type { Logger } from '@qubes-bus/log';
import type { QubesApp } from '@qubes-bus/qubes-model';
import type { QubesDb } from '@qubes-bus/qubesdb';
import { powerOf, type PowerStates } from './power-state';
import { qubesDbEntries } from './domain-config';

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

/**
 * The power state of each VM as libvirt shows it, kept from libvirt's events and a periodic
 * look at every domain, so that a domain stopped outside the registry (`virsh destroy`, a
 * crash) is seen: `domain-shutdown`, clean-up (QubesDB, post-stop hooks), then
 * `domain-stopped`. Late or foreign events only say when to look again; libvirt, by UUID, is
 * the truth. The calls that change states are the Lifecycle's, built on this.
 */
export class PowerWatch implements PowerStates {
  protected readonly states = new Map<string, PowerState>();
  /** VMs asked to shut down and not yet halted: shown as Halting. */
  protected readonly halting = new Set<string>();
  protected readonly starting = new Map<string, Promise<void>>();
  /** The clean-up after a stop, per VM: a start waits for it. */
  protected readonly stopping = new Map<string, Promise<void>>();
  protected readonly stopWaiters = new Map<string, Array<() => void>>();
  /** UUIDs libvirt has had a domain for while we watched. */
  protected readonly seen = new Set<string>();
  protected synced = false;
  protected syncing: Promise<void> | null = null;
  protected syncAgain = false;
  protected reconciler: NodeJS.Timeout | undefined;
  /** The reconciliation of each VM in progress, chained: one at a time per VM. */
  protected readonly reconciling = new Map<string, Promise<void>>();
  protected watcher: { stop(): Promise<void> } | null = null;
  protected readonly log: Logger;

  constructor(protected readonly options: LifecycleOptions) {
    this.log = options.log;
  }

  protected get app(): QubesApp {
    return this.options.app();
  }

  protected get hv(): Hypervisor {
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

  protected async resync(initial: boolean): Promise<void> {
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
  protected observe(event: LifecycleEvent): void {
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
  protected reconcile(vm: string, event: LifecycleEvent | null): Promise<void> {
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
  protected transition(vm: string, to: PowerState, event: typeof DomainPaused | null): void {
    if (this.states.get(vm) === to) return;
    this.states.set(vm, to);
    if (event !== null) this.emit(event, vm, {});
  }

  protected emit<E extends EventDescriptor>(event: E, vm: string, fields: EventFieldsOf<E>): void {
    this.options.bus?.emit(event, { vm }, fields);
  }

  /** A VM runs that did not run: started here, or outside (then its QubesDB is opened too). */
  protected async started(vm: string, log: Logger): Promise<void> {
    this.states.set(vm, PowerState.Running);
    await this.openQubesDb(vm, log).catch((err: unknown) => log.error({ err, vm }, "the VM's QubesDB could not be written"));
    this.emit(DomainStart, vm, {});
  }

  /** A VM stopped: `domain-shutdown` at once, then its clean-up, then `domain-stopped`. */
  protected stopped(vm: string, reason: string): void {
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
  protected async cleanUp(vm: string, log: Logger, reqId: string | undefined): Promise<void> {
    const uuid = this.app.exists(vm) ? (this.app.value(vm, 'uuid') as string) : '';
    await this.options.qubesdb?.disconnect(vm).catch((err: unknown) => log.error({ err, vm }, "the VM's QubesDB could not be removed"));
    for (const hook of [StoragePostStop, DevicesPostStop]) {
      await this.hook(hook, { payload: { vm, uuid } }, log, reqId).catch((err: unknown) => log.error({ err, vm, hook: hook.subject() }, 'a post-stop hook failed'));
    }
  }

  protected async openQubesDb(vm: string, log: Logger): Promise<void> {
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
  protected async hook<E extends Endpoint>(endpoint: E, body: RequestInputOf<E>, log: Logger, reqId: string | undefined): Promise<unknown> {
    const bus = this.options.bus;
    if (bus === null) return null;
    return requestIfServed(bus, log, endpoint, body, { timeoutMs: HOOK_TIMEOUT_MS, quiet: true, ...(reqId === undefined ? {} : { reqId }) });
  }

  protected uuidOf(vm: string): string {
    return this.app.value(vm, 'uuid') as string;
  }
}
