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
import { lambdaContext } from '../support/lambda.js';
import { paymentRequest } from '../support/payment-request.js';
import { ioredisClient, nodeRedisClient } from '../support/redis.js';

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

const key = { id: 'k1', key: randomBytes(32) };
const encryption = () => aesGcmEncryption({ currentKey: () => key, keyById: () => key.key });

type StoreKind = 'ddb' | 'lean' | 'ioredis' | 'node-redis' | 'memory';
const STORES: StoreKind[] = ['ddb', 'lean', 'ioredis', 'node-redis', 'memory'];
type Features = { encryption: boolean; compress: boolean; cache: boolean };

/** A small deterministic generator (mulberry32), so a seed names its combinations. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const SEED = Number(process.env.COMBINATION_SEED ?? 20_260_053);
const random = generator(SEED);
const coin = (): boolean => random() < 0.5;
/** Every store once, then combinations the seed picks. */
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

function spyKeys(store: IdempotencyStore): Set<string> {
  const keys = new Set<string>();
  const claim = store.claim.bind(store);
  (store as { claim: IdempotencyStore['claim'] }).claim = (request) => {
    keys.add(request.key);
    return claim(request);
  };
  return keys;
}

async function checkRecords(kind: StoreKind, store: IdempotencyStore, keys: Set<string>) {
  const reader = kind === 'lean' ? inspector : store;
  for (const k of keys) {
    const summary = await reader.inspect!(k);
    if (summary === undefined) continue;
    expect({ k, status: summary.status }).toEqual({ k, status: 'COMPLETED' });
    expect(summary.expiresAt).toEqual(expect.any(Number));
  }
}

describe.each(COMBINATIONS.map(([kind, features]) => [SEED, kind, JSON.stringify(features), kind, features] as const))(
  'seed %d: %s %s',
  (_seed, _name, _label, kind, features) => {
    const cache = features.cache ? { cacheSize: 10 } : {};
    test('makeIdempotent with final errors and errorFields, nested in http, concurrent duplicates', async () => {
      const store = storeOf(kind, features);
      const u = randomUUID().slice(0, 8);
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
        { store, name: `charge-${u}`, key: (o) => o.id, isFinalError: (e) => e instanceof Declined, errorFields: ['code', 'details'], ...cache },
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
            body: JSON.stringify({ e: (error as Error).name, d: (error as Declined).details }),
          };
        }
      }).use(httpIdempotency({ store, name: `api-${u}`, ...cache }));
      const ctx = () => lambdaContext(`fn-${u}`);
      // failure after the inner success: outer released, inner kept
      failNext = true;
      await expect(handler(paymentRequest('a'), ctx())).rejects.toThrow('after charge');
      const first = (await handler(paymentRequest('a'), ctx())) as { headers: Record<string, string> };
      expect(innerRuns).toBe(1);
      const again = (await handler(paymentRequest('a'), ctx())) as { headers: Record<string, string> };
      const { 'Idempotent-Replayed': marker, ...rest } = again.headers;
      expect(marker).toBe('true');
      expect({ ...again, headers: rest }).toEqual(first);
      // concurrent duplicates
      const all = (await Promise.all([1, 2, 3].map(() => handler(paymentRequest('b'), ctx()).catch((e: unknown) => e)))) as Array<{ statusCode?: number }>;
      expect(innerRuns).toBe(2);
      // In-process duplicates follow the first call's claim (single-flight): each gets its answer.
      expect(all.map((answer) => answer.statusCode)).toEqual([201, 201, 201]);
      expect(new Set(all.map((answer) => (answer as { body?: string }).body)).size).toBe(1);
      // final errors
      const n1 = await handler(paymentRequest('neg1'), ctx());
      const n2 = await handler(paymentRequest('neg1'), ctx());
      expect(innerRuns).toBe(3);
      const { 'Idempotent-Replayed': _m, ...h2 } = (n2 as { headers: Record<string, string> }).headers;
      expect({ ...(n2 as object), headers: h2 }).toEqual(n1);
      expect(n1).toMatchObject({ statusCode: 402, headers: { 'x-err': 'card_declined' } });
      // a direct call with another error bypassing http: replay from the final error
      await expect(charge({ id: 'neg1', amount: -1 })).rejects.toMatchObject({ name: 'Declined', code: 'card_declined', details: { reason: 'x'.repeat(100) } });
      expect(innerRuns).toBe(3);
      await checkRecords(kind, store, keys);
    });

    test('batch calling makeIdempotent, duplicates in the batch, one failing record, replayed batch', async () => {
      const store = storeOf(kind, features);
      const u = randomUUID().slice(0, 8);
      const keys = spyKeys(store);
      let innerRuns = 0;
      let fail = new Set(['o3']);
      const ship = makeIdempotent(
        async (id: string) => {
          innerRuns++;
          return { shipped: id };
        },
        { store, name: `ship-${u}`, key: (id) => id, ...cache },
      );
      let outerRuns = 0;
      const batch = idempotentBatch(
        async (m: { orderId: string }) => {
          outerRuns++;
          const r = await ship(m.orderId);
          if (fail.has(m.orderId)) throw new Error('fail');
          return r;
        },
        { store, name: `consumer-${u}`, key: (m) => m.orderId, ...cache },
      );
      const records = [sqsRecord({ orderId: 'o1' }), sqsRecord({ orderId: 'o2' }), sqsRecord({ orderId: 'o1' }), sqsRecord({ orderId: 'o3' })];
      const r1 = await batch({ Records: records }, lambdaContext(`fn-${u}`));
      expect(r1.batchItemFailures).toEqual([{ itemIdentifier: records[3]!.messageId }]);
      expect(innerRuns).toBe(3);
      fail = new Set();
      const r2 = await batch({ Records: records }, lambdaContext(`fn-${u}`));
      expect(r2.batchItemFailures).toEqual([]);
      expect(innerRuns).toBe(3);
      expect(outerRuns).toBe(4);
      await checkRecords(kind, store, keys);
    });

    test('middy idempotency and lean middy around a nested makeIdempotent: callers mutating their answers change no replay', async () => {
      for (const mw of [idempotency, leanIdempotency] as const) {
        const store = storeOf(kind, features);
        const u = randomUUID().slice(0, 8);
        const keys = spyKeys(store);
        let runs = 0;
        const inner = makeIdempotent(async (x: { id: string }) => ({ inner: x.id, at: ++runs }), { store, name: `inner-${u}`, key: (x) => x.id, ...cache });
        const handler = middy(async (event: { id: string }) => {
          const got = await inner(event);
          return { got, list: [1, 2, 3] };
        }).use(mw({ store, key: (e: { id: string }) => e.id, ...cache }));
        const first = (await handler({ id: 'm' }, lambdaContext(`mw-${u}`))) as { list: number[] };
        first.list.push(4);
        const second = await handler({ id: 'm' }, lambdaContext(`mw-${u}`));
        expect(second).toEqual({ got: { inner: 'm', at: 1 }, list: [1, 2, 3] });
        const par = await Promise.all([1, 2, 3].map(() => handler({ id: 'p' }, lambdaContext(`mw-${u}`))));
        (par[0] as { list: number[] }).list.push(9);
        expect(par[1]).toEqual({ got: { inner: 'p', at: 2 }, list: [1, 2, 3] });
        expect(par[2]).toEqual({ got: { inner: 'p', at: 2 }, list: [1, 2, 3] });
        expect(runs).toBe(2);
        await checkRecords(kind, store, keys);
      }
    });
  },
);
