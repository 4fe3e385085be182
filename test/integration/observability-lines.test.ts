/**
 * The CloudWatch lines of `cloudWatchLines({ logs: true })` through real middy 7 and DynamoDB
 * Local, from the main entry's middleware on the main store and from the lean entry points
 * (`lambda-idempotency/middy` on `lambda-idempotency/dynamodb`): each call one EMF line under the
 * documented metric name and dimension and one log line at the documented level, the same lines
 * from both, never a key or a payload.
 */
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import { cloudWatchLines, DynamoDBStore, type IdempotencyStore, idempotency } from '../../lib/index.js';
import { idempotency as leanIdempotency } from '../../lib/middy/index.js';
import { recordId, unreachableClient, useFreshTable } from '../support/dynamodb.js';
import { type Gate, gate } from '../support/gate.js';
import { lambdaContext } from '../support/lambda.js';

const { client, tableName } = useFreshTable({ prefix: 'obs-lines' });

interface Charge {
  readonly id: string;
  readonly amount: number;
  readonly card: string;
}

const CARD = 'card-4111111111111111';
const LEVELS: Record<string, string> = {
  Misses: 'INFO',
  Replays: 'INFO',
  CacheReplays: 'INFO',
  InProgressRejections: 'INFO',
  PayloadMismatches: 'WARN',
  Takeovers: 'WARN',
  Superseded: 'ERROR',
  StoreFailures: 'ERROR',
};
const EVENTS: Record<string, string> = {
  Misses: 'miss',
  Replays: 'replay',
  CacheReplays: 'cacheReplay',
  InProgressRejections: 'inProgress',
  PayloadMismatches: 'payloadMismatch',
  Takeovers: 'takeover',
  Superseded: 'superseded',
  StoreFailures: 'storeFailure',
};

type Entry = 'main' | 'lean';

/**
 * Runs every path once through `entry`'s middleware on a namespace of its own, and returns the
 * lines written, each checked for its form and read back as `<metric> <key>`.
 */
async function linesOf(entry: Entry): Promise<string[]> {
  const functionName = `obs-lines-${entry}`;
  const written: string[] = [];
  const observability = cloudWatchLines({ logs: true, write: (line) => void written.push(line) });
  let clock = Date.now();
  const storeOf = (storeClient = client): IdempotencyStore =>
    entry === 'main' ? new DynamoDBStore({ tableName, client: storeClient }) : new LeanDynamoDBStore({ tableName, client: storeClient });
  const store = storeOf();
  // The first run of a key listed here enters, then waits for the test to open it.
  const holds = new Map<string, { entered: Gate; release: Gate }>();
  const hold = (id: string) => {
    const held = { entered: gate(), release: gate() };
    holds.set(id, held);
    return held;
  };
  const make = (options: { store?: IdempotencyStore; cacheSize?: number } = {}) => {
    const middleware = (entry === 'main' ? idempotency : leanIdempotency)({
      store,
      key: (event: Charge) => event.id,
      fingerprint: (event: Charge) => event.amount,
      now: () => clock,
      observability,
      logger: { warn: () => undefined },
      ...options,
    });
    return middy(async (event: Charge) => {
      const held = holds.get(event.id);
      holds.delete(event.id);
      held?.entered.open();
      await held?.release.promise;
      return { charged: event.amount };
    }).use(middleware as never) as unknown as (event: Charge, context: Context) => Promise<unknown>;
  };
  const call = (handler: ReturnType<typeof make>, id: string, amount = 1) =>
    handler({ id, amount, card: CARD }, lambdaContext(functionName)).then(
      () => 'ok',
      (error: { code?: string }) => error.code,
    );
  const handler = make();
  const otherProcess = make();

  // miss, replay, payload mismatch
  expect(await call(handler, 'k-replay')).toBe('ok');
  expect(await call(handler, 'k-replay')).toBe('ok');
  expect(await call(handler, 'k-replay', 2)).toBe('PAYLOAD_MISMATCH');
  // in progress (another process), then three in-process duplicates following one claim
  const first = hold('k-held');
  const leader = call(handler, 'k-held');
  await first.entered.promise;
  const followers = [call(handler, 'k-held'), call(handler, 'k-held')];
  expect(await call(otherProcess, 'k-held')).toBe('IN_PROGRESS');
  first.release.open();
  expect(await Promise.all([leader, ...followers])).toEqual(['ok', 'ok', 'ok']);
  // a replay from the local cache
  const cached = make({ cacheSize: 10 });
  expect(await call(cached, 'k-cache')).toBe('ok');
  expect(await call(cached, 'k-cache')).toBe('ok');
  // a takeover after the lease, and the attempt it superseded
  const slow = hold('k-late');
  const late = call(handler, 'k-late');
  await slow.entered.promise;
  clock += 60_000;
  expect(await call(otherProcess, 'k-late')).toBe('ok');
  slow.release.open();
  expect(await late).toBe('SUPERSEDED');
  // store failures: a call and an in-process duplicate that follows its claim
  const unreachable = await unreachableClient();
  try {
    const down = make({ store: storeOf(unreachable) });
    expect(await Promise.all([call(down, 'k-down'), call(down, 'k-down')])).toEqual(['STORE_FAILURE', 'STORE_FAILURE']);
  } finally {
    unreachable.destroy();
  }

  expect(written.join('\n')).not.toMatch(/4111|k-replay|k-held|k-cache|k-late|k-down|charged/);
  const keys = new Map(['k-replay', 'k-held', 'k-cache', 'k-late', 'k-down'].map((key) => [recordId(functionName, key), key]));
  const lines = written.map((line) => JSON.parse(line) as Record<string, unknown>);
  const read: string[] = [];
  // Each event writes its log line, then its EMF line.
  expect(lines.length % 2).toBe(0);
  for (let i = 0; i < lines.length; i += 2) {
    const [log, emf] = [lines[i]!, lines[i + 1]!];
    const {
      _aws,
      Function: dimension,
      timestamp,
      level,
      ...metrics
    } = emf as { _aws: { CloudWatchMetrics: unknown[] }; Function: string } & Record<string, unknown>;
    const [metric, ...more] = Object.keys(metrics);
    expect(more).toEqual([]);
    expect(metrics[metric!]).toBe(1);
    expect(dimension).toBe(functionName);
    // The metric line has its event's level and time, so Lambda's log-level filter treats it as the log line.
    expect({ timestamp, level }).toEqual({ timestamp: log.timestamp, level: log.level });
    expect(_aws.CloudWatchMetrics).toEqual([{ Namespace: 'LambdaIdempotency', Dimensions: [['Function']], Metrics: [{ Name: metric, Unit: 'Count' }] }]);
    expect(log).toEqual({
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      level: LEVELS[metric!],
      message: `lambda-idempotency: ${EVENTS[metric!]}`,
      event: EVENTS[metric!],
      function: functionName,
      recordId: expect.any(String),
    });
    read.push(`${metric} ${keys.get(log.recordId as string)}`);
  }
  return read;
}

test('each call through the middleware writes one log line at its level and one EMF line under its metric, the lean entry points the same as the main one', async () => {
  const expected = [
    'Misses k-replay',
    'Replays k-replay',
    'PayloadMismatches k-replay',
    'InProgressRejections k-held',
    'Misses k-held',
    'Replays k-held',
    'Replays k-held',
    'Misses k-cache',
    'CacheReplays k-cache',
    'Misses k-late',
    'Takeovers k-late',
    'Superseded k-late',
    'StoreFailures k-down',
    'StoreFailures k-down',
  ];
  const sorted = (lines: string[]) => [...lines].sort();
  expect(sorted(await linesOf('main'))).toEqual(sorted(expected));
  expect(sorted(await linesOf('lean'))).toEqual(sorted(expected));
});
