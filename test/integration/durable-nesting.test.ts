/**
 * An idempotent call wrapped around `withDurableExecution` instead of inside it reads what the
 * durable service invokes the function with (the execution's ARN, a checkpoint token and its
 * state), not the payload: every execution and every invocation looks new. It is refused with a
 * sentence naming the right nesting, through AWS's local runner and with the input as AWS sends it.
 * And durable contexts built by hand: which invocation a call belongs to is told by the Lambda
 * context its stub carries.
 */
import { randomUUID } from 'node:crypto';
import { type DurableContext, type DurableLambdaHandler, withDurableExecution } from '@aws/durable-execution-sdk-js';
import middy from '@middy/core';
import { DynamoDBStore, idempotency, makeIdempotent } from '../../lib/index.js';
import { runExecution, useDurableRunner } from '../support/durable.js';
import { testClient, useFreshTable } from '../support/dynamodb.js';
import { gate } from '../support/gate.js';
import { lambdaContext } from '../support/lambda.js';
import { rejection } from '../support/rejections.js';

const { store, tableName } = useFreshTable({ prefix: 'durable-nesting' });
useDurableRunner();

interface Order {
  readonly orderId: string;
}

const NESTING = /inside withDurableExecution/;

test("makeIdempotent wrapped around withDurableExecution (key with onMissingKey 'skip') refuses the invocation, and the second execution with the payload charges nothing either", async () => {
  const charges: string[] = [];
  const durable = withDurableExecution(async (order: Order, ctx: DurableContext) => {
    await ctx.step('charge', async () => void charges.push(order.orderId));
    return `charged ${order.orderId}`;
  });
  const handler = makeIdempotent(durable, {
    store,
    name: `inside-out-${randomUUID()}`,
    key: (event) => (event as unknown as Partial<Order>).orderId,
    onMissingKey: 'skip',
  }) as unknown as DurableLambdaHandler;
  const order = { orderId: randomUUID() };
  const outcomes = [];
  for (let run = 0; run < 2; run++)
    outcomes.push(
      await runExecution(handler, order).then(
        (execution) => execution.getStatus(),
        (error: unknown) => error,
      ),
    );
  expect(outcomes).toEqual([
    expect.objectContaining({ message: expect.stringMatching(NESTING) }),
    expect.objectContaining({ message: expect.stringMatching(NESTING) }),
  ]);
  expect(charges).toEqual([]);
});

// The durable service's invocation input as AWS sends it: JSON, hashable whole, but never the same twice.
const invocationInput = (payload: unknown) => ({
  DurableExecutionArn: `arn:aws:lambda:eu-west-1:123456789012:function:orders:$LATEST/durable-execution/${randomUUID()}/${randomUUID()}`,
  CheckpointToken: randomUUID(),
  InitialExecutionState: {
    Operations: [{ Id: randomUUID(), Type: 'EXECUTION', Status: 'STARTED', ExecutionDetails: { InputPayload: JSON.stringify(payload) } }],
  },
});

test('the middleware with its default key (the whole event) before a durable handler refuses the invocation input: two executions with one payload never both run it', async () => {
  const runs: unknown[] = [];
  const handler = middy()
    .use(idempotency({ store, name: `inside-out-middy-${randomUUID()}` }))
    .handler(async (event: unknown) => {
      runs.push(event);
      return { Status: 'SUCCEEDED', Result: '"charged"' };
    });
  const order = { orderId: randomUUID() };
  for (let run = 0; run < 2; run++) await expect(handler(invocationInput(order), lambdaContext('orders'))).rejects.toThrow(NESTING);
  await expect(handler(invocationInput(order), lambdaContext('orders'))).rejects.toBeInstanceOf(TypeError);
  expect(runs).toEqual([]);
});

// The invocation is told by its Lambda context object, which the SDK hands to every child context.
describe('durable context stubs built by hand, two calls with one key at once in child stubs of one execution', () => {
  const stub = (durableExecutionArn: string, lambda?: object) => ({
    executionContext: { durableExecutionArn },
    step: async () => undefined,
    ...(lambda === undefined ? {} : { lambdaContext: lambda }),
  });
  /** Two calls with one key at once; the function returns once as many runs as `runs` have entered it. */
  const chargeTwice = async (shared: boolean, runs: number) => {
    const charges: string[] = [];
    const entered = gate<void>();
    const charge = makeIdempotent(
      async (orderId: string, _ctx: object) => {
        if (charges.push(orderId) === runs) entered.open();
        await entered.promise;
        return `charged ${orderId}`;
      },
      { store, name: `stubs-${randomUUID()}` },
    );
    const arn = randomUUID();
    const lambda = shared ? lambdaContext('orders') : undefined;
    // The first call's flight exists before the second starts: a second that follows it never enters the function.
    await Promise.all([charge('o-1', stub(arn, lambda)), charge('o-1', stub(arn, lambda))]);
    return charges;
  };

  test('sharing one lambdaContext, as the SDK does: the function runs once', async () => {
    expect(await chargeTwice(true, 1)).toEqual(['o-1']);
  });

  test('without one, each stub is an invocation of its own: both calls hold the record and run', async () => {
    expect(await chargeTwice(false, 2)).toEqual(['o-1', 'o-1']);
  });
});

test('an ordinary event that names a durable execution, or carries a checkpoint token, without the other is a payload like any other: it runs once and replays', async () => {
  for (const event of [
    {
      DurableExecutionArn: `arn:aws:lambda:eu-west-1:123456789012:function:orders:$LATEST/durable-execution/${randomUUID()}/${randomUUID()}`,
      action: 'cancel',
    },
    { CheckpointToken: randomUUID(), action: 'resume' },
  ]) {
    let runs = 0;
    const handle = makeIdempotent(async (_: object) => ++runs, { store, name: `named-arn-${randomUUID()}` });
    expect(await handle(event)).toBe(1);
    expect(await handle(event)).toBe(1);
  }
});

test('a context whose durable execution ARN is empty belongs to no execution: two calls with one key at once run the function once', async () => {
  const charges: string[] = [];
  const charge = makeIdempotent(
    async (orderId: string, _ctx: object) => {
      charges.push(orderId);
      await new Promise((resolve) => setImmediate(resolve));
      return `charged ${orderId}`;
    },
    { store, name: `empty-arn-${randomUUID()}` },
  );
  const context = () => ({ executionContext: { durableExecutionArn: '' }, step: async () => undefined });
  expect(await Promise.all([charge('o-1', context()), charge('o-1', context())])).toEqual(['charged o-1', 'charged o-1']);
  expect(charges).toEqual(['o-1']);
});

// Its record is held for the whole execution, which may stay suspended for days: waiting for it would only spend the invocation.
test("another execution with the key gets IN_PROGRESS at once, even with waitForInProgressMillis, and never the first execution's result", async () => {
  const name = `no-wait-${randomUUID()}`;
  const entered = gate<void>();
  const release = gate<void>();
  const first = makeIdempotent(
    async (orderId: string, _ctx: object) => {
      entered.open();
      await release.promise;
      return `charged ${orderId}`;
    },
    { store, name },
  );
  // Another process: its own client, which tells when its claim was answered.
  const client = testClient();
  const claimAnswered = gate<void>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      try {
        return await next(args);
      } finally {
        if (context.commandName === 'PutItemCommand') claimAnswered.open(); // refused, as it meets the first execution's record
      }
    },
    { step: 'initialize', name: 'claimAnswered' },
  );
  const stopped = Date.now();
  const second = makeIdempotent(async (orderId: string, _ctx: object) => `charged again ${orderId}`, {
    store: new DynamoDBStore({ tableName, client }),
    name,
    waitForInProgressMillis: 60_000,
    now: () => stopped, // a wait on this clock never ends on its own
  });
  const stub = () => ({ executionContext: { durableExecutionArn: randomUUID() }, step: async () => undefined });
  const running = first('o-1', stub());
  await entered.promise;
  const duplicate = second('o-1', stub());
  duplicate.catch(() => undefined); // awaited below, once the first execution has completed
  await claimAnswered.promise;
  // The first execution completes after the duplicate's claim met its record, while a waiting duplicate would still poll.
  release.open();
  expect(await running).toBe('charged o-1');
  expect(await rejection(duplicate)).toMatchObject({ code: 'IN_PROGRESS' });
  client.destroy();
});
