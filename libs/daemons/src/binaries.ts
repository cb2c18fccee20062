import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { QubesError } from '@qubes-bus/contracts';

/** The Debian package that ships each program qubes-bus runs. */
export const DEBIAN_PACKAGE: Readonly<Record<string, string>> = {
  'nats-server': 'nats-server',
  libvirtd: 'libvirt-daemon-system',
  virtlogd: 'libvirt-daemon-system',
  virsh: 'libvirt-clients',
  'virt-xml-validate': 'libvirt-clients',
  tini: 'tini',
  'qemu-system-x86_64': 'qemu-system-x86',
};

/** Daemons live in sbin, which a non-root PATH often lacks. */
const EXTRA_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

export function findBinary(name: string): string | null {
  const dirs = [...(process.env['PATH'] ?? '').split(path.delimiter), ...EXTRA_DIRS];
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
export function requireBinary(name: string, purpose: string): string {
  const found = findBinary(name);
  if (found !== null) return found;
  const pkg = DEBIAN_PACKAGE[name] ?? name;
  throw new QubesError(
    'DEPENDENCY_MISSING',
    `${name} is not installed (needed ${purpose}): install it with 'sudo apt-get install -y ${pkg}'`,
    { details: { program: name, package: pkg } },
  );
}
