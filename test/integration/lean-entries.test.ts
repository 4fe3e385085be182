/**
 * The lean middleware against a real DynamoDB Local and real middy: `lambda-idempotency/middy`
 * runs the same protocol as the main entry's middleware, with the lean store or the main one, and
 * takes observability as a listener. The lean store's own tests: lean-store.test.ts.
 */
import middy from '@middy/core';
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import { DynamoDBStore, type IdempotencyEvent, transaction } from '../../lib/index.js';
import { idempotency } from '../../lib/middy/index.js';
import { readItem, recordId, useBusinessTable, useFreshTable } from '../support/dynamodb.js';
import { lambdaContext } from '../support/lambda.js';

const { client, tableName, store } = useFreshTable();
const businessTable = useBusinessTable(client);

test('the lean middleware on the lean store runs a handler once, replays its response (undefined too) and releases the key on error', async () => {
  const store = new LeanDynamoDBStore({ tableName, client });
  let runs = 0;
  const handler = middy(async (event: { id: string; fail?: boolean }) => {
    runs++;
    if (event.fail) throw new Error('declined');
    return event.id === 'void' ? undefined : { id: event.id, runs };
  }).use(idempotency({ store, key: (event: { id: string }) => event.id }));
  expect(await handler({ id: 'a' }, lambdaContext('lean'))).toEqual({ id: 'a', runs: 1 });
  expect(await handler({ id: 'a' }, lambdaContext('lean'))).toEqual({ id: 'a', runs: 1 });
  expect(await handler({ id: 'void' }, lambdaContext('lean'))).toBeUndefined();
  expect(await handler({ id: 'void' }, lambdaContext('lean'))).toBeUndefined();
  expect(runs).toBe(2);
  await expect(handler({ id: 'b', fail: true }, lambdaContext('lean'))).rejects.toThrow('declined');
  expect(await readItem(client, tableName, recordId('lean', 'b'))).toBeUndefined();
  expect(await handler({ id: 'b' }, lambdaContext('lean'))).toEqual({ id: 'b', runs: 4 });
});

test("the lean middleware commits a handler's transaction() writes with its record, given a store with transactions", async () => {
  const handler = middy(async (event: { id: string }) => {
    transaction().put({ TableName: businessTable, Item: { id: `payment-${event.id}` } });
    return 'paid';
  }).use(idempotency({ store, key: (event: { id: string }) => event.id }));
  expect(await handler({ id: 'tx' }, lambdaContext('lean-tx'))).toBe('paid');
  expect(await readItem(client, businessTable, 'payment-tx')).toEqual({ id: { S: 'payment-tx' } });
  expect((await readItem(client, tableName, recordId('lean-tx', 'tx')))?.status).toEqual({ S: 'COMPLETED' });
});

test('the lean middleware sends events to a listener, and refuses the options object of cloudWatchLines', async () => {
  const events: IdempotencyEvent[] = [];
  const handler = middy(async () => 'ok').use(idempotency({ store, observability: (event) => void events.push(event) }));
  await handler({ order: 1 }, lambdaContext('lean-events'));
  await handler({ order: 1 }, lambdaContext('lean-events'));
  expect(events).toEqual(['miss', 'replay']);
  expect(() => idempotency({ store, observability: { metrics: true } as never })).toThrow(
    new TypeError('idempotency: `observability` must be a listener, such as `cloudWatchLines(options)` from lambda-idempotency.'),
  );
  // Every other option is checked as the main entry checks it.
  expect(() => idempotency({ store: new DynamoDBStore({ tableName }), cacheSize: -1 })).toThrow(
    'idempotency: `cacheSize` must be a whole number, 0 or more (got -1).',
  );
});
