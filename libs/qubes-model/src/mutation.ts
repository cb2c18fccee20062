import type { PropertyValue, VmClass } from '@qubes-bus/contracts';
import type { Domain } from './domain';

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

export const NO_CHANGE: Mutation = { changes: [], undo: () => undefined };

/** Where revisions are kept: one per VM, one for the global properties and labels. */
export interface Revisions {
  globalRevision: number;
  domain(name: string): Domain;
}

/** Bumps the revision of what `vm` names; the undo restores the data and bumps it again. */
export function touch(store: Revisions, vm: string | null, restore: () => void): () => void {
  if (vm === null) {
    store.globalRevision++;
    return () => {
      restore();
      store.globalRevision++;
    };
  }
  const d = store.domain(vm);
  d.revision++;
  return () => {
    restore();
    d.revision++;
  };
}
