import { connectBus, DEFAULT_NATS_URL, redactUrl } from '@qubes-bus/bus';
import { ServiceName } from '@qubes-bus/contracts';
import { LibvirtHypervisor, parseDomainFlavor, OfflineHypervisor } from '@qubes-bus/hypervisor';
import { createLogger } from '@qubes-bus/log';
import { runOffline } from './offline';
import { createRegistry } from './service';
import path from 'node:path';
import { workerValidator } from './validate-worker';

// libvirt's binding runs each call on libuv's pool (4 threads by default), beside every file
// operation: a few calls stuck on a hung QEMU monitor must not stall qubes.xml saves. The pool
// is made on first use, after this line.
process.env['UV_THREADPOOL_SIZE'] ??= '16';

const dataDir = process.env['QUBES_DATA_DIR'] ?? '/var/lib/qubes';
/** Built beside this bundle (tools/build.mjs bundles every src/*.worker.ts). */
const validator = workerValidator(path.join(__dirname, 'xml-validation.worker.js'));

async function serve(): Promise<void> {
  const url = process.env['QUBES_NATS_URL'] ?? DEFAULT_NATS_URL;
  const log = createLogger(ServiceName.VmRegistry);
  log.info({ bus: redactUrl(url), dataDir }, 'starting');
  // Waits for the bus as long as it takes: a service may start before its nats-server.
  const bus = await connectBus({ url, name: ServiceName.VmRegistry, log, mode: 'service' }).catch((err: unknown) => {
    log.fatal({ err }, 'vm-registry cannot connect to the bus');
    process.exit(1);
  });
  const uri = process.env['LIBVIRT_URI'];
  const flavor = parseDomainFlavor(process.env['QUBES_DOMAIN_TYPE']);
  const hypervisor = uri ? new LibvirtHypervisor(uri, { flavor }) : new OfflineHypervisor('LIBVIRT_URI is not set');
  log.info({ libvirt: uri ?? null, flavor: flavor ?? 'what libvirt offers' }, 'hypervisor');
  const registry = createRegistry({ bus, log, dataDir, validator, hypervisor });
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    await registry.stop();
    await bus.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  try {
    await registry.start();
  } catch (err) {
    log.fatal({ err }, 'vm-registry cannot start');
    await bus.close();
    process.exit(1);
  }
}

async function offline(): Promise<void> {
  // stdout is the protocol: logs go to stderr, warnings only.
  const log = createLogger(ServiceName.VmRegistry, { destination: 2, level: process.env['LOG_LEVEL'] ?? 'warn', pretty: false });
  process.exitCode = await runOffline(dataDir, log, { create: process.argv.includes('--create-store'), validator });
}

void (process.argv.includes('--offline-stdio') ? offline() : serve());
