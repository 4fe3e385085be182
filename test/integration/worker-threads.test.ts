/**
 * Lambda Managed Instances may run a function's invocations in several worker threads of one
 * process. Here four workers, each with its own middy handler made idempotent on the same table,
 * run every key twice at once: exactly one execution per key overall, whatever worker or
 * invocation ran it, and every caller gets that execution's result (or `IN_PROGRESS` while it runs).
 */
import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { endpoint, readItem, recordId, scanItems, useFreshTable } from '../support/dynamodb.js';
import type { CallerOutcome, InvocationsData, Receipt, RoundReport } from '../support/workers/invocations.js';

const { client, tableName } = useFreshTable({ prefix: 'workers' });

const WORKERS = 4;
const KEYS = 24;

const boot = new URL('../support/workers/ts-worker.mjs', import.meta.url);
const program = new URL('../support/workers/invocations.ts', import.meta.url).href;

/** A worker thread running the invocations program; `round()` starts all its invocations. */
async function startWorker(data: Omit<InvocationsData, 'module'>) {
  const worker = new Worker(boot, { workerData: { module: program, ...data } });
  const replies: unknown[] = [];
  const waiting: ((reply: unknown) => void)[] = [];
  const failed = new Promise<never>((_, reject) => worker.once('error', reject));
  worker.on('message', (reply) => {
    const waiter = waiting.shift();
    if (waiter) waiter(reply);
    else replies.push(reply);
  });
  const next = (): Promise<unknown> =>
    Promise.race([failed, replies.length > 0 ? Promise.resolve(replies.shift()) : new Promise((resolve) => waiting.push(resolve))]);
  expect(await next()).toBe('ready');
  return {
    round: (): Promise<RoundReport> => {
      worker.postMessage('go');
      return next() as Promise<RoundReport>;
    },
    stop: () => worker.terminate(),
  };
}

test(`${WORKERS} worker threads, each running all ${KEYS} keys twice at once: one execution per key overall, every caller gets it or IN_PROGRESS`, async () => {
  const name = `workers-${randomUUID()}`;
  const keys = Array.from({ length: KEYS }, (_, i) => `o-${i}`);
  // Each worker has every key twice, in its own order, so duplicates meet inside and across threads.
  const lists = Array.from({ length: WORKERS }, (_, w) => [...keys.slice(w * 5), ...keys.slice(0, w * 5)].flatMap((key) => [key, key]));
  const workers = await Promise.all(lists.map((orderIds, worker) => startWorker({ endpoint: endpoint(), tableName, name, worker, orderIds })));
  try {
    // Every worker is ready before any starts: their invocations overlap.
    const first = await Promise.all(workers.map((worker) => worker.round()));
    const executions = first.flatMap((report, worker) => report.executed.map((orderId) => ({ orderId, worker })));
    expect(executions.map((execution) => execution.orderId).sort()).toEqual([...keys].sort());

    // The result of each key's one execution, as its record stores it.
    const executed = new Map<string, Receipt>();
    for (const orderId of keys) {
      const item = await readItem(client, tableName, recordId(name, orderId));
      expect(item?.status).toEqual({ S: 'COMPLETED' });
      executed.set(orderId, JSON.parse(item!.response!.S!) as Receipt);
    }
    const effects = await scanItems(client, tableName, `effect#${name}#`);
    expect(effects).toHaveLength(KEYS);
    for (const effect of effects) {
      const receipt = executed.get(effect.id!.S!.split('#').at(-1)!)!;
      expect(effect).toEqual({ id: effect.id, worker: { N: String(receipt.worker) }, requestId: { S: receipt.requestId } });
    }

    const check = (outcome: CallerOutcome, orderId: string, worker: number, replay: boolean) => {
      if ('error' in outcome) {
        expect(replay).toBe(false);
        expect(outcome.error).toEqual({ name: 'IdempotencyError', code: 'IN_PROGRESS' });
        return;
      }
      expect(outcome.value).toEqual(executed.get(orderId));
      if (outcome.value.requestId === outcome.requestId) {
        // This caller's own invocation ran the key: in the first round, in its own worker.
        expect(replay).toBe(false);
        expect(outcome.value.worker).toBe(worker);
      }
    };
    for (const [worker, report] of first.entries()) for (const [i, outcome] of report.outcomes.entries()) check(outcome, lists[worker]![i]!, worker, false);
    // The callers whose invocation ran the key got its result: one per key.
    const ran = first.flatMap((report) => report.outcomes.filter((outcome) => 'value' in outcome && outcome.value.requestId === outcome.requestId));
    expect(ran).toHaveLength(KEYS);

    // A second round in every worker replays every key, running nothing.
    const second = await Promise.all(workers.map((worker) => worker.round()));
    second.forEach((report, worker) => {
      expect(report.executed).toEqual([]);
      for (const [i, outcome] of report.outcomes.entries()) check(outcome, lists[worker]![i]!, worker, true);
    });
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()));
  }
});
