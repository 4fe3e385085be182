// Runs a TypeScript module in a worker thread: registers tsx's loader in this thread, then imports
// the module whose URL the parent passed as `workerData.module` (it reads the rest of workerData).
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.module);
