/**
 * The Middy middleware against a real DynamoDB Local: `middy(handler).use(idempotency(...))` with
 * fake Lambda contexts, injected clocks and gates instead of sleeps.
 */
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { DynamoDBStore, hashKey, IdempotencyError, idempotency, makeIdempotent } from '../../lib/index.js';
import { idsWithPrefix, readItem, recordId, unreachableClient, useFreshTable } from '../support/dynamodb.js';
import { flush, onlyOneEnters, Turnstile } from '../support/gate.js';
import { lambdaContext } from '../support/lambda.js';
import { rejection } from '../support/rejections.js';

const T0 = 1_700_000_000_000;
const { client, tableName, store } = useFreshTable();

interface Payment {
  readonly id?: string;
  readonly amount?: number;
}

test('first call runs the handler and stores its response; a duplicate replays it without running', async () => {
  let runs = 0;
  const handler = middy(async (event: Payment) => ({ runs: ++runs, id: event.id })).use(
    idempotency({ store, key: (event: Payment) => event.id, now: () => T0, singleFlight: false }), // each invocation stands for another process
  );
  expect(await handler({ id: 'first' }, lambdaContext('pay'))).toEqual({ runs: 1, id: 'first' });
  const item = await readItem(client, tableName, recordId('pay', 'first'));
  expect(item).toStrictEqual({
    id: { S: recordId('pay', 'first') },
    status: { S: 'COMPLETED' },
    expiration: { N: String(T0 / 1000 + 86_400) },
    owner: { S: expect.stringMatching(/^[0-9a-f-]{36}$/) },
    response: { S: '{"runs":1,"id":"first"}' },
  });
  expect(await handler({ id: 'first' }, lambdaContext('pay'))).toEqual({ runs: 1, id: 'first' });
  expect(runs).toBe(1);
  expect(await readItem(client, tableName, recordId('pay', 'first'))).toStrictEqual(item);
});

test('the default key is the whole event, insensitive to member order', async () => {
  let runs = 0;
  const handler = middy(async () => ++runs).use(idempotency({ store }));
  expect(await handler({ a: 1, b: { c: 2, d: [3, 4] } }, lambdaContext('order'))).toBe(1);
  expect(await handler({ b: { d: [3, 4], c: 2 }, a: 1 }, lambdaContext('order'))).toBe(1);
  expect(await handler({ b: { d: [4, 3], c: 2 }, a: 1 }, lambdaContext('order'))).toBe(2); // arrays keep order
  expect(runs).toBe(2);
});

test('an undefined response is replayed as undefined, without running the handler again', async () => {
  let runs = 0;
  const handler = middy(async (_event: Payment): Promise<undefined> => {
    runs++;
    return undefined;
  }).use(idempotency({ store, key: (event: Payment) => event.id }));
  expect(await handler({ id: 'void' }, lambdaContext('void'))).toBeUndefined();
  expect(await handler({ id: 'void' }, lambdaContext('void'))).toBeUndefined();
  expect(runs).toBe(1);
  const item = await readItem(client, tableName, recordId('void', 'void'));
  expect(item?.status).toEqual({ S: 'COMPLETED' });
  expect(item).not.toHaveProperty('response');
  expect(item).not.toHaveProperty('leaseUntil');
});

test('the deprecated `observability` options object still writes its lines: an EMF line per event in its namespace, and log lines naming the record, never the key', async () => {
  const lines: string[] = [];
  let runs = 0;
  const handler = middy(async (event: Payment) => ({ runs: ++runs, id: event.id })).use(
    idempotency({
      store,
      key: (event: Payment) => event.id,
      observability: { metrics: true, logs: true, metricNamespace: 'Shop', write: (line) => void lines.push(line) },
    }),
  );
  expect(await handler({ id: 'card-4242' }, lambdaContext('observed'))).toEqual({ runs: 1, id: 'card-4242' });
  expect(await handler({ id: 'card-4242' }, lambdaContext('observed'))).toEqual({ runs: 1, id: 'card-4242' });
  expect(runs).toBe(1);
  const parsed = lines.map(
    (line) => JSON.parse(line) as Record<string, unknown> & { _aws?: { CloudWatchMetrics: Array<{ Namespace: string; Metrics: Array<{ Name: string }> }> } },
  );
  const metrics = parsed.filter((line) => line._aws !== undefined);
  expect(metrics.map((line) => [line._aws!.CloudWatchMetrics[0]!.Namespace, line._aws!.CloudWatchMetrics[0]!.Metrics[0]!.Name, line.Function])).toEqual([
    ['Shop', 'Misses', 'observed'],
    ['Shop', 'Replays', 'observed'],
  ]);
  const id = recordId('observed', 'card-4242');
  expect(parsed.filter((line) => line._aws === undefined).map((line) => [line.event, line.recordId])).toEqual([
    ['miss', id],
    ['replay', id],
  ]);
  for (const line of lines) expect(line).not.toContain('card-4242');
});

test('a handler error is rethrown unchanged and releases the record, so the retry runs', async () => {
  const declined = new Error('card declined');
  let runs = 0;
  const handler = middy(async (_event: Payment) => {
    if (++runs === 1) throw declined;
    return 'charged';
  }).use(idempotency({ store, key: (event: Payment) => event.id }));
  await expect(handler({ id: 'retry' }, lambdaContext('err'))).rejects.toBe(declined);
  expect(await readItem(client, tableName, recordId('err', 'retry'))).toBeUndefined();
  expect(await handler({ id: 'retry' }, lambdaContext('err'))).toBe('charged');
  expect(await handler({ id: 'retry' }, lambdaContext('err'))).toBe('charged');
  expect(runs).toBe(2);
});

test('50 concurrent identical calls run the handler exactly once; the others are IN_PROGRESS', async () => {
  const turnstile = new Turnstile<string>();
  const handler = middy(async (_event: Payment) => turnstile.enter()).use(
    idempotency({ store, key: (event: Payment) => event.id, now: () => T0, singleFlight: false }), // each invocation stands for another process
  );
  const calls = Array.from({ length: 50 }, () => handler({ id: 'burst' }, lambdaContext('burst', 7_000)));
  // The holder is still inside the handler while the 49 duplicates are answered.
  const holder = await onlyOneEnters(turnstile, calls);
  holder.open('done');
  const results = await Promise.allSettled(calls);
  const fulfilled = results.filter((r) => r.status === 'fulfilled');
  const rejected = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  expect(fulfilled).toEqual([{ status: 'fulfilled', value: 'done' }]);
  expect(rejected).toHaveLength(49);
  for (const reason of rejected) {
    expect(reason).toBeInstanceOf(IdempotencyError);
    expect(reason).toMatchObject({ code: 'IN_PROGRESS', retryAfterSeconds: 7 });
  }
  expect(await handler({ id: 'burst' }, lambdaContext('burst'))).toBe('done');
  expect(turnstile.count).toBe(1);
});

test('an IN_PROGRESS rejection leaves the record it met byte-identical', async () => {
  const turnstile = new Turnstile<string>();
  const handler = middy(async (_event: Payment) => turnstile.enter()).use(
    idempotency({ store, key: (event: Payment) => event.id, now: () => T0, singleFlight: false }), // each invocation stands for another process
  );
  const first = handler({ id: 'held' }, lambdaContext('held', 4_200));
  const holder = await turnstile.next();
  const before = await readItem(client, tableName, recordId('held', 'held'));
  expect(before).toMatchObject({ status: { S: 'INPROGRESS' }, leaseUntil: { N: String(T0 + 4_200) } });
  const error = await rejection(handler({ id: 'held' }, lambdaContext('held')));
  expect(error.code).toBe('IN_PROGRESS');
  expect(error.retryAfterSeconds).toBe(5);
  expect(await readItem(client, tableName, recordId('held', 'held'))).toStrictEqual(before);
  holder.open('finished');
  expect(await first).toBe('finished');
  expect(turnstile.count).toBe(1);
});

test('a different payload under the same key is PAYLOAD_MISMATCH and leaves the record intact', async () => {
  let runs = 0;
  const handler = middy(async (event: Payment) => ({ charged: event.amount, run: ++runs })).use(
    idempotency({ store, key: (event: Payment) => event.id, fingerprint: (event: Payment) => event.amount }),
  );
  expect(await handler({ id: 'fp', amount: 100 }, lambdaContext('fp'))).toEqual({ charged: 100, run: 1 });
  const before = await readItem(client, tableName, recordId('fp', 'fp'));
  expect(before?.fingerprint).toEqual({ S: hashKey(100) });
  expect((await rejection(handler({ id: 'fp', amount: 999 }, lambdaContext('fp')))).code).toBe('PAYLOAD_MISMATCH');
  expect(await readItem(client, tableName, recordId('fp', 'fp'))).toStrictEqual(before);
  expect(await handler({ id: 'fp', amount: 100 }, lambdaContext('fp'))).toEqual({ charged: 100, run: 1 });
  expect(runs).toBe(1);
});

test("a middleware used before it that throws: middy runs this one's onError without its before, and the caller gets that error while the record another request holds stays byte-identical", async () => {
  const refused = new Error('token expired');
  const turnstile = new Turnstile<string>();
  const handler = middy(async (_event: Payment) => turnstile.enter())
    .use({
      before: (request: { event: Payment & { token?: string } }) => {
        if (request.event.token !== 'valid') throw refused;
      },
    })
    .use(idempotency({ store, key: (event: Payment) => event.id, now: () => T0, singleFlight: false }));
  const first = handler({ id: 'outer', token: 'valid' } as Payment, lambdaContext('outer', 4_200));
  const holder = await turnstile.next();
  const held = await readItem(client, tableName, recordId('outer', 'outer'));
  expect(held).toMatchObject({ status: { S: 'INPROGRESS' } });
  await expect(handler({ id: 'outer' }, lambdaContext('outer'))).rejects.toBe(refused);
  await expect(handler({ id: 'never-claimed' }, lambdaContext('outer'))).rejects.toBe(refused);
  expect(await readItem(client, tableName, recordId('outer', 'outer'))).toStrictEqual(held);
  expect(await idsWithPrefix(client, tableName, 'outer#')).toEqual([recordId('outer', 'outer')]);
  holder.open('paid');
  expect(await first).toBe('paid');
  expect(await handler({ id: 'outer', token: 'valid' } as Payment, lambdaContext('outer'))).toBe('paid');
  expect(turnstile.count).toBe(1);
});

test('a missing key throws KEY_MISSING without running or storing; skip runs without storing', async () => {
  let runs = 0;
  const strict = middy(async (_event: Payment) => ++runs).use(idempotency({ store, key: (event: Payment) => event.id }));
  for (const event of [{}, { id: '' }]) {
    expect((await rejection(strict(event, lambdaContext('missing')))).code).toBe('KEY_MISSING');
  }
  expect(runs).toBe(0);
  const lenient = middy(async (_event: Payment) => ++runs).use(idempotency({ store, key: (event: Payment) => event.id, onMissingKey: 'skip' }));
  expect(await lenient({}, lambdaContext('missing'))).toBe(1);
  expect(await lenient({}, lambdaContext('missing'))).toBe(2);
  expect(await idsWithPrefix(client, tableName, 'missing#')).toEqual([]);
});

test('an unreachable store fails closed: STORE_FAILURE and the handler never runs', async () => {
  const dead = await unreachableClient();
  let runs = 0;
  const handler = middy(async (_event: Payment) => ++runs).use(
    idempotency({ store: new DynamoDBStore({ tableName, client: dead }), key: (event: Payment) => event.id }),
  );
  const error = await rejection(handler({ id: 'dead' }, lambdaContext('dead')));
  expect(error.code).toBe('STORE_FAILURE');
  expect(error.cause).toBeInstanceOf(Error);
  expect(runs).toBe(0);
  dead.destroy();
});

test("middy's early timeout does not release the record: it stays INPROGRESS until the deadline, then is taken over", async () => {
  let now = T0;
  const turnstile = new Turnstile<string>();
  const handler = middy(async (_event: Payment) => turnstile.enter(), { timeoutEarlyInMillis: 40 }).use(
    idempotency({ store, key: (event: Payment) => event.id, now: () => now }),
  );
  const id = recordId('timeout', 'slow');
  const call = handler({ id: 'slow' }, lambdaContext('timeout', 80));
  const late = await turnstile.next();
  await expect(call).rejects.toMatchObject({ name: 'TimeoutError' });
  const after = await readItem(client, tableName, id);
  expect(after).toMatchObject({ status: { S: 'INPROGRESS' }, leaseUntil: { N: String(T0 + 80) } });
  late.open('too late'); // the abandoned handler finishes in the background: nothing is written
  await flush();
  expect(await readItem(client, tableName, id)).toStrictEqual(after);

  now = T0 + 79;
  expect((await rejection(handler({ id: 'slow' }, lambdaContext('timeout')))).code).toBe('IN_PROGRESS');
  now = T0 + 81;
  const retry = handler({ id: 'slow' }, lambdaContext('timeout', 10_000));
  (await turnstile.next()).open('retried');
  expect(await retry).toBe('retried');
  expect(turnstile.count).toBe(2);
});

describe("a call given no context that the handler starts after middy's early timeout (the handler still running, as Managed Instances leave it) holds its record until the invocation's deadline, not leaseSeconds past it", () => {
  test.each([
    ['that holds a record', {}, { id: 'late-inner' }, String(T0 + 80)],
    ['in atomic mode (no record until it ends)', { atomic: true }, { id: 'late-atomic' }, undefined],
    ["without a key (onMissingKey: 'skip')", { onMissingKey: 'skip' as const }, { id: 'late-unkeyed', amount: 0 }, undefined],
  ])('in a call %s', async (_what, options, event, outerLease) => {
    const outerGate = new Turnstile<string>();
    const innerGate = new Turnstile<string>();
    const inner = makeIdempotent(async (_event: Payment) => innerGate.enter(), { store, name: 'timeout-inner', key: (event) => event.id, now: () => T0 });
    let charged: Promise<string> | undefined;
    const handler = middy(
      async (event: Payment) => {
        await outerGate.enter();
        charged = inner(event);
        return charged;
      },
      { timeoutEarlyInMillis: 40 },
    ).use(idempotency({ store, key: (event: Payment) => (event.amount === 0 ? undefined : event.id), now: () => T0, ...options }));
    const call = handler(event, lambdaContext('timeout-outer', 80));
    const late = await outerGate.next();
    await expect(call).rejects.toMatchObject({ name: 'TimeoutError' });
    late.open('go on');
    const charging = await innerGate.next();
    // The records are held until the invocation's deadline, after which a retry takes them over.
    const leases = [
      (await readItem(client, tableName, recordId('timeout-outer', event.id)))?.leaseUntil?.N,
      (await readItem(client, tableName, recordId('timeout-inner', event.id)))?.leaseUntil?.N,
    ];
    charging.open('charged');
    expect(await charged).toBe('charged');
    await flush();
    expect(leases).toEqual([outerLease, String(T0 + 80)]);
  });
});

test("a TimeoutError the handler throws itself (the SDK's, AbortSignal.timeout's) releases the record like any other error", async () => {
  let runs = 0;
  const handler = middy(async (_event: Payment) => {
    runs++;
    if (runs === 1) throw Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' });
    return 'second try';
  }).use(idempotency({ store, key: (event: Payment) => event.id }));
  await expect(handler({ id: 'own-timeout' }, lambdaContext('own-timeout'))).rejects.toMatchObject({ name: 'TimeoutError' });
  expect(await readItem(client, tableName, recordId('own-timeout', 'own-timeout'))).toBeUndefined();
  expect(await handler({ id: 'own-timeout' }, lambdaContext('own-timeout'))).toBe('second try');
});

describe('a custom timeoutEarlyResponse (docs/middleware-order.md: keep the default)', () => {
  test("one that returns a 408 has it stored by idempotency(), which has no statuses: every retry gets the 408, the handler's outcome is never kept", async () => {
    const turnstile = new Turnstile<string>();
    const handler = middy(async (_event: Payment) => turnstile.enter(), { timeoutEarlyInMillis: 40, timeoutEarlyResponse: () => ({ statusCode: 408 }) }).use(
      idempotency({ store, key: (event: Payment) => event.id }),
    );
    const call = handler({ id: 'custom-408' }, lambdaContext('custom-timeout', 80));
    const late = await turnstile.next();
    expect(await call).toEqual({ statusCode: 408 });
    late.open('charged'); // the handler finishes in the background: its outcome is not kept
    await flush();
    expect(await handler({ id: 'custom-408' }, lambdaContext('custom-timeout'))).toEqual({ statusCode: 408 });
    expect(turnstile.count).toBe(1);
    expect((await readItem(client, tableName, recordId('custom-timeout', 'custom-408')))?.status).toEqual({ S: 'COMPLETED' });
  });

  test('one that throws an error of its own releases the key as a handler error does: a retry runs the handler while the first may still run', async () => {
    const turnstile = new Turnstile<string>();
    const handler = middy(async (_event: Payment) => turnstile.enter(), {
      timeoutEarlyInMillis: 40,
      timeoutEarlyResponse: () => {
        throw new Error('gave up');
      },
    }).use(idempotency({ store, key: (event: Payment) => event.id }));
    const call = handler({ id: 'custom-throw' }, lambdaContext('custom-timeout', 80));
    const late = await turnstile.next();
    await expect(call).rejects.toThrow('gave up');
    expect(await readItem(client, tableName, recordId('custom-timeout', 'custom-throw'))).toBeUndefined();
    const retry = handler({ id: 'custom-throw' }, lambdaContext('custom-timeout'));
    (await turnstile.next()).open('retried');
    expect(await retry).toBe('retried');
    expect(turnstile.count).toBe(2);
    late.open('first');
  });
});

test('different function names (or `name`s) never share records', async () => {
  let runs = 0;
  const make = (name?: string) => middy(async () => ++runs).use(idempotency({ store, key: () => 'shared', ...(name ? { name } : {}) }));
  const byFunction = make();
  expect(await byFunction({}, lambdaContext('alpha'))).toBe(1);
  expect(await byFunction({}, lambdaContext('beta'))).toBe(2);
  expect(await byFunction({}, lambdaContext('alpha'))).toBe(1);
  expect(await make('one')({}, lambdaContext('alpha'))).toBe(3);
  expect(await make('two')({}, lambdaContext('alpha'))).toBe(4);
  expect(await make('one')({}, lambdaContext('beta'))).toBe(3);
  expect(runs).toBe(4);
  for (const namespace of ['alpha', 'beta', 'one', 'two']) {
    expect(await idsWithPrefix(client, tableName, `${namespace}#`)).toEqual([recordId(namespace, 'shared')]);
  }
});

test('without a function name in the context, the namespace is AWS_LAMBDA_FUNCTION_NAME', async () => {
  const saved = process.env.AWS_LAMBDA_FUNCTION_NAME;
  process.env.AWS_LAMBDA_FUNCTION_NAME = 'from-env';
  try {
    const handler = middy(async () => 'env').use(idempotency({ store, key: () => 'k' }));
    expect(await handler({}, { getRemainingTimeInMillis: () => 1_000 } as unknown as Context)).toBe('env');
    expect(await idsWithPrefix(client, tableName, 'from-env#')).toEqual([recordId('from-env', 'k')]);
  } finally {
    if (saved === undefined) delete process.env.AWS_LAMBDA_FUNCTION_NAME;
    else process.env.AWS_LAMBDA_FUNCTION_NAME = saved;
  }
});

test('an empty context.functionName falls back to AWS_LAMBDA_FUNCTION_NAME for the namespace', async () => {
  const saved = process.env.AWS_LAMBDA_FUNCTION_NAME;
  process.env.AWS_LAMBDA_FUNCTION_NAME = 'from-env';
  try {
    const handler = middy(async (event: Payment) => ({ id: event.id })).use(idempotency({ store, key: (event: Payment) => event.id }));
    await handler({ id: 'env-ns' }, lambdaContext(''));
    expect((await readItem(client, tableName, recordId('from-env', 'env-ns')))?.status?.S).toBe('COMPLETED');
  } finally {
    if (saved === undefined) delete process.env.AWS_LAMBDA_FUNCTION_NAME;
    else process.env.AWS_LAMBDA_FUNCTION_NAME = saved;
  }
});
