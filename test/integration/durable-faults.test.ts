/**
 * Store faults under Lambda durable functions (AWS's local runner, DynamoDB Local behind the fault
 * layer). A durable execution's record is owned by the execution, and a handler that throws fails
 * the execution for good: whatever it may have claimed must not outlive it by the durable lease.
 */

import { randomUUID } from 'node:crypto';
import { type DurableContext, withDurableExecution } from '@aws/durable-execution-sdk-js';
import middy from '@middy/core';
import { idempotency, makeIdempotent } from '../../lib/index.js';
import { advanceRunnerClock, executionError, middyDurableMode, runExecution, runnerWait, useDurableRunner } from '../support/durable.js';
import { endpoint, readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { faultyClient } from '../support/faults.js';

const { client, faults } = faultyClient(endpoint());
const { client: inspect, tableName, store } = useFreshTable({ prefix: 'durable-faults', storeClient: client });
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
  const handler = withDurableExecution(
    makeIdempotent(
      async (order: Order, ctx: DurableContext) => {
        runs.push(order.run);
        // The wrong context on purpose when the run says so: the SDK fails the execution.
        if (order.run === 'first') return ctx.runInChildContext('child', async () => ctx.step('wrong-context', async () => order.run));
        return ctx.step('charge', async () => order.run);
      },
      { store, name: 'sdk-fault', key: (order) => order.orderId, durableLeaseSeconds: 60 },
    ),
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

// A completion the store fails (every attempt throttled: an outage) cannot be written, and a
// durable execution's lease outlives the invocation: what the execution returns and what its
// duplicates see follow from there.
describe('a completion that fails on every attempt', () => {
  const failCompletion = () => faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'throttle' }, attempts: 'all' });
  const warnings: string[] = [];
  const logger = { warn: (line: string) => void warnings.push(line) };
  beforeEach(() => void (warnings.length = 0));

  test('wrapping the durable handler: the execution returns its result; its key stays INPROGRESS for the durable lease (duplicates get IN_PROGRESS, retry after it), then runs again', async () => {
    const steps: string[] = [];
    const handler = withDurableExecution(
      makeIdempotent(async (order: Order, ctx: DurableContext) => ctx.step('charge', async () => (steps.push(`${order.run}:charge`), order.run)), {
        store,
        name: 'failed-completion',
        key: (order) => order.orderId,
        durableLeaseSeconds: 600,
        logger,
      }),
    );
    const orderId = randomUUID();
    failCompletion();
    const first = await runExecution<string>(handler, { orderId, run: 'first' });
    faults.clear();
    expect(first.getResult()).toBe('first');
    expect(warnings).toEqual([expect.stringContaining('could not mark the record COMPLETED')]);
    expect((await readItem(inspect, tableName, recordId('failed-completion', orderId)))?.status?.S).toBe('INPROGRESS');
    const duplicate = await runExecution(handler, { orderId, run: 'duplicate' });
    // The retry-after is the rest of the durable lease, not of one invocation.
    expect(executionError(duplicate).errorMessage).toMatch(/^IN_PROGRESS: .*retry in (59\d|600) s\./);
    await advanceRunnerClock(601_000);
    const after = await runExecution<string>(handler, { orderId, run: 'after' });
    expect(after.getResult()).toBe('after');
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
