/**
 * The `client` a user passes, on DynamoDB Local: a `DynamoDBClient` of this library's copy of
 * `@aws-sdk/client-dynamodb`, a `DynamoDBDocumentClient` around one, or one of another copy
 * installed beside it (an app that depends on an older version of the SDK). A client that cannot
 * send this library's commands is refused when the store is built, with a sentence, instead of
 * failing every call with the SDK's internals.
 */
import { DynamoDBClient as DynamoDBClientV3927 } from '@aws-sdk/client-dynamodb-v3.927';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import { DynamoDBStore, makeIdempotent } from '../../lib/index.js';
import { LOCAL_CREDENTIALS } from '../../tools/dynamodb-local.js';
import { endpoint, testClient, useFreshTable } from '../support/dynamodb.js';

const { client, tableName } = useFreshTable({ prefix: 'clients' });

test('a DynamoDBDocumentClient sends the raw commands as its DynamoDBClient does: the function runs once, duplicates replay', async () => {
  let runs = 0;
  const store = new DynamoDBStore({ tableName, client: DynamoDBDocumentClient.from(client) as never });
  const once = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store, name: 'document-client' });
  expect(await once('k')).toEqual({ id: 'k', run: 1 });
  expect(await once('k')).toEqual({ id: 'k', run: 1 });
  expect(runs).toBe(1);
});

test.each([
  ['DynamoDBStore', DynamoDBStore],
  ['the lean DynamoDBStore', LeanDynamoDBStore],
])('%s refuses a DynamoDBClient of another copy of @aws-sdk/client-dynamodb older than 3.928 with a TypeError that says so', (_name, Store) => {
  const older = new DynamoDBClientV3927({ endpoint: endpoint(), region: 'local', credentials: LOCAL_CREDENTIALS });
  try {
    const construct = () => new Store({ tableName, client: older as never });
    expect(construct).toThrow(TypeError);
    expect(construct).toThrow(
      'DynamoDBStore: `client` cannot send the commands of the @aws-sdk/client-dynamodb this library uses: it comes from another copy, older than 3.928.0, installed beside it.',
    );
  } finally {
    older.destroy();
  }
});

test('a client whose middleware stack refuses a command for another reason is built, and its calls fail as STORE_FAILURE with the SDK error as the cause', async () => {
  const broken = testClient();
  try {
    broken.middlewareStack.addRelativeTo((next: unknown) => next as never, { name: 'tracing', relation: 'before', toMiddleware: 'noSuchMiddleware' });
    const store = new DynamoDBStore({ tableName, client: broken });
    let runs = 0;
    const once = makeIdempotent(async (_id: string) => ++runs, { store, name: 'broken-stack' });
    const failure = await once('k').then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toMatchObject({
      code: 'STORE_FAILURE',
      cause: { message: 'noSuchMiddleware is not found when adding tracing middleware before noSuchMiddleware' },
    });
    expect(runs).toBe(0);
  } finally {
    broken.destroy();
  }
});
