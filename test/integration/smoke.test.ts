import middy from '@middy/core';
import { DynamoDBStore, idempotency } from '../../lib/index.js';
import { dropTable, freshTable, testClient } from '../support/dynamodb.js';

const client = testClient();
let tableName: string;
beforeAll(async () => {
  tableName = await freshTable(client);
});
afterAll(async () => {
  await dropTable(client, tableName);
  client.destroy();
});

test('a duplicate event replays the stored response without running the handler again', async () => {
  let runs = 0;
  const handler = middy(async (event: { id: string }) => ({ runs: ++runs, id: event.id })).use(
    idempotency({ store: new DynamoDBStore({ tableName, client }), key: (e: { id: string }) => e.id }),
  );
  const context = { functionName: 'smoke', getRemainingTimeInMillis: () => 10_000 } as never;
  expect(await handler({ id: 'a' }, context)).toEqual({ runs: 1, id: 'a' });
  expect(await handler({ id: 'a' }, context)).toEqual({ runs: 1, id: 'a' });
  expect(runs).toBe(1);
});
