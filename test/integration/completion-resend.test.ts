/**
 * A completion or a release the SDK gave up on (its attempts spent on throttles, 500s, lost
 * connections) is sent again by `DynamoDBStore`, briefly, while the call has time: the function has
 * run, and a completion left INPROGRESS would let a duplicate after its lease run it again; a
 * release, every retry until then `IN_PROGRESS`. Against DynamoDB Local behind the fault layer, so
 * that the SDK's own retry and error classification meet each fault.
 */
import { jest } from '@jest/globals';
import type { Context } from 'aws-lambda';
import { IdempotencyError, makeIdempotent, transaction } from '../../lib/index.js';
import { lambdaContext } from '../../lib/testing/index.js';
import { endpoint, readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { type Fault, faultyClient } from '../support/faults.js';
import { flush } from '../support/gate.js';

const { client, faults } = faultyClient(endpoint());
const { client: inspect, tableName, store } = useFreshTable({ storeClient: client });
afterEach(() => {
  faults.clear();
});
afterAll(() => client.destroy());

/** The completions (or the releases) sent (SDK invocations, each of its own attempts). */
const sends = (operation = 'UpdateItem'): number => new Set(faults.attempts.filter((a) => a.operation === operation).map((a) => a.invocation)).size;

/** A function counting its runs, with the warnings and events of its calls. */
function charge(name: string) {
  let runs = 0;
  const warnings: string[] = [];
  const events: string[] = [];
  const fn = makeIdempotent(async (id: string, _context?: Context) => ({ id, run: ++runs }), {
    store,
    name,
    logger: { warn: (line) => void warnings.push(line) },
    observability: (event: string) => void events.push(event),
  });
  return { fn, runs: () => runs, warnings, events, item: () => readItem(inspect, tableName, recordId(name, 'k')) };
}

const TRANSIENT: ReadonlyArray<[string, Fault]> = [
  ['throttled (ProvisionedThroughputExceededException)', { kind: 'throttle', exception: 'ProvisionedThroughputExceededException' }],
  ['throttled (ThrottlingException)', { kind: 'throttle', exception: 'ThrottlingException' }],
  ['throttled (RequestLimitExceeded)', { kind: 'throttle', exception: 'RequestLimitExceeded' }],
  ['a 500 before the write', { kind: 'server-error' }],
  ['a 500 after the write', { kind: 'server-error', applied: true }],
  ['a connection reset', { kind: 'reset' }],
  ['a response lost after the write (TimeoutError)', { kind: 'drop-response', error: 'TimeoutError' }],
];

/** The time left of the invocations of the tests bounded by the Lambda deadline. */
const REMAINING = 600;

/**
 * Calls `call` with a context of {@link REMAINING} ms on a fake clock (timers, `Date`,
 * `performance.now()`), which a loaded machine's late timers cannot move: the claim, real I/O, goes
 * through with the clock standing still; once the first attempt of `operation` (throttled on every
 * send, answered without I/O) is made, the clock moves to the deadline, then as far again. How the
 * call settled and after how long by that clock, and the attempts of `operation` made by the
 * deadline and by the end.
 */
async function byFakeDeadline(call: (context: Context) => Promise<unknown>, operation: string) {
  jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate', 'clearImmediate'] });
  try {
    const started = performance.now();
    let answered: { settled: { value: unknown } | { error: unknown }; after: number } | undefined;
    void call(lambdaContext({ remainingMillis: REMAINING })).then(
      (value) => (answered = { settled: { value }, after: performance.now() - started }),
      (error: unknown) => (answered = { settled: { error }, after: performance.now() - started }),
    );
    while (faults.attemptsOf(operation) === 0 && answered === undefined) await flush();
    await jest.advanceTimersByTimeAsync(REMAINING);
    const byDeadline = faults.attemptsOf(operation);
    await jest.advanceTimersByTimeAsync(REMAINING);
    return { answered, byDeadline, byEnd: faults.attemptsOf(operation) };
  } finally {
    jest.useRealTimers();
  }
}

let scenarios = 0;

test.each(TRANSIENT)(
  'a completion the SDK gave up on twice, %s, is sent again and taken: the record completes, a duplicate replays, the function ran once',
  async (_what, fault) => {
    const { fn, runs, warnings, events, item } = charge(`resend-${++scenarios}`);
    faults.schedule({ operations: ['UpdateItem'], fault, requests: 2, attempts: 'all' });
    expect(await fn('k')).toEqual({ id: 'k', run: 1 });
    // Two sends of three attempts each, every one faulted; the third send went through.
    expect(faults.injected).toHaveLength(6);
    expect(faults.attemptsOf('UpdateItem')).toBe(7);
    expect(sends()).toBe(3);
    expect(warnings).toEqual([]);
    expect(events).not.toContain('bookkeepingFailure');
    expect(await item()).toMatchObject({ status: { S: 'COMPLETED' }, response: { S: '{"id":"k","run":1}' } });
    expect(await fn('k')).toEqual({ id: 'k', run: 1 });
    expect(runs()).toBe(1);
  },
);

test('a completion refused for a cause no resend changes (AccessDeniedException) is sent once: one warning, one BookkeepingFailures event', async () => {
  const { fn, warnings, events, item } = charge('resend-refused');
  faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'refuse' }, requests: 1_000, attempts: 'all' });
  expect(await fn('k')).toEqual({ id: 'k', run: 1 });
  expect(faults.attemptsOf('UpdateItem')).toBe(1);
  expect(warnings).toEqual([expect.stringMatching(/could not mark the record COMPLETED.*"error":"AccessDeniedException/)]);
  expect(events.filter((event) => event === 'bookkeepingFailure')).toHaveLength(1);
  expect(await item()).toMatchObject({ status: { S: 'INPROGRESS' } });
});

test('a completion throttled on every send is sent again only until the call must answer, before the Lambda deadline: one warning, one BookkeepingFailures event, nothing sent after the answer', async () => {
  const { fn, runs, warnings, events, item } = charge('resend-deadline');
  faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'throttle' }, requests: 1_000, attempts: 'all' });
  const { answered, byDeadline, byEnd } = await byFakeDeadline((context) => fn('k', context), 'UpdateItem');
  // Sent again after pauses of 50, 100 and 200 ms, each send with the SDK's three attempts; the
  // next pause (400 ms) would end past the call's answer, 540 ms in (a tenth of 600 ms kept for it).
  expect(answered).toEqual({ settled: { value: { id: 'k', run: 1 } }, after: 350 });
  expect(sends()).toBe(4);
  expect([byDeadline, byEnd]).toEqual([12, 12]);
  expect(warnings).toEqual([expect.stringMatching(/could not mark the record COMPLETED.*"error":"ProvisionedThroughputExceededException/)]);
  expect(events.filter((event) => event === 'bookkeepingFailure')).toHaveLength(1);
  expect(await item()).toMatchObject({ status: { S: 'INPROGRESS' } });
  expect(runs()).toBe(1);
});

/** A function whose first run throws, counting its runs, with the warnings and events of its calls. */
function failFirst(name: string) {
  let runs = 0;
  const failure = new Error('card network down');
  const warnings: string[] = [];
  const events: string[] = [];
  const fn = makeIdempotent(
    async (id: string, _context?: Context) => {
      if (++runs === 1) throw failure;
      return { id, run: runs };
    },
    { store, name, logger: { warn: (line) => void warnings.push(line) }, observability: (event: string) => void events.push(event) },
  );
  return { fn, failure, runs: () => runs, warnings, events, item: () => readItem(inspect, tableName, recordId(name, 'k')) };
}

let releases = 0;

test.each(TRANSIENT)(
  'a release the SDK gave up on twice, %s, is sent again and taken: the key is free at once, and a retry runs without waiting for the lease',
  async (_what, fault) => {
    const { fn, failure, runs, warnings, events, item } = failFirst(`release-resend-${++releases}`);
    faults.schedule({ operations: ['DeleteItem'], fault, requests: 2, attempts: 'all' });
    await expect(fn('k')).rejects.toBe(failure);
    // Two sends of three attempts each, every one faulted; the third send went through (or, an
    // earlier one having applied, found no item: released).
    expect(faults.injected).toHaveLength(6);
    expect(faults.attemptsOf('DeleteItem')).toBe(7);
    expect(sends('DeleteItem')).toBe(3);
    expect(warnings).toEqual([]);
    expect(events).not.toContain('bookkeepingFailure');
    expect(await item()).toBeUndefined();
    expect(await fn('k')).toEqual({ id: 'k', run: 2 });
    expect(runs()).toBe(2);
  },
);

test('a release refused for a cause no resend changes (AccessDeniedException) is sent once: one warning, one BookkeepingFailures event, the key held until its lease', async () => {
  const { fn, failure, warnings, events, item } = failFirst('release-refused');
  faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'refuse' }, requests: 1_000, attempts: 'all' });
  await expect(fn('k')).rejects.toBe(failure);
  expect(faults.attemptsOf('DeleteItem')).toBe(1);
  expect(warnings).toEqual([expect.stringMatching(/could not release the record.*"error":"AccessDeniedException/)]);
  expect(events.filter((event) => event === 'bookkeepingFailure')).toHaveLength(1);
  expect(await item()).toMatchObject({ status: { S: 'INPROGRESS' } });
  await expect(fn('k')).rejects.toMatchObject({ code: 'IN_PROGRESS' });
});

test('a release throttled on every send is sent again only until the call must answer: one warning, one BookkeepingFailures event, nothing sent after the answer', async () => {
  const { fn, failure, warnings, events, item } = failFirst('release-deadline');
  faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'throttle' }, requests: 1_000, attempts: 'all' });
  const { answered, byDeadline, byEnd } = await byFakeDeadline((context) => fn('k', context), 'DeleteItem');
  // Sent again after pauses of 50, 100 and 200 ms; the next one would end past the call's answer.
  expect(answered).toEqual({ settled: { error: failure }, after: 350 });
  expect(sends('DeleteItem')).toBe(4);
  expect([byDeadline, byEnd]).toEqual([12, 12]);
  expect(warnings).toEqual([expect.stringMatching(/could not release the record.*"error":"ProvisionedThroughputExceededException/)]);
  expect(events.filter((event) => event === 'bookkeepingFailure')).toHaveLength(1);
  expect(await item()).toMatchObject({ status: { S: 'INPROGRESS' } });
});

test("a commit without an answer whose settling release is throttled twice: the release sent again meets the call's own COMPLETED record, and the caller gets its result, its writes once", async () => {
  let runs = 0;
  const warnings: string[] = [];
  const events: string[] = [];
  const fn = makeIdempotent(
    async (id: string) => {
      runs++;
      transaction().update({
        TableName: tableName,
        Key: { id: 'release-commit-counter' },
        UpdateExpression: 'ADD n :one',
        ExpressionAttributeValues: { ':one': 1 },
      });
      return { id, run: runs };
    },
    { store, name: 'release-commit', logger: { warn: (line) => void warnings.push(line) }, observability: (event: string) => void events.push(event) },
  );
  // The commit applies on its first attempt; every answer is lost, and the SDK gives up.
  faults.schedule({ operations: ['TransactWriteItems'], fault: { kind: 'drop-response', error: 'ECONNRESET' }, attempts: 'all' });
  faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'throttle' }, requests: 2, attempts: 'all' });
  const answer = await fn('k').catch((error: unknown) => error);
  expect(answer).not.toBeInstanceOf(IdempotencyError);
  expect(answer).toEqual({ id: 'k', run: 1 });
  expect(sends('DeleteItem')).toBe(3);
  expect(warnings).toEqual([]);
  expect(events).not.toContain('bookkeepingFailure');
  expect(await readItem(inspect, tableName, recordId('release-commit', 'k'))).toMatchObject({ status: { S: 'COMPLETED' } });
  expect((await readItem(inspect, tableName, 'release-commit-counter'))?.n).toEqual({ N: '1' });
  expect(await fn('k')).toEqual({ id: 'k', run: 1 });
  expect(runs).toBe(1);
});

test('a claim that lost every answer (it applied) and whose release is throttled twice: STORE_FAILURE, nothing ran, and the release sent again frees the key, so the retry runs at once', async () => {
  const { fn, runs, warnings, item } = charge('claim-release-resend');
  faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response', error: 'TimeoutError' }, attempts: 'all' });
  faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'throttle' }, requests: 2, attempts: 'all' });
  await expect(fn('k')).rejects.toMatchObject({ code: 'STORE_FAILURE' });
  expect(sends('DeleteItem')).toBe(3);
  expect(runs()).toBe(0);
  expect(warnings).toEqual([]);
  expect(await item()).toBeUndefined();
  expect(await fn('k')).toEqual({ id: 'k', run: 1 });
});

test('the release of a claim given up on, throttled on every send, is sent again only until the call must answer: STORE_FAILURE before the deadline, nothing sent after it', async () => {
  const { fn, runs } = charge('claim-release-deadline');
  // Every answer lost: the claim may have applied, so its release is sent.
  faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response', error: 'TimeoutError' }, attempts: 'all' });
  faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'throttle' }, requests: 1_000, attempts: 'all' });
  const { answered, byDeadline, byEnd } = await byFakeDeadline((context) => fn('k', context), 'DeleteItem');
  expect(answered).toEqual({ settled: { error: expect.objectContaining({ code: 'STORE_FAILURE' }) }, after: 350 });
  expect(sends('DeleteItem')).toBe(4);
  expect([byDeadline, byEnd]).toEqual([12, 12]);
  expect(runs()).toBe(0);
});
