/**
 * The idempotency middleware among official middy middlewares that `test/integration/middy-ecosystem.test.ts`
 * does not cover: `@middy/warmup` (where its pings must be answered).
 */
import middy from '@middy/core';
import warmup from '@middy/warmup';
import { httpIdempotency, IdempotencyError, idempotency } from '../../lib/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { lambdaContext } from '../support/lambda.js';

const { client, tableName, store } = useFreshTable({ prefix: 'official' });

interface Payment {
  readonly paymentId?: string;
  readonly source?: string;
}

const recordOf = (name: string, key: string) => readItem(client, tableName, recordId(name, key));
const ping = { source: 'serverless-plugin-warmup' };

describe('@middy/warmup', () => {
  test('used before the idempotency middleware, a warm-up ping is answered without a key or a store request; payments stay idempotent', async () => {
    let runs = 0;
    let storeCalls = 0;
    const counted = new Proxy(store, {
      get: (target, name, receiver) => {
        const value: unknown = Reflect.get(target, name, receiver);
        return typeof value === 'function' ? (...args: unknown[]) => (storeCalls++, (value as (...a: unknown[]) => unknown).apply(target, args)) : value;
      },
    });
    const handler = middy(async (event: Payment) => ({ paymentId: event.paymentId, run: ++runs }))
      .use(warmup())
      .use(idempotency({ store: counted, key: (event: Payment) => event.paymentId }));
    const pings = await Promise.all([1, 2, 3].map(() => handler(ping, lambdaContext('official-warmup'))));
    expect(pings).toEqual(['warmup', 'warmup', 'warmup']);
    expect([runs, storeCalls]).toEqual([0, 0]);
    expect(await handler({ paymentId: 'w-1' }, lambdaContext('official-warmup'))).toEqual({ paymentId: 'w-1', run: 1 });
    expect(await handler({ paymentId: 'w-1' }, lambdaContext('official-warmup'))).toEqual({ paymentId: 'w-1', run: 1 });
    expect((await recordOf('official-warmup', 'w-1'))?.status).toEqual({ S: 'COMPLETED' });
  });

  test('used after it, every warm-up ping is keyed as a request first: a selector that finds no key in it fails the ping with KEY_MISSING', async () => {
    const handler = middy(async (event: Payment) => ({ paymentId: event.paymentId }))
      .use(idempotency({ store, key: (event: Payment) => event.paymentId }))
      .use(warmup());
    const failed = await handler(ping, lambdaContext('official-warmup-after')).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(IdempotencyError);
    expect((failed as IdempotencyError).code).toBe('KEY_MISSING');
    const http = middy(async () => ({ statusCode: 201 }))
      .use(httpIdempotency({ store }))
      .use(warmup());
    await expect(http(ping as never, lambdaContext('official-warmup-after'))).rejects.toThrow(/is not an API Gateway REST or HTTP API/);
  });
});
