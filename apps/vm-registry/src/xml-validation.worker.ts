import { runWorkerTask } from './validate-worker';

// Entry of the worker thread that validates qubes.xml (see workerValidator).
runWorkerTask();
