/**
 * Key and fingerprint selectors are synchronous. An `async` selector returns a promise, which has
 * no JSON form: the call is refused with INVALID_KEY before anything is claimed, and a promise
 * that rejects is not left unhandled (Node ends the process on an unhandled rejection).
 */
import middy from '@middy/core';
import { httpIdempotency, idempotency, idempotentBatch, makeIdempotent } from '../../lib/index.js';
import { InMemoryStore, lambdaContext } from '../../lib/testing/index.js';
import { sqsEvent, sqsRecord } from '../support/batch-events.js';
import { rejection, withoutUnhandledRejections } from '../support/rejections.js';

const lookupFailed = async (): Promise<string> => {
  throw new Error('lookup failed');
};

test('makeIdempotent: an async key or fingerprint selector is INVALID_KEY saying selectors are synchronous; nothing runs, nothing is claimed, no rejection is left unhandled', async () => {
  await withoutUnhandledRejections(async () => {
    const store = new InMemoryStore();
    let runs = 0;
    const options = { store, name: 'charge' };
    const byKey = makeIdempotent(async (_id: string) => ++runs, { ...options, key: lookupFailed });
    const byFingerprint = makeIdempotent(async (_id: string) => ++runs, { ...options, fingerprint: lookupFailed });
    const resolving = makeIdempotent(async (_id: string) => ++runs, { ...options, key: async (id) => ({ id: await Promise.resolve(id) }) });
    for (const call of [byKey, byFingerprint, resolving]) {
      const error = await rejection(call('p-1'));
      expect(error.code).toBe('INVALID_KEY');
      expect(error.message).toMatch(/a Promise .*synchronous/);
    }
    expect(runs).toBe(0);
    // The key was never claimed: a synchronous call with it runs.
    expect(await makeIdempotent(async (_id: string) => ++runs, options)('p-1')).toBe(1);
  });
});

test('the middleware and idempotentBatch refuse an async key selector the same way, without an unhandled rejection', async () => {
  await withoutUnhandledRejections(async () => {
    const store = new InMemoryStore();
    const handler = middy(async () => 'ran').use(idempotency({ store, name: 'orders', key: lookupFailed }));
    const error = await rejection(handler({ orderId: 'o-1' }, lambdaContext()));
    expect(error.code).toBe('INVALID_KEY');
    const batch = idempotentBatch(async () => 'ran', {
      store,
      name: 'consumer',
      key: lookupFailed,
      throwOnFullBatchFailure: false,
      logger: { warn: () => undefined, error: () => undefined },
    });
    const record = sqsRecord({ orderId: 'o-1' } as never);
    expect(await batch(sqsEvent([record]), lambdaContext())).toEqual({ batchItemFailures: [{ itemIdentifier: record.messageId }] });
  });
});

/** A function that throws `declined` on every call, with `isFinalError`, called twice with one key: its runs and the lines it warned. */
async function declinedTwice(isFinalError: (error: unknown) => boolean): Promise<{ runs: number; warned: Array<Record<string, unknown>> }> {
  const warned: string[] = [];
  let runs = 0;
  const charge = makeIdempotent(
    async (_id: string) => {
      runs += 1;
      throw new Error('declined');
    },
    { store: new InMemoryStore(), name: 'charge', isFinalError, logger: { warn: (line) => void warned.push(line) } },
  );
  await expect(charge('p-1')).rejects.toThrow('declined');
  // Released, as the documented default: the retry runs again, and gets the handler's own error.
  await expect(charge('p-1')).rejects.toThrow('declined');
  return { runs, warned: warned.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

test('an async isFinalError counts as "not final": the record is released, a warning says why, and its rejection is not left unhandled', async () => {
  await withoutUnhandledRejections(async () => {
    for (const isFinalError of [async () => true, async () => Promise.reject(new Error('lookup failed'))]) {
      const { runs, warned } = await declinedTwice(isFinalError as never);
      expect(runs).toBe(2);
      expect(warned.map((line) => line.message)).toContain(
        'lambda-idempotency: `isFinalError` returned a promise: it must return true or false, synchronously; the error was taken as not final',
      );
    }
  });
});

test('an isFinalError that throws counts as "not final": the record is released, and a warning names its error by type, never by its message', async () => {
  // A field read on an error that has none: a TypeError for every error without `response`.
  const { runs, warned } = await declinedTwice((error) => (error as { response: { status: number } }).response.status < 500);
  expect(runs).toBe(2);
  const line = {
    level: 'WARN',
    message: 'lambda-idempotency: `isFinalError` threw: it must return true or false; the error was taken as not final',
    error: 'TypeError',
  };
  expect(warned).toEqual([line, line]);
});

test.each([
  ['a string (a field of the error)', (error: unknown) => (error as Error).message, 'a string'],
  ['a number (a status)', () => 402, 'a number'],
  ['an object', () => ({ final: true }), 'an object'],
])('an isFinalError that returns %s counts as "not final", and a warning says that only true is final', async (_what, isFinalError, got) => {
  const { runs, warned } = await declinedTwice(isFinalError as never);
  expect(runs).toBe(2);
  const line = { level: 'WARN', message: `lambda-idempotency: \`isFinalError\` returned ${got}: only true is final; the error was taken as not final` };
  expect(warned).toEqual([line, line]);
});

test('an isFinalError that answers false or nothing (a branch that returns nothing) is warned of by no line', async () => {
  for (const isFinalError of [() => false, () => undefined]) {
    const { runs, warned } = await declinedTwice(isFinalError as never);
    expect([runs, warned]).toEqual([2, []]);
  }
});

test.each([
  ['a promise (an async isFinalResponse)', async () => true],
  ['undefined (a branch that returns nothing)', () => undefined],
  ['a number', () => 1],
  ['a thrown error (a header read on a response without headers)', (response: { headers: Record<string, string> }) => response.headers['x-final'] === 'yes'],
])(
  'httpIdempotency: an isFinalResponse whose answer is %s is warned of and the default rule decides: a 200 is stored and runs once, a 503 released',
  async (what, isFinalResponse) => {
    await withoutUnhandledRejections(async () => {
      for (const [status, runsAfterTwo] of [
        [200, 1],
        [503, 2],
      ] as const) {
        const store = new InMemoryStore();
        const warned: string[] = [];
        let runs = 0;
        const handler = middy(async () => (runs++, { statusCode: status, body: 'answer' })).use(
          httpIdempotency({ store, name: 'api', isFinalResponse: isFinalResponse as never, logger: { warn: (line) => void warned.push(line) } }),
        );
        const request = {
          version: '2.0',
          routeKey: 'POST /orders',
          rawPath: '/orders',
          rawQueryString: '',
          headers: { 'idempotency-key': 'k-1' },
          requestContext: { http: { method: 'POST', path: '/orders' }, requestId: 'r-1' },
          body: '{}',
          isBase64Encoded: false,
        } as never;
        for (let attempt = 1; attempt <= 2; attempt += 1) {
          expect(await handler(request, lambdaContext())).toMatchObject({ statusCode: status, body: 'answer' });
        }
        expect(runs).toBe(runsAfterTwo);
        const got = { 'a promise': 'a promise', undefined: 'undefined', 'a number': '1', 'a thrown error': 'an error' }[what.split(' (')[0]!];
        const line = JSON.parse(warned[0]!) as { message: string; error?: string };
        expect(line.message).toBe(
          `lambda-idempotency: httpIdempotency: \`isFinalResponse\` must return true or false, synchronously (got ${got}); the default rule took this response (${status}) as ${status === 200 ? 'final' : 'not final'}.`,
        );
        expect(line.error).toEqual(got === 'an error' ? 'TypeError' : undefined);
      }
    });
  },
);
