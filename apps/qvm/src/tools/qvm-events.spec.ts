import { describe, expect, it } from '@jest/globals';
import type { ReceivedEvent } from '@qubes-bus/bus';
import { fakeContext, fakeSubscription, runTool } from '../testing/fake-context';
import { qvmEvents } from './qvm-events';

const event = (seq: number, vm: string): ReceivedEvent => ({
  seq,
  subject: `qubes.vm.${vm}.domain-tag-add.t`,
  message: { vm, event: 'domain-tag-add:t', ts: 't', tag: 't', revision: 'r' },
});

/** Waits until the tool has printed `lines` lines. */
async function printed(out: () => string, lines: number): Promise<void> {
  for (let i = 0; i < 200 && out().split('\n').length <= lines; i++) await new Promise((r) => setTimeout(r, 5));
}

describe('qvm-events', () => {
  it('prints events until SIGTERM, then ends without error', async () => {
    const subscription = fakeSubscription([event(5, 'work'), event(6, 'work')]);
    let asked: unknown[] = [];
    const ctx = fakeContext(() => null, { subscription, subscribed: (...args) => (asked = args) });
    const running = runTool(qvmEvents, ctx, ['work', '--from-seq', '4']);
    await printed(ctx.out, 2);
    ctx.signals.emit('SIGTERM');
    await running;
    expect(asked).toEqual(['qubes.vm.work.>', 4]);
    expect(ctx.out()).toBe('work domain-tag-add:t tag=t revision=r\nwork domain-tag-add:t tag=t revision=r\n');
    expect(subscription.stopped).toBe(true);
    expect(ctx.signals.listenerCount('SIGTERM')).toBe(0);
  });

  it('subscribes to every event by default, and keeps only the named VMs when several are named', async () => {
    let pattern: unknown;
    const all = fakeContext(() => null, { subscription: fakeSubscription([]), subscribed: (p) => (pattern = p) });
    const running = runTool(qvmEvents, all, ['--all']);
    await new Promise((r) => setTimeout(r, 20));
    all.signals.emit('SIGINT');
    await running;
    expect(pattern).toBe('qubes.>');

    const some = fakeContext(() => null, { subscription: fakeSubscription([event(1, 'a'), event(2, 'b'), event(3, 'c')]), subscribed: (p) => (pattern = p) });
    const watching = runTool(qvmEvents, some, ['--json', 'a', 'c']);
    await printed(some.out, 2);
    some.signals.emit('SIGINT');
    await watching;
    expect(pattern).toBe('qubes.vm.*.>');
    expect(some.out().trimEnd().split('\n').map((line) => (JSON.parse(line) as { seq: number }).seq)).toEqual([1, 3]);
  });

  it('warns on stderr, not as an error, when the stream no longer holds events asked for', async () => {
    const ctx = fakeContext(() => null, { subscription: fakeSubscription([event(10, 'work')], { from: 1, to: 9 }) });
    const running = runTool(qvmEvents, ctx, ['--from-seq', '0']);
    await printed(ctx.out, 1);
    ctx.signals.emit('SIGINT');
    await running;
    expect(ctx.err()).toBe('WARNING: events 1 to 9 are no longer kept by the event stream (older than its limits) and cannot be printed\n');
  });

  it('fails when the stream ends on its own (the bus went away), naming the sequence to resume from', async () => {
    async function* once(): AsyncGenerator<ReceivedEvent> {
      yield event(7, 'work');
    }
    const iterator = once();
    const subscription = { lost: null, stop: async () => void (await iterator.return(undefined)), [Symbol.asyncIterator]: () => iterator };
    const ctx = fakeContext(() => null, { subscription });
    await expect(runTool(qvmEvents, ctx, [])).rejects.toMatchObject({ code: 'BUS_UNREACHABLE', message: 'the connection to the bus was lost; resume with --from-seq 7' });
  });

  it('refuses a sequence that is not a whole number', async () => {
    await expect(runTool(qvmEvents, fakeContext(() => null), ['--from-seq', '-1'])).rejects.toMatchObject({ code: 'commander.invalidArgument' });
  });
});
