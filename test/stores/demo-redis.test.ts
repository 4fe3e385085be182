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

test("the Redis demo's payment API asks the processor under the call's downstreamKey: two callers' payments under the same Idempotency-Key are two charges, not one answered to both", async () => {
  const provider = new CountingProvider(); // answers a key it has seen with its first result, as processors do
  const api = redisPaymentApi(new RedisStore({ client, keyPrefix: 'demo-callers:' }), provider, new DemoClock(), new QuietLogger());
  const pay = async (sub: string) => {
    const event = toHttpApiEvent({
      method: 'POST',
      url: '/payments',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'order-42' },
      body: JSON.stringify({ amount: 4_999, currency: 'EUR' }),
    })!;
    // Behind a JWT authorizer, as a production API is: the library keeps each caller's records apart.
    const authorized = { ...event, requestContext: { ...event.requestContext, authorizer: { jwt: { claims: { sub }, scopes: [] } } } };
    const result = await api(authorized, lambdaContext('payments-api'));
    return { status: result.statusCode, json: JSON.parse(result.body ?? '{}') as Record<string, unknown> };
  };
  const alice = await pay('alice');
  const bob = await pay('bob');
  expect({ alice: alice.status, bob: bob.status, charges: provider.charges.length }).toEqual({ alice: 201, bob: 201, charges: 2 });
  expect(bob.json.chargeId).not.toBe(alice.json.chargeId);
  expect(bob.json.paymentId).not.toBe(alice.json.paymentId);
});
