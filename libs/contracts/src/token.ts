import { QubesError } from './errors';

/**
 * Subject tokens (DESIGN.md §3). A VM name or any other variable enters a NATS subject or a
 * KV key through these functions only: bytes outside `[A-Za-z0-9_-]` become `=XX` (upper-case
 * hex of each UTF-8 byte, quoted-printable style), so `my.work` becomes `my=2Ework`. `=` is
 * itself outside the safe set, so decoding is unambiguous.
 */
const SAFE_BYTE = /^[A-Za-z0-9_-]$/;
const ENCODED_TOKEN = /^(?:[A-Za-z0-9_-]|=[0-9A-F]{2})+$/;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Qubes' limit (qubes/vm/__init__.py validate_name): names are shorter than 32 characters. */
export const VM_NAME_MAX_LENGTH = 31;

const VM_NAME_CHARS = /^[a-zA-Z][a-zA-Z0-9_.-]*$/;
const RESERVED_VM_NAMES: ReadonlySet<string> = new Set(['none', 'default', 'Domain-0']);

/** Why `untrustedName` is not a valid Qubes VM name, or `null` when it is one. */
export function vmNameProblem(untrustedName: unknown): string | null {
  if (typeof untrustedName !== 'string') return 'a VM name must be a string';
  if (untrustedName.length === 0) return 'a VM name cannot be empty';
  if (untrustedName.length > VM_NAME_MAX_LENGTH) {
    return `a VM name must be shorter than ${VM_NAME_MAX_LENGTH + 1} characters`;
  }
  if (/^[0-9_.-]/.test(untrustedName)) {
    return 'a VM name cannot start with a hyphen, underscore, dot or digit';
  }
  if (!VM_NAME_CHARS.test(untrustedName)) {
    return 'a VM name may hold only letters, digits, and the characters _ . -';
  }
  if (RESERVED_VM_NAMES.has(untrustedName)) return `'${untrustedName}' is a reserved name`;
  if (untrustedName.endsWith('-dm')) return "a VM name cannot end with '-dm'";
  return null;
}

export function isValidVmName(untrustedName: unknown): untrustedName is string {
  return vmNameProblem(untrustedName) === null;
}

/** Encodes any non-empty string as one subject token. */
export function encodeToken(value: string): string {
  if (value.length === 0) throw new QubesError('BAD_REQUEST', 'a subject token cannot be empty');
  let out = '';
  for (const char of value) {
    if (SAFE_BYTE.test(char)) {
      out += char;
      continue;
    }
    for (const byte of utf8.encode(char)) {
      out += '=' + byte.toString(16).toUpperCase().padStart(2, '0');
    }
  }
  return out;
}

/** Decodes a token made by `encodeToken`; for display only, never for routing. */
export function decodeToken(encoded: string): string {
  if (!ENCODED_TOKEN.test(encoded)) {
    throw new QubesError('BAD_REQUEST', `'${encoded}' is not an encoded subject token`);
  }
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    if (encoded[i] === '=') {
      bytes.push(parseInt(encoded.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(encoded.charCodeAt(i));
    }
  }
  try {
    return strictUtf8.decode(Uint8Array.from(bytes));
  } catch {
    throw new QubesError('BAD_REQUEST', `'${encoded}' does not decode to UTF-8 text`);
  }
}

/**
 * The subject token of a VM: validates the name by Qubes' rules, then encodes it.
 * Throws `VM_NAME_INVALID` for anything that is not a VM name.
 */
export function token(vmName: string): string {
  const known = tokenOf.get(vmName);
  if (known !== undefined) return known;
  const problem = vmNameProblem(vmName);
  if (problem !== null) {
    throw new QubesError('VM_NAME_INVALID', `invalid VM name ${JSON.stringify(vmName)}: ${problem}`);
  }
  return remember(tokenOf, vmName, encodeToken(vmName));
}

/** The VM name inside a VM token; throws `VM_NAME_INVALID` if the token holds no VM name. */
export function vmNameFromToken(encoded: string): string {
  const known = nameOf.get(encoded);
  if (known !== undefined) return known;
  const name = decodeToken(encoded);
  const problem = vmNameProblem(name);
  if (problem !== null) {
    throw new QubesError('VM_NAME_INVALID', `invalid VM name ${JSON.stringify(name)}: ${problem}`);
  }
  return remember(nameOf, encoded, name);
}

/*
 * Every request names its destination VM, as a name on the calling side and as a token on the
 * serving side: the few VMs a host has are validated and coded once each, not at every call.
 * Only valid names are kept, and at most CACHED of them (then the cache starts afresh), so a
 * caller sending many made-up names costs memory for none of them.
 */
const CACHED = 4096;
const tokenOf = new Map<string, string>();
const nameOf = new Map<string, string>();

function remember(cache: Map<string, string>, key: string, value: string): string {
  if (cache.size >= CACHED) cache.clear();
  cache.set(key, value);
  return value;
}
