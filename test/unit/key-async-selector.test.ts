/**
 * Key and fingerprint selectors are synchronous. An `async` selector returns a promise, which has
 * no JSON form: the call is refused with INVALID_KEY before anything is claimed, and a promise
 * that rejects is not left unhandled (Node ends the process on an unhandled rejection).
 */
import middy from '@middy/core';
import { idempotency, idempotentBatch, makeIdempotent } from '../../lib/index.js';
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
