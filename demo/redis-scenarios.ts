/**
 * `npm run demo -- --store redis`: the payment scenarios with the idempotency records on a real
 * redis-server (RedisStore). The payment API here charges the card processor and answers; it keeps
 * no payments table, since `transaction()` (the payment committed with its record) is DynamoDB's.
 * The card processor counts what really happened, as in the DynamoDB scenarios.
 */

import { randomUUID } from 'node:crypto';
import middy from '@middy/core';
import type { APIGatewayProxyStructuredResultV2, Context, SQSRecord } from 'aws-lambda';
import type { Redis } from 'ioredis';
import { ChargeDeclined, PaymentError, paymentRequest } from '../infra/functions/payment-service.js';
import { type HttpEvent, httpIdempotency, type IdempotencyStore, idempotentBatch, transaction } from '../lib/index.js';
import { RedisStore } from '../lib/redis/index.js';
import { CountingProvider, DemoClock } from './fakes.js';
import { toHttpApiEvent } from './http-event.js';
import { BURST, burstOfDuplicates, lambdaContext, QuietLogger, type Reply, runEach, type ScenarioResult, sqsRecord, tally } from './scenarios.js';

const problem = (status: number, detail: string): APIGatewayProxyStructuredResultV2 => ({
  statusCode: status,
  headers: { 'Content-Type': 'application/problem+json' },
  body: JSON.stringify({ type: 'about:blank', status, detail }),
});

/** POST /payments on Redis: the card is charged under the call's `downstreamKey`, the same on every retry and takeover of the request. */
export function redisPaymentApi(store: IdempotencyStore, provider: CountingProvider, clock: DemoClock, logger: QuietLogger) {
  return middy<HttpEvent, APIGatewayProxyStructuredResultV2, Error, Context>(async (event: HttpEvent) => {
    // A client's mistake is a 400 that charges nothing, checked as the DynamoDB payment API checks it; never a 500.
    let request: { amount: number; currency: string };
    try {
      const text = event.isBase64Encoded && event.body ? Buffer.from(event.body, 'base64').toString('utf8') : (event.body ?? '');
      request = paymentRequest(JSON.parse(text));
    } catch (error) {
      if (error instanceof SyntaxError) return problem(400, 'The request body must be JSON.');
      if (error instanceof PaymentError) return problem(400, error.message);
      throw error;
    }
    const { amount, currency } = request;
    // Derived from the call's record key, as the DynamoDB payment service derives them: scoped to the
    // caller and the route as the record is, so two callers' payments under one Idempotency-Key are
    // two charges at the processor, never one answered to both. With Redis, `transaction()` commits no
    // writes, but its `downstreamKey` answers.
    const call = transaction();
    const paymentId = `pay_${call.downstreamKey('payment').slice(0, 22)}`;
    try {
      const { chargeId } = await provider.charge({ idempotencyKey: call.downstreamKey('charge'), paymentId, amount, currency });
      return { statusCode: 201, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ paymentId, amount, currency, chargeId }) };
    } catch (error) {
      // As the payment service answers: only a decline says that nothing was charged, and it is final
      // (a 402, kept for the key); any other failure is a 502 the retry with the same key runs again.
      if (error instanceof ChargeDeclined) return problem(402, 'The payment provider declined the charge; nothing was charged.');
      return problem(502, 'The payment provider did not answer whether it charged; retry with the same Idempotency-Key, which charges the card at most once.');
    }
  }).use(httpIdempotency({ store, name: 'payments-api-redis', now: clock.now, logger }));
}

/** One scenario's world: its clock and card processor, the payment API and an SQS consumer on one RedisStore. */
class RedisHarness {
  readonly clock = new DemoClock();
  readonly provider: CountingProvider;
  readonly logger = new QuietLogger();
  readonly problems: string[] = [];
  private readonly api: ReturnType<typeof redisPaymentApi>;
  /** The same API in another execution environment: it shares no in-process state with `api`. */
  private readonly otherInstance: ReturnType<typeof redisPaymentApi>;
  private readonly run = randomUUID().slice(0, 8);

  constructor(readonly store: IdempotencyStore) {
    this.provider = new CountingProvider();
    this.api = redisPaymentApi(store, this.provider, this.clock, this.logger);
    this.otherInstance = redisPaymentApi(store, this.provider, this.clock, this.logger);
  }

  key(label: string): string {
    return `${label}-${this.run}`;
  }

  async post(body: unknown, key?: string, instance: 'same' | 'other' = 'same'): Promise<Reply> {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(key === undefined ? {} : { 'Idempotency-Key': key }) };
    const event = toHttpApiEvent({ method: 'POST', url: '/payments', headers, body: JSON.stringify(body) })!;
    const api = instance === 'same' ? this.api : this.otherInstance;
    const result = await api(event, lambdaContext('payments-api', this.clock.now));
    const header = (name: string) => Object.entries(result.headers ?? {}).find(([k]) => k.toLowerCase() === name)?.[1];
    return {
      status: result.statusCode ?? 200,
      replayed: header('idempotent-replayed') === 'true',
      retryAfter: header('retry-after')?.toString(),
      json: JSON.parse(result.body ?? '{}'),
    };
  }

  expect(condition: boolean, problem: string): void {
    if (!condition) this.problems.push(problem);
  }

  result(name: string, expected: number, detail: string): ScenarioResult {
    const happened = this.provider.charges.length;
    return { name, effect: 'charges', happened, expected, detail, problems: this.problems, ok: happened === expected && this.problems.length === 0 };
  }
}

const PAYMENT = { amount: 4_999, currency: 'EUR' };

type RedisScenario = (store: IdempotencyStore, client: Redis) => Promise<ScenarioResult>;

export const redisScenarios: RedisScenario[] = [
  async function doubleClick(store) {
    const h = new RedisHarness(store);
    const key = h.key('double-click');
    const [first, second] = [await h.post(PAYMENT, key), await h.post(PAYMENT, key)];
    h.expect(
      first.status === 201 && !first.replayed && second.status === 201 && second.replayed,
      `${first.status}, then ${second.status}: expected 201, then 201 replayed`,
    );
    h.expect(second.json.paymentId === first.json.paymentId, 'the replay names another payment');
    return h.result('Double-click: same key twice', 1, `${tally([first, second])}, same paymentId`);
  },

  async function burst(store) {
    const h = new RedisHarness(store);
    const key = h.key('burst');
    const detail = await burstOfDuplicates((instance) => h.post(PAYMENT, key, instance), h.provider, h.expect.bind(h));
    return h.result(BURST, 1, detail);
  },

  async function differentPayload(store) {
    const h = new RedisHarness(store);
    const key = h.key('reused-key');
    const [first, second] = [await h.post({ amount: 1_000, currency: 'EUR' }, key), await h.post({ amount: 2_000, currency: 'EUR' }, key)];
    h.expect(first.status === 201 && second.status === 422, `${first.status}, then ${second.status}: expected 201, then 422`);
    return h.result('Same key, different amount', 1, `${tally([first, second])} (key reused for another payload)`);
  },

  async function missingKey(store) {
    const h = new RedisHarness(store);
    const reply = await h.post(PAYMENT);
    h.expect(reply.status === 400, `answer ${reply.status}, expected 400`);
    return h.result('No Idempotency-Key header', 0, `${tally([reply])}: refused before anything ran`);
  },

  async function lateRetry(store) {
    const h = new RedisHarness(store);
    const key = h.key('late');
    const first = await h.post(PAYMENT, key);
    h.clock.advance(30 * 60_000);
    const retry = await h.post(PAYMENT, key);
    h.expect(first.status === 201 && retry.status === 201 && retry.replayed, 'the late retry was not a replay');
    return h.result('Retried 30 minutes later', 1, "replayed after 30 min: the record lives for its 24 h retention, not a lock's 10 min");
  },

  async function downstreamFailure(store) {
    const h = new RedisHarness(store);
    const key = h.key('flaky-provider');
    h.provider.inject('fail');
    const [failed, retry] = [await h.post(PAYMENT, key), await h.post(PAYMENT, key)];
    h.expect(failed.status === 502 && retry.status === 201 && !retry.replayed, `${failed.status}, then ${retry.status}: expected 502, then 201 that ran`);
    return h.result('Provider fails, then the retry succeeds', 1, `${tally([failed, retry])}: the 502 released the key, the retry ran`);
  },

  async function leaseTakeover(store) {
    const h = new RedisHarness(store);
    const key = h.key('timeout');
    h.provider.inject('hang');
    const stuck = h.post(PAYMENT, key);
    while (h.provider.attempts === 0) await new Promise((resolve) => setImmediate(resolve));
    h.clock.advance(2_000);
    // Retries reach another execution environment (in this one, duplicates would wait for attempt 1).
    const early = await h.post(PAYMENT, key, 'other');
    h.clock.advance(9_000);
    const takeover = await h.post(PAYMENT, key, 'other');
    h.provider.releaseHung();
    const stale = await stuck;
    const after = await h.post(PAYMENT, key);
    h.expect(
      early.status === 409 && early.retryAfter === '8',
      `within the lease: ${early.status} (Retry-After ${early.retryAfter}), expected 409 with Retry-After 8`,
    );
    h.expect(takeover.status === 201 && !takeover.replayed && stale.status === 502, `takeover ${takeover.status}, timed-out attempt ${stale.status}`);
    h.expect(after.replayed && after.json.paymentId === takeover.json.paymentId, 'a later duplicate did not replay the takeover');
    return h.result(
      'Timed-out attempt taken over after its lease',
      1,
      `409 Retry-After ${early.retryAfter} during the lease, then 201 after it; replayed since`,
    );
  },

  async function sqsBatch(store) {
    const h = new RedisHarness(store);
    const consume = idempotentBatch<{ orderId: string; amount: number }>(
      async (order) =>
        h.provider.charge({ idempotencyKey: transaction().downstreamKey('charge'), paymentId: order.orderId, amount: order.amount, currency: 'EUR' }),
      { store, name: 'payments-consumer-redis', key: (order) => order.orderId, now: h.clock.now, logger: h.logger },
    );
    const order = (id: string): SQSRecord => sqsRecord(JSON.stringify({ orderId: h.key(id), amount: 1_500 }));
    const batch = [order('a'), order('b'), order('a'), order('c'), order('b')];
    const first = await consume({ Records: batch }, lambdaContext('payments-consumer', h.clock.now));
    const again = await consume({ Records: batch }, lambdaContext('payments-consumer', h.clock.now));
    h.expect(first.batchItemFailures.length === 0 && again.batchItemFailures.length === 0, 'a message was reported failed');
    return h.result('SQS batch: 5 messages, 2 duplicates; redelivered', 3, 'duplicates and the redelivery replayed');
  },

  async function evictionPolicy(_store, client) {
    // A server that may evict keys could drop a live record: RedisStore refuses to claim on it.
    // The store gets a connection of its own: a client that passed the check is not asked again.
    const own = client.duplicate();
    await client.config('SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      const h = new RedisHarness(new RedisStore({ client: own, keyPrefix: 'demo-evict:' }));
      const reply = await h.post(PAYMENT, h.key('eviction'));
      h.expect(reply.status === 503, `answer ${reply.status}, expected 503`);
      return h.result('Server with maxmemory-policy allkeys-lru', 0, `${tally([reply])}: no claim on a server that may evict records`);
    } finally {
      await client.config('SET', 'maxmemory-policy', 'noeviction');
      own.disconnect();
    }
  },
];

/** Runs every Redis scenario with `client`; `onResult` sees each result as it comes. */
export function runRedisScenarios(client: Redis, onResult?: (result: ScenarioResult) => void): Promise<ScenarioResult[]> {
  const store = new RedisStore({ client, keyPrefix: 'demo:' });
  return runEach(redisScenarios, (scenario) => scenario(store, client), onResult);
}
