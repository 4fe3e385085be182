import { startDynamoDBLocal } from '../../tools/dynamodb-local.ts';
import { startRedisServer } from '../../tools/redis-server.ts';

/** One DynamoDB Local and one redis-server for the whole run; workers find them through DYNAMODB_ENDPOINT and REDIS_URL. */
export default async function globalSetup(): Promise<void> {
  const [local, redis] = await Promise.all([startDynamoDBLocal(), startRedisServer()]);
  process.env.DYNAMODB_ENDPOINT = local.endpoint;
  process.env.REDIS_URL = redis.url;
  Object.assign(globalThis, { __dynamodbLocal__: local, __redisServer__: redis });
}
