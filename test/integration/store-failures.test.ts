/**
 * What a store failure at claim says, on DynamoDB Local: the cause's error name, so a wrong table
 * name or an unreachable endpoint is not mistaken for one another; nothing runs.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStore, makeIdempotent } from '../../lib/index.js';
import type { TableSchema } from '../../lib/table-schema.js';
import { LOCAL_CREDENTIALS } from '../../tools/dynamodb-local.js';
import { createTable } from '../../tools/tables.js';
import { dropTable, endpoint, scanItems, testClient, unreachableClient } from '../support/dynamodb.js';
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

test('a client without a Region (off Lambda, no AWS_REGION): STORE_FAILURE naming the missing Region, nothing runs', async () => {
  // Nothing of the SDK's configuration chain may name a Region.
  const saved = { AWS_REGION: process.env.AWS_REGION, AWS_DEFAULT_REGION: process.env.AWS_DEFAULT_REGION, AWS_CONFIG_FILE: process.env.AWS_CONFIG_FILE };
  delete process.env.AWS_REGION;
  delete process.env.AWS_DEFAULT_REGION;
  process.env.AWS_CONFIG_FILE = '/nonexistent/aws-config';
  const client = new DynamoDBClient({ endpoint: endpoint(), credentials: LOCAL_CREDENTIALS });
  try {
    let runs = 0;
    const fn = makeIdempotent(async (_: string) => ++runs, { store: new DynamoDBStore({ tableName: 'idem', client }), name: 'no-region' });
    const error = await rejection(fn('k'));
    expect(error.message).toBe('STORE_FAILURE: The idempotency store failed (Region is missing); the function did not run.');
    expect(runs).toBe(0);
  } finally {
    client.destroy();
    for (const [name, value] of Object.entries(saved)) value === undefined ? delete process.env[name] : (process.env[name] = value);
  }
});

test.each<[string, TableSchema]>([
  ['another partition key name', { partitionKey: { name: 'pk', type: 'S' } }],
  ['a numeric partition key', { partitionKey: { name: 'id', type: 'N' } }],
  // A user's table: TableSchema describes only the tables this project creates.
  ['a binary partition key', { partitionKey: { name: 'id', type: 'B' } } as unknown as TableSchema],
  ['a sort key besides', { partitionKey: { name: 'id', type: 'S' }, sortKey: { name: 'sk', type: 'S' } }],
])('a table with %s: STORE_FAILURE (ValidationException) on every call, nothing runs, nothing is written', async (_what, schema) => {
  const client = testClient();
  const tableName = `keyed-otherwise-${schema.partitionKey.name}-${schema.partitionKey.type}-${schema.sortKey?.name ?? ''}`;
  await createTable(client, tableName, schema);
  try {
    let runs = 0;
    const fn = makeIdempotent(async (_: string) => ++runs, { store: new DynamoDBStore({ tableName, client }), name: 'keyed' });
    for (const key of ['a', 'a', 'b']) {
      expect((await rejection(fn(key))).message).toBe('STORE_FAILURE: The idempotency store failed (ValidationException); the function did not run.');
    }
    expect(runs).toBe(0);
    expect(await scanItems(client, tableName)).toEqual([]);
  } finally {
    await dropTable(client, tableName);
    client.destroy();
  }
});
