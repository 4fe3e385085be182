/**
 * The client `DynamoDBStore` builds when given none, in front of a DynamoDB Local that stops
 * answering (a loopback proxy that keeps connections open and forwards nothing: a VPC without a
 * route to DynamoDB, a connection dropped silently). The SDK sets no timeouts of its own, so each
 * request is bounded by the store: the call answers instead of waiting for the Lambda timeout. The
 * client is configured, as in Lambda, by the environment: endpoint, Region, credentials, and one
 * attempt per request so that a test waits for one timeout only.
 */
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { jest } from '@jest/globals';
import type { Context } from 'aws-lambda';
import { delay } from '../../lib/deadline.js';
import { aesGcmEncryption, type BatchResponse, DynamoDBStore, type IdempotencyError, idempotentBatch, makeIdempotent, transaction } from '../../lib/index.js';
import type { IdempotencyStore } from '../../lib/store.js';
import { InMemoryStore, lambdaContext as timedContext } from '../../lib/testing/index.js';
import { kinesisRecord, kinesisSequence, type Order, piped, sqsEvent, sqsRecord } from '../support/batch-events.js';
import { readItem, recordId, useBusinessTable, useFreshTable } from '../support/dynamodb.js';
import { type Gate, gate, Turnstile } from '../support/gate.js';
import { lambdaContext } from '../support/lambda.js';
import { rejection, thrown } from '../support/rejections.js';
import { byDeadline, byDeadlineOnClock, moveToDeadline, onFakeClock, REMAINING, useStalledDynamoDB } from '../support/stalled-dynamodb.js';

const { client: inspect, tableName } = useFreshTable({ prefix: 'timeouts' });
const bizTable = useBusinessTable(inspect);
const quiet = { warn: () => undefined, error: () => undefined };
const proxy = useStalledDynamoDB();

/**
 * A stall a call's function starts (after the claim went through), and `stuck`, which settles once
 * the request the call sends next has reached the stalled proxy: it will not be answered.
 */
const midway = () => {
  const stalled = gate<Promise<void>>();
  return {
    stall: () => {
      proxy.stall();
      stalled.open(proxy.swallowed());
    },
    stuck: stalled.promise,
  };
};

// Without the bound, each of these waits until Jest gives up on it.
jest.setTimeout(15_000);

test('a claim DynamoDB never answers: STORE_FAILURE (TimeoutError), the function did not run', async () => {
  let runs = 0;
  const once = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store: new DynamoDBStore({ tableName }), name: 'claim-hangs' });
  proxy.stall();
  const error = await rejection(once('k'));
  expect(error.message).toBe('STORE_FAILURE: The idempotency store failed (TimeoutError); the function did not run.');
  expect(runs).toBe(0);
});

test('a completion DynamoDB never answers: the caller gets its result, with a warning, instead of a Lambda timeout', async () => {
  let runs = 0;
  const logger = { warn: jest.fn<(message: string) => void>() };
  const once = makeIdempotent(
    async (id: string) => {
      proxy.stall(); // after the claim: the completion is the request that hangs
      return { id, run: ++runs };
    },
    { store: new DynamoDBStore({ tableName }), name: 'completion-hangs', logger },
  );
  expect(await once('k')).toEqual({ id: 'k', run: 1 });
  expect(logger.warn).toHaveBeenCalledWith(expect.stringContaining('"error":"TimeoutError"'));
  expect(await readItem(inspect, tableName, recordId('completion-hangs', 'k'))).toMatchObject({ status: { S: 'INPROGRESS' } });
});

test("a reply cut short after its headers (a connection dropped silently mid-reply): the client the store builds gives the attempt up within its 2 s as any other, and the SDK's next attempt finds the claim applied; the function runs once", async () => {
  // Two attempts, as the SDK's default three would: the first one's reply is the one cut short.
  const saved = process.env.AWS_MAX_ATTEMPTS;
  process.env.AWS_MAX_ATTEMPTS = '2';
  const later = delay(6_000);
  try {
    let runs = 0;
    // No Lambda context: only the client's own bounds end a request (a worker, a script, the CLI).
    const once = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store: new DynamoDBStore({ tableName }), name: 'reply-cut-short' });
    proxy.cutRepliesShort();
    expect(await Promise.race([once('k'), later.elapsed.then(() => 'still waiting after 6 s')])).toEqual({ id: 'k', run: 1 });
    expect(await readItem(inspect, tableName, recordId('reply-cut-short', 'k'))).toMatchObject({ status: { S: 'COMPLETED' } });
  } finally {
    later.cancel();
    process.env.AWS_MAX_ATTEMPTS = saved;
  }
});

describe("a request that starts with less than a second left, under a context whose time left runs down with real time, as Lambda's does", () => {
  /** Runs `fn` once the context reads `left` ms or less, a real wait: only real time shows the context is live. */
  const when =
    <T>(left: number, fn: () => T) =>
    async (_id: string, context?: Context): Promise<T> => {
      await new Promise((resolve) => setTimeout(resolve, context!.getRemainingTimeInMillis() - left));
      return fn();
    };

  test('a completion DynamoDB never answers: given up on before the deadline, not a second after its start', () =>
    // On a fake clock (timers, `Date`, `performance.now()`), which the context reads too: it runs
    // down with the clock as Lambda's does with real time, and a loaded machine's late timers
    // cannot move the call past the deadline `byDeadline` holds it to.
    onFakeClock(async () => {
      const remaining = 1_500;
      const left = 990; // just under a second left when the completion starts
      let runs = 0;
      const hang = midway();
      const waiting = gate<void>();
      const logger = { warn: jest.fn<(message: string) => void>() };
      const once = makeIdempotent(
        async (_id: string, context?: Context) => {
          const until = new Promise((resolve) => setTimeout(resolve, context!.getRemainingTimeInMillis() - left));
          waiting.open();
          await until;
          hang.stall();
          return ++runs;
        },
        { store: new DynamoDBStore({ tableName }), name: 'late-completion-hangs', logger },
      );
      const call = once('k', timedContext({ functionName: 'late-completion-hangs', remainingMillis: remaining }));
      const settled = byDeadline(call, remaining);
      await waiting.promise; // the claim went through and the function waits for its moment
      await jest.advanceTimersByTimeAsync(remaining - left);
      await moveToDeadline(hang.stuck, settled, left);
      expect(await settled).toEqual({ value: 1 });
      expect(logger.warn).toHaveBeenCalledWith(expect.stringContaining('"error":"TimeoutError"'));
    }));

  test("a completion that starts past the call's bound, 50 ms before the deadline, still gets half of that: a store answering in 5 ms completes the record", async () => {
    const store = new InMemoryStore();
    const context = timedContext({ functionName: 'late-completion', remainingMillis: 600 });
    // Answers each completion after 5 ms, or a quarter of the time left when a loaded machine woke the
    // function later than 50 ms before the deadline: a timer set before the call's bound (half of the
    // time left), and due before it.
    const slow: IdempotencyStore = {
      claim: (request) => store.claim(request),
      complete: (request) => {
        const wait = Math.max(1, Math.min(5, Math.floor(context.getRemainingTimeInMillis() / 4)));
        return new Promise((resolve) => setTimeout(() => resolve(store.complete(request)), wait));
      },
      release: (request) => store.release(request),
    };
    let runs = 0;
    const logger = { warn: jest.fn<(message: string) => void>() };
    const once = makeIdempotent(
      when(50, () => ++runs),
      { store: slow, name: 'late-completion', logger },
    );
    expect(await once('k', context)).toBe(1);
    expect(logger.warn).not.toHaveBeenCalled();
    expect((await store.inspect(recordId('late-completion', 'k')))?.status).toBe('COMPLETED');
  });

  test("a stub context that reads 5 ms left throughout (a unit test's) is not live: each request still gets a second, so a store answering in 50 ms claims and completes", async () => {
    const store = new InMemoryStore();
    const later = <T>(answer: () => T | Promise<T>) => new Promise<T>((resolve) => setTimeout(() => resolve(answer()), 50));
    const slow: IdempotencyStore = {
      claim: (request) => later(() => store.claim(request)),
      complete: (request) => later(() => store.complete(request)),
      release: (request) => store.release(request),
    };
    const logger = { warn: jest.fn<(message: string) => void>() };
    // The function takes 150 ms of real time, over which the stub's time left does not move.
    const once = makeIdempotent(async (id: string, _context?: Context) => new Promise((resolve) => setTimeout(resolve, 150, id)), {
      store: slow,
      name: 'stub-context',
      logger,
    });
    expect(await once('k', lambdaContext('stub-context', 5))).toBe('k');
    expect(logger.warn).not.toHaveBeenCalled();
    expect((await store.inspect(recordId('stub-context', 'k')))?.status).toBe('COMPLETED');
  });

  test('under a stub context that reads 5 ms left throughout, a claim the store never answers is given up on after its second, not before', async () => {
    // Timers and performance.now() on a fake clock that the test moves; the stub's time left does not move.
    jest.useFakeTimers();
    try {
      let runs = 0;
      const hangs: IdempotencyStore = {
        claim: () => new Promise<never>(() => undefined),
        complete: () => Promise.reject(new Error('no completion expected')),
        release: () => Promise.resolve({ released: true }),
      };
      const once = makeIdempotent(async (_id: string, _context?: Context) => ++runs, { store: hangs, name: 'stub-context-hangs' });
      let settled: unknown;
      void once('k', lambdaContext('stub-context-hangs', 5)).catch((error: IdempotencyError) => (settled = error.code));
      await jest.advanceTimersByTimeAsync(999);
      expect(settled).toBeUndefined();
      await jest.advanceTimersByTimeAsync(1);
      expect(settled).toBe('STORE_FAILURE');
      expect(runs).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });
});

test("a claim applied but never answered, given up on at the bound: nothing is released, a Lambda's record frees itself at the deadline and a durable execution's is kept for its next invocation", async () => {
  const store = new InMemoryStore();
  const events: string[] = [];
  const lost: IdempotencyStore = {
    claim: (request) => {
      void store.claim(request);
      return new Promise<never>(() => undefined);
    },
    complete: (request) => store.complete(request),
    release: (request) => {
      events.push(`release ${request.key.split('#')[0]}`);
      return store.release(request);
    },
  };
  const call = (name: string, context: Context) =>
    makeIdempotent(async (id: string, _context?: Context) => id, { store: lost, name })('k', context).catch((error: IdempotencyError) =>
      events.push(`${name} answered ${error.code}${(error as { isUnrecoverableInvocation?: boolean }).isUnrecoverableInvocation ? ' (invocation)' : ''}`),
    );
  const context = (functionName: string) => timedContext({ functionName, remainingMillis: 1_200 });
  const execution = { durableExecutionArn: 'arn:aws:lambda:us-east-1:123456789012:function:durable-bound:$LATEST/durable-execution/run/1' };
  await Promise.all([
    call('lambda-bound', context('lambda-bound')),
    call('durable-bound', { ...context('durable-bound'), executionContext: execution } as Context),
  ]);
  // A release sent after the answer would be on its way by now.
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
  expect([...events].sort()).toEqual(['durable-bound answered STORE_FAILURE (invocation)', 'lambda-bound answered STORE_FAILURE']);
  // The execution's record: its steps may have run, and the invocation the durable service sends next resumes on it.
  expect((await store.inspect(recordId('durable-bound', 'k')))?.status).toBe('INPROGRESS');
  // Held until its lease ends, at the deadline: a release could have freed it a tenth of a second earlier at most.
  expect((await store.inspect(recordId('lambda-bound', 'k')))?.status).toBe('INPROGRESS');
});

test('a pause right after the call reads its time left (the process descheduled, a GC) does not move its bound past the deadline: the bound counts from before the read', async () => {
  const lambda = timedContext({ functionName: 'paused-read', remainingMillis: 1_500 });
  let reads = 0;
  const paused = {
    ...lambda,
    getRemainingTimeInMillis: () => {
      const left = lambda.getRemainingTimeInMillis();
      // The first read only: the process stops for 200 ms right after it.
      if (reads++ === 0) while (lambda.getRemainingTimeInMillis() > left - 200);
      return left;
    },
  };
  const store = new InMemoryStore();
  const hangs: IdempotencyStore = {
    claim: () => new Promise<never>(() => undefined),
    complete: (request) => store.complete(request),
    release: (request) => store.release(request),
  };
  const once = makeIdempotent(async (id: string, _context?: Context) => id, { store: hangs, name: 'paused-read' });
  const call = once('k', paused);
  expect(await byDeadline(call, lambda.getRemainingTimeInMillis())).toMatchObject({ error: { code: 'STORE_FAILURE' } });
});

test("a store that answers a claim after 1.5 s, with 30 s left, is waited for: a request may take until the call's bound, not only its least second", async () => {
  // Timers and performance.now() on a fake clock that the test moves: the store answers once 1.5 s have passed.
  jest.useFakeTimers();
  try {
    const store = new InMemoryStore();
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    const slow: IdempotencyStore = {
      claim: async (request) => {
        await answered;
        return store.claim(request);
      },
      complete: (request) => store.complete(request),
      release: (request) => store.release(request),
    };
    const once = makeIdempotent(async (id: string, _context?: Context) => id, { store: slow, name: 'slow-claim' });
    const call = once('k', lambdaContext('slow-claim', 30_000)).catch((error: unknown) => error);
    await jest.advanceTimersByTimeAsync(1_500);
    answer();
    expect(await call).toBe('k');
  } finally {
    jest.useRealTimers();
  }
});

test('a wait for a record another call holds, while the wall clock steps back an hour, ends by the Lambda deadline, not a second past it', async () => {
  let t = Date.now();
  const turnstile = new Turnstile<string>();
  const fn = async (_id: string, _context?: Context) => turnstile.enter();
  const options = { store: new DynamoDBStore({ tableName }), name: 'wait-bound', now: () => t };
  const first = makeIdempotent(fn, options)('k', lambdaContext('wait-bound', 60_000));
  const holder = await turnstile.next();
  const follower = makeIdempotent(fn, { ...options, singleFlight: false, waitForInProgressMillis: 60_000 });
  // After the wait the call reads the record once more, a real request (to DynamoDB Local on a
  // loaded 2-core machine): the race allows it 900 ms past the deadline, still short of a wait that
  // outlived the bound by a second.
  const waited = Promise.race([
    follower('k', lambdaContext('wait-bound', REMAINING)).catch((error: unknown) => ({ error })),
    new Promise((resolve) => setTimeout(resolve, REMAINING + 900, 'deadline passed')),
  ]);
  t -= 3_600_000; // only the monotonic bound (the Lambda deadline) ends the wait now
  expect(await waited).toMatchObject({ error: { code: 'IN_PROGRESS' } });
  holder.open('done');
  expect(await first).toBe('done');
});

describe('with a client of your own, whose requests the SDK never bounds: the Lambda deadline does', () => {
  // A client with no timeouts: without the deadline's bound, each call here waits until Jest gives up on it.
  // Each test runs on a fake clock, moved to the deadline once the request that hangs is in flight.
  let unbounded: DynamoDBClient;
  beforeAll(() => {
    unbounded = new DynamoDBClient({});
  });
  afterAll(() => unbounded.destroy());
  const ownStore = () => new DynamoDBStore({ tableName, client: unbounded });
  const record = (name: string, key: unknown) => readItem(inspect, tableName, recordId(name, key));

  test('a claim that is never answered: STORE_FAILURE (TimeoutError) while the caller can still answer; the function did not run', () =>
    onFakeClock(async () => {
      let runs = 0;
      const once = makeIdempotent(async (id: string, _context?: Context) => ({ id, run: ++runs }), { store: ownStore(), name: 'own-claim-hangs' });
      proxy.stall();
      const settled = await byDeadlineOnClock(once('k', lambdaContext('own-claim-hangs', REMAINING)), proxy.swallowed());
      expect(settled).toMatchObject({ error: { message: 'STORE_FAILURE: The idempotency store failed (TimeoutError); the function did not run.' } });
      expect(runs).toBe(0);
    }));

  test('a completion that is never answered: the caller gets its result, with a warning; the record waits for its lease', () =>
    onFakeClock(async () => {
      let runs = 0;
      const hang = midway();
      const logger = { warn: jest.fn<(message: string) => void>() };
      const once = makeIdempotent(
        async (id: string, _context?: Context) => {
          hang.stall();
          return { id, run: ++runs };
        },
        { store: ownStore(), name: 'own-completion-hangs', logger },
      );
      expect(await byDeadlineOnClock(once('k', lambdaContext('own-completion-hangs', REMAINING)), hang.stuck)).toEqual({ value: { id: 'k', run: 1 } });
      expect(logger.warn).toHaveBeenCalledWith(expect.stringContaining('"error":"TimeoutError"'));
      await proxy.restore();
      expect(await record('own-completion-hangs', 'k')).toMatchObject({ status: { S: 'INPROGRESS' } });
    }));

  test("a commit of the call's writes that is never answered: COMMIT_FAILED, its outcome unknown, instead of a Lambda timeout", () =>
    onFakeClock(async () => {
      const hang = midway();
      const once = makeIdempotent(
        async (id: string, _context?: Context) => {
          transaction().put({ TableName: bizTable, Item: { id: `own-${id}` } });
          hang.stall();
          return id;
        },
        { store: ownStore(), name: 'own-commit-hangs' },
      );
      const settled = await byDeadlineOnClock(once('k', lambdaContext('own-commit-hangs', REMAINING)), hang.stuck);
      expect(settled).toMatchObject({ error: { code: 'COMMIT_FAILED', message: expect.stringContaining('may or may not be applied') } });
    }));

  test('a call nested in another, given no Lambda context, answers by the outer Lambda deadline', () =>
    onFakeClock(async () => {
      const inner = makeIdempotent(async (id: string) => id, { store: ownStore(), name: 'own-nested-inner' });
      const hang = midway();
      const logger = { warn: jest.fn<(message: string) => void>() };
      const outer = makeIdempotent(
        async (id: string, _context?: Context) => {
          hang.stall();
          return (await rejection(inner(id))).message;
        },
        { store: new DynamoDBStore({ tableName }), name: 'own-nested-outer', logger },
      );
      const answer = outer('k', lambdaContext('own-nested', REMAINING));
      await hang.stuck;
      // The inner claim is given up on at the outer deadline's bound; the outer completion that follows gets its second.
      await jest.advanceTimersByTimeAsync(REMAINING + 1_000);
      expect(await answer).toMatch(/^STORE_FAILURE: .*\(TimeoutError\)/);
      // The stalled store does not answer the outer call's completion either: its caller gets the result, with a warning.
      expect(logger.warn).toHaveBeenCalledTimes(1);
      expect(logger.warn).toHaveBeenCalledWith(expect.stringMatching(/could not mark the record COMPLETED.*"error":"TimeoutError"/));
    }));

  /** A key provider whose currentKey() never answers (a KMS call that hangs), and the gate it opens when asked. */
  const hangingKeys = () => {
    const asked = gate();
    const hanging = aesGcmEncryption({
      currentKey: () => {
        asked.open();
        return new Promise<never>(() => undefined);
      },
      keyById: () => Buffer.alloc(32),
    });
    return { asked, hanging };
  };

  test('a key provider that never answers when the outcome is sealed (a KMS call that hangs): a second before the completion bound, the record completes without the outcome; the caller gets its result, duplicates RESPONSE_NOT_STORED, the function never runs again', () =>
    onFakeClock(async () => {
      let runs = 0;
      const { asked, hanging } = hangingKeys();
      const warnings: string[] = [];
      const once = makeIdempotent(async (id: string, _context?: Context) => ({ id, run: ++runs }), {
        store: new DynamoDBStore({ tableName, client: unbounded, encryption: hanging }),
        name: 'own-key-hangs',
        logger: { warn: (line: string) => void warnings.push(line) },
      });
      const answer = once('k', lambdaContext('own-key-hangs', REMAINING));
      await asked.promise;
      // Past the time the key provider gets (the completion's bound, 100 ms before the deadline, less a
      // second kept for the write), short of that bound: the completion's own request is then sent, and answered.
      await jest.advanceTimersByTimeAsync(REMAINING - 100 - 1_000 + 1);
      expect(await answer).toEqual({ id: 'k', run: 1 });
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/could not encrypt the call's outcome.*"error":"TimeoutError"/);
      expect(await readItem(inspect, tableName, recordId('own-key-hangs', 'k'))).toMatchObject({ status: { S: 'COMPLETED' }, responseOmitted: { BOOL: true } });
      expect((await rejection(once('k', lambdaContext('own-key-hangs', REMAINING)))).code).toBe('RESPONSE_NOT_STORED');
      expect(runs).toBe(1);
    }));

  test('a key provider that never answers when a final error is sealed: the record completes without it, marked as an error; the caller gets its error, duplicates ERROR_NOT_STORED, the function never runs again', () =>
    onFakeClock(async () => {
      let runs = 0;
      const { asked, hanging } = hangingKeys();
      const warnings: string[] = [];
      const once = makeIdempotent(
        async (_id: string, _context?: Context) => {
          runs++;
          throw new Error('declined');
        },
        {
          store: new DynamoDBStore({ tableName, client: unbounded, encryption: hanging }),
          name: 'own-key-hangs-error',
          isFinalError: () => true,
          logger: { warn: (line: string) => void warnings.push(line) },
        },
      );
      const answer = thrown(once('k', lambdaContext('own-key-hangs-error', REMAINING)));
      await asked.promise;
      await jest.advanceTimersByTimeAsync(REMAINING - 100 - 1_000 + 1);
      expect((await answer).message).toBe('declined');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/could not encrypt the call's outcome.*ERROR_NOT_STORED.*"error":"TimeoutError"/);
      expect(await readItem(inspect, tableName, recordId('own-key-hangs-error', 'k'))).toMatchObject({
        status: { S: 'COMPLETED' },
        errorOmitted: { BOOL: true },
      });
      expect((await rejection(once('k', lambdaContext('own-key-hangs-error', REMAINING)))).code).toBe('ERROR_NOT_STORED');
      expect(runs).toBe(1);
    }));

  test('a key provider that never answers when a stored outcome is opened (a KMS call that hangs): STORE_FAILURE before the deadline, the function does not run again', () =>
    onFakeClock(async () => {
      let runs = 0;
      let hang: Gate | undefined;
      const key = Buffer.alloc(32, 1);
      const encryption = aesGcmEncryption({
        currentKey: () => ({ id: 'k1', key }),
        keyById: () => {
          if (hang === undefined) return key;
          hang.open();
          return new Promise<never>(() => undefined);
        },
      });
      const once = makeIdempotent(async (id: string, _context?: Context) => ({ id, run: ++runs }), {
        store: new DynamoDBStore({ tableName, client: unbounded, encryption }),
        name: 'own-key-hangs-at-claim',
      });
      await once('k', lambdaContext('own-key-hangs-at-claim', REMAINING));
      hang = gate();
      const settled = await byDeadlineOnClock(once('k', lambdaContext('own-key-hangs-at-claim', REMAINING)), hang.promise);
      expect(settled).toMatchObject({ error: { code: 'STORE_FAILURE', message: expect.stringContaining('(TimeoutError)') } });
      expect(runs).toBe(1);
    }));
});

describe('idempotentBatch on a store that stops answering: the batch answers before its Lambda deadline', () => {
  // A client per test: a connection a test left stalled would garble the next test's first request.
  let unbounded: DynamoDBClient;
  beforeEach(async () => {
    unbounded = new DynamoDBClient({});
    // Connected before the invocation starts, as a warm Lambda's client is: the first claim takes its usual few milliseconds.
    await unbounded.send(new DescribeTableCommand({ TableName: tableName }));
  });
  afterEach(() => unbounded.destroy());
  /** A context whose time left runs down in real time, as Lambda's does. */
  const invocation = () => timedContext({ functionName: 'batch-hangs', remainingMillis: REMAINING });
  const failures = (settled: { value: BatchResponse } | { error: unknown } | string) =>
    typeof settled === 'object' && 'value' in settled ? settled.value.batchItemFailures.map((failure) => failure.itemIdentifier) : settled;

  // How many records the answer names with throwOnFullBatchFailure: false: a queue's every record,
  // a stream's first (Lambda resumes from it), through a pipe every record from the first on. And
  // how many claims each invocation has in flight: `concurrency` (10) records at once, a stream's one.
  test.each([
    [
      'SQS standard (more records than `concurrency`)',
      12,
      10,
      () => sqsEvent([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].map((n) => sqsRecord({ orderId: `s-${n}` }))),
    ],
    [
      'SQS FIFO (more groups than `concurrency`)',
      24,
      10,
      () => sqsEvent([1, 2].flatMap((n) => [...'abcdefghijkl'].map((group) => sqsRecord({ orderId: `${group}-${n}` }, { groupId: group })))),
    ],
    ['Kinesis', 1, 1, () => ({ Records: [1, 2, 3].map((n) => kinesisRecord({ orderId: `k-${n}` }, n)) })],
    ['an EventBridge pipe from Kinesis', 3, 1, () => [1, 2, 3].map((n) => piped(kinesisRecord({ orderId: `p-${n}` }, n)))],
  ] as const)(
    '%s, black-holed from the start: the batch is thrown back whole, or every record reported, before the deadline; none runs',
    (_name, reportedCount, inFlight, event) =>
      onFakeClock(async () => {
        let runs = 0;
        const batch = event();
        const handler = idempotentBatch(async () => ++runs, { store: new DynamoDBStore({ tableName, client: unbounded }), logger: quiet });
        const reported = idempotentBatch(async () => ++runs, {
          store: new DynamoDBStore({ tableName, client: unbounded }),
          logger: quiet,
          throwOnFullBatchFailure: false,
        });
        proxy.stall();
        // Two invocations at once, each with its own deadline: neither claim is ever answered, so
        // neither sees the other's records.
        const both = Promise.all([byDeadline(handler(batch, invocation())), byDeadline(reported(batch, invocation()))]);
        await moveToDeadline(proxy.swallowed(2 * inFlight), both);
        const [settled, answered] = await both;
        expect(settled).toMatchObject({ error: expect.any(AggregateError) });
        const answer = failures(answered);
        expect(Array.isArray(answer) ? answer.length : answer).toBe(reportedCount);
        expect(runs).toBe(0);
      }),
  );

  test('an event loop kept busy from before the bound until past the deadline (a slow CPU, a long GC pause): no record starts after the deadline, the batch answers as soon as the loop is free', async () => {
    let runs = 0;
    // More groups than `concurrency`: the first worker whose group fails meets the next group past the deadline.
    const batch = sqsEvent([...'abcdefghijkl'].map((group) => sqsRecord({ orderId: `busy-${group}` }, { groupId: group })));
    const handler = idempotentBatch(async () => ++runs, {
      store: new DynamoDBStore({ tableName, client: unbounded }),
      logger: quiet,
      throwOnFullBatchFailure: false,
    });
    proxy.stall();
    const context = invocation();
    const call = handler(batch, context);
    // A timer due before the call's bound that holds the loop until the context reads no time left:
    // every timer of the call fires after it, past the deadline. Records started then would wait
    // for requests of their own (a second at least: the context reads 0, so it is no longer seen
    // running down), and the answer with them. The loop is free once it returns: the batch answers
    // within a few turns of it (each bound that fired late lets one pass for an answer received
    // meanwhile to be read; none comes, the store is stalled), long before a second has passed.
    const turnsAfterFree = gate();
    const turns = (left: number) => (left === 0 ? turnsAfterFree.open() : setImmediate(turns, left - 1));
    setTimeout(() => {
      while (context.getRemainingTimeInMillis() > 0);
      turns(10);
    }, REMAINING - 200);
    const settled = await Promise.race([
      call.then((value) => ({ value })),
      turnsAfterFree.promise.then(() => 'not answered within ten turns of the loop once it was free' as const),
    ]);
    expect(failures(settled)).toHaveLength(12);
    expect(runs).toBe(0);
  });

  test('the requests given up on at the bound: nothing more is sent to the store before the batch answers; a claim that may have applied is left to its lease, which ends at the deadline', () =>
    onFakeClock(async () => {
      const sent: string[] = [];
      let settled = false;
      unbounded.middlewareStack.add(
        (next, { commandName }) =>
          (args) => {
            sent.push(`${commandName} ${settled ? 'after' : 'before'} the answer`);
            return next(args);
          },
        { step: 'initialize' },
      );
      const handler = idempotentBatch(async () => 'done', {
        store: new DynamoDBStore({ tableName, client: unbounded }),
        logger: quiet,
        throwOnFullBatchFailure: false,
      });
      const batch = sqsEvent([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => sqsRecord({ orderId: `given-up-${n}` })));
      proxy.stall();
      const call = handler(batch, invocation()).finally(() => (settled = true));
      expect(failures(await byDeadlineOnClock(call, proxy.swallowed(10)))).toHaveLength(10);
      await new Promise((resolve) => setImmediate(resolve));
      // Each release sent at the bound would have been prepared (serialized, signed, a socket opened)
      // before the answer: with a fraction of a vCPU, ten of them take longer than the time left.
      expect(sent).toEqual(Array.from({ length: 10 }, () => 'PutItemCommand before the answer'));
    }));

  test("a record started with less than a second left, late in the invocation, is given up on by the call's bound, not a second after its start: the context has been seen running down since the batch began", () =>
    // On a fake clock, which the context reads too (see above): the timers fire in the same order
    // as in real time, none of them late.
    onFakeClock(async () => {
      const store = new InMemoryStore();
      let holed = false;
      const blackHoled: IdempotencyStore = {
        claim: (request) => (holed ? new Promise<never>(() => undefined) : store.claim(request)),
        complete: (request) => store.complete(request),
        release: (request) => store.release(request),
      };
      const context = timedContext({ functionName: 'late-record', remainingMillis: 1_200 });
      const handler = idempotentBatch(
        async (order: Order) => {
          // The first record takes until 900 ms are left, then the store stops answering; the second
          // starts (more time is left than the first took) with its claim a request of its own.
          await new Promise((resolve) => setTimeout(resolve, context.getRemainingTimeInMillis() - 900));
          holed = true;
          return order.orderId;
        },
        { store: blackHoled, logger: quiet },
      );
      const batch = [1, 2].map((n) => kinesisRecord({ orderId: `late-${n}` }, n));
      const settled = byDeadline(handler({ Records: batch }, context), 1_200);
      await jest.advanceTimersByTimeAsync(1_200);
      expect(failures(await settled)).toEqual([kinesisSequence(2)]);
    }));

  test('black-holed after the first record: it is done (its completion given up on), the rest are reported unstarted', () =>
    onFakeClock(async () => {
      const ran: string[] = [];
      const hang = midway();
      const handler = idempotentBatch(
        async (order: Order) => {
          ran.push(order.orderId);
          hang.stall();
          return order.orderId;
        },
        { store: new DynamoDBStore({ tableName, client: unbounded }), logger: quiet },
      );
      const batch = [1, 2, 3].map((n) => kinesisRecord({ orderId: `after-${n}` }, n));
      expect(failures(await byDeadlineOnClock(handler({ Records: batch }, invocation()), hang.stuck))).toEqual([kinesisSequence(2)]);
      expect(ran).toEqual(['after-1']);
    }));
});
