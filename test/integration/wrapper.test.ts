/**
 * `makeIdempotent` against a real DynamoDB Local: leases, takeover and fencing, driven by an
 * injected clock and gates (no sleeps).
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import middy from '@middy/core';
import { type IdempotencyError, idempotency, makeIdempotent } from '../../lib/index.js';
import { InMemoryStore, lambdaContext } from '../../lib/testing/index.js';
import { idsWithPrefix, readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { gate, onlyOneEnters, Turnstile } from '../support/gate.js';
import { rejection } from '../support/rejections.js';

const T0 = 1_700_000_000_000;
const { client, tableName, store } = useFreshTable();

interface Order {
  readonly id: string;
}

/** A wrapped function whose every invocation is held by the test, with an adjustable clock. */
function heldFunction(name: string, leaseSeconds = 5, expiresAfterSeconds?: number) {
  const clock = { now: T0 };
  const turnstile = new Turnstile<() => string>();
  const once = makeIdempotent(async (_order: Order) => (await turnstile.enter())(), {
    store,
    name,
    key: (order) => order.id,
    leaseSeconds,
    ...(expiresAfterSeconds === undefined ? {} : { expiresAfterSeconds }),
    now: () => clock.now,
    // Each call stands for another process: no in-process single-flight.
    singleFlight: false,
  });
  const item = (): Promise<Record<string, AttributeValue> | undefined> => readItem(client, tableName, recordId(name, 'o-1'));
  return { clock, turnstile, once, item };
}

test('first call, replay, key-order insensitivity and an undefined result', async () => {
  let runs = 0;
  const once = makeIdempotent(
    async (input: { a: number; b: number[] }) => {
      runs++;
      return input.a === 0 ? undefined : { sum: input.a + input.b.length };
    },
    { store, name: 'basic' },
  );
  expect(await once({ a: 1, b: [1, 2] })).toEqual({ sum: 3 });
  expect(await once({ b: [1, 2], a: 1 } as { a: number; b: number[] })).toEqual({ sum: 3 });
  expect(await once({ a: 0, b: [] })).toBeUndefined();
  expect(await once({ b: [], a: 0 } as { a: number; b: number[] })).toBeUndefined();
  expect(runs).toBe(2);
  expect(await idsWithPrefix(client, tableName, 'basic#')).toEqual([recordId('basic', { a: 0, b: [] }), recordId('basic', { a: 1, b: [1, 2] })].sort());
});

test('50 concurrent identical calls from as many processes run the function exactly once', async () => {
  const turnstile = new Turnstile<string>();
  // Without single-flight, each call meets the store as a call from another process would.
  const once = makeIdempotent(async (_order: Order) => turnstile.enter(), {
    store,
    name: 'burst',
    key: (order) => order.id,
    now: () => T0,
    singleFlight: false,
  });
  const calls = Array.from({ length: 50 }, () => once({ id: 'b-1' }));
  const holder = await onlyOneEnters(turnstile, calls);
  holder.open('once');
  const results = await Promise.allSettled(calls);
  expect(results.filter((r) => r.status === 'fulfilled')).toEqual([{ status: 'fulfilled', value: 'once' }]);
  const codes = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as IdempotencyError).code] : []));
  expect(codes).toEqual(Array.from({ length: 49 }, () => 'IN_PROGRESS'));
  expect(await once({ id: 'b-1' })).toBe('once');
  expect(turnstile.count).toBe(1);
});

test('a duplicate from another process with another payload is PAYLOAD_MISMATCH, whether the record is INPROGRESS or COMPLETED, and never runs', async () => {
  const turnstile = new Turnstile<string>();
  const pay = makeIdempotent(async (order: { id: string; amount: number }) => `${order.amount} ${await turnstile.enter()}`, {
    store,
    name: 'payload-mismatch',
    key: (order) => order.id,
    fingerprint: (order) => order.amount,
    now: () => T0,
    // Each call stands for another process: the duplicate meets the record, not the leader.
    singleFlight: false,
  });
  const first = pay({ id: 'o-1', amount: 10 });
  const gate = await turnstile.next();
  const held = await readItem(client, tableName, recordId('payload-mismatch', 'o-1'));
  expect((await rejection(pay({ id: 'o-1', amount: 11 }))).code).toBe('PAYLOAD_MISMATCH');
  expect(await readItem(client, tableName, recordId('payload-mismatch', 'o-1'))).toStrictEqual(held);
  gate.open('paid');
  expect(await first).toBe('10 paid');
  expect((await rejection(pay({ id: 'o-1', amount: 11 }))).code).toBe('PAYLOAD_MISMATCH');
  expect(await pay({ id: 'o-1', amount: 10 })).toBe('10 paid');
  expect(turnstile.count).toBe(1);
});

test('a record stored without a fingerprint never replays to a call that validates payloads: PAYLOAD_MISMATCH, nothing runs', async () => {
  let runs = 0;
  const options = { store, name: 'fingerprint-added', key: (order: { id: string; amount: number }) => order.id, now: () => T0 };
  const pay = async (order: { id: string; amount: number }) => `${order.amount} ${++runs}`;
  expect(await makeIdempotent(pay, options)({ id: 'o-1', amount: 10 })).toBe('10 1');
  // The same function deployed again with payload validation: the stored record cannot vouch for its payload.
  const validating = makeIdempotent(pay, { ...options, fingerprint: (order) => order.amount });
  for (const amount of [10, 11]) expect((await rejection(validating({ id: 'o-1', amount }))).code).toBe('PAYLOAD_MISMATCH');
  expect(runs).toBe(1);
});

test('a call after the lease lapses takes the record over; before it, the call is IN_PROGRESS', async () => {
  const { clock, turnstile, once, item } = heldFunction('lease');
  const a = once({ id: 'o-1' });
  const gateA = await turnstile.next();
  const held = await item();
  expect(held).toMatchObject({ status: { S: 'INPROGRESS' }, leaseUntil: { N: String(T0 + 5_000) } });

  clock.now = T0 + 5_000; // the lease ends *after* this instant
  const early = await rejection(once({ id: 'o-1' }));
  expect(early).toMatchObject({ code: 'IN_PROGRESS', retryAfterSeconds: 1 });
  expect(await item()).toStrictEqual(held);

  clock.now = T0 + 5_001;
  const b = once({ id: 'o-1' });
  const gateB = await turnstile.next();
  const taken = await item();
  expect(taken).toMatchObject({ status: { S: 'INPROGRESS' }, leaseUntil: { N: String(T0 + 10_001) } });
  expect(taken!.owner!.S).not.toBe(held!.owner!.S);

  gateB.open(() => 'B');
  expect(await b).toBe('B');
  gateA.open(() => 'A');
  expect((await rejection(a)).code).toBe('SUPERSEDED');
  expect(turnstile.count).toBe(2);
});

test('a lease longer than the retention holds the record to its end: a duplicate past the retention is IN_PROGRESS', async () => {
  const { clock, turnstile, once, item } = heldFunction('lease-over-retention', 60, 1);
  const a = once({ id: 'o-1' });
  const gateA = await turnstile.next();
  expect(await item()).toMatchObject({ expiration: { N: String(T0 / 1000 + 60) } });

  clock.now = T0 + 59_000; // long past the 1 s retention, within the 60 s lease
  const duplicate = await Promise.race([
    rejection(once({ id: 'o-1' })),
    turnstile.next().then((gate) => {
      gate.open(() => 'again');
      throw new Error('the duplicate ran while the first attempt held its lease');
    }),
  ]);
  expect(duplicate).toMatchObject({ code: 'IN_PROGRESS', retryAfterSeconds: 1 });
  gateA.open(() => 'A');
  expect(await a).toBe('A');
  expect(turnstile.count).toBe(1);
});

test('a clock that steps back while the function runs keeps the retention its claim set: a duplicate on a true clock replays', async () => {
  const { clock, turnstile, once, item } = heldFunction('clock-steps-back', 5, 3600);
  const a = once({ id: 'o-1' });
  const gateA = await turnstile.next();
  expect(await item()).toMatchObject({ expiration: { N: String(T0 / 1000 + 3600) } });

  clock.now = T0 - 7_200_000; // NTP steps this host's clock back two hours before the function returns
  gateA.open(() => 'A');
  expect(await a).toBe('A');
  expect(Number((await item())?.expiration?.N)).toBe(T0 / 1000 + 3600);

  clock.now = T0 + 1_000; // another process, whose clock is right, a second later
  const duplicate = await Promise.race([
    once({ id: 'o-1' }),
    turnstile.next().then((gate) => {
      gate.open(() => 'again');
      return 'ran again';
    }),
  ]);
  expect(duplicate).toBe('A');
  expect(turnstile.count).toBe(1);
});

test('processes whose clocks differ by 6 s: one behind never takes a live lease over; one ahead takes it over, and the holder is fenced', async () => {
  const turnstile = new Turnstile<() => string>();
  const processOn = (offset: number) => {
    const now = () => T0 + offset;
    const once = makeIdempotent(async (_order: Order, _context: unknown) => (await turnstile.enter())(), {
      store,
      name: 'skew',
      key: (order) => order.id,
      now,
    });
    // Each invocation has 5 s left, read by its own process's clock.
    return (order: Order) => once(order, lambdaContext({ functionName: 'skew', remainingMillis: 5_000, now }));
  };
  const [holder, behind, ahead] = [processOn(0), processOn(-6_000), processOn(6_000)];
  const item = (): Promise<Record<string, AttributeValue> | undefined> => readItem(client, tableName, recordId('skew', 'o-1'));

  const a = holder({ id: 'o-1' });
  const gateA = await turnstile.next();
  const held = await item();
  expect(held).toMatchObject({ leaseUntil: { N: String(T0 + 5_000) } });
  // Behind, the lease looks 11 s long: IN_PROGRESS, and it says so.
  expect(await rejection(behind({ id: 'o-1' }))).toMatchObject({ code: 'IN_PROGRESS', retryAfterSeconds: 11 });
  expect(await item()).toStrictEqual(held);

  // Ahead, the lease looks over: it takes the record over and runs again (the documented cost of skew).
  const b = ahead({ id: 'o-1' });
  const gateB = await turnstile.next();
  const taken = await item();
  expect(taken).toMatchObject({ status: { S: 'INPROGRESS' }, leaseUntil: { N: String(T0 + 11_000) } });
  gateA.open(() => 'A');
  expect(await rejection(a)).toMatchObject({ code: 'SUPERSEDED', record: { owner: taken!.owner!.S } });
  expect(await item()).toStrictEqual(taken);
  gateB.open(() => 'B');
  expect(await b).toBe('B');
  // The holder's caller retries and gets the one stored outcome, on every clock.
  for (const retry of [holder, behind, ahead]) expect(await retry({ id: 'o-1' })).toBe('B');
  expect(turnstile.count).toBe(2);
});

test('a stale completion is fenced while the new owner is still running: SUPERSEDED, record untouched', async () => {
  const { clock, turnstile, once, item } = heldFunction('fence-running');
  const a = once({ id: 'o-1' });
  const gateA = await turnstile.next();
  clock.now = T0 + 6_000;
  const b = once({ id: 'o-1' });
  const gateB = await turnstile.next();
  const ofB = await item();
  expect(ofB?.status).toEqual({ S: 'INPROGRESS' });

  gateA.open(() => 'A');
  const superseded = await rejection(a);
  expect(superseded.code).toBe('SUPERSEDED');
  // The error carries the record the new owner holds, as the refused write returned it.
  expect(superseded.record).toMatchObject({ status: 'INPROGRESS', owner: ofB!.owner!.S });
  expect(await item()).toStrictEqual(ofB);

  gateB.open(() => 'B');
  expect(await b).toBe('B');
  expect(await item()).toMatchObject({ status: { S: 'COMPLETED' }, owner: ofB!.owner, response: { S: '"B"' } });
  expect(await once({ id: 'o-1' })).toBe('B');
});

test('a stale completion is fenced after the new owner completed: the stored response stays the new one', async () => {
  const { clock, turnstile, once, item } = heldFunction('fence-done');
  const a = once({ id: 'o-1' });
  const gateA = await turnstile.next();
  clock.now = T0 + 6_000;
  const b = once({ id: 'o-1' });
  (await turnstile.next()).open(() => 'B');
  expect(await b).toBe('B');
  const completed = await item();
  expect(completed).toMatchObject({ status: { S: 'COMPLETED' }, response: { S: '"B"' } });

  gateA.open(() => 'A');
  expect((await rejection(a)).code).toBe('SUPERSEDED');
  expect(await item()).toStrictEqual(completed);
});

test("a stale failure does not release the new owner's record, and its caller gets its own error", async () => {
  const { clock, turnstile, once, item } = heldFunction('fence-release');
  const a = once({ id: 'o-1' });
  const gateA = await turnstile.next();
  clock.now = T0 + 6_000;
  const b = once({ id: 'o-1' });
  const gateB = await turnstile.next();
  const ofB = await item();

  const own = new Error('A failed late');
  gateA.open(() => {
    throw own;
  });
  await expect(a).rejects.toBe(own);
  expect(await item()).toStrictEqual(ofB);

  gateB.open(() => 'B');
  expect(await b).toBe('B');
  expect(await item()).toMatchObject({ status: { S: 'COMPLETED' }, owner: ofB!.owner });
});

test("a stale final error (isFinalError) does not overwrite the new owner's record, and its caller gets its own error", async () => {
  const declined = new Error('A declined late');
  const turnstile = new Turnstile<() => string>();
  let now = T0;
  const once = makeIdempotent(async (_order: Order) => (await turnstile.enter())(), {
    store,
    name: 'fence-final',
    key: (order) => order.id,
    leaseSeconds: 5,
    now: () => now,
    singleFlight: false,
    isFinalError: (error) => error === declined,
  });
  const item = () => readItem(client, tableName, recordId('fence-final', 'o-1'));
  const a = once({ id: 'o-1' });
  const gateA = await turnstile.next();
  now = T0 + 6_000;
  const b = once({ id: 'o-1' });
  const gateB = await turnstile.next();
  const ofB = await item();

  gateA.open(() => {
    throw declined;
  });
  await expect(a).rejects.toBe(declined);
  expect(await item()).toStrictEqual(ofB);

  gateB.open(() => 'B');
  expect(await b).toBe('B');
  expect(await once({ id: 'o-1' })).toBe('B');
});

test('an expired COMPLETED record is reclaimed and the function runs again', async () => {
  let now = T0;
  let runs = 0;
  const once = makeIdempotent(async (_order: Order) => `run ${++runs}`, {
    store,
    name: 'retention',
    key: (order) => order.id,
    expiresAfterSeconds: 60,
    now: () => now,
  });
  expect(await once({ id: 'o-1' })).toBe('run 1');
  const first = await readItem(client, tableName, recordId('retention', 'o-1'));
  expect(first?.expiration).toEqual({ N: String(T0 / 1000 + 60) });

  now = T0 + 60_999; // expiration is not yet *before* now, in whole seconds
  expect(await once({ id: 'o-1' })).toBe('run 1');
  now = T0 + 61_000;
  expect(await once({ id: 'o-1' })).toBe('run 2');
  const second = await readItem(client, tableName, recordId('retention', 'o-1'));
  expect(second).toMatchObject({ status: { S: 'COMPLETED' }, expiration: { N: String(T0 / 1000 + 121) }, response: { S: '"run 2"' } });
  expect(second!.owner!.S).not.toBe(first!.owner!.S);
  expect(runs).toBe(2);
});

test('a function error releases the record and the retry runs', async () => {
  let runs = 0;
  const once = makeIdempotent(
    async (_order: Order) => {
      if (++runs === 1) throw new Error('transient');
      return 'ok';
    },
    { store, name: 'release', key: (order) => order.id },
  );
  await expect(once({ id: 'o-1' })).rejects.toThrow('transient');
  expect(await readItem(client, tableName, recordId('release', 'o-1'))).toBeUndefined();
  expect(await once({ id: 'o-1' })).toBe('ok');
  expect(await once({ id: 'o-1' })).toBe('ok');
  expect(runs).toBe(2);
});

test('two wrapped functions with different names never share records', async () => {
  let runs = 0;
  const fn = async (_order: Order) => ++runs;
  const first = makeIdempotent(fn, { store, name: 'first', key: (order) => order.id });
  const second = makeIdempotent(fn, { store, name: 'second', key: (order) => order.id });
  expect(await first({ id: 'same' })).toBe(1);
  expect(await second({ id: 'same' })).toBe(2);
  expect(await first({ id: 'same' })).toBe(1);
  expect(await second({ id: 'same' })).toBe(2);
  expect(await idsWithPrefix(client, tableName, 'first#')).toEqual([recordId('first', 'same')]);
  expect(await idsWithPrefix(client, tableName, 'second#')).toEqual([recordId('second', 'same')]);
});

test('with a Lambda context as second argument, the lease ends at its deadline', async () => {
  type LambdaContext = { getRemainingTimeInMillis(): number };
  const turnstile = new Turnstile<string>();
  const once = makeIdempotent(async (_order: Order, _context: LambdaContext) => turnstile.enter(), {
    store,
    name: 'deadline',
    key: (order) => order.id,
    now: () => T0,
    singleFlight: false, // the duplicate stands for another process
  });
  const call = once({ id: 'held' }, { getRemainingTimeInMillis: () => 2_345 });
  const holder = await turnstile.next();
  expect(await readItem(client, tableName, recordId('deadline', 'held'))).toMatchObject({
    status: { S: 'INPROGRESS' },
    leaseUntil: { N: String(T0 + 2_345) },
  });
  expect((await rejection(once({ id: 'held' }, { getRemainingTimeInMillis: () => 1 }))).retryAfterSeconds).toBe(3);
  holder.open('y');
  expect(await call).toBe('y');
});

test('the lease ends no earlier than the deadline when time passes between the reads of the clock and of the time left (a process paused, a small CPU share): a duplicate in its last 40 ms is IN_PROGRESS', async () => {
  const clock = { now: T0 };
  const deadline = T0 + 2_000;
  let paused = false;
  const context = {
    // The first read of the time left comes 40 ms after the call began: the process was paused meanwhile.
    getRemainingTimeInMillis: () => {
      if (!paused) {
        paused = true;
        clock.now += 40;
      }
      return deadline - clock.now;
    },
  };
  const turnstile = new Turnstile<string>();
  let runs = 0;
  const once = makeIdempotent(
    async (_order: Order, _context: typeof context) => {
      runs++;
      return turnstile.enter();
    },
    { store, name: 'paused-read', key: (order) => order.id, now: () => clock.now, singleFlight: false },
  );
  const call = once({ id: 'held' }, context);
  const holder = await turnstile.next();
  expect(await readItem(client, tableName, recordId('paused-read', 'held'))).toMatchObject({ leaseUntil: { N: String(deadline) } });
  // Another process, its clock in step, 20 ms before the first invocation's deadline: the first may still be running.
  clock.now = deadline - 20;
  expect((await rejection(once({ id: 'held' }, { getRemainingTimeInMillis: () => 1_000 }))).code).toBe('IN_PROGRESS');
  expect(runs).toBe(1);
  holder.open('y');
  expect(await call).toBe('y');
});

test('a context that read time left and reads none now (an invocation timed out on Managed Instances, its code still running) is past its deadline: a call it starts, and one nested in that, hold their records until that deadline, not leaseSeconds past it', async () => {
  const clock = { now: T0 };
  let left = 120_000;
  const context = { getRemainingTimeInMillis: () => left };
  const turnstile = new Turnstile<string>();
  const inner = makeIdempotent(async (order: Order) => `${order.id}:${await turnstile.enter()}`, {
    store,
    name: 'timed-out-inner',
    key: (order) => order.id,
    now: () => clock.now,
  });
  const outer = makeIdempotent(async (order: Order, _context: typeof context) => inner(order), {
    store,
    name: 'timed-out-outer',
    key: (order) => order.id,
    now: () => clock.now,
  });
  const first = outer({ id: 'o-1' }, context);
  (await turnstile.next()).open('in time');
  expect(await first).toBe('o-1:in time');
  // 5 s past the deadline the same context reads -5 s (Lambda's own); the testing helper's reads 0.
  for (const reading of [-5_000, 0]) {
    clock.now = T0 + 125_000;
    left = reading;
    const id = `late${reading}`;
    const late = outer({ id }, context);
    const holder = await turnstile.next();
    const leases = [
      (await readItem(client, tableName, recordId('timed-out-outer', id)))?.leaseUntil?.N,
      (await readItem(client, tableName, recordId('timed-out-inner', id)))?.leaseUntil?.N,
    ];
    // Held until the deadline as the context reads it (now, for one that reads 0), never past it.
    expect(leases).toEqual([String(clock.now + reading), String(clock.now + reading)]);
    holder.open('late');
    expect(await late).toBe(`${id}:late`);
  }
});

test.each([
  ['Number.MAX_VALUE', Number.MAX_VALUE],
  ['1e300', 1e300],
  ['more than a Date can hold', 8.64e15 + 1],
  ['NaN', Number.NaN],
  // Lambda reads 0 ms left in the last moments before it ends an invocation that ran out of time.
  ['0', 0],
  ['negative', -1],
  // A stub whose getRemainingTimeInMillis returns text: its digits are no time left. Added to the
  // clock, text is appended to the clock's digits: a short one makes a deadline centuries away
  // that is still within a Date, a lease that never ends.
  ['the text 5000', '5000' as unknown as number],
  ['the text 900', '900' as unknown as number],
  // Read by a context that read time left before: not past a deadline either, as a Date holds none so far before it.
  ['-Infinity, after 120 s', Number.NEGATIVE_INFINITY, 120_000],
  ['more than a Date can hold before it, after 120 s', -8.64e15 - 1, 120_000],
] as Array<[string, number, number?]>)(
  'a context whose time left is %s sets no deadline: the lease is leaseSeconds and the call runs once, not a STORE_FAILURE',
  // A rest parameter: jest would take a third named one, which the rows without a reading before leave out, for `done`.
  async (...[label, millis, before]: [string, number, number?]) => {
    const name = `beyond-${label.replaceAll(/[ ,]+/g, '-')}`;
    const turnstile = new Turnstile<number>();
    const once = makeIdempotent(async (_order: Order, _context: { getRemainingTimeInMillis(): number }) => turnstile.enter(), {
      store,
      name,
      key: (order) => order.id,
      now: () => T0,
      leaseSeconds: 30,
    });
    let left = before ?? millis;
    const context = { getRemainingTimeInMillis: () => left };
    if (before !== undefined) {
      const first = once({ id: 'first' }, context);
      (await turnstile.next()).open(0);
      expect(await first).toBe(0);
      left = millis;
    }
    const call = once({ id: 'o-1' }, context);
    const holder = await turnstile.next();
    expect(await readItem(client, tableName, recordId(name, 'o-1'))).toMatchObject({ status: { S: 'INPROGRESS' }, leaseUntil: { N: String(T0 + 30_000) } });
    holder.open(1);
    expect(await call).toBe(1);
    expect(await once({ id: 'o-1' }, context)).toBe(1);
  },
);

test('a context whose time left is beyond a timer (2^32 ms, over 24 days) bounds the store requests without firing at once: a claim answered after 20 ms is kept', async () => {
  // Node fires a timer set past 2^31 - 1 ms after 1 ms: unbounded, every store request would time out at once.
  class SlowStore extends InMemoryStore {
    override async claim(...args: Parameters<InMemoryStore['claim']>) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return super.claim(...args);
    }
  }
  let runs = 0;
  const once = makeIdempotent(async (_order: Order, _context: { getRemainingTimeInMillis(): number }) => ++runs, {
    store: new SlowStore(),
    name: 'beyond-a-timer',
    key: (order) => order.id,
  });
  const context = { getRemainingTimeInMillis: () => 2 ** 32 };
  expect(await once({ id: 'o-1' }, context)).toBe(1);
  expect(await once({ id: 'o-1' }, context)).toBe(1);
});

describe('a call given no context, nested in a call with a Lambda deadline', () => {
  /**
   * An outer call that calls `inner` (given no context) while the test holds it; the outer call
   * reads the time by `outerNow`, the inner one by `clock`.
   */
  function nested(name: string, outerNow?: () => number) {
    const clock = { now: T0 };
    const turnstile = new Turnstile<string>();
    const inner = makeIdempotent(async (order: Order) => `${order.id}:${await turnstile.enter()}`, {
      store,
      name: `${name}-inner`,
      key: (order) => order.id,
      now: () => clock.now,
      singleFlight: false, // a duplicate stands for another process
    });
    const outer = makeIdempotent(async (order: Order, _context: { getRemainingTimeInMillis(): number }) => inner(order), {
      store,
      name: `${name}-outer`,
      key: (order) => order.id,
      now: outerNow ?? (() => clock.now),
    });
    const item = () => readItem(client, tableName, recordId(`${name}-inner`, 'o-1'));
    /** The inner record's lease while `started` (which reaches `inner`) is held; then lets it finish. */
    const leaseOf = async (started: Promise<string>): Promise<string | undefined> => {
      const holder = await turnstile.next();
      const lease = (await item())?.leaseUntil?.N;
      holder.open('ok');
      expect(await started).toBe('o-1:ok');
      return lease;
    };
    return { clock, turnstile, inner, outer, item, leaseOf };
  }

  test('holds its record until that deadline, not for leaseSeconds: a duplicate after 60 s is IN_PROGRESS and does not run it again', async () => {
    const { clock, turnstile, inner, outer, item } = nested('inherit');
    const first = outer({ id: 'o-1' }, { getRemainingTimeInMillis: () => 300_000 });
    const holder = await turnstile.next();
    expect(await item()).toMatchObject({ status: { S: 'INPROGRESS' }, leaseUntil: { N: String(T0 + 300_000) } });
    clock.now = T0 + 61_000; // past the 60 s default lease, well before the outer deadline
    expect(await rejection(inner({ id: 'o-1' }))).toMatchObject({ code: 'IN_PROGRESS', retryAfterSeconds: 239 });
    holder.open('paid');
    expect(await first).toBe('o-1:paid');
    expect(turnstile.count).toBe(1);
  });

  test("the deadline is read by the outer call's clock, so an inner call on another clock gets the same time left", async () => {
    const { outer, leaseOf } = nested('clocks', () => T0 + 86_400_000); // a day ahead of the inner call's clock
    expect(await leaseOf(outer({ id: 'o-1' }, { getRemainingTimeInMillis: () => 120_000 }))).toBe(String(T0 + 120_000));
  });

  test("in a middy handler with the idempotency middleware, the inner record is held until the invocation's deadline", async () => {
    const { inner, leaseOf } = nested('middy');
    const handler = middy(async (order: Order) => inner(order)).use(
      idempotency({ store, name: 'middy-outer', key: (order: Order) => order.id, now: () => T0 }),
    );
    expect(await leaseOf(handler({ id: 'o-1' }, lambdaContext({ remainingMillis: 200_000, now: () => T0 })))).toBe(String(T0 + 200_000));
  });

  test("made once that deadline has passed by the outer call's clock, holds its record until that deadline, not for leaseSeconds past it", async () => {
    const { clock, inner, leaseOf } = nested('past-deadline');
    const outer = makeIdempotent(
      async (order: Order, _context: { getRemainingTimeInMillis(): number }) => {
        clock.now = T0 + 130_000; // the outer call's 120 s have run out
        return inner(order);
      },
      { store, name: 'past-deadline-outer', key: (order) => order.id, now: () => clock.now },
    );
    expect(await leaseOf(outer({ id: 'o-1' }, { getRemainingTimeInMillis: () => 120_000 }))).toBe(String(T0 + 120_000));
  });

  test('without an enclosing call the lease is leaseSeconds (60 s by default)', async () => {
    const { inner, leaseOf } = nested('own');
    expect(await leaseOf(inner({ id: 'o-1' }))).toBe(String(T0 + 60_000));
  });

  test("a call started by work its caller left running, once the caller has ended, is nested in nothing: its lease is leaseSeconds, not the ended call's deadline", async () => {
    const { inner, leaseOf } = nested('left-running');
    const late = gate<void>();
    let started: Promise<string> | undefined;
    const caller = makeIdempotent(
      async (order: Order, _context: { getRemainingTimeInMillis(): number }) => {
        started = late.promise.then(() => inner(order)); // not awaited: it outlives the call
        return 'returned';
      },
      { store, name: 'left-running-caller', key: (order) => order.id, now: () => T0 },
    );
    expect(await caller({ id: 'o-1' }, { getRemainingTimeInMillis: () => 300_000 })).toBe('returned');
    late.open();
    expect(await leaseOf(started!)).toBe(String(T0 + 60_000));
  });
});

test('the longest name the options accept makes a record key DynamoDB takes (2,048 bytes): the call runs once and replays', async () => {
  let runs = 0;
  const name = 'n'.repeat(2004);
  const once = makeIdempotent(async (order: { id: string }) => ({ runs: ++runs, id: order.id }), { store, name, key: (order) => order.id });
  expect(await once({ id: 'o-1' })).toEqual({ runs: 1, id: 'o-1' });
  expect(await once({ id: 'o-1' })).toEqual({ runs: 1, id: 'o-1' });
  expect(Buffer.byteLength(recordId(name, 'o-1'))).toBe(2048);
  expect(await readItem(client, tableName, recordId(name, 'o-1'))).toBeDefined();
});

test('`this` and every argument reach the function; the key is the first argument alone', async () => {
  const prices = {
    rate: 3,
    quote: makeIdempotent(
      async function (this: { rate: number }, units: number, discount: number) {
        return units * this.rate - discount;
      },
      { store, name: 'this-and-arguments' },
    ),
  };
  expect(await prices.quote(2, 1)).toBe(5);
  expect(await prices.quote(2, 4)).toBe(5); // a replay of the first call with key 2
  expect(await prices.quote(3, 0)).toBe(9);
});

test('a second argument that cannot be read (a revoked proxy) is not taken for a context: the call returns a promise and runs', async () => {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  let runs = 0;
  const once = makeIdempotent(async (id: string, _context: unknown) => `${id}:${++runs}`, { store, name: 'unreadable-context' });
  const call = once('r-1', proxy);
  expect(call).toBeInstanceOf(Promise);
  expect(await call).toBe('r-1:1');
  expect(await once('r-1', proxy)).toBe('r-1:1');
});
