/**
 * Observability under concurrency, against DynamoDB Local: many calls in one process, several keys
 * interleaved, in-process duplicates following one leader (single-flight). Every call is one event
 * under its own record id: the one that runs a miss, its followers replays, and followers of a claim
 * the store failed store failures, as each would be on its own.
 */
import { cloudWatchLines, DynamoDBStore, type IdempotencyError, makeIdempotent } from '../../lib/index.js';
import { recordId, unreachableClient, useFreshTable } from '../support/dynamodb.js';
import { Turnstile } from '../support/gate.js';

const { store } = useFreshTable({ prefix: 'obs-concurrency' });

/** The lines `cloudWatchLines({ logs: true })` writes, parsed. */
function lines() {
  const written: Array<Record<string, unknown>> = [];
  const observability = cloudWatchLines({ logs: true, write: (line) => void written.push(JSON.parse(line) as Record<string, unknown>) });
  /** Each log line as `<event> <recordId>`, sorted. */
  const events = () =>
    written
      .filter((line) => line._aws === undefined)
      .map((line) => `${String(line.event)} ${String(line.recordId)}`)
      .sort();
  /** Each EMF line as `<metric> <Function>`, sorted. */
  const metrics = () =>
    written
      .filter((line) => line._aws !== undefined)
      .map(
        (line) =>
          `${(line._aws as { CloudWatchMetrics: Array<{ Metrics: Array<{ Name: string }> }> }).CloudWatchMetrics[0]!.Metrics[0]!.Name} ${String(line.Function)}`,
      )
      .sort();
  return { observability, events, metrics, written };
}

test('concurrent calls of four keys, five each, held by one run a key: a miss and four replays a key, each under its own record id', async () => {
  const name = 'obs-interleaved';
  const { observability, events, metrics, written } = lines();
  const turnstile = new Turnstile();
  const fn = makeIdempotent(
    async (order: { orderId: string; card: string }) => {
      await turnstile.enter();
      return { paid: order.orderId };
    },
    { store, name, key: (order) => order.orderId, observability },
  );
  const keys = ['o-0', 'o-1', 'o-2', 'o-3'];
  const calls = Array.from({ length: 20 }, (_, i) => fn({ orderId: keys[i % 4]!, card: '4111111111111111' }));
  for (const _ of keys) (await turnstile.next()).open();
  const results = await Promise.all(calls);
  expect(results).toEqual(Array.from({ length: 20 }, (_, i) => ({ paid: keys[i % 4] })));
  expect(turnstile.count).toBe(4);
  expect(events()).toEqual(keys.flatMap((key) => [`miss ${recordId(name, key)}`, ...Array.from({ length: 4 }, () => `replay ${recordId(name, key)}`)]).sort());
  expect(metrics()).toEqual([...Array.from({ length: 4 }, () => `Misses ${name}`), ...Array.from({ length: 16 }, () => `Replays ${name}`)]);
  expect(JSON.stringify(written)).not.toMatch(/4111|o-[0-3]|paid/);
});

test('followers of a claim the store failed are each a store failure, as without single-flight: the StoreFailures alarm counts refused calls', async () => {
  const name = 'obs-claim-fails';
  const client = await unreachableClient();
  try {
    const unreachable = new DynamoDBStore({ tableName: 'unreachable', client });
    for (const singleFlight of [true, false]) {
      const { observability, events, metrics } = lines();
      let runs = 0;
      const fn = makeIdempotent(async () => ++runs, { store: unreachable, name, singleFlight, observability, logger: { warn: () => undefined } });
      const codes = await Promise.all(Array.from({ length: 5 }, () => fn({ orderId: 'o-1' }).catch((error: IdempotencyError) => error.code)));
      expect(codes).toEqual(Array.from({ length: 5 }, () => 'STORE_FAILURE'));
      expect(runs).toBe(0);
      expect(events()).toEqual(Array.from({ length: 5 }, () => `storeFailure ${recordId(name, { orderId: 'o-1' })}`));
      expect(metrics()).toEqual(Array.from({ length: 5 }, () => `StoreFailures ${name}`));
    }
  } finally {
    client.destroy();
  }
});
