/**
 * Section 5: contention on DynamoDB Local. Many concurrent calls on one key, and many calls over a
 * few keys at a fixed concurrency: the handler must run exactly once per distinct key.
 *
 * The many-keys test runs in short blocks, the subjects taking turns (ours, Powertools, the
 * control, ours, …, the order rotated each round), and sums each subject's blocks: a change of load
 * on the machine falls on all of them alike. The control is Powertools with every call inside an
 * `AsyncLocalStorage` scope, as our call scope does it: on Node 20 that turns promise hooks on for
 * the whole process, so the control's distance from plain Powertools is what those hooks cost.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { benchClient, type Tables } from './local.js';
import { enterProcessState } from './process-state.js';
import { rotation } from './stats.js';
import { errorCode, type Library, lambdaContext, makeEvent, type OrderEvent, type Subject, subject } from './subjects.js';

export interface ContentionRun {
  readonly library: Library;
  /** Each call ran inside an `AsyncLocalStorage` scope of the bench's own: the control row. */
  readonly scoped: boolean;
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
  /** Blocks the calls ran in (1 for the one-key burst). */
  readonly blocks: number;
  /** Blocks whose executions differ from the keys first called in them; correct when 0. */
  readonly blocksWrong: number;
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
  /** Calls per block of the many-keys test; a multiple of `manyKeys` keeps every block alike. */
  readonly blockCalls: number;
}

type Contender = 'ours' | 'powertools' | 'control';
const CONTENDERS: readonly Contender[] = ['ours', 'powertools', 'control'];

/** The control's scope: entered around each of its calls, disabled again when its block ends. */
const controlScope = new AsyncLocalStorage<object>();

/** Puts the process in the state each contender's calls run in (see process-state.ts). */
function enterState(contender: Contender): void {
  controlScope.disable();
  enterProcessState(contender === 'ours' ? 'ours' : 'other');
}

export async function measureContention(endpoint: string, tables: Tables, plan: ContentionPlan): Promise<ContentionRun[]> {
  const context = lambdaContext();
  const run = Date.now().toString(36);
  const clients = { ours: benchClient(endpoint), powertools: benchClient(endpoint), control: benchClient(endpoint) };
  const runs: ContentionRun[] = [];

  // All calls on one key, started at once.
  for (const library of ['powertools', 'ours'] as const) {
    const target = subject(library, { client: clients[library], tableName: tables[library] });
    const event = makeEvent(`one-key-${run}`, 1024);
    const tally: Tally = { succeeded: 0, errors: {} };
    enterState(library);
    const { wall: wallMillis, cpu } = await pool(plan.oneKeyCalls, plan.oneKeyCalls, () => invoke(target, { ...event }, tally, context));
    runs.push({
      library,
      scoped: false,
      test: `${plan.oneKeyCalls} concurrent calls, 1 key`,
      calls: plan.oneKeyCalls,
      keys: 1,
      concurrency: plan.oneKeyCalls,
      executions: target.state.executions,
      ...tally,
      wallMillis,
      throughput: (plan.oneKeyCalls / wallMillis) * 1000,
      cpuMicrosPerCall: cpu / plan.oneKeyCalls,
      blocks: 1,
      blocksWrong: target.state.executions === 1 ? 0 : 1,
    });
  }

  // Calls spread round-robin over the keys (each contender its own keys), in alternating blocks.
  const targets: Record<Contender, Subject> = {
    ours: subject('ours', { client: clients.ours, tableName: tables.ours }),
    powertools: subject('powertools', { client: clients.powertools, tableName: tables.powertools }),
    control: subject('powertools', { client: clients.control, tableName: tables.powertools }),
  };
  const events = Object.fromEntries(
    CONTENDERS.map((contender) => [contender, Array.from({ length: plan.manyKeys }, (_, k) => makeEvent(`many-${run}-${contender}-${k}`, 1024))]),
  ) as Record<Contender, OrderEvent[]>;
  const totals = Object.fromEntries(
    CONTENDERS.map((contender) => [contender, { tally: { succeeded: 0, errors: {} } as Tally, wall: 0, cpu: 0, blocksWrong: 0 }]),
  ) as Record<Contender, { tally: Tally; wall: number; cpu: number; blocksWrong: number }>;
  const blocks = Math.ceil(plan.manyCalls / plan.blockCalls);
  for (let block = 0; block < blocks; block++) {
    const from = block * plan.blockCalls;
    const to = Math.min(plan.manyCalls, from + plan.blockCalls);
    // Call i goes to key i mod manyKeys: the keys whose first call falls in this block run once each in it.
    const newKeys = Math.max(0, Math.min(to, plan.manyKeys) - from);
    for (const contender of rotation(CONTENDERS, block)) {
      const total = totals[contender];
      const target = targets[contender];
      const call =
        contender === 'control'
          ? (event: OrderEvent) => controlScope.run({}, () => invoke(target, event, total.tally, context))
          : (event: OrderEvent) => invoke(target, event, total.tally, context);
      const executionsBefore = target.state.executions;
      enterState(contender);
      const spent = await pool(to - from, plan.concurrency, (i) => call({ ...events[contender][(from + i) % plan.manyKeys]! }));
      total.wall += spent.wall;
      total.cpu += spent.cpu;
      if (target.state.executions - executionsBefore !== newKeys) total.blocksWrong++;
    }
  }
  enterState('powertools');
  for (const contender of CONTENDERS) {
    const total = totals[contender];
    runs.push({
      library: contender === 'ours' ? 'ours' : 'powertools',
      scoped: contender === 'control',
      test: `${plan.manyCalls} calls, ${plan.manyKeys} keys, concurrency ${plan.concurrency}`,
      calls: plan.manyCalls,
      keys: plan.manyKeys,
      concurrency: plan.concurrency,
      executions: targets[contender].state.executions,
      ...total.tally,
      wallMillis: total.wall,
      throughput: (plan.manyCalls / total.wall) * 1000,
      cpuMicrosPerCall: total.cpu / plan.manyCalls,
      blocks,
      blocksWrong: total.blocksWrong,
    });
  }
  for (const client of Object.values(clients)) client.destroy();
  return runs;
}
