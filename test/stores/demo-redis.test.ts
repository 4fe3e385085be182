/**
 * Runs the scenarios of `npm run demo -- --store redis` on a redis-server of their own (one scenario
 * changes the server's eviction policy): CI proves the Redis demo.
 */
import { Redis } from 'ioredis';
import { CountingProvider, DemoClock } from '../../demo/fakes.js';
import { toHttpApiEvent } from '../../demo/http-event.js';
import { redisPaymentApi, redisScenarios, runRedisScenarios } from '../../demo/redis-scenarios.js';
import { lambdaContext, QuietLogger } from '../../demo/scenarios.js';
import { RedisStore } from '../../lib/redis/index.js';
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

test("the Redis demo's payment API answers a body that is not JSON, no object, or a bad amount or currency with a 400 problem, and charges nothing", async () => {
  const provider = new CountingProvider();
  const api = redisPaymentApi(new RedisStore({ client, keyPrefix: 'demo-invalid:' }), provider, new DemoClock(), new QuietLogger());
  const bodies = [
    '{"amount": 10',
    '',
    'null',
    '[1]',
    '{"amount": -5, "currency": "EUR"}',
    '{"amount": 1.5, "currency": "EUR"}',
    '{"amount": 100, "currency": "XYZ"}',
  ];
  for (const [i, body] of bodies.entries()) {
    const event = toHttpApiEvent({
      method: 'POST',
      url: '/payments',
      headers: { 'content-type': 'application/json', 'idempotency-key': `invalid-${i}` },
      body,
    })!;
    const answer = await api(event, lambdaContext('payments-api')).then(
      (result) => ({ status: result.statusCode, type: result.headers?.['Content-Type'], problem: JSON.parse(result.body ?? '{}').status }),
      (error: unknown) => ({ thrown: String(error) }),
    );
    expect({ body, ...answer }).toEqual({ body, status: 400, type: 'application/problem+json', problem: 400 });
  }
  expect(provider.attempts).toBe(0);
});
