import { randomUUID } from 'node:crypto';
import { type AttributeValue, DeleteTableCommand, type DynamoDBClient, GetItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBStore, hashKey } from '../../lib/index.js';
import { idempotencyTableSchema } from '../../lib/table-schema.js';
import { freePort, localClient } from '../../tools/dynamodb-local.js';
import { createTable } from '../../tools/tables.js';

export function endpoint(): string {
  const value = process.env.DYNAMODB_ENDPOINT;
  if (!value) throw new Error('DYNAMODB_ENDPOINT is not set: the jest globalSetup starts DynamoDB Local.');
  return value;
}

/** A client for the run's DynamoDB Local. */
export function testClient(): DynamoDBClient {
  return localClient(endpoint());
}

/**
 * A client for a loopback port nobody listens on, trying each request once: the store is
 * unreachable, and the connection error comes at once instead of after the SDK's retries.
 */
export async function unreachableClient(): Promise<DynamoDBClient> {
  return localClient(`http://127.0.0.1:${await freePort()}`, { maxAttempts: 1 });
}

const uniqueTableName = (prefix: string): string => `${prefix}-${randomUUID()}`;

/** A fresh idempotency table (TTL off, so expired records stay visible to the test). */
export async function freshTable(client: DynamoDBClient, prefix = 'idem'): Promise<string> {
  const name = uniqueTableName(prefix);
  await createTable(client, name, idempotencyTableSchema);
  return name;
}

export async function dropTable(client: DynamoDBClient, tableName: string): Promise<void> {
  await client.send(new DeleteTableCommand({ TableName: tableName }));
}

export interface FreshTable {
  /** The client that creates, inspects and drops the table. */
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** A store on the table, sending through `storeClient` when one was given. */
  readonly store: DynamoDBStore;
}

/**
 * A fresh idempotency table shared by the tests of one file: created before them, dropped after
 * them (and its client closed). The name is chosen at once, so the file can hold the name and the
 * store as constants; a `storeClient` (a fault layer, say) stays the file's to close.
 */
export function useFreshTable(options: { prefix?: string; storeClient?: DynamoDBClient } = {}): FreshTable {
  const client = testClient();
  const tableName = uniqueTableName(options.prefix ?? 'idem');
  const store = new DynamoDBStore({ tableName, client: options.storeClient ?? client });
  beforeAll(() => createTable(client, tableName, idempotencyTableSchema));
  afterAll(async () => {
    await dropTable(client, tableName);
    client.destroy();
  });
  return { client, tableName, store };
}

/**
 * A fresh idempotency table for each test of a file, on `client`: created before each test and
 * handed to `use` with a store on it, dropped after the test.
 */
export function useTablePerTest(client: DynamoDBClient, prefix: string, use: (fresh: { tableName: string; store: DynamoDBStore }) => void): void {
  let tableName: string;
  beforeEach(async () => {
    tableName = await freshTable(client, prefix);
    use({ tableName, store: new DynamoDBStore({ tableName, client }) });
  });
  afterEach(() => dropTable(client, tableName));
}

/**
 * A table for the business writes of one file's tests (what `transaction()` puts and counts), on
 * the client of its idempotency table: created before the tests, dropped after them. The name is
 * chosen at once, like {@link useFreshTable}'s.
 */
export function useBusinessTable(client: DynamoDBClient): string {
  const tableName = uniqueTableName('biz');
  beforeAll(() => createTable(client, tableName, idempotencyTableSchema));
  afterAll(() => dropTable(client, tableName));
  return tableName;
}

/** The id of the record the library keeps for `key` under `namespace` (a function's name, or `name`). */
export const recordId = (namespace: string, key: unknown): string => `${namespace}#${hashKey(key)}`;

/** Reads an item with a consistent read (test inspection only). */
export async function readItem(client: DynamoDBClient, tableName: string, id: string): Promise<Record<string, AttributeValue> | undefined> {
  const out = await client.send(new GetItemCommand({ TableName: tableName, Key: { id: { S: id } }, ConsistentRead: true }));
  return out.Item;
}

/** Every item of the table, or those whose id starts with `prefix`, read consistently page by page. */
export async function scanItems(client: DynamoDBClient, tableName: string, prefix?: string): Promise<Array<Record<string, AttributeValue>>> {
  const items: Array<Record<string, AttributeValue>> = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const out = await client.send(
      new ScanCommand({
        TableName: tableName,
        ConsistentRead: true,
        ...(prefix === undefined ? {} : { FilterExpression: 'begins_with(id, :prefix)', ExpressionAttributeValues: { ':prefix': { S: prefix } } }),
        ExclusiveStartKey: start,
      }),
    );
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
  } while (start);
  return items;
}

/** Ids of the items whose id starts with `prefix` (a record namespace followed by '#'). */
export async function idsWithPrefix(client: DynamoDBClient, tableName: string, prefix: string): Promise<string[]> {
  return (await scanItems(client, tableName, prefix)).map((item) => item.id!.S!).sort();
}
