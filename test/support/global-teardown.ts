import { rmSync } from 'node:fs';
import type { DynamoDBLocal } from '../../tools/dynamodb-local.ts';
import type { RedisServer } from '../../tools/redis-server.ts';

export default async function globalTeardown(): Promise<void> {
  const run = globalThis as { __dynamodbLocal__?: DynamoDBLocal; __redisServer__?: RedisServer; __testScratch__?: string };
  await Promise.all([run.__dynamodbLocal__?.stop(), run.__redisServer__?.stop()]);
  if (run.__testScratch__) rmSync(run.__testScratch__, { recursive: true, force: true });
}
