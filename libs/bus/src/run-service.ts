import type { ServiceName } from '@qubes-bus/contracts';
import { createLogger, type Logger } from '@qubes-bus/log';
import { connectBus, type Bus } from './bus';
import { DEFAULT_NATS_URL, redactUrl } from './connect';

export interface Runnable {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A service process's life, as every apps/<service>/src/main.ts runs it: connect to the bus at
 * QUBES_NATS_URL (waiting for it as long as it takes: a service may start before its
 * nats-server), make the service, start it, and stop it in order on SIGINT or SIGTERM. A service
 * that cannot start exits 1, its reason logged.
 */
export async function runService(name: ServiceName, make: (bus: Bus, log: Logger) => Runnable, fields: Record<string, unknown> = {}): Promise<void> {
  const url = process.env['QUBES_NATS_URL'] ?? DEFAULT_NATS_URL;
  const log = createLogger(name);
  log.info({ bus: redactUrl(url), ...fields }, 'starting');
  const bus = await connectBus({ url, name, log, mode: 'service' }).catch((err: unknown) => {
    log.fatal({ err }, `${name} cannot connect to the bus`);
    process.exit(1);
  });
  const service = make(bus, log);
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    await service.stop();
    await bus.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  try {
    await service.start();
  } catch (err) {
    log.fatal({ err }, `${name} cannot start`);
    await bus.close();
    process.exit(1);
  }
}
