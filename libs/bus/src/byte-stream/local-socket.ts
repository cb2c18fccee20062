import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';

/** How long a connection to a receiver's socket has to say its token. */
const HANDSHAKE_MS = 10_000;

/** A receiver's socket on offer: where it is, what a sender writes first, and its withdrawal. */
export interface SocketOffer {
  readonly path: string;
  readonly token: string;
  close(): void;
}

/**
 * A one-sender Unix socket in `dir`: the first connection that writes the token line is handed
 * to `accept` (which may still refuse it); the socket file goes once one is taken, or at close.
 */
export async function offerSocket(dir: string, fileOffered: boolean, accept: (socket: Socket, mode: 'stream' | 'file') => boolean): Promise<SocketOffer> {
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

/** The receiver's socket, or null where this host cannot reach it (another host, another user). */
export async function connectLocal(file: string): Promise<Socket | null> {
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
