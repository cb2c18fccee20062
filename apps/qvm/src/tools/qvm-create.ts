import { Command } from 'commander';
import { AdminVmclassList, AdminVmCreate, CREATABLE_CLASSES, type CreatableClass, type PropertyValue } from '@qubes-bus/contracts';
import { repeatable } from '../options';
import type { ToolContext } from '../tool';
import { UsageError } from '../errors';

interface CreateOptions {
  class: string;
  standalone?: boolean;
  disp?: boolean;
  template?: string;
  label?: string;
  property?: string[];
  pool?: string;
  helpClasses?: boolean;
  offline?: boolean;
}

/** `--property k=v`, repeatable; the value is sent as typed and converted by the registry. */
export function parseProperties(untrustedPairs: readonly string[]): Record<string, PropertyValue> {
  const properties: Record<string, PropertyValue> = {};
  for (const pair of untrustedPairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--property takes NAME=VALUE, not ${JSON.stringify(pair)}`);
    properties[pair.slice(0, eq).replace(/-/g, '_')] = pair.slice(eq + 1);
  }
  return properties;
}

function creatableClass(untrustedClass: string): CreatableClass {
  if ((CREATABLE_CLASSES as readonly string[]).includes(untrustedClass)) return untrustedClass as CreatableClass;
  throw new UsageError(`no such domain class: ${JSON.stringify(untrustedClass)}; a new qube is one of ${CREATABLE_CLASSES.join(', ')}`);
}

/** qvm-create: create a qube (qubesadmin/tools/qvm_create.py); the properties are set in the same call. */
export function qvmCreate(ctx: ToolContext): Command {
  return new Command('qvm-create')
    .description('Create a new qube')
    .argument('[vmname]', 'name of the qube to create')
    .option('-C, --class <class>', 'class of the new qube', 'AppVM')
    .option('--standalone', 'shortcut for --class StandaloneVM')
    .option('--disp', 'shortcut for --class DispVM --label red')
    .option('-t, --template <template>', 'the template to use (default: the global default_template)')
    .option('-l, --label <label>', 'the label of the new qube (red, orange, yellow, green, gray, blue, purple, black, ...)')
    .option('--prop, --property <name=value>', "set a property of the new qube, like 'memory=800' (repeatable)", repeatable)
    .option('-P, --pool <pool>', 'the pool for all volumes of the new qube')
    .option('--help-classes', 'list the classes of qubes and exit')
    .option('--offline', 'work on qubes.xml directly, without the bus (installation, recovery)')
    .action(async (name: string | undefined, options: CreateOptions) => {
      if (options.helpClasses) {
        const api = await ctx.api({ offline: options.offline === true, createStore: true });
        const { classes } = await api.request(AdminVmclassList, {});
        ctx.stdout.write(`${classes.join('\n')}\n`);
        return;
      }
      const klass = creatableClass(options.standalone ? 'StandaloneVM' : options.disp ? 'DispVM' : options.class);
      const label = options.label ?? (options.disp ? 'red' : undefined);
      if (label === undefined) throw new UsageError('--label option is mandatory');
      if (name === undefined) throw new UsageError('VMNAME is mandatory');
      if (options.pool?.includes('=')) throw new UsageError('a pool per volume (VOLUME=POOL) is not supported: give one pool for all volumes');
      const properties = parseProperties(options.property ?? []);
      const api = await ctx.api({ offline: options.offline === true, createStore: true });
      await api.request(AdminVmCreate[klass], {
        ...(options.template === undefined ? {} : { arg: options.template }),
        payload: {
          name,
          label,
          ...(Object.keys(properties).length === 0 ? {} : { properties }),
          ...(options.pool === undefined ? {} : { pool: options.pool }),
        },
      });
    });
}
