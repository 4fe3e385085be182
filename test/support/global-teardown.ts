import type { DynamoDBLocal } from '../../tools/dynamodb-local.ts';

export default async function globalTeardown(): Promise<void> {
  await (globalThis as { __dynamodbLocal__?: DynamoDBLocal }).__dynamodbLocal__?.stop();
}
