import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { QubesError } from '@qubes-bus/contracts';
import debianPackages from '../debian-packages.json';

/**
 * The Debian package that ships each program qubes-bus runs. Plain JSON, because `npm start`
 * reads it before anything is installed or built.
 */
export const DEBIAN_PACKAGE: Readonly<Record<string, string>> = debianPackages;

/** Daemons live in sbin, which a non-root PATH often lacks. */
const EXTRA_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

export function findBinary(name: string, dirs = [...(process.env['PATH'] ?? '').split(path.delimiter), ...EXTRA_DIRS]): string | null {
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** The path of `name`, or DEPENDENCY_MISSING naming the Debian package to install. */
export function requireBinary(name: string, purpose: string, dirs?: string[]): string {
  const found = findBinary(name, dirs);
  if (found !== null) return found;
  const pkg = DEBIAN_PACKAGE[name] ?? name;
  throw new QubesError(
    'DEPENDENCY_MISSING',
    `${name} is not installed (needed ${purpose}): install it with 'sudo apt-get install -y ${pkg}'`,
    { details: { program: name, package: pkg } },
  );
}
