import { QubesError } from './errors';
import { token } from './token';

/**
 * Subject layout (DESIGN.md §3). Every subject is built here from validated, encoded tokens;
 * every pattern a service subscribes to comes from here too.
 *
 *   qubes.api.<dest>.<Admin API method>           request/reply, dest = VM token or dom0
 *   qubes.vm.<vm>.<event>[.<qualifier>]            events about one VM
 *   qubes.app.<event>[.<qualifier>]                events without a VM
 *   qubes.internal.<service>.<op>                  calls between services, never from tools
 */
export const SUBJECT_ROOT = 'qubes';
export const API_PREFIX = `${SUBJECT_ROOT}.api`;
export const VM_EVENT_PREFIX = `${SUBJECT_ROOT}.vm`;
export const APP_EVENT_PREFIX = `${SUBJECT_ROOT}.app`;
export const INTERNAL_PREFIX = `${SUBJECT_ROOT}.internal`;

/** The header that carries a request id from the first caller through every onward call. */
export const REQUEST_ID_HEADER = 'Qubes-Request-Id';

/** The services of qubes-bus; each is one NATS micro service and one queue group. */
export const ServiceName = {
  VmRegistry: 'vm-registry',
  Storage: 'storage',
  DeviceWatcher: 'device-watcher',
  Backup: 'backup',
  Firewall: 'firewall',
} as const;
export type ServiceName = (typeof ServiceName)[keyof typeof ServiceName];

/**
 * The JetStream stream that keeps every event, so that a subscriber which was away resumes
 * from its last sequence. Limits keep a forgotten stream from filling the disk.
 */
export const EVENT_STREAM = {
  name: 'QUBES_EVENTS',
  subjects: [`${VM_EVENT_PREFIX}.>`, `${APP_EVENT_PREFIX}.>`],
  maxAgeMs: 7 * 24 * 3600 * 1000,
  maxBytes: 256 * 1024 * 1024,
  maxMsgSize: 1024 * 1024,
} as const;

/**
 * QubesDB (DESIGN.md §5): one JetStream KV bucket for every VM, keys `<vm-token>.<path tokens>`;
 * the key `<vm-token>` alone is the VM's session, there while the VM runs. File-backed: VMs
 * outlive a restart of nats-server.
 */
export const QUBESDB_BUCKET = {
  name: 'QUBESDB',
  /** QubesDB's own limits (qubesdb.h QDB_MAX_PATH, QDB_MAX_DATA). */
  maxPathLength: 64,
  maxValueBytes: 3072,
} as const;

const NAME_PART = /^[A-Za-z0-9_-]+$/;

/** Checks a dotted name built into code (an Admin API method, an event, an op). */
export function assertDottedName(what: string, name: string): string {
  if (!name.split('.').every((part) => NAME_PART.test(part))) {
    throw new QubesError('INTERNAL', `invalid ${what} ${JSON.stringify(name)}`);
  }
  return name;
}

export const Subjects = {
  /** Subject of an Admin API call on `dest` (a VM name; `dom0` for global calls). */
  api: (dest: string, method: string): string =>
    `${API_PREFIX}.${token(dest)}.${assertDottedName('method', method)}`,
  /** Pattern matching `method` on any destination. */
  apiAnyDest: (method: string): string => `${API_PREFIX}.*.${assertDottedName('method', method)}`,

  /** Every event of one VM, or of all VMs. */
  vmEvents: (vm?: string): string => `${VM_EVENT_PREFIX}.${vm === undefined ? '*' : token(vm)}.>`,
  appEvents: (): string => `${APP_EVENT_PREFIX}.>`,

  internal: (service: ServiceName, op: string): string =>
    `${INTERNAL_PREFIX}.${service}.${assertDottedName('op', op)}`,
} as const;

/**
 * Whether some subject matches both patterns (NATS wildcards: `*` one token, `>` the rest).
 * Used to prove that no two descriptors listen on the same subjects.
 */
export function subjectsOverlap(a: string, b: string): boolean {
  const ta = a.split('.');
  const tb = b.split('.');
  for (let i = 0; ; i++) {
    const x = ta[i];
    const y = tb[i];
    if (x === '>' || y === '>') return x !== undefined && y !== undefined;
    if (x === undefined || y === undefined) return x === y;
    if (x !== '*' && y !== '*' && x !== y) return false;
  }
}
