import { setTimeout as sleep } from 'node:timers/promises';

/** How long a publisher keeps trying to store one event (a server restart takes a second or two). */
export const EVENT_PUBLISH_PATIENCE_MS = 30_000;

/**
 * Retries a JetStream management call while the server is not there to answer it: just after
 * a restart, JetStream recovers its streams before it answers, and a client may still be
 * reconnecting.
 */
export async function patiently<T>(call: () => Promise<T>, patienceMs = EVENT_PUBLISH_PATIENCE_MS): Promise<T> {
  const deadline = Date.now() + patienceMs;
  for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
    try {
      return await call();
    } catch (err) {
      // An answer from JetStream is final; silence, or no JetStream yet, is not.
      const transient = (err as Error)?.name !== 'JetStreamApiError' && /timeout|no responders|not enabled|disconnect|reconnect/i.test(String((err as Error)?.message));
      if (!transient || Date.now() > deadline) throw err;
      await sleep(delay);
    }
  }
}

