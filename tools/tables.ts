/** Creates tables on DynamoDB Local from the shared schemas. Development tooling. */
import { CreateTableCommand, type DynamoDBClient, UpdateTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import type { TableSchema } from '../lib/table-schema.js';

export async function createTable(client: DynamoDBClient, tableName: string, schema: TableSchema, options: { enableTtl?: boolean } = {}): Promise<void> {
  const keys = [schema.partitionKey, ...(schema.sortKey ? [schema.sortKey] : [])];
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: keys.map((k) => ({ AttributeName: k.name, AttributeType: k.type })),
      KeySchema: keys.map((k, i) => ({ AttributeName: k.name, KeyType: i === 0 ? 'HASH' : 'RANGE' })),
    }),
  );
  // DynamoDB Local really sweeps expired items; tests that inspect expired records leave TTL off.
  if (options.enableTtl && schema.timeToLiveAttribute) {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: schema.timeToLiveAttribute, Enabled: true },
      }),
    );
  }
}
