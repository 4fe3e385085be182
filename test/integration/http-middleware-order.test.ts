/**
 * `httpIdempotency` among middy's serializer, validator and error handler, used in the documented
 * order (first) and, for the error handler, in the other one: every replay is byte for byte what
 * the first caller received, and an error the error handler turns into a 5xx answer is never
 * stored as an outcome, so the retry runs.
 */
import { randomUUID } from 'node:crypto';
import middy from '@middy/core';
import httpCors from '@middy/http-cors';
import httpErrorHandler from '@middy/http-error-handler';
import httpResponseSerializer from '@middy/http-response-serializer';
import validator from '@middy/validator';
import { transpileSchema } from '@middy/validator/transpile';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { type HttpResult, httpIdempotency } from '../../lib/index.js';
import { useFreshTable } from '../support/dynamodb.js';
import { gate } from '../support/gate.js';
import { httpEvent } from '../support/identity-events.js';
import { scanRecords } from '../support/invariants.js';
import { lambdaContext } from '../support/lambda.js';

const { client, tableName, store } = useFreshTable({ prefix: 'http-order' });
const ORIGIN = 'https://shop.example';

/** A payment request from the shop's origin, as an HTTP API delivers it. */
const payment = (key: string, body = '{"amount":2500}'): APIGatewayProxyEventV2 => {
  const event = httpEvent('http', {}, { key, body }) as APIGatewayProxyEventV2;
  event.headers.origin = ORIGIN;
  event.headers.accept = 'application/json';
  return event;
};

const json = [{ regex: /^application\/json$/, serializer: ({ body }: { body?: unknown }) => JSON.stringify(body) }];
const amountSchema = transpileSchema({
  type: 'object',
  required: ['body'],
  properties: { body: { type: 'string', pattern: '^\\{"amount":[1-9][0-9]*\\}$' } },
});

/** The payment API with `handler`, idempotency first, then CORS, the error handler, the validator and the serializer. */
function paymentApi(handler: (run: number) => Promise<unknown>, fallbackMessage?: string, isFinalError?: (error: unknown) => boolean) {
  const name = `http-order-${randomUUID()}`;
  let runs = 0;
  const api = middy(async () => handler(++runs))
    .use(httpIdempotency({ store, name, ...(isFinalError === undefined ? {} : { isFinalError }) }))
    .use(httpCors({ origins: [ORIGIN] }))
    .use(httpErrorHandler({ logger: false, ...(fallbackMessage === undefined ? {} : { fallbackMessage }) }))
    .use(validator({ eventSchema: amountSchema }))
    .use(httpResponseSerializer({ serializers: json, defaultContentType: 'application/json' }));
  return {
    send: (event: APIGatewayProxyEventV2) => api(event, lambdaContext(name)) as Promise<HttpResult>,
    get runs() {
      return runs;
    },
    records: () => scanRecords(client, tableName, `${name}#`),
  };
}

test('the serializer and http-cors shape the first answer; the replay is that answer, plus Idempotent-Replayed', async () => {
  const api = paymentApi(async (run) => ({ statusCode: 201, body: { paymentId: `pay-${run}` } }));
  const key = randomUUID();
  const first = await api.send(payment(key));
  expect(first).toEqual({
    statusCode: 201,
    headers: { 'Content-Type': 'application/json', 'Access-Control-Allow-Origin': ORIGIN, Vary: 'Origin' },
    body: '{"paymentId":"pay-1"}',
  });
  expect(await api.send(payment(key))).toEqual({
    ...first,
    headers: { ...first.headers, 'Idempotent-Replayed': 'true', 'Access-Control-Expose-Headers': 'Idempotent-Replayed' },
  });
  expect(api.runs).toBe(1);
});

test('used after http-response-serializer and http-cors, a replay skips them (no after hook runs for an early answer): storing the unserialized body says so once, in a WARN line', async () => {
  const warnings: string[] = [];
  const name = `http-order-${randomUUID()}`;
  const logger = { warn: (line: string) => void warnings.push(line) };
  const api = middy(async () => ({ statusCode: 201, body: { paymentId: 'pay-1' } }))
    .use(httpCors({ origins: [ORIGIN] }))
    .use(httpResponseSerializer({ serializers: json, defaultContentType: 'application/json' }))
    .use(httpIdempotency({ store, name, logger }));
  const key = randomUUID();
  expect(await api(payment(key), lambdaContext(name))).toMatchObject({ body: '{"paymentId":"pay-1"}', headers: { 'Access-Control-Allow-Origin': ORIGIN } });
  expect(await api(payment(key), lambdaContext(name))).toEqual({ statusCode: 201, body: { paymentId: 'pay-1' }, headers: { 'Idempotent-Replayed': 'true' } });
  await api(payment(randomUUID()), lambdaContext(name));
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatch(/body is not text.*Use httpIdempotency first/);
  // In the documented order the serializer's `after` runs first: nothing to say.
  const quiet: string[] = [];
  const documented = middy(async () => ({ statusCode: 201, body: { paymentId: 'pay-2' } }))
    .use(httpIdempotency({ store, name: `${name}-first`, logger: { warn: (line: string) => void quiet.push(line) } }))
    .use(httpResponseSerializer({ serializers: json, defaultContentType: 'application/json' }));
  await documented(payment(key), lambdaContext(`${name}-first`));
  expect(quiet).toEqual([]);
});

const clientErrors = (error: unknown) => ((error as { statusCode?: number }).statusCode ?? 500) < 500;

test.each([
  ['', undefined],
  [', also when `isFinalError` keeps 4xx errors (the handler never ran)', clientErrors],
])('a request the validator refuses gets its 400, nothing is stored, and the corrected request with the same key runs%s', async (_, isFinalError) => {
  const api = paymentApi(async (run) => ({ statusCode: 201, body: { paymentId: `pay-${run}` } }), undefined, isFinalError);
  const key = randomUUID();
  expect(await api.send(payment(key, '{"amount":0}'))).toMatchObject({ statusCode: 400, headers: { 'Access-Control-Allow-Origin': ORIGIN } });
  expect(await api.records()).toEqual([]);
  expect(await api.send(payment(key))).toMatchObject({ statusCode: 201, body: '{"paymentId":"pay-1"}' });
  expect(api.runs).toBe(1);
});

test('an error http-error-handler turns into a 500 (its fallback message) is not stored: the retry runs, and the record ends completed', async () => {
  const api = paymentApi(async (run) => {
    if (run === 1) throw new Error('card network timeout');
    return { statusCode: 201, body: { paymentId: `pay-${run}` } };
  }, 'Payment failed');
  const key = randomUUID();
  expect(await api.send(payment(key))).toMatchObject({ statusCode: 500, body: 'Payment failed', headers: { 'Access-Control-Allow-Origin': ORIGIN } });
  expect(await api.records()).toEqual([]);
  expect(await api.send(payment(key))).toMatchObject({ statusCode: 201, body: '{"paymentId":"pay-2"}' });
  expect(api.runs).toBe(2);
  expect((await api.records()).map((record) => record.status)).toEqual(['COMPLETED']);
});

test('used after http-error-handler, an error it turns into a 500 is not stored either: the retry runs', async () => {
  const name = `http-order-${randomUUID()}`;
  let runs = 0;
  const api = middy(async (): Promise<HttpResult> => {
    runs++;
    throw new Error('card network timeout');
  })
    .use(httpErrorHandler({ logger: false, fallbackMessage: 'Payment failed' }))
    .use(httpIdempotency({ store, name }));
  const key = randomUUID();
  for (let attempt = 0; attempt < 2; attempt++) {
    expect(await api(payment(key), lambdaContext(name))).toMatchObject({ statusCode: 500, body: 'Payment failed' });
  }
  expect(runs).toBe(2);
  expect(await scanRecords(client, tableName, `${name}#`)).toEqual([]);
});

describe("middy's early timeout", () => {
  /** A payment that outlives middy's early timeout (it fires at once: the deadline is its margin away), until `running` opens. */
  function slowPayment(plugin: { timeoutEarlyResponse?: () => unknown }) {
    const name = `http-order-${randomUUID()}`;
    const running = gate();
    let runs = 0;
    const api = middy(
      async (): Promise<HttpResult> => {
        runs++;
        await running.promise;
        return { statusCode: 201, body: 'charged' };
      },
      { timeoutEarlyInMillis: 1_000, ...plugin },
    )
      .use(httpIdempotency({ store, name, singleFlight: false })) // each invocation stands for another process
      .use(httpErrorHandler({ logger: false }));
    return {
      send: (event: APIGatewayProxyEventV2, remaining = 1_000) => api(event, lambdaContext(name, remaining)) as Promise<HttpResult>,
      running,
      get runs() {
        return runs;
      },
    };
  }

  // http-error-handler replaces the TimeoutError with a plain 500 error before httpIdempotency's `onError` reads it.
  test('by default, answered by http-error-handler, holds the key: a retry while the payment may still run gets 409', async () => {
    const api = slowPayment({});
    const key = randomUUID();
    expect(await api.send(payment(key))).toMatchObject({ statusCode: 500 });
    expect((await api.send(payment(key), 30_000)).statusCode).toBe(409);
    expect(api.runs).toBe(1);
    api.running.open();
  });

  test("answered with a value instead (middy's API Gateway example returns a 408), releases the key: the retry runs the payment again while the first still runs", async () => {
    const api = slowPayment({ timeoutEarlyResponse: () => ({ statusCode: 408 }) });
    const key = randomUUID();
    expect(await api.send(payment(key))).toEqual({ statusCode: 408 });
    const retry = api.send(payment(key), 30_000);
    api.running.open();
    expect(await retry).toMatchObject({ statusCode: 201, body: 'charged' });
    expect(api.runs).toBe(2);
  });

  test('answered with a final status instead, stores it as the response, though the payment never finished: the retry replays it and never runs', async () => {
    const api = slowPayment({ timeoutEarlyResponse: () => ({ statusCode: 202, body: 'pending' }) });
    const key = randomUUID();
    expect(await api.send(payment(key))).toEqual({ statusCode: 202, body: 'pending' });
    expect(await api.send(payment(key), 30_000)).toEqual({ statusCode: 202, body: 'pending', headers: { 'Idempotent-Replayed': 'true' } });
    expect(api.runs).toBe(1);
    api.running.open();
  });
});

test('an error `isFinalError` keeps is kept also when http-error-handler answers it with its fallback 500: the retry gets that answer without running again', async () => {
  class CaptureUnconfirmed extends Error {}
  const name = `http-order-${randomUUID()}`;
  let runs = 0;
  const api = middy(async (): Promise<HttpResult> => {
    runs++;
    throw new CaptureUnconfirmed('the card may have been charged');
  })
    .use(httpIdempotency({ store, name, isFinalError: (error) => error instanceof CaptureUnconfirmed }))
    .use(httpErrorHandler({ logger: false, fallbackMessage: 'Payment failed' }));
  const key = randomUUID();
  for (let attempt = 0; attempt < 2; attempt++) {
    expect(await api(payment(key), lambdaContext(name))).toMatchObject({ statusCode: 500, body: 'Payment failed' });
  }
  expect(runs).toBe(1);
});

test('a GET whose handler returned, then a later middleware threw: the request, which carries no key, asks no isFinalResponse', async () => {
  const asked: HttpResult[] = [];
  const handler = middy(async () => ({ statusCode: 200, body: 'order ord-1' }))
    .use(httpIdempotency({ store, name: `get-${randomUUID()}`, isFinalResponse: (result) => asked.push(result) > 0 }))
    .use({
      after: () => {
        throw new Error('response logger down');
      },
    });
  const post = httpEvent('url', {}, { key: randomUUID() }) as APIGatewayProxyEventV2;
  const event = { ...post, requestContext: { ...post.requestContext, http: { ...post.requestContext.http, method: 'GET' } } };
  await expect(handler(event, lambdaContext('http-order-get'))).rejects.toThrow('response logger down');
  expect(asked).toEqual([]);
});
