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
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import { EVENT_STREAM, eventEnvelope, type EventEnvelope } from '@qubes-bus/contracts';
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

export async function ensureEventStream(nc: NatsConnection): Promise<void> {
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

/**
 * An ordered consumer on the event stream: it delivers in stream order, each event once, and
 * after a server restart or a reconnect it recreates itself after the last sequence it
 * delivered, so nothing is missed and nothing repeats.
 */
export async function subscribeEvents(nc: NatsConnection, pattern: string, options: SubscribeOptions): Promise<EventSubscription> {
  const js = jetstream(nc);
  // "From now on" is pinned to the stream's last sequence here, not left to the moment the
  // server creates the consumer (later, asynchronously): an event published once this function
  // has returned is always delivered.
  const after = options.after ?? (await (await jetstreamManager(nc)).streams.info(EVENT_STREAM.name)).state.last_seq;
  const consumer = await js.consumers.get(EVENT_STREAM.name, {
    filter_subjects: pattern,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: after + 1,
  });
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
