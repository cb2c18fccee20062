import { Command, InvalidArgumentError, Option } from 'commander';
import type { EventSubscription, Requester } from '@qubes-bus/bus';
import { AdminVmKill, AdminVmList, AdminVmShutdown, DomainStopped, PowerState, VmClass, type VmSummary } from '@qubes-bus/contracts';
import { aboutVm, attemptEach, throwFailures } from '../each-vm';
import { ToolError, ToolFailures } from '../errors';
import { eventSelection } from '../events';
import { KILL_TIMEOUT_MS, killFailure } from '../lifecycle';
import { nameList, selectVms, withVmSelection, type VmSelectionOptions } from '../selection';
import type { ToolContext } from '../tool';

interface ShutdownOptions extends VmSelectionOptions {
  wait?: boolean;
  timeout?: number;
  force?: boolean;
}

/** Qubes' `default_shutdown_timeout`, for a VM that has no `shutdown_timeout` (dom0). */
const DEFAULT_SHUTDOWN_TIMEOUT_S = 60;

function seconds(untrusted: string): number {
  if (!/^\d{1,6}(\.\d{1,3})?$/.test(untrusted)) throw new InvalidArgumentError('a timeout is a number of seconds, like 60 or 0.5');
  return Number(untrusted);
}

function shutdownTimeout(vm: VmSummary): number {
  const value = vm.properties?.['shutdown_timeout']?.value;
  return typeof value === 'number' ? value : DEFAULT_SHUTDOWN_TIMEOUT_S;
}

/** The last line of a shutdown that failed, as qvm_shutdown.py words it. */
function failedToShutDown(vms: readonly string[]): ToolError {
  return new ToolError(`Failed to shut down: ${nameList(vms)}`);
}

/** Whether a VM is down: Halted, or a disposable one already gone (Qubes' `failed_domains`). */
function isDown(vm: VmSummary | undefined): boolean {
  return vm === undefined || vm.state === PowerState.Halted || (vm.class === VmClass.DispVM && vm.state === PowerState.NA);
}

/**
 * The `domain-stopped` events of some VMs, subscribed to before any of them is asked to shut
 * down, so that none is missed: `until()` waits for a set of them, up to a timeout.
 */
interface StopWatch {
  /** Resolves with those of `vms` that have not stopped within `timeoutMs`. */
  until(vms: readonly string[], timeoutMs: number): Promise<string[]>;
  stop(): Promise<void>;
}

async function watchStops(ctx: ToolContext, vms: readonly string[]): Promise<StopWatch> {
  const { pattern, keep } = eventSelection(vms);
  const subscription: EventSubscription = await (await ctx.bus()).subscribe(pattern);
  const stopped = new Set<string>();
  let ended = false;
  let wake: () => void = () => undefined;
  const reading = (async () => {
    for await (const { message } of subscription) {
      if (message.event !== DomainStopped.name || message.vm === undefined || !keep(message.vm)) continue;
      stopped.add(message.vm);
      wake();
    }
  })()
    // The bus went away: the calls that follow (the kills) meet the same failure and report it.
    .catch(() => undefined)
    .finally(() => {
      ended = true;
      wake();
    });
  return {
    async until(wanted, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const left = wanted.filter((vm) => !stopped.has(vm));
        const wait = deadline - Date.now();
        if (left.length === 0 || wait <= 0 || ended) return left;
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, wait);
        });
        clearTimeout(timer);
      }
    },
    async stop() {
      await subscription.stop();
      await reading;
    },
  };
}

/**
 * With --wait, Qubes' rounds (qubesadmin/tools/qvm_shutdown.py): every VM left is asked to shut
 * down; those that refused (VM_IN_USE: a netvm whose clients still run) are asked again in the
 * next round, once the others have stopped (or been killed after the timeout). It ends when
 * every VM was asked, or when a round asked none successfully. Then the VMs not halted fail,
 * each with its last refusal or the failure of its kill.
 */
async function shutdownInRounds(api: Requester, vms: readonly VmSummary[], watch: StopWatch, ask: (vm: string) => Promise<unknown>, timeoutS: number | undefined): Promise<void> {
  const timeouts = new Map(vms.map((vm) => [vm.name, shutdownTimeout(vm)]));
  let remaining = vms.map((vm) => vm.name);
  let refused: ReadonlyMap<string, Error> = new Map();
  const killFailed = new Map<string, Error>();
  for (let round = 0; round < vms.length && remaining.length > 0; round++) {
    const asked: string[] = [];
    const attempt = await attemptEach(
      remaining,
      async (vm) => {
        await ask(vm);
        asked.push(vm);
      },
      ['VM_NOT_RUNNING'],
    );
    if (attempt.fatal !== null) throwFailures(attempt);
    refused = attempt.failed;
    if (asked.length === 0) break; // no one agreed: another round would not do better
    const late = await watch.until(asked, (timeoutS ?? Math.max(...asked.map((vm) => timeouts.get(vm)!))) * 1000);
    const kill = await attemptEach(late, (vm) => api.request(AdminVmKill, {}, { dest: vm, timeoutMs: KILL_TIMEOUT_MS }), ['VM_NOT_RUNNING']);
    if (kill.fatal !== null) throwFailures(kill, killFailure);
    for (const [vm, err] of kill.failed) killFailed.set(vm, err);
    remaining = [...refused.keys()];
  }
  const { domains } = await api.request(AdminVmList, {});
  const now = new Map(domains.map((vm) => [vm.name, vm]));
  const failed = vms.map((vm) => vm.name).filter((vm) => !isDown(now.get(vm)));
  if (failed.length === 0) return;
  const reasons = failed.flatMap((vm) => {
    const killError = killFailed.get(vm);
    const refusal = refused.get(vm);
    if (killError !== undefined) return [new ToolError(killFailure(vm, killError), { cause: killError })];
    return refusal === undefined ? [] : [new ToolError(aboutVm(vm, refusal), { cause: refusal })];
  });
  throw new ToolFailures([...reasons, failedToShutDown(failed)]);
}

/**
 * qvm-shutdown: ask qubes to shut down (qubesadmin/tools/qvm_shutdown.py, R4.1); with --wait,
 * wait for them (their `domain-stopped` events), in rounds so that a netvm goes after its
 * clients, and kill those still running after the timeout. --all forces (as in Qubes), and
 * takes the qubes that are not halted.
 * Deviations: --timeout defaults to the largest `shutdown_timeout` of the qubes of the round
 * rather than 60 s, and implies --wait (as R4.2; R4.1 ignores it without --wait); a failure
 * ends with status 1 rather than the number of qubes that failed; without --wait a refusal
 * is an error (R4.1 only logs it and ends with status 0); with --wait, each qube that did not
 * shut down is reported with its last refusal. The registry's own `wait` argument (kill after
 * the VM's shutdown_timeout) is not used: it cannot give rounds nor --timeout.
 */
export function qvmShutdown(ctx: ToolContext): Command {
  return withVmSelection(new Command('qvm-shutdown').description('Gracefully shut down qubes'), 'shut down every qube but dom0 that is not halted')
    .option('--wait', 'wait for the qubes to shut down; kill those still running after the timeout')
    .addOption(
      new Option('--timeout <seconds>', 'with --wait, kill the qubes still running after this long (default: the largest of their shutdown_timeout)')
        .argParser(seconds)
        .implies({ wait: true }),
    )
    .option('--force', 'shut down even a qube that running qubes use (as their netvm); use with caution')
    .action(async (names: string[], options: ShutdownOptions) => {
      const api = await ctx.api();
      const selected = await selectVms(api, names, options, ['shutdown_timeout']);
      // Qubes asks every qube with --all and ignores the halted ones' refusals: the same, in fewer calls.
      const vms = options.all ? selected.filter((vm) => vm.state !== PowerState.Halted) : selected;
      if (vms.length === 0) return;
      const force = options.force === true || options.all === true;
      const ask = (vm: string): Promise<unknown> => api.request(AdminVmShutdown, force ? { arg: 'force' } : {}, { dest: vm });
      if (!options.wait) {
        const attempt = await attemptEach(vms.map((vm) => vm.name), ask, ['VM_NOT_RUNNING']);
        const failed = [...attempt.failed.keys()];
        throwFailures(attempt, aboutVm, failed.length === 0 ? [] : [failedToShutDown(failed)]);
        return;
      }
      const watch = await watchStops(ctx, vms.map((vm) => vm.name));
      try {
        await shutdownInRounds(api, vms, watch, ask, options.timeout);
      } finally {
        await watch.stop();
      }
    });
}
