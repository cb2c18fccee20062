import { setTimeout as sleep } from 'node:timers/promises';

/** What libs/bus's subscribe() returns, as far as a test needs it. */
interface Subscription<T> extends AsyncIterable<T> {
  stop(): Promise<void>;
}

/**
 * Reads `count` events from a subscription, or fails naming how many came within `timeoutMs`.
 * The subscription stays open for more.
 */
export async function collectEvents<T>(subscription: Subscription<T>, count: number, timeoutMs = 15_000): Promise<T[]> {
  const got: T[] = [];
  if (count === 0) return got;
  const iterator = subscription[Symbol.asyncIterator]();
  const timer = new AbortController();
  const timeout = sleep(timeoutMs, 'timeout' as const, { signal: timer.signal }).catch(() => 'aborted' as const);
  try {
    while (got.length < count) {
      const next = await Promise.race([iterator.next(), timeout]);
      if (next === 'timeout') throw new Error(`only ${got.length} of ${count} events arrived within ${timeoutMs} ms`);
      if (next === 'aborted' || next.done) break;
      got.push(next.value);
    }
  } finally {
    timer.abort();
  }
  return got;
}
