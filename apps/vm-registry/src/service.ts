import type { Bus, BusService } from '@qubes-bus/bus';
import { ServiceName } from '@qubes-bus/contracts';
import type { Logger } from '@qubes-bus/log';
import { version } from '../package.json';
import { busEvents } from './events';
import { registerHandlers } from './handlers';
import { NO_HYPERVISOR, Registry, type PowerStates } from './registry';
import { QubesStore } from './store/qubes-store';

export interface RegistryOptions {
  bus: Bus;
  log: Logger;
  dataDir: string;
  power?: PowerStates;
  /** Revision epoch (tests pin it); default: the time of the load. */
  epoch?: string;
  /** No group commit: the benchmark's baseline. */
  saveEachChange?: boolean;
  /** How qubes.xml is validated (main.ts: in a worker thread); default in line. */
  validator?: (text: string, path: string) => Promise<void>;
}

export interface RegistryService {
  /** The store, once started. */
  readonly store: QubesStore | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createRegistry(options: RegistryOptions): RegistryService {
  const { bus, log, dataDir, power = NO_HYPERVISOR, epoch, saveEachChange = false, validator } = options;
  let store: QubesStore | undefined;
  let service: BusService | undefined;
  return {
    get store() {
      return store;
    },
    async start() {
      // Load first: a malformed qubes.xml stops the registry before it answers anything.
      store = await QubesStore.open({ dataDir, log, whenLocked: 'wait', create: true, saveEachChange, ...(epoch === undefined ? {} : { epoch }), ...(validator === undefined ? {} : { validator }) });
      await bus.ensureEventStream();
      service = await bus.createService(ServiceName.VmRegistry, { version, description: 'qubes.xml and the VMs in it' });
      registerHandlers(service, new Registry(store, busEvents(bus), power));
      await bus.nc.flush(); // the server has our subscriptions: a request sent now is answered
      log.info({ dataDir, vms: store.app.domains.size }, 'vm-registry serving');
    },
    async stop() {
      await service?.stop(); // answers what it has taken, saves included
      await store?.close();
    },
  };
}
