import { PowerState, type VmSummary } from '@qubes-bus/contracts';

/** The lifecycle calls as the tools make them: power states, patience, messages. */

/** Qubes' `is_running()` (qubesadmin/vm): any power state but Halted and NA; a paused VM runs. */
export function isRunning(vm: VmSummary): boolean {
  return vm.state !== PowerState.Halted && vm.state !== PowerState.NA;
}

/**
 * How long the calls may take. The registry answers a start once the VM runs, its netvm chain
 * and the storage and device hooks (up to a minute each) first; a kill once the VM has stopped
 * and its run is cleaned up (it waits up to 30 s for that).
 */
export const START_TIMEOUT_MS = 180_000;
export const KILL_TIMEOUT_MS = 60_000;

/** A kill that failed, as qvm_kill.py words it. */
export function killFailure(vm: string, err: Error): string {
  return `Failed to kill '${vm}': ${err.message}`;
}
