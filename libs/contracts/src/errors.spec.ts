import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ERROR_CATALOG, QubesError } from './errors';
import { ALL_ENDPOINTS } from './catalog';

const DOC = path.join(__dirname, '../../../docs/errors.md');

/** Rows of the catalog table in docs/errors.md: | `CODE` | status | kind | meaning | */
function documentedCodes(): Map<string, { status: number; kind: string }> {
  const rows = new Map<string, { status: number; kind: string }>();
  for (const line of readFileSync(DOC, 'utf8').split('\n')) {
    const m = /^\|\s*`([A-Z_]+)`\s*\|\s*(\d+)\s*\|\s*([a-z-]+)\s*\|/.exec(line);
    if (m) rows.set(m[1]!, { status: Number(m[2]), kind: m[3]! });
  }
  return rows;
}

describe('error catalog', () => {
  it('documents every code in docs/errors.md with its status and kind, and nothing else', () => {
    const documented = documentedCodes();
    const catalog = Object.fromEntries(
      Object.entries(ERROR_CATALOG).map(([code, { status, kind }]) => [code, { status, kind }]),
    );
    expect(Object.fromEntries(documented)).toEqual(catalog);
  });

  it('lets endpoints declare only codes from the catalog', () => {
    for (const endpoint of ALL_ENDPOINTS) {
      for (const code of endpoint.errors) expect(Object.keys(ERROR_CATALOG)).toContain(code);
    }
  });

  it('carries code, details and cause, and serialises to the wire body', () => {
    const cause = new Error('ENOENT');
    const err = new QubesError('VM_NOT_FOUND', 'no such domain: work', { details: { vm: 'work' }, cause });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('QubesError');
    expect(err.status).toBe(404);
    expect(err.kind).toBe('user');
    expect(err.cause).toBe(cause);
    expect(err.toBody()).toEqual({ code: 'VM_NOT_FOUND', message: 'no such domain: work', details: { vm: 'work' } });
  });
});
