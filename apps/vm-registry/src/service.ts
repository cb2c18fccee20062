import { serviceSkeleton, type Bus } from '@qubes-bus/bus';
import { ServiceName } from '@qubes-bus/contracts';
import { OfflineHypervisor, type Hypervisor } from '@qubes-bus/hypervisor';
import type { Logger } from '@qubes-bus/log';
import { QubesDb } from '@qubes-bus/qubesdb';
import { version } from '../package.json';
import { busEvents } from './events';
import { registerHandlers } from './handlers';
import { Lifecycle } from './lifecycle/lifecycle';
import { Registry } from './registry';
import { QubesStore } from './store/qubes-store';

export interface RegistryOptions {
  bus: Bus;
  log: Logger;
  dataDir: string;
  /** Default: none (offline: VMs cannot run, qubes.xml can be edited). */
  hypervisor?: Hypervisor;
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
  /** The lifecycle, once started. */
  readonly lifecycle: Lifecycle | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createRegistry(options: RegistryOptions): RegistryService {
  const { bus, log, dataDir, epoch, saveEachChange = false, validator } = options;
  const hypervisor = options.hypervisor ?? new OfflineHypervisor('the registry runs without LIBVIRT_URI');
  let store: QubesStore | undefined;
  let lifecycle: Lifecycle | undefined;
  const service = serviceSkeleton(bus, log, {
    name: ServiceName.VmRegistry,
    version,
    description: 'qubes.xml and the VMs in it',
    async setUp(router) {
      // Load first: a malformed qubes.xml stops the registry before it answers anything.
      const opened = await QubesStore.open({ dataDir, log, whenLocked: 'wait', create: true, saveEachChange, ...(epoch === undefined ? {} : { epoch }), ...(validator === undefined ? {} : { validator }) });
      store = opened;
      const qubesdb = await QubesDb.open(bus.nc);
      const running = new Lifecycle({ app: () => opened.app, hypervisor, dataDir, log, bus, qubesdb });
      lifecycle = running;
      // The states are known before the first listing is answered.
      await running.attach();
      registerHandlers(router, new Registry(opened, busEvents(bus), running));
      return {
        fields: { dataDir, vms: opened.app.domains.size, hypervisor: hypervisor.uri ?? 'offline' },
        async tearDown() {
          await running.detach();
          await opened.close();
        },
      };
    },
  });
  return {
    get store() {
      return store;
    },
    get lifecycle() {
      return lifecycle;
    },
    start: () => service.start(),
    stop: () => service.stop(),
  };
}
