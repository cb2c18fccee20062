import type { ServiceName } from '@qubes-bus/contracts';
import type { Logger } from '@qubes-bus/log';
import type { Bus } from './bus';
import { assertServes, type Router } from './handle';
import type { Runnable } from './run-service';
import type { BusService } from './serve';

/** What a service says of itself; the skeleton does the rest. */
export interface ServiceDefinition {
  readonly name: ServiceName;
  readonly version: string;
  readonly description: string;
  /**
   * Sets the service up (loads its state, opens what it needs) and registers its handlers on
   * `router`. Nothing is answered until it has resolved: a service that cannot set up (a
   * malformed qubes.xml) never answers at all.
   */
  setUp(router: Router): Promise<SetUp | void> | SetUp | void;
}

export interface SetUp {
  /** Fields of the "serving" log line (the data dir, how many VMs, ...). */
  readonly fields?: Record<string, unknown>;
  /** Releases what setUp opened; called once every request already taken is answered. */
  tearDown?(): Promise<void>;
}

/**
 * One service's life on the bus, the same for every service: the event stream, the NATS micro
 * service (so `$SRV.PING/INFO/STATS` find it) with the handlers setUp registered, a flush so
 * that a request sent once start() has resolved is answered, the "serving" line, and a stop
 * that stops taking requests, answers those in flight, then tears down.
 */
export function serviceSkeleton(bus: Bus, log: Logger, definition: ServiceDefinition): Runnable {
  let service: BusService | undefined;
  let setUp: SetUp | void;
  return {
    async start() {
      await bus.ensureEventStream();
      const registrations: Array<(on: Router) => void> = [];
      setUp = await definition.setUp({
        serve(endpoint, handler) {
          assertServes(definition.name, endpoint); // at once, before any service is registered
          registrations.push((on) => on.serve(endpoint, handler));
        },
      });
      service = await bus.createService(definition.name, { version: definition.version, description: definition.description });
      for (const register of registrations) register(service);
      await bus.nc.flush(); // the server has our subscriptions: a request sent now is answered
      log.info({ version: definition.version, ...setUp?.fields }, `${definition.name} serving`);
    },
    async stop() {
      await service?.stop(); // answers what it has taken
      await setUp?.tearDown?.();
    },
  };
}
