import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { isErrorCode, QubesError, type ErrorBody } from '@qubes-bus/contracts';
import { validateXml } from '@qubes-bus/qubes-model';

interface ValidateTask {
  task: 'validate-xml';
  text: string;
  path: string;
}

/**
 * Validates qubes.xml in a worker thread while the main thread parses it: on a large store
 * the two take about as long as each other, so loading takes the time of one. The worker is a
 * bundle of its own (`entry`, xml-validation.worker.js): small, and free of native addons, which
 * may not be loaded twice in one process.
 */
export function workerValidator(entry: string): (text: string, path: string) => Promise<void> {
  return (text, path) =>
    new Promise((resolve, reject) => {
      const worker = new Worker(entry, { workerData: { task: 'validate-xml', text, path } satisfies ValidateTask });
      worker.once('message', (failure: ErrorBody | null) => {
        if (failure === null) resolve();
        else reject(new QubesError(isErrorCode(failure.code) ? failure.code : 'STORE_MALFORMED', failure.message, failure.details ? { details: failure.details } : {}));
      });
      worker.once('error', reject);
      worker.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`the validation worker exited with ${code}`))));
    });
}

/** In a worker started by workerValidator: do the task and report; true if this was one. */
export function runWorkerTask(): boolean {
  if (isMainThread || (workerData as Partial<ValidateTask> | null)?.task !== 'validate-xml') return false;
  const { text, path } = workerData as ValidateTask;
  try {
    validateXml(text, path);
    parentPort?.postMessage(null);
  } catch (err) {
    parentPort?.postMessage(err instanceof QubesError ? err.toBody() : { code: 'STORE_MALFORMED', message: String(err) });
  }
  return true;
}
