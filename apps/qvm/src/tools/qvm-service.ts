import { Command, Option } from 'commander';
import { AdminVmFeature, isQubesError, QubesError } from '@qubes-bus/contracts';
import { UsageError } from '../errors';
import { SERVICE_PREFIX, serviceFeatureValue, serviceRows, serviceState } from '../services';
import { alignColumns } from '../table';
import type { ToolContext } from '../tool';

interface ServiceOptions {
  list?: boolean;
  unset?: boolean;
  delete?: boolean;
  enable?: boolean;
  disable?: boolean;
}

/** qvm-service: a qube's services, kept as `service.<name>` features (qubesadmin/tools/qvm_service.py). */
export function qvmService(ctx: ToolContext): Command {
  return new Command('qvm-service')
    .description("Manage a qube's services")
    .argument('<vmname>', 'the qube')
    .argument('[service]', 'name of the service')
    .argument('[value]', 'new state of the service: on or off')
    .option('-l, --list', 'list services (the default action)')
    .option('-e, --enable', 'enable the service (same as the value on)')
    .option('-d, --disable', 'disable the service (same as the value off)')
    .option('-D, --unset', 'unset the service (back to what the qube does by default)')
    // Qubes' other names for it
    .addOption(new Option('--default, --delete').hideHelp())
    .action(async (vm: string, service: string | undefined, untrustedValue: string | undefined, options: ServiceOptions) => {
      const switches = [options.enable ? 'on' : undefined, options.disable ? 'off' : undefined].filter((v) => v !== undefined);
      if (switches.length + (untrustedValue === undefined ? 0 : 1) > 1) throw new UsageError('give one new state: VALUE, --enable or --disable');
      const value = untrustedValue ?? switches[0];
      const unset = options.unset === true || options.delete === true;
      if (unset && service === undefined) throw new UsageError('--unset requires a service');
      if (unset && value !== undefined) throw new UsageError('cannot both set and unset a value');
      if (service === undefined && value !== undefined) throw new UsageError('--enable and --disable need a service');
      // Checked before any call: a bad state is a usage error.
      const featureValue = value === undefined ? undefined : serviceFeatureValue(value);
      const api = await ctx.api();
      if (service === undefined) {
        const { features } = await api.request(AdminVmFeature.List, {}, { dest: vm });
        ctx.stdout.write(alignColumns(serviceRows(features)));
        return;
      }
      const feature = `${SERVICE_PREFIX}${service}`;
      if (unset) {
        await api.request(AdminVmFeature.Remove, { arg: feature }, { dest: vm }).catch((err: unknown) => {
          if (!isQubesError(err, 'FEATURE_NOT_FOUND')) throw err;
        });
      } else if (featureValue !== undefined) {
        await api.request(AdminVmFeature.Set, { arg: feature, payload: { value: featureValue } }, { dest: vm });
      } else {
        const current = await api.request(AdminVmFeature.Get, { arg: feature }, { dest: vm }).catch((err: unknown) => {
          throw isQubesError(err, 'FEATURE_NOT_FOUND') ? new QubesError('FEATURE_NOT_FOUND', `${vm} has no service ${service} set`) : err;
        });
        ctx.stdout.write(`${serviceState(current.value)}\n`);
      }
    });
}
