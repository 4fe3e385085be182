import type { DynamoDBLocal } from '../../tools/dynamodb-local.ts';
import type { RedisServer } from '../../tools/redis-server.ts';

export default async function globalTeardown(): Promise<void> {
  const servers = globalThis as { __dynamodbLocal__?: DynamoDBLocal; __redisServer__?: RedisServer };
  await Promise.all([servers.__dynamodbLocal__?.stop(), servers.__redisServer__?.stop()]);
}
