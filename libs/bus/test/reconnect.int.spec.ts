import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import { defineApi, defineEvent, DestScope, EVENT_STREAM, ServiceName } from '@qubes-bus/contracts';
import { captureLog, collectEvents, startNats, type TestNats } from '@qubes-bus/testing';
import { setTimeout as sleep } from 'node:timers/promises';
import * as z from 'zod/mini';
import { connectBus, type Bus, type BusService } from '../src';

const Ping = defineApi({
  method: 'test.Ping',
  service: ServiceName.VmRegistry,
  scope: DestScope.Dom0,
  summary: 'ping',
  reply: z.literal('pong'),
  errors: [],
});
const Tick = defineEvent({
  name: 'test-tick',
  scope: 'vm',
  summary: 'numbered test event',
  fields: z.object({ n: z.int() }),
});

let nats: TestNats;
let service: Bus;
let publisher: Bus;
let busService: BusService;

/** Calls until the service answers again (it reconnects by itself, with jitter). */
async function pingUntilAnswered(client: Bus, timeoutMs = 15_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      await client.request(Ping, {}, { timeoutMs: 500 });
      return Date.now() - started;
    } catch (err) {
      if (Date.now() - started > timeoutMs) throw err;
      await sleep(100);
    }
  }
}

/** Publishes without waiting, as a busy service does; the bus keeps their order. */
function publishTicks(from: number, to: number): Promise<number[]> {
  const stored: Array<Promise<number>> = [];
  for (let n = from; n <= to; n++) stored.push(publisher.publish(Tick, { vm: 'my.work' }, { n }));
  return Promise.all(stored);
}

beforeAll(async () => {
  nats = await startNats();
  service = await connectBus({ url: nats.url, name: 'svc', log: captureLog('vm-registry').log, mode: 'service' });
  publisher = await connectBus({ url: nats.url, name: 'pub', log: captureLog('pub').log, mode: 'service' });
  busService = await service.createService(ServiceName.VmRegistry, { version: '0.1.0', description: 'test' });
  busService.serve(Ping, () => 'pong' as const);
  await service.ensureEventStream();
});

afterAll(async () => {
  await busService?.stop();
  await service?.close();
  await publisher?.close();
  await nats?.stop();
});

describe('the bus across a nats-server restart', () => {
  it('creates the event stream idempotently, with age and size limits, and updates stale limits', async () => {
    await service.ensureEventStream();
    await publisher.ensureEventStream();
    const jsm = await jetstreamManager(service.nc);
    await jsm.streams.update(EVENT_STREAM.name, { max_bytes: 1024 * 1024 });
    await publisher.ensureEventStream();
    const info = await jsm.streams.info(EVENT_STREAM.name);
    expect(info.config.subjects).toEqual(['qubes.vm.>', 'qubes.app.>']);
    expect(info.config.max_bytes).toBe(EVENT_STREAM.maxBytes);
    expect(info.config.max_age).toBe(EVENT_STREAM.maxAgeMs * 1_000_000);
    expect(info.config.storage).toBe('file');
  });

  it('reconnects a running service after the server restarts, without restarting the service', async () => {
    expect(await publisher.request(Ping, {})).toBe('pong');
    const statuses: string[] = [];
    void (async () => {
      for await (const s of service.nc.status()) statuses.push(s.type);
    })();
    await nats.restart();
    await pingUntilAnswered(publisher);
    expect(statuses).toEqual(expect.arrayContaining(['disconnect', 'reconnect']));
    expect(service.nc.isClosed()).toBe(false);
  });

  it('lets a subscriber that was offline resume from its last sequence: every missed event, in order, once', async () => {
    const first = await service.subscribe(Tick.pattern());
    expect(first.lost).toBeNull();
    await publishTicks(1, 5);
    const seen = await collectEvents(first, 5);
    expect(seen.map((e) => e.message['n'])).toEqual([1, 2, 3, 4, 5]);
    expect(seen[0]).toMatchObject({ subject: 'qubes.vm.my=2Ework.test-tick', message: { vm: 'my.work', event: 'test-tick' } });
    const lastSeq = seen[4]!.seq;
    await first.stop();

    // Offline: events go on, and the server restarts in the middle of them.
    await publishTicks(6, 8);
    const restarting = nats.restart();
    const duringRestart = publishTicks(9, 10); // stored once the server is back
    await restarting;
    await duringRestart;

    const resumed = await service.subscribe(Tick.pattern(), { after: lastSeq });
    expect(resumed.lost).toBeNull();
    const missed = await collectEvents(resumed, 5);
    expect(missed.map((e) => e.message['n'])).toEqual([6, 7, 8, 9, 10]);
    expect(missed.map((e) => e.seq)).toEqual([...missed.map((e) => e.seq)].sort((a, b) => a - b));
    expect(missed[0]!.seq).toBeGreaterThan(lastSeq);
    // ...and nothing more: no event is delivered twice.
    void publishTicks(11, 11);
    const [next] = await collectEvents(resumed, 1);
    expect(next?.message['n']).toBe(11);
    await resumed.stop();
  });

  it('tells a subscriber resuming after events the stream no longer keeps how many it lost', async () => {
    const [firstSeq] = await publishTicks(200, 204);
    const jsm = await jetstreamManager(service.nc);
    await jsm.streams.purge(EVENT_STREAM.name, { seq: firstSeq! + 3 }); // as age or size limits would
    const resumed = await service.subscribe(Tick.pattern(), { after: firstSeq! - 1 });
    expect(resumed.lost).toEqual({ from: firstSeq, to: firstSeq! + 2 });
    const kept = await collectEvents(resumed, 2);
    expect(kept.map((e) => e.message['n'])).toEqual([203, 204]);
    await resumed.stop();
  });

  it('keeps a live subscription across a restart, delivering each event once, in order', async () => {
    const sub = await service.subscribe(Tick.pattern({ vm: 'my.work' }));
    void publishTicks(100, 102);
    const before = await collectEvents(sub, 3);
    await nats.restart();
    await pingUntilAnswered(publisher);
    void publishTicks(103, 106);
    const after = await collectEvents(sub, 4, 20_000);
    expect([...before, ...after].map((e) => e.message['n'])).toEqual([100, 101, 102, 103, 104, 105, 106]);
    await sub.stop();
  });
});
