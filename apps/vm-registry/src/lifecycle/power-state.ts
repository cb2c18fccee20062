import { PowerState, QubesError, type VmClass } from '@qubes-bus/contracts';
import { DomainState } from '@qubes-bus/hypervisor';

/** The power state of a VM; the lifecycle keeps it (dom0 always runs). */
export interface PowerStates {
  state(vm: string, klass: VmClass): PowerState;
}

/** libvirt's state as Qubes names it (qubes/vm/qubesvm.py get_power_state). */
export function powerOf(state: DomainState): PowerState {
  switch (state) {
    case DomainState.Running:
    case DomainState.Blocked:
      return PowerState.Running;
    case DomainState.Paused:
      return PowerState.Paused;
    case DomainState.ShuttingDown:
      return PowerState.Halting;
    case DomainState.ShutOff:
      return PowerState.Halted;
    case DomainState.Crashed:
      return PowerState.Crashed;
    case DomainState.PmSuspended:
      return PowerState.Suspended;
    case DomainState.NoState:
      return PowerState.NA;
  }
}

export function notRunning(vm: string): QubesError {
  return new QubesError('VM_NOT_RUNNING', `${vm} is not running`, { details: { vm } });
}

