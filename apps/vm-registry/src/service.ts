import type { Bus, BusService } from '@qubes-bus/bus';
import { AdminVmList, ServiceName } from '@qubes-bus/contracts';
import type { Logger } from '@qubes-bus/log';
import type { QubesXml } from '@qubes-bus/qubes-model';
import { listVms } from './handlers/vm-list';
import { QubesXmlStore } from './store';
import { version } from '../package.json';

export interface RegistryOptions {
  bus: Bus;
  log: Logger;
  dataDir: string;
}

export interface Registry {
  readonly store: QubesXmlStore;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createRegistry({ bus, log, dataDir }: RegistryOptions): Registry {
  const store = new QubesXmlStore(dataDir, log);
  let service: BusService | undefined;
  let model: QubesXml | undefined;
  const loaded = (): QubesXml => {
    if (model === undefined) throw new Error('the registry is not started');
    return model;
  };

  return {
    store,
    async start() {
      // Load first: a malformed qubes.xml stops the registry before it answers anything.
      model = await store.load();
      await bus.ensureEventStream();
      service = await bus.createService(ServiceName.VmRegistry, {
        version,
        description: 'qubes.xml and the VMs in it',
      });
      service.serve(AdminVmList, (_req, ctx) => listVms(loaded(), ctx));
      log.info({ dataDir, vms: model.domains.length }, 'vm-registry serving');
    },
    async stop() {
      await service?.stop();
    },
  };
}
