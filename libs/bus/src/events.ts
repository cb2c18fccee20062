import {
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos, nuid, type NatsConnection } from '@nats-io/nats-core';
import { EVENT_PUBLISH_PATIENCE_MS, patiently } from './patiently';
import { EVENT_STREAM, eventEnvelope, QubesError, type EventEnvelope } from '@qubes-bus/contracts';
import * as z from 'zod/mini';

/** The envelope, with whatever fields the event carries besides. */
const openEnvelope = z.looseObject(eventEnvelope.shape);

/** An event as a subscriber receives it. */
export interface ReceivedEvent {
  /** Stream sequence: remember the last one and pass it as `after` to resume. */
  readonly seq: number;
  readonly subject: string;
  /** The message: envelope (`vm`, `event`, `ts`) and the event's own fields. */
  readonly message: EventEnvelope & Record<string, unknown>;
}

export interface SubscribeOptions {
  /** Deliver the events stored after this sequence (resume); default: those published from now on. */
  after?: number;
}

export interface EventSubscription extends AsyncIterable<ReceivedEvent> {
  /**
   * When resuming: the sequences that were asked for but are no longer kept (older than the
   * stream's age or size limit), so the subscriber knows it missed them; null when none were.
   */
  readonly lost: { readonly from: number; readonly to: number } | null;
  /** Ends the iteration. */
  stop(): Promise<void>;
}

const STREAM_ALREADY_EXISTS = 10058;

function streamConfig(): Partial<StreamConfig> & { name: string } {
  return {
    name: EVENT_STREAM.name,
    subjects: [...EVENT_STREAM.subjects],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(EVENT_STREAM.maxAgeMs),
    max_bytes: EVENT_STREAM.maxBytes,
    max_msg_size: EVENT_STREAM.maxMsgSize,
    num_replicas: 1,
  };
}

export function ensureEventStream(nc: NatsConnection): Promise<void> {
  return patiently(() => createOrUpdateStream(nc));
}

async function createOrUpdateStream(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const config = streamConfig();
  try {
    await jsm.streams.add(config);
  } catch (err) {
    // Same name, other settings (an older version's limits): bring it up to date.
    if (!(err instanceof JetStreamApiError && err.code === STREAM_ALREADY_EXISTS)) throw err;
    const { name, ...update } = config;
    await jsm.streams.update(name, update);
  }
}

/** Events sent and not yet acknowledged, at most. */
const PUBLISH_WINDOW = 512;

interface PendingEvent {
  readonly order: number;
  readonly subject: string;
  readonly data: Uint8Array;
  /** Lets the stream drop the copy of a retry whose first try was stored after all. */
  readonly msgID: string;
  readonly deadline: number;
  resolve(seq: number): void;
  reject(err: unknown): void;
}

/**
 * Stores events in the stream, in the order they were published, many in flight at once
 * (the server stores them in the order they arrive on the connection), each acknowledged.
 * Through a server restart the ones that failed are sent again, oldest first, until
 * EVENT_PUBLISH_PATIENCE_MS; on a closed connection they fail at once.
 */
export class EventPublisher {
  private readonly queue: PendingEvent[] = [];
  private inFlight = 0;
  private order = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private idle: Array<() => void> = [];

  constructor(private readonly nc: NatsConnection) {}

  publish(subject: string, data: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ order: this.order++, subject, data, msgID: nuid.next(), deadline: Date.now() + EVENT_PUBLISH_PATIENCE_MS, resolve, reject });
      this.pump();
    });
  }

  /** Resolves once every event published so far is stored or has failed. */
  settled(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private pump(): void {
    if (this.retryTimer !== undefined) return; // backing off after a failure
    const js = jetstream(this.nc);
    while (this.inFlight < PUBLISH_WINDOW && this.queue.length > 0) {
      const event = this.queue.shift()!;
      this.inFlight++;
      js.publish(event.subject, event.data, { msgID: event.msgID, timeout: 2_000 }).then(
        (ack) => {
          this.inFlight--;
          event.resolve(ack.seq);
          this.pump();
          this.notifyIdle();
        },
        (err: unknown) => {
          this.inFlight--;
          this.failed(event, err);
        },
      );
    }
  }

  private failed(event: PendingEvent, err: unknown): void {
    if (this.nc.isClosed() || Date.now() > event.deadline) {
      event.reject(new QubesError('EVENT_NOT_STORED', `the event stream did not store ${event.subject}: ${(err as Error).message}`, { cause: err }));
      this.pump();
      this.notifyIdle();
      return;
    }
    // Back in line by its original order, ahead of everything published after it.
    const at = this.queue.findIndex((e) => e.order > event.order);
    this.queue.splice(at === -1 ? this.queue.length : at, 0, event);
    this.retryTimer ??= setTimeout(() => {
      this.retryTimer = undefined;
      this.pump();
    }, 250);
  }

  private notifyIdle(): void {
    if (this.queue.length > 0 || this.inFlight > 0) return;
    for (const resolve of this.idle.splice(0)) resolve();
  }
}

/**
 * An ordered consumer on the event stream: it delivers in stream order, each event once, and
 * after a server restart or a reconnect it recreates itself after the last sequence it
 * delivered, so nothing is missed and nothing repeats.
 */
export async function subscribeEvents(nc: NatsConnection, pattern: string, options: SubscribeOptions): Promise<EventSubscription> {
  await ensureEventStream(nc);
  const { state } = await patiently(async () => (await jetstreamManager(nc)).streams.info(EVENT_STREAM.name));
  // "From now on" is pinned to the stream's last sequence here, not left to the moment the
  // server creates the consumer (later, asynchronously): an event published once this function
  // has returned is always delivered.
  const after = options.after ?? state.last_seq;
  const lost = after + 1 < state.first_seq ? { from: after + 1, to: state.first_seq - 1 } : null;
  const consumer = await patiently(() => jetstream(nc).consumers.get(EVENT_STREAM.name, {
    filter_subjects: pattern,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: Math.max(after + 1, state.first_seq),
  }));
  // Short pulls: a restarted server is noticed (missed heartbeats) within a couple of seconds.
  const messages: ConsumerMessages = await consumer.consume({ expires: 2_000 });
  async function* events(): AsyncGenerator<ReceivedEvent> {
    for await (const m of messages) {
      const parsed = openEnvelope.safeParse(safeJson(m.data));
      if (!parsed.success) continue; // not one of ours; the stream only holds qubes.* subjects
      yield { seq: m.seq, subject: m.subject, message: parsed.data as EventEnvelope & Record<string, unknown> };
    }
  }
  const iterator = events();
  return {
    lost,
    [Symbol.asyncIterator]: () => iterator,
    async stop() {
      // The consumer only reports itself closed once its queue is read to the end; ending our
      // own generator does that even when nobody is iterating right now.
      messages.stop();
      await iterator.return(undefined);
    },
  };
}

function safeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}
