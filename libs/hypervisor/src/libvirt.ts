import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Domain, Hypervisor as LibvirtConnection } from '@unraid/libvirt';
import { QubesError } from '@qubes-bus/contracts';
import { requireBinary } from '@qubes-bus/daemons';
import { DomainFlavor } from './domain-xml';
import { watchLifecycle } from './libvirt-events';
import { DomainState, type DomainInfo, type DomainRef, type HostInfo, type Hypervisor, type LifecycleEvent } from './port';

const execFileAsync = promisify(execFile);

/** libvirt's numeric states (virDomainState) by name. */
const STATES: readonly DomainState[] = [
  DomainState.NoState,
  DomainState.Running,
  DomainState.Blocked,
  DomainState.Paused,
  DomainState.ShuttingDown,
  DomainState.ShutOff,
  DomainState.Crashed,
  DomainState.PmSuspended,
];

/**
 * The binding reports every error with code -1: what happened is only in the message. These
 * mean the connection itself is gone (libvirtd restarted, socket closed).
 */
const CONNECTION_LOST =
  /client socket is closed|cannot recv data|cannot write data|end of file while reading|broken pipe|not connected|connection (closed|reset)|invalid connection|failed to connect socket|no connection driver/i;
const NOT_FOUND = /domain not found|no domain with matching/i;
/** A connection found closed before the request went out: nothing was done, trying again is safe. */
const NOT_SENT = /client socket is closed|invalid connection|not connected/i;
/** A libvirt call that has not answered by then never will (a QEMU monitor that hangs). */
const CALL_TIMEOUT_MS = 60_000;

/** `promise`, or `failure()` once `ms` have passed; the timer never holds the process. */
function withTimeout<T>(promise: Promise<T>, ms: number, failure: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(failure()), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function isConnectionLost(err: unknown): boolean {
  return CONNECTION_LOST.test(String((err as Error)?.message ?? err));
}

/**
 * The libvirt adapter: `@unraid/libvirt` for lifecycle and queries, `virsh` for what the
 * binding lacks (events, node statistics). The connection is opened on the first call, so a
 * tool that only reads qubes.xml never pays for it; a call that finds the connection lost
 * opens a new one and tries once more. Domain handles are looked up for each call, never
 * kept, so a restarted libvirtd never leaves a stale one behind (the seed's vm.refresh()).
 */
export class LibvirtHypervisor implements Hypervisor {
  private connection: Promise<LibvirtConnection> | null = null;
  private lastCpu: { busy: number; total: number } | null = null;

  private flavor: Promise<DomainFlavor> | null;

  /** `flavor`: the kind of domain to define (QUBES_DOMAIN_TYPE); default: what libvirt offers. */
  constructor(
    readonly uri: string,
    options: { flavor?: DomainFlavor | undefined } = {},
  ) {
    const fixed = options.flavor ?? (/^xen[:+]/.test(uri) ? DomainFlavor.Xen : undefined);
    this.flavor = fixed === undefined ? null : Promise.resolve(fixed);
  }

  /** KVM where libvirt's capabilities offer it (not merely where /dev/kvm exists), else QEMU's TCG. */
  domainFlavor(): Promise<DomainFlavor> {
    this.flavor ??= this.virsh('capabilities').then(
      (capabilities) => (/<domain type=['"]kvm['"]/.test(capabilities) ? DomainFlavor.Kvm : DomainFlavor.Qemu),
      (err: unknown) => {
        this.flavor = null; // asked again next time
        throw new QubesError('VMM_UNREACHABLE', `libvirt cannot be reached at ${this.uri}: ${(err as Error).message}`, { cause: err });
      },
    );
    return this.flavor;
  }

  private connect(): Promise<LibvirtConnection> {
    this.connection ??= (async () => {
      const { Hypervisor: Binding } = await import('@unraid/libvirt');
      const conn = new Binding({ uri: this.uri });
      try {
        await conn.connectOpen();
      } catch (err) {
        throw new QubesError('VMM_UNREACHABLE', `libvirt cannot be reached at ${this.uri}: ${(err as Error).message}`, { cause: err });
      }
      return conn;
    })().catch((err: unknown) => {
      this.connection = null; // the next call tries again
      throw err;
    });
    return this.connection;
  }

  /**
   * Runs `op` on the connection. A lost connection is dropped and a new one opened; a read
   * (`retry`) is tried again on it, a change only when the old connection was found closed
   * before the request went out: else it may have been done (a second domainCreate would fail
   * as "already running").
   */
  private async call<T>(what: string, op: (conn: LibvirtConnection) => Promise<T>, options: { retry?: boolean; timeoutMs?: number } = {}): Promise<T> {
    const { retry = false, timeoutMs = CALL_TIMEOUT_MS } = options;
    for (let attempt = 0; ; attempt++) {
      const conn = await this.connect();
      try {
        return await withTimeout(op(conn), timeoutMs, () => new QubesError('VMM_ERROR', `libvirt did not ${what} within ${timeoutMs / 1000} s`));
      } catch (err) {
        if (err instanceof QubesError) throw err;
        if (isConnectionLost(err)) {
          this.dropConnection(conn);
          if (attempt === 0 && (retry || NOT_SENT.test(String((err as Error).message)))) continue;
          throw new QubesError('VMM_UNREACHABLE', `libvirt at ${this.uri} went away during ${what}: ${(err as Error).message}`, { cause: err });
        }
        throw new QubesError('VMM_ERROR', `libvirt could not ${what}: ${(err as Error).message}`, { cause: err });
      }
    }
  }

  /** Forgets a connection found lost, closing it (the binding frees nothing by itself). */
  private dropConnection(conn: LibvirtConnection): void {
    this.connection = null;
    conn.connectClose().catch(() => undefined);
  }

  private async domain(conn: LibvirtConnection, uuid: string): Promise<Domain> {
    try {
      return await conn.domainLookupByUUIDString(uuid);
    } catch (err) {
      if (NOT_FOUND.test(String((err as Error).message))) {
        throw new QubesError('DOMAIN_MISSING', `libvirt has no domain ${uuid}: it was removed outside qubes-bus`, { details: { uuid } });
      }
      throw err;
    }
  }

  private async info(conn: LibvirtConnection, domain: Domain): Promise<DomainInfo> {
    const [name, uuid, info] = await Promise.all([conn.domainGetName(domain), conn.domainGetUUIDString(domain), conn.domainGetInfo(domain)]);
    return {
      name,
      uuid,
      state: STATES[info.state] ?? DomainState.NoState,
      memory: info.memory,
      maxMemory: info.maxMem,
      vcpus: info.nrVirtCpu,
      cpuTime: info.cpuTime,
    };
  }

  define(xml: string, options: { newName?: string } = {}): Promise<DomainRef> {
    return this.call('define a domain', async (conn) => {
      if (options.newName !== undefined) {
        // Without a UUID in the XML libvirt would quietly update a domain of that name.
        const existing = await conn.domainLookupByName(options.newName).catch((err: unknown) => {
          if (NOT_FOUND.test(String((err as Error).message))) return null;
          throw err;
        });
        if (existing !== null) {
          const uuid = await conn.domainGetUUIDString(existing);
          throw new QubesError('DOMAIN_CONFLICT', `libvirt already has a domain named ${options.newName} (${uuid}); remove it or choose another name`, {
            details: { name: options.newName, uuid },
          });
        }
      }
      let domain: Domain;
      try {
        domain = await conn.domainDefineXML(xml);
      } catch (err) {
        const message = String((err as Error).message);
        if (/already exists with uuid|already defined with uuid/i.test(message)) {
          throw new QubesError('DOMAIN_CONFLICT', `another libvirt domain has this name: ${message}`, { cause: err });
        }
        throw err;
      }
      return { name: await conn.domainGetName(domain), uuid: await conn.domainGetUUIDString(domain) };
    });
  }

  undefine(uuid: string): Promise<void> {
    return this.call('remove a domain', async (conn) => {
      let domain: Domain;
      try {
        domain = await this.domain(conn, uuid);
      } catch (err) {
        if (err instanceof QubesError && err.code === 'DOMAIN_MISSING') return;
        throw err;
      }
      const { state } = await this.info(conn, domain);
      if (state !== DomainState.ShutOff) await conn.domainDestroy(domain);
      await conn.domainUndefine(domain);
    });
  }

  lookup(uuid: string): Promise<DomainInfo | null> {
    return this.call('look a domain up', async (conn) => {
      try {
        return await this.info(conn, await this.domain(conn, uuid));
      } catch (err) {
        if (err instanceof QubesError && err.code === 'DOMAIN_MISSING') return null;
        throw err;
      }
    }, { retry: true });
  }

  list(): Promise<DomainInfo[]> {
    return this.call('list domains', async (conn) => {
      const domains = await conn.connectListAllDomains();
      // A domain undefined between the listing and its reading is simply no longer there.
      const infos = await Promise.all(
        domains.map((d: Domain) =>
          this.info(conn, d).catch((err: unknown) => {
            if (NOT_FOUND.test(String((err as Error).message))) return null;
            throw err;
          }),
        ),
      );
      return infos.filter((info): info is DomainInfo => info !== null);
    }, { retry: true });
  }

  private act(what: string, uuid: string, op: (conn: LibvirtConnection, domain: Domain) => Promise<void>): Promise<void> {
    return this.call(what, async (conn) => op(conn, await this.domain(conn, uuid)));
  }

  start(uuid: string): Promise<void> {
    return this.act('start a domain', uuid, (conn, d) => conn.domainCreate(d));
  }

  shutdown(uuid: string): Promise<void> {
    return this.act('shut a domain down', uuid, (conn, d) => conn.domainShutdown(d));
  }

  destroy(uuid: string): Promise<void> {
    return this.act('stop a domain', uuid, (conn, d) => conn.domainDestroy(d));
  }

  pause(uuid: string): Promise<void> {
    return this.act('pause a domain', uuid, (conn, d) => conn.domainSuspend(d));
  }

  resume(uuid: string): Promise<void> {
    return this.act('resume a domain', uuid, (conn, d) => conn.domainResume(d));
  }

  /** virsh attach-device / detach-device (the binding has neither), the XML in a private file. */
  private async virshDevice(verb: 'attach-device' | 'detach-device', uuid: string, deviceXml: string): Promise<void> {
    await this.xml(uuid); // DOMAIN_MISSING, VMM_UNREACHABLE as for any call
    const dir = await mkdtemp(path.join(tmpdir(), 'qubes-bus-device-'));
    try {
      const file = path.join(dir, 'device.xml');
      await writeFile(file, deviceXml, { mode: 0o600 });
      await execFileAsync(requireBinary('virsh', 'to attach and detach devices'), ['-c', this.uri, verb, uuid, file, '--live'], { timeout: 30_000 });
    } catch (err) {
      // virsh says which file it read, then why libvirt refused: the reason is what matters.
      const lines = String((err as { stderr?: string }).stderr ?? '').split('\n').map((line) => line.replace(/^error: /, '').trim());
      const reason = lines.filter((line) => line !== '' && !/^Failed to (attach|detach) device from /.test(line)).join('; ') || (err as Error).message;
      throw new QubesError('VMM_ERROR', `libvirt could not ${verb.replace('-', ' ')}: ${reason}`, { details: { uuid }, cause: err });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async attachDevice(uuid: string, deviceXml: string): Promise<void> {
    await this.virshDevice('attach-device', uuid, deviceXml);
  }

  async detachDevice(uuid: string, deviceXml: string): Promise<void> {
    const target = /<target\b[^>]*\bdev=["']([^"']+)["']/.exec(deviceXml)?.[1];
    await this.virshDevice('detach-device', uuid, deviceXml);
    if (target === undefined) return;
    const deadline = Date.now() + 10_000;
    const attached = new RegExp(`<target\\b[^>]*\\bdev=["']${target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}["']`);
    while (attached.test(await this.xml(uuid))) {
      if (Date.now() > deadline) throw new QubesError('VMM_ERROR', `the guest did not let go of ${target} within 10 s`, { details: { uuid, target } });
      await sleep(20);
    }
  }

  async resizeDisk(uuid: string, target: string, bytes: number): Promise<void> {
    await this.xml(uuid); // DOMAIN_MISSING, VMM_UNREACHABLE as for any call
    try {
      await this.virsh('blockresize', uuid, target, '--size', `${bytes}B`);
    } catch (err) {
      const reason = String((err as { stderr?: string }).stderr ?? '').replace(/^error: /gm, '').trim() || (err as Error).message;
      throw new QubesError('VMM_ERROR', `libvirt could not resize ${target}: ${reason}`, { details: { uuid, target }, cause: err });
    }
  }

  xml(uuid: string): Promise<string> {
    return this.call('read a domain', async (conn) => conn.domainGetXMLDesc(await this.domain(conn, uuid)), { retry: true });
  }

  /** Memory and CPU of the host, through libvirt (the seed's move away from xenstore). */
  hostInfo(): Promise<HostInfo> {
    return this.call('read the host', async (conn) => {
      const [hostname, node, memory, cpu] = await Promise.all([conn.connectGetHostname(), conn.nodeGetInfo(), this.virsh('nodememstats'), this.virsh('nodecpustats')]);
      const number = (text: string, key: string): number => Number(new RegExp(`^${key}\\s*:\\s*(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
      const free = number(memory, 'free') + (number(memory, 'buffers') || 0) + (number(memory, 'cached') || 0);
      const busy = ['user', 'system', 'iowait'].reduce((sum, key) => sum + (number(cpu, key) || 0), 0);
      const total = busy + (number(cpu, 'idle') || 0);
      const usage = this.lastCpu === null || total <= this.lastCpu.total ? null : (100 * (busy - this.lastCpu.busy)) / (total - this.lastCpu.total);
      this.lastCpu = { busy, total };
      return {
        hostname,
        cpus: node.cpus,
        mhz: node.mhz,
        memoryTotal: number(memory, 'total') || node.memory,
        memoryFree: Number.isFinite(free) ? free : 0,
        cpuUsage: usage === null ? null : Math.round(usage * 10) / 10,
      };
    }, { retry: true });
  }

  private async virsh(...args: string[]): Promise<string> {
    const { stdout } = await execFileAsync(requireBinary('virsh', 'to talk to libvirtd'), ['-c', this.uri, ...args], { timeout: 10_000 });
    return stdout;
  }

  watch(onEvent: (event: LifecycleEvent) => void, onResync: () => void): { stop(): Promise<void> } {
    return watchLifecycle(this.uri, onEvent, onResync);
  }

  async close(): Promise<void> {
    const connection = this.connection;
    this.connection = null;
    if (connection !== null) await (await connection.catch(() => null))?.connectClose().catch(() => undefined);
  }
}
