/**
 * Store faults under Lambda durable functions (AWS's local runner, DynamoDB Local behind the fault
 * layer). A durable execution's record is owned by the execution, and a handler that throws fails
 * the execution for good: whatever it may have claimed must not outlive it by the durable lease.
 */

import { randomUUID } from 'node:crypto';
import { type DurableContext, withDurableExecution } from '@aws/durable-execution-sdk-js';
import middy, { type MiddlewareObj } from '@middy/core';
import httpErrorHandler from '@middy/http-error-handler';
import {
  aesGcmEncryption,
  DynamoDBStore,
  httpIdempotency,
  IdempotencyError,
  type IdempotencyStore,
  idempotency,
  makeIdempotent,
  transaction,
} from '../../lib/index.js';
import { advanceRunnerClock, executionError, middyDurableMode, runExecution, runnerWait, useDurableRunner, withTimeLeft } from '../support/durable.js';

/** Invocations of 30 s, shorter than the durable leases of these tests (no lease ends before its invocation). */
const INVOCATION_MILLIS = 30_000;

import { endpoint, readItem, recordId, useBusinessTable, useFreshTable } from '../support/dynamodb.js';
import { faultyClient } from '../support/faults.js';
import { aesKey, keyring } from '../support/keyring.js';
import { paymentRequest } from '../support/payment-request.js';

const { client, faults } = faultyClient(endpoint());
const { client: inspect, tableName, store } = useFreshTable({ prefix: 'durable-faults', storeClient: client });
const business = useBusinessTable(inspect);
useDurableRunner();
afterEach(() => faults.clear());
afterAll(() => client.destroy());

interface Order {
  readonly orderId: string;
  readonly run: string;
}

/** A durable handler, idempotent by order id, whose one step records `<run>:charge` in `steps`. */
const chargeOnce = (name: string, steps: string[], observability?: (event: string) => void) =>
  withDurableExecution(
    makeIdempotent(async (order: Order, ctx: DurableContext) => ctx.step('charge', async () => void steps.push(`${order.run}:charge`)).then(() => order.run), {
      store,
      name,
      key: (order) => order.orderId,
      ...(observability === undefined ? {} : { observability }),
    }),
  );

test('a claim that loses every response ends the invocation (STORE_FAILURE, isUnrecoverableInvocation), not the execution, and keeps the record it may have written: another execution with the key gets IN_PROGRESS', async () => {
  const steps: string[] = [];
  const handler = chargeOnce('lost-claim', steps);
  const orderId = randomUUID();
  faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response' }, attempts: 'all' });
  // The durable service invokes the execution again; the local runner reports the invocation's error.
  await expect(runExecution(handler, { orderId, run: 'first' })).rejects.toMatchObject({
    name: 'IdempotencyError',
    code: 'STORE_FAILURE',
    isUnrecoverableInvocation: true,
    message: expect.stringMatching(/^STORE_FAILURE: The idempotency store failed/),
  });
  expect(faults.injected.length).toBeGreaterThan(1);
  expect((await readItem(inspect, tableName, recordId('lost-claim', orderId)))?.status?.S).toBe('INPROGRESS');
  const other = await runExecution<string>(handler, { orderId, run: 'other' });
  expect(executionError(other).errorMessage).toMatch(/^IN_PROGRESS: /);
  expect(steps).toEqual([]);
});

test('a claim that loses every response, with a second call of the key running at once in the invocation (Promise.all): that call ends with the same error, its function unrun', async () => {
  const steps: string[] = [];
  const charge = makeIdempotent(async (order: Order, ctx: DurableContext) => ctx.step('charge', async () => (steps.push(`${order.run}:charge`), order.run)), {
    store,
    name: 'together-claim',
    key: (order) => order.orderId,
  });
  const outcomes: PromiseSettledResult<string>[] = [];
  const handler = withDurableExecution(async (order: Order, ctx: DurableContext) => {
    outcomes.push(...(await Promise.allSettled([charge(order, ctx), charge(order, ctx)])));
    return Promise.all(outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : Promise.reject(outcome.reason))));
  });
  const orderId = randomUUID();
  faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response' }, attempts: 'all' });
  await expect(runExecution(handler, { orderId, run: 'first' })).rejects.toMatchObject({ code: 'STORE_FAILURE', isUnrecoverableInvocation: true });
  faults.clear();
  expect(outcomes).toHaveLength(2);
  const [first, second] = outcomes as PromiseRejectedResult[];
  expect(first!.status).toBe('rejected');
  expect(second!.status).toBe('rejected');
  expect(second!.reason).toBe(first!.reason);
  expect(steps).toEqual([]);
});

test('a claim that loses every response, with a second call of the key running at once in the invocation: each call is one store failure, as outside durable executions', async () => {
  const events: string[] = [];
  const charge = makeIdempotent(async (order: Order, ctx: DurableContext) => ctx.step('charge', async () => order.run), {
    store,
    name: 'together-claim-counted',
    key: (order) => order.orderId,
    observability: (event) => void events.push(event),
  });
  const handler = withDurableExecution(async (order: Order, ctx: DurableContext) => Promise.all([charge(order, ctx), charge(order, ctx)]));
  faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response' }, attempts: 'all' });
  await expect(runExecution(handler, { orderId: randomUUID(), run: 'first' })).rejects.toMatchObject({ code: 'STORE_FAILURE' });
  faults.clear();
  expect(events).toEqual(['storeFailure', 'storeFailure']);
});

test("a second call of the key running at once in the invocation, the claim held: it replays the first call's outcome and counts one replay, as outside durable executions", async () => {
  const events: string[] = [];
  const steps: string[] = [];
  const charge = makeIdempotent(async (order: Order, ctx: DurableContext) => ctx.step('charge', async () => (steps.push(`${order.run}:charge`), order.run)), {
    store,
    name: 'together-counted',
    key: (order) => order.orderId,
    observability: (event) => void events.push(event),
  });
  const handler = withDurableExecution(async (order: Order, ctx: DurableContext) => Promise.all([charge(order, ctx), charge(order, ctx)]));
  const execution = await runExecution<string[]>(handler, { orderId: randomUUID(), run: 'first' });
  expect(execution.getResult()).toEqual(['first', 'first']);
  expect(steps).toEqual(['first:charge']);
  expect(events).toEqual(['miss', 'replay']);
});

test('middy durable mode: a claim that loses every response on a replay, after a step ran, ends the invocation and keeps the record; another execution with the key gets IN_PROGRESS', async () => {
  const steps: string[] = [];
  let claims = 0;
  const handler = middy<Order, string, Error, DurableContext>(middyDurableMode)
    .use(idempotency<Order, string>({ store, name: 'middy-lost-replay', key: (order) => order.orderId }))
    .before(() => {
      // Runs after idempotency()'s claim: the next claim is the replay's.
      if (++claims === 1) faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response' }, attempts: 'all' });
    })
    .handler(async (order, ctx) => {
      await ctx.step('charge', async () => void steps.push(`${order.run}:charge`));
      await ctx.wait('cool-off', runnerWait(30));
      return order.run;
    }) as unknown as Parameters<typeof runExecution>[0];
  const orderId = randomUUID();
  await expect(runExecution(handler, { orderId, run: 'first' })).rejects.toMatchObject({ code: 'STORE_FAILURE', isUnrecoverableInvocation: true });
  faults.clear();
  expect((await readItem(inspect, tableName, recordId('middy-lost-replay', orderId)))?.status?.S).toBe('INPROGRESS');
  const other = await runExecution<string>(handler, { orderId, run: 'other' });
  expect(executionError(other).errorMessage).toMatch(/^IN_PROGRESS: /);
  expect(steps).toEqual(['first:charge']);
});

/**
 * A middy durable-mode handler behind `layers` that charges in a step and then waits: the claim of
 * its replay, after the wait, loses every response.
 */
function chargingWithLostReplayClaim(layers: MiddlewareObj[], charges: string[]): Parameters<typeof runExecution>[0] {
  let claims = 0;
  return middy(middyDurableMode)
    .use(layers)
    .before(() => {
      // Runs after the idempotency layer's claim: the next claim is the replay's.
      if (++claims === 1) faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response' }, attempts: 'all' });
    })
    .handler(async (_event, context) => {
      // middy's types do not say that durable mode hands the handler the durable context.
      const ctx = context as unknown as DurableContext;
      await ctx.step('charge', async () => void charges.push('charge'));
      await ctx.wait('cool-off', runnerWait(30));
      return { statusCode: 201, body: '{}' };
    }) as unknown as Parameters<typeof runExecution>[0];
}

/** The invocation ends (STORE_FAILURE, `isUnrecoverableInvocation`), the record is kept: another execution with the key gets a 409, and the step ran once. */
async function expectInvocationEndedAndRecordKept(handler: Parameters<typeof runExecution>[0], charges: string[]): Promise<void> {
  const key = randomUUID();
  await expect(runExecution(handler, paymentRequest(key))).rejects.toMatchObject({ code: 'STORE_FAILURE', isUnrecoverableInvocation: true });
  faults.clear();
  // The other execution meets the kept record: IN_PROGRESS, a 409 (from httpIdempotency, or http-error-handler).
  const meanwhile = await runExecution<{ statusCode: number }>(handler, paymentRequest(key));
  expect(meanwhile.getResult()).toMatchObject({ statusCode: 409 });
  expect(charges).toEqual(['charge']);
}

// httpIdempotency answers a store failure with a 503; in a durable execution that answer would end
// the execution with its record kept for the durable lease: the client told "not processed" after
// the charge, every retry a 409 until the lease ends, then a new execution charging again.
test('middy durable mode with httpIdempotency: a claim that loses every response on a replay, after a step ran, ends the invocation instead of answering 503; the record is kept, a request with the key meanwhile gets 409', async () => {
  const charges: string[] = [];
  const layer = httpIdempotency({ store, name: `http-lost-replay-${randomUUID()}`, scope: 'shared' }) as MiddlewareObj;
  await expectInvocationEndedAndRecordKept(chargingWithLostReplayClaim([layer], charges), charges);
});

// @middy/http-error-handler answers every error that reaches it (a store failure, unexposed, as a
// 500): in a durable execution that answer would end the execution with the record still held.
describe.each([
  ['httpIdempotency', () => httpIdempotency({ store, name: `http-handled-${randomUUID()}`, scope: 'shared' })],
  ['idempotency()', () => idempotency({ store, name: `handled-${randomUUID()}`, key: (event: { body?: string }) => event.body })],
] as const)('middy durable mode, %s with @middy/http-error-handler', (_name, layer) => {
  test.each(['before', 'after'] as const)(
    'used %s it: a claim that loses every response on a replay, after a step ran, still ends the invocation; the record is kept',
    async (order) => {
      const charges: string[] = [];
      const errors = httpErrorHandler({ logger: false });
      const idempotent = layer() as MiddlewareObj;
      const handler = chargingWithLostReplayClaim(order === 'before' ? [errors, idempotent] : [idempotent, errors], charges);
      await expectInvocationEndedAndRecordKept(handler, charges);
    },
  );
});

test('a claim whose first response is lost is retried by the SDK and meets its own record: the execution runs once and counts one miss', async () => {
  const events: string[] = [];
  const steps: string[] = [];
  const handler = chargeOnce('lost-once', steps, (event) => void events.push(event));
  const orderId = randomUUID();
  faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response' } });
  const execution = await runExecution<string>(handler, { orderId, run: 'first' });
  expect(faults.injected).toHaveLength(1);
  expect(execution.getResult()).toBe('first');
  expect(steps).toEqual(['first:charge']);
  expect(events).toEqual(['miss']);
});

// The SDK fails such an execution without settling the handler's promise, so no wrapper can end the call.
test('an execution the SDK fails itself (a parent context used inside a child context) holds its key until its durable lease ends; then the key runs again', async () => {
  const runs: string[] = [];
  const handler = withTimeLeft(
    withDurableExecution(
      makeIdempotent(
        async (order: Order, ctx: DurableContext) => {
          runs.push(order.run);
          // The wrong context on purpose when the run says so: the SDK fails the execution.
          if (order.run === 'first') return ctx.runInChildContext('child', async () => ctx.step('wrong-context', async () => order.run));
          return ctx.step('charge', async () => order.run);
        },
        { store, name: 'sdk-fault', key: (order) => order.orderId, durableLeaseSeconds: 60 },
      ),
    ),
    INVOCATION_MILLIS,
  );
  const orderId = randomUUID();
  const failed = await runExecution(handler, { orderId, run: 'first' });
  expect(failed.getStatus()).toBe('FAILED');
  const held = await runExecution(handler, { orderId, run: 'held' });
  expect(executionError(held).errorMessage).toMatch(/^IN_PROGRESS: /);
  await advanceRunnerClock(61_000);
  const after = await runExecution<string>(handler, { orderId, run: 'after' });
  expect(after.getResult()).toBe('after');
  expect(runs).toEqual(['first', 'after']);
});

/**
 * The key of an execution whose record a failed completion or release left INPROGRESS, with a
 * durable lease of 600 s: a duplicate gets IN_PROGRESS with a retry-after of the rest of that lease
 * (not of one invocation); once it has passed, the execution run with `run: 'after'` is returned.
 */
async function afterTheDurableLease<T>(handler: Parameters<typeof runExecution>[0], name: string, orderId: string) {
  expect((await readItem(inspect, tableName, recordId(name, orderId)))?.status?.S).toBe('INPROGRESS');
  const duplicate = await runExecution(handler, { orderId, run: 'duplicate' });
  expect(executionError(duplicate).errorMessage).toMatch(/^IN_PROGRESS: .*retry in (59\d|600) s\./);
  await advanceRunnerClock(601_000);
  return runExecution<T>(handler, { orderId, run: 'after' });
}

// A completion the store fails (refused: a missing grant; or throttled past the store's resends:
// an outage) cannot be written, and a durable execution's lease outlives the invocation: what the
// execution returns and what its duplicates see follow from there.
describe('a completion that fails on every attempt', () => {
  // Refused: a throttle would be sent again until DynamoDB takes it.
  const failCompletion = () => faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'refuse' } });
  const warnings: string[] = [];
  const logger = { warn: (line: string) => void warnings.push(line) };
  beforeEach(() => void (warnings.length = 0));

  test('wrapping the durable handler: the execution returns its result; its key stays INPROGRESS for the durable lease (duplicates get IN_PROGRESS, retry after it), then runs again', async () => {
    const steps: string[] = [];
    const handler = withTimeLeft(
      withDurableExecution(
        makeIdempotent(async (order: Order, ctx: DurableContext) => ctx.step('charge', async () => (steps.push(`${order.run}:charge`), order.run)), {
          store,
          name: 'failed-completion',
          key: (order) => order.orderId,
          durableLeaseSeconds: 600,
          logger,
        }),
      ),
      INVOCATION_MILLIS,
    );
    const orderId = randomUUID();
    failCompletion();
    const first = await runExecution<string>(handler, { orderId, run: 'first' });
    faults.clear();
    expect(first.getResult()).toBe('first');
    expect(warnings).toEqual([expect.stringContaining('could not mark the record COMPLETED')]);
    const after = await afterTheDurableLease<string>(handler, 'failed-completion', orderId);
    expect(after.getResult()).toBe('after');
    expect(steps).toEqual(['first:charge', 'after:charge']);
  });

  test('it counts one BookkeepingFailures event (and one miss), however often the execution resumes', async () => {
    const events: string[] = [];
    const handler = withDurableExecution(
      makeIdempotent(
        async (order: Order, ctx: DurableContext) => {
          const charged = await ctx.step('charge', async () => order.run);
          await ctx.wait('settle', runnerWait(30));
          return charged;
        },
        { store, name: 'failed-completion-counted', key: (order) => order.orderId, logger, observability: (event: string) => void events.push(event) },
      ),
    );
    failCompletion();
    const execution = await runExecution<string>(handler, { orderId: randomUUID(), run: 'first' });
    expect(execution.getResult()).toBe('first');
    expect(execution.getInvocations().length).toBeGreaterThanOrEqual(2);
    expect(events.filter((event) => event === 'bookkeepingFailure')).toHaveLength(1);
    expect(events.filter((event) => event === 'miss')).toHaveLength(1);
  });

  test("middy durable mode, a final error (isFinalError): the execution fails with the handler's own error, as a success returns its result; its key stays INPROGRESS for the durable lease, then runs again", async () => {
    const steps: string[] = [];
    const handler = withTimeLeft(
      middy<Order, string, Error, DurableContext>(middyDurableMode)
        .use(
          idempotency<Order, string>({
            store,
            name: 'failed-final-error-completion',
            key: (order) => order.orderId,
            durableLeaseSeconds: 600,
            isFinalError: (error) => (error as Error).name === 'CardDeclined',
            logger,
          }),
        )
        .handler(async (order, ctx) => {
          await ctx.step('charge', async () => void steps.push(`${order.run}:charge`));
          throw Object.assign(new Error(`declined (${order.run})`), { name: 'CardDeclined' });
        }) as unknown as Parameters<typeof runExecution>[0],
      INVOCATION_MILLIS,
    );
    const orderId = randomUUID();
    failCompletion();
    const first = await runExecution(handler, { orderId, run: 'first' });
    faults.clear();
    expect(executionError(first)).toMatchObject({ errorType: 'CardDeclined', errorMessage: 'declined (first)' });
    expect(warnings).toEqual([expect.stringContaining('could not mark the record COMPLETED')]);
    const after = await afterTheDurableLease(handler, 'failed-final-error-completion', orderId);
    expect(executionError(after)).toMatchObject({ errorType: 'CardDeclined', errorMessage: 'declined (after)' });
    // Stored this time: a later duplicate gets the stored error without running.
    const stored = await runExecution(handler, { orderId, run: 'stored' });
    expect(executionError(stored)).toMatchObject({ errorMessage: 'declined (after)' });
    expect(steps).toEqual(['first:charge', 'after:charge']);
  });

  test("a call given the durable context in the handler body: the execution's next replay meets its own record, its step returns its checkpoint, and the completion is written then", async () => {
    const steps: string[] = [];
    const charge = makeIdempotent(async (order: Order, ctx: DurableContext) => ctx.step('charge', async () => (steps.push(`${order.run}:charge`), order.run)), {
      store,
      name: 'failed-nested-completion',
      key: (order) => order.orderId,
      logger,
    });
    const handler = withDurableExecution(async (order: Order, ctx: DurableContext) => {
      const charged = await charge(order, ctx);
      // Only the first invocation's completion fails: the wait suspends it, the replay completes.
      faults.clear();
      await ctx.wait('settle', runnerWait(30));
      return charged;
    });
    const orderId = randomUUID();
    failCompletion();
    const execution = await runExecution<string>(handler, { orderId, run: 'first' });
    expect(execution.getInvocations().length).toBeGreaterThanOrEqual(2);
    expect(execution.getResult()).toBe('first');
    expect(warnings).toHaveLength(1);
    expect((await readItem(inspect, tableName, recordId('failed-nested-completion', orderId)))?.status?.S).toBe('COMPLETED');
    const later = await runExecution<string>(handler, { orderId, run: 'later' });
    expect(later.getResult()).toBe('first');
    expect(steps).toEqual(['first:charge']);
  });
});

// A failed release is a failed completion's twin: the handler's own error wins, and the record,
// owned by the execution, keeps its lease, which covers the execution, not one invocation.
test("a release the store refuses (a missing grant): the execution fails with the handler's own error; its key stays INPROGRESS for the durable lease (duplicates get IN_PROGRESS, retry after it), then runs again", async () => {
  const steps: string[] = [];
  const warnings: string[] = [];
  const handler = withTimeLeft(
    withDurableExecution(
      makeIdempotent(
        async (order: Order, ctx: DurableContext) => {
          await ctx.step('charge', async () => void steps.push(`${order.run}:charge`));
          if (order.run === 'first') throw new Error('declined');
          return order.run;
        },
        {
          store,
          name: 'failed-release',
          key: (order) => order.orderId,
          durableLeaseSeconds: 600,
          logger: { warn: (line: string) => void warnings.push(line) },
        },
      ),
    ),
    INVOCATION_MILLIS,
  );
  const orderId = randomUUID();
  // Refused: a throttle would be sent again until DynamoDB takes it.
  faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'refuse' } });
  const first = await runExecution(handler, { orderId, run: 'first' });
  faults.clear();
  expect(executionError(first)).toEqual({ errorType: 'Error', errorMessage: 'declined' });
  expect(warnings).toEqual([expect.stringContaining('could not release the record')]);
  const after = await afterTheDurableLease<string>(handler, 'failed-release', orderId);
  expect(after.getResult()).toBe('after');
  expect(steps).toEqual(['first:charge', 'after:charge']);
});

// The steps of an execution whose commit failed have run: the record must stay the execution's
// unless nothing can ever be committed, so that no other execution with the key runs them again.
describe('a transaction() commit that fails', () => {
  const failCommit = () => faults.schedule({ operations: ['TransactWriteItems'], fault: { kind: 'throttle' }, attempts: 'all' });
  const commits = async (name: string, orderId: string): Promise<string | undefined> =>
    (await readItem(inspect, business, `${name}#${orderId}#commits`))?.commits?.N;

  /** Idempotent by order id: runs a `charge` step, then counts one commit (an `ADD`, so a second commit would show) with the record. */
  const committing = (name: string, steps: string[], idempotentStore: IdempotencyStore = store) =>
    makeIdempotent(
      async (order: Order, ctx: DurableContext | typeof resumedContext) => {
        const charged = 'step' in ctx ? await ctx.step('charge', async () => (steps.push(`${order.run}:charge`), order.run)) : order.run;
        transaction().update({
          TableName: business,
          Key: { id: `${name}#${order.orderId}#commits` },
          UpdateExpression: 'ADD commits :one',
          ExpressionAttributeValues: { ':one': 1 },
        });
        return charged;
      },
      { store: idempotentStore, name, key: (order) => order.orderId },
    );
  /**
   * The context of the invocation that resumes an execution: the durable service invokes it again
   * after an invocation error (the local runner does not). The library reads only its execution ARN
   * and time left; the steps that ran return their checkpoints, here the run that charged.
   */
  const invocationOf = (execution: string) => ({
    executionContext: { durableExecutionArn: `arn:aws:lambda:eu-west-1:123456789012:function:pay:$LATEST/durable-execution/${execution}` },
    getRemainingTimeInMillis: () => 600_000,
  });
  const resumedContext = invocationOf(randomUUID());

  test('the store fails it (outcome unknown): the invocation ends (COMMIT_FAILED, isUnrecoverableInvocation), not the execution, and the record is kept; another execution with the key gets IN_PROGRESS and charges nothing', async () => {
    const steps: string[] = [];
    const handler = withDurableExecution(committing('failed-commit', steps));
    const orderId = randomUUID();
    failCommit();
    await expect(runExecution(handler, { orderId, run: 'first' })).rejects.toMatchObject({
      code: 'COMMIT_FAILED',
      isUnrecoverableInvocation: true,
      message: expect.stringMatching(/^COMMIT_FAILED: .*this invocation of the durable execution ends here/),
    });
    faults.clear();
    expect((await readItem(inspect, tableName, recordId('failed-commit', orderId)))?.status?.S).toBe('INPROGRESS');
    const other = await runExecution(handler, { orderId, run: 'other' });
    expect(executionError(other).errorMessage).toMatch(/^IN_PROGRESS: /);
    expect(steps).toEqual(['first:charge']);
    expect(await commits('failed-commit', orderId)).toBeUndefined();
  });

  test.each([
    ['', undefined],
    [' (also with @middy/http-error-handler before it)', 'before'],
    [' (also with @middy/http-error-handler after it)', 'after'],
  ] as const)(
    'middy durable mode with httpIdempotency%s: the invocation ends (COMMIT_FAILED, isUnrecoverableInvocation) instead of answering 503, and the record is kept; a request with the key meanwhile gets 409 and charges nothing',
    async (_with, handled) => {
      const steps: string[] = [];
      const name = `http-failed-commit-${randomUUID()}`;
      const key = randomUUID();
      const handler = middy(middyDurableMode)
        .use(handled === 'before' ? [httpErrorHandler({ logger: false })] : [])
        .use(httpIdempotency({ store, name, scope: 'shared' }))
        .use(handled === 'after' ? [httpErrorHandler({ logger: false })] : [])
        .handler(async (_event, context) => {
          // middy's types do not say that durable mode hands the handler the durable context.
          const ctx = context as unknown as DurableContext;
          await ctx.step('charge', async () => void steps.push('charge'));
          transaction().update({
            TableName: business,
            Key: { id: `${name}#${key}#commits` },
            UpdateExpression: 'ADD commits :one',
            ExpressionAttributeValues: { ':one': 1 },
          });
          return { statusCode: 201, body: '{}' };
        }) as unknown as Parameters<typeof runExecution>[0];
      failCommit();
      await expect(runExecution(handler, paymentRequest(key))).rejects.toMatchObject({ code: 'COMMIT_FAILED', isUnrecoverableInvocation: true });
      faults.clear();
      const meanwhile = await runExecution<{ statusCode: number }>(handler, paymentRequest(key));
      expect(meanwhile.getResult()).toMatchObject({ statusCode: 409 });
      expect(steps).toEqual(['charge']);
      expect(await commits(name, key)).toBeUndefined();
    },
  );

  test('the invocation that resumes the execution meets its record and commits once; later executions replay its result', async () => {
    const charge = committing('resumed-commit', []);
    const orderId = randomUUID();
    failCommit();
    await expect(charge({ orderId, run: 'first' }, resumedContext)).rejects.toMatchObject({ code: 'COMMIT_FAILED', isUnrecoverableInvocation: true });
    faults.clear();
    await expect(charge({ orderId, run: 'first' }, resumedContext)).resolves.toBe('first');
    expect((await readItem(inspect, tableName, recordId('resumed-commit', orderId)))?.status?.S).toBe('COMPLETED');
    await expect(charge({ orderId, run: 'later' }, invocationOf(randomUUID()))).resolves.toBe('first');
    expect(await commits('resumed-commit', orderId)).toBe('1');
  });

  test('its answer is lost on every attempt but it applied: the resuming invocation replays the outcome without committing again', async () => {
    const charge = committing('applied-commit', []);
    const orderId = randomUUID();
    faults.schedule({ operations: ['TransactWriteItems'], fault: { kind: 'drop-response' }, attempts: 'all' });
    await expect(charge({ orderId, run: 'first' }, resumedContext)).rejects.toMatchObject({ code: 'COMMIT_FAILED', isUnrecoverableInvocation: true });
    faults.clear();
    await expect(charge({ orderId, run: 'resumed' }, resumedContext)).resolves.toBe('first');
    expect(await commits('applied-commit', orderId)).toBe('1');
  });

  test('it kept conflicting (TRANSACTION_CONFLICT, nothing written): the invocation ends and the record is kept, as for an unknown outcome', async () => {
    const steps: string[] = [];
    let conflicts = 1;
    const conflicting: IdempotencyStore = Object.create(store, {
      completeWithWrites: {
        value: (...args: Parameters<NonNullable<IdempotencyStore['completeWithWrites']>>) =>
          conflicts-- > 0
            ? Promise.reject(new IdempotencyError('TRANSACTION_CONFLICT', 'The transaction kept conflicting with concurrent writes; nothing was written.'))
            : store.completeWithWrites(...args),
      },
    });
    const handler = withDurableExecution(committing('conflicted-commit', steps, conflicting));
    const orderId = randomUUID();
    await expect(runExecution(handler, { orderId, run: 'first' })).rejects.toMatchObject({ code: 'TRANSACTION_CONFLICT', isUnrecoverableInvocation: true });
    expect((await readItem(inspect, tableName, recordId('conflicted-commit', orderId)))?.status?.S).toBe('INPROGRESS');
    const other = await runExecution(handler, { orderId, run: 'other' });
    expect(executionError(other).errorMessage).toMatch(/^IN_PROGRESS: /);
    expect(steps).toEqual(['first:charge']);
  });

  describe.each([
    [
      'makeIdempotent',
      (name: string, body: (order: Order, ctx: DurableContext) => Promise<string>) =>
        withDurableExecution(makeIdempotent(body, { store, name, key: (order) => order.orderId })),
    ],
    [
      'the middleware, in middy durable mode',
      (name: string, body: (order: Order, ctx: DurableContext) => Promise<string>) =>
        middy<Order, string, Error, DurableContext>(middyDurableMode)
          .use(idempotency<Order, string>({ store, name, key: (order) => order.orderId }))
          .handler(body) as unknown as Parameters<typeof runExecution>[0],
    ],
  ])('in a call nested in the handler made idempotent with %s', (_, idempotentHandler) => {
    test('the enclosing call keeps its record too: the invocation ends, not the execution, so another execution with the key gets IN_PROGRESS and charges nothing', async () => {
      const steps: string[] = [];
      const name = `outer-${randomUUID().slice(0, 8)}`;
      // The nested call is given the durable context: it holds its record as the execution too.
      const record = makeIdempotent(
        async (order: Order, _ctx: DurableContext) => {
          transaction().put({ TableName: business, Item: { id: `${name}#${order.orderId}` } });
          return order.run;
        },
        { store, name: `${name}-inner`, key: (order) => order.orderId },
      );
      const handler = idempotentHandler(name, async (order, ctx) => {
        await ctx.step('charge', async () => void steps.push(`${order.run}:charge`));
        return record(order, ctx);
      });
      const orderId = randomUUID();
      failCommit();
      await expect(runExecution(handler, { orderId, run: 'first' })).rejects.toMatchObject({ code: 'COMMIT_FAILED', isUnrecoverableInvocation: true });
      faults.clear();
      expect((await readItem(inspect, tableName, recordId(name, orderId)))?.status?.S).toBe('INPROGRESS');
      const other = await runExecution(handler, { orderId, run: 'other' });
      expect(executionError(other).errorMessage).toMatch(/^IN_PROGRESS: /);
      expect(steps).toEqual(['first:charge']);
    });
  });

  test('with a second call of the key running at once in the invocation (Promise.all), that call ends with the same error: it never runs its function, whose step would charge again', async () => {
    const steps: string[] = [];
    const charge = makeIdempotent(
      async (order: Order, ctx: DurableContext) => {
        const charged = await ctx.step(`charge-${steps.length}`, async () => (steps.push(`${order.run}:charge`), order.run));
        transaction().put({ TableName: business, Item: { id: `together#${order.orderId}`, charged } });
        return charged;
      },
      { store, name: 'together-commit', key: (order) => order.orderId },
    );
    const handler = withDurableExecution((order: Order, ctx: DurableContext) => Promise.all([charge(order, ctx), charge(order, ctx)]));
    const orderId = randomUUID();
    failCommit();
    await expect(runExecution(handler, { orderId, run: 'first' })).rejects.toMatchObject({ code: 'COMMIT_FAILED', isUnrecoverableInvocation: true });
    faults.clear();
    expect(steps).toEqual(['first:charge']);
    expect((await readItem(inspect, tableName, recordId('together-commit', orderId)))?.status?.S).toBe('INPROGRESS');
  });

  test('a write whose own condition fails (TRANSACTION_CONDITION_FAILED) can never commit: the execution fails and frees the key, as outside durable executions', async () => {
    const steps: string[] = [];
    const refused = makeIdempotent(
      async (order: Order, ctx: DurableContext) => {
        const charged = await ctx.step('charge', async () => (steps.push(`${order.run}:charge`), order.run));
        transaction().put({ TableName: business, Item: { id: `refused#${order.orderId}` }, ConditionExpression: 'attribute_exists(id)' });
        return charged;
      },
      { store, name: 'refused-commit', key: (order) => order.orderId },
    );
    const orderId = randomUUID();
    const failed = await runExecution(withDurableExecution(refused), { orderId, run: 'first' });
    expect(executionError(failed).errorMessage).toMatch(/^TRANSACTION_CONDITION_FAILED: /);
    expect(await readItem(inspect, tableName, recordId('refused-commit', orderId))).toBeUndefined();
  });

  test('a write DynamoDB refuses (TRANSACTION_INVALID: a table that does not exist) can never commit: the execution fails and frees the key, as outside durable executions', async () => {
    const steps: string[] = [];
    const invalid = makeIdempotent(
      async (order: Order, ctx: DurableContext) => {
        const charged = await ctx.step('charge', async () => (steps.push(`${order.run}:charge`), order.run));
        transaction().put({ TableName: `missing-${order.orderId}`, Item: { id: order.orderId } });
        return charged;
      },
      { store, name: 'invalid-commit', key: (order) => order.orderId },
    );
    const orderId = randomUUID();
    const failed = await runExecution(withDurableExecution(invalid), { orderId, run: 'first' });
    expect(executionError(failed).errorMessage).toMatch(/^TRANSACTION_INVALID: /);
    expect(await readItem(inspect, tableName, recordId('invalid-commit', orderId))).toBeUndefined();
    expect(steps).toEqual(['first:charge']);
  });
});

// A call in the handler body whose outcome the key provider could not seal completes its record
// without it, and the execution's next replay (after a wait) meets that record as its own:
// RESPONSE_NOT_STORED / ERROR_NOT_STORED. The first invocation gets the same, so that every
// invocation takes the same branch (a charge that succeeded never goes on as charged in one and
// fails the execution in the next); the function runs once.
describe('a call in the handler body whose outcome the key provider cannot seal', () => {
  test.each([
    ['response', 'RESPONSE_NOT_STORED'],
    ['final error', 'ERROR_NOT_STORED'],
  ] as const)('its %s: every invocation of the execution, the first included, gets %s', async (outcome, code) => {
    const ring = keyring(aesKey('k1'));
    const runs: string[] = [];
    const sealed = new DynamoDBStore({ tableName, client: inspect, encryption: aesGcmEncryption(ring.encryption) });
    const charge = makeIdempotent(
      async (order: Order, _ctx: DurableContext): Promise<string> => {
        runs.push(order.run);
        if (outcome === 'response') return 'charged';
        throw Object.assign(new Error('card declined'), { name: 'CardDeclined' });
      },
      { store: sealed, name: `unsealed-body-${randomUUID()}`, key: (order) => order.orderId, isFinalError: () => true, logger: { warn: () => undefined } },
    );
    const seen: string[] = [];
    const handler = withDurableExecution(async (order: Order, ctx: DurableContext) => {
      const answer = await charge(order, ctx).catch((error: unknown) => `failed: ${(error as { code?: string }).code ?? (error as Error).name}`);
      seen.push(answer);
      ring.failCurrent = undefined; // only the first invocation's seal fails
      await ctx.wait('settle', runnerWait(30));
      return answer;
    });
    ring.failCurrent = 'throws';
    const execution = await runExecution<string>(handler, { orderId: randomUUID(), run: 'first' });
    expect(execution.getInvocations().length).toBeGreaterThanOrEqual(2);
    expect(seen).toEqual(seen.map(() => `failed: ${code}`));
    expect(runs).toEqual(['first']);
  });
});

// The durable SDK's own error classes (and code shared with durable handlers) mark an error
// `isUnrecoverableInvocation`: only a durable execution's call keeps its record for it. Any other
// call meets an ordinary error, not final: its key is released, and a retry runs.
test('outside a durable execution, an error marked isUnrecoverableInvocation is an ordinary error: the key is released and a retry runs the function', async () => {
  const runs: string[] = [];
  const pay = makeIdempotent(
    async (order: Order) => {
      runs.push(order.run);
      if (order.run === 'first') throw Object.assign(new Error('invocation ended'), { isUnrecoverableInvocation: true });
      return order.run;
    },
    { store, name: 'unrecoverable-outside', key: (order) => order.orderId },
  );
  const orderId = randomUUID();
  await expect(pay({ orderId, run: 'first' })).rejects.toThrow('invocation ended');
  expect(await readItem(inspect, tableName, recordId('unrecoverable-outside', orderId))).toBeUndefined();
  await expect(pay({ orderId, run: 'retry' })).resolves.toBe('retry');
  expect(runs).toEqual(['first', 'retry']);
});
