import { runService } from '@qubes-bus/bus';
import { ServiceName } from '@qubes-bus/contracts';
import { createStorage } from './service';

void runService(ServiceName.Storage, (bus, log) => createStorage({ bus, log }));
