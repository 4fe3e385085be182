/**
 * Lambda durable functions through AWS's local runner, against DynamoDB Local, in both forms a
 * user writes: `withDurableExecution(makeIdempotent(…))` and middy's durable execution mode with
 * the idempotency middleware. A durable execution replays its handler from the start on every
 * resume (completed steps return their checkpointed result without running), and may stay
 * suspended far longer than one invocation.
 */

import { randomUUID } from 'node:crypto';
import { type DurableContext, type DurableLambdaHandler, withDurableExecution } from '@aws/durable-execution-sdk-js';
import { LocalDurableTestRunner, type TestResult } from '@aws/durable-execution-sdk-js-testing';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { DynamoDBStore, idempotency, makeIdempotent } from '../../lib/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import {
  advanceRunnerClock,
  executionError,
  middyDurableMode,
  runExecution,
  runnerWait,
  startExecution,
  useDurableRunner,
  withTimeLeft,
} from '../support/durable.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { gate } from '../support/gate.js';

const { client, tableName, store } = useFreshTable({ prefix: 'durable' });
useDurableRunner();

const NAME = 'orders';
const CALLBACK = 'approval';
const FIFTEEN_MINUTES = 15 * 60_000;
/** The real monotonic clock, captured before the runner fakes `performance.now`. */
const realClock = performance.now.bind(performance);

interface Order {
  readonly orderId: string;
  /** Which execution this is, for the step log; not part of the key. */
  readonly run: string;
  /** Where the execution suspends between its two steps: a `ctx.wait` this long, or a `waitForCallback`. */
  readonly pause: { readonly seconds: number } | 'callback' | 'none';
  /** Throw this error after the first step. */
  readonly fail?: 'declined' | 'final';
}

/** What a step saw of the order's record while it ran. */
interface RecordView {
  readonly status: string | undefined;
  readonly owner: string | undefined;
}

interface Receipt {
  readonly orderId: string;
  readonly reserved: RecordView;
  readonly charged: RecordView;
}

class CardDeclined extends Error {
  override readonly name = 'CardDeclined';
  readonly code = 'DECLINED';
}

const record = async (orderId: string): Promise<RecordView> => {
  const item = await readItem(client, tableName, recordId(NAME, orderId));
  return { status: item?.status?.S, owner: item?.owner?.S };
};

/**
 * The durable handler's body: two steps that each look at the record, suspended in between on a
 * `ctx.wait` or a `waitForCallback`. `steps` logs every step that really runs (a replayed step
 * returns its checkpoint and logs nothing).
 */
function orderBody(steps: string[]) {
  return async (order: Order, ctx: DurableContext): Promise<Receipt> => {
    const reserved = await ctx.step('reserve', async () => {
      steps.push(`${order.run}:reserve`);
      return record(order.orderId);
    });
    if (typeof order.pause === 'object') await ctx.wait('cool-off', order.pause);
    if (order.pause === 'callback') await ctx.waitForCallback(CALLBACK, async () => undefined);
    if (order.fail === 'declined') throw new CardDeclined('card declined');
    if (order.fail === 'final') throw Object.assign(new CardDeclined('card declined for good'), { final: true });
    const charged = await ctx.step('charge', async () => {
      steps.push(`${order.run}:charge`);
      return record(order.orderId);
    });
    return { orderId: order.orderId, reserved, charged };
  };
}

type Body = ReturnType<typeof orderBody>;

const options = {
  store,
  name: NAME,
  key: (order: Order) => order.orderId,
  isFinalError: (error: unknown) => (error as { final?: unknown }).final === true,
};

/** The two ways to make a durable handler idempotent. */
const forms: ReadonlyArray<[string, (body: Body) => DurableLambdaHandler]> = [
  ['withDurableExecution(makeIdempotent(…))', (body) => withDurableExecution(makeIdempotent(body, options))],
  [
    'middy durable mode with idempotency()',
    // middy's types do not say that durable mode makes a durable handler.
    (body) =>
      middy<Order, Receipt, Error, DurableContext>(middyDurableMode).use(idempotency<Order, Receipt>(options)).handler(body) as unknown as DurableLambdaHandler,
  ],
];

const order = (orderId: string, run: string, pause: Order['pause'], fail?: Order['fail']): Order => ({ orderId, run, pause, ...(fail ? { fail } : {}) });

/** `errorType` and `errorMessage` name the code of an `IN_PROGRESS` rejection: the SDK drops every other field. */
const IN_PROGRESS_REJECTION = { errorType: expect.stringMatching(/^IdempotencyError/), errorMessage: expect.stringMatching(/\bIN_PROGRESS\b/) };

describe.each(forms)('%s', (_form, durableHandler) => {
  let steps: string[];
  let handler: DurableLambdaHandler;
  beforeEach(() => {
    steps = [];
    handler = durableHandler(orderBody(steps));
  });

  /** Runs a second execution with the key of a first one suspended on a callback, then lets the first finish. */
  async function secondWhileFirstWaits(orderId: string) {
    const first = startExecution<Receipt>(handler, order(orderId, 'first', 'callback'), CALLBACK);
    await first.suspended();
    const second = await runExecution(handler, order(orderId, 'second', 'none'));
    await first.resume('approved');
    await first.result;
    return second;
  }

  // A durable execution's record has an owner derived from the execution's identity
  // (ctx.executionContext.durableExecutionArn), so that a replay holds its own record.
  test('an execution suspended on ctx.wait between two steps holds its record across the replay: each step runs once, one owner throughout', async () => {
    const orderId = randomUUID();
    const execution = await runExecution<Receipt>(handler, order(orderId, 'first', runnerWait(30)));
    expect(execution.getInvocations().length).toBeGreaterThanOrEqual(2); // it did suspend and replay
    expect(execution.getStatus()).toBe('SUCCEEDED');
    const receipt = execution.getResult()!;
    expect(steps).toEqual(['first:reserve', 'first:charge']);
    expect(receipt.reserved.status).toBe('INPROGRESS');
    expect(receipt.charged).toEqual(receipt.reserved); // no takeover: the replay met its own record
    expect(await record(orderId)).toEqual({ status: 'COMPLETED', owner: receipt.reserved.owner });
  });

  test('another execution with the same key, started while the first waits on a callback, is rejected and runs no step', async () => {
    const orderId = randomUUID();
    const second = await secondWhileFirstWaits(orderId);
    expect(second.getStatus()).toBe('FAILED');
    expect(executionError(second).errorType).toBe('IdempotencyError');
    expect(steps.filter((step) => step.startsWith('second:'))).toEqual([]);
  });

  // The code leads the message: it survives the SDK's serialisation (errorType and errorMessage).
  // The runner gives every invocation of an execution (of every execution it runs) one `awsRequestId`:
  // a resume must not take the call its suspended invocation left behind for one of its own.
  test("AWS's local runner used as is (one awsRequestId for every invocation): an execution suspended inside the call resumes and completes, each step run once", async () => {
    const orderId = randomUUID();
    const runner = new LocalDurableTestRunner<Receipt>({ handlerFunction: handler });
    const execution = await runner.run({ payload: order(orderId, 'first', runnerWait(30)) });
    expect(execution.getInvocations().length).toBeGreaterThanOrEqual(2);
    expect(execution.getStatus()).toBe('SUCCEEDED');
    expect(steps).toEqual(['first:reserve', 'first:charge']);
    expect((await record(orderId)).status).toBe('COMPLETED');
  }, 10_000);

  test('the IN_PROGRESS rejection is recognisable from errorType and errorMessage alone', async () => {
    const orderId = randomUUID();
    const second = await secondWhileFirstWaits(orderId);
    expect(executionError(second)).toEqual(IN_PROGRESS_REJECTION);
  });

  // A durable execution's record has a lease that covers the execution (by default the
  // retention), not one invocation's deadline nor `leaseSeconds`.
  test("more than 15 minutes later on the runner's clock, a suspended execution still holds its key, then resumes and completes", async () => {
    const orderId = randomUUID();
    const first = startExecution<Receipt>(handler, order(orderId, 'first', 'callback'), CALLBACK);
    await first.suspended();
    const claimed = await record(orderId);
    expect(await advanceRunnerClock(FIFTEEN_MINUTES + 60_000)).toBeGreaterThan(FIFTEEN_MINUTES);
    const second = await runExecution(handler, order(orderId, 'second', 'none'));
    await first.resume('approved');
    const firstResult = await first.result;
    expect(second.getStatus()).toBe('FAILED');
    expect(executionError(second)).toEqual(IN_PROGRESS_REJECTION);
    expect(firstResult.getStatus()).toBe('SUCCEEDED');
    expect(steps).toEqual(['first:reserve', 'first:charge']);
    expect(await record(orderId)).toEqual({ status: 'COMPLETED', owner: claimed.owner });
  });

  test('once an execution completed, later executions replay its result without running a step, also 20 minutes later', async () => {
    const orderId = randomUUID();
    const first = await runExecution<Receipt>(handler, order(orderId, 'first', 'none'));
    expect(first.getStatus()).toBe('SUCCEEDED');
    const second = await runExecution<Receipt>(handler, order(orderId, 'second', 'none'));
    await advanceRunnerClock(20 * 60_000);
    const third = await runExecution<Receipt>(handler, order(orderId, 'third', 'none'));
    expect(steps).toEqual(['first:reserve', 'first:charge']);
    for (const later of [second, third]) {
      expect(later.getStatus()).toBe('SUCCEEDED');
      expect(later.getResult()).toEqual(first.getResult());
    }
  });

  test('a handler error fails the execution with its own errorType and errorMessage and frees the key for the next execution', async () => {
    const orderId = randomUUID();
    const failed = await runExecution(handler, order(orderId, 'first', 'none', 'declined'));
    expect(failed.getStatus()).toBe('FAILED');
    expect(executionError(failed)).toEqual({ errorType: 'CardDeclined', errorMessage: 'card declined' });
    expect(await record(orderId)).toEqual({ status: undefined, owner: undefined });
    const retried = await runExecution<Receipt>(handler, order(orderId, 'retry', 'none'));
    expect(retried.getStatus()).toBe('SUCCEEDED');
    expect(steps).toEqual(['first:reserve', 'retry:reserve', 'retry:charge']);
  });

  test('a stored final error replays to later executions as the same errorType and errorMessage, running no step', async () => {
    const orderId = randomUUID();
    const failed = await runExecution(handler, order(orderId, 'first', 'none', 'final'));
    const replayed = await runExecution(handler, order(orderId, 'second', 'none'));
    expect(executionError(failed)).toEqual({ errorType: 'CardDeclined', errorMessage: 'card declined for good' });
    expect(executionError(replayed)).toEqual(executionError(failed));
    expect(steps).toEqual(['first:reserve']);
  });
});

test('an execution with the key of a completed one but another payload fails with PAYLOAD_MISMATCH in its errorMessage, running no step', async () => {
  const steps: string[] = [];
  const handler = withDurableExecution(makeIdempotent(orderBody(steps), { ...options, fingerprint: (order) => order.pause }));
  const orderId = randomUUID();
  await runExecution(handler, order(orderId, 'first', 'none'));
  const mismatched = await runExecution(handler, order(orderId, 'second', runnerWait(1)));
  expect(executionError(mismatched)).toEqual({ errorType: 'IdempotencyError', errorMessage: expect.stringMatching(/^PAYLOAD_MISMATCH: /) });
  expect(steps).toEqual(['first:reserve', 'first:charge']);
});

test('an execution that resumes twice, once past its lease, counts one miss and no takeover; the next execution one replay', async () => {
  const events: string[] = [];
  const handler = withDurableExecution(
    makeIdempotent(
      async (order: Order, ctx: DurableContext) => {
        await ctx.wait('short', runnerWait(5));
        await ctx.wait('past-the-lease', runnerWait(120));
        return order.orderId;
      },
      { ...options, durableLeaseSeconds: 60, observability: (event) => void events.push(event) },
    ),
  );
  const orderId = randomUUID();
  const execution = await runExecution<string>(handler, order(orderId, 'first', 'none'));
  expect(execution.getInvocations()).toHaveLength(3);
  await runExecution(handler, order(orderId, 'second', 'none'));
  expect(events).toEqual(['miss', 'replay']);
});

/** A body whose `charge` step fails on its first attempt; the SDK retries it after a wait that suspends the execution. */
function flakyBody(steps: string[]) {
  return async (order: Order, ctx: DurableContext): Promise<Receipt> => {
    const reserved = await ctx.step('reserve', async () => {
      steps.push(`${order.run}:reserve`);
      return record(order.orderId);
    });
    const wait = runnerWait(30);
    const charged = await ctx.step(
      'charge',
      async () => {
        steps.push(`${order.run}:charge`);
        if (steps.filter((step) => step === `${order.run}:charge`).length === 1) throw new Error('card network timed out');
        return record(order.orderId);
      },
      { retryStrategy: (_error, attempt) => ({ shouldRetry: attempt < 2, delay: wait }) },
    );
    return { orderId: order.orderId, reserved, charged };
  };
}

describe.each(forms)('%s, with a step the SDK retries', (_form, durableHandler) => {
  test('the retry resumes in a new invocation that holds its own record; the execution completes once and later ones replay it', async () => {
    const steps: string[] = [];
    const handler = durableHandler(flakyBody(steps) as Body);
    const orderId = randomUUID();
    const execution = await runExecution<Receipt>(handler, order(orderId, 'first', 'none'));
    expect(execution.getStatus()).toBe('SUCCEEDED');
    expect(execution.getInvocations().length).toBeGreaterThanOrEqual(2);
    expect(steps).toEqual(['first:reserve', 'first:charge', 'first:charge']);
    const receipt = execution.getResult()!;
    expect(receipt.charged).toEqual(receipt.reserved); // the retry met its own INPROGRESS record
    const later = await runExecution<Receipt>(handler, order(orderId, 'second', 'none'));
    expect(later.getResult()).toEqual(receipt);
    expect(steps).toHaveLength(3);
  });
});

test("makeIdempotent inside a step, given the step's context, is an ordinary call: a step the SDK retries after a failure runs it again, a later execution replays it", async () => {
  const charges: string[] = [];
  const charge = makeIdempotent(
    async (orderId: string, step: { readonly attempt: number }) => {
      charges.push(`attempt ${step.attempt}`);
      if (step.attempt === 1) throw new Error('card network timed out');
      return `charged ${orderId}`;
    },
    { store, name: 'charge-in-step', leaseSeconds: 30 },
  );
  const handler = withDurableExecution(async (order: Order, ctx: DurableContext) => {
    const wait = runnerWait(5);
    return ctx.step('charge', (step) => charge(order.orderId, step), { retryStrategy: (_error, attempt) => ({ shouldRetry: attempt < 2, delay: wait }) });
  });
  const orderId = randomUUID();
  const first = await runExecution<string>(handler, order(orderId, 'first', 'none'));
  const second = await runExecution<string>(handler, order(orderId, 'second', 'none'));
  expect([first.getResult(), second.getResult()]).toEqual([`charged ${orderId}`, `charged ${orderId}`]);
  expect(charges).toEqual(['attempt 1', 'attempt 2']);
});

test("makeIdempotent inside a step, given no context: its lease is leaseSeconds, or, inside the durable handler's own idempotent call, the invocation's deadline", async () => {
  const leases: Record<string, number> = {};
  const inner = makeIdempotent(
    async (run: string) => {
      const item = await readItem(client, tableName, recordId('in-step', run));
      leases[run] = Number(item?.leaseUntil?.N) - Date.now();
      return run;
    },
    { store, name: 'in-step', leaseSeconds: 30 },
  );
  const step = async (run: string, ctx: DurableContext) => ctx.step('charge', () => inner(run));
  await runExecution(withDurableExecution(step), 'alone');
  await runExecution(withDurableExecution(makeIdempotent(step, { store, name: 'outer' })), 'nested');
  // 30 s from the claim, less the moments until the function reads its record: not less, not more.
  expect(leases.alone).toBeGreaterThan(25_000);
  expect(leases.alone).toBeLessThanOrEqual(30_000);
  // The local runner's invocations read 15 minutes left.
  expect(leases.nested).toBeGreaterThan(FIFTEEN_MINUTES - 60_000);
  expect(leases.nested).toBeLessThanOrEqual(FIFTEEN_MINUTES);
});

// A handler module is loaded before a test sets the runner up, so the wrapper is built before the
// runner installs its clock: its records must follow that clock all the same.
const builtEarly: string[] = [];
const earlyHandler = withDurableExecution(makeIdempotent(orderBody(builtEarly), { ...options, expiresAfterSeconds: 600 }));

test("a durable handler built before the runner's set-up keeps its retention on the runner's clock: once it has passed, the key runs again", async () => {
  const orderId = randomUUID();
  await runExecution(earlyHandler, order(orderId, 'first', 'none'));
  await runExecution(earlyHandler, order(orderId, 'replayed', 'none'));
  await advanceRunnerClock(11 * 60_000);
  const again = await runExecution(earlyHandler, order(orderId, 'again', 'none'));
  expect(again.getStatus()).toBe('SUCCEEDED');
  expect(builtEarly).toEqual(['first:reserve', 'first:charge', 'again:reserve', 'again:charge']);
});

test('middy durable mode: a suspended invocation runs neither after nor onError, and each resume runs before again with a new invocation', async () => {
  const hooks: string[] = [];
  const wait = runnerWait(30);
  const handler = middy<unknown, string, Error, DurableContext>(middyDurableMode)
    .use({
      before: (request) => void hooks.push(`before:${typeof (request.context as Partial<Context>).getRemainingTimeInMillis}`),
      after: () => void hooks.push('after'),
      onError: () => void hooks.push('onError'),
    })
    .handler(async (_event, ctx) => {
      await ctx.step('one', async () => undefined);
      await ctx.wait('cool-off', wait);
      return ctx.step('two', async () => 'done');
    }) as unknown as DurableLambdaHandler;
  const execution: TestResult<string> = await runExecution<string>(handler, {});
  expect(execution.getResult()).toBe('done');
  expect(execution.getInvocations()).toHaveLength(2);
  // The durable context carries the Lambda context's fields, but not its deadline.
  expect(hooks).toEqual(['before:undefined', 'before:undefined', 'after']);
});

// middy's early timeout fails a durable execution for good (the SDK records the handler's error),
// unlike Lambda's own timeout, after which the service replays the invocation.
test('middy durable mode: an execution failed by middy’s early timeout does not hold its key for the durable lease; the next execution runs', async () => {
  const steps: string[] = [];
  const stalled = gate<string>();
  const handler = middy<Order, string, Error, DurableContext>({ executionMode: middyDurableMode.executionMode, timeoutEarlyInMillis: 5 })
    .use(idempotency<Order, string>(options))
    .handler(async (order, ctx) =>
      ctx.step('charge', async () => {
        steps.push(`${order.run}:charge`);
        return order.run === 'first' ? stalled.promise : order.run;
      }),
    ) as unknown as DurableLambdaHandler;
  // An invocation 50 ms from its deadline (real time: middy's timer runs on the real clock).
  const nearDeadline: DurableLambdaHandler = (event, context) => handler(event, { ...context, getRemainingTimeInMillis: () => 50 });
  const orderId = randomUUID();
  const timedOut = await runExecution(nearDeadline, order(orderId, 'first', 'none'));
  stalled.open('late');
  expect(timedOut.getStatus()).toBe('FAILED');
  expect(executionError(timedOut).errorType).toBe('TimeoutError');
  expect(await record(orderId)).toEqual({ status: undefined, owner: undefined });
  const retried = await runExecution<string>(handler, order(orderId, 'retry', 'none'));
  expect(retried.getResult()).toBe('retry');
  expect(steps).toEqual(['first:charge', 'retry:charge']);
});

// Under Lambda Managed Instances one process runs many invocations at once: another execution
// started on the handler while this one runs does not make this one's early timeout a late one.
test('middy durable mode: an execution failed by middy’s early timeout while another execution runs beside it in the process does not hold its key', async () => {
  const steps: string[] = [];
  const entered = gate<void>();
  const stalled = gate<string>();
  const other = gate<string>();
  const handler = middy<Order, string, Error, DurableContext>({ executionMode: middyDurableMode.executionMode, timeoutEarlyInMillis: 5 })
    .use(idempotency<Order, string>(options))
    .handler(async (order, ctx) =>
      ctx.step('charge', async () => {
        steps.push(`${order.run}:charge`);
        if (order.run === 'first') {
          entered.open();
          return stalled.promise;
        }
        return order.run === 'other' ? other.promise : order.run;
      }),
    ) as unknown as DurableLambdaHandler;
  // The first invocation 1.5 s from its deadline (a stub: it reads as much throughout).
  const nearDeadline: DurableLambdaHandler = (event, context) => handler(event, { ...context, getRemainingTimeInMillis: () => 1_500 });
  const orderId = randomUUID();
  const first = runExecution(nearDeadline, order(orderId, 'first', 'none'));
  await entered.promise;
  // Another execution starts in the process while the first still runs, and runs until the first has failed.
  const beside = runExecution<string>(handler, order(randomUUID(), 'other', 'none'));
  const timedOut = await first;
  other.open('other');
  stalled.open('late');
  expect((await beside).getResult()).toBe('other');
  expect(timedOut.getStatus()).toBe('FAILED');
  expect(executionError(timedOut).errorType).toBe('TimeoutError');
  expect(await record(orderId)).toEqual({ status: undefined, owner: undefined });
  const retried = await runExecution<string>(handler, order(orderId, 'retry', 'none'));
  expect(retried.getResult()).toBe('retry');
  expect(steps).toEqual(['first:charge', 'other:charge', 'retry:charge']);
});

// middy arms its early timeout for every invocation and clears it when the handler settles, which
// a suspended durable invocation never does: the timer fires later, in another invocation of the
// process (or on a thaw past the deadline), while the execution is suspended and holds its key.
describe('middy durable mode: the early timeout of an invocation that had suspended', () => {
  /**
   * The handler whose late timeout opens `lateTimeout`: middy's TimeoutError by default (seen in
   * `onError`), or the `timeoutEarlyResponse` answer given (seen in `after`); either hook runs after idempotency()'s.
   */
  function suspending(steps: string[], lateTimeout: { open(): void }, timeoutEarlyResponse?: () => string) {
    const seen = () => void lateTimeout.open();
    return middy<Order, string, Error, DurableContext>({
      executionMode: middyDurableMode.executionMode,
      timeoutEarlyInMillis: 5,
      ...(timeoutEarlyResponse === undefined ? {} : { timeoutEarlyResponse }),
    })
      .use(timeoutEarlyResponse === undefined ? { onError: seen } : { after: seen })
      .use(idempotency<Order, string>(options))
      .handler(async (order, ctx) => {
        await ctx.step('charge', async () => void steps.push(`${order.run}:charge`));
        if (order.pause === 'callback') await ctx.waitForCallback(CALLBACK, async () => undefined);
        return order.run;
      }) as unknown as DurableLambdaHandler;
  }

  /** Starts an execution with `orderId` whose first invocation suspends on the callback, its context reading `remaining` ms left. */
  async function suspendedFirst(handler: DurableLambdaHandler, orderId: string, remaining: () => number) {
    let invocations = 0;
    const timed: DurableLambdaHandler = (event, context) => handler(event, invocations++ === 0 ? { ...context, getRemainingTimeInMillis: remaining } : context);
    const suspended = startExecution<string>(timed, order(orderId, 'first', 'callback'), CALLBACK);
    await suspended.suspended();
    return suspended;
  }

  /** The key is still held: another execution is rejected; the first resumes and completes, its step run once. */
  async function stillHeld(handler: DurableLambdaHandler, orderId: string, suspended: Awaited<ReturnType<typeof suspendedFirst>>, steps: string[]) {
    expect((await record(orderId)).status).toBe('INPROGRESS');
    const duplicate = await runExecution(handler, order(orderId, 'duplicate', 'none'));
    expect(executionError(duplicate)).toEqual(IN_PROGRESS_REJECTION);
    await suspended.resume('approved');
    expect((await suspended.result).getResult()).toBe('first');
    expect(steps.filter((step) => step === 'first:charge')).toHaveLength(1);
  }

  test('fired in a later invocation of the process: the key stays held for the suspended execution', async () => {
    const steps: string[] = [];
    const lateTimeout = gate<void>();
    const handler = suspending(steps, lateTimeout);
    const orderId = randomUUID();
    // A stub that reads 2 s left throughout: middy's timer fires once the other invocation below has started.
    const suspended = await suspendedFirst(handler, orderId, () => 2_000);
    expect((await runExecution<string>(handler, order(randomUUID(), 'other', 'none'))).getResult()).toBe('other');
    await lateTimeout.promise;
    await stillHeld(handler, orderId, suspended, steps);
  });

  // Lambda Managed Instances freeze no process between invocations: the timer fires before the
  // deadline, its context reading time left, with no other invocation of the handler started since.
  test('fired before the deadline in a process that goes on running (Managed Instances), no other invocation started: the key stays held for the suspended execution', async () => {
    const steps: string[] = [];
    const lateTimeout = gate<void>();
    const handler = suspending(steps, lateTimeout);
    const orderId = randomUUID();
    // A stub that reads 2 s left throughout: middy's timer fires 1,995 ms after the invocation starts, well after it suspends (up to about 0.8 s on a loaded machine).
    const suspended = await suspendedFirst(handler, orderId, () => 2_000);
    await lateTimeout.promise;
    await stillHeld(handler, orderId, suspended, steps);
  });

  test('fired on a thaw past the deadline (the process frozen meanwhile): the key stays held for the suspended execution', async () => {
    const steps: string[] = [];
    const lateTimeout = gate<void>();
    const handler = suspending(steps, lateTimeout);
    const orderId = randomUUID();
    // A context that runs down with real time, as Lambda's does, to 2 s after the invocation starts.
    let deadline = realClock() + 2_000;
    const suspended = await suspendedFirst(handler, orderId, () => Math.round(deadline - realClock()));
    // The invocation's process frozen until past its deadline, as Lambda freezes it once it answers:
    // when middy's timer fires, the context reads no time left.
    deadline = realClock() - 1;
    await lateTimeout.promise;
    await stillHeld(handler, orderId, suspended, steps);
  });

  // middy hands a `timeoutEarlyResponse` that returns a value to the `after` hooks as the handler's
  // response; fired late, it is no answer of the execution, which the SDK has suspended.
  test('a timeoutEarlyResponse that answers instead of throwing, fired once the invocation suspended: the answer is not stored, and the key stays held for the suspended execution', async () => {
    const steps: string[] = [];
    const lateTimeout = gate<void>();
    const handler = suspending(steps, lateTimeout, () => 'timed out');
    const orderId = randomUUID();
    // A stub that reads 2 s left throughout: middy's timer fires 1,995 ms after the invocation starts, well after it suspends.
    const suspended = await suspendedFirst(handler, orderId, () => 2_000);
    await lateTimeout.promise;
    await stillHeld(handler, orderId, suspended, steps);
  });
});

test('an execution suspended past its durable lease and its retention, with no other meanwhile, holds its key again on resuming: each step runs once', async () => {
  const steps: string[] = [];
  const handler = withDurableExecution(makeIdempotent(orderBody(steps), { ...options, durableLeaseSeconds: 60, expiresAfterSeconds: 60 }));
  const orderId = randomUUID();
  const first = startExecution<Receipt>(handler, order(orderId, 'first', 'callback'), CALLBACK);
  await first.suspended();
  await advanceRunnerClock(2 * 60_000);
  await first.resume('approved');
  const resumed = await first.result;
  expect(resumed.getStatus()).toBe('SUCCEEDED');
  expect(steps).toEqual(['first:reserve', 'first:charge']);
  expect(resumed.getResult()!.charged).toEqual(resumed.getResult()!.reserved);
  expect(await record(orderId)).toEqual({ status: 'COMPLETED', owner: resumed.getResult()!.reserved.owner });
});

// The library cannot tell the body from a step's code (the SDK gives no sign): a call given no
// context is an ordinary call, with an owner of its own, even when its function suspends the execution.
test("a call in the handler body given no context, whose function suspends the execution: the replay meets its record as another attempt's, IN_PROGRESS, and the execution fails", async () => {
  const runs: string[] = [];
  const innerName = `no-context-${randomUUID()}`;
  const body = async (order: { orderId: string; wait: { seconds: number } }, ctx: DurableContext) => {
    const settle = makeIdempotent(
      async (orderId: string) => {
        runs.push(orderId);
        await ctx.wait('settle', order.wait);
        return `settled ${orderId}`;
      },
      { store, name: innerName },
    );
    return settle(order.orderId);
  };
  const handler = withDurableExecution(makeIdempotent(body, { store, name: `outer-${randomUUID()}`, key: (o) => o.orderId }));
  const execution = await runExecution(handler, { orderId: randomUUID(), wait: runnerWait(30) });
  expect(execution.getStatus()).toBe('FAILED');
  expect(executionError(execution)).toEqual(IN_PROGRESS_REJECTION);
  expect(runs).toHaveLength(1);
});

// The body runs again on every replay, so a call made in it is made again on each resume, until the
// execution ends: its durable lease, which covers the execution, must keep its stored outcome too.
test('a call given the durable context in the handler body, suspended after it past its retention but within its durable lease: each replay replays its result, its function runs once', async () => {
  const charges: string[] = [];
  const charge = makeIdempotent(
    async (orderId: string, _ctx: DurableContext) => {
      charges.push(orderId);
      return `charged ${orderId}`;
    },
    { store, name: `body-charge-${randomUUID()}`, expiresAfterSeconds: 60, durableLeaseSeconds: 3_600 },
  );
  const handler = withDurableExecution(async (orderId: string, ctx: DurableContext) => {
    const charged = await charge(orderId, ctx);
    await ctx.waitForCallback(CALLBACK, async () => undefined);
    return [charged, await charge(orderId, ctx)];
  });
  const orderId = randomUUID();
  const first = startExecution<string[]>(handler, orderId, CALLBACK);
  await first.suspended();
  await advanceRunnerClock(2 * 60_000);
  await first.resume('approved');
  const resumed = await first.result;
  expect(resumed.getStatus()).toBe('SUCCEEDED');
  expect(resumed.getResult()).toEqual([`charged ${orderId}`, `charged ${orderId}`]);
  expect(charges).toEqual([orderId]);
});

/** An order execution (invocations of 30 s) suspended on its callback until a minute past its 60 s durable lease, and the steps its executions run. */
async function suspendedPastLease() {
  const steps: string[] = [];
  const handler = withTimeLeft(withDurableExecution(makeIdempotent(orderBody(steps), { ...options, durableLeaseSeconds: 60 })), 30_000);
  const orderId = randomUUID();
  const first = startExecution<Receipt>(handler, order(orderId, 'first', 'callback'), CALLBACK);
  await first.suspended();
  await advanceRunnerClock(2 * 60_000);
  return { steps, handler, orderId, first };
}

test('an execution suspended past its durable lease loses the key: another execution runs, and the first resumes to that execution’s stored result', async () => {
  const { steps, handler, orderId, first } = await suspendedPastLease();
  const second = await runExecution<Receipt>(handler, order(orderId, 'second', 'none'));
  await first.resume('approved');
  const resumed = await first.result;
  expect(second.getStatus()).toBe('SUCCEEDED');
  expect(resumed.getResult()).toEqual(second.getResult());
  expect(steps).toEqual(['first:reserve', 'second:reserve', 'second:charge']);
});

test('an execution suspended past its durable lease, while another execution with the key runs (suspended itself), resumes to IN_PROGRESS, running no step; the other completes', async () => {
  const { steps, handler, orderId, first } = await suspendedPastLease();
  const second = startExecution<Receipt>(handler, order(orderId, 'second', 'callback'), CALLBACK);
  await second.suspended();
  await first.resume('approved');
  const resumed = await first.result;
  expect(resumed.getStatus()).toBe('FAILED');
  expect(executionError(resumed)).toMatchObject(IN_PROGRESS_REJECTION);
  await second.resume('approved');
  expect((await second.result).getStatus()).toBe('SUCCEEDED');
  expect(steps).toEqual(['first:reserve', 'second:reserve', 'second:charge']);
});

// A durable lease shorter than the invocation that writes it would end while that invocation still
// runs its steps: another execution with the key would take the record over and run them beside it.
test('a durableLeaseSeconds shorter than the invocation: the lease lasts until the invocation’s deadline, so another execution with the key meanwhile gets IN_PROGRESS and charges nothing', async () => {
  const charges: string[] = [];
  const charging = gate<void>();
  const charged = gate<void>();
  let lateBy = 0;
  const handler = withDurableExecution(
    makeIdempotent(
      async (order: { orderId: string; run: string }, ctx: DurableContext) =>
        ctx.step('charge', async () => {
          charges.push(order.run);
          if (order.run === 'first') {
            charging.open();
            await charged.promise;
          }
          return `charged by ${order.run}`;
        }),
      // The clock moves past the 1 s lease while the first invocation still runs its step.
      { store, name: `short-lease-${randomUUID()}`, key: (order) => order.orderId, durableLeaseSeconds: 1, now: () => Date.now() + lateBy },
    ),
  );
  const orderId = randomUUID();
  const first = startExecution<string>(handler, { orderId, run: 'first' });
  await charging.promise;
  lateBy = 5_000;
  const duplicate = await runExecution(handler, { orderId, run: 'duplicate' });
  charged.open();
  const done = await first.result;
  expect(executionError(duplicate)).toMatchObject(IN_PROGRESS_REJECTION);
  expect(done.getResult()).toBe('charged by first');
  expect(charges).toEqual(['first']);
});

describe('two concurrent calls with one key inside one execution, each given a durable context', () => {
  /** A wrapped charge that logs every run and, for the first, waits on `release` (with `suspend`, on a `ctx.wait` first). */
  function chargeOnce(suspend: boolean, singleFlight = true) {
    const charges: string[] = [];
    const release = gate<void>();
    // The claims sent: a call that follows the first in process sends none, whenever the first ends.
    let claims = 0;
    const counting: typeof store = Object.create(store, { claim: { value: (request: Parameters<typeof store.claim>[0]) => (claims++, store.claim(request)) } });
    const charge = makeIdempotent(
      async (orderId: string, ctx: DurableContext) => {
        charges.push(orderId);
        if (suspend) await ctx.wait('settle', runnerWait(30));
        if (charges.length === 1) await release.promise;
        return `charged ${orderId} (${charges.length})`;
      },
      { store: counting, name: `charge-${randomUUID()}`, singleFlight },
    );
    return { charges, release, charge, claims: () => claims };
  }

  type Charge = ReturnType<typeof chargeOnce>['charge'];
  const together = (charge: Charge, orderId: string, ctx: DurableContext): Promise<string[]> => Promise.all([charge(orderId, ctx), charge(orderId, ctx)]);
  const inParallel = async (charge: Charge, orderId: string, ctx: DurableContext): Promise<string[]> =>
    (await ctx.parallel('charge-twice', [(child) => charge(orderId, child), (child) => charge(orderId, child)])).getResults();

  test.each([
    ['Promise.all', together, true],
    ['Promise.all, with singleFlight: false', together, false],
    ['ctx.parallel branches, each given its own child context', inParallel, true],
  ])('%s: the second waits for the first and gets its result; the function runs once', async (_how, both, singleFlight) => {
    const { charges, release, charge, claims } = chargeOnce(false, singleFlight);
    const handler = withDurableExecution(async (orderId: string, ctx: DurableContext) => {
      const results = both(charge, orderId, ctx);
      release.open();
      return results;
    });
    const orderId = randomUUID();
    const execution = await runExecution<string[]>(handler, orderId);
    expect(execution.getResult()).toEqual([`charged ${orderId} (1)`, `charged ${orderId} (1)`]);
    expect(charges).toEqual([orderId]);
    expect(claims()).toBe(1);
  });

  test("a second call made after the first's durable lease has passed (on the runner's clock) still waits for the first: the function runs once", async () => {
    const charges: string[] = [];
    const release = gate<void>();
    const started = gate<void>();
    const charge = makeIdempotent(
      async (orderId: string, _ctx: DurableContext) => {
        charges.push(orderId);
        started.open();
        await release.promise;
        return `charged ${orderId} (${charges.length})`;
      },
      { store, name: `charge-${randomUUID()}`, durableLeaseSeconds: 60 },
    );
    const moved = gate<void>();
    // The second call starts once the clock has moved past the first's lease.
    const handler = withDurableExecution(async (orderId: string, ctx: DurableContext) => {
      const first = charge(orderId, ctx);
      await moved.promise;
      const second = charge(orderId, ctx);
      release.open();
      return Promise.all([first, second]);
    });
    const orderId = randomUUID();
    const running = runExecution<string[]>(handler, orderId);
    await started.promise;
    await advanceRunnerClock(2 * 60_000);
    moved.open();
    const execution = await running;
    expect(execution.getResult()).toEqual([`charged ${orderId} (1)`, `charged ${orderId} (1)`]);
    expect(charges).toEqual([orderId]);
  });

  test('among more than a thousand other calls running at once in the invocation (ctx.map over a large batch, say), the second still waits for the first: the function runs once', async () => {
    const charges: string[] = [];
    // The store in memory: a thousand and two calls at once, each claiming and completing its record.
    const charge = makeIdempotent(
      async (orderId: string, _ctx: DurableContext) => {
        charges.push(orderId);
        return `charged ${orderId} (${charges.length})`;
      },
      { store: new InMemoryStore(), name: 'charge-among-many' },
    );
    const others = Array.from({ length: 1000 }, () => randomUUID());
    const handler = withDurableExecution(async (orderId: string, ctx: DurableContext) => {
      const all = await Promise.all([charge(orderId, ctx), ...others.map((other) => charge(other, ctx)), charge(orderId, ctx)]);
      return [all[0], all.at(-1)];
    });
    const orderId = randomUUID();
    const execution = await runExecution<string[]>(handler, orderId);
    expect(execution.getStatus()).toBe('SUCCEEDED');
    expect(charges.filter((charged) => charged === orderId)).toEqual([orderId]);
    const [first, second] = execution.getResult()!;
    expect(second).toBe(first);
  });

  test('two wrappers of one function (one name and store, each made where it is called, as in each item of a ctx.map): the second meets the first holding the record, IN_PROGRESS, as outside durable executions; the function runs once', async () => {
    const charges: string[] = [];
    const release = gate<void>();
    const started = gate<void>();
    let claims = 0;
    const counting: typeof store = Object.create(store, { claim: { value: (request: Parameters<typeof store.claim>[0]) => (claims++, store.claim(request)) } });
    const name = `charge-${randomUUID()}`;
    const charge = async (orderId: string, _ctx: DurableContext): Promise<string> => {
      charges.push(orderId);
      started.open();
      // The first holds the record until the second has started; a second run lets it go on.
      if (charges.length === 1) await release.promise;
      else release.open();
      return `charged ${orderId} (${charges.length})`;
    };
    const chargeOnce = () => makeIdempotent(charge, { store: counting, name });
    const handler = withDurableExecution(async (orderId: string, ctx: DurableContext) => {
      const first = chargeOnce()(orderId, ctx);
      await started.promise;
      const second = chargeOnce()(orderId, ctx);
      // A call that sends no claim follows the first in process: nothing else would let the first go on.
      if (claims === 1) release.open();
      const settled = await Promise.allSettled([first, second.finally(() => release.open())]);
      return settled.map((result) => (result.status === 'fulfilled' ? result.value : String((result.reason as Error).message).slice(0, 11)));
    });
    const orderId = randomUUID();
    const execution = await runExecution<string[]>(handler, orderId);
    expect(charges).toEqual([orderId]);
    expect(execution.getResult()).toEqual([`charged ${orderId} (1)`, 'IN_PROGRESS']);
  });

  /** Wrappers sharing the suite's store, or each made with a store object of its own on the table. */
  const STORES = [
    ['one store', false],
    ['each with a store of its own on the table', true],
  ] as const;
  const storeOf = (ownStore: boolean) => (ownStore ? new DynamoDBStore({ tableName, client }) : store);

  test.each(STORES)(
    'two wrappers of one function started at once (the items of a ctx.map, %s): the second waits for the first claim to be answered, meets it holding the record, IN_PROGRESS; the function runs once',
    async (_stores, ownStore) => {
      const charges: string[] = [];
      const name = `charge-${randomUUID()}`;
      const charge = async (orderId: string, _ctx: DurableContext): Promise<string> => {
        charges.push(orderId);
        // Each run lasts past the other's claim: were both claims to run their functions, both would.
        await new Promise((resolve) => setImmediate(resolve));
        return `charged ${orderId} (${charges.length})`;
      };
      const handler = withDurableExecution(async (orderId: string, ctx: DurableContext) => {
        // A wrapper made in each item, as where it is called: both claims are sent at once.
        const batch = await ctx.map('charge', [orderId, orderId], (child, item) =>
          makeIdempotent(charge, { store: storeOf(ownStore), name })(item, child).catch((error: Error) => error.message.slice(0, 11)),
        );
        return batch.getResults();
      });
      const orderId = randomUUID();
      const execution = await runExecution<string[]>(handler, orderId);
      expect(charges).toEqual([orderId]);
      expect(execution.getResult()).toEqual([`charged ${orderId} (1)`, 'IN_PROGRESS']);
    },
  );

  test.each(STORES)(
    'two wrappers of one function called one after the other in one invocation (%s): the second meets the first one’s record as a duplicate, a replay counted as one',
    async (_stores, ownStore) => {
      const events: string[] = [];
      const name = `charge-${randomUUID()}`;
      const charge = () =>
        makeIdempotent(async (orderId: string, _ctx: DurableContext) => `charged ${orderId}`, {
          store: storeOf(ownStore),
          name,
          observability: (event) => void events.push(event),
        });
      const handler = withDurableExecution(async (orderId: string, ctx: DurableContext) => [await charge()(orderId, ctx), await charge()(orderId, ctx)]);
      const orderId = randomUUID();
      const execution = await runExecution<string[]>(handler, orderId);
      expect(execution.getResult()).toEqual([`charged ${orderId}`, `charged ${orderId}`]);
      expect(events).toEqual(['miss', 'replay']);
    },
  );

  test('the first suspends on ctx.wait while the second waits: on resuming, in a new invocation, both get the first’s result', async () => {
    const { charges, release, charge } = chargeOnce(true);
    release.open();
    const handler = withDurableExecution((orderId: string, ctx: DurableContext) => together(charge, orderId, ctx));
    const orderId = randomUUID();
    const execution = await runExecution<string[]>(handler, orderId);
    expect(execution.getInvocations().length).toBeGreaterThan(1);
    expect(execution.getResult()).toEqual([`charged ${orderId} (2)`, `charged ${orderId} (2)`]);
    // The function's body before the wait runs again on the replay, as every durable body does, once per invocation.
    expect(charges).toEqual([orderId, orderId]);
  });
});

describe.each(forms)('%s, a handler that returns undefined', (_form, durableHandler) => {
  test('later executions replay undefined without running a step', async () => {
    const steps: string[] = [];
    const handler = durableHandler((async (order: Order, ctx: DurableContext) => {
      await ctx.step('charge', async () => void steps.push(`${order.run}:charge`));
      return undefined;
    }) as unknown as Body);
    const orderId = randomUUID();
    const first = await runExecution(handler, order(orderId, 'first', 'none'));
    const second = await runExecution(handler, order(orderId, 'second', 'none'));
    expect([first.getStatus(), second.getStatus()]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect([first.getResult(), second.getResult()]).toEqual([undefined, undefined]);
    expect(steps).toEqual(['first:charge']);
    expect((await record(orderId)).status).toBe('COMPLETED');
  });
});

describe('middy durable mode with other middlewares', () => {
  const durableMiddy = (use: (chain: ReturnType<typeof middy<Order, string, Error, DurableContext>>) => unknown, steps: string[]) => {
    const chain = middy<Order, string, Error, DurableContext>(middyDurableMode);
    use(chain);
    return chain.handler(async (order, ctx) => {
      await ctx.step('charge', async () => void steps.push(`${order.run}:charge`));
      return order.run;
    }) as unknown as DurableLambdaHandler;
  };

  test('a middleware after idempotency() whose before throws: the execution fails with its error and the key is released (the handler never ran)', async () => {
    const steps: string[] = [];
    let refuse = true;
    const handler = durableMiddy(
      (chain) =>
        chain.use(idempotency<Order, string>(options)).use({
          before: () => {
            if (refuse) throw new CardDeclined('refused before the handler');
          },
        }),
      steps,
    );
    const orderId = randomUUID();
    const failed = await runExecution(handler, order(orderId, 'first', 'none'));
    expect(executionError(failed)).toEqual({ errorType: 'CardDeclined', errorMessage: 'refused before the handler' });
    expect(await record(orderId)).toEqual({ status: undefined, owner: undefined });
    refuse = false;
    const retried = await runExecution<string>(handler, order(orderId, 'retry', 'none'));
    expect(retried.getResult()).toBe('retry');
    expect(steps).toEqual(['retry:charge']);
  });

  test("a middleware after idempotency() that answers early on a replay (a token expired while the execution was suspended): the answer is the execution's result, stored; the key is not released, so a retry charges nothing", async () => {
    const steps: string[] = [];
    let expired = false;
    const handler = middy<Order, string, Error, DurableContext>(middyDurableMode)
      .use(idempotency<Order, string>(options))
      .use({ before: () => (expired ? 'token expired' : undefined) })
      .handler(async (order, ctx) => {
        await ctx.step('charge', async () => void steps.push(`${order.run}:charge`));
        expired = true;
        if (typeof order.pause === 'object') await ctx.wait('cool-off', order.pause);
        await ctx.step('ship', async () => void steps.push(`${order.run}:ship`));
        return order.run;
      }) as unknown as DurableLambdaHandler;
    const orderId = randomUUID();
    const first = await runExecution<string>(handler, order(orderId, 'first', runnerWait(30)));
    expect(first.getInvocations().length).toBeGreaterThanOrEqual(2);
    expect(first.getResult()).toBe('token expired');
    expect(await record(orderId)).toEqual({ status: 'COMPLETED', owner: expect.any(String) });
    expired = false;
    const retried = await runExecution<string>(handler, order(orderId, 'retry', runnerWait(30)));
    expect(retried.getResult()).toBe('token expired');
    expect(steps).toEqual(['first:charge']);
  });

  // As docs/middleware-order.md says: idempotency() first, so that it stores the response other middlewares made.
  test('a middleware after idempotency() that reshapes the response: the reshaped response is stored, and later executions replay it', async () => {
    const steps: string[] = [];
    const handler = durableMiddy(
      (chain) =>
        chain.use(idempotency<Order, string>(options)).use({
          after: (request) => {
            request.response = `[${request.response}]`;
          },
        }),
      steps,
    );
    const orderId = randomUUID();
    const first = await runExecution<string>(handler, order(orderId, 'first', 'none'));
    const second = await runExecution<string>(handler, order(orderId, 'second', 'none'));
    expect([first.getResult(), second.getResult()]).toEqual(['[first]', '[first]']);
    expect(steps).toEqual(['first:charge']);
  });
});

// What a replay reads of its Lambda context's time left is not the library's: a value that sets no
// deadline (none left, NaN, Infinity, a getter that throws, text) leaves the call without one, and
// 1 ms left still gives each store request its least time.
test.each([
  ['1', () => 1],
  ['0', () => 0],
  ['-5', () => -5],
  ['NaN', () => Number.NaN],
  ['Infinity', () => Number.POSITIVE_INFINITY],
  ['a string', () => '900000' as unknown as number],
  [
    'a getter that throws',
    (): number => {
      throw new Error('no deadline');
    },
  ],
])('a replay whose context reads %s ms left resumes on its own record: each step runs once', async (_what, remaining) => {
  const steps: string[] = [];
  const handler = withDurableExecution(makeIdempotent(orderBody(steps), options));
  let invocations = 0;
  const odd: DurableLambdaHandler = (event, context) => handler(event, invocations++ === 0 ? context : { ...context, getRemainingTimeInMillis: remaining });
  const orderId = randomUUID();
  const execution = await runExecution<Receipt>(odd, order(orderId, 'first', runnerWait(30)));
  expect(execution.getStatus()).toBe('SUCCEEDED');
  expect(invocations).toBeGreaterThanOrEqual(2);
  expect(steps).toEqual(['first:reserve', 'first:charge']);
  expect(await record(orderId)).toEqual({ status: 'COMPLETED', owner: execution.getResult()!.reserved.owner });
});

// Outside durable executions, such a nested call meets the enclosing call's record as another
// attempt's (IN_PROGRESS). A durable execution's calls share one owner, so the nested call took the
// record for its own, and the record completed with the nested call's result: later executions
// got that instead of the handler's.
describe.each(forms)('%s, with a call nested in it on the same record (same name and key)', (_form, durableHandler) => {
  test("the nested call meets the enclosing call's record: IN_PROGRESS, never a record completed with the nested call's result", async () => {
    const charges: string[] = [];
    const charge = makeIdempotent(
      async (order: Order, ctx: DurableContext) => ctx.step('charge', async () => (charges.push(order.run), `charged by ${order.run}`)),
      options,
    );
    const handler = durableHandler((async (order: Order, ctx: DurableContext) => ({ charge: await charge(order, ctx) })) as unknown as Body);
    const orderId = randomUUID();
    const first = await runExecution(handler, order(orderId, 'first', 'none'));
    expect(executionError(first)).toEqual(IN_PROGRESS_REJECTION);
    expect(charges).toEqual([]);
    expect(await record(orderId)).toEqual({ status: undefined, owner: undefined });
  });
});
