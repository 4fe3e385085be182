import { DeleteTableCommand, DynamoDBClient, GetItemCommand, ScanCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { randomUUID } from 'node:crypto';
import { idempotencyTableSchema } from '../../lib/table-schema.js';
import { localClient } from '../../tools/dynamodb-local.js';
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

/** A fresh idempotency table (TTL off, so expired records stay visible to the test). */
export async function freshTable(client: DynamoDBClient, prefix = 'idem'): Promise<string> {
  const name = `${prefix}-${randomUUID()}`;
  await createTable(client, name, idempotencyTableSchema);
  return name;
}

export async function dropTable(client: DynamoDBClient, tableName: string): Promise<void> {
  await client.send(new DeleteTableCommand({ TableName: tableName }));
}

/** Reads an item with a consistent read (test inspection only). */
export async function readItem(client: DynamoDBClient, tableName: string, id: string): Promise<Record<string, AttributeValue> | undefined> {
  const out = await client.send(new GetItemCommand({ TableName: tableName, Key: { id: { S: id } }, ConsistentRead: true }));
  return out.Item;
}

/** Ids of the items whose id starts with `prefix` (a record namespace followed by '#'). */
export async function idsWithPrefix(client: DynamoDBClient, tableName: string, prefix: string): Promise<string[]> {
  const ids: string[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const out = await client.send(
      new ScanCommand({
        TableName: tableName,
        ConsistentRead: true,
        FilterExpression: 'begins_with(id, :prefix)',
        ExpressionAttributeValues: { ':prefix': { S: prefix } },
        ProjectionExpression: 'id',
        ExclusiveStartKey: start,
      }),
    );
    for (const item of out.Items ?? []) ids.push(item.id!.S!);
    start = out.LastEvaluatedKey;
  } while (start);
  return ids.sort();
}
