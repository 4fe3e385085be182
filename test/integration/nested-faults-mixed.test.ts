/**
 * Nested idempotent layers on two different stores (RedisStore and DynamoDBStore, each way round),
 * with one fault in one of them: the store unreachable, the outer layer's key provider failing to
 * open its stored outcome, an inner outcome that cannot be stored, middy's early timeout during the
 * inner call, and in-process duplicates of the outer call. The inner function runs at most once per
 * key across the outer layer's retries and every caller gets a typed answer.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import middy from '@middy/core';
import { DynamoDBStore, type HttpEvent, httpIdempotency, idempotentBatch, makeIdempotent } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { manualClock } from '../../lib/testing/index.js';
import { consumerContext, failuresOf, ids } from '../support/batch-consumer.js';
import { type Order, redelivered, sqsEvent, sqsRecord } from '../support/batch-events.js';
import { scanItems, useFreshTable } from '../support/dynamodb.js';
import { gate } from '../support/gate.js';
import { aesKey, keyring } from '../support/keyring.js';
import { lambdaContext } from '../support/lambda.js';
import { listen } from '../support/listener.js';
import { paymentHandler, paymentRequest } from '../support/payment-request.js';
import { inspector, ioredisClient, nextReady, pttl, redisPort } from '../support/redis.js';
import { TcpProxy } from '../support/tcp-proxy.js';

const { client, tableName } = useFreshTable({ prefix: 'nested-mixed' });
const raw = inspector();
let proxy: TcpProxy;
let redis: ReturnType<typeof ioredisClient>;
beforeAll(async () => {
  proxy = await TcpProxy.start(redisPort());
  redis = ioredisClient(proxy.url, { retryStrategy: () => 10 });
  await nextReady(redis);
});
afterAll(async () => {
  redis.disconnect();
  raw.disconnect();
  await proxy.cut();
});

/** A key prefix of its own for each test, also when another run of this file shares the Redis server. */
const prefix = () => `nested-mixed-${randomUUID()}:`;
/**
 * Where a test cuts Redis, a request waits for the store's timeout: 300 ms there. Elsewhere a longer
 * one: those tests are not about the bound, and a pause of a loaded machine before a request is
 * sent (an answer received during a pause is read before the bound fails the call) should not
 * decide them.
 */
const CUT_TIMEOUT_MILLIS = 300;
const redisStore = (keyPrefix: string, timeoutMillis = 5_000) => new RedisStore({ client: redis, keyPrefix, timeoutMillis });
const dynamoStore = (options: { encryption?: ReturnType<typeof keyring>['encryption'] } = {}) => new DynamoDBStore({ tableName, client, ...options });
const ddbRecords = (name: string) => scanItems(client, tableName, `${name}#`);
async function redisRecords(keyPrefix: string): Promise<Array<{ key: string; hash: Record<string, string>; ttl: number | undefined }>> {
  const keys = await raw.keys(`${keyPrefix}*`);
  return Promise.all(keys.map(async (key) => ({ key, hash: await raw.hgetall(key), ttl: await pttl(raw, key) })));
}

let down = false;
/** Cuts the connection to Redis (the client fails fast until {@link reconnect}). */
async function outage(): Promise<void> {
  down = true;
  await proxy.cut();
}
async function reconnect(): Promise<void> {
  const ready = nextReady(redis);
  await proxy.restore();
  await ready;
  down = false;
}
// A test that fails during an outage leaves none to the next one.
afterEach(async () => {
  if (down) await reconnect();
});

describe('outer httpIdempotency on DynamoDB, inner makeIdempotent on Redis', () => {
  test('Redis unreachable at the inner claim: 503 STORE_FAILURE, the outer key released, nothing ran; the retry runs once', async () => {
    const listener = listen();
    const keyPrefix = prefix();
    let runs = 0;
    const pay = makeIdempotent(async (key: string) => ({ paid: key, run: ++runs }), {
      store: redisStore(keyPrefix, CUT_TIMEOUT_MILLIS),
      name: 'inner',
      ...listener.options,
    });
    const { handler } = paymentHandler(pay, { store: dynamoStore(), name: 'r-outer-1', ...listener.options });
    await outage();
    await expect(handler(paymentRequest('k-1'), lambdaContext('nested', 5_000))).rejects.toMatchObject({ code: 'STORE_FAILURE', statusCode: 503 });
    expect(runs).toBe(0);
    expect(listener.events('storeFailure')).toEqual([{ event: 'storeFailure', namespace: 'inner' }]);
    expect(await ddbRecords('r-outer-1')).toEqual([]);
    await reconnect();
    expect(await handler(paymentRequest('k-1'), lambdaContext('nested', 5_000))).toEqual({ statusCode: 201, body: '{"paid":"k-1","run":1}' });
    expect(await handler(paymentRequest('k-1'), lambdaContext('nested', 5_000))).toEqual({
      statusCode: 201,
      body: '{"paid":"k-1","run":1}',
      headers: { 'Idempotent-Replayed': 'true' },
    });
    expect(runs).toBe(1);
  });
});

describe('outer httpIdempotency on Redis, inner makeIdempotent on DynamoDB', () => {
  test('Redis lost while the inner call runs: the client gets the 201; the outer key is held until the deadline with a TTL; past it the retry replays the inner call', async () => {
    const listener = listen();
    const keyPrefix = prefix();
    const clock = manualClock();
    let runs = 0;
    const pay = makeIdempotent(
      async (key: string) => {
        await outage();
        return { paid: key, run: ++runs };
      },
      { store: dynamoStore(), name: 'd-inner-2', now: clock.now, ...listener.options },
    );
    const { handler } = paymentHandler(pay, { store: redisStore(keyPrefix, CUT_TIMEOUT_MILLIS), name: 'outer', now: clock.now, ...listener.options });
    expect(await handler(paymentRequest('k-2'), lambdaContext('nested', 5_000))).toEqual({ statusCode: 201, body: '{"paid":"k-2","run":1}' });
    expect(listener.events('bookkeepingFailure')).toEqual([{ event: 'bookkeepingFailure', namespace: 'outer' }]);
    await reconnect();
    const [held] = await redisRecords(keyPrefix);
    expect(held?.hash.status).toBe('INPROGRESS');
    expect(held?.ttl).toBeGreaterThan(0);
    expect(Number(held?.hash.leaseUntil)).toBeLessThanOrEqual(clock.now() + 5_000);
    expect(await handler(paymentRequest('k-2'), lambdaContext('nested', 5_000))).toMatchObject({ statusCode: 409 });
    clock.advance(5_001);
    expect(await handler(paymentRequest('k-2'), lambdaContext('nested', 5_000))).toEqual({ statusCode: 201, body: '{"paid":"k-2","run":1}' });
    expect(runs).toBe(1);
  });
});

describe("the outer layer's key provider cannot open its stored outcome", () => {
  test('httpIdempotency: 503 STORE_FAILURE, the handler and the inner call do not run; once the provider is back the retry replays', async () => {
    const listener = listen();
    const ring = keyring(aesKey('k1'));
    let runs = 0;
    const pay = makeIdempotent(async (key: string) => ({ paid: key, run: ++runs }), { store: redisStore(prefix()), name: 'inner', ...listener.options });
    const { handler, calls } = paymentHandler(pay, { store: dynamoStore({ encryption: ring.encryption }), name: 'enc-outer-3', ...listener.options });
    expect(await handler(paymentRequest('k-3'), lambdaContext('nested', 5_000))).toEqual({ statusCode: 201, body: '{"paid":"k-3","run":1}' });
    ring.failById = 'throws';
    expect(await handler(paymentRequest('k-3'), lambdaContext('nested', 5_000))).toMatchObject({
      statusCode: 503,
      headers: { 'Content-Type': 'application/problem+json', 'Retry-After': '1' },
    });
    expect(listener.events('storeFailure')).toEqual([{ event: 'storeFailure', namespace: 'enc-outer-3' }]);
    expect(calls()).toBe(1);
    ring.failById = undefined;
    expect(await handler(paymentRequest('k-3'), lambdaContext('nested', 5_000))).toEqual({
      statusCode: 201,
      body: '{"paid":"k-3","run":1}',
      headers: { 'Idempotent-Replayed': 'true' },
    });
    expect(runs).toBe(1);
  });

  test('in-process duplicates of the replay: each gets the 503 problem and one storeFailure event; nothing runs', async () => {
    const listener = listen();
    const ring = keyring(aesKey('k1'));
    const pay = makeIdempotent(async (key: string) => ({ paid: key }), { store: redisStore(prefix()), name: 'inner', ...listener.options });
    const { handler, calls } = paymentHandler(pay, { store: dynamoStore({ encryption: ring.encryption }), name: 'enc-outer-9', ...listener.options });
    expect(await handler(paymentRequest('k-9'), lambdaContext('nested', 5_000))).toMatchObject({ statusCode: 201 });
    ring.failById = 'throws';
    const answers = await Promise.all([1, 2, 3].map(() => handler(paymentRequest('k-9'), lambdaContext('nested', 5_000))));
    for (const answer of answers) expect(answer).toMatchObject({ statusCode: 503, headers: { 'Retry-After': '1' } });
    expect(listener.events('storeFailure')).toEqual([1, 2, 3].map(() => ({ event: 'storeFailure', namespace: 'enc-outer-9' })));
    expect(calls()).toBe(1);
  });

  test('idempotentBatch: only that record fails, its function and the inner call do not run; the redelivery replays', async () => {
    const listener = listen();
    const ring = keyring(aesKey('k1'));
    let runs = 0;
    let called = 0;
    const charge = makeIdempotent(async (order: Order) => ({ charged: order.orderId, run: ++runs }), {
      store: redisStore(prefix()),
      name: 'inner',
      key: (order) => order.orderId,
      ...listener.options,
    });
    const handler = idempotentBatch<Order>(
      (order) => {
        called++;
        return charge(order);
      },
      { store: dynamoStore({ encryption: ring.encryption }), name: 'enc-outer-4', throwOnFullBatchFailure: false, ...listener.options },
    );
    const [first, second] = [sqsRecord({ orderId: 'e-1' })!, sqsRecord({ orderId: 'e-2' })!];
    expect(failuresOf(await handler(sqsEvent([first]), consumerContext()))).toEqual([]);
    ring.failById = 'throws';
    expect(failuresOf(await handler(sqsEvent([redelivered(first), second]), consumerContext()))).toEqual(ids(first));
    expect(called).toBe(2);
    ring.failById = undefined;
    expect(failuresOf(await handler(sqsEvent([redelivered(first)]), consumerContext()))).toEqual([]);
    expect(called).toBe(2);
    expect(runs).toBe(2);
  });
});

describe('an inner outcome that cannot be stored', () => {
  const outcomes = [
    ['a BigInt', () => ({ amount: 10n })],
    [
      'a cycle',
      () => {
        const value: Record<string, unknown> = {};
        value.self = value;
        return value;
      },
    ],
    ['over the record limit', () => ({ pad: randomBytes(600_000).toString('base64') })],
  ] as const;

  test.each(outcomes)(
    'httpIdempotency over it (%s): the 201 is stored and replayed; one warning, for the inner record; the inner call ran once',
    async (_, make) => {
      const listener = listen();
      const name = `unstorable-http-${randomUUID()}`;
      const before = Date.now();
      let runs = 0;
      const pay = makeIdempotent(
        async (_key: string) => {
          runs++;
          return make();
        },
        { store: dynamoStore(), name: `${name}-inner`, ...listener.options },
      );
      const handler = middy(async (event: HttpEvent) => {
        await pay(event.headers['idempotency-key']!);
        return { statusCode: 201, body: `run ${runs}` };
      }).use(httpIdempotency({ store: redisStore(prefix()), name: `${name}-outer`, ...listener.options }));
      expect(await handler(paymentRequest('k-5'), lambdaContext('nested', 5_000))).toEqual({ statusCode: 201, body: 'run 1' });
      expect(listener.warnings).toHaveLength(1);
      expect(listener.warnings[0]).toContain(`${name}-inner#`);
      expect(await handler(paymentRequest('k-5'), lambdaContext('nested', 5_000))).toEqual({
        statusCode: 201,
        body: 'run 1',
        headers: { 'Idempotent-Replayed': 'true' },
      });
      expect(runs).toBe(1);
      expect(listener.warnings).toHaveLength(1);
      const [inner] = await ddbRecords(`${name}-inner`);
      expect(inner?.status?.S).toBe('COMPLETED');
      // Kept for the default retention, a day.
      expect(Number(inner?.expiration?.N)).toBeGreaterThanOrEqual(Math.floor(before / 1000) + 86_400);
    },
  );

  test.each(outcomes)('idempotentBatch over it (%s): the records succeed; a redelivery neither runs the inner call again nor fails', async (_, make) => {
    const listener = listen();
    const name = `unstorable-batch-${randomUUID()}`;
    let runs = 0;
    const charge = makeIdempotent(
      async (_order: Order) => {
        runs++;
        return make();
      },
      { store: dynamoStore(), name: `${name}-inner`, key: (order) => order.orderId, ...listener.options },
    );
    const handler = idempotentBatch<Order>(async (order) => void (await charge(order)), {
      store: redisStore(prefix()),
      name: `${name}-outer`,
      throwOnFullBatchFailure: false,
      ...listener.options,
    });
    const [first, second] = [sqsRecord({ orderId: 'u-1' })!, sqsRecord({ orderId: 'u-2' })!];
    expect(failuresOf(await handler(sqsEvent([first, second]), consumerContext()))).toEqual([]);
    expect(listener.warnings).toHaveLength(2);
    expect(failuresOf(await handler(sqsEvent([redelivered(first), redelivered(second)]), consumerContext()))).toEqual([]);
    expect(runs).toBe(2);
    expect(listener.warnings).toHaveLength(2);
  });
});

describe("middy's early timeout during the inner call", () => {
  test('the outer key stays held until the deadline, the inner lease ends there; once the inner call has finished, a retry past the deadline replays it', async () => {
    const listener = listen();
    const keyPrefix = prefix();
    const clock = manualClock();
    const running = gate();
    const started = gate();
    let runs = 0;
    const pay = makeIdempotent(
      async (key: string) => {
        runs++;
        started.open();
        await running.promise;
        return { paid: key, run: runs };
      },
      { store: redisStore(keyPrefix), name: 'inner', now: clock.now, ...listener.options },
    );
    // The inner call middy's timeout leaves running: the test waits for it to complete its record.
    let abandoned: Promise<unknown> | undefined;
    const { handler } = paymentHandler(
      (key) => (abandoned = pay(key)),
      { store: dynamoStore(), name: 'timeout-outer-6', now: clock.now, singleFlight: false, ...listener.options },
      { timeoutEarlyInMillis: 1_000 },
    );
    const deadline = clock.now() + 1_000;
    await expect(handler(paymentRequest('k-6'), lambdaContext('nested', 1_000))).rejects.toMatchObject({ name: 'TimeoutError' });
    // Middy's timer may fire before the inner claim is written: its records are read once the inner function runs.
    await started.promise;
    const [outer] = await ddbRecords('timeout-outer-6');
    expect(outer?.status?.S).toBe('INPROGRESS');
    expect(Number(outer?.leaseUntil?.N)).toBeLessThanOrEqual(deadline);
    expect(Number(outer?.expiration?.N)).toBeCloseTo(clock.now() / 1000 + 86_400, -1);
    const [inner] = await redisRecords(keyPrefix);
    expect(inner?.hash.status).toBe('INPROGRESS');
    expect(Number(inner?.hash.leaseUntil)).toBeLessThanOrEqual(deadline);
    expect(inner?.ttl).toBeGreaterThan(0);
    expect(await handler(paymentRequest('k-6'), lambdaContext('nested', 30_000))).toMatchObject({ statusCode: 409 });
    running.open();
    await abandoned;
    expect((await redisRecords(keyPrefix))[0]?.hash.status).toBe('COMPLETED');
    clock.advance(1_001);
    expect(await handler(paymentRequest('k-6'), lambdaContext('nested', 30_000))).toEqual({ statusCode: 201, body: '{"paid":"k-6","run":1}' });
    expect(runs).toBe(1);
  });
});

describe('in-process duplicates of the outer call', () => {
  test('the inner claim fails (Redis unreachable): every duplicate gets STORE_FAILURE, each runs in turn and is refused once, no key held', async () => {
    const listener = listen();
    const keyPrefix = prefix();
    let runs = 0;
    const pay = makeIdempotent(async (key: string) => ({ paid: key, run: ++runs }), {
      store: redisStore(keyPrefix, CUT_TIMEOUT_MILLIS),
      name: 'inner',
      ...listener.options,
    });
    const { handler, calls } = paymentHandler(pay, { store: dynamoStore(), name: 'sf-outer-7', ...listener.options });
    await outage();
    const answers = await Promise.allSettled([1, 2, 3].map(() => handler(paymentRequest('k-7'), lambdaContext('nested', 5_000))));
    await reconnect();
    for (const answer of answers) expect(answer).toMatchObject({ status: 'rejected', reason: { code: 'STORE_FAILURE', statusCode: 503 } });
    // The key released after each failed run, the next duplicate runs in turn: one refused inner call each.
    expect(calls()).toBe(3);
    expect(listener.events('storeFailure')).toEqual([1, 2, 3].map(() => ({ event: 'storeFailure', namespace: 'inner' })));
    expect(runs).toBe(0);
    expect(await ddbRecords('sf-outer-7')).toEqual([]);
  });

  test('the outer claim fails (Redis unreachable): every duplicate gets the 503 problem, one storeFailure each; nothing ran', async () => {
    const listener = listen();
    const keyPrefix = prefix();
    let runs = 0;
    const pay = makeIdempotent(async (key: string) => ({ paid: key, run: ++runs }), { store: dynamoStore(), name: 'sf-inner-8', ...listener.options });
    const { handler } = paymentHandler(pay, { store: redisStore(keyPrefix, CUT_TIMEOUT_MILLIS), name: 'outer', ...listener.options });
    await outage();
    const answers = await Promise.allSettled([1, 2, 3].map(() => handler(paymentRequest('k-8'), lambdaContext('nested', 5_000))));
    await reconnect();
    for (const answer of answers) {
      expect(answer).toMatchObject({
        status: 'fulfilled',
        value: { statusCode: 503, headers: { 'Content-Type': 'application/problem+json', 'Retry-After': '1' } },
      });
    }
    expect(listener.seen).toEqual([1, 2, 3].map(() => ({ event: 'storeFailure', namespace: 'outer' })));
    expect(runs).toBe(0);
    expect(await ddbRecords('sf-inner-8')).toEqual([]);
  });
});
