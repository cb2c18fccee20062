/**
 * The hypervisor port (DESIGN.md §5): what the registry needs of a hypervisor, with the
 * libvirt adapter behind it and an offline one for installation and recovery. Domains are
 * always addressed by UUID: a name can be taken by someone else's domain, a UUID cannot.
 */
import type { DomainFlavor } from './domain-xml';

/** A domain's state as libvirt reports it. */
export const DomainState = {
  NoState: 'nostate',
  Running: 'running',
  Blocked: 'blocked',
  Paused: 'paused',
  ShuttingDown: 'shutdown',
  ShutOff: 'shutoff',
  Crashed: 'crashed',
  PmSuspended: 'pmsuspended',
} as const;
export type DomainState = (typeof DomainState)[keyof typeof DomainState];

export interface DomainRef {
  readonly name: string;
  readonly uuid: string;
}

export interface DomainInfo extends DomainRef {
  readonly state: DomainState;
  /** KiB it has now. */
  readonly memory: number;
  /** KiB it may grow to. */
  readonly maxMemory: number;
  readonly vcpus: number;
  /** Nanoseconds of CPU time used since the domain started. */
  readonly cpuTime: number;
}

export interface HostInfo {
  readonly hostname: string;
  readonly cpus: number;
  readonly mhz: number;
  /** KiB */
  readonly memoryTotal: number;
  /** KiB */
  readonly memoryFree: number;
  /** Percent of all CPUs busy over the last sample, when known. */
  readonly cpuUsage: number | null;
}

/** A lifecycle event of a domain (libvirt's VIR_DOMAIN_EVENT_*), with its detail. */
export interface LifecycleEvent {
  readonly domain: string;
  readonly kind: 'defined' | 'undefined' | 'started' | 'suspended' | 'resumed' | 'stopped' | 'shutdown' | 'pmsuspended' | 'crashed';
  /** libvirt's detail: Booted, Destroyed, Shutdown, Crashed, Failed, Paused, ... */
  readonly detail: string;
  /** When libvirt saw it (ISO). */
  readonly ts: string;
}

export interface Hypervisor {
  /** libvirt's URI, or null offline. */
  readonly uri: string | null;
  /** The kind of domain to define here: Xen's, KVM where libvirt offers it, else QEMU (TCG). */
  domainFlavor(): Promise<DomainFlavor>;
  /**
   * Defines (or redefines) a domain from its XML; the UUID is libvirt's when the XML names
   * none. DOMAIN_CONFLICT if another domain (another UUID) has the name, or, with `newName`
   * (a first definition, without UUID), if any domain has that name.
   */
  define(xml: string, options?: { newName?: string }): Promise<DomainRef>;
  /** Removes a domain's definition (a running domain is destroyed first); no error if gone. */
  undefine(uuid: string): Promise<void>;
  /** The domain with this UUID, or null when it is gone. */
  lookup(uuid: string): Promise<DomainInfo | null>;
  /** Every domain libvirt knows, with its state. */
  list(): Promise<DomainInfo[]>;
  start(uuid: string): Promise<void>;
  /** Asks the guest to shut down (ACPI); returns at once. */
  shutdown(uuid: string): Promise<void>;
  /** Stops the domain at once (virsh destroy). */
  destroy(uuid: string): Promise<void>;
  pause(uuid: string): Promise<void>;
  resume(uuid: string): Promise<void>;
  /**
   * Attaches a device (its libvirt XML) to a running domain, for this run only. Resolves once
   * the domain's XML holds it.
   */
  attachDevice(uuid: string, deviceXml: string): Promise<void>;
  /**
   * Detaches a device from a running domain. Resolves once it is gone from the domain's XML
   * (QEMU answers before the guest has let go: virsh alone would claim success too early).
   */
  detachDevice(uuid: string, deviceXml: string): Promise<void>;
  /**
   * Tells a running domain that the disk at `target` (its target dev) now has `bytes`: the guest
   * sees the new size at once (virsh blockresize). The image itself must have grown already.
   */
  resizeDisk(uuid: string, target: string, bytes: number): Promise<void>;
  /** The domain's XML as libvirt holds it. */
  xml(uuid: string): Promise<string>;
  hostInfo(): Promise<HostInfo>;
  /**
   * Lifecycle events of every domain, for as long as the subscription lives; the monitor is
   * restarted if it dies, and `onResync` is called after each restart (events may have been
   * missed meanwhile: read the states again).
   */
  watch(onEvent: (event: LifecycleEvent) => void, onResync: () => void): { stop(): Promise<void> };
  close(): Promise<void>;
}
