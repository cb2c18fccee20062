import { Command, Option } from 'commander';
import { AdminVmFeature, isQubesError } from '@qubes-bus/contracts';
import { UsageError } from '../errors';
import { alignColumns } from '../table';
import type { ToolContext } from '../tool';

/** qvm-features: list, show, set or unset a qube's features (qubesadmin/tools/qvm_features.py). */
export function qvmFeatures(ctx: ToolContext): Command {
  return new Command('qvm-features')
    .description("Manage a qube's features")
    .argument('<vmname>', 'the qube')
    .argument('[feature]', 'name of the feature')
    .argument('[value]', 'new value of the feature')
    .option('-D, --unset', 'unset the feature')
    // Qubes' other names for it
    .addOption(new Option('--default, --delete').hideHelp())
    .action(async (vm: string, feature: string | undefined, value: string | undefined, options: { unset?: boolean; delete?: boolean }) => {
      const unset = options.unset === true || options.delete === true;
      if (unset && feature === undefined) throw new UsageError('--unset requires a feature');
      if (unset && value !== undefined) throw new UsageError('cannot both set and unset a value');
      const api = await ctx.api();
      if (feature === undefined) {
        const { features } = await api.request(AdminVmFeature.List, {}, { dest: vm });
        const names = Object.keys(features).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        ctx.stdout.write(alignColumns(names.map((name) => [name, features[name] ?? ''])));
      } else if (unset) {
        // Unsetting what is not set is done already (as in Qubes).
        await api.request(AdminVmFeature.Remove, { arg: feature }, { dest: vm }).catch((err: unknown) => {
          if (!isQubesError(err, 'FEATURE_NOT_FOUND')) throw err;
        });
      } else if (value === undefined) {
        ctx.stdout.write(`${(await api.request(AdminVmFeature.Get, { arg: feature }, { dest: vm })).value}\n`);
      } else {
        await api.request(AdminVmFeature.Set, { arg: feature, payload: { value } }, { dest: vm });
      }
    });
}
