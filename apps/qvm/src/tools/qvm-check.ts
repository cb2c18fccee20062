import { Command } from 'commander';
import { PowerState, VmClass, type VmSummary } from '@qubes-bus/contracts';
import { ExitStatus } from '../errors';
import { isRunning } from '../lifecycle';
import { nameList, selectVms, withVmSelection, type VmSelectionOptions } from '../selection';
import type { ToolContext } from '../tool';

interface Check {
  holds(vm: VmSummary): boolean;
  /** What the qubes that pass are, for one and for several. */
  one: string;
  many: string;
  /** Properties it needs from admin.vm.List. */
  properties: readonly string[];
}

/** Qubes' filters, in Qubes' order (qvm_check.py `get_filters`; qubesadmin/vm `is_networked`). */
const CHECKS = {
  running: { holds: isRunning, one: 'running', many: 'running', properties: [] },
  paused: { holds: (vm) => vm.state === PowerState.Paused, one: 'paused', many: 'paused', properties: [] },
  template: { holds: (vm) => vm.class === VmClass.TemplateVM, one: 'a template', many: 'templates', properties: [] },
  networked: {
    holds: (vm) => vm.properties?.['provides_network']?.value === true || vm.netvm !== null,
    one: 'networked',
    many: 'networked',
    properties: ['provides_network'],
  },
} as const satisfies Record<string, Check>;
type CheckName = keyof typeof CHECKS;

type CheckOptions = VmSelectionOptions & { quiet?: boolean } & Partial<Record<CheckName, boolean>>;

/** `work is running`, `work, vault are not templates`. */
function sentence(vms: readonly VmSummary[], what: (check: Check, plural: boolean) => string, checks: readonly Check[]): string {
  const plural = vms.length > 1;
  return `${nameList(vms)} ${plural ? 'are' : 'is'} ${checks.map((check) => what(check, plural)).join(' and ')}\n`;
}

/**
 * qvm-check: whether qubes exist, or (the checks given) are running, paused, templates,
 * networked, as R4.1's qubesadmin/tools/qvm_check.py: every check must hold for a qube; exit
 * status 0 when it holds for all the qubes named, 3 for some, 1 for none. A name that is no
 * qube is an error (status 1), as in Qubes, before anything is checked.
 * Deviation: R4.1 logs `work: running` (or `None of qubes: running`) on stderr; here the answer
 * is a sentence on stdout, for the qubes that pass and, per check, for those that do not.
 */
export function qvmCheck(ctx: ToolContext): Command {
  return withVmSelection(new Command('qvm-check').description('Check whether qubes exist, or are running, paused, templates, networked'), 'check every qube but dom0')
    .option('--running', 'whether the qubes are running (a paused qube runs)')
    .option('--paused', 'whether the qubes are paused')
    .option('--template', 'whether the qubes are templates')
    .option('--networked', 'whether the qubes can reach the network (provide it, or have a netvm)')
    .option('-q, --quiet', 'print nothing: the exit status tells')
    .action(async (names: string[], options: CheckOptions) => {
      const checks = (Object.keys(CHECKS) as CheckName[]).filter((name) => options[name] === true).map((name): Check => CHECKS[name]);
      const api = await ctx.api();
      const vms = await selectVms(api, names, options, [...new Set(checks.flatMap((check) => check.properties))]);
      const say = (text: string): void => void (options.quiet ? undefined : ctx.stdout.write(text));
      if (vms.length === 0) {
        // --all, on a system of dom0 alone (or everything excluded)
        say('no qubes to check\n');
        throw new ExitStatus(1);
      }
      if (checks.length === 0) {
        say(`${nameList(vms)} ${vms.length > 1 ? 'exist' : 'exists'}\n`);
        return;
      }
      const passing = vms.filter((vm) => checks.every((check) => check.holds(vm)));
      if (passing.length > 0) say(sentence(passing, (check, plural) => (plural ? check.many : check.one), checks));
      for (const check of checks) {
        const failing = vms.filter((vm) => !check.holds(vm));
        if (failing.length > 0) say(sentence(failing, (c, plural) => `not ${plural ? c.many : c.one}`, [check]));
      }
      if (passing.length < vms.length) throw new ExitStatus(passing.length === 0 ? 1 : 3);
    });
}
