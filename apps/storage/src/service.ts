import { serviceSkeleton, type Bus, type Router } from '@qubes-bus/bus';
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
  const service = serviceSkeleton(bus, log, {
    name: ServiceName.Storage,
    version,
    description: 'pools and volumes',
    setUp(router) {
      // Every call needs the pools, which qubes.xml holds: read from the registry on first use.
      const withPools: Router = {
        serve(endpoint, handler) {
          router.serve(endpoint, async (request, ctx) => {
            await storage.ensurePools(ctx);
            return handler(request, ctx);
          });
        },
      };
      registerVolumeHandlers(withPools, storage);
      registerPoolHandlers(withPools, storage);
      registerVmHooks(withPools, storage);
    },
  });
  return {
    storage,
    start: () => service.start(),
    stop: () => service.stop(),
  };
}
