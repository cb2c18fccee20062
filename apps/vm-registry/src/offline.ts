import { isQubesError, QubesError } from '@qubes-bus/contracts';
import { LocalRouter, reportFatal, serveStdio } from '@qubes-bus/bus';
import { OfflineHypervisor } from '@qubes-bus/hypervisor';
import type { Logger } from '@qubes-bus/log';
import { NO_EVENTS } from './events';
import { registerHandlers } from './handlers';
import { Lifecycle } from './lifecycle/lifecycle';
import { Registry } from './registry';
import { QubesStore } from './store/qubes-store';

/**
 * Offline mode, for installation and recovery (`qvm-* --offline`): the same store code and the
 * same handlers, answering a tool on stdin/stdout instead of the bus; no bus, no hypervisor.
 * Deviation from DESIGN.md §2 ("in-process"): it runs as the tool's child process, so the tools
 * keep their rule of never loading qubes.xml code. It refuses to start while a registry holds
 * the store, and creates one only when asked (qvm-create, installing).
 */
export async function runOffline(
  dataDir: string,
  log: Logger,
  options: { create: boolean; validator?: (text: string, path: string) => Promise<void> },
): Promise<number> {
  const { create, validator } = options;
  let store: QubesStore;
  try {
    store = await QubesStore.open({ dataDir, log, whenLocked: 'fail', create, ...(validator === undefined ? {} : { validator }) });
  } catch (err) {
    const failure = isQubesError(err) ? err : new QubesError('INTERNAL', (err as Error).message);
    if (!isQubesError(err)) log.error({ err }, 'offline store failed to open');
    reportFatal(process.stdout, failure);
    return 1;
  }
  const router = new LocalRouter();
  const lifecycle = new Lifecycle({
    app: () => store.app,
    hypervisor: new OfflineHypervisor('offline mode (--offline): qubes.xml only'),
    dataDir,
    log,
    bus: null,
    qubesdb: null,
  });
  registerHandlers(router, new Registry(store, NO_EVENTS, lifecycle));
  await serveStdio(router, process.stdin, process.stdout, log);
  await store.close();
  return 0;
}
