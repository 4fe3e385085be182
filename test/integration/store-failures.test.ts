/**
 * What a store failure at claim says, on DynamoDB Local: the cause's error name, so a wrong table
 * name or an unreachable endpoint is not mistaken for one another, and for a table that does not
 * exist, which one and the fix; nothing runs. A table gone before the completion or release: the
 * warning names it.
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import middy from '@middy/core';
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import { DynamoDBStore, idempotency, makeIdempotent, transaction } from '../../lib/index.js';
import type { TableSchema } from '../../lib/table-schema.js';
import { LOCAL_CREDENTIALS } from '../../tools/dynamodb-local.js';
import { createTable } from '../../tools/tables.js';
import { dropTable, endpoint, freshTable, scanItems, testClient, unreachableClient, useFreshTable } from '../support/dynamodb.js';
import { lambdaContext } from '../support/lambda.js';
import { rejection } from '../support/rejections.js';

/** What a call against a table that does not exist says: the table, and where to set it. */
const missing = (table: string) =>
  `STORE_FAILURE: The idempotency store failed (ResourceNotFoundException: no table ${table} in this account and Region; create it, or fix tableName or IDEMPOTENCY_TABLE); the function did not run.`;

describe('an idempotency table that does not exist: STORE_FAILURE naming the table and the fix, nothing runs, the cause the SDK error', () => {
  const client = testClient();
  afterAll(() => client.destroy());

  test.each([
    ['makeIdempotent', DynamoDBStore],
    ['makeIdempotent with the lean store of lambda-idempotency/dynamodb', LeanDynamoDBStore],
  ])('%s', async (_what, Store) => {
    let runs = 0;
    const fn = makeIdempotent(async (_: string) => ++runs, { store: new Store({ tableName: 'no-such-table', client }), name: 'missing' });
    const error = await rejection(fn('k'));
    expect(error.code).toBe('STORE_FAILURE');
    expect(error.message).toBe(missing('no-such-table'));
    expect((error.cause as Error).name).toBe('ResourceNotFoundException');
    expect(runs).toBe(0);
  });

  test('the middy middleware, the table named by IDEMPOTENCY_TABLE', async () => {
    const saved = process.env.IDEMPOTENCY_TABLE;
    process.env.IDEMPOTENCY_TABLE = 'no-such-env-table';
    try {
      let runs = 0;
      const handler = middy(async (_: { id: string }) => ++runs).use(
        idempotency({ store: new DynamoDBStore({ client }), key: (event: { id: string }) => event.id }),
      );
      const error = await rejection(handler({ id: 'k' }, lambdaContext('missing')));
      expect(error.message).toBe(missing('no-such-env-table'));
      expect((error.cause as Error).name).toBe('ResourceNotFoundException');
      expect(runs).toBe(0);
    } finally {
      saved === undefined ? delete process.env.IDEMPOTENCY_TABLE : (process.env.IDEMPOTENCY_TABLE = saved);
    }
  });

  test('a table given by its ARN is named by it, which holds its Region and account', async () => {
    const arn = 'arn:aws:dynamodb:local:000000000000:table/no-such-table';
    const fn = makeIdempotent(async (_: string) => 1, { store: new DynamoDBStore({ tableName: arn, client }), name: 'missing' });
    expect((await rejection(fn('k'))).message).toBe(missing(arn));
  });

  test('atomic mode, whose claim is the commit: TRANSACTION_INVALID naming the table', async () => {
    let runs = 0;
    const fn = makeIdempotent(async (_: string) => ++runs, { store: new DynamoDBStore({ tableName: 'no-such-table', client }), name: 'missing', atomic: true });
    const error = await rejection(fn('k'));
    expect(error.code).toBe('TRANSACTION_INVALID');
    expect(error.message).toBe(
      'TRANSACTION_INVALID: DynamoDB refused the transaction: ResourceNotFoundException: the table no-such-table is not in this account and Region; create it, or fix its name.',
    );
    expect((error.cause as Error).name).toBe('ResourceNotFoundException');
  });
});

describe('a transaction() write to a table that does not exist: TRANSACTION_INVALID naming the tables it may be, nothing written, the key released', () => {
  const { client, tableName, store } = useFreshTable({ prefix: 'missing-biz' });
  const write = (input: string) => {
    transaction().put({ TableName: 'no-such-orders', Item: { id: input } });
    return input;
  };

  test('after a claim: the business table alone', async () => {
    const fn = makeIdempotent(write, { store, name: 'tx' });
    const error = await rejection(fn('k'));
    expect(error.code).toBe('TRANSACTION_INVALID');
    expect(error.message).toBe(
      'TRANSACTION_INVALID: DynamoDB refused the transaction: ResourceNotFoundException: the table no-such-orders is not in this account and Region; create it, or fix its name.',
    );
    expect((error.cause as Error).name).toBe('ResourceNotFoundException');
    expect(await scanItems(client, tableName)).toEqual([]);
  });

  test('atomic: the idempotency table too, as the claim is the commit', async () => {
    const fn = makeIdempotent(write, { store, name: 'atomic', atomic: true });
    const error = await rejection(fn('k'));
    expect(error.message).toBe(
      `TRANSACTION_INVALID: DynamoDB refused the transaction: ResourceNotFoundException: one of the tables ${tableName}, no-such-orders is not in this account and Region; create it, or fix its name.`,
    );
    expect(await scanItems(client, tableName)).toEqual([]);
  });
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

// docs/troubleshooting.md: an endpoint written without its scheme is read with the host as the scheme.
test.each([
  ['localhost', 'STORE_FAILURE: The idempotency store failed (Unknown); the function did not run.'],
  ['127.0.0.1', 'STORE_FAILURE: The idempotency store failed (TypeError); the function did not run.'],
])('a client endpoint without its scheme (%s:PORT): STORE_FAILURE on every call, nothing runs', async (host, message) => {
  const client = new DynamoDBClient({ endpoint: `${host}:${new URL(endpoint()).port}`, region: 'local', credentials: LOCAL_CREDENTIALS });
  try {
    let runs = 0;
    const fn = makeIdempotent(async (_: string) => ++runs, { store: new DynamoDBStore({ tableName: 'idem', client }), name: 'no-scheme' });
    expect((await rejection(fn('k'))).message).toBe(message);
    expect((await rejection(fn('k'))).message).toBe(message);
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

// docs/troubleshooting.md: credentials built from variables that are not set; a Region read from a
// file with Windows line ends, or with a stray space. The SDK refuses each with a plain Error.
const unset = process.env.NO_SUCH_VARIABLE;
test.each<[string, DynamoDBClientConfig, string]>([
  [
    'credentials without their keys',
    { region: 'local', credentials: { accessKeyId: unset!, secretAccessKey: unset! } },
    'Resolved credential object is not valid',
  ],
  ['a Region with a line end', { region: 'eu-west-1\r' }, `Region not accepted: "eu-west-1\\r" is no Region name; fix AWS_REGION or the client's region`],
  ['a Region with a space', { region: 'eu-west-1 ' }, `Region not accepted: "eu-west-1 " is no Region name; fix AWS_REGION or the client's region`],
])('a client with %s: STORE_FAILURE naming it, nothing runs', async (_what, config, detail) => {
  const client = new DynamoDBClient({ endpoint: endpoint(), credentials: LOCAL_CREDENTIALS, ...config });
  try {
    let runs = 0;
    const fn = makeIdempotent(async (_: string) => ++runs, { store: new DynamoDBStore({ tableName: 'idem', client }), name: 'misconfigured' });
    const error = await rejection(fn('k'));
    expect(error.message).toBe(`STORE_FAILURE: The idempotency store failed (${detail}); the function did not run.`);
    expect(runs).toBe(0);
  } finally {
    client.destroy();
  }
});

test.each<[string, TableSchema]>([
  ['another partition key name', { partitionKey: { name: 'pk', type: 'S' } }],
  ['a numeric partition key', { partitionKey: { name: 'id', type: 'N' } }],
  // A user's table: TableSchema describes only the tables this project creates.
  ['a binary partition key', { partitionKey: { name: 'id', type: 'B' } } as unknown as TableSchema],
  ['a sort key besides', { partitionKey: { name: 'id', type: 'S' }, sortKey: { name: 'sk', type: 'S' } }],
])('a table with %s: STORE_FAILURE (ValidationException) naming the key, on every call, nothing runs, nothing is written', async (_what, schema) => {
  const client = testClient();
  // Its own name in every run: test files share one DynamoDB Local.
  const tableName = `keyed-otherwise-${schema.partitionKey.name}-${schema.partitionKey.type}-${schema.sortKey?.name ?? ''}-${randomUUID().slice(0, 8)}`;
  await createTable(client, tableName, schema);
  try {
    let runs = 0;
    const fn = makeIdempotent(async (_: string) => ++runs, { store: new DynamoDBStore({ tableName, client }), name: 'keyed' });
    for (const key of ['a', 'a', 'b']) {
      expect((await rejection(fn(key))).message).toBe(
        `STORE_FAILURE: The idempotency store failed (ValidationException: table ${tableName} is not keyed by attributes.key (default "id", a string) alone; set attributes.key to its partition key, or use a table keyed so); the function did not run.`,
      );
    }
    expect(runs).toBe(0);
    expect(await scanItems(client, tableName)).toEqual([]);
  } finally {
    await dropTable(client, tableName);
    client.destroy();
  }
});

describe('a table deleted while the function runs: the warning names the table, the outcome is the function’s', () => {
  const client = testClient();
  afterAll(() => client.destroy());

  test.each([
    ['a completion: the result is returned', 'could not mark the record COMPLETED', false],
    ['a release: the function’s error is thrown', 'could not release the record', true],
  ])('%s, the warning says which table is gone', async (_what, warning, fails) => {
    const tableName = await freshTable(client, 'vanishing');
    const lines: Record<string, unknown>[] = [];
    const fn = makeIdempotent(
      async (input: string) => {
        await dropTable(client, tableName);
        if (fails) throw new Error('declined');
        return `done ${input}`;
      },
      { store: new DynamoDBStore({ tableName, client }), name: 'vanish', logger: { warn: (line: string) => void lines.push(JSON.parse(line)) } },
    );
    const outcome = fn('k');
    await (fails ? expect(outcome).rejects.toThrow(new Error('declined')) : expect(outcome).resolves.toBe('done k'));
    expect(lines).toEqual([
      expect.objectContaining({
        message: expect.stringContaining(warning),
        error: `ResourceNotFoundException: no table ${tableName} in this account and Region; create it, or fix tableName or IDEMPOTENCY_TABLE`,
      }),
    ]);
  });
});
