import { setTimeout as sleep } from 'node:timers/promises';
import {
  DevicesPreStart,
  DomainPaused,
  DomainPreStart,
  DomainStart,
  DomainStartFailed,
  DomainUnpaused,
  isQubesError,
  PowerState,
  QubesError,
  StoragePreStart,
  VmClass,
  type CurrentState,
  type DiskInfo,
  type HostInfoReply,
} from '@qubes-bus/contracts';
import { buildDomainXml, diskTarget, DomainState, type DomainFlavor } from '@qubes-bus/hypervisor';
import type { Logger } from '@qubes-bus/log';
import type { QubesApp } from '@qubes-bus/qubes-model';
import { notRunning, powerOf } from './power-state';
import { domainSpec } from './domain-config';
import { PowerWatch } from './power-watch';

/** How often a wait for a stop looks at libvirt itself, in case its event was missed. */
const STOP_POLL_MS = 500;
/** How long a kill waits for the domain to be gone and its run cleaned up. */
const KILL_PATIENCE_MS = 30_000;

/**
 * Starts, stops, pauses VMs through the hypervisor port, on the power states PowerWatch keeps
 * from libvirt's events.
 *
 * Domains are addressed by the UUID in qubes.xml. A VM's domain is defined when the VM is
 * created (libvirt gives the UUID) and redefined from the current properties before each start.
 * A domain that vanishes while the registry watches is reported (DOMAIN_MISSING), never made
 * anew; a VM that had no domain when the registry came up (created offline, restored, copied
 * from another machine) gets one, under its own UUID, at its first start.
 */
export class Lifecycle extends PowerWatch {
  // --- calls -----------------------------------------------------------------------------------

  private checkManaged(vm: string): void {
    if (this.app.domain(vm).klass === VmClass.AdminVM) {
      throw new QubesError('VM_CLASS_INVALID', `${vm} is the admin VM: it always runs, and is not a domain to start or stop`, { details: { vm } });
    }
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
