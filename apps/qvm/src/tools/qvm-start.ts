import { Command } from 'commander';
import { AdminVmStart, QubesError } from '@qubes-bus/contracts';
import { attemptEach, throwFailures } from '../each-vm';
import { isRunning, START_TIMEOUT_MS } from '../lifecycle';
import { selectVms, withVmSelection, type VmSelectionOptions } from '../selection';
import type { ToolContext } from '../tool';

interface StartOptions extends VmSelectionOptions {
  skipIfRunning?: boolean;
  quiet?: boolean;
}

/**
 * qvm-start: start qubes, one after the other, each with its netvm chain first
 * (qubesadmin/tools/qvm_start.py). A qube running when the tool began is an error unless
 * --skip-if-running.
 * Deviations: Qubes stops at the first qube already running; here the others are still started
 * (as after any other failure) and the status is 1 all the same. "Already running" is the state
 * when the tool began: a qube started on the way as the netvm of one before it is no error.
 * --drive, --cdrom, --hddisk and --install-windows-tools need block devices, which qubes-bus
 * does not have.
 */
export function qvmStart(ctx: ToolContext): Command {
  return withVmSelection(new Command('qvm-start').description('Start qubes'))
    .option('--skip-if-running', 'do not fail if the qube is already running')
    .option('-q, --quiet', 'less output (qvm-start prints nothing but errors anyway)')
    .action(async (names: string[], options: StartOptions) => {
      const api = await ctx.api();
      const vms = await selectVms(api, names, options);
      const running = new Set(vms.filter(isRunning).map((vm) => vm.name));
      const attempt = await attemptEach(
        vms.map((vm) => vm.name),
        async (vm) => {
          if (running.has(vm)) {
            if (options.skipIfRunning) return;
            throw new QubesError('VM_RUNNING', `domain ${vm} is already running`, { details: { vm } });
          }
          await api.request(AdminVmStart, {}, { dest: vm, timeoutMs: START_TIMEOUT_MS });
        },
      );
      throwFailures(attempt);
    });
}
