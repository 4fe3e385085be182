// Runs a TypeScript module in a worker thread: registers tsx's loader in this thread, then imports
// the module whose URL the parent passed as `workerData.module` (it reads the rest of workerData).

import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.module);
