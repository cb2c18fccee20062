import { connectBus, type Bus, type Runnable } from '@qubes-bus/bus';
import type { Logger } from '@qubes-bus/log';
import { captureLog, type CapturedLog } from './capture-log';
import { startNats, type TestNats } from './nats';
import { tmpDataDir, type TmpDir } from './tmp-data-dir';

/** What a service under test is made from: its own bus connection, logger and data dir. */
export interface ServiceParts {
  readonly bus: Bus;
  readonly log: Logger;
  readonly dataDir: string;
}

export interface UnderTest<S extends Runnable> {
  /** The service, started. */
  readonly service: S;
  /** A tool's connection to the same bus: drive the service through the contracts with it. */
  readonly client: Bus;
  /** The service's own connection. */
  readonly bus: Bus;
  /** Everything the service logged. */
  readonly log: CapturedLog;
  readonly dataDir: string;
  /** The nats-server: stop and restart it mid-test. */
  readonly nats: TestNats;
  /** Stops the service, closes both connections, then the server and the data dir it made; a second call waits for the first. */
  stop(): Promise<void>;
}

export interface UnderTestOptions {
  /** A server the test already runs (then it is not stopped here); default a new one. */
  nats?: TestNats;
  /** A data dir the test made (then it is not removed here); default a new temporary one. */
  dataDir?: string;
  /** The service's log capture, if the test wants its own (another level, lines read elsewhere); default `captureLog(name)`. */
  log?: CapturedLog;
}

/**
 * A service as an integration test runs it: on a real nats-server (its own unless given), with
 * a temporary data dir, its own connection and a client connection, started; `stop()` undoes
 * all of it in reverse. `make` is the service's factory (`createStorage`, `createRegistry`).
 * If `start()` fails, what was set up is undone the same way and the error is thrown.
 */
export async function startUnderTest<S extends Runnable>(
  name: string,
  make: (parts: ServiceParts) => S,
  options: UnderTestOptions = {},
): Promise<UnderTest<S>> {
  const nats = options.nats ?? (await startNats());
  const dir: TmpDir | undefined = options.dataDir === undefined ? tmpDataDir() : undefined;
  const dataDir = options.dataDir ?? dir!.path;
  const log = options.log ?? captureLog(name);
  const bus = await connectBus({ url: nats.url, name, log: log.log, mode: 'service' });
  const client = await connectBus({ url: nats.url, name: 'client', log: captureLog('client').log, mode: 'tool' });
  const service = make({ bus, log: log.log, dataDir });
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await service.stop();
      await client.close();
      await bus.close();
      if (options.nats === undefined) await nats.stop();
      dir?.remove();
    })());
  try {
    await service.start();
  } catch (err) {
    await stop();
    throw err;
  }
  return { service, client, bus, log, dataDir, nats, stop };
}
