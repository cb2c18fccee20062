import type { EventDescriptor, EventMessageOf } from '@qubes-bus/contracts';
import type { Logger } from '@qubes-bus/log';
import type { EventSubscription } from './events';

/** One event, checked against its descriptor. */
export interface TypedEvent<E extends EventDescriptor> {
  /** Stream sequence: remember the last one and pass it as `after` to resume. */
  readonly seq: number;
  readonly subject: string;
  /** The envelope (`vm`, `event`, `ts`) and the event's own fields, as its descriptor types them. */
  readonly message: EventMessageOf<E>;
}

export interface TypedEventSubscription<E extends EventDescriptor> extends AsyncIterable<TypedEvent<E>> {
  /** As EventSubscription.lost: the sequences asked for that the stream no longer keeps. */
  readonly lost: EventSubscription['lost'];
  /** Messages on the event's subjects that did not match its schema (logged, then skipped). */
  readonly rejected: number;
  stop(): Promise<void>;
}

/**
 * The messages of `subscription` that match `event`'s schema, typed by it. Anything else on
 * those subjects (another version's fields, a publisher's bug) is logged at warn, counted and
 * skipped: a subscriber never acts on a message its contract does not describe.
 */
export function typedEvents<E extends EventDescriptor>(subscription: EventSubscription, event: E, log: Logger): TypedEventSubscription<E> {
  let rejected = 0;
  async function* checked(): AsyncGenerator<TypedEvent<E>> {
    for await (const received of subscription) {
      const parsed = event.message.safeParse(received.message);
      if (parsed.success) {
        yield { seq: received.seq, subject: received.subject, message: parsed.data as EventMessageOf<E> };
        continue;
      }
      rejected++;
      log.warn({ event: event.name, subject: received.subject, seq: received.seq, untrusted: { issues: parsed.error.issues.slice(0, 3) } }, 'an event does not match its contract; skipped');
    }
  }
  const iterator = checked();
  return {
    get lost() {
      return subscription.lost;
    },
    get rejected() {
      return rejected;
    },
    [Symbol.asyncIterator]: () => iterator,
    async stop() {
      await subscription.stop();
      await iterator.return(undefined);
    },
  };
}
