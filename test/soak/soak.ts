/**
 * The soak: many idempotent calls, a share of them duplicates of recent keys (so many overlap in
 * flight), at a fixed concurrency, with random handler failures and random store faults injected
 * between the SDK and DynamoDB Local. One implementation, two sizes: `npm run soak` (test/soak/run.ts)
 * and the short run inside `npm test` (test/integration/soak.test.ts).
 *
 * After the calls: the invariants (test/support/invariants.ts), the records left in the table, and a
 * recovery pass with the clock beyond the lease and no faults: every record left INPROGRESS must
 * settle. A record that does not is stuck.
 */
import { DynamoDBStore, makeIdempotent } from '../../lib/index.js';
import { recordId } from '../support/dynamodb.js';
import { type FaultKind, faultyClient, prng } from '../support/faults.js';
import { Ledger, percentile, scanRecords } from '../support/invariants.js';

export interface SoakOptions {
  /** DynamoDB Local. */
  readonly endpoint: string;
  /** An idempotency table on it (TTL off). */
  readonly tableName: string;
  readonly calls: number;
  /** Share of calls that repeat a recent key. @default 0.3 */
  readonly duplicateRatio?: number;
  /** Calls in flight at once. @default 64 */
  readonly concurrency?: number;
  /** Probability that one execution of the handler throws. @default 0.05 */
  readonly handlerFailureRate?: number;
  /** Probability that one request attempt to DynamoDB gets a fault. @default 0.03 */
  readonly faultRate?: number;
  /** @default 20240607 */
  readonly seed?: number;
  /** 'sdk': the SDK's standard retry strategy and backoff, as in production; 'immediate': no backoff. @default 'sdk' */
  readonly retries?: 'sdk' | 'immediate';
  /** @default 900 (the longest Lambda timeout) */
  readonly leaseSeconds?: number;
}

export interface SoakReport {
  readonly calls: number;
  readonly duplicateCalls: number;
  readonly keys: number;
  readonly concurrency: number;
  readonly seed: number;
  readonly settings: {
    readonly duplicateRatio: number;
    readonly handlerFailureRate: number;
    readonly faultRate: number;
    readonly retries: 'sdk' | 'immediate';
    readonly leaseSeconds: number;
  };
  readonly durationMs: number;
  readonly executions: {
    readonly total: number;
    readonly perKey: Record<string, number>;
    readonly maxSucceededPerKey: number;
    readonly duplicatesExecuted: number;
  };
  /** What callers got: value, replay, handler error, or an IdempotencyError code. */
  readonly outcomes: Record<string, number>;
  readonly faultsInjected: { readonly total: number; readonly byKind: Partial<Record<FaultKind, number>>; readonly byOperation: Record<string, number> };
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly records: {
    readonly total: number;
    readonly completed: number;
    readonly inProgressAtEnd: number;
    readonly recovered: number;
    readonly stuck: number;
  };
  readonly violations: readonly string[];
}

const round = (ms: number): number => Math.round(ms * 10) / 10;

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const {
    endpoint,
    tableName,
    calls,
    duplicateRatio = 0.3,
    concurrency = 64,
    handlerFailureRate = 0.05,
    faultRate = 0.03,
    seed = 20240607,
    retries = 'sdk',
    leaseSeconds = 900,
  } = options;
  const name = `soak-${seed}-${calls}`;
  const random = prng(seed);
  const { client, faults } = faultyClient(endpoint, { retries });
  const store = new DynamoDBStore({ tableName, client });
  let clockOffset = 0;
  const now = (): number => Date.now() + clockOffset;
  const ledger = new Ledger();
  const warnings: string[] = [];

  // The plan: new keys, and duplicates of one of the 256 most recent keys, so that many overlap.
  const plan: string[] = [];
  const recent: string[] = [];
  for (let i = 0; i < calls; i++) {
    let key: string;
    if (recent.length > 0 && random() < duplicateRatio) key = recent[Math.floor(random() * recent.length)]!;
    else {
      key = `key-${i}`;
      recent.push(key);
      if (recent.length > 256) recent.shift();
    }
    plan.push(key);
  }
  const keys = new Set(plan);

  const fn = makeIdempotent(
    async (input: { key: string; call: number }) => {
      const execution = ledger.start(input.key, input.call);
      if (random() < 0.2) await new Promise((resolve) => setTimeout(resolve, 1 + Math.floor(random() * 4)));
      if (random() < handlerFailureRate) ledger.fail(execution);
      return ledger.succeed(execution, { key: input.key, execution: execution.index, call: input.call });
    },
    { store, name, key: (input) => input.key, leaseSeconds, now, logger: { warn: (line) => void warnings.push(line) } },
  );

  faults.randomly({ seed: seed ^ 0x5eed, rate: faultRate, maxLatencyMillis: 20 });
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < plan.length) {
      const key = plan[next++]!;
      await ledger.call(key, (call) => fn({ key, call }));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const durationMs = performance.now() - started;
  const injected = [...faults.injected];
  faults.randomly(undefined);

  const violations = ledger.violations();
  const recordIdOf = new Map([...keys].map((key) => [recordId(name, key), key]));
  const records = await scanRecords(client, tableName, `${name}#`);
  violations.push(...ledger.recordViolations(records, (id) => recordIdOf.get(id), now() + leaseSeconds * 1000, true));

  // Recovery: past every lease, without faults, each key left INPROGRESS must run and complete.
  clockOffset = leaseSeconds * 1000 + 1000;
  const left = records.filter((r) => r.status === 'INPROGRESS').map((r) => recordIdOf.get(r.id)!);
  const recover = makeIdempotent(async (key: string) => ({ key, recovered: true }), { store, name, leaseSeconds, now });
  let recovered = 0;
  for (const key of left) {
    try {
      await recover(key);
      recovered++;
    } catch (error) {
      violations.push(`${key}: could not be recovered after its lease: ${String(error)}`);
    }
  }
  const after = await scanRecords(client, tableName, `${name}#`);
  const stuck = after.filter((r) => r.status !== 'COMPLETED').length;
  if (stuck > 0) violations.push(`${stuck} record(s) still INPROGRESS after the recovery pass`);
  client.destroy();

  const perKey = ledger.executionsPerKey();
  const duplicatesExecuted = ledger.duplicateExecutions().length;
  if (perKey.maxSucceeded > 1) violations.push(`a key's handler succeeded ${perKey.maxSucceeded} times`);
  const byKind: Partial<Record<FaultKind, number>> = {};
  const byOperation: Record<string, number> = {};
  for (const fault of injected) {
    byKind[fault.kind] = (byKind[fault.kind] ?? 0) + 1;
    byOperation[fault.operation] = (byOperation[fault.operation] ?? 0) + 1;
  }
  const latencies = ledger.calls.map((c) => c.millis ?? 0);
  return {
    calls,
    duplicateCalls: calls - keys.size,
    keys: keys.size,
    concurrency,
    seed,
    settings: { duplicateRatio, handlerFailureRate, faultRate, retries, leaseSeconds },
    durationMs: Math.round(durationMs),
    executions: { total: ledger.executions.length, perKey: perKey.histogram, maxSucceededPerKey: perKey.maxSucceeded, duplicatesExecuted },
    outcomes: ledger.outcomes(),
    faultsInjected: { total: injected.length, byKind, byOperation },
    latencyMs: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), max: round(Math.max(...latencies)) },
    records: { total: records.length, completed: records.filter((r) => r.status === 'COMPLETED').length, inProgressAtEnd: left.length, recovered, stuck },
    violations,
  };
}

/** The report as a few readable lines. */
export function formatReport(report: SoakReport): string {
  const list = (counts: Record<string, number | undefined>): string =>
    Object.entries(counts)
      .sort(([, a], [, b]) => (b ?? 0) - (a ?? 0))
      .map(([name, count]) => `${name} ${count}`)
      .join(', ');
  const perKey = Object.entries(report.executions.perKey)
    .map(([n, keys]) => `${n}× ${keys} keys`)
    .join(', ');
  return [
    `soak: ${report.calls} calls (${report.duplicateCalls} duplicates of ${report.keys} keys), concurrency ${report.concurrency}, seed ${report.seed}, ${(report.durationMs / 1000).toFixed(1)} s`,
    `  handler failure rate ${report.settings.handlerFailureRate}, store fault rate ${report.settings.faultRate} per request attempt, ${report.settings.retries === 'sdk' ? "the SDK's standard retries" : 'immediate retries'}`,
    `executions per key: ${perKey}; most successful executions of one key: ${report.executions.maxSucceededPerKey}; duplicates executed: ${report.executions.duplicatesExecuted}`,
    `callers got: ${list(report.outcomes)}`,
    `faults injected: ${report.faultsInjected.total} (${list(report.faultsInjected.byKind)}; ${list(report.faultsInjected.byOperation)})`,
    `latency per call: p50 ${report.latencyMs.p50} ms, p99 ${report.latencyMs.p99} ms, max ${report.latencyMs.max} ms`,
    `records: ${report.records.total} (COMPLETED ${report.records.completed}, INPROGRESS at the end ${report.records.inProgressAtEnd}, recovered after the lease ${report.records.recovered}); stuck: ${report.records.stuck}`,
    report.violations.length === 0 ? 'invariants: all hold' : `VIOLATIONS (${report.violations.length}):\n  ${report.violations.slice(0, 20).join('\n  ')}`,
  ].join('\n');
}
