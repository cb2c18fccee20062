import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants, rmSync } from 'node:fs';
import { access, chmod, mkdir, stat } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInbox, headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { QubesError } from '@qubes-bus/contracts';
import { encodeJson, errorFromBody, errorFromReply, headerSafe, SERVICE_ERROR_CODE_HEADER, SERVICE_ERROR_HEADER } from './wire';

/**
 * Bulk data over the bus (a volume import or export, gigabytes): NATS messages are at most
 * `max_payload` (1 MiB by default), so the data goes as numbered chunks, each a request the
 * receiver answers once it has taken the chunk (written it), with a window of chunks in flight
 * for throughput and no more, for back-pressure. A last, empty request marked as the end is
 * answered with the outcome of the whole transfer: a JSON result or an error.
 *
 * The receiver makes the subject (an inbox) and gives it to the sender in the reply to the call
 * that starts the transfer (`admin.vm.volume.Import` answers with it). On one host the bytes
 * need not cross three processes' NATS buffers (the bus tops out at a few hundred MiB/s where a
 * disk writes a GiB/s): the receiver may also offer a Unix socket in a directory private to the
 * host's services, with a token to write first; a sender that can open it sends there, in
 * frames, and reads the outcome as the socket's last line. Qubes does the same: the Admin API
 * call goes through qrexec's policy, the data through the call's own pipe. The receiver may also
 * offer a file (Qubes' `import_data` path): a sender with its data in a file copies it in (the
 * kernel does, or makes a reflink), then only ends on the socket (`<token> file`).
 */

export const STREAM_SEQ_HEADER = 'Qubes-Stream-Seq';
export const STREAM_END_HEADER = 'Qubes-Stream-End';
/** On the end mark of a sender whose source failed: the data is not whole. */
export const STREAM_ABORT_HEADER = 'Qubes-Stream-Abort';

/** The largest chunk a connection's server takes (max_payload, less room for headers). */
export function streamChunkBytes(nc: NatsConnection): number {
  const max = nc.info?.max_payload ?? 1024 * 1024;
  return Math.max(4096, max - 4096);
}

/** The chunk size a receiver asks for, where the server takes it. */
export const STREAM_CHUNK_BYTES = 1024 * 1024;

export const DEFAULT_STREAM_WINDOW = 8;

/** How long a connection to a receiver's socket has to say its token. */
const HANDSHAKE_MS = 10_000;

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
 * What reaches the consumer: a NATS chunk (answered once taken), local bytes, the local end mark,
 * or a local sender gone before it (a killed sender closes its socket as a finished one would:
 * hence the frames, `<u32 length><bytes>`, and the empty one that ends the data).
 */
type Arrival = { msg: Msg } | { bytes: Buffer } | { localEnd: true } | { localLost: true };

/**
 * Opens a stream to receive on, live at the server once this resolves (a sender on another
 * connection could otherwise beat the subscription there). A sender silent for `idleMs` fails
 * the iteration with TIMEOUT (an abandoned import must not hold its temporary file for ever).
 * With `localDir`, a sender on this host may use the stream's socket instead; the first sender,
 * on either path, is the only one.
 */
export async function receiveBytes<T>(nc: NatsConnection, options: ReceiveOptions = {}): Promise<ByteStreamReceiver<T>> {
  const idleMs = options.idleMs ?? 30_000;
  const window = options.window ?? DEFAULT_STREAM_WINDOW;
  const chunkBytes = Math.min(options.chunkBytes ?? STREAM_CHUNK_BYTES, streamChunkBytes(nc));
  const subject = createInbox();
  let endMark: Msg | undefined;
  /** A chunk handed out and not yet answered: the consumer is working on it. */
  let unanswered: Msg | undefined;
  let failure: QubesError | undefined;
  let result: { ok: true; value: T } | undefined;
  const queue: Arrival[] = [];
  let queuedLocalBytes = 0;
  let wake: (() => void) | undefined;
  let path: 'bus' | 'socket' | 'file' | undefined;
  let begin!: (via: 'bus' | 'socket' | 'file') => void;
  const begun = new Promise<'bus' | 'socket' | 'file'>((resolve) => (begin = resolve));
  let local: Socket | undefined;
  let finished = false;

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
  const arrive = (arrival: Arrival): void => {
    queue.push(arrival);
    wake?.();
  };

  const sub: Subscription = nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err !== null) return;
      if (path !== undefined && path !== 'bus') return respondError(msg, new QubesError('BAD_REQUEST', 'this stream is being sent on its local socket'));
      if (path === undefined) begin((path = 'bus'));
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
      arrive({ msg });
    },
  });

  const offer = options.localDir === undefined ? null : await offerSocket(options.localDir, options.file !== undefined, (socket, mode) => {
    if (path !== undefined) return false;
    begin((path = mode === 'file' ? 'file' : 'socket'));
    local = socket;
    const frames = new FrameReader();
    socket.on('data', (bytes: Buffer) => {
      if (frames.ended || finished) return; // after the end mark, or the outcome: nothing is data
      const pieces = frames.read(bytes);
      if (path === 'file' && pieces.length > 0) {
        socket.destroy(); // the data was to be in the file: a sender that streams too is confused
        arrive({ localLost: true });
        return;
      }
      for (const piece of pieces) {
        queuedLocalBytes += piece.length;
        arrive({ bytes: piece });
      }
      if (frames.ended) arrive({ localEnd: true });
      if (queuedLocalBytes >= window * chunkBytes) socket.pause(); // back-pressure, as the window is
    });
    const lost = (): void => {
      if (!frames.ended) arrive({ localLost: true });
    };
    socket.once('end', lost);
    socket.on('error', lost);
    return true;
  }).catch(() => null); // a directory it cannot use (a path too long for a socket, ...): the bus alone

  /** Waits for something to arrive; TIMEOUT if nothing does for idleMs. */
  const next = async (): Promise<Arrival> => {
    while (queue.length === 0) {
      let timer: NodeJS.Timeout | undefined;
      const idle = await new Promise<boolean>((resolve) => {
        wake = () => resolve(false);
        // a sender copying into the file says nothing until it is done, however long that takes;
        // if it dies, its socket closes, and that arrives
        if (path !== 'file') timer = setTimeout(() => resolve(true), idleMs);
      }).finally(() => {
        clearTimeout(timer);
        wake = undefined;
      });
      if (idle) throw new QubesError('TIMEOUT', `the sender sent nothing for ${idleMs / 1000} s`);
    }
    return queue.shift()!;
  };

  async function* chunks(): AsyncGenerator<Uint8Array> {
    let expected = 0;
    let current: Buffer | undefined;
    let filled = 0;
    try {
      for (;;) {
        const arrival = await next();
        if ('bytes' in arrival) {
          // local bytes come in the kernel's pieces: the consumer gets whole chunks, each in
          // memory of its own (it may hand them on to another thread without a copy)
          queuedLocalBytes -= arrival.bytes.length;
          if (queuedLocalBytes < window * chunkBytes) local?.resume();
          for (let at = 0; at < arrival.bytes.length; ) {
            current ??= Buffer.allocUnsafeSlow(chunkBytes);
            const taken = arrival.bytes.copy(current, filled, at);
            [at, filled] = [at + taken, filled + taken];
            if (filled === chunkBytes) {
              const chunk = current;
              [current, filled] = [undefined, 0];
              yield chunk;
            }
          }
          continue;
        }
        if ('localEnd' in arrival) {
          if (current !== undefined && filled > 0) yield current.subarray(0, filled);
          return;
        }
        if ('localLost' in arrival) throw new QubesError('OPERATION_CANCELLED', 'the sender went away before the end of the data');
        const msg = arrival.msg;
        if (msg.headers?.has(STREAM_ABORT_HEADER) === true) throw new QubesError('OPERATION_CANCELLED', 'the sender went away before the end of the data');
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
    } finally {
      offer?.close(); // no other sender, once the data has begun or ended
    }
  }

  const beginning = Promise.race([
    begun,
    new Promise<never>((_, reject) => setTimeout(() => reject(new QubesError('TIMEOUT', `the sender sent nothing for ${idleMs / 1000} s`)), idleMs).unref()),
  ]);
  beginning.catch(() => undefined); // a receiver that never asks is told by its chunks
  try {
    await nc.flush();
  } catch (err) {
    offer?.close();
    sub.unsubscribe();
    throw err;
  }
  return {
    subject,
    chunkBytes,
    window,
    socket: offer?.path ?? null,
    token: offer?.token ?? null,
    file: offer !== null && options.file !== undefined ? options.file : null,
    begun: beginning,
    chunks: chunks(),
    get via() {
      return path ?? null;
    },
    finish(outcome) {
      finished = true;
      offer?.close();
      if (outcome.ok) result = outcome;
      else failure = outcome.error;
      if (local !== undefined) {
        // the outcome is the socket's last line; a failed stream's unread data is dropped
        local.end(`${JSON.stringify(outcome.ok ? { ok: true, value: outcome.value } : { ok: false, error: outcome.error.toBody() })}\n`);
        if (!outcome.ok) local.resume();
        sub.unsubscribe();
        return;
      }
      if (failure !== undefined) {
        for (const arrival of [...(unanswered === undefined ? [] : [{ msg: unanswered }]), ...queue.splice(0)]) {
          if (!('msg' in arrival)) continue;
          if (arrival.msg.headers?.has(STREAM_END_HEADER) === true) endMark = arrival.msg;
          else respondError(arrival.msg, failure);
        }
        unanswered = undefined;
      }
      if (endMark !== undefined) settle();
      else if (failure !== undefined) setTimeout(() => sub.unsubscribe(), idleMs).unref(); // a vanished sender never ends
      else sub.unsubscribe();
    },
  };
}

/** Splits a local stream into its frames' bytes (no copies), and sees the empty end frame. */
class FrameReader {
  ended = false;
  private remaining = 0;
  private header = Buffer.alloc(0);

  read(bytes: Buffer): Buffer[] {
    const pieces: Buffer[] = [];
    let at = 0;
    while (at < bytes.length && !this.ended) {
      if (this.remaining === 0) {
        const needed = 4 - this.header.length;
        this.header = Buffer.concat([this.header, bytes.subarray(at, at + needed)]);
        at += Math.min(needed, bytes.length - at);
        if (this.header.length < 4) break;
        this.remaining = this.header.readUInt32BE(0);
        this.header = Buffer.alloc(0);
        if (this.remaining === 0) this.ended = true;
        continue;
      }
      const piece = bytes.subarray(at, at + this.remaining);
      at += piece.length;
      this.remaining -= piece.length;
      pieces.push(piece);
    }
    return pieces;
  }
}

/** A frame's header: the length of the bytes that follow (0: the end of the data). */
function frameHeader(length: number): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(length, 0);
  return header;
}

/**
 * A one-sender Unix socket in `dir`: the first connection that writes the token line is handed
 * to `accept` (which may still refuse it); the socket file goes once one is taken, or at close.
 */
async function offerSocket(dir: string, fileOffered: boolean, accept: (socket: Socket, mode: 'stream' | 'file') => boolean): Promise<{ path: string; token: string; close(): void }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `s-${randomBytes(8).toString('hex')}.sock`);
  const token = randomBytes(24).toString('hex');
  let closed = false;
  // half-open: the sender's end of its data must not close the way back for the outcome
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    let head = '';
    // a connection that does not say the token at once is let go
    const handshake = setTimeout(() => socket.destroy(), HANDSHAKE_MS);
    handshake.unref();
    socket.once('close', () => clearTimeout(handshake));
    const onData = (bytes: Buffer): void => {
      const newline = bytes.indexOf(0x0a);
      head += bytes.subarray(0, newline < 0 ? bytes.length : newline).toString('latin1');
      if (newline < 0 && head.length <= token.length + ' file'.length) return;
      socket.off('data', onData);
      socket.pause();
      clearTimeout(handshake);
      // `<token>` then frames of data, or `<token> file` then only the end mark (the data is in the file)
      const [given, mode = 'stream', ...more] = head.split(' ');
      const valid = newline >= 0 && given === token && more.length === 0 && (mode === 'stream' || (mode === 'file' && fileOffered));
      if (!valid || closed || !accept(socket, mode as 'stream' | 'file')) return void socket.destroy();
      close();
      const rest = bytes.subarray(newline + 1);
      if (rest.length > 0) socket.unshift(rest);
      socket.resume();
    };
    socket.on('data', onData);
    socket.on('error', () => socket.destroy());
  });
  const close = (): void => {
    if (closed) return;
    closed = true;
    server.close();
    rmSync(file, { force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(file, resolve));
    await chmod(file, 0o660); // the directory says who may reach it (its group: the tools); the token, who may send
  } catch (err) {
    close();
    throw err;
  }
  server.unref(); // an offer nobody takes keeps no process alive
  return { path: file, token, close };
}

export interface SendOptions {
  window?: number;
  chunkBytes?: number;
  /** Per chunk; the end mark waits `finishTimeoutMs` (the receiver commits then). */
  timeoutMs?: number;
  finishTimeoutMs?: number;
  onProgress?: (bytes: number) => void;
  /** The receiver's local socket and its token (its offer): used when it is on this host. */
  socket?: string | null | undefined;
  token?: string | null | undefined;
  /** The receiver's file, where it offers one (its offer), and how to write the data into it. */
  file?: string | null | undefined;
  /**
   * Writes the whole data into `target` (an existing, empty file: write into it, do not replace
   * it), where the receiver offers a file this sender may write; `source` is then not read.
   */
  writeFile?: ((target: string) => Promise<void>) | undefined;
}

/**
 * Sends `source` to a receiver and returns what the receiver made of it (its JSON result): on
 * the receiver's local socket where it offers one this host can open, else as chunks on its
 * subject. A chunk the receiver refuses stops the transfer with the receiver's error.
 */
export async function sendBytes(nc: NatsConnection, subject: string, source: AsyncIterable<Uint8Array>, options: SendOptions = {}): Promise<unknown> {
  if (options.socket != null && options.token != null) {
    const file = options.file != null && options.writeFile !== undefined && (await writable(options.file)) ? options.file : null;
    const socket = await connectLocal(options.socket);
    if (socket !== null && file !== null) return sendLocal(socket, `${options.token} file`, null, options, () => options.writeFile!(file));
    if (socket !== null) return sendLocal(socket, options.token, source, options);
  }
  return sendChunks(nc, subject, source, options);
}

/** The receiver's socket, or null where this host cannot reach it (another host, another user). */
async function connectLocal(file: string): Promise<Socket | null> {
  return new Promise((resolve) => {
    const socket = createConnection(file);
    socket.once('connect', () => {
      socket.off('error', refused);
      resolve(socket);
    });
    const refused = (): void => resolve(null);
    socket.once('error', refused);
  });
}

async function writable(file: string): Promise<boolean> {
  try {
    await access(file, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** On the receiver's socket: `head`, then the data as frames (or written by `writeFile`), the end mark. */
async function sendLocal(socket: Socket, head: string, source: AsyncIterable<Uint8Array> | null, options: SendOptions, writeFile?: () => Promise<void>): Promise<unknown> {
  let answer = '';
  let answered = false;
  const outcome = new Promise<string>((resolve, reject) => {
    socket.on('data', (bytes: Buffer) => {
      answer += bytes.toString('utf8');
      if (answer.includes('\n')) {
        answered = true;
        resolve(answer.slice(0, answer.indexOf('\n')));
      }
    });
    socket.once('close', () => reject(new QubesError('INTERNAL', 'the receiver closed the stream without an answer')));
    socket.on('error', () => undefined); // a receiver that stopped reading: its answer says why
  });
  outcome.catch(() => undefined);
  const writable = (): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        socket.off('drain', done).off('close', done);
        resolve();
      };
      socket.once('drain', done).once('close', done);
    });
  let sent = 0;
  socket.write(`${head}\n`);
  let complete = true;
  try {
    if (writeFile !== undefined) {
      // the copy's progress is the file's size as it grows
      const file = options.file!;
      const poll = setInterval(() => {
        stat(file).then((s) => options.onProgress?.(s.size), () => undefined);
      }, 250);
      try {
        await writeFile();
      } finally {
        clearInterval(poll);
      }
      options.onProgress?.((await stat(file)).size);
    }
    for await (const piece of source ?? []) {
      if (answered || socket.destroyed) {
        complete = false; // the receiver has failed: it says why
        break;
      }
      if (piece.byteLength === 0) continue; // an empty frame is the end mark
      socket.write(frameHeader(piece.byteLength));
      if (!socket.write(piece)) await writable();
      sent += piece.byteLength;
      options.onProgress?.(sent);
    }
  } catch (err) {
    socket.destroy(); // without the end mark: the receiver drops what it had
    throw err;
  }
  if (complete) socket.end(frameHeader(0));
  else socket.end();
  let line: string;
  try {
    line = await withTimeout(outcome, options.finishTimeoutMs ?? 600_000);
  } finally {
    socket.destroy();
  }
  const reply = JSON.parse(line) as { ok: boolean; value?: unknown; error?: unknown };
  if (!reply.ok) throw errorFromBody(reply.error, 'the receiver failed', 500);
  return reply.value ?? null;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new QubesError('TIMEOUT', `the receiver did not answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The subject's way: numbered chunk requests, a window of them in flight, then the end mark. */
async function sendChunks(nc: NatsConnection, subject: string, source: AsyncIterable<Uint8Array>, options: SendOptions): Promise<unknown> {
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

  try {
    for await (const piece of source) {
      pending.push(Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength));
      pendingBytes += piece.byteLength;
      await flush(false);
      if (failure !== undefined) break;
    }
  } catch (err) {
    // the source failed: the receiver is told at once, and keeps nothing
    const hdrs = natsHeaders();
    hdrs.set(STREAM_END_HEADER, '1');
    hdrs.set(STREAM_ABORT_HEADER, '1');
    nc.publish(subject, new Uint8Array(0), { headers: hdrs });
    throw err;
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

/**
 * A `writeFile` for sendBytes whose data is the file `source`: coreutils' cp into the receiver's
 * file, in place (the file is the receiver's: it is written, not replaced), holes kept and a
 * reflink where both are on one filesystem that has them; the bytes never enter this process.
 */
export function copyFileInto(source: string): (target: string) => Promise<void> {
  return (target) =>
    new Promise((resolve, reject) => {
      execFile('cp', ['--sparse=always', '--reflink=auto', '--', source, target], (err, _stdout, stderr) => {
        if (err === null) return resolve();
        reject(new QubesError('BAD_REQUEST', `cannot copy ${source}: ${stderr.trim() || err.message}`, { details: { file: source } }));
      });
    });
}
