import { describe, expect, it } from '@jest/globals';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isQubesError } from '@qubes-bus/contracts';
import { findBinary, requireBinary } from './binaries';

describe('finding programs', () => {
  it('finds an executable in the given directories and passes over a non-executable one', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'qubes-bus-bin-'));
    try {
      writeFileSync(path.join(dir, 'tini'), '#!/bin/sh\n');
      expect(findBinary('tini', [dir])).toBeNull();
      chmodSync(path.join(dir, 'tini'), 0o755);
      expect(findBinary('tini', ['', dir])).toBe(path.join(dir, 'tini'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['nats-server', 'nats-server'],
    ['libvirtd', 'libvirt-daemon-system'],
    ['virsh', 'libvirt-clients'],
    ['qemu-system-x86_64', 'qemu-system-x86'],
  ])('says which Debian package brings a missing %s (%s)', (program, pkg) => {
    let caught: unknown;
    try {
      requireBinary(program, 'for this test', []);
    } catch (err) {
      caught = err;
    }
    expect(isQubesError(caught, 'DEPENDENCY_MISSING')).toBe(true);
    expect((caught as Error).message).toBe(`${program} is not installed (needed for this test): install it with 'sudo apt-get install -y ${pkg}'`);
  });
});
