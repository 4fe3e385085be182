/**
 * The failure points of the record protocol (the claim, the completion, the release after a
 * failure, the commit of `transaction()` writes) and of the outcome (a key provider that fails),
 * met through `idempotentBatch`, on DynamoDB Local behind the fault layer. For each: a record whose
 * effect happened is never reported failed nor run again for a redelivery, no record is held past
 * its lease, and the batch names exactly the records that failed.
 */
import { randomUUID } from 'node:crypto';
import type { SQSEvent } from 'aws-lambda';
import { idempotentBatch, transaction } from '../../lib/index.js';
import { consumerContext, failuresOf, ids, quiet } from '../support/batch-consumer.js';
import { type Order, redelivered, SENT, sqsEvent, sqsRecord } from '../support/batch-events.js';
import { endpoint, readItem, recordId, scanItems, useFreshTable } from '../support/dynamodb.js';
import { faultyClient } from '../support/faults.js';
import { useFaultyKeyring } from '../support/keyring.js';

const { client: faulty, faults } = faultyClient(endpoint());
const { client: inspect, tableName, store } = useFreshTable({ prefix: 'batch-faults', storeClient: faulty });
afterEach(() => void faults.clear());
afterAll(() => faulty.destroy());

const clock = { now: SENT + 60_000 };
beforeEach(() => {
  clock.now = SENT + 60_000;
});

/** An order consumer on `storeOf`; `fail` lists the order ids whose record function throws. */
function consumer(storeOf = store, fail = new Set<string>()) {
  const name = `orders-${randomUUID()}`;
  const logger = quiet();
  const runs: string[] = [];
  const handler = idempotentBatch<Order>(
    async (order) => {
      runs.push(order.orderId);
      if (fail.has(order.orderId)) throw new Error('payment provider timed out');
      return { charged: order.orderId };
    },
    { store: storeOf, name, now: () => clock.now, logger, singleFlight: false, throwOnFullBatchFailure: false },
  );
  return {
    name,
    logger,
    runs,
    invoke: (event: SQSEvent) => handler(event, consumerContext()),
    status: async (orderId: string) => (await scanItems(inspect, tableName, `${name}#`)).find((item) => item.id?.S === recordId(name, { orderId }))?.status?.S,
  };
}

/** The records of one batch: three orders. */
const threeOrders = () => [sqsRecord({ orderId: 'o-1' }), sqsRecord({ orderId: 'o-2' }), sqsRecord({ orderId: 'o-3' })];
/** Selects the store requests of one order's record. */
const ofOrder = (name: string, orderId: string) => (request: { body: Record<string, unknown> }) =>
  JSON.stringify(request.body).includes(recordId(name, { orderId }));

describe('idempotentBatch', () => {
  test('a claim whose answer is lost: the record runs once and succeeds; its redelivery replays', async () => {
    const orders = consumer();
    faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response' }, where: ofOrder(orders.name, 'o-2') });
    const batch = threeOrders();
    expect(failuresOf(await orders.invoke(sqsEvent(batch)))).toEqual([]);
    expect(faults.injected).toHaveLength(1);
    expect(failuresOf(await orders.invoke(sqsEvent(batch.map(redelivered))))).toEqual([]);
    expect(orders.runs.sort()).toEqual(['o-1', 'o-2', 'o-3']);
  });

  test('a claim the store fails on every attempt: that record alone is reported, unrun; its redelivery runs it', async () => {
    const orders = consumer();
    faults.schedule({ operations: ['PutItem'], fault: { kind: 'server-error' }, attempts: 'all', where: ofOrder(orders.name, 'o-2') });
    const batch = threeOrders();
    expect(failuresOf(await orders.invoke(sqsEvent(batch)))).toEqual(ids(batch[1]!));
    expect(orders.runs.sort()).toEqual(['o-1', 'o-3']);
    expect(await orders.status('o-2')).toBeUndefined();
    faults.clear();
    expect(failuresOf(await orders.invoke(sqsEvent(batch.map(redelivered))))).toEqual([]);
    expect(orders.runs.sort()).toEqual(['o-1', 'o-2', 'o-3']);
  });

  test('a completion the store refuses (a missing grant): the record succeeded (its effect happened) and is not reported; the failure is logged', async () => {
    const orders = consumer();
    faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'refuse' }, where: ofOrder(orders.name, 'o-2') });
    const batch = threeOrders();
    expect(failuresOf(await orders.invoke(sqsEvent(batch)))).toEqual([]);
    expect(orders.logger.lines.map((line) => JSON.parse(line).level)).toContain('WARN');
    expect(await orders.status('o-2')).toBe('INPROGRESS');
    faults.clear();
    // A redelivery within the lease is reported failed, never run; the record is held no longer than its lease.
    expect(failuresOf(await orders.invoke(sqsEvent([redelivered(batch[1]!)])))).toEqual(ids(batch[1]!));
    expect(orders.runs.filter((id) => id === 'o-2')).toHaveLength(1);
  });

  test("a failed record whose release the store refuses (a missing grant): reported failed with the handler's own error, the others succeed", async () => {
    const orders = consumer(store, new Set(['o-2']));
    // Refused: a reset connection would be sent again until DynamoDB takes it.
    faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'refuse' } });
    const batch = threeOrders();
    expect(failuresOf(await orders.invoke(sqsEvent(batch)))).toEqual(ids(batch[1]!));
    expect(faults.attemptsOf('DeleteItem')).toBe(1);
    expect(await orders.status('o-2')).toBe('INPROGRESS');
    expect(await orders.status('o-1')).toBe('COMPLETED');
    expect(await orders.status('o-3')).toBe('COMPLETED');
  });

  /** A consumer whose record function charges the order in `transaction()`: one counter item per order, on the idempotency table. */
  function charging(atomic: boolean) {
    const name = `charges-${randomUUID()}`;
    const runs: string[] = [];
    const handler = idempotentBatch<Order>(
      (order) => {
        runs.push(order.orderId);
        transaction().update({
          TableName: tableName,
          Key: { id: `${name}-${order.orderId}` },
          UpdateExpression: 'ADD n :one',
          ExpressionAttributeValues: { ':one': 1 },
        });
        return { charged: order.orderId };
      },
      { store, name, now: () => clock.now, logger: quiet(), singleFlight: false, throwOnFullBatchFailure: false, ...(atomic ? { atomic } : {}) },
    );
    return {
      runs,
      invoke: (records: ReturnType<typeof sqsRecord>[]) => handler(sqsEvent(records), consumerContext()).then(failuresOf),
      charges: async (orderId: string) => (await readItem(inspect, tableName, `${name}-${orderId}`))?.n?.N,
      /** Every attempt of the commit that charges `orderId` meets `kind`. */
      failCommitOf: (orderId: string, kind: 'reset' | 'drop-response') =>
        faults.schedule({
          operations: ['TransactWriteItems'],
          fault: { kind },
          attempts: 'all',
          where: (request) => JSON.stringify(request.body).includes(`-${orderId}"`),
        }),
    };
  }

  test.each([false, true])(
    'atomic: %s. A commit never sent (reset on every attempt): that record alone is reported, nothing charged; the redelivery charges once',
    async (atomic) => {
      const orders = charging(atomic);
      const batch = threeOrders();
      orders.failCommitOf('o-2', 'reset');
      expect(await orders.invoke(batch)).toEqual(ids(batch[1]!));
      expect(await orders.charges('o-2')).toBeUndefined();
      expect(await orders.charges('o-1')).toBe('1');
      faults.clear();
      expect(await orders.invoke(batch.map(redelivered))).toEqual([]);
      expect(await orders.charges('o-2')).toBe('1');
      expect(orders.runs.filter((id) => id === 'o-2')).toHaveLength(2);
    },
  );

  test.each([false, true])(
    'atomic: %s. A commit applied whose every answer is lost: charged once; the record is reported only while its outcome is unknown, and no redelivery charges again',
    async (atomic) => {
      const orders = charging(atomic);
      const batch = threeOrders();
      orders.failCommitOf('o-2', 'drop-response');
      const failed = await orders.invoke(batch);
      // With a claim, the release that settles the commit finds its COMPLETED record: a success. Atomic, there is no record to release: COMMIT_FAILED.
      expect(failed).toEqual(atomic ? ids(batch[1]!) : []);
      expect(faults.injected).toHaveLength(3);
      faults.clear();
      expect(await orders.invoke(batch.map(redelivered))).toEqual([]);
      expect(await orders.charges('o-2')).toBe('1');
      expect(orders.runs.filter((id) => id === 'o-2')).toHaveLength(atomic ? 2 : 1); // an atomic redelivery runs its pure function; its commit meets the record
    },
  );

  describe('encrypted', () => {
    const { ring, encrypted } = useFaultyKeyring(tableName, faulty);

    test('the key provider fails when a redelivery opens stored outcomes: those records are reported, never run again; a new record in the batch runs', async () => {
      const orders = consumer(encrypted);
      const batch = threeOrders();
      expect(failuresOf(await orders.invoke(sqsEvent(batch.slice(0, 2))))).toEqual([]);
      ring.failById = 'throws';
      const redelivery = [...batch.slice(0, 2).map(redelivered), batch[2]!];
      expect(failuresOf(await orders.invoke(sqsEvent(redelivery)))).toEqual(ids(batch[0]!, batch[1]!));
      expect(orders.runs.sort()).toEqual(['o-1', 'o-2', 'o-3']);
      ring.failById = undefined;
      expect(failuresOf(await orders.invoke(sqsEvent(redelivery.map(redelivered))))).toEqual([]);
      expect(orders.runs.sort()).toEqual(['o-1', 'o-2', 'o-3']);
    });

    test('the key provider fails when a final error is sealed: the record is reported failed, and so is every redelivery, never run again (not acknowledged as a success)', async () => {
      const name = `declines-${randomUUID()}`;
      const runs: string[] = [];
      const handler = idempotentBatch<Order>(
        (order) => {
          runs.push(order.orderId);
          throw Object.assign(new Error('card declined'), { name: 'PaymentDeclined' });
        },
        {
          store: encrypted,
          name,
          now: () => clock.now,
          logger: quiet(),
          throwOnFullBatchFailure: false,
          isFinalError: (error) => (error as Error).name === 'PaymentDeclined',
        },
      );
      const message = sqsRecord({ orderId: 'o-declined' });
      ring.failCurrent = 'throws';
      expect(failuresOf(await handler(sqsEvent([message]), consumerContext()))).toEqual(ids(message));
      ring.failCurrent = undefined;
      clock.now += 10 * 60_000;
      expect(failuresOf(await handler(sqsEvent([redelivered(message)]), consumerContext()))).toEqual(ids(message));
      expect(runs).toEqual(['o-declined']);
    });

    test('the key provider fails when outcomes are sealed: every record succeeds; redelivered, past the lease, they succeed unrun', async () => {
      const orders = consumer(encrypted);
      const batch = threeOrders();
      ring.failCurrent = 'throws';
      expect(failuresOf(await orders.invoke(sqsEvent(batch)))).toEqual([]);
      expect(await orders.status('o-1')).toBe('COMPLETED');
      expect(orders.logger.lines).toHaveLength(3); // each record's outcome, not kept, is logged
      ring.failCurrent = undefined;
      clock.now += 10 * 60_000;
      expect(failuresOf(await orders.invoke(sqsEvent(batch.map(redelivered))))).toEqual([]);
      expect(orders.runs.sort()).toEqual(['o-1', 'o-2', 'o-3']);
    });
  });
});
