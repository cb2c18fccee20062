import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openKvmToItsGroup } from './libvirtd';

// Real device nodes (mknod, as root: the QEMU-driver fixture runs as root too), in a scratch
// directory: /dev/kvm itself is left alone.
describe('openKvmToItsGroup', () => {
  let dir: string;
  const groups = (text: string): string => {
    const file = path.join(dir, 'group');
    writeFileSync(file, text);
    return file;
  };
  const device = (mode: string): string => {
    const node = path.join(dir, `kvm-${mode}`);
    execFileSync('mknod', ['-m', mode, node, 'c', '10', '232']);
    return node;
  };
  const modeOf = (node: string): { mode: number; gid: number } => {
    const stat = statSync(node);
    return { mode: stat.mode & 0o777, gid: stat.gid };
  };

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'qubes-bus-kvm-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('gives a root-only device to the kvm group, mode 0660, as udev would', () => {
    const node = device('0600');
    expect(openKvmToItsGroup(node, groups('root:x:0:\nkvm:x:4242:\nlibvirt-qemu:x:64055:\n'))).toBe(true);
    expect(modeOf(node)).toEqual({ mode: 0o660, gid: 4242 });
  });

  it('leaves a device that udev or an administrator already opened, a host without a kvm group, and a missing device', () => {
    const opened = device('0666');
    expect(openKvmToItsGroup(opened, groups('kvm:x:4242:\n'))).toBe(false);
    expect(modeOf(opened)).toEqual({ mode: 0o666, gid: 0 });
    const closed = device('0600');
    expect(openKvmToItsGroup(closed, groups('root:x:0:\n'))).toBe(false);
    expect(modeOf(closed)).toEqual({ mode: 0o600, gid: 0 });
    expect(openKvmToItsGroup(path.join(dir, 'absent'), groups('kvm:x:4242:\n'))).toBe(false);
  });

  it('leaves a plain file alone', () => {
    const file = path.join(dir, 'not-a-device');
    writeFileSync(file, '', { mode: 0o600 });
    expect(openKvmToItsGroup(file, groups('kvm:x:4242:\n'))).toBe(false);
    expect(modeOf(file).mode).toBe(0o600);
  });
});
