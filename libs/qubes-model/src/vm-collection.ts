import { PropertyType, QubesError, VmClass, vmNameProblem, type PropertyValue } from '@qubes-bus/contracts';
import { deviceBackends, newDomain } from './domain';
import type { Mutation } from './mutation';
import { propertyDef, propertyDefs } from './property-table';
import type { QubesApp } from './qubes-app';

export const MAX_QID = 10_000;
export const MAX_DISPID = 10_000;

export interface CreateDomainSpec {
  name: string;
  label: string;
  template?: string | undefined;
  properties?: Readonly<Record<string, PropertyValue>> | undefined;
  /** The hypervisor's UUID for the VM, when it gave one; else a new one. */
  uuid?: string | undefined;
}

export interface UsedBy {
  vm: string | null;
  property: string;
}

// Adding and removing VMs, as qubes/app.py VMCollection does; `qids` is the app's index of qid
// to name, kept beside `app.domains`.

export function createDomain(app: QubesApp, qids: Map<number, string>, klass: VmClass, spec: CreateDomainSpec): Mutation {
  if (klass === VmClass.AdminVM) throw new QubesError('VM_CLASS_INVALID', 'there is one AdminVM, dom0; it cannot be created');
  const problem = vmNameProblem(spec.name);
  if (problem !== null) throw new QubesError('VM_NAME_INVALID', `invalid VM name ${JSON.stringify(spec.name)}: ${problem}`);
  if (app.domains.has(spec.name)) throw new QubesError('VM_ALREADY_EXISTS', `a VM named ${spec.name} already exists`, { details: { vm: spec.name } });
  const label = app.label(spec.label);
  const qid = unusedQid(qids);
  const d = newDomain(qid, klass, [
    ['qid', { text: String(qid) }],
    ['name', { text: spec.name }],
    ['uuid', { text: (spec.uuid ?? crypto.randomUUID()).toLowerCase() }],
    ['label', { ref: `label-${label.index}` }],
  ]);
  if (klass === VmClass.DispVM) d.props.set('dispid', { text: String(unusedDispid(app)) });
  app.domains.set(spec.name, d);
  qids.set(qid, spec.name);
  const undo = (): void => {
    app.domains.delete(spec.name);
    qids.delete(qid);
  };
  try {
    // Qubes stores the template explicitly, taking the default at creation.
    if (propertyDef(klass, 'template') !== undefined) {
      const template = spec.template ?? app.value(spec.name, 'template');
      if (template === null) {
        throw new QubesError('PROPERTY_VALUE_INVALID', `no template given, and ${klass === VmClass.DispVM ? 'default_dispvm' : 'default_template'} is not set`);
      }
      app.setProperty(spec.name, 'template', template);
    } else if (spec.template !== undefined) {
      throw new QubesError('TEMPLATE_CLASS_INVALID', `a ${klass} has no template`);
    }
    for (const [name, value] of Object.entries(spec.properties ?? {})) app.setProperty(spec.name, name, value);
  } catch (err) {
    undo();
    throw err;
  }
  return { changes: [{ type: 'domain-add', vm: spec.name, class: klass }], undo };
}

/** Who refers to `vm`: other VMs' properties and global properties, by their effective value. */
export function usedBy(app: QubesApp, vm: string): UsedBy[] {
  const users: UsedBy[] = [];
  for (const [name, d] of app.domains) {
    if (name === vm) continue;
    for (const def of propertyDefs(d.klass)) {
      if (def.type === PropertyType.Vm && app.value(name, def.name) === vm) users.push({ vm: name, property: def.name });
    }
  }
  for (const def of propertyDefs(null)) {
    if (def.type === PropertyType.Vm && app.value(null, def.name) === vm) users.push({ vm: null, property: def.name });
  }
  return users;
}

export function removeDomain(app: QubesApp, qids: Map<number, string>, vm: string): Mutation {
  const d = app.domain(vm);
  if (d.klass === VmClass.AdminVM) throw new QubesError('VM_CLASS_INVALID', 'dom0 cannot be removed');
  // As qubes/api/admin.py vm_remove: a package owns it, and removes it with the package.
  if (app.value(vm, 'installed_by_rpm') === true) {
    throw new QubesError('VM_IN_USE', `${vm} was installed by the package manager; remove its package instead`, { details: { usedBy: [], installedByRpm: true } });
  }
  const backendOf = [...app.domains].filter(([name, other]) => name !== vm && deviceBackends(other).includes(vm)).map(([name]) => name);
  if (backendOf.length > 0) {
    throw new QubesError('VM_IN_USE', `${vm} provides devices assigned to ${backendOf.join(', ')}`, {
      details: { usedBy: backendOf.map((name) => ({ vm: name, property: 'devices' })) },
    });
  }
  const users = usedBy(app, vm);
  if (users.length > 0) {
    const list = users.map((u) => (u.vm === null ? `global ${u.property}` : `${u.vm} (${u.property})`)).join(', ');
    throw new QubesError('VM_IN_USE', `${vm} is in use by ${list}`, { details: { usedBy: users } });
  }
  const order = [...app.domains.entries()];
  app.domains.delete(vm);
  qids.delete(d.qid);
  return {
    changes: [{ type: 'domain-delete', vm, class: d.klass }],
    undo: () => {
      app.domains.clear();
      for (const [name, domain] of order) app.domains.set(name, domain);
      qids.set(d.qid, vm);
    },
  };
}

function unusedQid(qids: Map<number, string>): number {
  for (let qid = 1; qid < MAX_QID; qid++) if (!qids.has(qid)) return qid;
  throw new QubesError('LIMIT_REACHED', `all ${MAX_QID} qids are in use`);
}

/** Random, as Qubes does, so that a dispid says nothing about the disposables before it. */
function unusedDispid(app: QubesApp): number {
  const used = new Set<number>();
  for (const d of app.domains.values()) if (d.klass === VmClass.DispVM) used.add(Number(d.props.get('dispid')?.text));
  if (used.size >= MAX_DISPID - 1) throw new QubesError('LIMIT_REACHED', `all ${MAX_DISPID} dispids are in use`);
  for (;;) {
    const candidate = 1 + Math.floor(Math.random() * (MAX_DISPID - 1));
    if (!used.has(candidate)) return candidate;
  }
}
