import type { NatsConnection } from '@nats-io/nats-core';

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
 *
 * This file holds what both ends agree on: the headers, the sizes, the socket's frames.
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

/** Splits a local stream into its frames' bytes (no copies), and sees the empty end frame. */
export class FrameReader {
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
export function frameHeader(length: number): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(length, 0);
  return header;
}
