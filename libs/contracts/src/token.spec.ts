import { describe, expect, it } from '@jest/globals';
import { decodeToken, encodeToken, isValidVmName, token, vmNameFromToken } from './token';
import { isQubesError } from './errors';

const SUBJECT_TOKEN = /^[A-Za-z0-9_=-]+$/;

// Every valid Qubes VM name: a letter, then letters, digits, _ . - up to 31 characters.
const validNames = [
  'dom0',
  'work',
  'sys-net',
  'sys-firewall',
  'my.work',
  'a',
  'A.b_c-d.9',
  'debian-12-xfce',
  'fedora-40.minimal',
  'x'.repeat(31),
  'a.' + 'b'.repeat(29),
  'disp1234',
  'Work_VM',
  'a..b',
];

const invalidNames: Array<[string, string]> = [
  ['', 'empty'],
  ['1work', 'starts with a digit'],
  ['.hidden', 'starts with a dot'],
  ['-x', 'starts with a hyphen'],
  ['_x', 'starts with an underscore'],
  ['x'.repeat(32), 'longer than 31 characters'],
  ['my work', 'holds a space'],
  ['wörk', 'holds a non-ASCII letter'],
  ['a>b', 'holds a NATS wildcard'],
  ['a*b', 'holds a NATS wildcard'],
  ['a=b', 'holds the escape character'],
  ['lost+found', 'holds a plus'],
  ['none', 'is reserved'],
  ['default', 'is reserved'],
  ['Domain-0', 'is reserved'],
  ['work-dm', "ends with '-dm'"],
];

describe('token()', () => {
  it.each(validNames)('round-trips the valid VM name %j through a single subject token', (name) => {
    const encoded = token(name);
    expect(encoded).toMatch(SUBJECT_TOKEN);
    expect(encoded).not.toContain('.');
    expect(vmNameFromToken(encoded)).toBe(name);
  });

  it('encodes dots quoted-printable style, as DESIGN.md §3 shows', () => {
    expect(token('my.work')).toBe('my=2Ework');
    expect(token('sys-net')).toBe('sys-net');
  });

  it.each(invalidNames)('rejects %j (%s) with VM_NAME_INVALID', (name) => {
    expect(isValidVmName(name)).toBe(false);
    let caught: unknown;
    try {
      token(name);
    } catch (err) {
      caught = err;
    }
    expect(isQubesError(caught, 'VM_NAME_INVALID')).toBe(true);
    expect((caught as Error).message).toContain(JSON.stringify(name));
  });

  it('gives distinct VM names distinct tokens', () => {
    const tokens = new Set(validNames.map(token));
    expect(tokens.size).toBe(validNames.length);
    expect(token('a.b')).not.toBe(token('a_b'));
    expect(token('a.b')).not.toBe(token('a-b'));
  });
});

describe('encodeToken()', () => {
  it.each(['a b', 'sda1', 'sys-usb:2-1', 'ünïcode ✓', '=2E', '*', '>', 'a.b.c'])(
    'round-trips the arbitrary value %j',
    (value) => {
      const encoded = encodeToken(value);
      expect(encoded).toMatch(SUBJECT_TOKEN);
      expect(decodeToken(encoded)).toBe(value);
    },
  );

  it('refuses an empty value and undecodable tokens', () => {
    expect(() => encodeToken('')).toThrow('cannot be empty');
    expect(() => decodeToken('a=2')).toThrow('not an encoded subject token');
    expect(() => decodeToken('a.b')).toThrow('not an encoded subject token');
    expect(() => decodeToken('=FF')).toThrow('does not decode to UTF-8');
  });
});
