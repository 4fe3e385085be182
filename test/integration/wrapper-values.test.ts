import { runInNewContext } from 'node:vm';
/**
 * What `makeIdempotent` returns, first and on replay, for functions and results beyond a plain
 * async function returning plain JSON, against DynamoDB Local.
 */
import middy from '@middy/core';
import { type IdempotencyStore, idempotency, makeIdempotent } from '../../lib/index.js';
import { InMemoryStore, lambdaContext } from '../../lib/testing/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { rejection, thrown } from '../support/rejections.js';

const { client, tableName, store } = useFreshTable({ prefix: 'wrapper-values' });

class Money {
  constructor(readonly cents: number) {}
}

test.each([
  ['null', null, null],
  ['undefined', undefined, undefined],
  ['a Date', new Date(0), '1970-01-01T00:00:00.000Z'],
  ['a Map', new Map([['a', 1]]), {}],
  ['a Set', new Set([1]), {}],
  ['a class instance', new Money(5), { cents: 5 }],
  ['NaN and Infinity', { rate: Number.NaN, cap: Number.POSITIVE_INFINITY }, { rate: null, cap: null }],
  ['undefined members and holes', { a: undefined, list: [undefined] }, { list: [null] }],
])('a result with %s: the first caller gets it as returned, replays get its JSON form', async (label, result, replayed) => {
  let runs = 0;
  const once = makeIdempotent(
    async (_id: string) => {
      runs++;
      return result;
    },
    { store, name: `values-${label.replaceAll(' ', '-')}` },
  );
  expect(await once('k')).toBe(result);
  expect(await once('k')).toStrictEqual(replayed);
  expect(runs).toBe(1);
});

test('a function that throws synchronously gives a rejected promise and releases the key; a thenable that is not a promise is awaited and stored', async () => {
  let runs = 0;
  const once = makeIdempotent(
    (_id: string): PromiseLike<number> => {
      if (++runs === 1) throw new Error('sync failure');
      // biome-ignore lint/suspicious/noThenProperty: a thenable that is not a Promise is the result under test
      return { then: (resolve) => resolve!(runs) as never } as PromiseLike<number>;
    },
    { store, name: 'sync-and-thenable' },
  );
  const failed = once('k');
  expect(failed).toBeInstanceOf(Promise);
  await expect(failed).rejects.toThrow('sync failure');
  expect(await readItem(client, tableName, recordId('sync-and-thenable', 'k'))).toBeUndefined();
  expect(await once('k')).toBe(2);
  expect(await once('k')).toBe(2);
  expect(runs).toBe(2);
});

test('the key and the fingerprint see the first argument only: a later argument that changes is not compared, a changed fingerprinted part is PAYLOAD_MISMATCH', async () => {
  let runs = 0;
  const pay = makeIdempotent(async (order: { id: string; amount: number }, note: string) => `${order.amount} ${note} ${++runs}`, {
    store,
    name: 'first-argument',
    key: (order) => order.id,
    fingerprint: (order) => order.amount,
  });
  expect(await pay({ id: 'o-1', amount: 10 }, 'first')).toBe('10 first 1');
  expect(await pay({ id: 'o-1', amount: 10 }, 'second')).toBe('10 first 1');
  expect((await rejection(pay({ id: 'o-1', amount: 11 }, 'first'))).code).toBe('PAYLOAD_MISMATCH');
  expect(runs).toBe(1);
});

test('a call nested in another with a different name and the same key runs, and both replay', async () => {
  let runs = 0;
  const inner = makeIdempotent(async (id: string) => `inner ${id} ${++runs}`, { store, name: 'nested-inner' });
  const outer = makeIdempotent(async (id: string) => `outer(${await inner(id)})`, { store, name: 'nested-outer' });
  expect(await outer('k')).toBe('outer(inner k 1)');
  expect(await outer('k')).toBe('outer(inner k 1)');
  expect(await inner('k')).toBe('inner k 1');
  expect(runs).toBe(1);
});

test('a call nested in another with the same name and key gets IN_PROGRESS even when its store is another table: names, not stores, tell records apart', async () => {
  const inner = makeIdempotent(async (id: string) => `inner ${id}`, { store: new InMemoryStore(), name: 'same-name-other-store' });
  const outer = makeIdempotent(async (id: string) => inner(id), { store, name: 'same-name-other-store' });
  expect((await rejection(outer('k'))).code).toBe('IN_PROGRESS');
  expect(await readItem(client, tableName, recordId('same-name-other-store', 'k'))).toBeUndefined();
});

test('a function that calls itself with its own key gets IN_PROGRESS at once, without a request for its own record (nor polling it for waitForInProgressMillis); its key is then free', async () => {
  let claims = 0;
  let runs = 0;
  const counting: IdempotencyStore = {
    claim: (request) => {
      // A second claim is the nested call meeting (or polling) the record its own caller holds.
      if (++claims > 1) return Promise.reject(new Error('the nested call claimed its own record'));
      return store.claim(request);
    },
    complete: (request) => store.complete(request),
    release: (request) => store.release(request),
  };
  const recursive: (id: string) => Promise<string> = makeIdempotent(async (id: string) => (++runs === 1 ? recursive(id) : 'nested'), {
    store: counting,
    name: 'recursive-same-key',
    waitForInProgressMillis: 600_000,
  });
  expect((await rejection(recursive('k'))).code).toBe('IN_PROGRESS');
  expect([claims, runs]).toEqual([1, 1]);
  expect(await readItem(client, tableName, recordId('recursive-same-key', 'k'))).toBeUndefined();
});

test('a function that calls itself with its own key past its lease gets IN_PROGRESS too, rather than take the record over from its own caller', async () => {
  let now = Date.UTC(2026, 0, 1);
  let runs = 0;
  const recursive: (id: string) => Promise<string> = makeIdempotent(
    async (id: string) => {
      if (++runs > 1) return 'nested ran';
      now += 120_000; // past the outer call's 60 s lease
      return (await rejection(recursive(id))).code;
    },
    { store, name: 'recursive-past-lease', leaseSeconds: 60, now: () => now },
  );
  expect(await recursive('k')).toBe('IN_PROGRESS');
  expect(runs).toBe(1);
  expect(await readItem(client, tableName, recordId('recursive-past-lease', 'k'))).toMatchObject({ status: { S: 'COMPLETED' } });
});

test('options are read once, when the function is made: an options object changed afterwards (to make the next function) changes nothing of the functions made before', async () => {
  const options: { store: IdempotencyStore; name: string; key?: (id: string) => string } = { store, name: 'options-snapshot-refund' };
  const refund = makeIdempotent(async (id: string) => `refunded ${id}`, options);
  options.name = 'options-snapshot-charge';
  const charge = makeIdempotent(async (id: string) => `charged ${id}`, options);
  expect(await charge('o-1')).toBe('charged o-1');
  expect(await refund('o-1')).toBe('refunded o-1');
  options.key = 'not a selector' as never;
  expect(await refund('o-2')).toBe('refunded o-2');
  expect(await readItem(client, tableName, recordId('options-snapshot-refund', 'o-2'))).toMatchObject({ status: { S: 'COMPLETED' } });

  // The middleware's options too.
  const handlerOptions = { store, name: 'options-snapshot-refund-handler' };
  const refundHandler = middy(async (event: { id: string }) => `refunded ${event.id}`).use(idempotency(handlerOptions));
  handlerOptions.name = 'options-snapshot-charge-handler';
  const chargeHandler = middy(async (event: { id: string }) => `charged ${event.id}`).use(idempotency(handlerOptions));
  expect(await chargeHandler({ id: 'o-1' }, lambdaContext())).toBe('charged o-1');
  expect(await refundHandler({ id: 'o-1' }, lambdaContext())).toBe('refunded o-1');
});

test('options that are not an object are a TypeError that says so', () => {
  for (const options of [undefined, null, 'charge']) {
    expect(() => makeIdempotent(async (x: string) => x, options as never)).toThrow(new TypeError('makeIdempotent: options must be an object.'));
  }
});

test('a final error replays with its code and selected fields as own enumerable members, as a thrown error has them (spread, logged, serialized)', async () => {
  let runs = 0;
  const once = makeIdempotent(
    async (_id: string) => {
      runs++;
      throw Object.assign(new Error('card declined'), { name: 'CardDeclined', code: 'DECLINED', statusCode: 402, details: { attempts: 2 } });
    },
    { store, name: 'values-final-error-fields', isFinalError: () => true, errorFields: ['statusCode', 'details'] },
  );
  expect((await thrown(once('k'))).message).toBe('card declined');
  const replayed = await thrown(once('k'));
  expect(runs).toBe(1);
  expect([replayed.name, replayed.message]).toEqual(['CardDeclined', 'card declined']);
  expect({ ...replayed }).toStrictEqual({ code: 'DECLINED', statusCode: 402, details: { attempts: 2 } });
});

test.each([
  ['a number', 402],
  ['0', 0],
  ['an empty string', ''],
])('a final error whose code is %s replays with that code, of the same type', async (label, code) => {
  let runs = 0;
  const once = makeIdempotent(
    async (_id: string) => {
      runs++;
      throw Object.assign(new Error('card declined'), { code });
    },
    { store, name: `values-code-${label.replaceAll(' ', '-')}`, isFinalError: () => true },
  );
  expect((await thrown(once('k'))).code).toBe(code);
  const replayed = await thrown(once('k'));
  expect(runs).toBe(1);
  expect(replayed.code).toBe(code);
});

test('a selected field JSON cannot hold (a BigInt, a cycle) is dropped alone: the fields after it replay', async () => {
  let runs = 0;
  const loop: Record<string, unknown> = {};
  loop.self = loop;
  const once = makeIdempotent(
    async (_id: string) => {
      runs++;
      throw Object.assign(new Error('card declined'), { amount: 10n, trail: loop, statusCode: 402 });
    },
    { store, name: 'values-unstorable-field', isFinalError: () => true, errorFields: ['amount', 'trail', 'statusCode'] },
  );
  await thrown(once('k'));
  const replayed = await thrown(once('k'));
  expect(runs).toBe(1);
  expect({ ...replayed }).toStrictEqual({ statusCode: 402 });
});

/**
 * A call that threw `Error('card declined', { cause })` as a final error with `errorFields: ['cause']`,
 * then its duplicate: how often it ran, the cause the duplicate was given, and the stored error's text.
 */
async function causeReplayed(name: string, cause: unknown): Promise<{ runs: number; cause: unknown; stored: string | undefined }> {
  let runs = 0;
  const once = makeIdempotent(
    async (_id: string) => {
      runs++;
      throw new Error('card declined', { cause });
    },
    { store, name, isFinalError: () => true, errorFields: ['cause'] },
  );
  await thrown(once('k'));
  const replayed = await thrown(once('k'));
  return { runs, cause: replayed.cause, stored: (await readItem(client, tableName, recordId(name, 'k')))?.error?.S };
}

test('an error inside a selected field is stored without its stack, even when the stack is an enumerable member (an error rebuilt from a wire format)', async () => {
  const upstream = Object.assign(Object.create(Error.prototype) as Error, {
    name: 'UpstreamError',
    message: 'gateway refused',
    stack: 'UpstreamError: gateway refused\n    at charge (/var/task/index.js:12:7)',
  });
  expect(Object.keys(upstream)).toContain('stack');
  const { runs, cause, stored } = await causeReplayed('values-cause-stack', upstream);
  expect(runs).toBe(1);
  expect(cause).toStrictEqual({ name: 'UpstreamError', message: 'gateway refused' });
  expect(stored).not.toContain('/var/task');
});

test('an error inside a selected field that has a `toJSON` (for a logger, as AxiosError has) is stored as an error too: without its stack, nor what its toJSON adds', async () => {
  class UpstreamError extends Error {
    override name = 'UpstreamError';
    readonly code = 'ERR_BAD_RESPONSE';
    toJSON() {
      return {
        name: this.name,
        message: this.message,
        stack: 'UpstreamError: gateway refused\n    at charge (/var/task/index.js:12:7)',
        config: { url: '/charges' },
      };
    }
  }
  const { runs, cause, stored } = await causeReplayed('values-cause-to-json', new UpstreamError('gateway refused'));
  expect(runs).toBe(1);
  expect(cause).toStrictEqual({ name: 'UpstreamError', message: 'gateway refused', code: 'ERR_BAD_RESPONSE' });
  expect(stored).not.toContain('/var/task');
});

test("an error of another realm inside a selected field (a vm context, jest's sandbox meeting a Node error) is stored as an error too: its name and message kept", async () => {
  const foreign = runInNewContext('Object.assign(new TypeError("fetch failed"), { code: "ECONNRESET" })') as Error;
  expect(foreign instanceof Error).toBe(false);
  const { runs, cause } = await causeReplayed('values-cause-realm', foreign);
  expect(runs).toBe(1);
  expect(cause).toStrictEqual({ name: 'TypeError', message: 'fetch failed', code: 'ECONNRESET' });
});

test('a thrown value that is not an error (a string) is a final error replayed as an Error whose message is its text', async () => {
  let runs = 0;
  const once = makeIdempotent(
    async (_id: string) => {
      runs++;
      throw 'card declined';
    },
    { store, name: 'values-final-string', isFinalError: () => true },
  );
  expect(await once('k').catch((error: unknown) => error)).toBe('card declined');
  const replayed = await thrown(once('k'));
  expect(runs).toBe(1);
  expect([replayed instanceof Error, replayed.name, replayed.message]).toEqual([true, 'Error', 'card declined']);
});

test.each([
  ['without a message', { statusCode: 404 }],
  ['whose message is null', { statusCode: 404, message: null }],
])('a thrown object %s is a final error replayed with an empty message, never "undefined" or "null"', async (_what, value) => {
  let runs = 0;
  const once = makeIdempotent(
    async (_id: string) => {
      runs++;
      throw value;
    },
    { store: new InMemoryStore(), name: 'values-final-object', isFinalError: () => true, errorFields: ['statusCode'] },
  );
  expect(await once('k').catch((error: unknown) => error)).toBe(value);
  const replayed = await thrown(once('k'));
  expect(runs).toBe(1);
  expect({ ...replayed, name: replayed.name, message: replayed.message }).toStrictEqual({ name: 'Error', message: '', statusCode: 404 });
});
