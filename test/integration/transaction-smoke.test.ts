import middy from '@middy/core';
import { DynamoDBStore, idempotency, makeIdempotent, transaction } from '../../lib/index.js';
import { dropTable, freshTable, readItem, testClient } from '../support/dynamodb.js';

const client = testClient();
let tableName: string;
beforeAll(async () => {
  tableName = await freshTable(client);
});
afterAll(async () => {
  await dropTable(client, tableName);
  client.destroy();
});

test('middleware: writes commit with the record; concurrent calls keep their own collectors', async () => {
  const store = new DynamoDBStore({ tableName, client });
  const handler = middy(async (event: { id: string }) => {
    await new Promise((r) => setTimeout(r, 5));
    transaction().put({ TableName: tableName, Item: { id: `biz-${event.id}`, status: 'PAID' } });
    return { ok: event.id };
  }).use(idempotency({ store, key: (e: { id: string }) => e.id }));
  const context = { functionName: 'tx', getRemainingTimeInMillis: () => 10_000 } as never;
  const out = await Promise.all([handler({ id: 'a' }, context), handler({ id: 'b' }, context)]);
  expect(out).toEqual([{ ok: 'a' }, { ok: 'b' }]);
  expect((await readItem(client, tableName, 'biz-a'))?.status?.S).toBe('PAID');
  expect((await readItem(client, tableName, 'biz-b'))?.status?.S).toBe('PAID');
  expect(() => transaction()).toThrow(/ended|outside/);
});

test('makeIdempotent atomic: one request first call', async () => {
  const store = new DynamoDBStore({ tableName, client });
  let runs = 0;
  const pay = makeIdempotent(async (input: { id: string }) => {
    runs++;
    transaction().put({ TableName: tableName, Item: { id: `pay-${input.id}` } });
    return { paid: input.id };
  }, { store, name: 'pay', key: (i) => i.id, atomic: true });
  expect(await pay({ id: 'x' })).toEqual({ paid: 'x' });
  expect(await pay({ id: 'x' })).toEqual({ paid: 'x' });
  expect(runs).toBe(2);
  expect(await readItem(client, tableName, 'pay-x')).toBeDefined();
});
