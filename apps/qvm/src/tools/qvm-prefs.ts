import { Command } from 'commander';
import { AdminProperty, AdminVmProperty } from '@qubes-bus/contracts';
import { formatPropertyHelp, formatPropertyList, formatPropertyValue, propertyName, valueToSet } from '../properties';
import type { ToolContext } from '../tool';
import { UsageError } from '../errors';

interface PrefsOptions {
  helpProperties?: boolean;
  hideDefault?: boolean;
  default?: boolean;
  offline?: boolean;
}

/** Whose properties: a VM's (`admin.vm.property.*` on it) or the system's (`admin.property.*`). */
interface Target {
  api: typeof AdminVmProperty | typeof AdminProperty;
  dest: string;
}

function withCommonOptions(command: Command): Command {
  return command
    .argument('[property]', 'name of the property to show or change')
    .argument('[value]', 'new value of the property')
    .option('--help-properties', 'list all available properties with short descriptions and exit')
    .option('--hide-default', 'do not show properties that are set to the default value')
    .option('-g, --get', 'ignored; for compatibility with older scripts')
    .option('-s, --set', 'ignored; for compatibility with older scripts')
    .option('-D, --default', 'reset the property to its default value')
    .option('--offline', 'work on qubes.xml directly, without the bus (installation, recovery)');
}

/** The actions of qvm-prefs and qubes-prefs (qubesadmin/tools/qvm_prefs.py process_actions). */
async function prefs(ctx: ToolContext, target: Target, untrustedProperty: string | undefined, value: string | undefined, options: PrefsOptions): Promise<void> {
  if (options.default && untrustedProperty === undefined) throw new UsageError('--default needs a property to reset');
  if (options.default && value !== undefined) throw new UsageError('cannot both set and reset a property');
  const api = await ctx.api({ offline: options.offline === true });
  const { api: calls, dest } = target;
  if (options.helpProperties) {
    const { properties } = await api.request(calls.List, {}, { dest });
    const docs = await Promise.all(properties.map(async (p) => [p, (await api.request(calls.Help, { arg: p }, { dest })).doc] as const));
    ctx.stdout.write(formatPropertyHelp(Object.fromEntries(docs)));
    return;
  }
  if (untrustedProperty === undefined) {
    // Every property in one call.
    const { properties } = await api.request(calls.GetAll, {}, { dest });
    ctx.stdout.write(formatPropertyList(properties, { hideDefault: options.hideDefault === true }));
    return;
  }
  const property = propertyName(untrustedProperty);
  if (options.default) {
    await api.request(calls.Reset, { arg: property }, { dest });
  } else if (value !== undefined) {
    // Sent as typed; the registry converts it by the property's type, as qubesd does.
    await api.request(calls.Set, { arg: property, payload: { value: valueToSet(property, value) } }, { dest });
  } else {
    const entry = await api.request(calls.Get, { arg: property }, { dest });
    if (options.hideDefault && entry.default) return;
    const line = formatPropertyValue(entry);
    if (line !== null) ctx.stdout.write(line);
  }
}

/** qvm-prefs: show or change a VM's properties. */
export function qvmPrefs(ctx: ToolContext): Command {
  return withCommonOptions(new Command('qvm-prefs').description("List, show or change a qube's properties").argument('<vmname>', 'the qube'))
    .action((vm: string, property: string | undefined, value: string | undefined, options: PrefsOptions) =>
      prefs(ctx, { api: AdminVmProperty, dest: vm }, property, value, options),
    );
}

/** qubes-prefs: show or change the system's global properties. */
export function qubesPrefs(ctx: ToolContext): Command {
  return withCommonOptions(new Command('qubes-prefs').description('List, show or change global properties'))
    .action((property: string | undefined, value: string | undefined, options: PrefsOptions) =>
      prefs(ctx, { api: AdminProperty, dest: 'dom0' }, property, value, options),
    );
}
