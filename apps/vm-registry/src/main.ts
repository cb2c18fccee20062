import { runService } from '@qubes-bus/bus';
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

function serve(): Promise<void> {
  const uri = process.env['LIBVIRT_URI'];
  const flavor = parseDomainFlavor(process.env['QUBES_DOMAIN_TYPE']);
  return runService(
    ServiceName.VmRegistry,
    (bus, log) => {
      const hypervisor = uri ? new LibvirtHypervisor(uri, { flavor }) : new OfflineHypervisor('LIBVIRT_URI is not set');
      log.info({ libvirt: uri ?? null, flavor: flavor ?? 'what libvirt offers' }, 'hypervisor');
      return createRegistry({ bus, log, dataDir, validator, hypervisor });
    },
    { dataDir },
  );
}

async function offline(): Promise<void> {
  // stdout is the protocol: logs go to stderr, warnings only.
  const log = createLogger(ServiceName.VmRegistry, { destination: 2, level: process.env['LOG_LEVEL'] ?? 'warn', pretty: false });
  process.exitCode = await runOffline(dataDir, log, { create: process.argv.includes('--create-store'), validator });
}

void (process.argv.includes('--offline-stdio') ? offline() : serve());
