/**
 * Edges of the engine's single-flight, caching and bookkeeping that a user meets as a function run
 * twice, a duplicate answered wrong, a wrong Retry-After or a wrong count on a dashboard: each on
 * DynamoDB Local with injected clocks and gates (the in-memory store where fake timers drive a wait;
 * a spied store method only for a commit fault a real server cannot produce on demand).
 */
import { randomUUID } from 'node:crypto';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { jest } from '@jest/globals';
import { DynamoDBStore, IdempotencyError, type IdempotencyEvent, makeIdempotent, transaction } from '../../lib/index.js';
import { InMemoryStore, lambdaContext as testingContext } from '../../lib/testing/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { flush, gate } from '../support/gate.js';
import { lambdaContext } from '../support/lambda.js';
import { rejection } from '../support/rejections.js';

const T0 = 1_700_000_000_000;
const { client, tableName, store } = useFreshTable({ prefix: 'flight-edges' });

test("a call of a durable invocation that starts after its leader's durable lease ended still follows it: one execution holds the key, the function runs once", async () => {
  let now = T0;
  const charges: string[] = [];
  const release = gate();
  const charge = makeIdempotent(
    async (orderId: string, _ctx: object) => {
      charges.push(orderId);
      await release.promise;
      return `charged ${orderId}`;
    },
    { store, name: `durable-lease-${randomUUID()}`, durableLeaseSeconds: 60, now: () => now },
  );
  // Two child contexts of one invocation of one execution, as the durable SDK hands them out.
  const lambda = lambdaContext('orders');
  const arn = randomUUID();
  const child = () => ({ executionContext: { durableExecutionArn: arn }, step: async () => undefined, lambdaContext: lambda });
  const first = charge('o-1', child());
  while (charges.length === 0) await flush();
  now += 2 * 60_000; // past the execution's lease: the record is the execution's all the same
  const second = charge('o-1', child());
  await flush();
  release.open();
  expect(await Promise.all([first, second])).toEqual(['charged o-1', 'charged o-1']);
  expect(charges).toEqual(['o-1']);
});

/** A function of `name` on `store` that holds its key (`entered` open) until `hung` opens, then returns 'first'. */
function heldBy(store: InMemoryStore, name: string) {
  const hung = gate();
  const entered = gate();
  const holder = makeIdempotent(
    async (_id: string) => {
      entered.open();
      await hung.promise;
      return 'first';
    },
    { store, name },
  );
  return { holder, hung, entered };
}

/** Lets the queued promise callbacks and in-memory store requests run, up to `turns` rounds, until `done` says so. */
async function settle(done: () => boolean, turns = 100): Promise<void> {
  for (let turn = 0; turn < turns && !done(); turn++) await flush();
}

test("a durable execution's record names its owner without the execution's ARN, whose execution name may carry an order id", async () => {
  const name = `durable-owner-${randomUUID()}`;
  const arn = `arn:aws:lambda:eu-west-1:123456789012:function:orders:$LATEST/durable-execution/order-4711-alice/${randomUUID()}`;
  let owner: string | undefined;
  const charge = makeIdempotent(
    async (orderId: string, _ctx: object) => {
      owner = (await readItem(client, tableName, recordId(name, orderId)))?.owner?.S;
      return `charged ${orderId}`;
    },
    { store, name },
  );
  expect(await charge('o-1', { executionContext: { durableExecutionArn: arn }, step: async () => undefined, lambdaContext: lambdaContext('orders') })).toBe(
    'charged o-1',
  );
  expect(owner).toMatch(/^durable:/);
  expect(owner).not.toContain('order-4711');
});

// The `now` option may run ahead of the timers (a test's manual clock moved past a lease): a duplicate
// waiting for its in-process leader looks at the lease again every second, not only at its end.
test("a duplicate waiting for a hung in-process leader takes over within a second of the `now` clock passing the leader's lease", async () => {
  jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
  try {
    let now = T0;
    const runs: string[] = [];
    const hung = gate();
    const pay = makeIdempotent(
      async (id: string) => {
        runs.push(id);
        if (runs.length === 1) await hung.promise;
        return runs.length;
      },
      { store: new InMemoryStore(), name: 'recheck', leaseSeconds: 60, now: () => now },
    );
    const first = pay('k');
    await settle(() => runs.length === 1);
    const second = pay('k');
    await settle(() => false, 10);
    now += 61_000;
    await jest.advanceTimersByTimeAsync(1_000);
    await settle(() => runs.length === 2);
    expect(runs).toEqual(['k', 'k']);
    expect(await second).toBe(2);
    hung.open();
    expect((await rejection(first)).code).toBe('SUPERSEDED');
  } finally {
    jest.useRealTimers();
  }
});

test('a duplicate that takes over a hung in-process leader only after its own deadline passed holds the record until that deadline, not `leaseSeconds` past it', async () => {
  jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
  try {
    let now = T0;
    const clock = () => now;
    const store = new InMemoryStore();
    const name = 'late-follower';
    const leases: Array<number | undefined> = [];
    const hung = gate();
    const pay = makeIdempotent(
      async (id: string, _ctx: object) => {
        if (leases.push((await store.inspect(recordId(name, id)))?.leaseUntil) === 1) await hung.promise;
        return leases.length;
      },
      { store, name, now: clock },
    );
    const first = pay('k', testingContext({ remainingMillis: 5_000, now: clock }));
    await settle(() => leases.length === 1);
    // An invocation with 3 s left follows the first in process; the clock then passes both deadlines.
    const second = pay('k', testingContext({ remainingMillis: 3_000, now: clock }));
    await settle(() => false, 10);
    now += 6_000;
    await jest.advanceTimersByTimeAsync(1_000);
    await settle(() => leases.length === 2);
    // Its lease is its Lambda deadline, as any call's with a context: a retry may take over right after it.
    expect(leases).toEqual([T0 + 5_000, T0 + 3_000]);
    expect(await second).toBe(2);
    hung.open();
    expect((await rejection(first)).code).toBe('SUPERSEDED');
  } finally {
    jest.useRealTimers();
  }
});

test('a leader that outlived its lease and was taken over in process, once it ends, leaves its successor leading: a later duplicate waits for the successor, not IN_PROGRESS', async () => {
  let now = T0;
  const runs: number[] = [];
  const gates = [gate(), gate()];
  const pay = makeIdempotent(
    async (_id: string) => {
      const run = runs.push(runs.length + 1);
      await gates[run - 1]!.promise;
      return run;
    },
    { store, name: `successor-${randomUUID()}`, leaseSeconds: 60, now: () => now },
  );
  const first = pay('k');
  while (runs.length === 0) await flush();
  now += 61_000; // the first call's lease ended: a duplicate takes the record over
  const second = pay('k');
  while (runs.length === 1) await flush();
  gates[0]!.open();
  expect((await rejection(first)).code).toBe('SUPERSEDED');
  const third = pay('k');
  await flush();
  gates[1]!.open();
  expect(await Promise.all([second, third])).toEqual([2, 2]);
  expect(runs).toEqual([1, 2]);
});

test('a duplicate waiting for another process (waitForInProgressMillis) backs off no further than its bound: IN_PROGRESS at the bound, not at the next step of the backoff', async () => {
  jest.useFakeTimers({ now: T0, doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
  try {
    const mem = new InMemoryStore();
    // Two engines on one store stand for two processes: the second never follows the first in process.
    const { holder, hung, entered } = heldBy(mem, 'bounded-wait');
    const duplicate = makeIdempotent(async (_id: string) => 'second', { store: mem, name: 'bounded-wait', waitForInProgressMillis: 120 });
    const first = holder('k');
    await entered.promise;
    let answered: unknown;
    void rejection(duplicate('k')).then((error) => (answered = error.code));
    await jest.advanceTimersByTimeAsync(120); // backoff steps of 50 ms, then the 70 ms left
    await settle(() => answered !== undefined);
    expect(answered).toBe('IN_PROGRESS');
    hung.open();
    expect(await first).toBe('first');
  } finally {
    jest.useRealTimers();
  }
});

test('a duplicate waiting for another process polls with its claim, backing off from 50 ms to 1 s: 5 requests in the first second, then one a second', async () => {
  jest.useFakeTimers({ now: T0, doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
  try {
    const mem = new InMemoryStore();
    const claims: number[] = [];
    const claim = mem.claim.bind(mem);
    mem.claim = (request) => {
      claims.push(Date.now() - T0);
      return claim(request);
    };
    const { holder, hung, entered } = heldBy(mem, 'polling');
    const duplicate = makeIdempotent(async (_id: string) => 'second', { store: mem, name: 'polling', waitForInProgressMillis: 4_000 });
    const first = holder('k');
    await entered.promise;
    const start = Date.now() - T0;
    claims.length = 0;
    let answered: unknown;
    void rejection(duplicate('k')).then((error) => (answered = error.code));
    await jest.advanceTimersByTimeAsync(4_000);
    await settle(() => answered !== undefined);
    expect(answered).toBe('IN_PROGRESS');
    const sent = claims.map((at) => at - start);
    expect(sent.filter((at) => at < 1_000)).toEqual([0, 50, 150, 350, 750]);
    // The last step is cut to the bound, where a last claim decides.
    expect(sent.filter((at) => at >= 1_000)).toEqual([1_550, 2_550, 3_550, 4_000]);
    hung.open();
    expect(await first).toBe('first');
  } finally {
    jest.useRealTimers();
  }
});

test('an INPROGRESS record without a lease (written by hand, or by an older version) is held until its retention ends: Retry-After says so, not 1 s', async () => {
  const name = `leaseless-${randomUUID()}`;
  const expiration = T0 / 1000 + 100;
  await client.send(
    new PutItemCommand({
      TableName: tableName,
      Item: { id: { S: recordId(name, 'k') }, status: { S: 'INPROGRESS' }, expiration: { N: String(expiration) }, owner: { S: 'by-hand' } },
    }),
  );
  const pay = makeIdempotent(async (_id: string) => 'paid', { store, name, now: () => T0 });
  const error = await rejection(pay('k'));
  expect(error.code).toBe('IN_PROGRESS');
  expect(error.retryAfterSeconds).toBe(101);
});

test("two calls that each call the other's function with the other's key wait on neither: one nested call meets the other's record (IN_PROGRESS), the other follows it; each function runs once", async () => {
  const memory = new InMemoryStore();
  const claims: string[] = [];
  const counted = Object.assign(Object.create(memory) as InMemoryStore, {
    claim: (request: Parameters<InMemoryStore['claim']>[0]) => (claims.push(request.key.split('#')[0]!), memory.claim(request)),
  });
  const runs: string[] = [];
  const bothStarted = gate();
  let started = 0;
  // A clock that never moves: a nested call waiting on the other's leader would wait until its
  // deadline's bound (both answering IN_PROGRESS after it), or, given no context, for ever.
  const options = { store: counted, now: () => T0 };
  type Wrapped = (id: string, context?: object) => Promise<string>;
  /** `kind` of `id`, which calls `other()` with `otherId` once both top-level calls have started. */
  const crossing = (kind: string, other: () => Wrapped, otherId: string): Wrapped =>
    makeIdempotent(
      async (id: string, _context?: object) => {
        runs.push(`${kind} ${id}`);
        if (++started === 2) bothStarted.open();
        await bothStarted.promise;
        const answer = await other()(otherId).catch((error: IdempotencyError) => error.code);
        return `${kind} ${id} after ${answer}`;
      },
      { ...options, name: `cycle-${kind}` },
    );
  const refund: Wrapped = crossing('refund', () => charge, 'c-1');
  const charge: Wrapped = crossing('charge', () => refund, 'r-1');
  const [refunded, charged] = await Promise.all([refund('r-1', lambdaContext('cycle', 1_500)), charge('c-1', lambdaContext('cycle', 1_500))]);
  // Whichever nested call looks second finds the cycle: it meets the record; the other replays what that call answered.
  expect([
    ['refund r-1 after IN_PROGRESS', 'charge c-1 after refund r-1 after IN_PROGRESS'],
    ['refund r-1 after charge c-1 after IN_PROGRESS', 'charge c-1 after IN_PROGRESS'],
  ]).toContainEqual([refunded, charged]);
  expect(runs.sort()).toEqual(['charge c-1', 'refund r-1']);
  // The nested call that met the record asked the store, at once (a wait's bound answers without a request).
  expect(claims).toHaveLength(3);
  expect(new Set(claims)).toEqual(new Set(['cycle-charge', 'cycle-refund']));
});

describe('events, as the dashboard counts them', () => {
  test("a durable call that fails after another invocation of its execution completed the record is not superseded: the record is the execution's own", async () => {
    const events: IdempotencyEvent[] = [];
    const failFirst = gate();
    let runs = 0;
    const charge = makeIdempotent(
      async (orderId: string, _ctx: object) => {
        if (++runs === 1) {
          await failFirst.promise;
          throw new Error('card reader gone');
        }
        return `charged ${orderId}`;
      },
      { store, name: `own-record-${randomUUID()}`, observability: (event: IdempotencyEvent) => void events.push(event) },
    );
    // Stubs without a Lambda context: each stands for an invocation of its own of the one execution.
    const arn = randomUUID();
    const invocation = () => ({ executionContext: { durableExecutionArn: arn }, step: async () => undefined });
    const first = charge('o-1', invocation());
    while (runs === 0) await flush();
    expect(await charge('o-1', invocation())).toBe('charged o-1');
    failFirst.open();
    await expect(first).rejects.toThrow('card reader gone');
    expect(events).toEqual(['miss']);
  });

  test.each([
    ['fails', 'superseded, for the Superseded alarm'],
    ['returns', 'SUPERSEDED as an attempt that outlived its lease'],
  ])(
    "a durable invocation that resumes on its execution's record late in the lease, and %s after another execution took the key over past it, is %s: its lease is the record's, not one counted from its resumption",
    async (ending) => {
      let now = T0;
      const events: IdempotencyEvent[] = [];
      const resumed = gate();
      const taken = gate();
      const runs: string[] = [];
      const charge = makeIdempotent(
        async (run: string, _ctx: object) => {
          runs.push(run);
          // The first invocation suspends: the durable SDK never settles its handler.
          if (run === 'first') await new Promise(() => undefined);
          await (run === 'resumed' ? resumed : taken).promise;
          if (run === 'resumed' && ending === 'fails') throw new Error('card reader gone');
          return `charged by ${run}`;
        },
        {
          store,
          name: `resumed-lease-${randomUUID()}`,
          key: () => 'o-1',
          durableLeaseSeconds: 60,
          now: () => now,
          observability: (event: IdempotencyEvent) => void events.push(event),
        },
      );
      // Stubs without a Lambda context: each stands for an invocation of its own.
      const invocation = (arn: string) => ({ executionContext: { durableExecutionArn: arn }, step: async () => undefined });
      const [one, two] = [randomUUID(), randomUUID()];
      void charge('first', invocation(one));
      while (runs.length === 0) await flush();
      now += 50_000; // the execution resumes 10 s before its lease (claimed at T0) ends
      const again = charge('resumed', invocation(one));
      while (runs.length === 1) await flush();
      now += 11_000; // past the lease: another execution with the key takes it over
      const other = charge('other', invocation(two));
      while (runs.length === 2) await flush();
      resumed.open();
      if (ending === 'fails') {
        await expect(again).rejects.toThrow('card reader gone');
      } else {
        expect((await rejection(again)).message).toMatch(/^SUPERSEDED: This attempt outlived its lease and its record was taken over by another attempt/);
      }
      taken.open();
      expect(await other).toBe('charged by other');
      expect(events).toEqual(['miss', 'takeover', 'superseded']);
    },
  );

  test('a claim the store fails (a table that does not exist) counts one store failure, for the StoreFailures alarm, and nothing else', async () => {
    const events: IdempotencyEvent[] = [];
    let runs = 0;
    const pay = makeIdempotent(async (_id: string) => ++runs, {
      store: new DynamoDBStore({ tableName: `no-such-table-${randomUUID()}`, client }),
      name: 'missing-table',
      observability: (event: IdempotencyEvent) => void events.push(event),
    });
    expect((await rejection(pay('k'))).code).toBe('STORE_FAILURE');
    expect(events).toEqual(['storeFailure']);
    expect(runs).toBe(0);
  });

  test('a call after a completed record outlived its retention claims the key anew: a miss, not a takeover (Takeovers count attempts that outlived their lease)', async () => {
    let now = T0;
    let runs = 0;
    const events: IdempotencyEvent[] = [];
    const pay = makeIdempotent(async (_id: string) => ++runs, {
      store,
      name: `retained-${randomUUID()}`,
      expiresAfterSeconds: 60,
      now: () => now,
      observability: (event: IdempotencyEvent) => void events.push(event),
    });
    expect(await pay('k')).toBe(1);
    now += 61_000;
    expect(await pay('k')).toBe(2);
    expect(events).toEqual(['miss', 'miss']);
  });
});

describe('the local cache (cacheSize)', () => {
  test("another process's outcome, replayed from the store, is cached: the next duplicate costs no request, one with another payload is PAYLOAD_MISMATCH, and past the retention the key is claimed anew", async () => {
    let now = T0;
    let runs = 0;
    const events: IdempotencyEvent[] = [];
    const name = `cached-${randomUUID()}`;
    const options = {
      store,
      name,
      key: (order: { id: string; amount: number }) => order.id,
      fingerprint: (order: { id: string; amount: number }) => order.amount,
      expiresAfterSeconds: 60,
      now: () => now,
    };
    const pay = async (_order: { id: string; amount: number }) => ++runs;
    // Two processes: the first runs the call, the second (with a cache) meets its record.
    const first = makeIdempotent(pay, options);
    const second = makeIdempotent(pay, { ...options, cacheSize: 10, observability: (event: IdempotencyEvent) => void events.push(event) });
    expect(await first({ id: 'k', amount: 5 })).toBe(1);
    expect(await second({ id: 'k', amount: 5 })).toBe(1);
    expect(await second({ id: 'k', amount: 5 })).toBe(1);
    expect(events).toEqual(['replay', 'cacheReplay']);
    expect((await rejection(second({ id: 'k', amount: 7 }))).code).toBe('PAYLOAD_MISMATCH');
    now += 61_000;
    expect(await second({ id: 'k', amount: 5 })).toBe(2);
    expect(events).toEqual(['replay', 'cacheReplay', 'payloadMismatch', 'miss']);
  });

  test('an entry holds its response decompressed: 20 MB of repetitive JSON, stored gzip-compressed in one item, is replayed whole from memory', async () => {
    const name = `cached-large-${randomUUID()}`;
    const large = 'y'.repeat(20_000_000);
    let runs = 0;
    const events: IdempotencyEvent[] = [];
    const pay = makeIdempotent(
      async (_id: string) => {
        runs++;
        return large;
      },
      { store, name, cacheSize: 10, observability: (event: IdempotencyEvent) => void events.push(event) },
    );
    expect((await pay('k')).length).toBe(20_000_000);
    const item = await readItem(client, tableName, recordId(name, 'k'));
    expect(item?.response?.B?.byteLength).toBeLessThan(400 * 1024);
    expect(await pay('k')).toBe(large);
    expect([runs, events]).toEqual([1, ['miss', 'cacheReplay']]);
  });
});

describe("a commit of the function's writes that fails", () => {
  const conflict = () =>
    new IdempotencyError('TRANSACTION_CONFLICT', 'The transaction kept conflicting with concurrent writes; nothing was written.', { retryAfterSeconds: 1 });

  test('without an answer, then released: COMMIT_FAILED with retryAfterSeconds 1 (Retry-After: 1), nothing written; the retry runs', async () => {
    const failing = new DynamoDBStore({ tableName, client });
    jest.spyOn(failing, 'completeWithWrites').mockRejectedValueOnce(Object.assign(new Error('socket hang up'), { name: 'NetworkingError' }));
    let runs = 0;
    const name = `settled-${randomUUID()}`;
    const pay = makeIdempotent(
      async (id: string) => {
        transaction().put({ TableName: tableName, Item: { id: `effect#${name}#${id}` } });
        return ++runs;
      },
      { store: failing, name },
    );
    const error = await rejection(pay('k'));
    expect(error.code).toBe('COMMIT_FAILED');
    expect(error.retryAfterSeconds).toBe(1);
    expect(error.headers).toEqual({ 'Retry-After': '1' });
    expect(await pay('k')).toBe(2);
  });

  test("a nested call's TRANSACTION_CONFLICT is never stored by its caller, whatever isFinalError says: the key is released and the retry runs", async () => {
    const conflicting = new DynamoDBStore({ tableName, client });
    jest.spyOn(conflicting, 'completeWithWrites').mockRejectedValueOnce(conflict());
    const name = `conflict-${randomUUID()}`;
    const inner = makeIdempotent(
      async (id: string) => {
        transaction().put({ TableName: tableName, Item: { id: `effect#${name}#${id}` } });
        return `inner ${id}`;
      },
      { store: conflicting, name: `${name}-inner` },
    );
    const outer = makeIdempotent(async (id: string) => `outer saw ${await inner(id)}`, { store, name, isFinalError: () => true });
    expect((await rejection(outer('k'))).code).toBe('TRANSACTION_CONFLICT');
    expect(await readItem(client, tableName, recordId(name, 'k'))).toBeUndefined();
    expect(await outer('k')).toBe('outer saw inner k');
  });

  test('atomic: a commit that kept conflicting is no store failure: the StoreFailures alarm stays quiet', async () => {
    const conflicting = new DynamoDBStore({ tableName, client });
    jest.spyOn(conflicting, 'claimCompleted').mockRejectedValueOnce(conflict());
    const events: IdempotencyEvent[] = [];
    const pay = makeIdempotent(async (_id: string) => 'paid', {
      store: conflicting,
      name: `atomic-conflict-${randomUUID()}`,
      atomic: true,
      observability: (event: IdempotencyEvent) => void events.push(event),
    });
    expect((await rejection(pay('k'))).code).toBe('TRANSACTION_CONFLICT');
    expect(events).toEqual([]);
  });
});
