/**
 * Section 5: contention on DynamoDB Local. Many concurrent calls on one key, and many calls over a
 * few keys at a fixed concurrency: the handler must run exactly once per distinct key.
 */
import { benchClient, type Tables } from './local.js';
import { enterProcessState } from './process-state.js';
import { errorCode, type Library, lambdaContext, makeEvent, type OrderEvent, type Subject, subject } from './subjects.js';

export interface ContentionRun {
  readonly library: Library;
  readonly test: string;
  readonly calls: number;
  readonly keys: number;
  readonly concurrency: number;
  /** Handler executions; correct when equal to `keys`. */
  readonly executions: number;
  readonly succeeded: number;
  readonly errors: Record<string, number>;
  readonly wallMillis: number;
  /** Calls per second (successful or not). */
  readonly throughput: number;
  /** CPU time of this process (user + system) per call, µs: the client side's cost. */
  readonly cpuMicrosPerCall: number;
}

interface Tally {
  succeeded: number;
  errors: Record<string, number>;
}

async function invoke(target: Subject, event: OrderEvent, tally: Tally, context: ReturnType<typeof lambdaContext>): Promise<void> {
  try {
    await target.handler(event, context);
    tally.succeeded++;
  } catch (error) {
    const code = errorCode(error);
    tally.errors[code] = (tally.errors[code] ?? 0) + 1;
  }
}

/** Runs `calls` calls, `concurrency` at a time. Returns the wall time, ms, and this process's CPU time, µs. */
async function pool(calls: number, concurrency: number, call: (i: number) => Promise<void>): Promise<{ wall: number; cpu: number }> {
  let next = 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, calls) }, async () => {
      while (next < calls) await call(next++);
    }),
  );
  const cpu = process.cpuUsage(cpuStart);
  return { wall: performance.now() - start, cpu: cpu.user + cpu.system };
}

export interface ContentionPlan {
  readonly oneKeyCalls: number;
  readonly manyCalls: number;
  readonly manyKeys: number;
  readonly concurrency: number;
}

export async function measureContention(endpoint: string, tables: Tables, plan: ContentionPlan): Promise<ContentionRun[]> {
  const context = lambdaContext();
  const run = Date.now().toString(36);
  const clients = { ours: benchClient(endpoint), powertools: benchClient(endpoint) };
  const runs: ContentionRun[] = [];

  // All calls on one key, started at once.
  for (const library of ['powertools', 'ours'] as const) {
    const target = subject(library, { client: clients[library], tableName: tables[library] });
    const event = makeEvent(`one-key-${run}`, 1024);
    const tally: Tally = { succeeded: 0, errors: {} };
    enterProcessState(library === 'ours' ? 'ours' : 'other');
    const { wall: wallMillis, cpu } = await pool(plan.oneKeyCalls, plan.oneKeyCalls, () => invoke(target, { ...event }, tally, context));
    runs.push({
      library,
      test: `${plan.oneKeyCalls} concurrent calls, 1 key`,
      calls: plan.oneKeyCalls,
      keys: 1,
      concurrency: plan.oneKeyCalls,
      executions: target.state.executions,
      ...tally,
      wallMillis,
      throughput: (plan.oneKeyCalls / wallMillis) * 1000,
      cpuMicrosPerCall: cpu / plan.oneKeyCalls,
    });
  }

  // Calls spread round-robin over the keys, in two halves per library, order A B B A.
  const targets = {
    ours: subject('ours', { client: clients.ours, tableName: tables.ours }),
    powertools: subject('powertools', { client: clients.powertools, tableName: tables.powertools }),
  };
  const events = Array.from({ length: plan.manyKeys }, (_, k) => makeEvent(`many-${run}-${k}`, 1024));
  const tallies = { ours: { succeeded: 0, errors: {} } as Tally, powertools: { succeeded: 0, errors: {} } as Tally };
  const wall = { ours: 0, powertools: 0 };
  const cpu = { ours: 0, powertools: 0 };
  const half = Math.floor(plan.manyCalls / 2);
  const halves: [Library, number, number][] = [
    ['ours', 0, half],
    ['powertools', 0, half],
    ['powertools', half, plan.manyCalls],
    ['ours', half, plan.manyCalls],
  ];
  for (const [library, from, to] of halves) {
    enterProcessState(library === 'ours' ? 'ours' : 'other');
    const spent = await pool(to - from, plan.concurrency, (i) =>
      invoke(targets[library], { ...events[(from + i) % plan.manyKeys]! }, tallies[library], context),
    );
    wall[library] += spent.wall;
    cpu[library] += spent.cpu;
  }
  for (const library of ['ours', 'powertools'] as const) {
    runs.push({
      library,
      test: `${plan.manyCalls} calls, ${plan.manyKeys} keys, concurrency ${plan.concurrency}`,
      calls: plan.manyCalls,
      keys: plan.manyKeys,
      concurrency: plan.concurrency,
      executions: targets[library].state.executions,
      ...tallies[library],
      wallMillis: wall[library],
      throughput: (plan.manyCalls / wall[library]) * 1000,
      cpuMicrosPerCall: cpu[library] / plan.manyCalls,
    });
  }
  for (const client of Object.values(clients)) client.destroy();
  enterProcessState('other');
  return runs;
}
