import { Command } from 'commander';
import { AdminPoolAdd, AdminPoolInfo, AdminPoolList, AdminPoolListDrivers, AdminPoolRemove } from '@qubes-bus/contracts';
import { UsageError } from '../errors';
import { repeatable } from '../options';
import { alignColumns, formatTable } from '../table';
import type { ToolContext } from '../tool';

/** `-o name=value`, repeatable: a pool driver's options. */
function parseOptions(untrustedPairs: readonly string[]): Record<string, string> {
  const options: Record<string, string> = {};
  for (const pair of untrustedPairs) {
    for (const item of pair.split(',')) {
      const eq = item.indexOf('=');
      if (eq <= 0) throw new UsageError(`-o takes NAME=VALUE, not ${JSON.stringify(item)}`);
      options[item.slice(0, eq)] = item.slice(eq + 1);
    }
  }
  return options;
}

/** qvm-pool: list, inspect, add and remove storage pools (qubesadmin/tools/qvm_pool.py). */
export function qvmPool(ctx: ToolContext): Command {
  const tool = new Command('qvm-pool').description('Manage storage pools');

  tool
    .command('list', { isDefault: true })
    .alias('ls')
    .description('list the pools')
    .action(async () => {
      const api = await ctx.api();
      const names = await api.request(AdminPoolList, {});
      const infos = await Promise.all(names.map((name) => api.request(AdminPoolInfo, { arg: name })));
      ctx.stdout.write(formatTable(['NAME', 'DRIVER'], infos.map((info, i) => [names[i]!, info['driver'] ?? null])));
    });

  tool
    .command('info')
    .alias('i')
    .description("show a pool's options, size and usage")
    .argument('<pool>', 'the pool')
    .action(async (pool: string) => {
      const api = await ctx.api();
      const info = await api.request(AdminPoolInfo, { arg: pool });
      ctx.stdout.write(alignColumns(Object.keys(info).sort().map((key) => [key, info[key]!])));
    });

  tool
    .command('add')
    .alias('a')
    .description('add a pool')
    .argument('<pool>', 'its name')
    .argument('<driver>', 'its driver (qvm-pool drivers lists them)')
    .option('-o, --option <name=value>', 'a driver option, like dir_path=/var/lib/pool (repeatable)', repeatable)
    .action(async (pool: string, driver: string, options: { option?: string[] }) => {
      const api = await ctx.api();
      await api.request(AdminPoolAdd, { arg: driver, payload: { name: pool, options: parseOptions(options.option ?? []) } });
    });

  tool
    .command('remove')
    .aliases(['rm', 'r'])
    .description('remove a pool that holds no volumes (its files stay)')
    .argument('<pool...>', 'the pools')
    .action(async (pools: string[]) => {
      const api = await ctx.api();
      for (const pool of pools) await api.request(AdminPoolRemove, { arg: pool });
    });

  tool
    .command('drivers')
    .alias('d')
    .description('list the pool drivers and their options')
    .action(async () => {
      const api = await ctx.api();
      const drivers = await api.request(AdminPoolListDrivers, {});
      ctx.stdout.write(formatTable(['DRIVER', 'OPTIONS'], Object.keys(drivers).sort().map((name) => [name, drivers[name]!.join(', ')])));
    });

  return tool;
}
