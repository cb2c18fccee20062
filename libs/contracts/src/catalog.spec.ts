import { describe, expect, it } from '@jest/globals';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { ALL_ENDPOINTS, ALL_EVENTS, CONTRACT_MODULES, isEndpoint, isEventDescriptor } from './catalog';
import * as contracts from './index';

/** Descriptors among a module's exports, families (`AdminVmProperty.Get`) included. */
function descriptorsOf(module: Record<string, unknown>): Array<[string, unknown]> {
  return Object.entries(module).flatMap(([name, value]): Array<[string, unknown]> => {
    if (isEndpoint(value) || isEventDescriptor(value)) return [[name, value]];
    if (typeof value !== 'object' || value === null) return [];
    return Object.entries(value)
      .filter(([, member]) => isEndpoint(member) || isEventDescriptor(member))
      .map(([member, d]) => [`${name}.${member}`, d]);
  });
}

describe('the contract catalog', () => {
  it('lists every endpoint and event the package exports', () => {
    const listed = new Set<unknown>([...ALL_ENDPOINTS, ...ALL_EVENTS]);
    const missing = descriptorsOf(contracts as Record<string, unknown>).filter(([, d]) => !listed.has(d)).map(([name]) => name);
    expect(missing).toEqual([]);
    expect(ALL_ENDPOINTS.length).toBeGreaterThan(40);
    expect(ALL_EVENTS.length).toBeGreaterThan(20);
  });

  it('reads every file of api/ that declares descriptors', async () => {
    const dir = path.join(__dirname, 'api');
    const unread: string[] = [];
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts'))) {
      const module = (await import(path.join(dir, file))) as Record<string, unknown>;
      if (descriptorsOf(module).length > 0 && !(path.basename(file, '.ts') in CONTRACT_MODULES)) unread.push(file);
    }
    expect(unread).toEqual([]);
  });

  it('finds the members of a family exported as one object', () => {
    expect(ALL_ENDPOINTS).toContain(contracts.AdminVmProperty.Set);
    expect(ALL_ENDPOINTS).toContain(contracts.AdminVmVolumeList);
    expect(ALL_EVENTS).toContain(contracts.DomainStart);
  });
});
