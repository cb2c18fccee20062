import * as events from './api/events';
import * as feature from './api/feature';
import * as label from './api/label';
import * as lifecycle from './api/lifecycle';
import * as property from './api/property';
import * as storage from './api/storage';
import * as tag from './api/tag';
import * as vm from './api/vm';
import type { Endpoint, EventDescriptor } from './descriptors';

/**
 * Every module of the public contract. Its endpoints and events are found in them, not listed
 * by hand; catalog.spec.ts fails on a file of api/ missing here, and on any descriptor the
 * package exports that the lists below do not hold.
 */
export const CONTRACT_MODULES: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  events,
  feature,
  label,
  lifecycle,
  property,
  storage,
  tag,
  vm,
};

export function isEndpoint(value: unknown): value is Endpoint {
  const v = value as Partial<Endpoint> | null;
  return typeof v === 'object' && v !== null && (v.kind === 'api' || v.kind === 'internal') && typeof v.pattern === 'string';
}

export function isEventDescriptor(value: unknown): value is EventDescriptor {
  const v = value as Partial<EventDescriptor> | null;
  return typeof v === 'object' && v !== null && typeof v.qubesName === 'function' && typeof v.pattern === 'function';
}

/** A module's exports, and the members of a family exported as one object (`AdminVmProperty.Get`, ...). */
function exported(module: Readonly<Record<string, unknown>>): unknown[] {
  return Object.values(module).flatMap((value) =>
    isEndpoint(value) || isEventDescriptor(value) || typeof value !== 'object' || value === null ? [value] : Object.values(value),
  );
}

const everything = Object.values(CONTRACT_MODULES).flatMap(exported);

/** Every endpoint and event of the public contract, for listings and for the contract's tests. */
export const ALL_ENDPOINTS: readonly Endpoint[] = [...new Set(everything.filter(isEndpoint))];
export const ALL_EVENTS: readonly EventDescriptor[] = [...new Set(everything.filter(isEventDescriptor))];
