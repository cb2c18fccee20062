import {
  PropertyType,
  QubesError,
  VmClass,
  vmNameProblem,
  type PropertyEntry,
  type PropertyValue,
} from '@qubes-bus/contracts';
import { BUILTIN_LABEL_COUNT, type Label } from './labels';
import { propertyDef, propertyDefs, type PropertyDef, type PropertyScope } from './property-table';
import { childElements, element, isElement, parseXml, type XmlElement, type XmlNode } from './xml-tree';

/** A property as qubes.xml stores it: text, or a reference (labels). */
export interface StoredValue {
  readonly text?: string;
  readonly ref?: string;
  /** Attributes of the <property> element this code does not know, kept. */
  readonly attrs?: Readonly<Record<string, string>>;
}

/** What a container element held that this code does not model: its attributes, other children. */
export interface Extras {
  attrs: Record<string, string>;
  children: XmlNode[];
}

/** One VM as the store keeps it; only what is set explicitly is here. */
export interface Domain {
  readonly qid: number;
  readonly klass: VmClass;
  readonly props: Map<string, StoredValue>;
  readonly features: Map<string, string>;
  readonly tags: Set<string>;
  /** Kept verbatim: device assignments and volume config belong to their services. */
  devices: XmlElement[];
  volumeConfig: XmlElement | null;
  /** Attributes and elements this code does not know, written back as they came. */
  extraAttrs: Record<string, string>;
  extraChildren: XmlNode[];
  /** Per container (properties, features, tags): what it held that is not modelled. */
  containerExtras: Record<string, Extras>;
  /**
   * Bumped by every change and by every undo, never reused: a client that read a change later
   * undone (its save failed) cannot pass a revision check with it. A cache of the VM's XML is
   * checked against it too.
   */
  revision: number;
}

/** What a change did, in Qubes' event terms; the registry publishes these once on disk. */
export type Change =
  | { type: 'domain-add'; vm: string; class: VmClass }
  | { type: 'domain-delete'; vm: string; class: VmClass }
  | { type: 'property-set' | 'property-reset'; vm: string | null; name: string; newvalue: PropertyValue; oldvalue: PropertyValue }
  | { type: 'feature-set'; vm: string; feature: string; value: string; oldvalue: string | null }
  | { type: 'feature-delete'; vm: string; feature: string }
  | { type: 'tag-add' | 'tag-delete'; vm: string; tag: string }
  | { type: 'volume-config-set'; vm: string }
  | { type: 'pools-set' }
  | { type: 'label-add'; label: string; color: string; index: number }
  | { type: 'label-remove'; label: string };

/** A change made in memory, with the means to take it back if it cannot be saved. */
export interface Mutation {
  readonly changes: Change[];
  undo(): void;
}

const NO_CHANGE: Mutation = { changes: [], undo: () => undefined };

/** A VM with only the given properties set, and nothing else yet. */
export function newDomain(qid: number, klass: VmClass, props: Iterable<[string, StoredValue]> = []): Domain {
  return {
    qid,
    klass,
    props: new Map(props),
    features: new Map(),
    tags: new Set(),
    devices: [],
    volumeConfig: null,
    extraAttrs: {},
    extraChildren: [],
    containerExtras: {},
    revision: 0,
  };
}

/** dom0, labelled black, as Qubes creates it. */
export function newAdminVm(app: { labels: Map<number, Label> }): Domain {
  const black = [...app.labels.values()].find((l) => l.name === 'black') ?? [...app.labels.values()][0];
  return newDomain(0, VmClass.AdminVM, black === undefined ? [] : [['label', { ref: `label-${black.index}` }]]);
}

export const MAX_QID = 10_000;
export const MAX_DISPID = 10_000;
export const ADMIN_VM_NAME = 'dom0';

const TRUE_WORDS = new Set(['true', 'yes', 'on', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', '0']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Characters XML 1.0 allows (qubes.xml must stay readable by Qubes' own lxml). */
const XML_TEXT = /^[\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]*$/u;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

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

/**
 * The whole of qubes.xml in memory: labels, pools, global properties and VMs, with Qubes'
 * rules for reading and changing them. Pure: no files, no clock but the revision epoch.
 */
export class QubesApp implements PropertyScope {
  readonly labels = new Map<number, Label>();
  /** Pool definitions, verbatim: the storage service owns their meaning. */
  pools: XmlElement[] = [];
  readonly globals = new Map<string, StoredValue>();
  readonly domains = new Map<string, Domain>();
  private readonly qids = new Map<number, string>();
  /** Attributes of <qubes> and elements under it this code does not know. */
  rootAttrs: Record<string, string> = {};
  extraChildren: XmlNode[] = [];
  /** Per container under <qubes> (labels, pools, properties, domains): what is not modelled. */
  readonly containerExtras: Record<string, Extras> = {};
  globalRevision = 0;

  /**
   * @param epoch Distinguishes revisions of this load from those of an earlier one, so that a
   *   revision read before a restart never matches one handed out after it.
   */
  constructor(readonly epoch: string = Date.now().toString(36)) {}

  // --- lookups ---------------------------------------------------------------------------------

  domain(name: string): Domain {
    const d = this.domains.get(name);
    if (d === undefined) throw new QubesError('VM_NOT_FOUND', `no such domain: ${name}`, { details: { vm: name } });
    return d;
  }

  /** Adds a VM read from a file; STORE_MALFORMED (naming `path`) if it clashes with another. */
  addLoadedDomain(name: string, d: Domain, path = 'qubes.xml'): void {
    const clash = this.domains.has(name) ? `two domains are named ${name}` : this.qids.has(d.qid) ? `two domains have qid ${d.qid}` : null;
    if (clash !== null) throw new QubesError('STORE_MALFORMED', `${path} is malformed: ${clash}; it was left untouched`);
    this.domains.set(name, d);
    this.qids.set(d.qid, name);
  }

  label(nameOrId: string): Label {
    const byIndex = /^label-(\d+)$/.exec(nameOrId);
    for (const label of this.labels.values()) {
      if (label.name === nameOrId || (byIndex !== null && label.index === Number(byIndex[1]))) return label;
    }
    throw new QubesError('LABEL_NOT_FOUND', `no such label: ${nameOrId}`, { details: { label: nameOrId } });
  }

  /** The revision of a VM, or of the global properties and labels (vm null). */
  revision(vm: string | null): string {
    return `${this.epoch}.${vm === null ? this.globalRevision : this.domain(vm).revision}`;
  }

  /** CONFLICT unless `expected` (when given) is the current revision. */
  checkRevision(vm: string | null, expected: string | undefined): void {
    if (expected === undefined) return;
    const current = this.revision(vm);
    if (expected !== current) {
      throw new QubesError('CONFLICT', `${vm ?? 'the system'} changed since revision ${expected}; it is now at ${current}`, {
        details: { revision: current },
      });
    }
  }

  // --- PropertyScope: what defaults and validators may ask ----------------------------------

  value(vm: string | null, property: string): PropertyValue {
    const klass = vm === null ? null : this.domain(vm).klass;
    const def = propertyDef(klass, property);
    if (def === undefined) return null;
    return this.effective(vm, def).value;
  }

  templateOf(vm: string): string | null {
    const d = this.domain(vm);
    return d.klass === VmClass.AppVM || d.klass === VmClass.DispVM ? (this.value(vm, 'template') as string | null) : null;
  }

  classOf(vm: string): VmClass {
    return this.domain(vm).klass;
  }

  qidOf(vm: string): number {
    return this.domain(vm).qid;
  }

  exists(vm: string): boolean {
    return this.domains.has(vm);
  }

  usersOf(vm: string, property: string): string[] {
    const users: string[] = [];
    for (const [name, d] of this.domains) {
      if (name !== vm && propertyDef(d.klass, property) !== undefined && this.value(name, property) === vm) users.push(name);
    }
    return users;
  }

  hasPool(name: string): boolean {
    return this.pools.some((p) => p.attrs['name'] === name);
  }

  firstPool(): string | null {
    return this.pools[0]?.attrs['name'] ?? null;
  }

  // --- properties ------------------------------------------------------------------------------

  /** The definitions that apply to a VM (or the global ones); PROPERTY_UNKNOWN for others. */
  def(vm: string | null, property: string): PropertyDef {
    const def = propertyDef(vm === null ? null : this.domain(vm).klass, property);
    if (def === undefined) {
      throw new QubesError('PROPERTY_UNKNOWN', `${vm ?? 'the system'} has no property ${property}`, { details: { property } });
    }
    return def;
  }

  propertyNames(vm: string | null): string[] {
    return propertyDefs(vm === null ? null : this.domain(vm).klass).map((d) => d.name);
  }

  /** A property's value, whether it is the default, and its type. */
  property(vm: string | null, property: string): PropertyEntry {
    const def = this.def(vm, property);
    const { value, isDefault } = this.effective(vm, def);
    return { value, default: isDefault, type: def.type };
  }

  /** The value a property has when nothing is set, or null when it has no default. */
  defaultOf(vm: string | null, property: string): { value: PropertyValue; type: PropertyEntry['type'] } | null {
    const def = this.def(vm, property);
    if (def.defaultValue === undefined) return null;
    const value = def.defaultValue(vm, this);
    return value === undefined ? null : { value, type: def.type };
  }

  private stored(vm: string | null): Map<string, StoredValue> {
    return vm === null ? this.globals : this.domain(vm).props;
  }

  private effective(vm: string | null, def: PropertyDef): { value: PropertyValue; isDefault: boolean } {
    const stored = def.readOnly ? undefined : this.stored(vm).get(def.name);
    if (stored !== undefined) return { value: this.fromStored(def, stored), isDefault: false };
    const value = def.defaultValue?.(vm, this);
    return { value: value === undefined ? null : value, isDefault: true };
  }

  /** A stored value as its type; throws when the file holds something the type cannot be. */
  fromStored(def: PropertyDef, stored: StoredValue): PropertyValue {
    if (def.type === PropertyType.Label) return this.label(stored.ref ?? stored.text ?? '').name;
    const text = stored.text ?? '';
    switch (def.type) {
      case PropertyType.Int:
        if (text === '' && def.allowNone) return null;
        if (!/^-?\d+$/.test(text)) throw new QubesError('PROPERTY_TYPE_INVALID', `${def.name}: ${JSON.stringify(text)} is not an integer`);
        return Number(text);
      case PropertyType.Bool:
        return parseBool(def, text);
      case PropertyType.Vm:
      case PropertyType.Ip:
        return text === '' ? null : text;
      default:
        return text === '' && def.allowNone ? null : text;
    }
  }

  private toStored(def: PropertyDef, value: PropertyValue): StoredValue {
    if (def.type === PropertyType.Label) return { ref: `label-${this.label(value as string).index}` };
    if (value === null) return { text: '' };
    if (def.type === PropertyType.Bool) return { text: value ? 'True' : 'False' };
    return { text: String(value) };
  }

  /** Turns an untrusted value (typed, or a string as a user types it) into the property's type. */
  private coerce(def: PropertyDef, untrusted: PropertyValue): PropertyValue {
    const typeError = (what: string) =>
      new QubesError('PROPERTY_TYPE_INVALID', `${def.name}: ${JSON.stringify(untrusted)} is not ${what}`, { details: { property: def.name } });
    if (untrusted === null || (untrusted === '' && (def.type !== PropertyType.Str || def.allowNone))) {
      if (!def.allowNone) throw new QubesError('PROPERTY_VALUE_INVALID', `${def.name} cannot be none`, { details: { property: def.name } });
      return null;
    }
    switch (def.type) {
      case PropertyType.Int: {
        const n = typeof untrusted === 'number' ? untrusted : typeof untrusted === 'string' && /^-?\d{1,15}$/.test(untrusted.trim()) ? Number(untrusted) : NaN;
        if (!Number.isSafeInteger(n)) throw typeError('an integer');
        return n;
      }
      case PropertyType.Bool:
        if (typeof untrusted === 'boolean') return untrusted;
        if (typeof untrusted === 'string') return parseBool(def, untrusted, typeError);
        throw typeError('True or False');
      case PropertyType.Vm: {
        if (typeof untrusted !== 'string') throw typeError('a VM name');
        if (!this.domains.has(untrusted)) throw new QubesError('PROPERTY_VALUE_INVALID', `${def.name}: no VM is named ${untrusted}`, { details: { property: def.name } });
        const klass = this.domain(untrusted).klass;
        if (def.vmClasses !== undefined && !def.vmClasses.includes(klass)) {
          throw new QubesError(
            def.name === 'template' || def.name === 'default_template' ? 'TEMPLATE_CLASS_INVALID' : 'PROPERTY_VALUE_INVALID',
            `${def.name}: ${untrusted} is a ${klass}, not a ${def.vmClasses.join(' or ')}`,
            { details: { property: def.name } },
          );
        }
        return untrusted;
      }
      case PropertyType.Label:
        if (typeof untrusted !== 'string') throw typeError('a label');
        return this.label(untrusted).name;
      case PropertyType.Enum: {
        const text = typeof untrusted === 'string' ? untrusted.toLowerCase() : '';
        if (!def.values?.includes(text)) throw typeError(`one of ${def.values?.join(', ')}`);
        return text;
      }
      case PropertyType.Uuid:
        if (typeof untrusted !== 'string' || !UUID.test(untrusted)) throw typeError('a UUID');
        return untrusted.toLowerCase();
      case PropertyType.Ip:
        if (typeof untrusted !== 'string' || !IPV4.test(untrusted)) throw typeError('an IPv4 address');
        return untrusted;
      default:
        if (typeof untrusted === 'boolean') throw typeError('text');
        if (/[\n\r]/.test(String(untrusted)) || !XML_TEXT.test(String(untrusted))) {
          throw new QubesError('PROPERTY_VALUE_INVALID', `${def.name} can hold neither line breaks nor control characters`, { details: { property: def.name } });
        }
        return String(untrusted);
    }
  }

  setProperty(vm: string | null, property: string, untrusted: PropertyValue): Mutation {
    const def = this.def(vm, property);
    if (def.readOnly || def.writeOnce) {
      throw new QubesError('PROPERTY_READ_ONLY', `${property} of ${vm ?? 'the system'} cannot be changed`, { details: { property } });
    }
    const value = this.coerce(def, untrusted);
    def.validate?.(value, vm, this);
    const stored = this.toStored(def, value);
    const map = this.stored(vm);
    const before = map.get(property);
    if (before !== undefined && before.text === stored.text && before.ref === stored.ref) return NO_CHANGE;
    const oldvalue = this.value(vm, property);
    const inherited = this.inheritedBefore(vm);
    const undo = this.touch(vm, () => (before === undefined ? map.delete(property) : map.set(property, before)));
    map.set(property, stored);
    this.checkNetworkAfter(vm, property, undo);
    return this.withInherited({ changes: [{ type: 'property-set', vm, name: property, newvalue: value, oldvalue }], undo }, inherited);
  }

  resetProperty(vm: string | null, property: string): Mutation {
    const def = this.def(vm, property);
    if (def.readOnly || def.writeOnce) {
      throw new QubesError('PROPERTY_READ_ONLY', `${property} of ${vm ?? 'the system'} cannot be changed`, { details: { property } });
    }
    if (def.defaultValue === undefined) {
      throw new QubesError('PROPERTY_VALUE_INVALID', `${property} has no default; set it instead`, { details: { property } });
    }
    const map = this.stored(vm);
    const before = map.get(property);
    if (before === undefined) return NO_CHANGE;
    const oldvalue = this.value(vm, property);
    const inherited = this.inheritedBefore(vm);
    const undo = this.touch(vm, () => map.set(property, before));
    map.delete(property);
    const newvalue = this.value(vm, property);
    if (newvalue === null && !def.allowNone) {
      undo();
      throw new QubesError('PROPERTY_VALUE_INVALID', `${property} has no default here (its global default is not set); set it instead`, {
        details: { property },
      });
    }
    this.checkNetworkAfter(vm, property, undo);
    return this.withInherited({ changes: [{ type: 'property-reset', vm, name: property, newvalue, oldvalue }], undo }, inherited);
  }

  /**
   * The VMs whose defaults follow `vm`'s properties (its template children, theirs, ...), or
   * every VM for a global property, with their defaulted values now.
   */
  private inheritedBefore(vm: string | null): Map<string, Map<string, PropertyValue>> {
    const snapshot = new Map<string, Map<string, PropertyValue>>();
    const followers = vm === null ? [...this.domains.keys()] : this.templateChildren(vm);
    for (const name of followers) snapshot.set(name, this.defaultedValues(name));
    return snapshot;
  }

  private defaultedValues(vm: string): Map<string, PropertyValue> {
    const d = this.domain(vm);
    const values = new Map<string, PropertyValue>();
    for (const def of propertyDefs(d.klass)) {
      if (def.readOnly || d.props.has(def.name)) continue;
      values.set(def.name, def.defaultValue?.(vm, this) ?? null);
    }
    return values;
  }

  /** VMs based on `vm`, directly or through another (a DispVM on an AppVM on a template). */
  private templateChildren(vm: string): string[] {
    // Only templates and disposable templates have children: most VMs are neither, and a
    // change to them must not cost a look at every VM.
    const d = this.domain(vm);
    const canParent = d.klass === VmClass.TemplateVM || d.props.get('template_for_dispvms')?.text === 'True';
    if (!canParent) return [];
    const out: string[] = [];
    const queue = [vm];
    while (queue.length > 0) {
      const parent = queue.shift()!;
      for (const [name, d] of this.domains) {
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
  private withInherited(mutation: Mutation, before: Map<string, Map<string, PropertyValue>>): Mutation {
    const changes = [...mutation.changes];
    const undos: Array<() => void> = [];
    for (const [vm, values] of before) {
      const after = this.defaultedValues(vm);
      let moved = false;
      for (const [name, oldvalue] of values) {
        const newvalue = after.get(name) ?? null;
        if (newvalue === oldvalue) continue;
        changes.push({ type: 'property-reset', vm, name, newvalue, oldvalue });
        moved = true;
      }
      if (moved) undos.push(this.touch(vm, () => undefined));
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

  /** Bumps the revision of what `vm` names; the undo restores the data and bumps it again. */
  private touch(vm: string | null, restore: () => void): () => void {
    if (vm === null) {
      this.globalRevision++;
      return () => {
        restore();
        this.globalRevision++;
      };
    }
    const d = this.domain(vm);
    d.revision++;
    return () => {
      restore();
      d.revision++;
    };
  }

  /** After a change that can reroute traffic, no VM may reach itself through its netvms. */
  private checkNetworkAfter(vm: string | null, property: string, undo: () => void): void {
    if (property !== 'netvm' && property !== 'default_netvm') return;
    const starts = vm === null ? [...this.domains.keys()] : [vm];
    for (const start of starts) {
      const path: string[] = [];
      for (let hop: string | null = start; hop !== null; hop = this.netvmOf(hop)) {
        if (path.includes(hop)) {
          undo();
          throw new QubesError('NETVM_LOOP', `${property}: traffic would loop ${[...path.slice(path.indexOf(hop)), hop].join(' -> ')}`, {
            details: { loop: [...path.slice(path.indexOf(hop)), hop] },
          });
        }
        path.push(hop);
      }
    }
  }

  private netvmOf(vm: string): string | null {
    const d = this.domain(vm);
    return propertyDef(d.klass, 'netvm') === undefined ? null : (this.value(vm, 'netvm') as string | null);
  }

  // --- VMs -------------------------------------------------------------------------------------

  createDomain(klass: VmClass, spec: CreateDomainSpec): Mutation {
    if (klass === VmClass.AdminVM) throw new QubesError('VM_CLASS_INVALID', 'there is one AdminVM, dom0; it cannot be created');
    const problem = vmNameProblem(spec.name);
    if (problem !== null) throw new QubesError('VM_NAME_INVALID', `invalid VM name ${JSON.stringify(spec.name)}: ${problem}`);
    if (this.domains.has(spec.name)) throw new QubesError('VM_ALREADY_EXISTS', `a VM named ${spec.name} already exists`, { details: { vm: spec.name } });
    const label = this.label(spec.label);
    const qid = this.unusedQid();
    const d = newDomain(qid, klass, [
      ['qid', { text: String(qid) }],
      ['name', { text: spec.name }],
      ['uuid', { text: (spec.uuid ?? crypto.randomUUID()).toLowerCase() }],
      ['label', { ref: `label-${label.index}` }],
    ]);
    if (klass === VmClass.DispVM) d.props.set('dispid', { text: String(this.unusedDispid()) });
    this.domains.set(spec.name, d);
    this.qids.set(qid, spec.name);
    const undo = (): void => {
      this.domains.delete(spec.name);
      this.qids.delete(qid);
    };
    try {
      // Qubes stores the template explicitly, taking the default at creation.
      if (propertyDef(klass, 'template') !== undefined) {
        const template = spec.template ?? this.value(spec.name, 'template');
        if (template === null) {
          throw new QubesError('PROPERTY_VALUE_INVALID', `no template given, and ${klass === VmClass.DispVM ? 'default_dispvm' : 'default_template'} is not set`);
        }
        this.setProperty(spec.name, 'template', template);
      } else if (spec.template !== undefined) {
        throw new QubesError('TEMPLATE_CLASS_INVALID', `a ${klass} has no template`);
      }
      for (const [name, value] of Object.entries(spec.properties ?? {})) this.setProperty(spec.name, name, value);
    } catch (err) {
      undo();
      throw err;
    }
    return { changes: [{ type: 'domain-add', vm: spec.name, class: klass }], undo };
  }

  /** Who refers to `vm`: other VMs' properties and global properties, by their effective value. */
  usedBy(vm: string): UsedBy[] {
    const users: UsedBy[] = [];
    for (const [name, d] of this.domains) {
      if (name === vm) continue;
      for (const def of propertyDefs(d.klass)) {
        if (def.type === PropertyType.Vm && this.value(name, def.name) === vm) users.push({ vm: name, property: def.name });
      }
    }
    for (const def of propertyDefs(null)) {
      if (def.type === PropertyType.Vm && this.value(null, def.name) === vm) users.push({ vm: null, property: def.name });
    }
    return users;
  }

  removeDomain(vm: string): Mutation {
    const d = this.domain(vm);
    if (d.klass === VmClass.AdminVM) throw new QubesError('VM_CLASS_INVALID', 'dom0 cannot be removed');
    // As qubes/api/admin.py vm_remove: a package owns it, and removes it with the package.
    if (this.value(vm, 'installed_by_rpm') === true) {
      throw new QubesError('VM_IN_USE', `${vm} was installed by the package manager; remove its package instead`, { details: { usedBy: [], installedByRpm: true } });
    }
    const backendOf = [...this.domains].filter(([name, other]) => name !== vm && deviceBackends(other).includes(vm)).map(([name]) => name);
    if (backendOf.length > 0) {
      throw new QubesError('VM_IN_USE', `${vm} provides devices assigned to ${backendOf.join(', ')}`, {
        details: { usedBy: backendOf.map((name) => ({ vm: name, property: 'devices' })) },
      });
    }
    const users = this.usedBy(vm);
    if (users.length > 0) {
      const list = users.map((u) => (u.vm === null ? `global ${u.property}` : `${u.vm} (${u.property})`)).join(', ');
      throw new QubesError('VM_IN_USE', `${vm} is in use by ${list}`, { details: { usedBy: users } });
    }
    const order = [...this.domains.entries()];
    this.domains.delete(vm);
    this.qids.delete(d.qid);
    return {
      changes: [{ type: 'domain-delete', vm, class: d.klass }],
      undo: () => {
        this.domains.clear();
        for (const [name, domain] of order) this.domains.set(name, domain);
        this.qids.set(d.qid, vm);
      },
    };
  }

  private unusedQid(): number {
    for (let qid = 1; qid < MAX_QID; qid++) if (!this.qids.has(qid)) return qid;
    throw new QubesError('LIMIT_REACHED', `all ${MAX_QID} qids are in use`);
  }

  /** Random, as Qubes does, so that a dispid says nothing about the disposables before it. */
  private unusedDispid(): number {
    const used = new Set<number>();
    for (const d of this.domains.values()) if (d.klass === VmClass.DispVM) used.add(Number(d.props.get('dispid')?.text));
    if (used.size >= MAX_DISPID - 1) throw new QubesError('LIMIT_REACHED', `all ${MAX_DISPID} dispids are in use`);
    for (;;) {
      const candidate = 1 + Math.floor(Math.random() * (MAX_DISPID - 1));
      if (!used.has(candidate)) return candidate;
    }
  }

  // --- features and tags -----------------------------------------------------------------------

  setFeature(vm: string, feature: string, value: string): Mutation {
    const d = this.domain(vm);
    const before = d.features.get(feature);
    if (before === value) return NO_CHANGE;
    const undo = this.touch(vm, () => (before === undefined ? d.features.delete(feature) : d.features.set(feature, before)));
    d.features.set(feature, value);
    return { changes: [{ type: 'feature-set', vm, feature, value, oldvalue: before ?? null }], undo };
  }

  removeFeature(vm: string, feature: string): Mutation {
    const d = this.domain(vm);
    const before = d.features.get(feature);
    if (before === undefined) throw featureNotFound(vm, feature);
    const undo = this.touch(vm, () => d.features.set(feature, before));
    d.features.delete(feature);
    return { changes: [{ type: 'feature-delete', vm, feature }], undo };
  }

  feature(vm: string, feature: string): string {
    const value = this.domain(vm).features.get(feature);
    if (value === undefined) throw featureNotFound(vm, feature);
    return value;
  }

  /** The feature of the VM, else of the next VM along `via` (its template, its netvm). */
  featureVia(vm: string, feature: string, via: 'template' | 'netvm'): string {
    const seen = new Set<string>();
    for (let hop: string | null = vm; hop !== null && !seen.has(hop); hop = via === 'template' ? this.templateOf(hop) : this.netvmOf(hop)) {
      seen.add(hop);
      const value = this.domain(hop).features.get(feature);
      if (value !== undefined) return value;
    }
    throw featureNotFound(vm, feature);
  }

  // --- volume config and pools (the storage service's, kept here as qubes.xml holds them) ------

  /**
   * The VM's `<volume-config>`: one attribute map per `<volume>` (name, pool, vid, size, rw,
   * snap_on_start, ... as Qubes writes them, `True`/`False` for booleans); empty if it has none.
   */
  volumeConfig(vm: string): Record<string, string>[] {
    const config = this.domain(vm).volumeConfig;
    if (config === null) return [];
    const volumes = config.children.some((c) => 'raw' in c)
      ? parseXml(`<volume-config>${config.children.map((c) => ('raw' in c ? c.raw : '')).join('')}</volume-config>`, {
          path: `the volume config of ${vm}`,
          root: ['volume-config'],
          validated: true,
        })
      : config;
    return childElements(volumes, 'volume').map((v) => ({ ...v.attrs }));
  }

  /** Replaces the VM's volume config (the storage service's call); saved like any change. */
  setVolumeConfig(vm: string, volumes: readonly Readonly<Record<string, string>>[]): Mutation {
    const d = this.domain(vm);
    const before = d.volumeConfig;
    const undo = this.touch(vm, () => (d.volumeConfig = before));
    d.volumeConfig = volumes.length === 0 ? null : element('volume-config', {}, volumes.map((attrs) => element('volume', orderedVolumeAttrs(attrs))));
    return { changes: [{ type: 'volume-config-set', vm }], undo };
  }

  /** Replaces the pools (`<pools>`): one attribute map per pool, name and driver first. */
  setPools(pools: readonly Readonly<Record<string, string>>[]): Mutation {
    const before = this.pools;
    const undo = this.touch(null, () => (this.pools = before));
    this.pools = pools.map((attrs) => element('pool', { ...attrs }));
    return { changes: [{ type: 'pools-set' }], undo };
  }

  addTag(vm: string, tag: string): Mutation {
    const d = this.domain(vm);
    if (d.tags.has(tag)) return NO_CHANGE;
    const undo = this.touch(vm, () => d.tags.delete(tag));
    d.tags.add(tag);
    return { changes: [{ type: 'tag-add', vm, tag }], undo };
  }

  removeTag(vm: string, tag: string): Mutation {
    const d = this.domain(vm);
    if (!d.tags.has(tag)) throw new QubesError('TAG_NOT_FOUND', `${vm} has no tag ${tag}`, { details: { vm, tag } });
    const undo = this.touch(vm, () => d.tags.add(tag));
    d.tags.delete(tag);
    return { changes: [{ type: 'tag-delete', vm, tag }], undo };
  }

  // --- labels ----------------------------------------------------------------------------------

  createLabel(name: string, color: string): Mutation {
    for (const label of this.labels.values()) {
      if (label.name === name) throw new QubesError('LABEL_EXISTS', `a label named ${name} exists already`);
    }
    const index = Math.max(BUILTIN_LABEL_COUNT, ...this.labels.keys()) + 1;
    const undo = this.touch(null, () => this.labels.delete(index));
    this.labels.set(index, { index, color: color.toLowerCase(), name });
    return { changes: [{ type: 'label-add', label: name, color: color.toLowerCase(), index }], undo };
  }

  removeLabel(name: string): Mutation {
    const label = this.label(name);
    if (label.index <= BUILTIN_LABEL_COUNT) throw new QubesError('LABEL_IN_USE', `${name} is a built-in label`);
    const ref = `label-${label.index}`;
    const users = [...this.domains.entries()].filter(([, d]) => d.props.get('label')?.ref === ref).map(([n]) => n);
    if (users.length > 0) {
      throw new QubesError('LABEL_IN_USE', `${name} is the label of ${users.join(', ')}`, { details: { usedBy: users } });
    }
    const undo = this.touch(null, () => this.labels.set(label.index, label));
    this.labels.delete(label.index);
    return { changes: [{ type: 'label-remove', label: name }], undo };
  }

  // --- whole-store checks ----------------------------------------------------------------------

  /**
   * Reads every stored property as its type, and checks references: done once after a load,
   * so that a hand-edited qubes.xml with a typo stops the registry with a clear message.
   */
  checkLoaded(path: string): void {
    // Validators look at other VMs: they run once every value has been read.
    const pending: Array<() => void> = [];
    const check = (vm: string | null, stored: Map<string, StoredValue>, klass: VmClass | null): void => {
      for (const [name, value] of stored) {
        const def = propertyDef(klass, name);
        if (def === undefined || def.readOnly) continue; // kept verbatim, not interpreted
        try {
          const typed = this.fromStored(def, value);
          if (def.type === PropertyType.Vm && typed !== null && !this.domains.has(typed as string)) {
            throw new QubesError('PROPERTY_VALUE_INVALID', `${name}: no VM is named ${typed as string}`);
          }
          pending.push(() => {
            try {
              def.validate?.(typed, vm, this);
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
    check(null, this.globals, null);
    for (const [name, d] of this.domains) check(name, d.props, d.klass);
    this.checkRules(path);
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
  private checkRules(path: string): void {
    const broken = (reason: string): QubesError =>
      new QubesError('STORE_MALFORMED', `${path} is malformed: ${reason}; it was left untouched`, { details: { path } });
    for (const [name, d] of this.domains) {
      if (d.klass === VmClass.AdminVM) continue;
      const problem = vmNameProblem(name);
      if (problem !== null) throw broken(`${JSON.stringify(name)}: ${problem}`);
      for (const def of propertyDefs(d.klass)) {
        if (def.type !== PropertyType.Vm || def.readOnly) continue;
        const target = this.value(name, def.name);
        if (target === null) {
          if (!def.allowNone) throw broken(`${name}: ${def.name} names no VM, and its default is not set`);
          continue;
        }
        const klass = this.domain(target as string).klass;
        if (def.vmClasses !== undefined && !def.vmClasses.includes(klass)) throw broken(`${name}: ${def.name} ${target as string} is a ${klass}`);
        if (def.name === 'netvm' && this.value(target as string, 'provides_network') !== true) {
          throw broken(`${name}: netvm ${target as string} does not provide network`);
        }
      }
      const seen: string[] = [];
      for (let hop: string | null = name; hop !== null; hop = this.netvmOf(hop)) {
        if (seen.includes(hop)) throw broken(`netvm loop ${[...seen.slice(seen.indexOf(hop)), hop].join(' -> ')}`);
        seen.push(hop);
      }
    }
  }
}

function parseBool(def: PropertyDef, text: string, error?: (what: string) => QubesError): boolean {
  const word = text.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  throw error?.('True or False') ?? new QubesError('PROPERTY_TYPE_INVALID', `${def.name}: ${JSON.stringify(text)} is not True or False`);
}

/** The VMs whose devices `d` has assigned (backend-domain of its device assignments). */
export function deviceBackends(d: Domain): string[] {
  const backends: string[] = [];
  for (const devices of d.devices) {
    for (const child of devices.children) {
      if ('raw' in child) {
        // kept unparsed at load, and validated with the whole file then
        const parsed = parseXml(`<devices>${child.raw}</devices>`, { path: 'devices', root: ['devices'], validated: true });
        for (const device of childElements(parsed, 'device')) if (device.attrs['backend-domain']) backends.push(device.attrs['backend-domain']);
      } else if (isElement(child) && child.name === 'device' && child.attrs['backend-domain']) {
        backends.push(child.attrs['backend-domain']);
      }
    }
  }
  return backends;
}

function featureNotFound(vm: string, feature: string): QubesError {
  return new QubesError('FEATURE_NOT_FOUND', `${vm} has no feature ${feature}`, { details: { vm, feature } });
}

/** Qubes writes a volume's name, pool and vid first; the rest follow sorted, as lxml keeps them. */
function orderedVolumeAttrs(attrs: Readonly<Record<string, string>>): Record<string, string> {
  const { name, pool, vid, ...rest } = attrs;
  const ordered: Record<string, string> = {};
  if (name !== undefined) ordered['name'] = name;
  if (pool !== undefined) ordered['pool'] = pool;
  if (vid !== undefined) ordered['vid'] = vid;
  for (const key of Object.keys(rest).sort()) ordered[key] = rest[key]!;
  return ordered;
}
