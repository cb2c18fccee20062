import { afterAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { jetstreamManager, jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { startLibvirtd, startNats, tmpDataDir } from '../src';

function virsh(uri: string, ...args: string[]): string {
  return execFileSync('virsh', ['-c', uri, ...args], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

const scratch = tmpDataDir();
afterAll(() => scratch.remove());

/** A domain that needs no disk and no OS: it starts in well under a second under TCG. */
function disklessDomain(name: string): string {
  const file = path.join(scratch.path, `${name}.xml`);
  writeFileSync(
    file,
    `<domain type='qemu'><name>${name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
      <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
      <devices><emulator>/usr/bin/qemu-system-x86_64</emulator><controller type='scsi' model='virtio-scsi'/></devices>
    </domain>`,
  );
  return file;
}

describe('startNats()', () => {
  it('restarts on the same URL with the same JetStream store', async () => {
    const nats = await startNats();
    const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'KEEP', subjects: ['keep.>'] });
      await jetstream(nc).publish('keep.one', 'survives');
      const url = nats.url;
      const reconnected = (async () => {
        for await (const status of nc.status()) if (status.type === 'reconnect') return;
      })();
      await nats.restart();
      expect(nats.url).toBe(url);
      await reconnected; // the same URL: the client found the server again by itself
      const after = await jsm.streams.getMessage('KEEP', { seq: 1 });
      expect(after?.string()).toBe('survives');
    } finally {
      await nc.close();
      await nats.stop();
    }
  });
});

describe('startLibvirtd()', () => {
  it('runs a private test-driver daemon whose state lasts between connections', async () => {
    const libvirtd = await startLibvirtd({ driver: 'test' });
    try {
      expect(libvirtd.uri).toMatch(/^test\+unix:\/\/\/default\?socket=/);
      virsh(libvirtd.uri, 'define', disklessDomain('qb-fixture-test'));
      virsh(libvirtd.uri, 'start', 'qb-fixture-test');
      expect(virsh(libvirtd.uri, 'domstate', 'qb-fixture-test').trim()).toBe('running');
    } finally {
      await libvirtd.stop();
    }
    expect(() => virsh(libvirtd.uri, 'list')).toThrow();
  });

  it('shares one QEMU-driver daemon between users and runs a real disk-less domain', async () => {
    const first = await startLibvirtd({ driver: 'qemu' });
    const second = await startLibvirtd({ driver: 'qemu' });
    const name = `qb-fixture-${process.pid}`;
    try {
      expect(second.uri).toBe(first.uri);
      virsh(first.uri, 'create', disklessDomain(name)); // transient: gone once destroyed
      await first.stop();
      expect(virsh(second.uri, 'list', '--name').split('\n')).toContain(name);
      const qemuPid = Number(readFileSync(`/run/libvirt/qemu/${name}.pid`, 'utf8'));
      expect(readFileSync(`/proc/${qemuPid}/cmdline`, 'utf8')).toContain('qemu-system-x86_64');
      virsh(second.uri, 'destroy', name);
      expect(virsh(second.uri, 'list', '--all', '--name')).not.toContain(name);
    } finally {
      await second.stop();
    }
  }, 120_000);
});
