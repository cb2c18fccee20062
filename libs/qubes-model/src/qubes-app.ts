import { QubesError, VmClass, type PropertyEntry, type PropertyValue } from '@qubes-bus/contracts';
import type { Domain, Extras, StoredValue } from './domain';
import { addTag, featureOf, featureVia, removeFeature, removeTag, setFeature } from './features-tags';
import { createLabel, removeLabel, type Label } from './labels';
import type { Mutation } from './mutation';
import { fromStored } from './property-codec';
import { resetProperty, setProperty, storedProperties } from './property-changes';
import { propertyDef, propertyDefs, type PropertyDef, type PropertyScope } from './property-table';
import { checkLoaded } from './store-checks';
import { setPools, setVolumeConfig, volumeConfig } from './storage-config';
import { createDomain, removeDomain, usedBy, type CreateDomainSpec, type UsedBy } from './vm-collection';
import type { XmlElement, XmlNode } from './xml-tree';

/**
 * The whole of qubes.xml in memory: labels, pools, global properties and VMs, with Qubes'
 * rules for reading and changing them. Pure: no files, no clock but the revision epoch.
 *
 * It holds the state and answers lookups; each group of changes lives in its own module
 * (property-changes, vm-collection, features-tags, storage-config, labels, store-checks), which
 * the methods here call with the state they need.
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

  private effective(vm: string | null, def: PropertyDef): { value: PropertyValue; isDefault: boolean } {
    const stored = def.readOnly ? undefined : storedProperties(this, vm).get(def.name);
    if (stored !== undefined) return { value: this.fromStored(def, stored), isDefault: false };
    const value = def.defaultValue?.(vm, this);
    return { value: value === undefined ? null : value, isDefault: true };
  }

  /** A stored value as its type; throws when the file holds something the type cannot be. */
  fromStored(def: PropertyDef, stored: StoredValue): PropertyValue {
    return fromStored(this, def, stored);
  }

  /** Sets a property from an untrusted value, with the events of the defaults that follow it. */
  setProperty(vm: string | null, property: string, untrusted: PropertyValue): Mutation {
    return setProperty(this, vm, property, untrusted);
  }

  resetProperty(vm: string | null, property: string): Mutation {
    return resetProperty(this, vm, property);
  }

  // --- VMs -------------------------------------------------------------------------------------

  createDomain(klass: VmClass, spec: CreateDomainSpec): Mutation {
    return createDomain(this, this.qids, klass, spec);
  }

  /** Who refers to `vm`: other VMs' properties and global properties, by their effective value. */
  usedBy(vm: string): UsedBy[] {
    return usedBy(this, vm);
  }

  removeDomain(vm: string): Mutation {
    return removeDomain(this, this.qids, vm);
  }

  // --- features and tags -----------------------------------------------------------------------

  setFeature(vm: string, feature: string, value: string): Mutation {
    return setFeature(this, vm, feature, value);
  }

  removeFeature(vm: string, feature: string): Mutation {
    return removeFeature(this, vm, feature);
  }

  feature(vm: string, feature: string): string {
    return featureOf(this, vm, feature);
  }

  /** The feature of the VM, else of the next VM along `via` (its template, its netvm). */
  featureVia(vm: string, feature: string, via: 'template' | 'netvm'): string {
    return featureVia(this, vm, feature, via);
  }

  addTag(vm: string, tag: string): Mutation {
    return addTag(this, vm, tag);
  }

  removeTag(vm: string, tag: string): Mutation {
    return removeTag(this, vm, tag);
  }

  // --- volume config and pools (the storage service's, kept here as qubes.xml holds them) ------

  /** The VM's `<volume-config>`: one attribute map per `<volume>`; empty if it has none. */
  volumeConfig(vm: string): Record<string, string>[] {
    return volumeConfig(this, vm);
  }

  /** Replaces the VM's volume config (the storage service's call); saved like any change. */
  setVolumeConfig(vm: string, volumes: readonly Readonly<Record<string, string>>[]): Mutation {
    return setVolumeConfig(this, vm, volumes);
  }

  /** Replaces the pools (`<pools>`): one attribute map per pool, name and driver first. */
  setPools(pools: readonly Readonly<Record<string, string>>[]): Mutation {
    return setPools(this, pools);
  }

  // --- labels ----------------------------------------------------------------------------------

  createLabel(name: string, color: string): Mutation {
    return createLabel(this, name, color);
  }

  removeLabel(name: string): Mutation {
    return removeLabel(this, name);
  }

  // --- whole-store checks ----------------------------------------------------------------------

  /** Reads every stored property as its type and checks references and Qubes' rules, once after a load. */
  checkLoaded(path: string): void {
    checkLoaded(this, path);
  }
}
