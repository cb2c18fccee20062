import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstream } from '@nats-io/jetstream';
import { VolumeProgress } from '@qubes-bus/contracts';
import { captureLog, startNats, type CapturedLog, type TestNats } from '@qubes-bus/testing';
import { connectBus, type Bus } from '../src';

let nats: TestNats;
let bus: Bus;
let log: CapturedLog;

beforeAll(async () => {
  nats = await startNats();
  log = captureLog('client');
  bus = await connectBus({ url: nats.url, name: 'typed-events', log: log.log, mode: 'service' });
  await bus.ensureEventStream();
});

afterAll(async () => {
  await bus?.close();
  await nats?.stop();
});

describe('typed event subscriptions', () => {
  it('delivers the events of one VM and qualifier as their descriptor types them, and skips a malformed one with a warning', async () => {
    const events = await bus.events(VolumeProgress, { vm: 'work', qualifier: 'private' });
    // A message on the event's subject that breaks its schema (a publisher's bug, another version).
    await jetstream(bus.nc).publish(VolumeProgress.subject({ vm: 'work', qualifier: 'private' }), JSON.stringify({ vm: 'work', event: 'volume-progress:private', ts: 'now', done: 'half' }));
    await bus.publish(VolumeProgress, { vm: 'other', qualifier: 'private' }, { volume: 'private', operation: 'clone', done: 1, total: 9 });
    await bus.publish(VolumeProgress, { vm: 'work', qualifier: 'root' }, { volume: 'root', operation: 'clone', done: 2, total: 9 });
    await bus.publish(VolumeProgress, { vm: 'work', qualifier: 'private' }, { volume: 'private', operation: 'import', done: 3, total: 9 });

    const iterator = events[Symbol.asyncIterator]();
    const { value } = await iterator.next();
    // Typed: `done` is a number here without a cast.
    const done: number | undefined = value?.message.done;
    expect(done).toBe(3);
    expect(value?.message).toMatchObject({ vm: 'work', volume: 'private', operation: 'import', total: 9 });
    expect(events.rejected).toBe(1);
    expect(log.lines().some((l) => l['msg'] === 'an event does not match its contract; skipped' && l['event'] === 'volume-progress')).toBe(true);
    await events.stop();
  });
});
