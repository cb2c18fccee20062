import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/nats-core';
import { QubesError } from '@qubes-bus/contracts';
import { errorFromBody, errorFromReply } from '../wire';
import { DEFAULT_STREAM_WINDOW, frameHeader, STREAM_ABORT_HEADER, STREAM_CHUNK_BYTES, STREAM_END_HEADER, STREAM_SEQ_HEADER, streamChunkBytes } from './framing';
import { connectLocal } from './local-socket';

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
