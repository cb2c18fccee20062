import { Command } from 'commander';
import { AdminVmList, type VmSummary } from '@qubes-bus/contracts';
import type { ToolContext } from '../tool';
import { formatTable } from '../table';

const COLUMNS = ['NAME', 'STATE', 'CLASS', 'LABEL', 'TEMPLATE', 'NETVM'] as const;

function row(vm: VmSummary): Array<string | null> {
  return [vm.name, vm.state, vm.class, vm.label, vm.template, vm.netvm];
}

/** qvm-ls: list VMs and their state (qubesadmin/tools/qvm_ls.py, default `simple` format). */
export function qvmLs(ctx: ToolContext): Command {
  return new Command('qvm-ls')
    .description('List VMs and their state')
    .argument('[vmname...]', 'list only these VMs')
    .option('--offline', 'read qubes.xml directly, without the bus (installation, recovery)')
    .action(async (names: string[], options: { offline?: boolean }) => {
      const bus = await ctx.api({ offline: options.offline === true });
      const reply =
        names.length === 0
          ? await bus.request(AdminVmList, {})
          : { domains: (await Promise.all(names.map((dest) => bus.request(AdminVmList, {}, { dest })))).flatMap((r) => r.domains) };
      const sorted = [...reply.domains].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      ctx.stdout.write(formatTable(COLUMNS, sorted.map(row)));
    });
}
