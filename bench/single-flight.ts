/**
 * Section 7: in-process duplicates on DynamoDB Local. A burst of concurrent calls with one key
 * reaches one process (Lambda Managed Instances run many invocations per process; a client that
 * fans out its retries), and the handler takes a while (a downstream call). Our middleware shares
 * one claim among them (single-flight, the default): every caller gets the leader's value.
 * Counted per burst: DynamoDB requests (the request counter), handler executions, values and
 * errors by code, and each caller's latency from the start of the burst.
 */

import { benchClient, type Tables } from './local.js';
import { enterProcessState } from './process-state.js';
import { RequestCounter } from './request-counter.js';
import { rotation, type Summary, summarize } from './stats.js';
import { errorCode, LIBRARIES, type Library, lambdaContext, makeEvent, subject } from './subjects.js';

export interface SingleFlightPlan {
  /** Concurrent calls with one key per burst. */
  readonly callers: number;
  /** How long the handler takes, ms. */
  readonly workMillis: number;
  readonly warmupBursts: number;
  readonly bursts: number;
}

export interface SingleFlightRun {
  readonly library: Library;
  readonly node: string;
  readonly plan: SingleFlightPlan;
  /** Mean DynamoDB requests per burst, and by operation (`PutItem✗` = refused). */
  readonly requestsPerBurst: number;
  readonly operationsPerBurst: Record<string, number>;
  /** Mean and largest handler executions per burst: 1 is correct. */
  readonly executionsPerBurst: number;
  readonly maxExecutions: number;
  /** Callers that got a value, and errors by code, over all bursts. */
  readonly values: number;
  readonly errors: Record<string, number>;
  /** ms from the start of the burst until each caller got its answer (value or error). */
  readonly latency: Summary;
  /** ms until the whole burst was answered. */
  readonly burstMillis: Summary;
}

export async function measureSingleFlight(endpoint: string, tables: Tables, plan: SingleFlightPlan): Promise<SingleFlightRun[]> {
  const context = lambdaContext();
  const run = `${Date.now().toString(36)}-${process.version}`;
  const rigs = Object.fromEntries(
    LIBRARIES.map((library) => {
      const client = benchClient(endpoint);
      const counter = new RequestCounter().attach(client, 'id');
      return [library, { client, counter, target: subject(library, { client, tableName: tables[library] }) }];
    }),
  ) as Record<Library, { client: ReturnType<typeof benchClient>; counter: RequestCounter; target: ReturnType<typeof subject> }>;
  const tallies = Object.fromEntries(
    LIBRARIES.map((library) => [
      library,
      {
        requests: 0,
        operations: {} as Record<string, number>,
        executions: [] as number[],
        values: 0,
        errors: {} as Record<string, number>,
        latency: [] as number[],
        burst: [] as number[],
      },
    ]),
  );
  for (let burst = 0; burst < plan.warmupBursts + plan.bursts; burst++) {
    for (const library of rotation(LIBRARIES, burst)) {
      const { counter, target } = rigs[library];
      const event = { ...makeEvent(`single-flight-${run}-${burst}`, 1024), workMillis: plan.workMillis };
      enterProcessState(library === 'ours' ? 'ours' : 'other');
      const mark = counter.mark();
      const executionsBefore = target.state.executions;
      const start = performance.now();
      const answers = await Promise.all(
        Array.from({ length: plan.callers }, () =>
          target.handler({ ...event }, context).then(
            () => ({ code: undefined, millis: performance.now() - start }),
            (error: unknown) => ({ code: errorCode(error), millis: performance.now() - start }),
          ),
        ),
      );
      if (burst < plan.warmupBursts) continue;
      const tally = tallies[library]!;
      const requests = counter.since(mark);
      tally.requests += requests.length;
      for (const r of requests) {
        const name = r.ok ? r.operation : `${r.operation}✗`;
        tally.operations[name] = (tally.operations[name] ?? 0) + 1;
      }
      tally.executions.push(target.state.executions - executionsBefore);
      for (const answer of answers) {
        if (answer.code === undefined) tally.values++;
        else tally.errors[answer.code] = (tally.errors[answer.code] ?? 0) + 1;
        tally.latency.push(answer.millis);
      }
      tally.burst.push(Math.max(...answers.map((a) => a.millis)));
    }
  }
  enterProcessState('other');
  for (const rig of Object.values(rigs)) rig.client.destroy();
  return LIBRARIES.map((library) => {
    const t = tallies[library]!;
    return {
      library,
      node: process.version,
      plan,
      requestsPerBurst: t.requests / plan.bursts,
      operationsPerBurst: Object.fromEntries(Object.entries(t.operations).map(([name, count]) => [name, count / plan.bursts])),
      executionsPerBurst: t.executions.reduce((a, b) => a + b, 0) / plan.bursts,
      maxExecutions: Math.max(...t.executions),
      values: t.values,
      errors: t.errors,
      latency: summarize(t.latency),
      burstMillis: summarize(t.burst),
    };
  });
}
