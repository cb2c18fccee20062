import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { QubesError, VmClass, type Endpoint, type EventDescriptor } from '@qubes-bus/contracts';
import type { RequestOptions } from '@qubes-bus/bus';
import { DomainFlavor, DomainState, type DomainInfo, type DomainRef, type Hypervisor, type LifecycleEvent } from '@qubes-bus/hypervisor';
import { createLogger } from '@qubes-bus/log';
import { initialQubesApp, type QubesApp } from '@qubes-bus/qubes-model';
import { Lifecycle } from './lifecycle';

/**
 * Races of the lifecycle that a real libvirtd cannot be made to produce on demand: late, lost
 * and foreign events. The hypervisor here is a fake (in memory), whose events the test delivers
 * when it wants; everything real is in test/lifecycle.int.spec.ts.
 */
class FakeHypervisor implements Hypervisor {
  readonly uri = 'fake:///';
  readonly domains = new Map<string, { name: string; state: DomainState }>();
  /** Events not yet delivered: the test delivers them (deliver()) or drops them. */
  readonly pending: LifecycleEvent[] = [];
  private listener: ((event: LifecycleEvent) => void) | null = null;

  private domain(uuid: string): { name: string; state: DomainState } {
    const d = this.domains.get(uuid);
    if (d === undefined) throw new QubesError('DOMAIN_MISSING', `no domain ${uuid}`);
    return d;
  }

  private event(uuid: string, kind: LifecycleEvent['kind'], detail: string): void {
    this.pending.push({ domain: this.domain(uuid).name, kind, detail, ts: new Date().toISOString() });
  }

  /** Delivers the pending events (all, or those matching), in order. */
  deliver(match: (e: LifecycleEvent) => boolean = () => true): void {
    for (const event of this.pending.filter(match)) {
      this.pending.splice(this.pending.indexOf(event), 1);
      this.listener?.(event);
    }
  }

  domainFlavor = async (): Promise<DomainFlavor> => DomainFlavor.Qemu;
  async define(xml: string): Promise<DomainRef> {
    const name = /<name>([^<]*)<\/name>/.exec(xml)![1]!;
    const uuid = /<uuid>([^<]*)<\/uuid>/.exec(xml)?.[1] ?? crypto.randomUUID();
    this.domains.set(uuid, { name, state: this.domains.get(uuid)?.state ?? DomainState.ShutOff });
    return { name, uuid };
  }
  async undefine(uuid: string): Promise<void> {
    this.domains.delete(uuid);
  }
  async lookup(uuid: string): Promise<DomainInfo | null> {
    const d = this.domains.get(uuid);
    return d === undefined ? null : { name: d.name, uuid, state: d.state, memory: 131072, maxMemory: 131072, vcpus: 1, cpuTime: 0 };
  }
  async list(): Promise<DomainInfo[]> {
    return Promise.all([...this.domains.keys()].map(async (uuid) => (await this.lookup(uuid))!));
  }
  async start(uuid: string): Promise<void> {
    this.domain(uuid).state = DomainState.Running;
    this.event(uuid, 'started', 'Booted');
  }
  async shutdown(): Promise<void> {}
  async destroy(uuid: string): Promise<void> {
    this.domain(uuid).state = DomainState.ShutOff;
    this.event(uuid, 'stopped', 'Destroyed');
  }
  async pause(uuid: string): Promise<void> {
    this.domain(uuid).state = DomainState.Paused;
    this.event(uuid, 'suspended', 'Paused');
  }
  async resume(uuid: string): Promise<void> {
    this.domain(uuid).state = DomainState.Running;
    this.event(uuid, 'resumed', 'Unpaused');
  }
  /** What happens to a domain outside the registry: the guest powers off, sleeps, wakes. */
  outside(uuid: string, state: DomainState, kind: LifecycleEvent['kind'], detail: string): void {
    this.domain(uuid).state = state;
    this.event(uuid, kind, detail);
  }
  attachDevice = async (): Promise<void> => undefined;
  detachDevice = async (): Promise<void> => undefined;
  resizeDisk = async (): Promise<void> => undefined;
  xml = async (): Promise<string> => '<domain/>';
  hostInfo = async (): Promise<never> => {
    throw new Error('not in this fake');
  };
  watch(onEvent: (event: LifecycleEvent) => void): { stop(): Promise<void> } {
    this.listener = onEvent;
    return { stop: async () => void (this.listener = null) };
  }
  async close(): Promise<void> {}
}

let app: QubesApp;
let hv: FakeHypervisor;
let lifecycle: Lifecycle;
let published: string[];
/** The hooks called, with the request id each carried. */
let hooks: Array<{ method: string; reqId: string | undefined }>;
const log = createLogger('test', { level: 'silent' });

/** The events published, from this point on. */
function eventsSince(mark: number): string[] {
  return published.slice(mark);
}

/** Lets the reconciliations the delivered events started run to their end. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await sleep(1);
}

beforeEach(async () => {
  app = initialQubesApp('/nonexistent', '2026-11-27T00:00:00.000Z');
  app.createDomain(VmClass.StandaloneVM, { name: 'work', label: 'red', properties: { netvm: '' } });
  hv = new FakeHypervisor();
  published = [];
  hooks = [];
  lifecycle = new Lifecycle({
    app: () => app,
    hypervisor: hv,
    dataDir: '/nonexistent',
    log,
    qubesdb: null,
    bus: {
      emit: (event: EventDescriptor, target: { vm: string }) => {
        published.push(`${target.vm}:${event.name}`);
      },
      request: async (endpoint: Endpoint, _body: unknown, options: RequestOptions = {}) => {
        hooks.push({ method: `${endpoint.service}.${endpoint.method}`, reqId: options.reqId });
        throw new QubesError('SERVICE_UNAVAILABLE', 'no hooks in this test');
      },
    },
  });
  await lifecycle.attach();
});

afterEach(async () => {
  await lifecycle.detach();
});

const uuid = (): string => app.value('work', 'uuid') as string;
const state = (): string => lifecycle.state('work', VmClass.StandaloneVM);

describe('the lifecycle against late, lost and foreign events (fake hypervisor)', () => {
  it("calls a start's storage and device hooks under the start's request id, and starts without services that do not run", async () => {
    await lifecycle.start('work', log, 'qvm-start-7');
    expect(hooks).toEqual([
      { method: 'storage.vm-pre-start', reqId: 'qvm-start-7' },
      { method: 'device-watcher.vm-pre-start', reqId: 'qvm-start-7' },
    ]);
    expect(state()).toBe('Running');
  });

  it('a stop event of the previous run that arrives after a new start changes nothing', async () => {
    await lifecycle.start('work', log);
    hv.deliver();
    await lifecycle.kill('work', log).catch(() => undefined); // its event is held back below
    await lifecycle.start('work', log);
    const mark = published.length;
    hv.deliver(); // the old 'stopped Destroyed', then the new 'started'
    await settle();
    expect(state()).toBe('Running');
    expect(eventsSince(mark)).toEqual([]);
  });

  it('a stop whose event was lost is found by the next start, which ends that run first', async () => {
    await lifecycle.start('work', log);
    hv.deliver();
    hv.outside(uuid(), DomainState.ShutOff, 'stopped', 'Shutdown');
    hv.pending.length = 0; // lost while the monitor restarted
    expect(state()).toBe('Running');
    const mark = published.length;
    await lifecycle.start('work', log);
    expect(eventsSince(mark)).toEqual(['work:domain-shutdown', 'work:domain-stopped', 'work:domain-pre-start', 'work:domain-start']);
    expect(state()).toBe('Running');
  });

  it('a reconciliation finds a stop that had no event at all', async () => {
    await lifecycle.start('work', log);
    hv.deliver();
    hv.outside(uuid(), DomainState.ShutOff, 'stopped', 'Crashed');
    hv.pending.length = 0;
    const mark = published.length;
    await lifecycle.sync(false);
    await settle();
    expect(state()).toBe('Halted');
    expect(eventsSince(mark)).toEqual(['work:domain-shutdown', 'work:domain-stopped']);
  });

  it('a domain of another UUID that took the VM’s name does not make the VM run', async () => {
    const squatter = crypto.randomUUID();
    hv.domains.set(squatter, { name: 'work', state: DomainState.ShutOff });
    hv.outside(squatter, DomainState.Running, 'started', 'Booted');
    hv.deliver();
    await settle();
    expect(state()).toBe('Halted');
    expect(published).toEqual([]);
  });

  it('a VM that wakes from suspend to memory is not started anew', async () => {
    await lifecycle.start('work', log);
    hv.deliver();
    hv.outside(uuid(), DomainState.PmSuspended, 'pmsuspended', 'Memory');
    hv.deliver();
    await settle();
    expect(state()).toBe('Suspended');
    const mark = published.length;
    hv.outside(uuid(), DomainState.Running, 'started', 'Wakeup');
    hv.deliver();
    await settle();
    expect(state()).toBe('Running');
    expect(eventsSince(mark)).toEqual([]);
  });

  it('a domain started outside the registry is announced once, however many events say so', async () => {
    await hv.define(`<domain><name>work</name><uuid>${uuid()}</uuid></domain>`);
    hv.outside(uuid(), DomainState.Running, 'started', 'Booted');
    hv.outside(uuid(), DomainState.Running, 'resumed', 'Unpaused');
    hv.deliver();
    await settle();
    expect(state()).toBe('Running');
    expect(published).toEqual(['work:domain-start']);
  });
});
