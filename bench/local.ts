/** DynamoDB Local clients and tables for the benchmarks: one table per library, identical settings. */
import { Agent } from 'node:http';
import { type AttributeValue, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { LOCAL_CREDENTIALS } from '../tools/dynamodb-local.js';
import { createTable } from '../tools/tables.js';
import { idempotencyTableSchema } from './library.js';
import type { Library } from './subjects.js';

/**
 * A client for DynamoDB Local. The socket pool is raised above the SDK default of 50 so that the
 * contention runs (500 concurrent calls) measure the table, not a queue in the client; both
 * libraries get the same configuration.
 */
export function benchClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: LOCAL_CREDENTIALS,
    requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 600 }) },
  });
}

export type Tables = Record<Library, string>;

/** On-demand tables from the library's schema, TTL enabled on `expiration`, as in production. */
export async function createBenchTables(client: DynamoDBClient): Promise<Tables> {
  const run = Date.now().toString(36);
  const tables: Tables = { ours: `bench-ours-${run}`, powertools: `bench-powertools-${run}` };
  for (const name of Object.values(tables)) await createTable(client, name, idempotencyTableSchema, { enableTtl: true });
  return tables;
}

export async function readItem(
  client: DynamoDBClient,
  tableName: string,
  key: Record<string, AttributeValue>,
): Promise<Record<string, AttributeValue> | undefined> {
  const out = await client.send(new GetItemCommand({ TableName: tableName, Key: key, ConsistentRead: true }));
  return out.Item;
}
