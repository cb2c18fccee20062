import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { QubesError } from '@qubes-bus/contracts';
import { captureLog, rejectionOf, startNats, type TestNats } from '@qubes-bus/testing';
import { connectBus, receiveBytes, sendBytes, type Bus } from '../src';

let nats: TestNats;
let sender: Bus;
let receiver: Bus;

beforeAll(async () => {
  nats = await startNats();
  sender = await connectBus({ url: nats.url, log: captureLog('sender').log, name: 'sender', mode: 'tool' });
  receiver = await connectBus({ url: nats.url, log: captureLog('receiver').log, name: 'receiver', mode: 'service' });
});

afterAll(async () => {
  await sender?.close();
  await receiver?.close();
  await nats?.stop();
});

async function* pieces(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

const sha = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

describe('bulk data over the bus', () => {
  it('carries 40 MiB in order, whatever the sender’s piece size, and answers the end with the receiver’s result', async () => {
    const data = randomBytes(40 * 1024 * 1024 + 12345);
    const stream = await receiveBytes<{ sha: string; bytes: number }>(receiver.nc);
    const consumed = (async () => {
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const chunk of stream.chunks) {
        expect(chunk.length).toBeLessThanOrEqual(stream.chunkBytes);
        hash.update(chunk);
        bytes += chunk.length;
      }
      stream.finish({ ok: true, value: { sha: hash.digest('hex'), bytes } });
    })();
    const progress: number[] = [];
    const result = await sendBytes(sender.nc, stream.subject, pieces(data, 300_001), { onProgress: (n) => progress.push(n) });
    await consumed;
    expect(result).toEqual({ sha: sha(data), bytes: data.length });
    expect(progress.at(-1)).toBe(data.length);
  });

  it('stops the sender with the receiver’s error as soon as the receiver fails', async () => {
    const stream = await receiveBytes<null>(receiver.nc);
    let taken = 0;
    void (async () => {
      try {
        for await (const chunk of stream.chunks) {
          taken += chunk.length;
          if (taken > 3 * 1024 * 1024) throw new QubesError('VOLUME_TOO_BIG', 'more than 3 MiB');
        }
        stream.finish({ ok: true, value: null });
      } catch (err) {
        stream.finish({ ok: false, error: err as QubesError });
      }
    })();
    let offered = 0;
    async function* endless(): AsyncGenerator<Buffer> {
      for (;;) {
        offered += 1024 * 1024;
        yield randomBytes(1024 * 1024);
      }
    }
    const failure = await rejectionOf(sendBytes(sender.nc, stream.subject, endless()));
    expect(`${failure.code}: ${failure.message}`).toBe('VOLUME_TOO_BIG: more than 3 MiB');
    expect(offered).toBeLessThan(20 * 1024 * 1024); // the window, not the whole endless source
  });

  it('gives up on a sender that goes silent (TIMEOUT), so nothing waits for ever', async () => {
    const stream = await receiveBytes<null>(receiver.nc, { idleMs: 300 });
    const failure = await rejectionOf(
      (async () => {
        for await (const _chunk of stream.chunks) {
          // nothing comes
        }
      })(),
    );
    expect(failure.code).toBe('TIMEOUT');
  });
});
