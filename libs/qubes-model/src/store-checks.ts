import { PropertyType, QubesError, VmClass, vmNameProblem } from '@qubes-bus/contracts';
import type { StoredValue } from './domain';
import { netvmLoop } from './netvm-chain';
import { fromStored } from './property-codec';
import { propertyDef, propertyDefs } from './property-table';
import type { QubesApp } from './qubes-app';

/**
 * Reads every stored property as its type, and checks references: done once after a load,
 * so that a hand-edited qubes.xml with a typo stops the registry with a clear message.
 */
export function checkLoaded(app: QubesApp, path: string): void {
  // Validators look at other VMs: they run once every value has been read.
  const pending: Array<() => void> = [];
  const check = (vm: string | null, stored: Map<string, StoredValue>, klass: VmClass | null): void => {
    for (const [name, value] of stored) {
      const def = propertyDef(klass, name);
      if (def === undefined || def.readOnly) continue; // kept verbatim, not interpreted
      try {
        const typed = fromStored(app, def, value);
        if (def.type === PropertyType.Vm && typed !== null && !app.domains.has(typed as string)) {
          throw new QubesError('PROPERTY_VALUE_INVALID', `${name}: no VM is named ${typed as string}`);
        }
        pending.push(() => {
          try {
            def.validate?.(typed, vm, app);
          } catch (err) {
            throw new Error(`${vm ?? 'global property'}: ${(err as Error).message}`, { cause: err });
          }
        });
      } catch (err) {
        // the message starts with the property's name
        const where = vm === null ? 'global property' : `${vm}: property`;
        throw new QubesError('STORE_MALFORMED', `${path} is malformed: ${where} ${(err as Error).message}; it was left untouched`, {
          cause: err,
        });
      }
    }
  };
  check(null, app.globals, null);
  for (const [name, d] of app.domains) check(name, d.props, d.klass);
  checkRules(app, path);
  for (const validate of pending) {
    try {
      validate();
    } catch (err) {
      throw new QubesError('STORE_MALFORMED', `${path} is malformed: ${(err as Error).message}; it was left untouched`, { cause: err });
    }
  }
}

/**
 * Qubes' setters run at load too (qubes/app.py load stages): names by the rules, templates of
 * the right class, netvms that provide network, no netvm loop. A store breaking them would
 * only fail later, and worse (a template loop recurses forever).
 */
function checkRules(app: QubesApp, path: string): void {
  const broken = (reason: string): QubesError =>
    new QubesError('STORE_MALFORMED', `${path} is malformed: ${reason}; it was left untouched`, { details: { path } });
  for (const [name, d] of app.domains) {
    if (d.klass === VmClass.AdminVM) continue;
    const problem = vmNameProblem(name);
    if (problem !== null) throw broken(`${JSON.stringify(name)}: ${problem}`);
    for (const def of propertyDefs(d.klass)) {
      if (def.type !== PropertyType.Vm || def.readOnly) continue;
      const target = app.value(name, def.name);
      if (target === null) {
        if (!def.allowNone) throw broken(`${name}: ${def.name} names no VM, and its default is not set`);
        continue;
      }
      const klass = app.domain(target as string).klass;
      if (def.vmClasses !== undefined && !def.vmClasses.includes(klass)) throw broken(`${name}: ${def.name} ${target as string} is a ${klass}`);
      if (def.name === 'netvm' && app.value(target as string, 'provides_network') !== true) {
        throw broken(`${name}: netvm ${target as string} does not provide network`);
      }
    }
    const loop = netvmLoop(app, name);
    if (loop !== null) throw broken(`netvm loop ${loop.join(' -> ')}`);
  }
}
