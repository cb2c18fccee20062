import type { Command } from 'commander';
import type { Requester } from '@qubes-bus/bus';
import { AdminVmList, QubesError, VmClass, type VmSummary } from '@qubes-bus/contracts';
import { UsageError } from './errors';
import { repeatable } from './options';

/**
 * Which VMs a tool acts on, as Qubes' tools take them (qubesadmin/tools/__init__.py
 * `VmNameGroup`, `VmNameAction`): VM names, or `--all` (every VM but dom0) less `--exclude`d
 * ones; every name is checked before anything is done.
 */
export interface VmSelectionOptions {
  all?: boolean;
  exclude?: string[];
}

/** Adds `[vmname...]`, `--all` and `--exclude VM` (repeatable) to a tool. */
export function withVmSelection(command: Command, allHelp = 'act on every qube but dom0'): Command {
  return command
    .argument('[vmname...]', 'the qubes to act on')
    .option('--all', allHelp)
    .option('--exclude <vmname>', 'leave this qube out of --all (repeatable)', repeatable);
}

/** The VMs of `names`, in the order named, each once; VM_NOT_FOUND for the first that is not one. */
export function findNamed(domains: readonly VmSummary[], names: readonly string[]): VmSummary[] {
  const byName = new Map(domains.map((vm) => [vm.name, vm]));
  return [...new Set(names)].map((name) => {
    const vm = byName.get(name);
    if (vm === undefined) throw new QubesError('VM_NOT_FOUND', `no such domain: ${name}`, { details: { vm: name } });
    return vm;
  });
}

/** The VMs selected, from one `admin.vm.List` that also brings `properties`. */
export async function selectVms(
  api: Requester,
  names: readonly string[],
  options: VmSelectionOptions,
  properties: readonly string[] = [],
): Promise<VmSummary[]> {
  if (options.all && names.length > 0) throw new UsageError('give either --all or qube names, not both');
  if (!options.all && names.length === 0) throw new UsageError('give one or more qube names, or --all');
  if (!options.all && options.exclude !== undefined) throw new UsageError('--exclude can only be used with --all');
  const { domains } = await api.request(AdminVmList, properties.length === 0 ? {} : { payload: { properties: [...properties] } });
  if (!options.all) return findNamed(domains, names);
  const excluded = new Set(options.exclude);
  return domains.filter((vm) => vm.class !== VmClass.AdminVM && !excluded.has(vm.name));
}

/** `a`, `a, b, c`: VM names as the tools' messages list them. */
export function nameList(vms: ReadonlyArray<string | VmSummary>): string {
  return vms.map((vm) => (typeof vm === 'string' ? vm : vm.name)).join(', ');
}
