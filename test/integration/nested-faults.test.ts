/**
 * One store fault at one step while idempotent layers are nested, against DynamoDB Local: an
 * `httpIdempotency` handler or an `idempotentBatch` record function calling a `makeIdempotent`
 * function. The inner function runs at most once per key across the outer layer's retries, the
 * outer caller gets a typed answer, and every record left has a lease and a retention.
 */
import { DynamoDBStore, idempotentBatch, makeIdempotent, transaction } from '../../lib/index.js';
import { consumerClock, consumerContext, failuresOf, ids } from '../support/batch-consumer.js';
import { type Order, redelivered, sqsEvent, sqsRecord } from '../support/batch-events.js';
import { endpoint, readItem, scanItems, testClient, useBusinessTable, useFreshTable } from '../support/dynamodb.js';
import { faultyClient } from '../support/faults.js';
import { lambdaContext } from '../support/lambda.js';
import { type Listener, listen } from '../support/listener.js';
import { paymentHandler, paymentRequest } from '../support/payment-request.js';

const { client, tableName, store } = useFreshTable({ prefix: 'nested-faults' });
const admin = testClient();
const business = useBusinessTable(admin);
afterAll(() => admin.destroy());
const { client: faulty, faults } = faultyClient(endpoint());
/** The inner layer's store: the same table, through the fault layer. */
const innerStore = new DynamoDBStore({ tableName, client: faulty });
afterEach(() => void faults.clear());
afterAll(() => faulty.destroy());

const records = (name: string) => scanItems(client, tableName, `${name}#`);

/** An HTTP handler whose inner idempotent payment is keyed by the request's Idempotency-Key. */
function httpPayment(name: string, listener: Listener) {
  let runs = 0;
  const pay = makeIdempotent(async (key: string) => ({ paid: key, run: ++runs }), { store: innerStore, name: `${name}-inner`, ...listener.options });
  const { handler } = paymentHandler(pay, { store, name: `${name}-outer`, ...listener.options });
  return { handler, runs: () => runs };
}

describe('httpIdempotency handler calling a makeIdempotent function', () => {
  test.each([
    ['throttled on every attempt', { kind: 'throttle' }],
    ['applied, every answer lost', { kind: 'drop-response' }],
  ] as const)('the inner claim fails (%s): STORE_FAILURE, one storeFailure event, no key held by either layer; the retry runs once', async (_, fault) => {
    const name = `claim-${fault.kind}`;
    const listener = listen();
    const { handler, runs } = httpPayment(name, listener);
    faults.schedule({ operations: ['PutItem'], fault, attempts: 'all' });
    await expect(handler(paymentRequest('k-1'), lambdaContext('nested', 5_000))).rejects.toMatchObject({ code: 'STORE_FAILURE', statusCode: 503 });
    expect(runs()).toBe(0);
    expect(listener.events('storeFailure')).toEqual([{ event: 'storeFailure', namespace: `${name}-inner` }]);
    expect(await records(`${name}-inner`)).toEqual([]);
    expect(await records(`${name}-outer`)).toEqual([]);
    faults.clear();
    expect(await handler(paymentRequest('k-1'), lambdaContext('nested', 5_000))).toEqual({ statusCode: 201, body: '{"paid":"k-1","run":1}' });
    expect(await handler(paymentRequest('k-1'), lambdaContext('nested', 5_000))).toEqual({
      statusCode: 201,
      body: '{"paid":"k-1","run":1}',
      headers: { 'Idempotent-Replayed': 'true' },
    });
    expect(runs()).toBe(1);
  });

  test('the inner completion fails: the outer layer keeps the 201 and replays it; the inner record is held until the invocation deadline only, with its retention', async () => {
    const listener = listen();
    const { handler, runs } = httpPayment('complete', listener);
    // Refused (a missing grant): a throttle would be sent again until DynamoDB takes it.
    faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'refuse' } });
    const before = Date.now();
    expect(await handler(paymentRequest('k-2'), lambdaContext('nested', 5_000))).toEqual({ statusCode: 201, body: '{"paid":"k-2","run":1}' });
    expect(listener.events('bookkeepingFailure')).toEqual([{ event: 'bookkeepingFailure', namespace: 'complete-inner' }]);
    const [inner] = await records('complete-inner');
    expect(inner?.status?.S).toBe('INPROGRESS');
    // Given no context, the inner call holds its record until the handler's deadline, not for `leaseSeconds`.
    expect(Number(inner?.leaseUntil?.N)).toBeLessThanOrEqual(Date.now() + 5_000);
    expect(Number(inner?.leaseUntil?.N)).toBeGreaterThanOrEqual(before + 4_000);
    expect(Number(inner?.expiration?.N)).toBeGreaterThan(before / 1000 + 3_600);
    faults.clear();
    expect(await handler(paymentRequest('k-2'), lambdaContext('nested', 5_000))).toEqual({
      statusCode: 201,
      body: '{"paid":"k-2","run":1}',
      headers: { 'Idempotent-Replayed': 'true' },
    });
    expect(runs()).toBe(1);
  });
});

describe('idempotentBatch record function calling an atomic makeIdempotent function with transaction() writes', () => {
  test('the inner commit applies and every answer is lost: only that record fails; the redelivery replays it and the write applied once', async () => {
    const listener = listen();
    const charge = makeIdempotent(
      async (order: Order) => {
        transaction().update({
          TableName: business,
          Key: { id: `atomic-${order.orderId}` },
          UpdateExpression: 'ADD n :one',
          ExpressionAttributeValues: { ':one': 1 },
        });
        return { charged: order.orderId };
      },
      { store: innerStore, atomic: true, name: 'atomic-inner', key: (order) => order.orderId, now: consumerClock, ...listener.options },
    );
    const handler = idempotentBatch<Order>((order) => charge(order), {
      store,
      name: 'atomic-outer',
      now: consumerClock,
      throwOnFullBatchFailure: false,
      ...listener.options,
    });
    const [lost, other] = [sqsRecord({ orderId: 'a-1' }), sqsRecord({ orderId: 'a-2' })];
    faults.schedule({
      operations: ['TransactWriteItems'],
      fault: { kind: 'drop-response' },
      attempts: 'all',
      where: (request) => JSON.stringify(request.body).includes('atomic-a-1'),
    });
    expect(failuresOf(await handler(sqsEvent([lost!, other!]), consumerContext()))).toEqual(ids(lost!));
    expect(listener.events('storeFailure')).toEqual([{ event: 'storeFailure', namespace: 'atomic-inner' }]);
    expect(await records('atomic-outer')).toHaveLength(1);
    faults.clear();
    expect(failuresOf(await handler(sqsEvent([redelivered(lost!)]), consumerContext()))).toEqual([]);
    expect((await readItem(admin, business, 'atomic-a-1'))?.n?.N).toBe('1');
    const left = [...(await records('atomic-outer')), ...(await records('atomic-inner'))];
    expect(left.map((item) => item.status?.S)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED', 'COMPLETED']);
    // Both layers on the consumer's clock, each kept for the default retention, a day.
    expect(left.map((item) => Number(item.expiration?.N))).toEqual(left.map(() => consumerClock() / 1000 + 86_400));
  });
});
