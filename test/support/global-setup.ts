import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeWithProcess } from '../../tools/child-process.ts';
import { startDynamoDBLocal } from '../../tools/dynamodb-local.ts';
import { startRedisServer } from '../../tools/redis-server.ts';

/**
 * One DynamoDB Local and one redis-server for the whole run; workers find them through
 * DYNAMODB_ENDPOINT and REDIS_URL. Workers and the processes they start inherit a temporary
 * directory of the run's own, removed by the global teardown: a CDK app synthesizes into a new
 * `cdk.out*` directory there each time, and the run synthesizes hundreds. What is meant to outlive
 * the run (the packed package's cache) finds the system's temporary directory in SYSTEM_TMPDIR.
 */
export default async function globalSetup(): Promise<void> {
  process.env.SYSTEM_TMPDIR ??= tmpdir();
  const scratch = mkdtempSync(join(tmpdir(), 'lambda-idempotency-test-'));
  process.env.TMPDIR = scratch;
  // The teardown removes it; a run stopped by a signal skips the teardown.
  removeWithProcess(scratch);
  const [local, redis] = await Promise.all([startDynamoDBLocal(), startRedisServer()]);
  process.env.DYNAMODB_ENDPOINT = local.endpoint;
  process.env.REDIS_URL = redis.url;
  Object.assign(globalThis, { __dynamodbLocal__: local, __redisServer__: redis, __testScratch__: scratch });
}
