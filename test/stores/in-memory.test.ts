/**
 * InMemoryStore as users meet it: in unit tests of idempotent functions, with an injected clock,
 * and behaving as the real stores do (the contract proves the rest).
 */
import { jest } from '@jest/globals';
import { aesGcmEncryption, hashKey, makeIdempotent } from '../../lib/index.js';
import { ResponseCodec } from '../../lib/response-codec.js';
import { DEFAULT_COMPRESS_ABOVE_BYTES } from '../../lib/stored-outcome.js';
import { InMemoryStore, manualClock } from '../../lib/testing/index.js';
import { flush, gate } from '../support/gate.js';
import { rejection } from '../support/rejections.js';

test('a duplicate replays, one within the lease is IN_PROGRESS, one after it takes over, one after the retention runs again', async () => {
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const store = new InMemoryStore();
  const held = gate();
  let runs = 0;
  const charge = makeIdempotent(
    async (order: { id: string; hold?: boolean }) => {
      runs++;
      if (order.hold) await held.promise;
      return { charged: order.id, run: runs };
    },
    // Each call stands for another execution environment: no in-process single-flight.
    { store, name: 'charge', key: (order) => order.id, leaseSeconds: 10, expiresAfterSeconds: 3600, now: () => clock, singleFlight: false },
  );
  expect(await charge({ id: 'a' })).toEqual({ charged: 'a', run: 1 });
  expect(await charge({ id: 'a' })).toEqual({ charged: 'a', run: 1 });

  const stuck = charge({ id: 'b', hold: true });
  while (runs < 2) await flush(); // the first attempt holds the record and runs
  expect((await rejection(charge({ id: 'b' }))).code).toBe('IN_PROGRESS');
  clock += 11_000;
  expect(await charge({ id: 'b' })).toEqual({ charged: 'b', run: 3 });
  held.open();
  expect((await rejection(stuck)).code).toBe('SUPERSEDED');

  clock += 3600_000;
  expect(await charge({ id: 'a' })).toEqual({ charged: 'a', run: 4 });
});

test('a clock that reads NaN fails the first call, and the store refuses NaN as DynamoDB does, instead of storing a record no later call can read', async () => {
  const store = new InMemoryStore();
  const once = makeIdempotent(async (id: string) => id, { store, name: 'nan', key: (id) => id, now: () => Number.NaN });
  await expect(once('x')).rejects.toThrow(new TypeError('makeIdempotent: `now` must return epoch milliseconds, a finite number (got NaN).'));
  await expect(store.claim({ key: recordKeyOf('nan', 'x'), owner: 'o', now: Number.NaN, leaseUntil: 1, expiresAt: 1 })).rejects.toThrow(
    new TypeError('InMemoryStore: `now` must be a finite number, as DynamoDB requires (got NaN).'),
  );
  expect(await store.inspect(recordKeyOf('nan', 'x'))).toBeUndefined();
  await expect(store.complete({ key: 'k', owner: 'o', expiresAt: Number.POSITIVE_INFINITY, response: undefined })).rejects.toThrow(
    'InMemoryStore: `expiresAt` must be a finite number, as DynamoDB requires (got Infinity).',
  );
});

test('with a manualClock, waitForInProgressMillis is counted on that clock: the duplicate waits until the test moves it past the wait, then gets IN_PROGRESS', async () => {
  const clock = manualClock();
  const store = new InMemoryStore();
  const held = gate<string>();
  const first = makeIdempotent(async (_id: string) => held.promise, { store, name: 'waits', now: clock.now });
  const duplicate = makeIdempotent(async (_id: string) => 'ran twice', { store, name: 'waits', now: clock.now, waitForInProgressMillis: 300 });
  const running = first('o-1');
  await flush();
  let answered = false;
  const waiting = rejection(duplicate('o-1')).finally(() => (answered = true));
  // Real time passes, the clock stands still: the duplicate still waits (it polls the store).
  await new Promise((resolve) => setTimeout(resolve, 400));
  expect(answered).toBe(false);
  clock.advance(301);
  expect((await waiting).code).toBe('IN_PROGRESS');
  held.open('once');
  expect(await running).toBe('once');
});

test('clear() forgets every record', async () => {
  const store = new InMemoryStore();
  let runs = 0;
  const once = makeIdempotent(async (_id: string) => ++runs, { store, name: 'once', key: (id) => id });
  await once('x');
  store.clear();
  expect(await once('x')).toBe(2);
});

test('after clear(), a function built with cacheSize still replays from its own cache; one built anew runs again', async () => {
  const store = new InMemoryStore();
  let runs = 0;
  const build = () => makeIdempotent(async (_id: string) => ++runs, { store, name: 'cached', cacheSize: 10 });
  const cached = build();
  expect(await cached('x')).toBe(1);
  store.clear();
  expect(await cached('x')).toBe(1);
  expect(await build()('x')).toBe(2);
});

test('a clock with fractional milliseconds (one built on performance.now(), or a manualClock advanced by 0.5): leases hold and lapse to the fraction', async () => {
  const clock = manualClock(Date.parse('2026-01-01T00:00:00Z') + 0.25);
  const store = new InMemoryStore();
  const held = gate();
  let runs = 0;
  const once = makeIdempotent(
    async (_id: string) => {
      const run = ++runs;
      if (run === 2) await held.promise;
      return run;
    },
    { store, name: 'fractional', key: (id) => id, leaseSeconds: 1, now: clock.now, singleFlight: false },
  );
  expect(await once('a')).toBe(1);
  expect(await once('a')).toBe(1);
  const stuck = once('held');
  while (runs < 2) await flush();
  clock.advance(999.5);
  expect((await rejection(once('held'))).code).toBe('IN_PROGRESS');
  clock.advance(0.5); // the lease's last instant, a fraction included, still belongs to it
  expect((await rejection(once('held'))).code).toBe('IN_PROGRESS');
  clock.advance(0.25);
  expect(await once('held')).toBe(3);
  held.open();
  expect((await rejection(stuck)).code).toBe('SUPERSEDED');
});

const recordKeyOf = (name: string, key: unknown): string => `${name}#${hashKey(key)}`;

describe('with jest fake timers installed after the function was wrapped (as a handler module is loaded first)', () => {
  const store = new InMemoryStore();
  let runs = 0;
  const once = makeIdempotent(async (_id: string) => ++runs, { store, name: 'fake-timers', key: (id) => id, expiresAfterSeconds: 60 });
  afterEach(() => jest.useRealTimers());

  test('records follow the faked clock: the retention ends when the test moves it', async () => {
    const T0 = Date.parse('2031-01-01T00:00:00Z');
    jest.useFakeTimers({ now: T0, doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
    expect(await once('x')).toBe(1);
    expect((await store.inspect(recordKeyOf('fake-timers', 'x')))?.expiresAt).toBe(T0 / 1000 + 60);
    jest.setSystemTime(T0 + 60_999);
    expect(await once('x')).toBe(1);
    jest.setSystemTime(T0 + 61_000);
    expect(await once('x')).toBe(2);
  });

  /** A wrapped function whose first call is held until `held` opens; later calls answer `call N`. */
  function heldFirstCall(name: string, options: { leaseSeconds: number; now?: () => number }) {
    const held = gate<string>();
    let calls = 0;
    const charge = makeIdempotent(async (_id: string) => (++calls === 1 ? held.promise : `call ${calls}`), { store, name, ...options });
    return { held, charge };
  }

  test('a duplicate waiting in-process for a held first call takes over once the timers are advanced past its lease: the clock and the wait move together', async () => {
    jest.useFakeTimers({ now: Date.parse('2031-02-01T00:00:00Z') });
    const { held, charge } = heldFirstCall('fake-timers-flight', { leaseSeconds: 10 });
    const first = rejection(charge('p-1'));
    await jest.advanceTimersByTimeAsync(0);
    const duplicate = charge('p-1');
    await jest.advanceTimersByTimeAsync(10_001);
    expect(await duplicate).toBe('call 2');
    held.open('late');
    expect((await first).code).toBe('SUPERSEDED');
  });

  test('a duplicate waiting in-process for a held first call takes over soon after a manualClock is advanced past its lease, not when the whole lease has passed in real time', async () => {
    const clock = manualClock();
    // A lease longer than the test's timeout: a wait on one timer for all of it would never end in time.
    const { held, charge } = heldFirstCall('manual-clock-flight', { leaseSeconds: 120, now: clock.now });
    const first = rejection(charge('p-1'));
    await flush();
    const duplicate = charge('p-1');
    await flush();
    clock.advance(120_001);
    expect(await duplicate).toBe('call 2');
    held.open('late');
    expect((await first).code).toBe('SUPERSEDED');
  });

  test('a duplicate from another process polling with waitForInProgressMillis polls on the faked timers: it answers once they are advanced, not when the first call ends', async () => {
    jest.useFakeTimers({ now: Date.parse('2031-03-01T00:00:00Z'), doNotFake: ['setImmediate'] });
    const held = gate<string>();
    let calls = 0;
    // One wrapper per process: no single-flight between them.
    const environment = () =>
      makeIdempotent(async (_id: string) => (++calls === 1 ? held.promise : `call ${calls}`), {
        store,
        name: 'fake-timers-poll',
        waitForInProgressMillis: 5_000,
      });
    const first = environment()('p-1');
    await jest.advanceTimersByTimeAsync(0);
    let answer: unknown;
    const duplicate = environment()('p-1').then((value) => (answer = value));
    await jest.advanceTimersByTimeAsync(0);
    held.open('first');
    expect(await first).toBe('first');
    for (let turn = 0; turn < 20; turn++) await flush(); // real turns of the loop: the poll's timer is faked
    expect(answer).toBeUndefined();
    await jest.advanceTimersByTimeAsync(1_000); // a poll looks again within 1 s
    await duplicate;
    expect(answer).toBe('first');
  });
});

test('inspect sizes a compressed response by the bytes stored, as DynamoDBStore does, not by their base64 text', async () => {
  const store = new InMemoryStore();
  const response = JSON.stringify({ lines: Array.from({ length: 4_000 }, (_, i) => `line ${i}`) });
  const once = makeIdempotent(async (_id: string) => JSON.parse(response) as unknown, { store, name: 'sizes' });
  await once('big');
  const stored = new ResponseCodec(DEFAULT_COMPRESS_ABOVE_BYTES, undefined).encode(response, 'response', recordKeyOf('sizes', 'big'), undefined);
  expect(stored.B).toBeDefined(); // compressed
  expect((await store.inspect(recordKeyOf('sizes', 'big')))?.responseBytes).toBe(stored.B!.byteLength);
});

test('inspect names the key that sealed a response, as DynamoDBStore does; none for one stored in the clear', async () => {
  const key = { id: 'k-2024', key: new Uint8Array(32).fill(7) };
  const sealing = new InMemoryStore({ encryption: aesGcmEncryption({ currentKey: () => key, keyById: () => key.key }) });
  const plain = new InMemoryStore();
  for (const store of [sealing, plain]) await makeIdempotent(async (id: string) => ({ id }), { store, name: 'sealed-by' })('a');
  expect(await sealing.inspect(recordKeyOf('sealed-by', 'a'))).toMatchObject({ keyId: 'k-2024', responseBytes: expect.any(Number) });
  expect(await plain.inspect(recordKeyOf('sealed-by', 'a'))).not.toHaveProperty('keyId');
});

test('inspect sizes a response stored as text in UTF-8 bytes, as DynamoDBStore does, not in UTF-16 code units', async () => {
  const store = new InMemoryStore();
  const once = makeIdempotent(async (_id: string) => ({ note: 'é €' }), { store, name: 'sizes' });
  await once('small');
  expect((await store.inspect(recordKeyOf('sizes', 'small')))?.responseBytes).toBe(Buffer.byteLength('{"note":"é €"}'));
});

test('times that String() writes with an exponent (a lease within a microsecond of 1970, a retention past 1e21) read back as they were written', async () => {
  const store = new InMemoryStore();
  const claim = { key: 'k', now: 1e-7, leaseUntil: 5e-7, expiresAt: 1e21 };
  expect(await store.claim({ ...claim, owner: 'a' })).toEqual({ claimed: true });
  expect(await store.claim({ ...claim, owner: 'b', now: 2e-7 })).toEqual({
    claimed: false,
    record: expect.objectContaining({ owner: 'a', status: 'INPROGRESS', leaseUntil: 5e-7, expiresAt: 1e21 }),
  });
});

describe('a store-wide retention, as DynamoDBStore takes one (its option or IDEMPOTENCY_EXPIRES_AFTER_SECONDS)', () => {
  test('new InMemoryStore({ expiresAfterSeconds }) keeps records that long for calls that set no retention of their own', async () => {
    const clock = manualClock(Date.parse('2030-01-01T00:00:00Z'));
    const store = new InMemoryStore({ expiresAfterSeconds: 600 });
    let runs = 0;
    const once = makeIdempotent(async (_id: string) => ++runs, { store, name: 'store-retention', now: clock.now });
    expect(await once('x')).toBe(1);
    clock.advance(600_999); // the retention's last second
    expect(await once('x')).toBe(1);
    clock.advance(1);
    expect(await once('x')).toBe(2);
    const own = makeIdempotent(async (_id: string) => ++runs, { store, name: 'own-retention', now: clock.now, expiresAfterSeconds: 60 });
    await own('y');
    expect((await store.inspect(recordKeyOf('own-retention', 'y')))?.expiresAt).toBe(clock.now() / 1000 + 60);
  });

  test('bad and unknown options throw with sentences, instead of being ignored', () => {
    expect(() => new InMemoryStore({ expiresAfterSeconds: 0 })).toThrow(
      new TypeError('InMemoryStore: `expiresAfterSeconds` must be a whole number of seconds, 1 or more (got 0).'),
    );
    expect(() => new InMemoryStore({ retentionSeconds: 60 } as never)).toThrow(/^InMemoryStore: unknown option `retentionSeconds`/);
    expect(new InMemoryStore().expiresAfterSeconds).toBeUndefined();
  });

  test("InMemoryStore reads no environment: with IDEMPOTENCY_EXPIRES_AFTER_SECONDS set, it keeps records for the calls' default", async () => {
    const saved = process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS;
    process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS = '60';
    try {
      const clock = manualClock(Date.parse('2030-01-01T00:00:00Z'));
      const store = new InMemoryStore();
      const once = makeIdempotent(async (_id: string) => 'ran', { store, name: 'no-environment', now: clock.now });
      await once('x');
      expect(store.expiresAfterSeconds).toBeUndefined();
      expect((await store.inspect(recordKeyOf('no-environment', 'x')))?.expiresAt).toBe(clock.now() / 1000 + 86_400);
    } finally {
      if (saved === undefined) delete process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS;
      else process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS = saved;
    }
  });
});

test("a completion refused by another owner's COMPLETED record carries its state alone: its outcome is not opened, nor a key asked for", async () => {
  const k1 = { id: 'k1', key: Buffer.alloc(32, 1) };
  const asked: string[] = [];
  const keyById = (id: string) => {
    asked.push(id);
    return k1.key;
  };
  const store = new InMemoryStore({ encryption: aesGcmEncryption({ currentKey: () => k1, keyById }) });
  const request = { key: 'k', now: 1000, leaseUntil: 2000, expiresAt: 3600 };
  expect(await store.claim({ ...request, owner: 'a' })).toEqual({ claimed: true });
  expect(await store.complete({ key: 'k', owner: 'a', expiresAt: 3600, response: '{"charged":1}' })).toMatchObject({ completed: true, responseStored: true });
  const refused = await store.complete({ key: 'k', owner: 'b', expiresAt: 3600, response: '{"charged":2}' });
  expect(refused).toEqual({ completed: false, record: expect.objectContaining({ owner: 'a', status: 'COMPLETED' }) });
  expect(refused.completed === false && refused.record).not.toHaveProperty('response');
  expect(asked).toEqual([]);
});
