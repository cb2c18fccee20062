import * as z from 'zod/mini';
import { defineApi, defineEvent, defineInternal, DestScope } from '../descriptors';
import type { ErrorCode } from '../errors';
import { ServiceName } from '../subjects';
import { powerStateSchema } from './vm';

/**
 * The VM lifecycle (qubes/api/admin.py vm_start … vm_current_state, qubes/vm/qubesvm.py):
 * calls, the events libvirt drives, and the hooks other services fill in.
 */

/** What any call that reaches the hypervisor may meet. */
const HYPERVISOR_ERRORS: readonly ErrorCode[] = ['VM_NOT_FOUND', 'VM_CLASS_INVALID', 'VMM_OFFLINE', 'VMM_UNREACHABLE', 'VMM_ERROR', 'DOMAIN_MISSING'];

const lifecycle = { service: ServiceName.VmRegistry, scope: DestScope.Vm, reply: z.null() } as const;

export const AdminVmStart = defineApi({
  ...lifecycle,
  method: 'admin.vm.Start',
  summary: 'Start a halted VM, its netvm chain first; nothing to do if it already runs',
  errors: [...HYPERVISOR_ERRORS, 'DOMAIN_CONFLICT', 'VM_START_FAILED'],
});

/** Qubes' `admin.vm.Shutdown` arguments: `force` (even with running clients), `wait` (until halted; killed after shutdown_timeout). */
export const shutdownArgSchema = z.optional(z.enum(['', 'force', 'wait', 'force+wait']));

export const AdminVmShutdown = defineApi({
  ...lifecycle,
  method: 'admin.vm.Shutdown',
  summary: "Ask a VM to shut down; arg 'force' even if VMs use it as netvm, 'wait' until it has halted (killed after shutdown_timeout)",
  arg: shutdownArgSchema,
  errors: [...HYPERVISOR_ERRORS, 'VM_NOT_RUNNING', 'VM_IN_USE'],
});

export const AdminVmKill = defineApi({
  ...lifecycle,
  method: 'admin.vm.Kill',
  summary: 'Stop a VM at once (its disks are not synced)',
  errors: [...HYPERVISOR_ERRORS, 'VM_NOT_RUNNING'],
});

export const AdminVmPause = defineApi({
  ...lifecycle,
  method: 'admin.vm.Pause',
  summary: 'Pause a running VM',
  errors: [...HYPERVISOR_ERRORS, 'VM_NOT_RUNNING'],
});

export const AdminVmUnpause = defineApi({
  ...lifecycle,
  method: 'admin.vm.Unpause',
  summary: 'Resume a paused VM',
  errors: [...HYPERVISOR_ERRORS, 'VM_NOT_PAUSED'],
});

export const currentStateSchema = z.object({
  power_state: powerStateSchema,
  /** KiB the VM has now (0 when halted). */
  mem: z.number(),
  /** KiB it may grow to. */
  mem_static_max: z.number(),
  /** Nanoseconds of CPU time since it started. */
  cputime: z.number(),
});
export type CurrentState = z.infer<typeof currentStateSchema>;

export const AdminVmCurrentState = defineApi({
  ...lifecycle,
  method: 'admin.vm.CurrentState',
  summary: 'Power state, memory and CPU time of a VM, read from the hypervisor',
  reply: currentStateSchema,
  errors: ['VM_NOT_FOUND', 'VMM_UNREACHABLE', 'VMM_ERROR'],
});

export const hostInfoSchema = z.object({
  hostname: z.string(),
  cpus: z.number(),
  mhz: z.number(),
  /** KiB */
  memory_total: z.number(),
  /** KiB free, buffers and cache included (what a new VM could get) */
  memory_free: z.number(),
  /** Percent of all CPUs busy since the previous reading; null on the first. */
  cpu_usage: z.nullable(z.number()),
  /** VMs running now (dom0 included). */
  running: z.number(),
});
export type HostInfoReply = z.infer<typeof hostInfoSchema>;

/**
 * Deviation: Qubes has no host call in its Admin API (qvm-ls read xenstore, later libvirt, in
 * dom0 itself); here the host is one more bus call, read through libvirt.
 */
export const AdminHostInfo = defineApi({
  service: ServiceName.VmRegistry,
  scope: DestScope.Dom0,
  method: 'admin.host.Info',
  summary: "The host's CPUs, memory and load, through libvirt",
  reply: hostInfoSchema,
  errors: ['VMM_OFFLINE', 'VMM_UNREACHABLE', 'VMM_ERROR'],
});

// ---------------------------------------------------------------------------------------------
// Events (qubes/vm/qubesvm.py), published on qubes.vm.<vm>.<event>.

export const DomainPreStart = defineEvent({
  name: 'domain-pre-start',
  scope: 'vm',
  summary: 'The VM is about to start (its netvm chain runs, hooks come next)',
  fields: z.object({}),
});

export const DomainStart = defineEvent({
  name: 'domain-start',
  scope: 'vm',
  summary: 'The VM runs (started here, or outside qubes-bus and seen through libvirt)',
  fields: z.object({}),
});

export const DomainStartFailed = defineEvent({
  name: 'domain-start-failed',
  scope: 'vm',
  summary: 'A start failed; reason says why',
  fields: z.object({ reason: z.string() }),
});

export const DomainShutdown = defineEvent({
  name: 'domain-shutdown',
  scope: 'vm',
  summary: "The VM has stopped (libvirt's reason: shutdown, destroyed, crashed, failed); clean-up follows",
  fields: z.object({ reason: z.string() }),
});

export const DomainStopped = defineEvent({
  name: 'domain-stopped',
  scope: 'vm',
  summary: 'The VM has stopped and everything of its run is cleaned up (QubesDB, post-stop hooks)',
  fields: z.object({}),
});

export const DomainPaused = defineEvent({
  name: 'domain-paused',
  scope: 'vm',
  summary: 'The VM was paused',
  fields: z.object({}),
});

export const DomainUnpaused = defineEvent({
  name: 'domain-unpaused',
  scope: 'vm',
  summary: 'The VM was resumed',
  fields: z.object({}),
});

// ---------------------------------------------------------------------------------------------
// Hooks: internal calls the registry makes around a run. A service that is not running is
// skipped (SERVICE_UNAVAILABLE); one that answers with an error stops the start.

export const diskSchema = z.object({
  /** A file or block device in dom0. */
  path: z.string().check(z.regex(/^\/[^\0]*$/, 'is not an absolute path')),
  type: z.enum(['file', 'block']),
  /** Qubes' frontend name: xvda (root), xvdb (private), xvdc (volatile), xvdd (modules). */
  frontend: z.string().check(z.regex(/^xvd[a-z]{1,2}$/, 'is not a frontend name (xvdX)')),
  read_only: z.boolean(),
});
export type DiskInfo = z.infer<typeof diskSchema>;

const hookPayload = z.object({ vm: z.string(), uuid: z.string() });

export const StoragePreStart = defineInternal({
  service: ServiceName.Storage,
  method: 'vm-pre-start',
  summary: "Prepare a VM's volumes for a run; answers the disks its domain gets",
  payload: hookPayload,
  reply: z.object({ disks: z.array(diskSchema) }),
  errors: ['VM_NOT_FOUND'],
});

export const StoragePostStop = defineInternal({
  service: ServiceName.Storage,
  method: 'vm-post-stop',
  summary: "Release a VM's volumes after a run (volatile volumes are dropped, snapshots committed)",
  payload: hookPayload,
  reply: z.null(),
  errors: [],
});

export const DevicesPreStart = defineInternal({
  service: ServiceName.DeviceWatcher,
  method: 'vm-pre-start',
  summary: "Check a VM's required device assignments before a run",
  payload: hookPayload,
  reply: z.null(),
  errors: [],
});

export const DevicesPostStop = defineInternal({
  service: ServiceName.DeviceWatcher,
  method: 'vm-post-stop',
  summary: "Forget a VM's attachments after a run",
  payload: hookPayload,
  reply: z.null(),
  errors: [],
});
