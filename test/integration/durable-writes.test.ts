/**
 * `transaction()` writes in Lambda durable functions (AWS's local runner, DynamoDB Local), in both
 * forms a user writes. A durable execution replays its handler from the start on every resume, and
 * a completed step returns its checkpointed result without running again; the record and the
 * writes of the call commit once, in the invocation where the handler returns.
 */

import { randomUUID } from 'node:crypto';
import { type DurableContext, type DurableLambdaHandler, withDurableExecution } from '@aws/durable-execution-sdk-js';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import middy from '@middy/core';
import { type IdempotencyOptions, idempotency, makeIdempotent, transaction } from '../../lib/index.js';
import { middyDurableMode, runExecution, startExecution, useDurableRunner } from '../support/durable.js';
import { readItem, recordId, useBusinessTable, useFreshTable } from '../support/dynamodb.js';

const { client, tableName, store } = useFreshTable({ prefix: 'durable-writes' });
const business = useBusinessTable(client);
useDurableRunner();

const NAME = 'orders';
const CALLBACK = 'approval';

interface Order {
  readonly orderId: string;
  /** Which execution this is, for the step log; not part of the key. */
  readonly run: string;
  /** Whether the execution suspends on a callback after its first step. @default true */
  readonly waits?: boolean;
}

type Body = (order: Order, ctx: DurableContext) => Promise<string>;

const options = { store, name: NAME, key: (order: Order) => order.orderId } satisfies IdempotencyOptions<Order>;

/** The two ways to make a durable handler idempotent. */
const forms: ReadonlyArray<[string, (body: Body, extra?: Partial<IdempotencyOptions<Order>>) => DurableLambdaHandler]> = [
  ['withDurableExecution(makeIdempotent(…))', (body, extra) => withDurableExecution(makeIdempotent(body, { ...options, ...extra }))],
  [
    'middy durable mode with idempotency()',
    // middy's types do not say that durable mode makes a durable handler.
    (body, extra) =>
      middy<Order, string, Error, DurableContext>(middyDurableMode)
        .use(idempotency<Order, string>({ ...options, ...extra }))
        .handler(body) as unknown as DurableLambdaHandler,
  ],
];

const item = (orderId: string, what: string): Promise<Record<string, AttributeValue> | undefined> => readItem(client, business, `${orderId}#${what}`);

/** How often the body's counter write was committed: once per completed call, whatever the number of invocations. */
const commits = async (orderId: string): Promise<number | undefined> => {
  const counter = await item(orderId, 'commits');
  return counter?.commits?.N === undefined ? undefined : Number(counter.commits.N);
};

const recordStatus = async (orderId: string): Promise<string | undefined> => (await readItem(client, tableName, recordId(NAME, orderId)))?.status?.S;

/** Counts one commit of the call: an `ADD`, so a second commit of the same write would show. */
const countCommit = (orderId: string): void => {
  transaction().update({
    TableName: business,
    Key: { id: `${orderId}#commits` },
    UpdateExpression: 'ADD commits :one',
    ExpressionAttributeValues: { ':one': 1 },
  });
};

/**
 * Reserves in a step, then writes from the body what the step returned (re-collected on every
 * replay), then suspends on a callback. `steps` logs every step that really runs.
 */
const bodyWrites =
  (steps: string[]): Body =>
  async (order, ctx) => {
    const reservation = await ctx.step('reserve', async () => {
      steps.push(`${order.run}:reserve`);
      return `r-${order.run}`;
    });
    transaction().put({ TableName: business, Item: { id: `${order.orderId}#reserved`, reservation } });
    countCommit(order.orderId);
    if (order.waits !== false) await ctx.waitForCallback(CALLBACK, async () => undefined);
    return reservation;
  };

/** The durable operations whose function runs in one invocation and is not run again on replay. */
const operations = {
  step: (ctx: DurableContext, name: string, fn: () => Promise<string>) => ctx.step(name, fn),
  'child context': (ctx: DurableContext, name: string, fn: () => Promise<string>) => ctx.runInChildContext(name, fn),
} as const;

/**
 * Adds its writes inside a durable operation, the counterexample of the rule: `reserve` runs
 * before the suspension, `ship` after it, in the invocation where the handler returns.
 */
const operationWrites =
  (steps: string[], operation: keyof typeof operations): Body =>
  async (order, ctx) => {
    const run = operations[operation];
    const reservation = await run(ctx, 'reserve', async () => {
      steps.push(`${order.run}:reserve`);
      transaction().put({ TableName: business, Item: { id: `${order.orderId}#reserved`, by: order.run } });
      return `r-${order.run}`;
    });
    await ctx.waitForCallback(CALLBACK, async () => undefined);
    await run(ctx, 'ship', async () => {
      steps.push(`${order.run}:ship`);
      transaction().put({ TableName: business, Item: { id: `${order.orderId}#shipped`, by: order.run } });
      return 'shipped';
    });
    return reservation;
  };

/** Starts an execution of `handler` and waits until its first invocation has suspended on the callback. */
async function suspendedExecution(handler: DurableLambdaHandler, order: Order) {
  const execution = startExecution<string>(handler, order, CALLBACK);
  await execution.suspended();
  return execution;
}

describe.each(forms)('%s', (_form, durableHandler) => {
  test('writes added in the handler body from what steps returned commit once with the record, when the execution completes: none while it is suspended', async () => {
    const steps: string[] = [];
    const orderId = randomUUID();
    const execution = await suspendedExecution(durableHandler(bodyWrites(steps)), { orderId, run: 'first' });
    // The invocation that collected the writes has suspended: nothing of it is committed.
    expect(await recordStatus(orderId)).toBe('INPROGRESS');
    expect([await item(orderId, 'reserved'), await commits(orderId)]).toEqual([undefined, undefined]);
    await execution.resume('approved');
    const result = await execution.result;
    expect(result.getStatus()).toBe('SUCCEEDED');
    expect(result.getInvocations()).toHaveLength(2);
    expect(steps).toEqual(['first:reserve']);
    expect(await recordStatus(orderId)).toBe('COMPLETED');
    expect((await item(orderId, 'reserved'))?.reservation?.S).toBe('r-first');
    expect(await commits(orderId)).toBe(1);
  });

  // An operation's function runs in one invocation only: its writes join that invocation's call,
  // which ends only if the handler returns in it. No public API of the durable SDK tells an
  // operation's code from the body's, so the rule is documented (README, `transaction()`).
  test.each(Object.keys(operations) as Array<keyof typeof operations>)(
    'a write added inside a %s that ran before a suspension is lost: the record completes without it (only the completing invocation commits)',
    async (operation) => {
      const steps: string[] = [];
      const orderId = randomUUID();
      const execution = await suspendedExecution(durableHandler(operationWrites(steps, operation)), { orderId, run: 'first' });
      await execution.resume('approved');
      expect((await execution.result).getStatus()).toBe('SUCCEEDED');
      expect(steps).toEqual(['first:reserve', 'first:ship']);
      expect(await recordStatus(orderId)).toBe('COMPLETED');
      expect(await item(orderId, 'reserved')).toBeUndefined();
      expect((await item(orderId, 'shipped'))?.by?.S).toBe('first');
    },
  );
});

test("a step's writes commit when the step makes its work an idempotent call of its own (makeIdempotent inside the step), although the execution suspends after it", async () => {
  const steps: string[] = [];
  const reserve = makeIdempotent(
    async (order: Order) => {
      steps.push(`${order.run}:reserve`);
      transaction().put({ TableName: business, Item: { id: `${order.orderId}#reserved`, by: order.run } });
      return `r-${order.run}`;
    },
    { store, name: 'reserve', key: (order) => order.orderId },
  );
  const handler = withDurableExecution(
    makeIdempotent(async (order: Order, ctx: DurableContext) => {
      const reservation = await ctx.step('reserve', () => reserve(order));
      await ctx.waitForCallback(CALLBACK, async () => undefined);
      return reservation;
    }, options),
  );
  const orderId = randomUUID();
  const execution = await suspendedExecution(handler, { orderId, run: 'first' });
  expect((await item(orderId, 'reserved'))?.by?.S).toBe('first');
  await execution.resume('approved');
  expect((await execution.result).getResult()).toBe('r-first');
  expect(steps).toEqual(['first:reserve']);
  expect(await recordStatus(orderId)).toBe('COMPLETED');
});

// Atomic mode writes no record until the call returns: nothing holds the key while an execution
// runs or is suspended, as for any atomic call (whose handler must be pure: duplicates run it).
describe.each(forms)('%s, atomic', (_form, durableHandler) => {
  test('a suspended execution holds nothing: another execution with its key runs its steps and commits; the first resumes to its stored result, its own writes never committed', async () => {
    const steps: string[] = [];
    const handler = durableHandler(bodyWrites(steps), { atomic: true });
    const orderId = randomUUID();
    const first = await suspendedExecution(handler, { orderId, run: 'first' });
    expect([await recordStatus(orderId), await commits(orderId)]).toEqual([undefined, undefined]);
    const second = await runExecution<string>(handler, { orderId, run: 'second', waits: false });
    expect(second.getResult()).toBe('r-second');
    await first.resume('approved');
    const resumed = await first.result;
    expect(resumed.getStatus()).toBe('SUCCEEDED');
    expect(resumed.getResult()).toBe('r-second');
    expect(steps).toEqual(['first:reserve', 'second:reserve']);
    expect(await recordStatus(orderId)).toBe('COMPLETED');
    expect((await item(orderId, 'reserved'))?.reservation?.S).toBe('r-second');
    expect(await commits(orderId)).toBe(1);
  });
});
