/**
 * The demo's tables (idempotency records and payments) on the run's DynamoDB Local, for the tests
 * that run the demo's handlers.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createDemoTables, type DemoTables, dropDemoTables } from '../../demo/scenarios.js';
import { testClient } from './dynamodb.js';

/**
 * Tables of the demo for the tests of a file (or of the `describe` it is called in): created before
 * them, dropped after them with the client's connections. `tables()` names them, once created.
 */
export function useDemoTables(prefix: string): { readonly client: DynamoDBClient; tables(): DemoTables } {
  const client = testClient();
  let created: DemoTables | undefined;
  beforeAll(async () => {
    created = await createDemoTables(client, prefix);
  });
  afterAll(async () => {
    if (created) await dropDemoTables(client, created);
    client.destroy();
  });
  return {
    client,
    tables: () => {
      if (created === undefined) throw new Error('the demo tables are created in beforeAll: call this from a test or a later hook');
      return created;
    },
  };
}
