import type { Socket } from 'node:net';
import { headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { QubesError } from '@qubes-bus/contracts';
import { encodeJson, headerSafe, SERVICE_ERROR_CODE_HEADER, SERVICE_ERROR_HEADER } from '../wire';
import { FrameReader, STREAM_ABORT_HEADER, STREAM_END_HEADER, STREAM_SEQ_HEADER } from './framing';
import type { SocketOffer } from './local-socket';

/** The way a sender takes: chunks on the subject, frames on the local socket, or the file. */
type Via = 'bus' | 'socket' | 'file';
type Outcome<T> = { ok: true; value: T } | { ok: false; error: QubesError };

/** How long a sender may stay silent, and how much it may send ahead of the consumer. */
export interface Limits {
  readonly idleMs: number;
  readonly window: number;
  readonly chunkBytes: number;
}

/**
 * What reaches the consumer: a NATS chunk (answered once taken), local bytes, the local end mark,
 * or a local sender gone before it (a killed sender closes its socket as a finished one would:
 * hence the frames, `<u32 length><bytes>`, and the empty one that ends the data).
 */
type Arrival = { msg: Msg } | { bytes: Buffer } | { localEnd: true } | { localLost: true };

/** One transfer being received: what has arrived, the way the sender took, how it ends. */
export class Reception<T> {
  readonly begun: Promise<Via>;
  /** The local socket on offer, while no sender has begun (null: the subject alone). */
  offer: SocketOffer | null = null;
  private readonly sub: Subscription;
  private begin!: (via: Via) => void;
  private path: Via | undefined;
  private readonly queue: Arrival[] = [];
  private queuedLocalBytes = 0;
  private wake: (() => void) | undefined;
  private local: Socket | undefined;
  private endMark: Msg | undefined;
  /** A chunk handed out and not yet answered: the consumer is working on it. */
  private unanswered: Msg | undefined;
  private failure: QubesError | undefined;
  private result: { ok: true; value: T } | undefined;
  private finished = false;

  constructor(
    nc: NatsConnection,
    readonly subject: string,
    private readonly limits: Limits,
  ) {
    this.begun = new Promise<Via>((resolve) => (this.begin = resolve));
    this.sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err === null) this.onBusMessage(msg);
      },
    });
  }

  get via(): Via | null {
    return this.path ?? null;
  }

  // --- arrivals --------------------------------------------------------------------------------

  /** A request on the subject: a chunk, or the end mark. */
  private onBusMessage(msg: Msg): void {
    if (this.path !== undefined && this.path !== 'bus') return respondError(msg, new QubesError('BAD_REQUEST', 'this stream is being sent on its local socket'));
    if (this.path === undefined) this.begin((this.path = 'bus'));
    if (this.failure !== undefined) {
      // The transfer has failed: whatever the sender still sends is answered with the failure.
      if (msg.headers?.has(STREAM_END_HEADER) === true) {
        this.endMark = msg;
        this.settle();
      } else {
        respondError(msg, this.failure);
      }
      return;
    }
    this.arrive({ msg });
  }

  /** A sender on the offered socket, taken if none has begun: its frames arrive as local bytes. */
  takeLocal(socket: Socket, mode: 'stream' | 'file'): boolean {
    if (this.path !== undefined) return false;
    this.begin((this.path = mode === 'file' ? 'file' : 'socket'));
    this.local = socket;
    const frames = new FrameReader();
    socket.on('data', (bytes: Buffer) => this.onLocalData(socket, frames, bytes));
    const lost = (): void => {
      if (!frames.ended) this.arrive({ localLost: true });
    };
    socket.once('end', lost);
    socket.on('error', lost);
    return true;
  }

  private onLocalData(socket: Socket, frames: FrameReader, bytes: Buffer): void {
    if (frames.ended || this.finished) return; // after the end mark, or the outcome: nothing is data
    const pieces = frames.read(bytes);
    if (this.path === 'file' && pieces.length > 0) {
      socket.destroy(); // the data was to be in the file: a sender that streams too is confused
      this.arrive({ localLost: true });
      return;
    }
    for (const piece of pieces) {
      this.queuedLocalBytes += piece.length;
      this.arrive({ bytes: piece });
    }
    if (frames.ended) this.arrive({ localEnd: true });
    if (this.queuedLocalBytes >= this.limits.window * this.limits.chunkBytes) socket.pause(); // back-pressure, as the window is
  }

  private arrive(arrival: Arrival): void {
    this.queue.push(arrival);
    this.wake?.();
  }

  // --- the consumer's side ---------------------------------------------------------------------

  /** Waits for something to arrive; TIMEOUT if nothing does for idleMs. */
  private async next(): Promise<Arrival> {
    while (this.queue.length === 0) {
      let timer: NodeJS.Timeout | undefined;
      const idle = await new Promise<boolean>((resolve) => {
        this.wake = () => resolve(false);
        // a sender copying into the file says nothing until it is done, however long that takes;
        // if it dies, its socket closes, and that arrives
        if (this.path !== 'file') timer = setTimeout(() => resolve(true), this.limits.idleMs);
      }).finally(() => {
        clearTimeout(timer);
        this.wake = undefined;
      });
      if (idle) throw silent(this.limits.idleMs);
    }
    return this.queue.shift()!;
  }

  /** The data as whole chunks, in order, up to the end mark (on the socket or on the subject). */
  async *chunks(): AsyncGenerator<Uint8Array> {
    const local = new ChunkAssembler(this.limits.chunkBytes);
    let expected = 0;
    try {
      for (;;) {
        const arrival = await this.next();
        if ('bytes' in arrival) {
          this.queuedLocalBytes -= arrival.bytes.length;
          if (this.queuedLocalBytes < this.limits.window * this.limits.chunkBytes) this.local?.resume();
          yield* local.add(arrival.bytes);
          continue;
        }
        if ('localEnd' in arrival) {
          const last = local.rest();
          if (last !== undefined) yield last;
          return;
        }
        if ('localLost' in arrival) throw new QubesError('OPERATION_CANCELLED', 'the sender went away before the end of the data');
        const msg = arrival.msg;
        if (msg.headers?.has(STREAM_ABORT_HEADER) === true) throw new QubesError('OPERATION_CANCELLED', 'the sender went away before the end of the data');
        if (msg.headers?.has(STREAM_END_HEADER) === true) {
          this.endMark = msg;
          return;
        }
        const seq = Number(msg.headers?.get(STREAM_SEQ_HEADER));
        if (seq !== expected) {
          throw new QubesError('BAD_REQUEST', `chunk ${seq} came where chunk ${expected} was due`, { details: { field: 'seq' } });
        }
        expected++;
        this.unanswered = msg;
        yield msg.data;
        this.unanswered = undefined;
        msg.respond(); // taken: the sender may send another
      }
    } finally {
      this.offer?.close(); // no other sender, once the data has begun or ended
    }
  }

  // --- the outcome -----------------------------------------------------------------------------

  finish(outcome: Outcome<T>): void {
    this.finished = true;
    this.offer?.close();
    if (outcome.ok) this.result = outcome;
    else this.failure = outcome.error;
    if (this.local !== undefined) this.finishLocal(this.local, outcome);
    else this.finishBus();
  }

  /** The outcome is the socket's last line; a failed stream's unread data is dropped. */
  private finishLocal(local: Socket, outcome: Outcome<T>): void {
    local.end(`${JSON.stringify(outcome.ok ? { ok: true, value: outcome.value } : { ok: false, error: outcome.error.toBody() })}\n`);
    if (!outcome.ok) local.resume();
    this.sub.unsubscribe();
  }

  /** The end mark gets the outcome; after a failure, so does every chunk still unanswered. */
  private finishBus(): void {
    const failure = this.failure;
    if (failure !== undefined) {
      for (const arrival of [...(this.unanswered === undefined ? [] : [{ msg: this.unanswered }]), ...this.queue.splice(0)]) {
        if (!('msg' in arrival)) continue;
        if (arrival.msg.headers?.has(STREAM_END_HEADER) === true) this.endMark = arrival.msg;
        else respondError(arrival.msg, failure);
      }
      this.unanswered = undefined;
    }
    if (this.endMark !== undefined) this.settle();
    else if (failure !== undefined) setTimeout(() => this.sub.unsubscribe(), this.limits.idleMs).unref(); // a vanished sender never ends
    else this.sub.unsubscribe();
  }

  /** Answers the end mark, once there are both an end mark and an outcome. */
  private settle(): void {
    if (this.endMark === undefined) return;
    if (this.failure !== undefined) respondError(this.endMark, this.failure);
    else if (this.result !== undefined) this.endMark.respond(encodeJson(this.result.value));
    else return;
    this.sub.unsubscribe();
  }

  /** Withdraws the offer and the subscription: the stream could not be opened. */
  abandon(): void {
    this.offer?.close();
    this.sub.unsubscribe();
  }
}

/**
 * Local bytes come in the kernel's pieces: the consumer gets whole chunks, each in memory of its
 * own (it may hand them on to another thread without a copy).
 */
class ChunkAssembler {
  private current: Buffer | undefined;
  private filled = 0;

  constructor(private readonly chunkBytes: number) {}

  /** The chunks `bytes` completes, as they fill. */
  *add(bytes: Buffer): Generator<Buffer> {
    for (let at = 0; at < bytes.length; ) {
      this.current ??= Buffer.allocUnsafeSlow(this.chunkBytes);
      const taken = bytes.copy(this.current, this.filled, at);
      at += taken;
      this.filled += taken;
      if (this.filled === this.chunkBytes) {
        const chunk = this.current;
        [this.current, this.filled] = [undefined, 0];
        yield chunk;
      }
    }
  }

  /** The last, short chunk, at the end of the data. */
  rest(): Buffer | undefined {
    return this.current !== undefined && this.filled > 0 ? this.current.subarray(0, this.filled) : undefined;
  }
}

export function silent(idleMs: number): QubesError {
  return new QubesError('TIMEOUT', `the sender sent nothing for ${idleMs / 1000} s`);
}

function respondError(msg: Msg, error: QubesError): void {
  const hdrs = natsHeaders();
  hdrs.set(SERVICE_ERROR_CODE_HEADER, String(error.status));
  hdrs.set(SERVICE_ERROR_HEADER, headerSafe(error.message));
  msg.respond(encodeJson(error.toBody()), { headers: hdrs });
}
