/**
 * The demo's scenarios: the real handlers of infra/functions, on real DynamoDB tables created from
 * the stack's schemas, driven through the failures that make naive handlers charge twice. Each
 * scenario counts what the (fake) card processor really did and compares it with what should have
 * happened. `npm run demo` prints them; test/integration/demo.test.ts asserts them.
 */

import { randomUUID } from 'node:crypto';
import { DeleteTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyStructuredResultV2, Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { type ConsumerHandler, createConsumerHandler } from '../infra/functions/consumer.js';
import { createPaymentHandler, type PaymentHandler } from '../infra/functions/payment.js';
import type { Payment } from '../infra/functions/payment-service.js';
import { paymentsTableSchema } from '../infra/payments-schema.js';
import { idempotencyTableSchema } from '../lib/table-schema.js';
import { createTable } from '../tools/tables.js';
import { CountingProvider, DemoClock } from './fakes.js';
import { toHttpApiEvent } from './http-event.js';

export interface DemoTables {
  readonly idempotencyTable: string;
  readonly paymentsTable: string;
}

export interface ScenarioResult {
  readonly name: string;
  /** What the scenario counts at the card processor. */
  readonly effect: 'charges' | 'refunds';
  readonly happened: number;
  readonly expected: number;
  /** What the client saw, in a few words. */
  readonly detail: string;
  /** Other expectations that did not hold (status codes, replay headers, stored amounts). */
  readonly problems: readonly string[];
  readonly ok: boolean;
}

/** Creates both tables as the stack defines them (from the shared schemas, TTL on). */
export async function createDemoTables(client: DynamoDBClient, prefix = 'demo'): Promise<DemoTables> {
  const suffix = randomUUID().slice(0, 8);
  const tables = { idempotencyTable: `${prefix}-idempotency-${suffix}`, paymentsTable: `${prefix}-payments-${suffix}` };
  await createTable(client, tables.idempotencyTable, idempotencyTableSchema, { enableTtl: true });
  await createTable(client, tables.paymentsTable, paymentsTableSchema, { enableTtl: true });
  return tables;
}

export async function dropDemoTables(client: DynamoDBClient, tables: DemoTables): Promise<void> {
  for (const TableName of [tables.idempotencyTable, tables.paymentsTable]) await client.send(new DeleteTableCommand({ TableName }));
}

/** A Lambda context whose deadline is `timeoutMillis` after the call starts, on the demo clock. */
export function lambdaContext(functionName: string, now: () => number = Date.now, timeoutMillis = 10_000): Context {
  const deadline = now() + timeoutMillis;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: '512',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'demo',
    getRemainingTimeInMillis: () => Math.max(0, deadline - now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** What a client saw of one HTTP request. */
export interface Reply {
  readonly status: number;
  readonly replayed: boolean;
  readonly retryAfter: string | undefined;
  readonly json: Record<string, unknown> & Partial<Payment>;
}

/** Keeps the library's log lines out of the report, counted instead. */
export class QuietLogger {
  readonly lines: string[] = [];
  warn(message: string): void {
    this.lines.push(message);
  }
  error(message: string): void {
    this.lines.push(message);
  }
}

/** One scenario's world: its own clock and provider, the real handlers, shared tables. */
class Harness {
  readonly clock = new DemoClock();
  readonly provider: CountingProvider;
  readonly logger = new QuietLogger();
  readonly payment: PaymentHandler;
  /** The same function in another execution environment: it shares no in-process state with `payment`. */
  private readonly otherInstance: PaymentHandler;
  readonly consumer: ConsumerHandler;
  readonly problems: string[] = [];
  private readonly doc: DynamoDBDocumentClient;
  private readonly run = randomUUID().slice(0, 8);

  constructor(
    client: DynamoDBClient,
    private readonly tables: DemoTables,
  ) {
    this.provider = new CountingProvider();
    const options = { ...tables, client, provider: this.provider, now: this.clock.now, logger: this.logger };
    this.payment = createPaymentHandler(options);
    this.otherInstance = createPaymentHandler(options);
    this.consumer = createConsumerHandler(options);
    this.doc = DynamoDBDocumentClient.from(client);
  }

  /** A fresh Idempotency-Key, as a client would generate. */
  key(label: string): string {
    return `${label}-${this.run}`;
  }

  async post(url: string, body: unknown, key?: string, instance: 'same' | 'other' = 'same'): Promise<Reply> {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(key === undefined ? {} : { 'Idempotency-Key': key }) };
    const event = toHttpApiEvent({ method: 'POST', url, headers, body: JSON.stringify(body) });
    if (!event) throw new Error(`no route for POST ${url}`);
    const handler = instance === 'same' ? this.payment : this.otherInstance;
    const result: APIGatewayProxyStructuredResultV2 = await handler(event, lambdaContext('payments-api', this.clock.now));
    const header = (name: string) => {
      const found = Object.entries(result.headers ?? {}).find(([k]) => k.toLowerCase() === name.toLowerCase());
      return found === undefined ? undefined : String(found[1]);
    };
    return {
      status: result.statusCode ?? 200,
      replayed: header('Idempotent-Replayed') === 'true',
      retryAfter: header('Retry-After'),
      json: result.body ? JSON.parse(result.body) : {},
    };
  }

  /** The message ids that come back to the queue: those reported failed, or every one when the invocation throws. */
  async deliver(records: SQSRecord[]): Promise<string[]> {
    const event: SQSEvent = { Records: records };
    try {
      const out = await this.consumer(event, lambdaContext('payments-consumer', this.clock.now));
      return out.batchItemFailures.map((f) => f.itemIdentifier);
    } catch (error) {
      // The consumer throws a batch in which no message succeeded back whole.
      if (error instanceof AggregateError) return records.map((record) => record.messageId);
      throw error;
    }
  }

  async storedPayment(paymentId: string): Promise<Payment | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tables.paymentsTable, Key: { [paymentsTableSchema.partitionKey.name]: paymentId }, ConsistentRead: true }),
    );
    return out.Item as Payment | undefined;
  }

  expect(condition: boolean, problem: string): void {
    if (!condition) this.problems.push(problem);
  }

  result(name: string, effect: ScenarioResult['effect'], expected: number, detail: string): ScenarioResult {
    const happened = effect === 'charges' ? this.provider.charges.length : this.provider.refunds.length;
    return { name, effect, happened, expected, detail, problems: this.problems, ok: happened === expected && this.problems.length === 0 };
  }
}

export function sqsRecord(body: string, messageId = randomUUID()): SQSRecord {
  const now = String(Date.now());
  return {
    messageId,
    receiptHandle: `rh-${randomUUID()}`,
    body,
    attributes: { ApproximateReceiveCount: '1', SentTimestamp: now, SenderId: 'demo', ApproximateFirstReceiveTimestamp: now },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:local:000000000000:orders',
    awsRegion: 'local',
  };
}

/** `2× 201, 1× 409`: the answers, counted by status. */
export const tally = (replies: Reply[]): string => {
  const counts = new Map<string, number>();
  for (const r of replies) {
    const label = r.status === 201 && r.replayed ? '201 replayed' : String(r.status);
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  return [...counts]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([label, n]) => `${n}× ${label}`)
    .join(', ');
};

/** The execution environment a request reaches: the scenario's first one, or another that shares no in-process state with it. */
export type Instance = 'same' | 'other';

export const BURST = 'Burst of 20 concurrent duplicates, 2 environments';

/**
 * Sends 20 duplicates at once, alternating between two execution environments, and checks what each
 * answers: within the one that runs the payment, duplicates share the running call (single-flight)
 * and get its 201; the other meets the record in progress, a 409 with Retry-After. Returns the tally.
 */
export async function burstOfDuplicates(
  post: (instance: Instance) => Promise<Reply>,
  provider: CountingProvider,
  expect: (condition: boolean, problem: string) => void,
): Promise<string> {
  const instances = Array.from({ length: 20 }, (_, i): Instance => (i % 2 === 0 ? 'same' : 'other'));
  // The charge waits until half the burst has answered: the duplicates in the environment that runs
  // the payment wait for it, so those are the other environment's, all answered while it ran, however
  // slow the machine. Should they never answer, the charge goes on after 5 s and the checks below say so.
  let answered = 0;
  let halfAnswered = (): void => undefined;
  const half = new Promise<void>((resolve) => (halfAnswered = resolve));
  const fallback = setTimeout(halfAnswered, 5_000);
  provider.holdCharges(half);
  const replies = await Promise.all(
    instances.map(async (instance) => {
      const reply = await post(instance);
      if (++answered === instances.length / 2) halfAnswered();
      return reply;
    }),
  ).finally(() => clearTimeout(fallback));
  const ran = replies.filter((r) => r.status === 201 && !r.replayed);
  expect(ran.length === 1, 'not exactly one request ran');
  const runningInstance = instances[replies.indexOf(ran[0] as Reply)] ?? 'same';
  const running = replies.filter((_, i) => instances[i] === runningInstance);
  const other = replies.filter((_, i) => instances[i] !== runningInstance);
  expect(
    running.every((r) => r.status === 201 && r.json.paymentId === ran[0]?.json.paymentId),
    'a duplicate in the environment that ran the payment did not get its 201',
  );
  expect(
    other.every((r) => r.status === 409 && r.retryAfter !== undefined),
    `the other environment answered ${tally(other)}, expected 409 + Retry-After while the payment ran`,
  );
  return `${tally(running)} in one; ${tally(other)} in the other`;
}

type Scenario = (client: DynamoDBClient, tables: DemoTables) => Promise<ScenarioResult>;

const PAYMENT = { amount: 4_999, currency: 'EUR' };

export const scenarios: Scenario[] = [
  async function doubleClick(client, tables) {
    const h = new Harness(client, tables);
    const key = h.key('double-click');
    const first = await h.post('/payments', PAYMENT, key);
    const second = await h.post('/payments', PAYMENT, key);
    h.expect(first.status === 201 && !first.replayed, `first answer ${first.status}, expected 201`);
    h.expect(second.status === 201 && second.replayed, `second answer ${second.status}${second.replayed ? ' replayed' : ''}, expected 201 replayed`);
    h.expect(second.json.paymentId === first.json.paymentId, 'the replay names another payment');
    return h.result('Double-click: same key twice', 'charges', 1, `${tally([first, second])}, same paymentId`);
  },

  async function burst(client, tables) {
    const h = new Harness(client, tables);
    const key = h.key('burst');
    const detail = await burstOfDuplicates((instance) => h.post('/payments', PAYMENT, key, instance), h.provider, h.expect.bind(h));
    return h.result(BURST, 'charges', 1, detail);
  },

  async function differentPayload(client, tables) {
    const h = new Harness(client, tables);
    const key = h.key('reused-key');
    const first = await h.post('/payments', { amount: 1_000, currency: 'EUR' }, key);
    const second = await h.post('/payments', { amount: 2_000, currency: 'EUR' }, key);
    h.expect(first.status === 201, `first answer ${first.status}, expected 201`);
    h.expect(second.status === 422, `second answer ${second.status}, expected 422`);
    return h.result('Same key, different amount', 'charges', 1, `${tally([first, second])} (key reused for another payload)`);
  },

  async function missingKey(client, tables) {
    const h = new Harness(client, tables);
    const reply = await h.post('/payments', PAYMENT);
    h.expect(reply.status === 400, `answer ${reply.status}, expected 400`);
    return h.result('No Idempotency-Key header', 'charges', 0, `${tally([reply])}: refused before anything ran`);
  },

  async function lateRetry(client, tables) {
    const h = new Harness(client, tables);
    const payment = await h.post('/payments', { amount: 10_000, currency: 'EUR' }, h.key('late-payment'));
    const paymentId = String(payment.json.paymentId);
    const key = h.key('late-refund');
    const refund = await h.post(`/payments/${paymentId}/refunds`, { amount: 2_500 }, key);
    h.clock.advance(30 * 60_000);
    const retry = await h.post(`/payments/${paymentId}/refunds`, { amount: 2_500 }, key);
    const stored = await h.storedPayment(paymentId);
    h.expect(refund.status === 201, `refund answer ${refund.status}, expected 201`);
    h.expect(retry.status === 201 && retry.replayed && retry.json.refundId === refund.json.refundId, 'the late retry was not a replay of the refund');
    h.expect(stored?.refundedAmount === 2_500 && stored.status === 'PARTIALLY_REFUNDED', `stored refundedAmount ${stored?.refundedAmount}, expected 2500`);
    return h.result(
      'Refund retried 30 minutes later',
      'refunds',
      1,
      `replayed after 30 min (a 10-min lock would have run the refund again); refunded ${stored?.refundedAmount} of 10000`,
    );
  },

  async function competingRefunds(client, tables) {
    const h = new Harness(client, tables);
    const payment = await h.post('/payments', { amount: 5_000, currency: 'EUR' }, h.key('shared-payment'));
    const paymentId = String(payment.json.paymentId);
    // Five different refund requests (different keys): only the conditional state change stops them.
    const replies = await Promise.all(Array.from({ length: 5 }, (_, i) => h.post(`/payments/${paymentId}/refunds`, { amount: 2_000 }, h.key(`refund-${i}`))));
    const stored = await h.storedPayment(paymentId);
    h.expect(replies.filter((r) => r.status === 201).length === 2, 'not exactly two refunds accepted');
    h.expect(replies.filter((r) => r.status === 409).length === 3, 'not exactly three refunds refused with 409');
    h.expect(stored?.refundedAmount === 4_000 && stored.refundableAmount === 1_000, `stored refundedAmount ${stored?.refundedAmount}, expected 4000`);
    return h.result('5 different refunds of 2000 on a 5000 payment', 'refunds', 2, `${tally(replies)}; refunded ${stored?.refundedAmount} of 5000, never more`);
  },

  async function downstreamFailure(client, tables) {
    const h = new Harness(client, tables);
    const key = h.key('flaky-provider');
    h.provider.inject('fail');
    const failed = await h.post('/payments', PAYMENT, key);
    const retry = await h.post('/payments', PAYMENT, key);
    h.expect(failed.status === 502, `first answer ${failed.status}, expected 502`);
    h.expect(retry.status === 201 && !retry.replayed, `retry answer ${retry.status}${retry.replayed ? ' replayed' : ''}, expected 201 that ran`);
    return h.result('Provider fails, then the retry succeeds', 'charges', 1, `${tally([failed, retry])}: the 502 released the key, the retry ran`);
  },

  async function sqsBatch(client, tables) {
    const h = new Harness(client, tables);
    const order = (id: string, amount = 1_500) => JSON.stringify({ orderId: h.key(id), amount, currency: 'EUR' });
    const a = sqsRecord(order('order-a'));
    const b = sqsRecord(order('order-b'));
    const aResent = sqsRecord(order('order-a')); // the producer sent it twice: a new message id
    const unparseable = sqsRecord('{"orderId": "order-x", amount: oops');
    const invalid = sqsRecord(order('order-c', -5));
    const bResent = sqsRecord(order('order-b'));
    const d = sqsRecord(order('order-d'));
    // The same order id with another amount is no resend: it must not be acknowledged as charged.
    const dChanged = sqsRecord(order('order-d', 9_900));
    const batch = [a, b, aResent, unparseable, invalid, bResent, d, dChanged];
    const failing = [unparseable.messageId, invalid.messageId, dChanged.messageId].sort();
    const first = await h.deliver(batch);
    h.expect(
      JSON.stringify(first.sort()) === JSON.stringify(failing),
      `first delivery reported ${first.length} failures, expected the 2 poison messages and the changed order`,
    );
    const redelivery = await h.deliver([unparseable, invalid, dChanged]);
    h.expect(redelivery.length === 3, 'the redelivered poison messages and the changed order were not reported failed again');
    // A whole-batch redelivery (e.g. the invocation timed out after processing) replays every order.
    const again = await h.deliver(batch);
    h.expect(again.length === 3, 'the whole-batch redelivery reported other failures');
    return h.result(
      'SQS batch: 8 messages, 2 duplicates, 2 poison, 1 order resent with another amount; redelivered',
      'charges',
      3,
      `batchItemFailures: the 2 poison messages and the changed order (on to the dead-letter queue), 3 times; duplicates and redeliveries replayed`,
    );
  },

  async function leaseTakeover(client, tables) {
    const h = new Harness(client, tables);
    const key = h.key('timeout');
    h.provider.inject('hang');
    // Attempt 1 (10 s Lambda timeout) hangs on the card network before charging.
    const stuck = h.post('/payments', PAYMENT, key);
    while (h.provider.attempts === 0) await new Promise((resolve) => setImmediate(resolve));
    h.clock.advance(2_000);
    // Retries reach another execution environment (in this one, duplicates would wait for attempt 1).
    const early = await h.post('/payments', PAYMENT, key, 'other');
    h.clock.advance(9_000);
    const takeover = await h.post('/payments', PAYMENT, key, 'other');
    // Lambda stops attempt 1 at its deadline; its late end must not touch the taken-over record.
    h.provider.releaseHung();
    const stale = await stuck;
    const after = await h.post('/payments', PAYMENT, key);
    h.expect(
      early.status === 409 && early.retryAfter === '8',
      `retry within the lease answered ${early.status} (Retry-After ${early.retryAfter}), expected 409 with Retry-After 8`,
    );
    h.expect(takeover.status === 201 && !takeover.replayed, `retry after the lease answered ${takeover.status}, expected 201 that ran`);
    h.expect(stale.status === 502, `the timed-out attempt ended with ${stale.status}`);
    h.expect(after.status === 201 && after.replayed && after.json.paymentId === takeover.json.paymentId, 'a later duplicate did not replay the takeover');
    return h.result(
      'Timed-out attempt taken over after its lease',
      'charges',
      1,
      `409 Retry-After ${early.retryAfter} during the lease, then 201 after it; replayed since`,
    );
  },

  async function crashBeforeCompletion(client, tables) {
    const h = new Harness(client, tables);
    const key = h.key('crash');
    // The card is charged, then the Lambda dies while committing the payment with its record: the
    // payment item and the COMPLETED record share one transaction, so neither exists, and the dead
    // attempt sends nothing more (it cannot release its record).
    let dead = false;
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (dead || context.commandName === 'TransactWriteItemsCommand') {
          dead = true;
          throw Object.assign(new Error('the Lambda runtime stopped'), { name: 'RuntimeExit' });
        }
        return next(args);
      },
      { step: 'initialize', name: 'demoCrash' },
    );
    let crashed: Reply;
    try {
      crashed = await h.post('/payments', PAYMENT, key);
    } finally {
      client.middlewareStack.remove('demoCrash');
    }
    const during = await h.post('/payments', PAYMENT, key);
    h.clock.advance(11_000); // past the dead attempt's lease (its 10 s deadline)
    const retry = await h.post('/payments', PAYMENT, key);
    const again = await h.post('/payments', PAYMENT, key);
    const stored = retry.json.paymentId ? await h.storedPayment(retry.json.paymentId) : undefined;
    h.expect(crashed.status === 503, `the crashed attempt answered ${crashed.status}, expected 503 (outcome unknown)`);
    h.expect(during.status === 409, `a retry within the dead attempt's lease answered ${during.status}, expected 409`);
    h.expect(retry.status === 201 && !retry.replayed, `the retry after the lease answered ${retry.status}, expected 201 that ran`);
    h.expect(again.status === 201 && again.replayed, 'a later duplicate did not replay the retry');
    h.expect(stored?.chargeId !== undefined && h.provider.attempts === 2, `the retry did not reuse the charge (${h.provider.attempts} attempts)`);
    return h.result(
      'Crash between the charge and the commit',
      'charges',
      1,
      `${tally([crashed, during, retry, again])}: the retry ran again; the processor's key (downstreamKey) kept it to one charge, the transaction to one payment`,
    );
  },
];

/** Runs `scenarios` one after the other; a scenario that throws is a failed result. `onResult` sees each as it comes. */
export async function runEach<S extends (...args: never[]) => Promise<ScenarioResult>>(
  list: readonly S[],
  invoke: (scenario: S) => Promise<ScenarioResult>,
  onResult?: (result: ScenarioResult) => void,
): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  for (const scenario of list) {
    let result: ScenarioResult;
    try {
      result = await invoke(scenario);
    } catch (error) {
      result = {
        name: scenario.name,
        effect: 'charges',
        happened: NaN,
        expected: NaN,
        detail: 'threw',
        problems: [String((error as Error)?.stack ?? error)],
        ok: false,
      };
    }
    results.push(result);
    onResult?.(result);
  }
  return results;
}

/** Runs every scenario in order on `tables`; `onResult` sees each result as it comes. */
export function runScenarios(client: DynamoDBClient, tables: DemoTables, onResult?: (result: ScenarioResult) => void): Promise<ScenarioResult[]> {
  return runEach(scenarios, (scenario) => scenario(client, tables), onResult);
}
