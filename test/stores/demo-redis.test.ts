/**
 * Runs the scenarios of `npm run demo -- --store redis` on a redis-server of their own (one scenario
 * changes the server's eviction policy): CI proves the Redis demo.
 */
import { Redis } from 'ioredis';
import { redisScenarios, runRedisScenarios } from '../../demo/redis-scenarios.js';
import { type RedisServer, startRedisServer } from '../../tools/redis-server.js';

let server: RedisServer;
let client: Redis;
beforeAll(async () => {
  server = await startRedisServer();
  client = new Redis(server.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false });
});
afterAll(async () => {
  client.disconnect();
  await server.stop();
});

test('the Redis demo keeps every scenario it promises', () => {
  expect(redisScenarios.map((s) => s.name)).toEqual([
    'doubleClick',
    'burst',
    'differentPayload',
    'missingKey',
    'lateRetry',
    'downstreamFailure',
    'leaseTakeover',
    'sqsBatch',
    'evictionPolicy',
  ]);
});

test('every scenario charges exactly as often as it should', async () => {
  const results = await runRedisScenarios(client);
  // One result per scenario: a scenario left out is not one that charged as it should.
  expect(results).toHaveLength(redisScenarios.length);
  for (const result of results) {
    expect({ name: result.name, happened: result.happened, problems: result.problems }).toEqual({ name: result.name, happened: result.expected, problems: [] });
    expect({ name: result.name, ok: result.ok }).toEqual({ name: result.name, ok: true });
  }
});
