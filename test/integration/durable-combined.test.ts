/**
 * Combinations of durable executions (AWS's local runner, DynamoDB Local): middy's durable mode
 * with the middleware and a `makeIdempotent` call in the body given the durable context, both in
 * one table; calls nested in calls given the same or a child context; an atomic body call.
 */
import { randomUUID } from 'node:crypto';
import { type DurableContext, type DurableLambdaHandler, withDurableExecution } from '@aws/durable-execution-sdk-js';
import middy from '@middy/core';
import { idempotency, makeIdempotent, transaction } from '../../lib/index.js';
import { advanceRunnerClock, executionError, middyDurableMode, runExecution, startExecution, useDurableRunner } from '../support/durable.js';
import { readItem, recordId, scanItems, useBusinessTable, useFreshTable } from '../support/dynamodb.js';

const { client, store, tableName } = useFreshTable({ prefix: 'durable-combined' });
const business = useBusinessTable(client);
useDurableRunner();

const CALLBACK = 'approval';

interface Order {
  readonly orderId: string;
  /** How the charge fails in its first run. */
  readonly fail?: 'final' | 'retryable';
}

/** Every record of the table whose id starts with one of `names`: [id, status, has expiration]. */
async function records(...names: string[]) {
  const items = await scanItems(client, tableName);
  return items
    .filter((item) => names.some((name) => item.id?.S?.startsWith(`${name}#`)))
    .map((item) => [item.id?.S, item.status?.S, item.expiration?.N !== undefined] as const)
    .sort();
}

function middyWithBodyCall(handlerName: string, chargeName: string, charges: string[], ships: string[]) {
  const charge = makeIdempotent(
    async (order: Order, _ctx: DurableContext) => {
      charges.push(order.orderId);
      if (order.fail === 'final') throw Object.assign(new Error('declined'), { code: 'CARD_DECLINED' });
      if (order.fail === 'retryable' && charges.length === 1) throw new Error('gateway timeout');
      return `charged ${order.orderId}`;
    },
    {
      store,
      name: chargeName,
      key: (order) => order.orderId,
      isFinalError: (error) => (error as { code?: unknown }).code === 'CARD_DECLINED',
    },
  );
  return middy<Order, unknown, Error, DurableContext>(middyDurableMode)
    .use(idempotency<Order, unknown>({ store, name: handlerName, key: (order) => order.orderId }))
    .handler(async (order, ctx) => {
      let charged: string;
      try {
        charged = await charge(order, ctx);
      } catch (error) {
        charged = `failed ${(error as Error).message}`;
      }
      await ctx.waitForCallback(CALLBACK, async () => undefined);
      const shipped = await ctx.step('ship', async () => (ships.push(order.orderId), `shipped ${order.orderId}`));
      return [charged, shipped];
    }) as unknown as DurableLambdaHandler;
}

describe('middy durable mode with a makeIdempotent call in the body given the durable context, one table', () => {
  test('the charge and the shipment run once; another execution meanwhile gets IN_PROGRESS, one after the stored result; both records COMPLETED with an expiration', async () => {
    const [handlerName, chargeName] = [`h-${randomUUID()}`, `c-${randomUUID()}`];
    const charges: string[] = [];
    const ships: string[] = [];
    const handler = middyWithBodyCall(handlerName, chargeName, charges, ships);
    const orderId = randomUUID();
    const execution = startExecution(handler, { orderId }, CALLBACK);
    await execution.suspended();
    expect(await records(handlerName, chargeName)).toEqual(
      [
        [recordId(handlerName, orderId), 'INPROGRESS', true],
        [recordId(chargeName, orderId), 'COMPLETED', true],
      ].sort(),
    );
    const meanwhile = await runExecution(handler, { orderId });
    expect(executionError(meanwhile)).toMatchObject({ errorMessage: expect.stringMatching(/^IN_PROGRESS/) });
    await execution.resume('ok');
    const done = await execution.result;
    expect(done.getResult()).toEqual([`charged ${orderId}`, `shipped ${orderId}`]);
    const after = await runExecution(handler, { orderId });
    expect(after.getResult()).toEqual(done.getResult());
    expect(charges).toEqual([orderId]);
    expect(ships).toEqual([orderId]);
    expect(await records(handlerName, chargeName)).toEqual(
      [
        [recordId(handlerName, orderId), 'COMPLETED', true],
        [recordId(chargeName, orderId), 'COMPLETED', true],
      ].sort(),
    );
  });

  test('a final error of the charge is stored: the replay takes the same branch, the charge runs once', async () => {
    const [handlerName, chargeName] = [`h-${randomUUID()}`, `c-${randomUUID()}`];
    const charges: string[] = [];
    const handler = middyWithBodyCall(handlerName, chargeName, charges, []);
    const orderId = randomUUID();
    const execution = startExecution(handler, { orderId, fail: 'final' }, CALLBACK);
    await execution.suspended();
    await execution.resume('ok');
    const done = await execution.result;
    expect(done.getResult()).toEqual([expect.stringMatching(/^failed .*declined/), `shipped ${orderId}`]);
    expect(charges).toEqual([orderId]);
    expect(await records(handlerName, chargeName)).toEqual(
      [
        [recordId(handlerName, orderId), 'COMPLETED', true],
        [recordId(chargeName, orderId), 'COMPLETED', true],
      ].sort(),
    );
  });

  // Open: a retryable error releases the body call's record, so the replay after the suspension
  // runs the charge again and may take the other branch (charged although the first invocation
  // went on as declined). Held until the execution's replays can meet the error they met first.
  test.failing('a retryable error of the charge caught by the body: the replay takes the same branch as the first invocation', async () => {
    const [handlerName, chargeName] = [`h-${randomUUID()}`, `c-${randomUUID()}`];
    const charges: string[] = [];
    const handler = middyWithBodyCall(handlerName, chargeName, charges, []);
    const orderId = randomUUID();
    const execution = startExecution(handler, { orderId, fail: 'retryable' }, CALLBACK);
    await execution.suspended();
    await execution.resume('ok');
    const done = await execution.result;
    expect(done.getStatus()).toBe('SUCCEEDED');
    expect(done.getResult()).toEqual(['failed gateway timeout', `shipped ${orderId}`]);
    expect(charges).toEqual([orderId]);
  });
});

describe('calls nested in calls given the durable context', () => {
  test('a body call whose function makes another call given the same context: each function runs once across the suspension; both records COMPLETED', async () => {
    const [outerName, innerName] = [`o-${randomUUID()}`, `i-${randomUUID()}`];
    const runs: string[] = [];
    const inner = makeIdempotent(async (orderId: string, _ctx: DurableContext) => (runs.push('inner'), `in ${orderId}`), { store, name: innerName });
    const outer = makeIdempotent(async (orderId: string, ctx: DurableContext) => (runs.push('outer'), `out ${await inner(orderId, ctx)}`), {
      store,
      name: outerName,
    });
    const handler = withDurableExecution(async (orderId: string, ctx: DurableContext) => {
      const [a, b] = await Promise.all([
        ctx.runInChildContext('a', (child) => inner(orderId, child)),
        ctx.runInChildContext('b', (child) => inner(orderId, child)),
      ]);
      const value = await outer(orderId, ctx);
      await ctx.waitForCallback(CALLBACK, async () => undefined);
      return [a, b, value, await outer(orderId, ctx)];
    });
    const orderId = randomUUID();
    const execution = startExecution(handler, orderId, CALLBACK);
    await execution.suspended();
    await execution.resume('ok');
    const done = await execution.result;
    expect(done.getResult()).toEqual([`in ${orderId}`, `in ${orderId}`, `out in ${orderId}`, `out in ${orderId}`]);
    expect(runs).toEqual(['inner', 'outer']);
    expect(await records(outerName, innerName)).toEqual(
      [
        [recordId(outerName, orderId), 'COMPLETED', true],
        [recordId(innerName, orderId), 'COMPLETED', true],
      ].sort(),
    );
  });
});

/** An atomic call of the body that adds one to the order's commit count in its transaction; `runs` logs each run of its function. */
const atomicReserve = (name: string, runs: string[], options: { expiresAfterSeconds?: number; durableLeaseSeconds?: number } = {}) =>
  makeIdempotent(
    async (orderId: string, _ctx: DurableContext) => {
      runs.push(orderId);
      transaction().update({
        TableName: business,
        Key: { id: `${orderId}#commits` },
        UpdateExpression: 'ADD commits :one',
        ExpressionAttributeValues: { ':one': 1 },
      });
      return `reserved ${orderId}`;
    },
    { store, name, atomic: true, ...options },
  );

test('an atomic body call with transaction() writes, the execution suspended after it: the writes apply once, and the replay returns the same value', async () => {
  const name = `atomic-${randomUUID()}`;
  const runs: string[] = [];
  const reserve = atomicReserve(name, runs);
  const handler = withDurableExecution(async (orderId: string, ctx: DurableContext) => {
    const first = await reserve(orderId, ctx);
    await ctx.waitForCallback(CALLBACK, async () => undefined);
    return [first, await reserve(orderId, ctx)];
  });
  const orderId = randomUUID();
  const execution = startExecution(handler, orderId, CALLBACK);
  await execution.suspended();
  await execution.resume('ok');
  expect((await execution.result).getResult()).toEqual([`reserved ${orderId}`, `reserved ${orderId}`]);
  // Atomic mode claims with its commit: its function runs in every call (a pure one, by its contract),
  // and every call after the first meets the stored outcome, its writes discarded.
  expect(runs).toEqual([orderId, orderId, orderId]);
  expect((await readItem(client, business, `${orderId}#commits`))?.commits?.N).toBe('1');
  expect(await records(name)).toEqual([[recordId(name, orderId), 'COMPLETED', true]]);
});

// An atomic call commits its record COMPLETED in the invocation it runs in; the body makes it again on
// every replay, and each replay's commit must meet that record: kept for the durable lease, as any
// call's record given the execution's context, or a replay past the retention commits its writes again.
test('an atomic body call with transaction() writes, suspended after it past its retention but within its durable lease: the replay meets its record, and the writes apply once', async () => {
  const name = `atomic-lease-${randomUUID()}`;
  const runs: string[] = [];
  const reserve = atomicReserve(name, runs, { expiresAfterSeconds: 60, durableLeaseSeconds: 3_600 });
  const handler = withDurableExecution(async (orderId: string, ctx: DurableContext) => {
    const reserved = await reserve(orderId, ctx);
    await ctx.waitForCallback(CALLBACK, async () => undefined);
    return reserved;
  });
  const orderId = randomUUID();
  const execution = startExecution<string>(handler, orderId, CALLBACK);
  await execution.suspended();
  await advanceRunnerClock(2 * 60_000);
  await execution.resume('ok');
  const result = await execution.result;
  expect(result.getStatus()).toBe('SUCCEEDED');
  expect(result.getResult()).toBe(`reserved ${orderId}`);
  expect(runs).toEqual([orderId, orderId]);
  expect((await readItem(client, business, `${orderId}#commits`))?.commits?.N).toBe('1');
});
