/**
 * httpIdempotency in middy's durable execution mode, through AWS's local runner: a replay of the
 * execution holds its record (unlike a middleware that is not replay-aware), a request with the
 * same Idempotency-Key meanwhile gets a 409, and one after it the stored response, marked replayed.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { DurableContext, DurableLambdaHandler } from '@aws/durable-execution-sdk-js';
import middy from '@middy/core';
import { type HttpIdempotencyOptions, httpIdempotency, issueIdempotencyKey } from '../../lib/index.js';
import { advanceRunnerClock, middyDurableMode, runExecution, startExecution, useDurableRunner } from '../support/durable.js';
import { scanItems, useFreshTable } from '../support/dynamodb.js';
import { gate } from '../support/gate.js';
import { paymentRequest } from '../support/payment-request.js';

const { client, tableName, store } = useFreshTable({ prefix: 'durable-http' });
useDurableRunner();

const CALLBACK = 'approval';

/**
 * A payment API in middy's durable mode, its records under `name`: its handler charges in a step
 * (recorded in `charges`), waits for the callback `approval`, then answers 201 with the charge id.
 */
function payment(options: Omit<HttpIdempotencyOptions, 'store' | 'name' | 'scope'>) {
  const charges: string[] = [];
  const name = `payments-${randomUUID()}`;
  const handler = middy(middyDurableMode)
    .use(httpIdempotency({ store, name, scope: 'shared', ...options }))
    .handler(async (_event, context) => {
      // middy's types do not say that durable mode hands the handler the durable context.
      const ctx = context as unknown as DurableContext;
      const chargeId = await ctx.step('charge', async () => {
        charges.push('charge');
        return randomUUID();
      });
      await ctx.waitForCallback(CALLBACK, async () => undefined);
      return { statusCode: 201, body: JSON.stringify({ chargeId }) };
    }) as unknown as DurableLambdaHandler;
  return { handler, charges, name };
}

test('a payment suspended on a callback resumes on its own record and charges once; the same key meanwhile gets 409, after it the stored 201 marked replayed', async () => {
  const { handler, charges } = payment({});
  const key = randomUUID();
  const first = startExecution<{ statusCode: number; body: string }>(handler, paymentRequest(key), CALLBACK);
  await first.suspended();
  const meanwhile = await runExecution<{ statusCode: number }>(handler, paymentRequest(key));
  await first.resume('approved');
  const resumed = await first.result;
  const after = await runExecution<{ statusCode: number; body: string; headers?: Record<string, string> }>(handler, paymentRequest(key));
  expect(resumed.getResult()).toEqual({ statusCode: 201, body: expect.any(String) });
  expect(meanwhile.getResult()).toMatchObject({ statusCode: 409 });
  expect(after.getResult()).toMatchObject({ statusCode: 201, body: resumed.getResult()!.body, headers: { 'Idempotent-Replayed': 'true' } });
  expect(charges).toEqual(['charge']);
});

// A signed key's age is judged when the request first comes: an execution that resumes after the
// key's age limit has run its steps on it, and holds its record.
test('signed keys: an execution that resumes after its key has expired resumes on its record and answers 201, charging once; the key meanwhile gets 409', async () => {
  const secret = randomBytes(32);
  const { handler, charges } = payment({ signedKeys: { secrets: [secret], maxAgeSeconds: 3_600 } });
  const key = issueIdempotencyKey({ secret });
  const first = startExecution<{ statusCode: number; body: string }>(handler, paymentRequest(key), CALLBACK);
  await first.suspended();
  await advanceRunnerClock(3_700_000);
  const meanwhile = await runExecution<{ statusCode: number }>(handler, paymentRequest(key));
  await first.resume('approved');
  const resumed = await first.result;
  const after = await runExecution<{ statusCode: number; body: string; headers?: Record<string, string> }>(handler, paymentRequest(key));
  expect(meanwhile.getResult()).toMatchObject({ statusCode: 409 });
  expect(resumed.getResult()).toEqual({ statusCode: 201, body: expect.any(String) });
  expect(after.getResult()).toMatchObject({ statusCode: 201, body: resumed.getResult()!.body, headers: { 'Idempotent-Replayed': 'true' } });
  expect(charges).toEqual(['charge']);
});

test("durableLeaseSeconds sets how long a suspended execution's record holds the key, as for idempotency(): by default the retention", async () => {
  const leases: Record<string, number> = {};
  for (const [lease, durableLeaseSeconds] of [
    // Longer than the runner's 15-minute invocation: no lease ends before the invocation that writes it.
    ['set', 1_800],
    ['default', undefined],
  ] as const) {
    const { handler, name } = payment({ expiresAfterSeconds: 7_200, ...(durableLeaseSeconds === undefined ? {} : { durableLeaseSeconds }) });
    const execution = startExecution<{ statusCode: number }>(handler, paymentRequest(randomUUID()), CALLBACK);
    await execution.suspended();
    const [record] = await scanItems(client, tableName, `${name}#`);
    leases[lease] = Math.round((Number(record!.leaseUntil!.N) - Date.now()) / 1000);
    await execution.resume('approved');
    expect((await execution.result).getResult()).toMatchObject({ statusCode: 201 });
  }
  // Seconds left of each lease, read just after the claim.
  expect(leases.set).toBeGreaterThan(1_790);
  expect(leases.set).toBeLessThanOrEqual(1_800);
  expect(leases.default).toBeGreaterThan(7_190);
  expect(leases.default).toBeLessThanOrEqual(7_200);
});

// The durable service invokes an execution again when an invocation's answer never reached it (the
// function crashed or timed out after the handler returned, the SDK's checkpoint of a large result
// failed): that invocation meets the record the execution completed itself. Its answer is the
// execution's first to the client, not a duplicate's.
test("an invocation whose answer was lost after the record completed: the execution's next invocation answers its stored response unmarked, charging nothing", async () => {
  const { handler, charges } = payment({});
  let lost = false;
  const lostAnswer: DurableLambdaHandler = async (event, context) => {
    const answer = await handler(event, context);
    if (lost || (answer as { Status?: unknown }).Status !== 'SUCCEEDED') return answer;
    // The invocation that completed the record: its answer is lost, and the service invokes the
    // execution again with the state it has (a Lambda context of its own).
    lost = true;
    return handler(event, { ...context, awsRequestId: randomUUID() });
  };
  const key = randomUUID();
  const execution = startExecution<{ statusCode: number; body: string; headers?: Record<string, string> }>(lostAnswer, paymentRequest(key), CALLBACK);
  await execution.suspended();
  await execution.resume('approved');
  const answered = (await execution.result).getResult()!;
  const after = await runExecution<{ statusCode: number; body: string; headers?: Record<string, string> }>(handler, paymentRequest(key));
  expect(answered).toEqual({ statusCode: 201, body: expect.any(String) });
  expect(after.getResult()).toMatchObject({ statusCode: 201, body: answered.body, headers: { 'Idempotent-Replayed': 'true' } });
  expect(charges).toEqual(['charge']);
});

// middy hands a `timeoutEarlyResponse` that returns an answer to the `after` hooks as the handler's
// response. A suspended invocation never settles its handler, so middy's timer fires later, while
// the execution is suspended: its answer is none of the execution's, and the key stays held.
test("a timeoutEarlyResponse answer (middy's example 408) fired once the invocation suspended releases nothing: a request with the key meanwhile gets 409, and the execution charges once", async () => {
  const charges: string[] = [];
  const lateTimeout = gate<void>();
  const name = `payments-${randomUUID()}`;
  const handler = middy({ executionMode: middyDurableMode.executionMode, timeoutEarlyInMillis: 5, timeoutEarlyResponse: () => ({ statusCode: 408 }) })
    .use({ after: () => void lateTimeout.open() }) // its after runs after httpIdempotency's
    .use(httpIdempotency({ store, name, scope: 'shared' }))
    .handler(async (_event, context) => {
      const ctx = context as unknown as DurableContext;
      await ctx.step('charge', async () => void charges.push('charge'));
      await ctx.waitForCallback(CALLBACK, async () => undefined);
      return { statusCode: 201, body: '{}' };
    }) as unknown as DurableLambdaHandler;
  // The first invocation's context reads 2 s left throughout: middy's timer fires 1,995 ms after it starts, well after it suspends.
  let invocations = 0;
  const timed: DurableLambdaHandler = (event, context) => handler(event, invocations++ === 0 ? { ...context, getRemainingTimeInMillis: () => 2_000 } : context);
  const key = randomUUID();
  const first = startExecution<{ statusCode: number }>(timed, paymentRequest(key), CALLBACK);
  await first.suspended();
  await lateTimeout.promise;
  // Released, the key would let the request below run the payment again (and wait on its own callback).
  expect((await scanItems(client, tableName, `${name}#`)).map((item) => item.status?.S)).toEqual(['INPROGRESS']);
  const meanwhile = await runExecution<{ statusCode: number }>(handler, paymentRequest(key));
  await first.resume('approved');
  expect(meanwhile.getResult()).toMatchObject({ statusCode: 409 });
  expect((await first.result).getResult()).toMatchObject({ statusCode: 201 });
  expect(charges).toEqual(['charge']);
});
