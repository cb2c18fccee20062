import { createInbox, type NatsConnection } from '@nats-io/nats-core';
import type { QubesError } from '@qubes-bus/contracts';
import { DEFAULT_STREAM_WINDOW, STREAM_CHUNK_BYTES, streamChunkBytes } from './framing';
import { offerSocket } from './local-socket';
import { Reception, silent, type Limits } from './reception';

export interface ByteStreamReceiver<T> {
  /** Where the sender sends. */
  readonly subject: string;
  readonly chunkBytes: number;
  readonly window: number;
  /**
   * The receiver's local socket, for a sender on the same host (null when it offers none): the
   * bytes then go through the kernel alone, not through three processes' NATS buffers.
   */
  readonly socket: string | null;
  /** What a sender on the socket first writes (a line), so only who got the offer may send. */
  readonly token: string | null;
  /**
   * A file on the receiver's host a sender there may write the whole data into instead (with
   * in-kernel copies, or a reflink), ending on the socket once it has: see `file` in ReceiveOptions.
   */
  readonly file: string | null;
  /** Resolves with the way the sender takes, once it has begun (TIMEOUT after idleMs of nothing). */
  readonly begun: Promise<'socket' | 'bus' | 'file'>;
  /** The chunks as they come; it ends at the sender's end mark, and throws TIMEOUT on a stall. */
  readonly chunks: AsyncIterable<Uint8Array>;
  /** The way the sender took, once it has begun: the local socket, chunks on the subject, the file. */
  readonly via: 'socket' | 'bus' | 'file' | null;
  /** Answers the end mark with the result (or error), and closes the stream. */
  finish(outcome: { ok: true; value: T } | { ok: false; error: QubesError }): void;
}

export interface ReceiveOptions {
  idleMs?: number;
  window?: number;
  chunkBytes?: number;
  /**
   * A directory private to this host's services (made 0700 if missing) where a socket is offered
   * besides the subject; without it, only the subject.
   */
  localDir?: string;
  /**
   * With `localDir`: an empty file, made by the receiver, that a sender on this host may write the
   * data into; its chunks then end at once, and the receiver takes the data from the file.
   */
  file?: string;
}

/**
 * Opens a stream to receive on, live at the server once this resolves (a sender on another
 * connection could otherwise beat the subscription there). A sender silent for `idleMs` fails
 * the iteration with TIMEOUT (an abandoned import must not hold its temporary file for ever).
 * With `localDir`, a sender on this host may use the stream's socket instead; the first sender,
 * on either path, is the only one.
 */
export async function receiveBytes<T>(nc: NatsConnection, options: ReceiveOptions = {}): Promise<ByteStreamReceiver<T>> {
  const limits: Limits = {
    idleMs: options.idleMs ?? 30_000,
    window: options.window ?? DEFAULT_STREAM_WINDOW,
    chunkBytes: Math.min(options.chunkBytes ?? STREAM_CHUNK_BYTES, streamChunkBytes(nc)),
  };
  const stream = new Reception<T>(nc, createInbox(), limits);
  // a directory it cannot use (a path too long for a socket, ...): the bus alone
  const offer = options.localDir === undefined ? null : await offerSocket(options.localDir, options.file !== undefined, (socket, mode) => stream.takeLocal(socket, mode)).catch(() => null);
  stream.offer = offer;
  const begun = beginsWithin(stream.begun, limits.idleMs);
  try {
    await nc.flush();
  } catch (err) {
    stream.abandon();
    throw err;
  }
  return {
    subject: stream.subject,
    chunkBytes: limits.chunkBytes,
    window: limits.window,
    socket: offer?.path ?? null,
    token: offer?.token ?? null,
    file: offer !== null && options.file !== undefined ? options.file : null,
    begun,
    chunks: stream.chunks(),
    get via() {
      return stream.via;
    },
    finish(outcome) {
      stream.finish(outcome);
    },
  };
}

/** `begun`, or TIMEOUT once the sender has not begun within idleMs. */
function beginsWithin<V>(begun: Promise<V>, idleMs: number): Promise<V> {
  const beginning = Promise.race([begun, new Promise<never>((_, reject) => setTimeout(() => reject(silent(idleMs)), idleMs).unref())]);
  beginning.catch(() => undefined); // a receiver that never asks is told by its chunks
  return beginning;
}
