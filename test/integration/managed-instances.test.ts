/**
 * Lambda Managed Instances run many invocations of a function at once in one process. Here one
 * middleware instance and one wrapper instance each take many concurrent invocations with mixed
 * keys, all dispatched from the same async context as a runtime's loop dispatches them, each with
 * its own Lambda context and deadline, each adding `transaction()` writes while the others are in
 * flight. Nothing of one invocation may reach another: context, deadline (the lease), transaction
 * scope, attempt, result.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { IdempotencyError, idempotency, makeIdempotent, transaction } from '../../lib/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { flush, type Gate, gate, Turnstile } from '../support/gate.js';
import { lambdaContext } from '../support/lambda.js';

const T0 = 1_700_000_000_000;
const { client, tableName, store } = useFreshTable({ prefix: 'managed' });

interface Order {
  readonly orderId: string;
  /** Invocations of keys marked `declined` throw after adding their writes. */
  readonly declined?: boolean;
}

/** What an execution saw of its own invocation, returned as its result. */
interface Seen {
  readonly orderId: string;
  readonly requestId: string;
  readonly remainingMillis: number;
  readonly transactionKey: string;
  /** `transaction()` was the same object before and after the other invocations ran. */
  readonly sameTransaction: boolean;
}

type Invoke = (order: Order, context: Context) => Promise<Seen>;

const effectId = (name: string, orderId: string): string => `effect#${name}#${orderId}`;

/**
 * The function under test: it takes its transaction, waits at the turnstile until the test lets
 * it go on (so every execution is in flight at once), then writes its effect through
 * `transaction()` and reports what it saw.
 */
function orderFunction(name: string, turnstile: Turnstile, entered: string[]) {
  return async (order: Order, context: Context): Promise<Seen> => {
    entered.push(context.awsRequestId);
    const before = transaction();
    await turnstile.enter();
    transaction().put({ TableName: tableName, Item: { id: effectId(name, order.orderId), requestId: context.awsRequestId } });
    if (order.declined) throw new Error(`declined ${order.orderId}`);
    return {
      orderId: order.orderId,
      requestId: context.awsRequestId,
      remainingMillis: context.getRemainingTimeInMillis(),
      transactionKey: transaction().key,
      sameTransaction: before === transaction(),
    };
  };
}

const options = (name: string) => ({ store, name, key: (order: Order) => order.orderId, transactions: true, now: () => T0 });

const entryPoints: ReadonlyArray<[string, (name: string, fn: Invoke) => Invoke]> = [
  ['middleware', (name, fn) => middy(fn).use(idempotency<Order, Seen>(options(name)))],
  ['wrapper', (name, fn) => makeIdempotent(fn, options(name))],
];

interface Invocation {
  readonly order: Order;
  readonly context: Context;
}

/**
 * `copies` invocations of each of `keys` keys, interleaved, each with its own deadline: a minute or
 * more, so that a duplicate waiting for its key's execution has time to, however loaded the machine.
 */
function invocations(name: string, keys: number, copies: number, declined: (key: number) => boolean = () => false): Invocation[] {
  return Array.from({ length: keys * copies }, (_, i) => ({
    order: { orderId: `o-${i % keys}`, ...(declined(i % keys) ? { declined: true } : {}) },
    context: lambdaContext(name, 60_000 + i * 1_000),
  }));
}

/** Dispatches every invocation at once, waits until `executions` are inside the function, then lets them go on in reverse order. */
async function dispatch(invoke: Invoke, list: readonly Invocation[], turnstile: Turnstile, executions: number) {
  const calls = list.map(({ order, context }) =>
    invoke(order, context).then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ),
  );
  const arrivals: Gate[] = [];
  for (let i = 0; i < executions; i++) arrivals.push(await turnstile.next());
  return {
    calls,
    release: () => {
      for (const arrival of arrivals.reverse()) arrival.open();
    },
  };
}

describe.each(entryPoints)('%s', (entryPoint, make) => {
  test('48 concurrent invocations of 12 keys: one execution per key, each with its own context, lease, transaction and result, which its duplicates get', async () => {
    const name = `mi-${entryPoint}`;
    const turnstile = new Turnstile();
    const entered: string[] = [];
    const invoke = make(name, orderFunction(name, turnstile, entered));
    const list = invocations(name, 12, 4);
    const deadlineOf = new Map(list.map(({ context }) => [context.awsRequestId, context.getRemainingTimeInMillis()]));
    const orderOf = new Map(list.map(({ order, context }) => [context.awsRequestId, order.orderId]));

    const { calls, release } = await dispatch(invoke, list, turnstile, 12);
    // While all twelve are held: each record's lease is the deadline of the invocation running it.
    expect(new Set(entered.map((requestId) => orderOf.get(requestId))).size).toBe(12);
    for (const requestId of entered) {
      const item = await readItem(client, tableName, recordId(name, orderOf.get(requestId)));
      expect(item).toMatchObject({ status: { S: 'INPROGRESS' }, leaseUntil: { N: String(T0 + deadlineOf.get(requestId)!) } });
    }
    release();
    const outcomes = await Promise.all(calls);

    expect(turnstile.count).toBe(12);
    const executed = new Map<string, Seen>();
    for (const [i, outcome] of outcomes.entries()) {
      const { order, context } = list[i]!;
      // A duplicate follows the execution of its key in this process (single-flight): never IN_PROGRESS, never another key's outcome.
      if (!('value' in outcome)) throw outcome.error;
      expect(outcome.value.orderId).toBe(order.orderId);
      if (outcome.value.requestId === context.awsRequestId) {
        expect(outcome.value).toEqual({
          orderId: order.orderId,
          requestId: context.awsRequestId,
          remainingMillis: context.getRemainingTimeInMillis(),
          transactionKey: recordId(name, order.orderId),
          sameTransaction: true,
        });
        expect(executed.has(order.orderId)).toBe(false);
        executed.set(order.orderId, outcome.value);
      }
    }
    expect(new Set(executed.values()).size).toBe(12);
    // Each duplicate got the outcome of its key's one execution.
    for (const [i, outcome] of outcomes.entries()) expect(outcome).toEqual({ value: executed.get(list[i]!.order.orderId) });
    expect([...executed.values()].map((seen) => seen.requestId).sort()).toEqual([...entered].sort());
    for (const [orderId, seen] of executed) {
      expect(await readItem(client, tableName, effectId(name, orderId))).toEqual({ id: { S: effectId(name, orderId) }, requestId: { S: seen.requestId } });
      const item = await readItem(client, tableName, recordId(name, orderId));
      expect(item?.status).toEqual({ S: 'COMPLETED' });
      expect(JSON.parse(item!.response!.S!)).toEqual(seen);
    }
    // Replays after the fact, also concurrent: each key's own result.
    const replays = await Promise.all(list.map(({ order, context }) => invoke(order, context)));
    for (const [i, replay] of replays.entries()) expect(replay).toEqual(executed.get(list[i]!.order.orderId));
    expect(turnstile.count).toBe(12);
  });

  test('20 concurrent invocations, half of them failing: each failure releases only its own key and discards only its own writes', async () => {
    const name = `mi-fail-${entryPoint}`;
    const turnstile = new Turnstile();
    const entered: string[] = [];
    const invoke = make(name, orderFunction(name, turnstile, entered));
    const list = invocations(name, 20, 1, (key) => key % 2 === 1);
    const { calls, release } = await dispatch(invoke, list, turnstile, 20);
    release();
    const outcomes = await Promise.all(calls);

    for (const [i, outcome] of outcomes.entries()) {
      const { order, context } = list[i]!;
      const effect = await readItem(client, tableName, effectId(name, order.orderId));
      const item = await readItem(client, tableName, recordId(name, order.orderId));
      if (order.declined) {
        expect(outcome).toEqual({ error: new Error(`declined ${order.orderId}`) });
        expect(effect).toBeUndefined();
        expect(item).toBeUndefined();
      } else {
        expect(outcome).toEqual({ value: expect.objectContaining({ orderId: order.orderId, requestId: context.awsRequestId, sameTransaction: true }) });
        expect(effect?.requestId).toEqual({ S: context.awsRequestId });
        expect(item?.status).toEqual({ S: 'COMPLETED' });
      }
    }
  });
});

test('a runtime loop that dispatches each invocation while the previous one still runs keeps no ended invocation reachable', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const turnstile = new Turnstile();
  const scopes: WeakRef<object>[] = [];
  // The in-memory store: a pooled socket keeps the async context it was opened in, and with it a call.
  const handler = middy(async (order: Order) => {
    scopes.push(new WeakRef(transaction()));
    await turnstile.enter();
    return order.orderId;
  }).use(idempotency<Order, string>({ store: new InMemoryStore(), key: (order) => order.orderId }));
  // As a runtime loop does: every dispatch from its one async context, each overlapping the one before.
  const loop = async () => {
    // First a turn of its own: what awaits the loop keeps the context it was called in.
    await Promise.resolve();
    let running = handler({ orderId: 'loop-0' }, lambdaContext('mi-loop'));
    let inside = await turnstile.next();
    for (let i = 1; i <= 5; i++) {
      const next = handler({ orderId: `loop-${i}` }, lambdaContext('mi-loop'));
      const nextInside = await turnstile.next();
      inside.open();
      await running;
      [running, inside] = [next, nextInside];
    }
    inside.open();
    await running;
    // The loop goes on (waiting for the next invocation): what its context holds stays reachable.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    return scopes.map((scope, i) => (scope.deref() === undefined ? -1 : i)).filter((i) => i >= 0);
  };
  // Started from a job of its own, so that the loop's context is not this test's. The last two
  // invocations may stay reachable from the loop's own variables; none before them.
  expect((await Promise.resolve().then(loop)).filter((i) => i < 4)).toEqual([]);
});

test("invocations that follow one claim the store failed each get an error of their own: what one invocation's onError sets on it never reaches another's", async () => {
  const memory = new InMemoryStore();
  const claimed = gate();
  const answer = gate();
  const failing = {
    expiresAfterSeconds: memory.expiresAfterSeconds,
    claim: async () => {
      claimed.open();
      await answer.promise;
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    },
    complete: memory.complete.bind(memory),
    release: memory.release.bind(memory),
  };
  let runs = 0;
  const handler = middy(async (order: Order) => {
    runs++;
    return order.orderId;
  })
    .use(idempotency<Order, string>({ store: failing, key: (order) => order.orderId }))
    // A logging onError, as many have: it labels the error with the invocation it failed.
    .use({
      onError: (request) => {
        (request.error as Error & { requestId?: string }).requestId = request.context.awsRequestId;
      },
    });
  const contexts = [1, 2, 3].map(() => lambdaContext('mi-claim-failed', 60_000));
  const outcomes = contexts.map((context) =>
    handler({ orderId: 'o-1' }, context).then(
      () => undefined,
      (error: unknown) => error as IdempotencyError & { requestId?: string },
    ),
  );
  await claimed.promise;
  // Every invocation is in flight: the first one's claim holds the others (single-flight).
  await flush();
  answer.open();
  const errors = await Promise.all(outcomes);

  expect(runs).toBe(0);
  expect(new Set(errors).size).toBe(3);
  for (const [i, error] of errors.entries()) {
    expect(error).toBeInstanceOf(IdempotencyError);
    expect(error).toMatchObject({ code: 'STORE_FAILURE', message: errors[0]!.message, cause: errors[0]!.cause });
    expect(error?.requestId).toBe(contexts[i]!.awsRequestId);
  }
});
