/**
 * `idempotentBatch` composed with other layers: in-batch duplicates whose outcomes differ by
 * payload, nested idempotent calls with writes, and middy middlewares around the batch handler.
 */
import middy from '@middy/core';
import inputOutputLogger from '@middy/input-output-logger';
import { DynamoDBStore, idempotentBatch, makeIdempotent, transaction } from '../../lib/index.js';
import { consumerClock, consumerContext, failuresOf, ids, quiet, useConsumerTables } from '../support/batch-consumer.js';
import { type Order, redelivered, sqsEvent, sqsRecord } from '../support/batch-events.js';
import { endpoint, readItem, scanItems, useBusinessTable } from '../support/dynamodb.js';
import { faultyClient } from '../support/faults.js';

let tableName: string;
let store: DynamoDBStore;
const client = useConsumerTables('batch-layers', (fresh) => ({ tableName, store } = fresh));
const clock = consumerClock;
const business = useBusinessTable(client);
const { client: faulty, faults } = faultyClient(endpoint());
afterEach(() => void faults.clear());
afterAll(() => faulty.destroy());

const statuses = async () => (await scanItems(client, tableName)).map((item) => item.status?.S).sort();
const charges = async (orderId: string) => (await readItem(client, business, `charge-${orderId}`))?.n?.N;

describe('in-batch duplicates with a fingerprint', () => {
  const charging = (charged: Order[]) =>
    idempotentBatch<Order>((order) => void charged.push(order), {
      store,
      now: clock,
      key: (order) => order.orderId,
      fingerprint: (order) => order.amount,
      throwOnFullBatchFailure: false,
      logger: quiet(),
    });

  test("standard queue: a redelivered message is not failed because a conflicting message with its key came before it in the batch (the PAYLOAD_MISMATCH is that message's own)", async () => {
    const charged: Order[] = [];
    const handler = charging(charged);
    const original = sqsRecord({ orderId: 'o-1', amount: 10 });
    expect(failuresOf(await handler(sqsEvent([original]), consumerContext()))).toEqual([]);
    const conflicting = sqsRecord({ orderId: 'o-1', amount: 20 });
    const again = redelivered(original);
    // Both come back together on every redelivery: failed with its twin, the message done would end in the dead-letter queue.
    expect(failuresOf(await handler(sqsEvent([conflicting, again]), consumerContext()))).toEqual(ids(conflicting));
    expect(charged).toEqual([{ orderId: 'o-1', amount: 10 }]);
  });

  test('a message after an in-batch conflict with its key replays what ran first; a conflict runs nothing', async () => {
    const charged: Order[] = [];
    const handler = charging(charged);
    const [first, conflicting, resent] = [10, 20, 10].map((amount) => sqsRecord({ orderId: 'o-2', amount }));
    expect(failuresOf(await handler(sqsEvent([first!, conflicting!, resent!]), consumerContext()))).toEqual(ids(conflicting!));
    expect(charged).toEqual([{ orderId: 'o-2', amount: 10 }]);
  });

  test('FIFO: the conflict fails its own group only; the group of the message done runs on', async () => {
    const charged: Order[] = [];
    const handler = charging(charged);
    const original = sqsRecord({ orderId: 'o-3', amount: 10 }, { groupId: 'b' });
    expect(failuresOf(await handler(sqsEvent([original]), consumerContext()))).toEqual([]);
    const conflicting = sqsRecord({ orderId: 'o-3', amount: 20 }, { groupId: 'a' });
    const next = sqsRecord({ orderId: 'o-4', amount: 5 }, { groupId: 'b' });
    expect(failuresOf(await handler(sqsEvent([conflicting, redelivered(original), next]), consumerContext()))).toEqual(ids(conflicting));
    expect(charged.map((order) => order.orderId)).toEqual(['o-3', 'o-4']);
  });
});

describe('a record function that calls a nested idempotent function with transaction() writes', () => {
  /** A batch whose records charge through a nested idempotent call, its writes on a store whose client `faults` can break. */
  const charging = (options: { conflict?: boolean } = {}) => {
    const nestedStore = new DynamoDBStore({ tableName, client: faulty });
    const runs: string[] = [];
    const charge = makeIdempotent(
      async (order: Order) => {
        runs.push(order.orderId);
        transaction().update({
          TableName: business,
          Key: { id: `charge-${order.orderId}` },
          UpdateExpression: 'ADD n :one',
          ...(options.conflict ? { ConditionExpression: 'attribute_exists(blocked)' } : {}),
          ExpressionAttributeValues: { ':one': 1 },
        });
        return { charged: order.amount };
      },
      { store: nestedStore, name: 'charge', key: (order) => order.orderId, now: clock, logger: quiet() },
    );
    const handler = idempotentBatch<Order>((order) => charge(order), { store, now: clock, throwOnFullBatchFailure: false, logger: quiet() });
    return { handler, runs };
  };

  test('a nested commit whose condition fails fails the record and holds no key; the redelivery runs it', async () => {
    const { handler, runs } = charging({ conflict: true });
    const message = sqsRecord({ orderId: 'c-1', amount: 5 });
    expect(failuresOf(await handler(sqsEvent([message]), consumerContext()))).toEqual(ids(message));
    expect(await statuses()).toEqual([]);
    expect(await charges('c-1')).toBeUndefined();
    const fixed = charging();
    expect(failuresOf(await fixed.handler(sqsEvent([redelivered(message)]), consumerContext()))).toEqual([]);
    expect(await charges('c-1')).toBe('1');
    expect(await statuses()).toEqual(['COMPLETED', 'COMPLETED']);
    expect([...runs, ...fixed.runs]).toEqual(['c-1', 'c-1']);
  });

  test('a nested commit applied whose every answer is lost: the record succeeds, the money moved once, and the redelivery replays', async () => {
    const { handler, runs } = charging();
    faults.schedule({ operations: ['TransactWriteItems'], fault: { kind: 'drop-response' }, attempts: 'all' });
    const message = sqsRecord({ orderId: 'c-2', amount: 5 });
    const twin = sqsRecord({ orderId: 'c-2', amount: 5 });
    expect(failuresOf(await handler(sqsEvent([message, twin]), consumerContext()))).toEqual([]);
    expect(faults.injected.map((fault) => fault.operation)).toEqual(['TransactWriteItems', 'TransactWriteItems', 'TransactWriteItems']);
    faults.clear();
    expect(failuresOf(await handler(sqsEvent([redelivered(message)]), consumerContext()))).toEqual([]);
    expect(runs).toEqual(['c-2']);
    expect(await charges('c-2')).toBe('1');
    expect(await statuses()).toEqual(['COMPLETED', 'COMPLETED']);
  });

  test('a nested commit never sent (connection reset on every attempt) fails the record and its twin, holds no key, and the redelivery charges once', async () => {
    const { handler, runs } = charging();
    const message = sqsRecord({ orderId: 'c-3', amount: 5 });
    const twin = sqsRecord({ orderId: 'c-3', amount: 5 });
    const other = sqsRecord({ orderId: 'c-4', amount: 5 });
    faults.schedule({
      operations: ['TransactWriteItems'],
      fault: { kind: 'reset' },
      attempts: 'all',
      where: (request) => JSON.stringify(request.body).includes('charge-c-3'),
    });
    expect(failuresOf(await handler(sqsEvent([message, other, twin]), consumerContext()))).toEqual(ids(message, twin));
    expect(await charges('c-3')).toBeUndefined();
    expect(await statuses()).toEqual(['COMPLETED', 'COMPLETED']);
    faults.clear();
    expect(failuresOf(await handler(sqsEvent([redelivered(message), redelivered(twin)]), consumerContext()))).toEqual([]);
    expect(await charges('c-3')).toBe('1');
    expect(runs.filter((id) => id === 'c-3')).toEqual(['c-3', 'c-3']);
  });

  test('a record function that calls itself with its own key fails the record (IN_PROGRESS, without waiting) and leaves no key held', async () => {
    const inner = makeIdempotent(async (order: Order) => order.orderId, { store, name: 'self', key: (order) => order.orderId, now: clock });
    const handler = idempotentBatch<Order>((order) => inner(order), { store, name: 'self', key: (order) => order.orderId, now: clock, logger: quiet() });
    const error = await handler(sqsEvent([sqsRecord({ orderId: 's-1' })]), consumerContext()).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(AggregateError);
    expect((error as AggregateError).errors).toEqual([expect.objectContaining({ code: 'IN_PROGRESS' })]);
    expect(await statuses()).toEqual([]);
  });
});

describe('inside middy, with @middy/input-output-logger and a middleware whose after throws', () => {
  test('the invocation fails after the records ended: the redelivery of the whole batch replays the records done and runs the failed one once more', async () => {
    const runs: string[] = [];
    const failing = new Set(['m-2']);
    const logged: unknown[] = [];
    let breakAfter = true;
    const handler = middy(
      idempotentBatch<Order>(
        (order) => {
          runs.push(order.orderId);
          if (failing.delete(order.orderId)) throw new Error('downstream unavailable');
        },
        { store, now: clock, logger: quiet() },
      ),
    )
      .use(inputOutputLogger({ logger: (message: unknown) => void logged.push(message) }))
      .use({
        after: () => {
          if (breakAfter) throw new Error('metrics flush failed');
        },
      });
    const batch = ['m-1', 'm-2', 'm-3'].map((orderId) => sqsRecord({ orderId }));
    await expect(handler(sqsEvent(batch), consumerContext())).rejects.toThrow('metrics flush failed');
    breakAfter = false;
    expect(failuresOf(await handler(sqsEvent(batch.map(redelivered)), consumerContext()))).toEqual([]);
    expect(runs.sort()).toEqual(['m-1', 'm-2', 'm-2', 'm-3']);
    expect(await statuses()).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    expect(logged).toContainEqual({ response: { batchItemFailures: [] } });
  });
});
