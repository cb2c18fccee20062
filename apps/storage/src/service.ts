import type { Bus, BusService, Router } from '@qubes-bus/bus';
import { ServiceName } from '@qubes-bus/contracts';
import type { Logger } from '@qubes-bus/log';
import { version } from '../package.json';
import { registerPoolHandlers } from './handlers/pools';
import { registerVmHooks } from './handlers/vms';
import { registerVolumeHandlers } from './handlers/volumes';
import { Storage } from './storage';

export interface StorageOptions {
  bus: Bus;
  log: Logger;
  /**
   * A directory private to this host's services (QUBES_RUN_DIR) where an import offers a local
   * socket: a sender on this host sends there, through the kernel alone.
   */
  localDir?: string;
}

export interface StorageService {
  readonly storage: Storage;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createStorage(options: StorageOptions): StorageService {
  const { bus, log } = options;
  const storage = new Storage(bus, log, options.localDir);
  let service: BusService | undefined;
  return {
    storage,
    async start() {
      await bus.ensureEventStream();
      service = await bus.createService(ServiceName.Storage, { version, description: 'pools and volumes' });
      // Every call needs the pools, which qubes.xml holds: read from the registry on first use.
      const router: Router = {
        serve(endpoint, handler) {
          service!.serve(endpoint, async (request, ctx) => {
            await storage.ensurePools(ctx);
            return handler(request, ctx);
          });
        },
      };
      registerVolumeHandlers(router, storage);
      registerPoolHandlers(router, storage);
      registerVmHooks(router, storage);
      await bus.nc.flush();
      log.info('storage serving');
    },
    async stop() {
      await service?.stop();
    },
  };
}
