/**
 * The idempotency middleware among official middy middlewares that `test/integration/middy-ecosystem.test.ts`
 * does not cover: `@middy/warmup` (where its pings must be answered) and `@middy/http-router` (whose
 * routes share the function's namespace).
 */
import middy from '@middy/core';
import httpRouterHandler from '@middy/http-router';
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

describe('@middy/http-router', () => {
  interface Order {
    readonly pathParameters: { readonly id: string };
  }
  const routes = (names: readonly [string?, string?]) => {
    let refunds = 0;
    const route = (body: string, name: string | undefined, run: () => void) =>
      middy(async () => {
        run();
        return { statusCode: 200, body };
      }).use(idempotency({ store, name, key: (event: Order) => event.pathParameters.id }));
    const handler = middy().handler(
      httpRouterHandler([
        { method: 'POST', path: '/orders/{id}/capture', handler: route('captured', names[0], () => undefined) },
        { method: 'POST', path: '/orders/{id}/refund', handler: route('refunded', names[1], () => refunds++) },
      ] as never) as never,
    );
    const post = (path: string) =>
      handler(
        { version: '2.0', routeKey: `POST ${path}`, rawPath: path, requestContext: { http: { method: 'POST', path } }, headers: {} } as never,
        lambdaContext('official-router'),
      );
    return { post, refunds: () => refunds };
  };

  test('routes share the function’s namespace: without a `name` each, a refund with the key of a capture replays the capture and never runs', async () => {
    const { post, refunds } = routes([undefined, undefined]);
    expect(await post('/orders/o-1/capture')).toMatchObject({ body: 'captured' });
    expect(await post('/orders/o-1/refund')).toMatchObject({ body: 'captured' });
    expect(refunds()).toBe(0);
  });

  test('with a `name` each, every route keeps its own records', async () => {
    const { post, refunds } = routes(['official-capture', 'official-refund']);
    expect(await post('/orders/o-2/capture')).toMatchObject({ body: 'captured' });
    expect(await post('/orders/o-2/refund')).toMatchObject({ body: 'refunded' });
    expect(await post('/orders/o-2/refund')).toMatchObject({ body: 'refunded' });
    expect(refunds()).toBe(1);
  });

  /** A POST to the router's `/payments` route (HTTP API, payload format 2.0) with the idempotency key `key`. */
  const routerEvent = (key: string) => ({
    version: '2.0',
    routeKey: 'POST /payments',
    rawPath: '/payments',
    rawQueryString: '',
    headers: { 'idempotency-key': key },
    requestContext: { http: { method: 'POST', path: '/payments' } },
  });

  test('httpIdempotency on the router and on a route, in one namespace: a TypeError that says so, the route never runs and no key stays held, rather than a 409 for ever', async () => {
    let runs = 0;
    const route = middy(async () => ({ statusCode: 201, body: String(++runs) })).use(httpIdempotency({ store }));
    const handler = middy()
      .use(httpIdempotency({ store }))
      .handler(httpRouterHandler([{ method: 'POST', path: '/payments', handler: route }] as never) as never);
    const event = routerEvent('k-nested');
    for (let attempt = 0; attempt < 2; attempt++) {
      await expect(handler(event as never, lambdaContext('official-router-nested'))).rejects.toThrow(
        'httpIdempotency(): an idempotency middleware of a middy handler this one is nested in holds the same record (same name and key): give each its own `name`, or use one.',
      );
    }
    expect(runs).toBe(0);
  });

  test('one idempotency middleware `.use()`d on both the router and a route: the same TypeError, rather than a 409 (or IN_PROGRESS) for ever', async () => {
    let runs = 0;
    const event = routerEvent('k-shared');
    const shared = [
      httpIdempotency({ store }),
      idempotency({ store, key: (request: { headers: Record<string, string> }) => request.headers['idempotency-key'] }),
    ];
    for (const middleware of shared) {
      const route = middy(async () => ({ statusCode: 201, body: String(++runs) })).use(middleware);
      const handler = middy()
        .use(middleware)
        .handler(httpRouterHandler([{ method: 'POST', path: '/payments', handler: route }] as never) as never);
      for (let attempt = 0; attempt < 2; attempt++) {
        await expect(handler(event as never, lambdaContext('official-router-shared'))).rejects.toThrow(
          /\(\): an idempotency middleware of a middy handler this one is nested in holds the same record/,
        );
      }
    }
    expect(runs).toBe(0);
  });
});
