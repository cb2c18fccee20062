import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectBus, type Bus } from '@qubes-bus/bus';
import { captureLog, rejectionOf, startNats, type TestNats } from '@qubes-bus/testing';
import { QubesDb, type QubesDbChange } from '../src';

let nats: TestNats;
let bus: Bus;
let db: QubesDb;

const session = { uuid: '6b1f0c1e-0000-4000-8000-000000000001', since: '2026-11-27T00:00:00.000Z' };

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

beforeAll(async () => {
  nats = await startNats();
  bus = await connectBus({ url: nats.url, name: 'qubesdb-test', log: captureLog('qubesdb-test').log, mode: 'service' });
  db = await QubesDb.open(bus.nc);
});

afterAll(async () => {
  await bus?.close();
  await nats?.stop();
});

describe('QubesDB on JetStream KV', () => {
  it('holds a running VM’s keys, lists and reads directories, and forgets everything when the VM stops', async () => {
    await db.connect('work', session, new Map([
      ['/name', 'work'],
      ['/qubes-ip', '10.137.0.7'],
      ['/qubes-service/meminfo-writer', '1'],
      ['/qubes-service/cups.v2', '0'],
    ]));
    const work = db.vm('work');
    expect(await work.read('/name')).toBe('work');
    expect(await work.read('/qubes-gateway')).toBeNull();
    expect(await work.list('/qubes-service/')).toEqual(['/qubes-service/cups.v2', '/qubes-service/meminfo-writer']);
    await work.write('/qubes-service/meminfo-writer', '0');
    expect(Object.fromEntries(await work.multiread('/qubes-service/'))).toEqual({ '/qubes-service/cups.v2': '0', '/qubes-service/meminfo-writer': '0' });
    await work.rm('/qubes-service/');
    expect(await work.list('/')).toEqual(['/name', '/qubes-ip']);
    expect(await db.session('work')).toEqual(session);
    expect(await db.connectedVms()).toContain('work');

    await db.disconnect('work');
    for (const call of [work.read('/name'), work.write('/x', '1'), work.list('/')]) {
      const err = await rejectionOf(call);
      expect(err.code).toBe('QUBESDB_DISCONNECTED');
      expect(err.message).toBe('work is not running: its QubesDB exists only while it runs');
    }
    // A new run starts from a clean database, whatever the previous one wrote.
    await db.connect('work', session, new Map([['/name', 'work']]));
    expect(await work.list('/')).toEqual(['/name']);
    await db.disconnect('work');
  });

  it('keeps one VM’s keys apart from another’s, even when one name is a prefix of the other', async () => {
    await db.connect('a', session, new Map([['/k', 'of a']]));
    await db.connect('a.b', session, new Map([['/k', 'of a.b']]));
    expect(await db.vm('a').read('/k')).toBe('of a');
    expect(await db.vm('a.b').read('/k')).toBe('of a.b');
    await db.disconnect('a');
    expect(await db.vm('a.b').read('/k')).toBe('of a.b');
    await db.disconnect('a.b');
  });

  it('refuses a malformed path or an oversized value, naming it', async () => {
    await db.connect('work', session, new Map());
    const work = db.vm('work');
    for (const bad of ['relative', '/a//b', '/a b', `/${'x'.repeat(64)}`, '/a/../b\u0000']) {
      expect((await rejectionOf(work.read(bad))).code).toBe('BAD_REQUEST');
    }
    const big = await rejectionOf(work.write('/big', 'x'.repeat(3073)));
    expect(big.code).toBe('BAD_REQUEST');
    expect(big.message).toBe('the value for /big is 3073 bytes; QubesDB holds at most 3072');
    await db.disconnect('work');
  });

  it('tells a watcher of every write and removal, and goes on watching across a restart of nats-server', async () => {
    const seen: QubesDbChange[] = [];
    const watch = db.vm('net').watch('/qubes-firewall/', (change) => seen.push(change));
    await sleep(200); // the watch is in place
    await db.connect('net', session, new Map([['/qubes-firewall/10.137.0.7/0000', 'action=accept']]));
    await until('the first change', () => seen.length >= 1);
    await nats.restart();
    const net = db.vm('net');
    await net.write('/qubes-firewall/10.137.0.7/0001', 'action=drop');
    await net.rm('/qubes-firewall/10.137.0.7/0000');
    await net.write('/unwatched', 'x');
    await until('the changes after the restart', () => seen.length >= 3, 20_000);
    await watch.stop();
    expect(seen).toEqual([
      { path: '/qubes-firewall/10.137.0.7/0000', value: 'action=accept' },
      { path: '/qubes-firewall/10.137.0.7/0001', value: 'action=drop' },
      { path: '/qubes-firewall/10.137.0.7/0000', value: null },
    ]);
    await db.disconnect('net');
  }, 60_000);
});
