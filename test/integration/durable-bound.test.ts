/**
 * Store requests given up on at the call's bound near the Lambda deadline, inside Lambda durable
 * executions (AWS's local runner, DynamoDB Local). A durable execution's lease outlives the
 * invocation: a claim given up on ends the invocation and keeps the execution's record, whose
 * steps may have run; a commit given up on does the same, as its record may complete yet: no
 * other execution with the key runs the steps again.
 * The store requests that hang are the real store's, applied or not, whose answer never comes.
 */

import { randomUUID } from 'node:crypto';
import { type DurableContext, type DurableLambdaHandler, withDurableExecution } from '@aws/durable-execution-sdk-js';
import type { TransactWriteItem } from '@aws-sdk/client-dynamodb';
import type { CompleteRequest, IdempotencyStore } from '../../lib/index.js';
import { makeIdempotent, transaction } from '../../lib/index.js';
import { executionError, runExecution, runnerWait, useDurableRunner, withTimeLeft } from '../support/durable.js';
import { readItem, recordId, useBusinessTable, useFreshTable } from '../support/dynamodb.js';

const { client, tableName, store } = useFreshTable({ prefix: 'durable-bound' });
const business = useBusinessTable(client);
useDurableRunner();

interface Order {
  readonly orderId: string;
  readonly run: string;
}

/** A request whose answer never comes. */
const never = (): Promise<never> => new Promise<never>(() => undefined);

/** Each invocation reads 1.2 s left (a Lambda near its deadline): a request unanswered by then is given up on at the bound. */
const nearDeadline = (handler: DurableLambdaHandler): DurableLambdaHandler => withTimeLeft(handler, 1_200);

const recordOf = async (name: string, orderId: string) => (await readItem(client, tableName, recordId(name, orderId)))?.status?.S;

/**
 * A durable handler, idempotent by order id, whose `charge` step logs `<run>:charge` in `events`
 * and writes the charge with the record; with `suspend`, it waits between its two steps. The
 * wrapper logs when the call answers its caller, so that the release can be placed after it.
 */
function charging(name: string, events: string[], idempotentStore: IdempotencyStore, suspend = false): DurableLambdaHandler {
  const charge = makeIdempotent(
    async (order: Order, ctx: DurableContext) => {
      const charged = await ctx.step('charge', async () => {
        events.push(`${order.run}:charge`);
        return `charged by ${order.run}`;
      });
      if (suspend) await ctx.wait('cool-off', runnerWait(30));
      transaction().put({ TableName: business, Item: { id: `${name}#${order.orderId}`, charged } });
      return charged;
    },
    { store: idempotentStore, name, key: (order) => order.orderId },
  );
  return withDurableExecution(async (order: Order, ctx: DurableContext) => {
    try {
      return await charge(order, ctx);
    } catch (error) {
      events.push(`${order.run}:answered ${(error as { code?: string }).code}`);
      throw error;
    }
  });
}

/** `store`, with `overrides`, logging every release it is sent in `events`. */
function storeWith(events: string[], overrides: Partial<IdempotencyStore>): IdempotencyStore {
  return Object.create(store, {
    release: { value: (request: { key: string; owner: string }) => (events.push('release'), store.release(request)) },
    ...Object.fromEntries(Object.entries(overrides).map(([name, value]) => [name, { value }])),
  });
}

/**
 * Until the record's status is `status`, for at most 25 reads of the record, each a round trip to
 * DynamoDB Local (about 20 ms under the runner's fake timers, which run the SDK's timers on their
 * ticks) followed by a turn of the event loop: a request sent after the answer, which `events`
 * logs as it is sent, would have landed by then.
 */
async function settled(name: string, orderId: string, status: string | undefined): Promise<string | undefined> {
  for (let i = 0; i < 25 && (await recordOf(name, orderId)) !== status; i++) await new Promise((resolve) => setImmediate(resolve));
  return recordOf(name, orderId);
}

test("a claim applied but never answered, in an execution's first invocation: STORE_FAILURE ends the invocation, not the execution, and the record is kept for its next invocation; another execution with the key gets IN_PROGRESS", async () => {
  const events: string[] = [];
  let lose = true;
  const lost = storeWith(events, {
    claim: (request) => {
      const claim = store.claim(request);
      return lose ? claim.then(never) : claim;
    },
  });
  const handler = charging('lost-claim', events, lost);
  const orderId = randomUUID();
  // The invocation fails (the local runner does not invoke it again, as the durable service does).
  await expect(runExecution(nearDeadline(handler), { orderId, run: 'first' })).rejects.toMatchObject({
    code: 'STORE_FAILURE',
    isUnrecoverableInvocation: true,
  });
  // No release, now or after the answer: the claim may be the execution's.
  expect(await settled('lost-claim', orderId, undefined)).toBe('INPROGRESS');
  lose = false;
  const other = await runExecution<string>(nearDeadline(handler), { orderId, run: 'other' });
  expect(executionError(other).errorMessage).toMatch(/^IN_PROGRESS: /);
  expect(events).toEqual(['first:answered STORE_FAILURE', 'other:answered IN_PROGRESS']);
});

test('a claim lost on the replay of a suspended execution, after a step ran: the invocation ends and the record stays held, so no other execution with the key runs the step again', async () => {
  const events: string[] = [];
  let claims = 0;
  const lost = storeWith(events, {
    claim: (request) => {
      const claim = store.claim(request);
      // The second claim is the replay's: applied to the execution's own record, never answered.
      return ++claims === 2 ? claim.then(never) : claim;
    },
  });
  const orderId = randomUUID();
  await expect(runExecution(nearDeadline(charging('lost-replay', events, lost, true)), { orderId, run: 'first' })).rejects.toMatchObject({
    code: 'STORE_FAILURE',
    isUnrecoverableInvocation: true,
    message: expect.stringMatching(/this invocation of the durable execution ends here/),
  });
  expect(await settled('lost-replay', orderId, undefined)).toBe('INPROGRESS');
  const other = await runExecution<string>(nearDeadline(charging('lost-replay', events, store, true)), { orderId, run: 'other' });
  expect(executionError(other).errorMessage).toMatch(/^IN_PROGRESS: /);
  expect(events).toEqual(['first:charge', 'first:answered STORE_FAILURE', 'other:answered IN_PROGRESS']);
});

test('a commit applied but never answered: the invocation ends (COMMIT_FAILED unconfirmed, isUnrecoverableInvocation) and no release is sent; the record, COMPLETED by the commit, is replayed to the next execution', async () => {
  const events: string[] = [];
  let lose = true;
  const lost = storeWith(events, {
    completeWithWrites: (request: CompleteRequest, writes: readonly TransactWriteItem[]) => {
      const commit = store.completeWithWrites(request, writes);
      return lose ? commit.then(never) : commit;
    },
  });
  const handler = nearDeadline(charging('lost-commit', events, lost));
  const orderId = randomUUID();
  await expect(runExecution(handler, { orderId, run: 'first' })).rejects.toMatchObject({
    code: 'COMMIT_FAILED',
    isUnrecoverableInvocation: true,
    message: expect.stringMatching(/could not be confirmed/),
  });
  expect(await settled('lost-commit', orderId, 'COMPLETED')).toBe('COMPLETED');
  lose = false;
  const later = await runExecution<string>(handler, { orderId, run: 'later' });
  expect(later.getResult()).toBe('charged by first');
  expect(events).toEqual(['first:charge', 'first:answered COMMIT_FAILED']);
  expect((await readItem(client, business, `lost-commit#${orderId}`))?.charged?.S).toBe('charged by first');
});

test("a commit never sent before the bound: the invocation ends and the record stays the execution's, so another execution gets IN_PROGRESS and charges nothing; sent late, the commit applies once, and is replayed", async () => {
  const events: string[] = [];
  const held: Array<() => Promise<unknown>> = [];
  const stalled = storeWith(events, {
    completeWithWrites: (request: CompleteRequest, writes: readonly TransactWriteItem[]) => {
      if (held.length === 0) {
        held.push(() => store.completeWithWrites(request, writes));
        return never();
      }
      return store.completeWithWrites(request, writes);
    },
  });
  const handler = nearDeadline(charging('held-commit', events, stalled));
  const orderId = randomUUID();
  await expect(runExecution(handler, { orderId, run: 'first' })).rejects.toMatchObject({ code: 'COMMIT_FAILED', isUnrecoverableInvocation: true });
  expect(await settled('held-commit', orderId, undefined)).toBe('INPROGRESS');
  const other = await runExecution<string>(handler, { orderId, run: 'other' });
  expect(executionError(other).errorMessage).toMatch(/^IN_PROGRESS: /);
  // The commit reaches the table late: fenced on the execution's claim, which it still holds, it applies.
  expect(await held[0]!()).toMatchObject({ completed: true });
  const later = await runExecution<string>(handler, { orderId, run: 'later' });
  expect(later.getResult()).toBe('charged by first');
  expect(events).toEqual(['first:charge', 'first:answered COMMIT_FAILED', 'other:answered IN_PROGRESS']);
  expect((await readItem(client, business, `held-commit#${orderId}`))?.charged?.S).toBe('charged by first');
});

test('a claim never answered, with a second call of the key running at once in the invocation: each call is one store failure, as when the store refuses the claim', async () => {
  const events: string[] = [];
  const lost = storeWith([], { claim: (request) => store.claim(request).then(never) });
  const charge = makeIdempotent(async (order: Order, ctx: DurableContext) => ctx.step('charge', async () => order.run), {
    store: lost,
    name: 'together-lost-claim',
    key: (order) => order.orderId,
    observability: (event) => void events.push(event),
  });
  const handler = withDurableExecution(async (order: Order, ctx: DurableContext) => Promise.all([charge(order, ctx), charge(order, ctx)]));
  await expect(runExecution(nearDeadline(handler), { orderId: randomUUID(), run: 'first' })).rejects.toMatchObject({
    code: 'STORE_FAILURE',
    isUnrecoverableInvocation: true,
  });
  expect(events).toEqual(['storeFailure', 'storeFailure']);
});
