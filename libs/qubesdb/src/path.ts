import { decodeToken, encodeToken, QUBESDB_BUCKET, QubesError, token } from '@qubes-bus/contracts';

/** QubesDB's path characters (qubesdb daemon verify_path); `.` is encoded in the key. */
const PATH = /^\/(?:[A-Za-z0-9_.:@+-]+\/)*[A-Za-z0-9_.:@+-]*$/;

/**
 * A QubesDB path (`/qubes-service/meminfo-writer`), checked: absolute, at most 64 characters,
 * QubesDB's characters only. A path ending in `/` names a directory (for list, multiread, rm
 * and watch).
 */
export function checkPath(untrustedPath: string): string {
  if (untrustedPath.length === 0 || untrustedPath.length >= QUBESDB_BUCKET.maxPathLength || !PATH.test(untrustedPath) || untrustedPath.includes('//')) {
    throw new QubesError('BAD_REQUEST', `${JSON.stringify(untrustedPath)} is not a QubesDB path: /name/of/key, shorter than ${QUBESDB_BUCKET.maxPathLength} characters of A-Z a-z 0-9 _ . : @ + -`, {
      details: { field: 'path' },
    });
  }
  return untrustedPath;
}

export function isDirectory(path: string): boolean {
  return path.endsWith('/');
}

/** The session key of a VM: present while it runs. */
export function sessionKey(vm: string): string {
  return token(vm);
}

/** The KV key of a path (`/a/b.c` of work → `work.a.b=2Ec`); a directory gives its wildcard. */
export function keyOf(vm: string, path: string): string {
  const segments = path.split('/').filter((s) => s.length > 0);
  const base = [token(vm), ...segments.map(encodeToken)].join('.');
  return isDirectory(path) ? `${base}.>` : base;
}

/** The path of a KV key of a VM. */
export function pathOf(key: string): string {
  const [, ...segments] = key.split('.');
  return `/${segments.map(decodeToken).join('/')}`;
}
