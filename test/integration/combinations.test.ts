/**
 * Features combined, against DynamoDB Local, redis-server (both clients) and real middy: an HTTP
 * handler calling an idempotent function that stores final errors, a batch whose record function
 * calls one, middlewares (main and lean) around one, on every store with encryption, compression
 * and the local cache in combinations a seed picks (COMBINATION_SEED; the seed and combination are
 * in each test's name). Each checks the handler runs once per key after a success, every caller
 * gets the first answer, and no record is left INPROGRESS or without its retention.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import middy from '@middy/core';
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import {
  aesGcmEncryption,
  DynamoDBStore,
  type HttpEvent,
  httpIdempotency,
  type IdempotencyStore,
  idempotency,
  idempotentBatch,
  makeIdempotent,
} from '../../lib/index.js';
import { idempotency as leanIdempotency } from '../../lib/middy/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { sqsRecord } from '../support/batch-events.js';
import { testClient, useFreshTable } from '../support/dynamodb.js';
import { prng } from '../support/faults.js';
import { lambdaContext } from '../support/lambda.js';
import { paymentRequest } from '../support/payment-request.js';
import { ioredisClient, nodeRedisClient } from '../support/redis.js';
import { collectingLogger } from '../support/warnings.js';

const { client, tableName } = useFreshTable({ prefix: 'combo' });
const admin = testClient();
const inspector = new DynamoDBStore({ tableName, client });
const ioRedis = ioredisClient();
const nodeRedis = nodeRedisClient();
beforeAll(() => nodeRedis.connect());
afterAll(async () => {
  admin.destroy();
  ioRedis.disconnect();
  await nodeRedis.destroy();
});

const dataKey = { id: 'k1', key: randomBytes(32) };
const encryption = () => aesGcmEncryption({ currentKey: () => dataKey, keyById: () => dataKey.key });

type StoreKind = 'ddb' | 'lean' | 'ioredis' | 'node-redis' | 'memory';
const STORES: StoreKind[] = ['ddb', 'lean', 'ioredis', 'node-redis', 'memory'];
type Features = { encryption: boolean; compress: boolean; cache: boolean };

const SEED = Number(process.env.COMBINATION_SEED ?? 20_260_053);
// Seeded, so a seed names its combinations.
const random = prng(SEED);
const coin = (): boolean => random() < 0.5;
/** Every store once, then stores the seed picks; each with features the seed picks. */
const COMBINATIONS = [...STORES, ...Array.from({ length: 7 }, () => STORES[Math.floor(random() * STORES.length)]!)].map((kind): [StoreKind, Features] => [
  kind,
  { encryption: coin(), compress: coin(), cache: coin() },
]);

function storeOf(kind: StoreKind, features: Features): IdempotencyStore {
  const extra = { ...(features.encryption ? { encryption: encryption() } : {}), ...(features.compress ? { compressAboveBytes: 0 } : {}) };
  const prefix = `combo-${randomUUID()}:`;
  switch (kind) {
    case 'ddb':
      return new DynamoDBStore({ tableName, client, ...extra });
    case 'lean':
      return new LeanDynamoDBStore({ tableName, client, ...extra });
    case 'ioredis':
      return new RedisStore({ client: ioRedis, keyPrefix: prefix, ...extra });
    case 'node-redis':
      return new RedisStore({ client: nodeRedis, keyPrefix: prefix, ...extra });
    case 'memory':
      return new InMemoryStore(extra);
  }
}

/** The record keys `store` is asked to claim, from now on. */
function spyKeys(store: IdempotencyStore): Set<string> {
  const keys = new Set<string>();
  const claim = store.claim.bind(store);
  (store as { claim: IdempotencyStore['claim'] }).claim = (request) => {
    keys.add(request.key);
    return claim(request);
  };
  return keys;
}

/** Every record claimed has completed (none left INPROGRESS, none released and left missing) and has its retention. */
async function checkRecords(kind: StoreKind, store: IdempotencyStore, keys: Set<string>) {
  // The lean store has no `inspect`: the main store reads the same table.
  const reader = kind === 'lean' ? inspector : store;
  for (const recordKey of keys) {
    const summary = await reader.inspect!(recordKey);
    expect({ recordKey, status: summary?.status }).toEqual({ recordKey, status: 'COMPLETED' });
    expect(summary?.expiresAt).toEqual(expect.any(Number));
  }
}

/** An HTTP answer without the marker a replay adds, to compare with the first answer. */
function withoutReplayMarker(answer: unknown): unknown {
  const { 'Idempotent-Replayed': marker, ...headers } = (answer as { headers: Record<string, string> }).headers;
  expect(marker).toBe('true');
  return { ...(answer as object), headers };
}

// Numbered: the seed can pick one combination twice, and each block keeps a name of its own.
describe.each(COMBINATIONS.map(([kind, features], index) => [SEED, index + 1, kind, JSON.stringify(features), kind, features] as const))(
  'seed %d, combination %d: %s %s',
  (_seed, _index, _name, _label, kind, features) => {
    const cache = features.cache ? { cacheSize: 10 } : {};
    test('makeIdempotent with final errors and errorFields, nested in http, concurrent duplicates', async () => {
      const store = storeOf(kind, features);
      const run = randomUUID().slice(0, 8);
      const keys = spyKeys(store);
      let innerRuns = 0;
      class Declined extends Error {
        override name = 'Declined';
        code = 'card_declined';
        details = { reason: 'x'.repeat(100) };
      }
      const charge = makeIdempotent(
        async (order: { id: string; amount: number }) => {
          innerRuns++;
          if (order.amount < 0) throw new Declined('declined');
          return { charged: order.amount, big: 'y'.repeat(200), runs: innerRuns };
        },
        {
          store,
          name: `charge-${run}`,
          key: (order) => order.id,
          isFinalError: (error) => error instanceof Declined,
          errorFields: ['code', 'details'],
          ...cache,
        },
      );
      let outerRuns = 0;
      let failNext = false;
      const handler = middy(async (event: HttpEvent): Promise<{ statusCode: number; headers: Record<string, string>; body: string }> => {
        outerRuns++;
        const amount = JSON.parse(event.body ?? '{}').amount as number;
        const id = event.headers['idempotency-key']!;
        try {
          const charged = await charge({ id, amount: id.startsWith('neg') ? -1 : amount });
          if (failNext) {
            failNext = false;
            throw new Error('after charge');
          }
          return { statusCode: 201, headers: { 'x-run': String(outerRuns) }, body: JSON.stringify(charged) };
        } catch (error) {
          if ((error as Error).message === 'after charge') throw error;
          return {
            statusCode: 402,
            headers: { 'x-err': (error as Declined).code },
            body: JSON.stringify({ name: (error as Error).name, details: (error as Declined).details }),
          };
        }
      }).use(httpIdempotency({ store, name: `api-${run}`, ...cache }));
      const context = () => lambdaContext(`fn-${run}`);
      // A failure after the inner call succeeded: the outer key is released, the inner outcome kept.
      failNext = true;
      await expect(handler(paymentRequest('a'), context())).rejects.toThrow('after charge');
      const first = await handler(paymentRequest('a'), context());
      expect(innerRuns).toBe(1);
      expect(first).toEqual({ statusCode: 201, headers: { 'x-run': '2' }, body: JSON.stringify({ charged: 1200, big: 'y'.repeat(200), runs: 1 }) });
      expect(withoutReplayMarker(await handler(paymentRequest('a'), context()))).toEqual(first);
      const duplicates = await Promise.all([1, 2, 3].map(() => handler(paymentRequest('b'), context()).catch((error: unknown) => error)));
      expect(innerRuns).toBe(2);
      // In-process duplicates follow the first call's claim (single-flight): each gets its answer, as a replay.
      const charged = { statusCode: 201, headers: { 'x-run': '3' }, body: JSON.stringify({ charged: 1200, big: 'y'.repeat(200), runs: 2 }) };
      const replayed = { ...charged, headers: { ...charged.headers, 'Idempotent-Replayed': 'true' } };
      expect(duplicates).toEqual([charged, replayed, replayed]);
      const declined = await handler(paymentRequest('neg1'), context());
      expect(withoutReplayMarker(await handler(paymentRequest('neg1'), context()))).toEqual(declined);
      expect(innerRuns).toBe(3);
      expect(declined).toEqual({
        statusCode: 402,
        headers: { 'x-err': 'card_declined' },
        body: JSON.stringify({ name: 'Declined', details: { reason: 'x'.repeat(100) } }),
      });
      // A direct call, outside the HTTP layer, replays the stored final error.
      await expect(charge({ id: 'neg1', amount: -1 })).rejects.toMatchObject({ name: 'Declined', code: 'card_declined', details: { reason: 'x'.repeat(100) } });
      expect(innerRuns).toBe(3);
      await checkRecords(kind, store, keys);
    });

    test('batch calling makeIdempotent, duplicates in the batch, one failing record, replayed batch', async () => {
      const store = storeOf(kind, features);
      const run = randomUUID().slice(0, 8);
      const keys = spyKeys(store);
      let innerRuns = 0;
      let failing = new Set(['o3']);
      const ship = makeIdempotent(
        async (id: string) => {
          innerRuns++;
          return { shipped: id };
        },
        { store, name: `ship-${run}`, key: (id) => id, ...cache },
      );
      let outerRuns = 0;
      const { logger, lines } = collectingLogger();
      const batch = idempotentBatch(
        async (message: { orderId: string }) => {
          outerRuns++;
          const shipped = await ship(message.orderId);
          if (failing.has(message.orderId)) throw new Error('fail');
          return shipped;
        },
        { store, name: `consumer-${run}`, key: (message) => message.orderId, logger, ...cache },
      );
      const records = [sqsRecord({ orderId: 'o1' }), sqsRecord({ orderId: 'o2' }), sqsRecord({ orderId: 'o1' }), sqsRecord({ orderId: 'o3' })];
      const delivered = await batch({ Records: records }, lambdaContext(`fn-${run}`));
      expect(delivered.batchItemFailures).toEqual([{ itemIdentifier: records[3]!.messageId }]);
      const reported = () => lines.map((line) => (JSON.parse(line) as { message: string; itemIdentifier: string }).itemIdentifier);
      expect(reported()).toEqual([records[3]!.messageId]);
      expect(innerRuns).toBe(3);
      failing = new Set();
      const redelivered = await batch({ Records: records }, lambdaContext(`fn-${run}`));
      expect(redelivered.batchItemFailures).toEqual([]);
      expect(reported()).toEqual([records[3]!.messageId]);
      expect(innerRuns).toBe(3);
      expect(outerRuns).toBe(4);
      await checkRecords(kind, store, keys);
    });

    test('middy idempotency and lean middy around a nested makeIdempotent: callers mutating their answers change no replay', async () => {
      for (const middleware of [idempotency, leanIdempotency] as const) {
        const store = storeOf(kind, features);
        const run = randomUUID().slice(0, 8);
        const keys = spyKeys(store);
        let runs = 0;
        const inner = makeIdempotent(async (event: { id: string }) => ({ inner: event.id, at: ++runs }), {
          store,
          name: `inner-${run}`,
          key: (event) => event.id,
          ...cache,
        });
        const handler = middy(async (event: { id: string }) => {
          const got = await inner(event);
          return { got, list: [1, 2, 3] };
        }).use(middleware({ store, key: (event: { id: string }) => event.id, ...cache }));
        const first = (await handler({ id: 'm' }, lambdaContext(`mw-${run}`))) as { list: number[] };
        first.list.push(4);
        const second = await handler({ id: 'm' }, lambdaContext(`mw-${run}`));
        expect(second).toEqual({ got: { inner: 'm', at: 1 }, list: [1, 2, 3] });
        const duplicates = await Promise.all([1, 2, 3].map(() => handler({ id: 'p' }, lambdaContext(`mw-${run}`))));
        (duplicates[0] as { list: number[] }).list.push(9);
        expect(duplicates.slice(1)).toEqual([
          { got: { inner: 'p', at: 2 }, list: [1, 2, 3] },
          { got: { inner: 'p', at: 2 }, list: [1, 2, 3] },
        ]);
        expect(runs).toBe(2);
        await checkRecords(kind, store, keys);
      }
    });
  },
);
