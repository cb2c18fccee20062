import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { AdminVmList, AdminVmRemove, QubesError } from '@qubes-bus/contracts';
import { findNamed } from '../selection';
import type { ToolContext } from '../tool';
import { ToolError, UsageError } from '../errors';

/** Asks on the terminal; true for y/Y (qvm_remove.py: `[y/N]`), false for anything else or no answer. */
function confirm(ctx: ToolContext, names: readonly string[]): Promise<boolean> {
  // The question goes to stderr, so that stdout stays clean for whoever reads it.
  ctx.stderr.write(`This will completely remove the selected VM(s)...\n${names.map((n) => `  ${n}\n`).join('')}`);
  const prompt = createInterface({ input: ctx.stdin, output: ctx.stderr, terminal: false });
  return new Promise<boolean>((resolve) => {
    // End of input (Ctrl-D) is no.
    prompt.once('close', () => resolve(false));
    prompt.question('Are you sure? [y/N] ', (answer) => {
      resolve(answer.trim().toUpperCase() === 'Y');
      prompt.close();
    });
  });
}

/** qvm-remove: remove qubes, after asking unless --force (qubesadmin/tools/qvm_remove.py). */
export function qvmRemove(ctx: ToolContext): Command {
  return new Command('qvm-remove')
    .description('Remove qubes from the system')
    .argument('<vmname...>', 'the qubes to remove')
    .option('-f, --force', 'do not ask for confirmation')
    .action(async (names: string[], options: { force?: boolean }) => {
      if (names.includes('dom0')) throw new QubesError('VM_CLASS_INVALID', "domain 'dom0' cannot be removed");
      if (!options.force && ctx.stdin.isTTY !== true) {
        throw new UsageError('qvm-remove asks for confirmation, and its input is not a terminal: add --force (-f) to remove without asking');
      }
      const api = await ctx.api();
      // Every name must exist before anything is asked or removed.
      const { domains } = await api.request(AdminVmList, {});
      const vms = findNamed(domains, names).map((vm) => vm.name);
      if (!options.force && !(await confirm(ctx, vms))) throw new ToolError('remove cancelled');
      // One after the other: a VM may be in use only by another one removed before it.
      for (const name of vms) await api.request(AdminVmRemove, {}, { dest: name });
    });
}
