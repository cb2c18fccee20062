import { createInbox, headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { QubesError } from '@qubes-bus/contracts';
import { encodeJson, errorFromReply, headerSafe, SERVICE_ERROR_CODE_HEADER, SERVICE_ERROR_HEADER } from './wire';

/**
 * Bulk data over the bus (a volume import or export, gigabytes): NATS messages are at most
 * `max_payload` (1 MiB by default), so the data goes as numbered chunks, each a request the
 * receiver answers once it has taken the chunk (written it), with a window of chunks in flight
 * for throughput and no more, for back-pressure. A last, empty request marked as the end is
 * answered with the outcome of the whole transfer: a JSON result or an error.
 *
 * The receiver makes the subject (an inbox) and gives it to the sender in the reply to the call
 * that starts the transfer (`admin.vm.volume.Import` answers with it).
 */

export const STREAM_SEQ_HEADER = 'Qubes-Stream-Seq';
export const STREAM_END_HEADER = 'Qubes-Stream-End';

/** The largest chunk a connection's server takes (max_payload, less room for headers). */
export function streamChunkBytes(nc: NatsConnection): number {
  const max = nc.info?.max_payload ?? 1024 * 1024;
  return Math.max(4096, max - 4096);
}

/** The chunk size a receiver asks for, where the server takes it. */
export const STREAM_CHUNK_BYTES = 1024 * 1024;

export const DEFAULT_STREAM_WINDOW = 8;

export interface ByteStreamReceiver<T> {
  /** Where the sender sends. */
  readonly subject: string;
  readonly chunkBytes: number;
  readonly window: number;
  /** The chunks as they come; it ends at the sender's end mark, and throws TIMEOUT on a stall. */
  readonly chunks: AsyncIterable<Uint8Array>;
  /** Answers the end mark with the result (or error), and closes the stream. */
  finish(outcome: { ok: true; value: T } | { ok: false; error: QubesError }): void;
}

/**
 * Opens a stream to receive on, live at the server once this resolves (a sender on another
 * connection could otherwise beat the subscription there). A sender silent for `idleMs` fails
 * the iteration with TIMEOUT (an abandoned import must not hold its temporary file for ever).
 */
export async function receiveBytes<T>(nc: NatsConnection, options: { idleMs?: number; window?: number; chunkBytes?: number } = {}): Promise<ByteStreamReceiver<T>> {
  const idleMs = options.idleMs ?? 30_000;
  const window = options.window ?? DEFAULT_STREAM_WINDOW;
  const subject = createInbox();
  let endMark: Msg | undefined;
  /** A chunk handed out and not yet answered: the consumer is working on it. */
  let unanswered: Msg | undefined;
  let failure: QubesError | undefined;
  let result: { ok: true; value: T } | undefined;
  const queue: Msg[] = [];
  let wake: (() => void) | undefined;

  const respondError = (msg: Msg, error: QubesError): void => {
    const hdrs = natsHeaders();
    hdrs.set(SERVICE_ERROR_CODE_HEADER, String(error.status));
    hdrs.set(SERVICE_ERROR_HEADER, headerSafe(error.message));
    msg.respond(encodeJson(error.toBody()), { headers: hdrs });
  };
  const settle = (): void => {
    if (endMark === undefined) return;
    if (failure !== undefined) respondError(endMark, failure);
    else if (result !== undefined) endMark.respond(encodeJson(result.value));
    else return;
    sub.unsubscribe();
  };

  const sub: Subscription = nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err !== null) return;
      if (failure !== undefined) {
        // The transfer has failed: whatever the sender still sends is answered with the failure.
        if (msg.headers?.has(STREAM_END_HEADER) === true) {
          endMark = msg;
          settle();
        } else {
          respondError(msg, failure);
        }
        return;
      }
      queue.push(msg);
      wake?.();
    },
  });

  async function* chunks(): AsyncGenerator<Uint8Array> {
    let expected = 0;
    for (;;) {
      if (queue.length === 0) {
        let timer: NodeJS.Timeout | undefined;
        const idle = await new Promise<boolean>((resolve) => {
          wake = () => resolve(false);
          timer = setTimeout(() => resolve(true), idleMs);
        }).finally(() => {
          clearTimeout(timer);
          wake = undefined;
        });
        if (idle) throw new QubesError('TIMEOUT', `the sender sent nothing for ${idleMs / 1000} s`);
        continue;
      }
      const msg = queue.shift()!;
      if (msg.headers?.has(STREAM_END_HEADER) === true) {
        endMark = msg;
        return;
      }
      const seq = Number(msg.headers?.get(STREAM_SEQ_HEADER));
      if (seq !== expected) {
        throw new QubesError('BAD_REQUEST', `chunk ${seq} came where chunk ${expected} was due`, { details: { field: 'seq' } });
      }
      expected++;
      unanswered = msg;
      yield msg.data;
      unanswered = undefined;
      msg.respond(); // taken: the sender may send another
    }
  }

  await nc.flush();
  return {
    subject,
    chunkBytes: Math.min(options.chunkBytes ?? STREAM_CHUNK_BYTES, streamChunkBytes(nc)),
    window,
    chunks: chunks(),
    finish(outcome) {
      if (outcome.ok) result = outcome;
      else failure = outcome.error;
      if (failure !== undefined) {
        for (const msg of [...(unanswered === undefined ? [] : [unanswered]), ...queue.splice(0)]) {
          if (msg.headers?.has(STREAM_END_HEADER) === true) endMark = msg;
          else respondError(msg, failure);
        }
        unanswered = undefined;
      }
      if (endMark !== undefined) settle();
      else if (failure !== undefined) setTimeout(() => sub.unsubscribe(), idleMs).unref(); // a vanished sender never ends
      else sub.unsubscribe();
    },
  };
}

export interface SendOptions {
  window?: number;
  chunkBytes?: number;
  /** Per chunk; the end mark waits `finishTimeoutMs` (the receiver commits then). */
  timeoutMs?: number;
  finishTimeoutMs?: number;
  onProgress?: (bytes: number) => void;
}

/**
 * Sends `source` to a receiver's subject and returns what the receiver made of it (its JSON
 * result). A chunk the receiver refuses stops the transfer with the receiver's error.
 */
export async function sendBytes(nc: NatsConnection, subject: string, source: AsyncIterable<Uint8Array>, options: SendOptions = {}): Promise<unknown> {
  const window = options.window ?? DEFAULT_STREAM_WINDOW;
  const chunkBytes = Math.min(options.chunkBytes ?? STREAM_CHUNK_BYTES, streamChunkBytes(nc));
  const inFlight = new Set<Promise<void>>();
  let failure: QubesError | undefined;
  let seq = 0;
  let sent = 0;

  const send = (chunk: Uint8Array): Promise<void> => {
    const hdrs = natsHeaders();
    hdrs.set(STREAM_SEQ_HEADER, String(seq++));
    const done = nc
      .request(subject, chunk, { headers: hdrs, timeout: options.timeoutMs ?? 60_000 })
      .then((reply) => {
        const error = errorFromReply(reply);
        if (error !== undefined) throw error;
      })
      .catch((err: unknown) => {
        failure ??= err instanceof QubesError ? err : new QubesError('TIMEOUT', `the receiver did not take a chunk: ${(err as Error).message}`, { cause: err });
      })
      .finally(() => inFlight.delete(done));
    inFlight.add(done);
    return done;
  };

  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async (all: boolean): Promise<void> => {
    while (pendingBytes >= chunkBytes || (all && pendingBytes > 0)) {
      // most sources give pieces of the chunk size: those go as they are, uncopied
      const joined = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      const chunk = joined.subarray(0, Math.min(chunkBytes, joined.length));
      const rest = joined.subarray(chunk.length);
      pending = rest.length > 0 ? [rest] : [];
      pendingBytes = rest.length;
      while (inFlight.size >= window) await Promise.race(inFlight);
      if (failure !== undefined) throw failure;
      void send(chunk);
      sent += chunk.length;
      options.onProgress?.(sent);
    }
  };

  for await (const piece of source) {
    pending.push(Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength));
    pendingBytes += piece.byteLength;
    await flush(false);
    if (failure !== undefined) break;
  }
  if (failure === undefined) await flush(true);
  await Promise.all(inFlight);
  // The end mark goes even after a failure: the receiver answers it with the whole outcome.
  const hdrs = natsHeaders();
  hdrs.set(STREAM_END_HEADER, '1');
  const reply = await nc.request(subject, new Uint8Array(0), { headers: hdrs, timeout: options.finishTimeoutMs ?? 600_000 });
  const error = errorFromReply(reply);
  if (error !== undefined) throw error;
  if (failure !== undefined) throw failure;
  return reply.data.length === 0 ? null : (JSON.parse(new TextDecoder().decode(reply.data)) as unknown);
}
