import { Command } from 'commander';
import { ErrorKind, isQubesError, type Endpoint, type ErrorCode, type RequestInputOf } from '@qubes-bus/contracts';
import { ToolError, ToolFailures } from './errors';
import { selectVms, withVmSelection, type VmSelectionOptions } from './selection';
import type { ToolContext } from './tool';

/**
 * One action per VM, as Qubes' tools do it: one VM after the other, each failure kept (and
 * printed, one line each) rather than stopping at the first, the exit status 1 when any failed.
 */

/** What was left after an action on every VM. */
export interface Attempt {
  /** The VMs that refused, each with its error. */
  readonly failed: ReadonlyMap<string, Error>;
  /** A failure about no VM in particular, which ended the loop (the next VM would meet it too). */
  readonly fatal: Error | null;
}

/** libvirt is absent or unreachable: no VM can be started or stopped. */
const HYPERVISOR_DOWN: ReadonlySet<ErrorCode> = new Set(['VMM_OFFLINE', 'VMM_UNREACHABLE']);

/** Whether an error is about the whole system (the bus, the hypervisor) or a bug, rather than one VM. */
function concernsEveryVm(err: unknown): boolean {
  return !isQubesError(err) || err.kind === ErrorKind.Transport || HYPERVISOR_DOWN.has(err.code);
}

/** Does `act` for each VM in turn; errors whose code is in `ignore` mean nothing was left to do. */
export async function attemptEach(vms: readonly string[], act: (vm: string) => Promise<unknown>, ignore: readonly ErrorCode[] = []): Promise<Attempt> {
  const failed = new Map<string, Error>();
  for (const vm of vms) {
    try {
      await act(vm);
    } catch (err) {
      if (isQubesError(err) && ignore.includes(err.code)) continue;
      if (concernsEveryVm(err)) return { failed, fatal: err instanceof Error ? err : new Error(String(err)) };
      failed.set(vm, err as Error);
    }
  }
  return { failed, fatal: null };
}

/**
 * A VM's failure as one line: the registry's message when it is about that VM (it names it),
 * else prefixed with the VM's name, so that the user can tell which VM it was.
 */
export function aboutVm(vm: string, err: Error): string {
  return isQubesError(err) && err.details?.['vm'] === vm ? err.message : `${vm}: ${err.message}`;
}

/**
 * Throws what an attempt left, for main.ts to print: a line per VM that failed (`describe`),
 * then the failure that stopped the loop, then `more`; nothing when all went well.
 */
export function throwFailures(attempt: Attempt, describe: (vm: string, err: Error) => string = aboutVm, more: readonly Error[] = []): void {
  const failures: Error[] = [...attempt.failed].map(([vm, err]) => new ToolError(describe(vm, err), { cause: err }));
  if (attempt.fatal !== null) {
    // Alone, as is: main.ts adds its hints to a bus that does not answer.
    if (failures.length === 0 && more.length === 0) throw attempt.fatal;
    failures.push(attempt.fatal);
  }
  failures.push(...more);
  if (failures.length > 0) throw new ToolFailures(failures);
}

export interface VmActionSpec<E extends Endpoint> {
  name: string;
  description: string;
  /** A call with neither argument nor payload. */
  endpoint: E;
  /** Codes that mean there is nothing to do (qvm-kill: VM_NOT_RUNNING). */
  ignore?: readonly ErrorCode[];
  describe?: (vm: string, err: Error) => string;
  timeoutMs?: number;
}

/** A tool that makes one call per VM (qvm-kill, qvm-pause, qvm-unpause). */
export function vmActionTool<E extends Endpoint>(spec: VmActionSpec<E>): (ctx: ToolContext) => Command {
  return (ctx) =>
    withVmSelection(new Command(spec.name).description(spec.description)).action(
      async (names: string[], options: VmSelectionOptions) => {
        const api = await ctx.api();
        const vms = await selectVms(api, names, options);
        const attempt = await attemptEach(
          vms.map((vm) => vm.name),
          (vm) => api.request(spec.endpoint, {} as RequestInputOf<E>, { dest: vm, timeoutMs: spec.timeoutMs }),
          spec.ignore,
        );
        throwFailures(attempt, spec.describe);
      },
    );
}
