import { Command, Option } from 'commander';
import { AdminHostInfo, AdminVmList, AdminVmTag, type VmSummary } from '@qubes-bus/contracts';
import type { Requester } from '@qubes-bus/bus';
import {
  buildListing,
  formatColumns,
  formatHelpFormats,
  formatListing,
  formatRawListing,
  FORMATS,
  hostListing,
  matchesPowerStates,
  neededProperties,
  parseFields,
  type Column,
} from '../listing';
import { repeatable } from '../options';
import { findNamed } from '../selection';
import type { ToolContext } from '../tool';
import { UsageError } from '../errors';

interface LsOptions {
  format?: string;
  fields?: string;
  rawData?: boolean;
  rawList?: boolean;
  running?: boolean;
  halted?: boolean;
  paused?: boolean;
  class?: string[];
  tags?: string[];
  sort?: string;
  reverse?: boolean;
  offline?: boolean;
  helpFormats?: boolean;
  host?: boolean;
}

function chooseColumns(options: LsOptions): Column[] {
  if (options.rawList) return parseFields('name');
  if (options.fields !== undefined) {
    if (options.format !== undefined) throw new UsageError('give either --format or --fields, not both');
    return parseFields(options.fields);
  }
  return formatColumns(options.format ?? 'simple');
}

/** VMs having at least one of `tags` (Qubes' --tags); one `admin.vm.tag.List` per VM, only when asked. */
async function withTags(api: Requester, vms: readonly VmSummary[], tags: readonly string[]): Promise<VmSummary[]> {
  const wanted = new Set(tags);
  const tagged = await Promise.all(
    vms.map(async (vm) => ((await api.request(AdminVmTag.List, {}, { dest: vm.name })).tags.some((t) => wanted.has(t)) ? vm : null)),
  );
  return tagged.filter((vm): vm is VmSummary => vm !== null);
}

/** qvm-ls: list VMs and their state (qubesadmin/tools/qvm_ls.py). */
export function qvmLs(ctx: ToolContext): Command {
  return new Command('qvm-ls')
    .description('List Qubes domains and their parameters')
    .argument('[vmname...]', 'list only these VMs')
    .addOption(new Option('-o, --format <format>', 'preset format').choices(Object.keys(FORMATS)))
    .option('-O, --fields <field,...>', 'columns to show: NAME, STATE, CLASS, LABEL, TEMPLATE, NETVM, FLAGS, GATEWAY or any VM property')
    .addOption(new Option('-n, --network', 'same as --format=network').implies({ format: 'network' }))
    .addOption(new Option('-k, --kernel', 'same as --format=kernel').implies({ format: 'kernel' }))
    .option('--raw-data', 'one line per VM, cells separated by |, no head (for scripts)')
    .option('--raw-list', 'same as --raw-data --fields=name')
    .option('--class <class>', 'show only VMs of this class (repeatable)', repeatable)
    .option('--tags <tag>', 'show only VMs with this tag (repeatable; any of them)', repeatable)
    .option('--running', 'show running VMs')
    .option('--halted', 'show halted VMs')
    .option('--paused', 'show paused VMs')
    .option('--sort <column>', 'sort by this column rather than NAME')
    .option('--reverse', 'reverse the sort')
    .option('--offline', 'read qubes.xml directly, without the bus (installation, recovery)')
    .option('--help-formats', 'list the formats with their columns and exit')
    .option('--host', 'show the host rather than VMs: its CPUs, their load, its memory (MiB), the VMs running')
    .action(async (names: string[], options: LsOptions) => {
      if (options.helpFormats) {
        ctx.stdout.write(formatHelpFormats());
        return;
      }
      if (options.host) {
        if (names.length > 0) throw new UsageError('--host shows the host, not qubes: give no qube names with it');
        const api = await ctx.api({ offline: options.offline === true });
        const listing = hostListing(await api.request(AdminHostInfo, {}));
        ctx.stdout.write(options.rawData ? formatRawListing(listing) : formatListing(listing));
        return;
      }
      const columns = chooseColumns(options);
      const properties = neededProperties(columns);
      const api = await ctx.api({ offline: options.offline === true });
      // One round trip, whatever the columns: the properties come with the list.
      const { domains } = await api.request(AdminVmList, properties.length === 0 ? {} : { payload: { properties } });
      let vms = domains;
      if (names.length > 0) vms = findNamed(domains, names);
      const classes = options.class ?? [];
      if (classes.length > 0) vms = vms.filter((vm) => classes.includes(vm.class));
      const states = (['running', 'halted', 'paused'] as const).filter((state) => options[state] === true);
      vms = vms.filter((vm) => matchesPowerStates(vm, states));
      if (options.tags !== undefined) vms = await withTags(api, vms, options.tags);
      // GATEWAY looks up the netvm, which need not be listed itself.
      const listing = buildListing(vms, columns, { sort: options.sort, reverse: options.reverse, others: domains });
      ctx.stdout.write(options.rawData || options.rawList ? formatRawListing(listing) : formatListing(listing));
    });
}
