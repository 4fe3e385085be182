/**
 * What a store failure at claim says, on DynamoDB Local: the cause's error name, so a wrong table
 * name or an unreachable endpoint is not mistaken for one another; nothing runs.
 */
import { DynamoDBStore, makeIdempotent } from '../../lib/index.js';
import { testClient, unreachableClient } from '../support/dynamodb.js';
import { rejection } from '../support/rejections.js';

test('a table that does not exist: STORE_FAILURE (ResourceNotFoundException), nothing runs', async () => {
  const client = testClient();
  try {
    let runs = 0;
    const fn = makeIdempotent(async (_: string) => ++runs, { store: new DynamoDBStore({ tableName: 'no-such-table', client }), name: 'missing' });
    const error = await rejection(fn('k'));
    expect(error.code).toBe('STORE_FAILURE');
    expect(error.message).toBe('STORE_FAILURE: The idempotency store failed (ResourceNotFoundException); the function did not run.');
    expect(runs).toBe(0);
  } finally {
    client.destroy();
  }
});

test('an endpoint nobody listens on: STORE_FAILURE naming the connection error, nothing runs', async () => {
  const client = await unreachableClient();
  try {
    let runs = 0;
    const fn = makeIdempotent(async (_: string) => ++runs, { store: new DynamoDBStore({ tableName: 'idem', client }), name: 'unreachable' });
    const error = await rejection(fn('k'));
    expect(error.code).toBe('STORE_FAILURE');
    expect(error.message).toBe('STORE_FAILURE: The idempotency store failed (ECONNREFUSED); the function did not run.');
    expect(runs).toBe(0);
  } finally {
    client.destroy();
  }
});
