/**
 * Option values refused at construction with a `TypeError` that names the option, and the smallest
 * values accepted, for the options `engine.test.ts` does not cover: each refused value would
 * otherwise fail later, on a call, or change what a call does without a word.
 */
import middy from '@middy/core';
import { toHttpApiEvent } from '../../demo/http-event.js';
import { httpIdempotency, type IdempotencyStore, idempotency, idempotentBatch, makeIdempotent } from '../../lib/index.js';
import { InMemoryStore, lambdaContext } from '../../lib/testing/index.js';
import { sqsEvent, sqsRecord } from '../support/batch-events.js';

/** The three methods every store has, and none of the transaction methods. */
const plainStore: IdempotencyStore = {
  claim: async () => ({ claimed: true }),
  complete: async () => ({ completed: true, responseStored: true }),
  release: async () => ({ released: true }),
};

const wrap = (options: object) => () => makeIdempotent(async (x: unknown) => x, { store: plainStore, name: 'f', ...options } as never);

test.each([
  ['a name of 2,005 bytes (with "#" and the hash, over the 2,048 bytes of a record key)', { name: 'a'.repeat(2005) }, /`name` must be .*at most 2,004 bytes/],
  ['a name of 1,002 "é" and one "a" (2,005 bytes, 1,003 characters)', { name: `${'é'.repeat(1002)}a` }, /`name` must be .*at most 2,004 bytes/],
  ['a store without release', { store: { claim: plainStore.claim, complete: plainStore.complete } }, /`store` is required/],
  ['errorFields holding a number', { errorFields: ['statusCode', 1] }, /`errorFields` must be an array of property names/],
  ['errorFields given as one name', { errorFields: 'statusCode' }, /`errorFields` must be an array of property names/],
  ['a null observability', { observability: null }, /`observability` must be a listener/],
  // An array is an object: empty, it read as the options object with metrics and logs off.
  [
    'an empty array of listeners',
    { observability: [] },
    /`observability` must be one listener, not an array: to send the events to several, give one that calls each/,
  ],
  ['an array of listeners', { observability: [() => undefined] }, /`observability` must be one listener, not an array/],
  ['a zero durableLeaseSeconds', { durableLeaseSeconds: 0 }, /`durableLeaseSeconds` must be a whole number, 1 or more \(got 0\)/],
  ['a negative waitForInProgressMillis', { waitForInProgressMillis: -1 }, /`waitForInProgressMillis` must be a whole number, 0 or more \(got -1\)/],
  // Written as `60`, the value would read as one the check accepts.
  ['a BigInt retention', { expiresAfterSeconds: 60n }, /`expiresAfterSeconds` must be a whole number, 1 or more \(got 60n, a BigInt\)/],
  ['singleFlight given as text', { singleFlight: 'false' }, /`singleFlight` must be a boolean/],
  ['atomic given as text', { atomic: 'true' }, /`atomic` must be a boolean/],
  ['onMissingKey given in capitals', { onMissingKey: 'SKIP' }, /`onMissingKey` must be 'throw' or 'skip'/],
  ['atomic: true with a store without transactions', { atomic: true }, /`atomic: true` needs a store with transactions/],
  ['transactions: true with a store without transactions', { transactions: true }, /`transactions: true` needs a store with transactions/],
])('%s is a TypeError that names it', (_what, options, message) => {
  expect(wrap(options)).toThrow(TypeError);
  expect(wrap(options)).toThrow(message);
  expect(() => idempotency({ store: plainStore, ...options } as never)).toThrow(message);
});

test.each([
  [
    'text',
    '3600',
    /the store's `expiresAfterSeconds` \(the retention, with no `expiresAfterSeconds` option\) must be a whole number of seconds, 1 or more \(got "3600"\)/,
  ],
  ['0', 0, /the store's `expiresAfterSeconds` .* 1 or more \(got 0\)/],
  ['NaN', Number.NaN, /the store's `expiresAfterSeconds` .* 1 or more \(got NaN\)/],
])('a store of its own whose expiresAfterSeconds is %s is a TypeError when no option overrides it', (_what, retention, message) => {
  const store = { ...plainStore, expiresAfterSeconds: retention } as never;
  expect(wrap({ store })).toThrow(TypeError);
  expect(wrap({ store })).toThrow(message);
  expect(() => idempotency({ store })).toThrow(message);
  // The option is the retention then, and the store's value is not read.
  expect(wrap({ store, expiresAfterSeconds: 60 })).not.toThrow();
});

test.each(['expiresAfterSeconds', 'leaseSeconds', 'durableLeaseSeconds'])(
  'a %s beyond 9,000,000,000,000 seconds is refused at construction: no key of RedisStore can live that many milliseconds',
  (option) => {
    const message = new TypeError(`makeIdempotent: \`${option}\` must be at most 9,000,000,000,000 seconds, about 285,000 years (got 9000000000001).`);
    expect(wrap({ [option]: 9_000_000_000_001 })).toThrow(message);
    expect(() => idempotency({ store: plainStore, [option]: Number.MAX_SAFE_INTEGER } as never)).toThrow(/ about 285,000 years \(got 9007199254740991\)\.$/);
    expect(wrap({ [option]: 9_000_000_000_000 })).not.toThrow();
  },
);

test('the smallest values are accepted: a name of 2,004 bytes, retention and leases of 1, a cache and a wait of 0', () => {
  for (const options of [
    { name: 'a'.repeat(2004) },
    { name: 'é'.repeat(1002) },
    { expiresAfterSeconds: 1, leaseSeconds: 1, durableLeaseSeconds: 1, cacheSize: 0, waitForInProgressMillis: 0 },
    { errorFields: [], singleFlight: false, atomic: false, transactions: false, onMissingKey: 'skip' },
  ]) {
    expect(wrap(options)).not.toThrow();
  }
});

test.each([
  // 1e300 is an integer to Number.isInteger: the batch would take it as "no bound" without a word.
  ['1e300', 1e300, '1e+300'],
  ['0', 0, '0'],
  ['2.5', 2.5, '2.5'],
  ['text', '4', '"4"'],
])('idempotentBatch refuses a `concurrency` of %s as the other whole-number options are refused, quoting the value', (_what, concurrency, got) => {
  expect(() => idempotentBatch(async () => 'ok', { store: plainStore, name: 'orders', concurrency } as never)).toThrow(
    new TypeError(`idempotentBatch: \`concurrency\` must be a whole number, 1 or more (got ${got}).`),
  );
});

test('a logger whose `error` is null or absent is accepted: its lines go to `warn`', async () => {
  expect(wrap({ logger: console })).not.toThrow();
  for (const error of [null, undefined]) {
    const warned: string[] = [];
    // `error: null` is what a JavaScript caller may pass; the type has no room for it.
    const logger = { warn: (line: string) => void warned.push(line), ...(error === null ? { error } : {}) } as { warn(line: string): void };
    expect(wrap({ logger })).not.toThrow();
    // A poison record is the line logged as an error: it reaches `warn`, not the void.
    const batch = idempotentBatch(async () => 'ok', {
      store: new InMemoryStore(),
      name: 'orders',
      logger,
      parse: () => {
        throw new RangeError('unreadable');
      },
      throwOnFullBatchFailure: false,
    });
    const record = sqsRecord('not an order');
    expect(await batch(sqsEvent([record]), lambdaContext())).toEqual({ batchItemFailures: [{ itemIdentifier: record.messageId }] });
    expect(warned.map((line) => JSON.parse(line))).toEqual([
      {
        level: 'ERROR',
        message: 'lambda-idempotency: poison record reported as failed',
        itemIdentifier: record.messageId,
        reason: 'the parse option threw (RangeError)',
      },
    ]);
  }
});

test.each([
  ['an array of "Name: value" lines', ['Access-Control-Allow-Origin: *']],
  ['an empty array', []],
  ['a header whose value is a number', { 'Access-Control-Max-Age': 600 }],
  ['null', null],
])('httpIdempotency refuses `problemHeaders` given as %s (an array would send each entry as a header named by its index)', (_what, problemHeaders) => {
  const make = () => httpIdempotency({ store: plainStore, problemHeaders } as never);
  expect(make).toThrow(TypeError);
  expect(make).toThrow(/^httpIdempotency: `problemHeaders` must be an object of header names to strings, or a function of the event that returns one\.$/);
});

test('httpIdempotency checks `signedKeys` from its own table: a misspelt or bad member is a TypeError named by its path', () => {
  const make = (signedKeys: object) => () => httpIdempotency({ store: plainStore, signedKeys } as never);
  const secrets = ['s'.repeat(32)];
  expect(make({ secrets, maxAge: 60 })).toThrow(
    new TypeError('httpIdempotency: unknown option `signedKeys.maxAge`. Known options of `signedKeys`: secrets, maxAgeSeconds.'),
  );
  expect(make({ secrets, maxAgeSeconds: 0 })).toThrow(
    new TypeError('httpIdempotency: `signedKeys.maxAgeSeconds` must be a whole number of seconds, 1 or more (got 0).'),
  );
  expect(make({ secrets, maxAgeSeconds: 60 })).not.toThrow();
});

test('an `errorFields` array changed after the function was made (to make the next one) changes nothing of what it stores', async () => {
  const errorFields = ['statusCode'];
  const charge = makeIdempotent(
    async (_id: string) => {
      throw Object.assign(new Error('declined'), { statusCode: 402, card: '4242' });
    },
    { store: new InMemoryStore(), name: 'charge', isFinalError: () => true, errorFields },
  );
  // Reused for the next function: the first one keeps the fields it was made with, checked as they were.
  errorFields.push('card', 1 as never);
  await expect(charge('o-1')).rejects.toThrow('declined');
  const replayed = await charge('o-1').catch((error: unknown) => error);
  expect(replayed).toMatchObject({ message: 'declined', statusCode: 402 });
  expect(replayed).not.toHaveProperty('card');
});

test('a `problemHeaders` object changed after the middleware was made changes nothing of its answers', async () => {
  const problemHeaders: Record<string, string> = { 'Access-Control-Allow-Origin': 'https://shop.example' };
  const handler = middy(async () => ({ statusCode: 201, body: '{}' })).use(httpIdempotency({ store: new InMemoryStore(), name: 'payments', problemHeaders }));
  // Reused for another API's middleware: a value the check would refuse, and another origin.
  problemHeaders['Access-Control-Allow-Origin'] = 'https://other.example';
  (problemHeaders as Record<string, unknown>)['Access-Control-Max-Age'] = 600;
  const missing = await handler(toHttpApiEvent({ method: 'POST', url: '/payments', body: '{}' })!, lambdaContext());
  expect(missing).toMatchObject({
    statusCode: 400,
    headers: { 'Access-Control-Allow-Origin': 'https://shop.example', 'Content-Type': 'application/problem+json' },
  });
  expect((missing as unknown as { headers: object }).headers).not.toHaveProperty('Access-Control-Max-Age');
});
