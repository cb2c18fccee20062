import { QubesError } from '@qubes-bus/contracts';
import { NO_CHANGE, touch, type Mutation } from './mutation';
import { netvmOf } from './netvm-chain';
import type { QubesApp } from './qubes-app';

export function setFeature(app: QubesApp, vm: string, feature: string, value: string): Mutation {
  const d = app.domain(vm);
  const before = d.features.get(feature);
  if (before === value) return NO_CHANGE;
  const undo = touch(app, vm, () => (before === undefined ? d.features.delete(feature) : d.features.set(feature, before)));
  d.features.set(feature, value);
  return { changes: [{ type: 'feature-set', vm, feature, value, oldvalue: before ?? null }], undo };
}

export function removeFeature(app: QubesApp, vm: string, feature: string): Mutation {
  const d = app.domain(vm);
  const before = d.features.get(feature);
  if (before === undefined) throw featureNotFound(vm, feature);
  const undo = touch(app, vm, () => d.features.set(feature, before));
  d.features.delete(feature);
  return { changes: [{ type: 'feature-delete', vm, feature }], undo };
}

export function featureOf(app: QubesApp, vm: string, feature: string): string {
  const value = app.domain(vm).features.get(feature);
  if (value === undefined) throw featureNotFound(vm, feature);
  return value;
}

/** The feature of the VM, else of the next VM along `via` (its template, its netvm). */
export function featureVia(app: QubesApp, vm: string, feature: string, via: 'template' | 'netvm'): string {
  const seen = new Set<string>();
  for (let hop: string | null = vm; hop !== null && !seen.has(hop); hop = via === 'template' ? app.templateOf(hop) : netvmOf(app, hop)) {
    seen.add(hop);
    const value = app.domain(hop).features.get(feature);
    if (value !== undefined) return value;
  }
  throw featureNotFound(vm, feature);
}

export function addTag(app: QubesApp, vm: string, tag: string): Mutation {
  const d = app.domain(vm);
  if (d.tags.has(tag)) return NO_CHANGE;
  const undo = touch(app, vm, () => d.tags.delete(tag));
  d.tags.add(tag);
  return { changes: [{ type: 'tag-add', vm, tag }], undo };
}

export function removeTag(app: QubesApp, vm: string, tag: string): Mutation {
  const d = app.domain(vm);
  if (!d.tags.has(tag)) throw new QubesError('TAG_NOT_FOUND', `${vm} has no tag ${tag}`, { details: { vm, tag } });
  const undo = touch(app, vm, () => d.tags.add(tag));
  d.tags.delete(tag);
  return { changes: [{ type: 'tag-delete', vm, tag }], undo };
}

function featureNotFound(vm: string, feature: string): QubesError {
  return new QubesError('FEATURE_NOT_FOUND', `${vm} has no feature ${feature}`, { details: { vm, feature } });
}
