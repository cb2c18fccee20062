import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createConnection } from 'node:net';
import { QubesError } from '@qubes-bus/contracts';
import { captureLog, rejectionOf, startNats, tmpDataDir, type TestNats, type TmpDir } from '@qubes-bus/testing';
import { connectBus, copyFileInto, receiveBytes, sendBytes, type Bus } from '../src';

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

  it('fails the receiver at once (OPERATION_CANCELLED) when the sender\'s source fails half-way', async () => {
    const stream = await receiveBytes<null>(receiver.nc);
    const consumed = rejectionOf(
      (async () => {
        for await (const _chunk of stream.chunks) {
          // taken
        }
      })(),
    );
    async function* broken(): AsyncGenerator<Buffer> {
      yield randomBytes(2 * 1024 * 1024);
      throw new Error('the disk went away');
    }
    await expect(sendBytes(sender.nc, stream.subject, broken())).rejects.toThrow('the disk went away');
    expect((await consumed).code).toBe('OPERATION_CANCELLED');
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

  describe('on one host, through the receiver\'s local socket', () => {
    let runDir: TmpDir;
    beforeAll(() => {
      runDir = tmpDataDir('qubes-bus-run-');
    });
    afterAll(() => runDir.remove());

    /** Takes everything the stream sends and answers its hash; fails with `failAfter` bytes. */
    function consume(stream: Awaited<ReturnType<typeof receiveBytes<{ sha: string; chunks: number }>>>, failAfter = Infinity): Promise<unknown> {
      return (async () => {
        const hash = createHash('sha256');
        let [bytes, chunks] = [0, 0];
        try {
          for await (const chunk of stream.chunks) {
            expect(chunk.length).toBeLessThanOrEqual(stream.chunkBytes);
            hash.update(chunk);
            bytes += chunk.length;
            chunks++;
            if (bytes > failAfter) throw new QubesError('VOLUME_TOO_BIG', `more than ${failAfter} bytes`);
          }
          await new Promise((resolve) => setTimeout(resolve, 50)); // a commit after the end: fsync, rename
          stream.finish({ ok: true, value: { sha: hash.digest('hex'), chunks } });
        } catch (err) {
          stream.finish({ ok: false, error: err as QubesError });
          return err;
        }
        return null;
      })();
    }

    it('carries the data in whole chunks, nothing of it on the subject, answers the result, and leaves no socket file', async () => {
      const data = randomBytes(40 * 1024 * 1024 + 777);
      const stream = await receiveBytes<{ sha: string; chunks: number }>(receiver.nc, { localDir: runDir.path });
      expect(stream.socket).toMatch(new RegExp(`^${runDir.path}/s-[0-9a-f]{16}\\.sock$`));
      const onSubject = sender.nc.subscribe(stream.subject);
      const consumed = consume(stream);
      const progress: number[] = [];
      const result = await sendBytes(sender.nc, stream.subject, pieces(data, 100_003), { socket: stream.socket, token: stream.token, onProgress: (n) => progress.push(n) });
      expect(await consumed).toBeNull();
      expect(result).toEqual({ sha: sha(data), chunks: Math.ceil(data.length / stream.chunkBytes) });
      expect(progress.at(-1)).toBe(data.length);
      await sender.nc.flush();
      expect(onSubject.getReceived()).toBe(0);
      expect(stream.via).toBe('socket');
      onSubject.unsubscribe();
      expect(readdirSync(runDir.path)).toEqual([]);
    });

    it('stops the sender with the receiver\'s error as soon as the receiver fails', async () => {
      const stream = await receiveBytes<{ sha: string; chunks: number }>(receiver.nc, { localDir: runDir.path });
      const consumed = consume(stream, 3 * 1024 * 1024);
      let offered = 0;
      async function* endless(): AsyncGenerator<Buffer> {
        for (;;) {
          offered += 1024 * 1024;
          yield randomBytes(1024 * 1024);
        }
      }
      const failure = await rejectionOf(sendBytes(sender.nc, stream.subject, endless(), { socket: stream.socket, token: stream.token }));
      expect(`${failure.code}: ${failure.message}`).toBe('VOLUME_TOO_BIG: more than 3145728 bytes');
      expect(((await consumed) as QubesError).code).toBe('VOLUME_TOO_BIG');
      expect(offered).toBeLessThan(64 * 1024 * 1024);
    });

    it('fails the receiver (OPERATION_CANCELLED) when the sender goes before its end mark: a killed sender is not a short file', async () => {
      const stream = await receiveBytes<{ sha: string; chunks: number }>(receiver.nc, { localDir: runDir.path });
      const consumed = consume(stream);
      async function* broken(): AsyncGenerator<Buffer> {
        yield randomBytes(2 * 1024 * 1024);
        throw new Error('the disk went away');
      }
      await expect(sendBytes(sender.nc, stream.subject, broken(), { socket: stream.socket, token: stream.token })).rejects.toThrow('the disk went away');
      expect(((await consumed) as QubesError).code).toBe('OPERATION_CANCELLED');
    });

    it('turns away a connection without the token, and a sender that cannot reach the socket uses the subject', async () => {
      const stream = await receiveBytes<{ sha: string; chunks: number }>(receiver.nc, { localDir: runDir.path });
      const intruder = createConnection(stream.socket!);
      intruder.write(`${'0'.repeat(stream.token!.length)}\n`);
      await new Promise((resolve) => intruder.once('close', resolve));
      expect(existsSync(stream.socket!)).toBe(true); // still offered to the real sender

      const consumed = consume(stream);
      const data = randomBytes(3 * 1024 * 1024);
      const onSubject = sender.nc.subscribe(stream.subject);
      // another host's sender: the socket is not there for it
      const result = await sendBytes(sender.nc, stream.subject, pieces(data, 65_536), { socket: `${runDir.path}/elsewhere.sock`, token: stream.token });
      expect(await consumed).toBeNull();
      expect(result).toEqual({ sha: sha(data), chunks: Math.ceil(data.length / stream.chunkBytes) });
      expect(onSubject.getReceived()).toBeGreaterThan(3);
      expect(stream.via).toBe('bus');
      onSubject.unsubscribe();
      expect(existsSync(stream.socket!)).toBe(false);
    });

    it('lets a sender here write the data into the file the receiver offers (a copy by the kernel, however long it takes), and only end on the socket', async () => {
      const data = randomBytes(5 * 1024 * 1024 + 99);
      const source = path.join(runDir.path, 'source.img');
      writeFileSync(source, data);
      const offered = path.join(runDir.path, 'offered.img');
      writeFileSync(offered, '');
      // a copy that outlasts the receiver's patience with a silent sender is no silent sender
      const stream = await receiveBytes<{ sha: string; chunks: number }>(receiver.nc, { localDir: runDir.path, file: offered, idleMs: 200 });
      expect(stream.file).toBe(offered);
      const slowCopy = async (target: string): Promise<void> => {
        await new Promise((resolve) => setTimeout(resolve, 600));
        await copyFileInto(source)(target);
      };
      const taken = (async () => {
        expect(await stream.begun).toBe('file');
        let chunks = 0;
        for await (const _chunk of stream.chunks) chunks++;
        stream.finish({ ok: true, value: { sha: sha(readFileSync(offered)), chunks } });
      })();
      const progress: number[] = [];
      const result = await sendBytes(sender.nc, stream.subject, pieces(Buffer.alloc(0), 1), {
        socket: stream.socket,
        token: stream.token,
        file: stream.file,
        writeFile: slowCopy,
        onProgress: (n) => progress.push(n),
      });
      await taken;
      expect(result).toEqual({ sha: sha(data), chunks: 0 });
      expect(progress.at(-1)).toBe(data.length);
      expect(stream.via).toBe('file');
    });

    it('streams to a receiver offering a file when the sender has no file to give; a copy that fails fails the receiver too', async () => {
      const offered = path.join(runDir.path, 'offered-too.img');
      writeFileSync(offered, '');
      const data = randomBytes(2 * 1024 * 1024);
      let stream = await receiveBytes<{ sha: string; chunks: number }>(receiver.nc, { localDir: runDir.path, file: offered });
      let consumed = consume(stream);
      expect(await sendBytes(sender.nc, stream.subject, pieces(data, 65_536), { socket: stream.socket, token: stream.token, file: stream.file })).toEqual({
        sha: sha(data),
        chunks: Math.ceil(data.length / stream.chunkBytes),
      });
      expect(await consumed).toBeNull();
      expect(stream.via).toBe('socket');

      stream = await receiveBytes<{ sha: string; chunks: number }>(receiver.nc, { localDir: runDir.path, file: offered });
      consumed = consume(stream);
      const missing = path.join(runDir.path, 'missing.img');
      const failure = await rejectionOf(sendBytes(sender.nc, stream.subject, pieces(data, 65_536), { socket: stream.socket, token: stream.token, file: stream.file, writeFile: copyFileInto(missing) }));
      expect(failure.message).toContain(`cannot copy ${missing}`);
      expect(((await consumed) as QubesError).code).toBe('OPERATION_CANCELLED');
    });
  });
});
