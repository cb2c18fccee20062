import { QubesError, VmClass, type PropertyValue } from '@qubes-bus/contracts';
import type { StoredValue } from './domain';
import { NO_CHANGE, touch, type Mutation } from './mutation';
import { netvmLoop } from './netvm-chain';
import { coerce, toStored } from './property-codec';
import { propertyDef, propertyDefs } from './property-table';
import type { QubesApp } from './qubes-app';

/** The properties set explicitly on `vm`, or the global ones (vm null). */
export function storedProperties(app: QubesApp, vm: string | null): Map<string, StoredValue> {
  return vm === null ? app.globals : app.domain(vm).props;
}

export function setProperty(app: QubesApp, vm: string | null, property: string, untrusted: PropertyValue): Mutation {
  const def = app.def(vm, property);
  if (def.readOnly || def.writeOnce) {
    throw new QubesError('PROPERTY_READ_ONLY', `${property} of ${vm ?? 'the system'} cannot be changed`, { details: { property } });
  }
  const value = coerce(app, def, untrusted);
  def.validate?.(value, vm, app);
  const stored = toStored(app, def, value);
  const map = storedProperties(app, vm);
  const before = map.get(property);
  if (before !== undefined && before.text === stored.text && before.ref === stored.ref) return NO_CHANGE;
  const oldvalue = app.value(vm, property);
  const inherited = inheritedBefore(app, vm);
  const undo = touch(app, vm, () => (before === undefined ? map.delete(property) : map.set(property, before)));
  map.set(property, stored);
  checkNetworkAfter(app, vm, property, undo);
  return withInherited(app, { changes: [{ type: 'property-set', vm, name: property, newvalue: value, oldvalue }], undo }, inherited);
}

export function resetProperty(app: QubesApp, vm: string | null, property: string): Mutation {
  const def = app.def(vm, property);
  if (def.readOnly || def.writeOnce) {
    throw new QubesError('PROPERTY_READ_ONLY', `${property} of ${vm ?? 'the system'} cannot be changed`, { details: { property } });
  }
  if (def.defaultValue === undefined) {
    throw new QubesError('PROPERTY_VALUE_INVALID', `${property} has no default; set it instead`, { details: { property } });
  }
  const map = storedProperties(app, vm);
  const before = map.get(property);
  if (before === undefined) return NO_CHANGE;
  const oldvalue = app.value(vm, property);
  const inherited = inheritedBefore(app, vm);
  const undo = touch(app, vm, () => map.set(property, before));
  map.delete(property);
  const newvalue = app.value(vm, property);
  if (newvalue === null && !def.allowNone) {
    undo();
    throw new QubesError('PROPERTY_VALUE_INVALID', `${property} has no default here (its global default is not set); set it instead`, {
      details: { property },
    });
  }
  checkNetworkAfter(app, vm, property, undo);
  return withInherited(app, { changes: [{ type: 'property-reset', vm, name: property, newvalue, oldvalue }], undo }, inherited);
}

/**
 * The VMs whose defaults follow `vm`'s properties (its template children, theirs, ...), or
 * every VM for a global property, with their defaulted values now.
 */
function inheritedBefore(app: QubesApp, vm: string | null): Map<string, Map<string, PropertyValue>> {
  const snapshot = new Map<string, Map<string, PropertyValue>>();
  const followers = vm === null ? [...app.domains.keys()] : templateChildren(app, vm);
  for (const name of followers) snapshot.set(name, defaultedValues(app, name));
  return snapshot;
}

function defaultedValues(app: QubesApp, vm: string): Map<string, PropertyValue> {
  const d = app.domain(vm);
  const values = new Map<string, PropertyValue>();
  for (const def of propertyDefs(d.klass)) {
    if (def.readOnly || d.props.has(def.name)) continue;
    values.set(def.name, def.defaultValue?.(vm, app) ?? null);
  }
  return values;
}

/** VMs based on `vm`, directly or through another (a DispVM on an AppVM on a template). */
function templateChildren(app: QubesApp, vm: string): string[] {
  // Only templates and disposable templates have children: most VMs are neither, and a
  // change to them must not cost a look at every VM.
  const d = app.domain(vm);
  const canParent = d.klass === VmClass.TemplateVM || d.props.get('template_for_dispvms')?.text === 'True';
  if (!canParent) return [];
  const out: string[] = [];
  const queue = [vm];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const [name, d] of app.domains) {
      if (d.props.get('template')?.text === parent && propertyDef(d.klass, 'template') !== undefined && !out.includes(name)) {
        out.push(name);
        queue.push(name);
      }
    }
  }
  return out;
}

/**
 * A change to a template or a global property changes the defaults of other VMs: each such
 * value gets its property-reset event (as Qubes fires for VMs on the default netvm) and
 * bumps its VM's revision, so a write based on the old value fails its revision check.
 */
function withInherited(app: QubesApp, mutation: Mutation, before: Map<string, Map<string, PropertyValue>>): Mutation {
  const changes = [...mutation.changes];
  const undos: Array<() => void> = [];
  for (const [vm, values] of before) {
    const after = defaultedValues(app, vm);
    let moved = false;
    for (const [name, oldvalue] of values) {
      const newvalue = after.get(name) ?? null;
      if (newvalue === oldvalue) continue;
      changes.push({ type: 'property-reset', vm, name, newvalue, oldvalue });
      moved = true;
    }
    if (moved) undos.push(touch(app, vm, () => undefined));
  }
  if (undos.length === 0) return mutation;
  return {
    changes,
    undo: () => {
      for (const undo of undos.reverse()) undo();
      mutation.undo();
    },
  };
}

/** After a change that can reroute traffic, no VM may reach itself through its netvms. */
function checkNetworkAfter(app: QubesApp, vm: string | null, property: string, undo: () => void): void {
  if (property !== 'netvm' && property !== 'default_netvm') return;
  const starts = vm === null ? [...app.domains.keys()] : [vm];
  for (const start of starts) {
    const loop = netvmLoop(app, start);
    if (loop !== null) {
      undo();
      throw new QubesError('NETVM_LOOP', `${property}: traffic would loop ${loop.join(' -> ')}`, { details: { loop } });
    }
  }
}
