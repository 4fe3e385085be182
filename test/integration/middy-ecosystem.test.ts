/**
 * `httpIdempotency` in the stack middy users build from middy's own HTTP middlewares
 * (`http-cors`, `http-error-handler`, `http-json-body-parser`, `http-router`), used first as the
 * README says: every answer, first or replayed, is what those middlewares made of it.
 */

import { randomUUID } from 'node:crypto';
import middy from '@middy/core';
import httpCors from '@middy/http-cors';
import httpErrorHandler from '@middy/http-error-handler';
import httpJsonBodyParser from '@middy/http-json-body-parser';
import httpRouterHandler from '@middy/http-router';
import { createError } from '@middy/util';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2 } from 'aws-lambda';
import { toHttpApiEvent } from '../../demo/http-event.js';
import { aesGcmEncryption, DynamoDBStore, type HttpIdempotencyOptions, httpIdempotency } from '../../lib/index.js';
import { useFreshTable } from '../support/dynamodb.js';
import { aesKey, keyring } from '../support/keyring.js';
import { lambdaContext } from '../support/lambda.js';

const { client, tableName, store } = useFreshTable({ prefix: 'ecosystem' });

const ORIGIN = 'https://shop.example';

interface PaymentRequest {
  readonly amount: number;
}

/** An HTTP error of 4xx is final, as a client error stays one on a retry. */
const clientErrorsFinal = (error: unknown): boolean => ((error as { statusCode?: number }).statusCode ?? 500) < 500;

/**
 * A route behind `httpIdempotency` (client errors final, `options` the rest) and http-error-handler
 * that throws what `fail` makes; `send()` posts to it under `key`.
 */
function throwingRoute(key: string, fail: () => unknown, options: Partial<HttpIdempotencyOptions> & Pick<HttpIdempotencyOptions, 'errorFields'>) {
  const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyResultV2>()
    .use(httpIdempotency({ store, name: `ecosystem-${randomUUID()}`, isFinalError: clientErrorsFinal, ...options }))
    .use(httpErrorHandler({ logger: false }))
    .handler(async () => {
      throw fail();
    });
  return () =>
    handler(
      toHttpApiEvent({ method: 'POST', url: '/payments', headers: { 'idempotency-key': key, 'content-type': 'application/json' }, body: '{}' })!,
      lambdaContext('orders'),
    ) as Promise<{ statusCode: number; headers: Record<string, string>; body: string }>;
}

/** The payment API: charges and refunds, counted, behind the official middlewares. */
function paymentApi(options: Partial<HttpIdempotencyOptions> = {}, cors: { readonly exposeHeaders?: string } = {}) {
  const runs = { charge: 0, refund: 0 };
  const charge = async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyResultV2> => {
    runs.charge++;
    const { amount } = event.body as unknown as PaymentRequest; // parsed by http-json-body-parser
    return { statusCode: 201, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ paymentId: `pay-${runs.charge}`, amount }) };
  };
  const refund = async (): Promise<APIGatewayProxyResultV2> => {
    runs.refund++;
    throw createError(409, 'The refund exceeds the payment.', { expose: true });
  };
  const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyResultV2>()
    .use(httpIdempotency({ store, name: `ecosystem-${randomUUID()}`, ...options }))
    .use(httpCors({ origins: [ORIGIN], disableBeforePreflightResponse: false, ...cors }))
    .use(httpErrorHandler({ logger: false }))
    .use(httpJsonBodyParser())
    .handler(
      httpRouterHandler<APIGatewayProxyEventV2, APIGatewayProxyResultV2>([
        { method: 'POST', path: '/payments', handler: charge },
        { method: 'POST', path: '/payments/{id}/refunds', handler: refund },
      ]),
    );
  const send = (url: string, key: string, body: string) =>
    handler(
      toHttpApiEvent({ method: 'POST', url, headers: { 'idempotency-key': key, 'content-type': 'application/json', origin: ORIGIN }, body })!,
      lambdaContext('payments'),
    ) as Promise<{ statusCode: number; headers: Record<string, string>; body: string }>;
  return { runs, send, handler };
}

test('a created payment replays with its status, body and CORS headers, plus Idempotent-Replayed, without charging again', async () => {
  const { runs, send } = paymentApi();
  const key = randomUUID();
  const first = await send('/payments', key, '{"amount":2500}');
  const replay = await send('/payments', key, '{ "amount": 2500 }');
  expect(first).toMatchObject({ statusCode: 201, body: '{"paymentId":"pay-1","amount":2500}', headers: { 'Access-Control-Allow-Origin': ORIGIN } });
  // A script on the shop's origin reads Idempotent-Replayed only if the answer exposes it.
  expect(replay).toEqual({ ...first, headers: { ...first.headers, 'Idempotent-Replayed': 'true', 'Access-Control-Expose-Headers': 'Idempotent-Replayed' } });
  expect(runs.charge).toBe(1);
});

test('a replay exposes Idempotent-Replayed after the headers http-cors exposes', async () => {
  const { send } = paymentApi({}, { exposeHeaders: 'X-Request-Id' });
  const key = randomUUID();
  await send('/payments', key, '{"amount":2500}');
  expect((await send('/payments', key, '{"amount":2500}')).headers).toMatchObject({
    'Access-Control-Allow-Origin': ORIGIN,
    'Access-Control-Expose-Headers': 'X-Request-Id, Idempotent-Replayed',
    'Idempotent-Replayed': 'true',
  });
});

test('a body http-json-body-parser refuses is answered by http-error-handler with CORS headers, and releases the key for the corrected request', async () => {
  const { runs, send } = paymentApi();
  const key = randomUUID();
  const refused = await send('/payments', key, '{"amount":');
  expect(refused).toMatchObject({ statusCode: 422, headers: { 'Access-Control-Allow-Origin': ORIGIN } });
  expect(runs.charge).toBe(0);
  expect(await send('/payments', key, '{"amount":100}')).toMatchObject({ statusCode: 201, body: '{"paymentId":"pay-1","amount":100}' });
});

test('an HTTP error the route throws is answered by http-error-handler and releases the key: the retry runs again', async () => {
  const { runs, send } = paymentApi();
  const key = randomUUID();
  const answers = [await send('/payments/p-1/refunds', key, '{"amount":1}'), await send('/payments/p-1/refunds', key, '{"amount":1}')];
  for (const answer of answers) {
    expect(answer).toMatchObject({ statusCode: 409, body: 'The refund exceeds the payment.', headers: { 'Access-Control-Allow-Origin': ORIGIN } });
  }
  expect(runs.refund).toBe(2);
});

test('with isFinalError and errorFields, that HTTP error is stored and replayed through http-error-handler without running again', async () => {
  const { runs, send } = paymentApi({
    isFinalError: clientErrorsFinal,
    errorFields: ['statusCode', 'expose'],
  });
  const key = randomUUID();
  const first = await send('/payments/p-1/refunds', key, '{"amount":1}');
  const replay = await send('/payments/p-1/refunds', key, '{"amount":1}');
  expect(first).toMatchObject({ statusCode: 409, body: 'The refund exceeds the payment.', headers: { 'Access-Control-Allow-Origin': ORIGIN } });
  expect(replay).toEqual(first);
  expect(runs.refund).toBe(1);
});

test('an HTTP error http-error-handler hid behind a 500 (expose: false) stays hidden on the replay with `expose` in errorFields; with statusCode alone, the replay shows it', async () => {
  const answers = async (errorFields: string[]) => {
    const send = throwingRoute('hidden-1', () => createError(400, 'SELECT failed on db-prod-1', { expose: false }), { errorFields });
    return [await send(), await send()];
  };
  const [first, replay] = await answers(['statusCode', 'expose', 'headers']);
  expect(first).toMatchObject({ statusCode: 500 });
  expect(replay).toEqual(first);
  const [, shown] = await answers(['statusCode']);
  expect(shown).toMatchObject({ statusCode: 400, body: 'SELECT failed on db-prod-1' });
});

test('an HTTP error thrown as a plain object without a message (`{ statusCode: 404 }`) replays without one: the same 404 with no body, not "[object Object]"', async () => {
  let runs = 0;
  // `runs`, a field not in errorFields, is no part of the answer.
  const send = throwingRoute('missing-1', () => ({ statusCode: 404, runs: ++runs }), { errorFields: ['statusCode', 'expose'] });
  const first = await send();
  const replay = await send();
  expect(first).toEqual({ statusCode: 404, headers: {} });
  expect(replay).toEqual(first);
  expect(runs).toBe(1);
});

test('a stored HTTP error too large for the item keeps its statusCode: the replay is the same 4xx, its message cut short, without running again', async () => {
  let runs = 0;
  const send = throwingRoute(
    'order-1',
    () => {
      runs++;
      return createError(422, `Unknown items: ${'sku-0001, '.repeat(50_000)}`, { expose: true });
    },
    { errorFields: ['statusCode', 'expose'] },
  );
  const first = await send();
  const replay = await send();
  expect(first.statusCode).toBe(422);
  expect(replay.statusCode).toBe(422);
  expect(replay.body.startsWith('Unknown items: sku-0001, ')).toBe(true);
  expect(replay.body.endsWith('…')).toBe(true);
  expect(runs).toBe(1);
});

test('a final HTTP error the key provider cannot seal: the request gets its 4xx from http-error-handler, a duplicate a 409 problem (ERROR_NOT_STORED, not a success), without running again', async () => {
  const ring = keyring(aesKey('k1'));
  let runs = 0;
  const send = throwingRoute(
    'declined-1',
    () => {
      runs++;
      return createError(402, 'The card was declined.', { expose: true });
    },
    {
      store: new DynamoDBStore({ tableName, client, encryption: aesGcmEncryption(ring.encryption) }),
      errorFields: ['statusCode', 'expose'],
      logger: { warn: () => undefined },
    },
  );
  ring.failCurrent = 'throws';
  expect(await send()).toMatchObject({ statusCode: 402, body: 'The card was declined.' });
  ring.failCurrent = undefined;
  const duplicate = await send();
  expect([duplicate.statusCode, duplicate.headers['Content-Type']]).toEqual([409, 'application/problem+json']);
  expect(JSON.parse(duplicate.body)).toMatchObject({ status: 409, title: 'A request with this Idempotency-Key failed, and its error was not kept' });
  expect(runs).toBe(1);
});

test('a CORS preflight, which never carries Idempotency-Key, is answered by http-cors without reaching a route', async () => {
  const { runs, handler } = paymentApi();
  const post = toHttpApiEvent({ method: 'POST', url: '/payments', headers: { origin: ORIGIN } })!;
  const preflight: APIGatewayProxyEventV2 = {
    ...post,
    routeKey: '$default',
    headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,idempotency-key' },
    requestContext: { ...post.requestContext, http: { ...post.requestContext.http, method: 'OPTIONS' } },
  };
  delete preflight.body;
  const answer = (await handler(preflight, lambdaContext('payments'))) as { statusCode: number; headers: Record<string, string> };
  expect(answer).toMatchObject({ statusCode: 204, headers: { 'Access-Control-Allow-Origin': ORIGIN } });
  expect(runs).toEqual({ charge: 0, refund: 0 });
});

test('used after http-json-body-parser, against the documented order: a TypeError that says to use it first, and the route never runs', async () => {
  let runs = 0;
  const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyResultV2>()
    .use(httpJsonBodyParser())
    .use(httpIdempotency({ store, name: `ecosystem-${randomUUID()}` }))
    .handler(async () => {
      runs++;
      return { statusCode: 201 };
    });
  for (const isBase64Encoded of [false, true]) {
    const body = isBase64Encoded ? Buffer.from('{"amount":1}').toString('base64') : '{"amount":1}';
    const event = {
      ...toHttpApiEvent({ method: 'POST', url: '/payments', headers: { 'idempotency-key': randomUUID(), 'content-type': 'application/json' }, body })!,
      isBase64Encoded,
    };
    await expect(handler(event, lambdaContext('payments'))).rejects.toThrow(
      new TypeError(
        'httpIdempotency: the request body is not the text Lambda delivered (a middleware used before httpIdempotency, such as http-json-body-parser, parsed it): use httpIdempotency first.',
      ),
    );
  }
  expect(runs).toBe(0);
});

describe('the answers httpIdempotency gives itself, which http-cors never sees', () => {
  /** A POST without Idempotency-Key (400), and a key reused with another amount (422). */
  async function ownAnswers(options: Partial<HttpIdempotencyOptions>) {
    const { runs, send, handler } = paymentApi(options);
    const key = randomUUID();
    await send('/payments', key, '{"amount":2500}');
    const mismatch = await send('/payments', key, '{"amount":9900}');
    const event = toHttpApiEvent({ method: 'POST', url: '/payments', headers: { 'content-type': 'application/json', origin: ORIGIN }, body: '{"amount":1}' })!;
    const missing = (await handler(event, lambdaContext('payments'))) as { statusCode: number; headers: Record<string, string> };
    expect(runs.charge).toBe(1);
    return [mismatch, missing] as const;
  }

  test('carry no CORS headers by default', async () => {
    const [mismatch, missing] = await ownAnswers({});
    expect([mismatch.statusCode, missing.statusCode]).toEqual([422, 400]);
    for (const answer of [mismatch, missing]) expect(answer.headers).toEqual({ 'Content-Type': 'application/problem+json' });
  });

  test('carry `problemHeaders`, given as an object', async () => {
    const [mismatch, missing] = await ownAnswers({ problemHeaders: { 'Access-Control-Allow-Origin': ORIGIN, Vary: 'Origin' } });
    for (const answer of [mismatch, missing]) {
      expect(answer.headers).toEqual({ 'Access-Control-Allow-Origin': ORIGIN, Vary: 'Origin', 'Content-Type': 'application/problem+json' });
    }
  });

  test('carry `problemHeaders`, given as a function of the event (an origin reflected), which never overrides Content-Type', async () => {
    const seen: string[] = [];
    const [mismatch, missing] = await ownAnswers({
      problemHeaders: (event) => {
        seen.push(event.headers?.origin ?? '');
        return { 'Access-Control-Allow-Origin': event.headers?.origin ?? '', 'Content-Type': 'text/plain' };
      },
    });
    expect(seen).toEqual([ORIGIN, ORIGIN]);
    for (const answer of [mismatch, missing])
      expect(answer.headers).toEqual({ 'Access-Control-Allow-Origin': ORIGIN, 'Content-Type': 'application/problem+json' });
  });

  test('carry `problemHeaders` whose names are in another case without a second Content-Type: header names are case-insensitive', async () => {
    const [mismatch, missing] = await ownAnswers({ problemHeaders: { 'access-control-allow-origin': ORIGIN, 'content-type': 'text/html' } });
    for (const answer of [mismatch, missing])
      expect(answer.headers).toEqual({ 'access-control-allow-origin': ORIGIN, 'Content-Type': 'application/problem+json' });
  });

  test.each([
    ['a promise (an async function)', async () => ({ 'Access-Control-Allow-Origin': ORIGIN }), 'a promise'],
    ['an array', () => [['Access-Control-Allow-Origin', ORIGIN]], 'an array'],
    ['an object with a number', () => ({ 'Access-Control-Max-Age': 600 }), 'an object with a value that is not a string'],
  ])('a `problemHeaders` function that returns %s: the answer goes without its headers, and a warning says why', async (_, problemHeaders, got) => {
    const warnings: unknown[] = [];
    const logger = { warn: (line: string) => warnings.push(JSON.parse(line).message) };
    const [mismatch, missing] = await ownAnswers({ problemHeaders: problemHeaders as never, logger });
    expect([mismatch.statusCode, missing.statusCode]).toEqual([422, 400]);
    for (const answer of [mismatch, missing]) expect(answer.headers).toEqual({ 'Content-Type': 'application/problem+json' });
    expect(warnings).toEqual(
      Array(2).fill(
        `lambda-idempotency: httpIdempotency: \`problemHeaders\` must return an object of header names to strings, synchronously (got ${got}); the answer was sent without its headers.`,
      ),
    );
  });

  test('a `problemHeaders` function that returns undefined for a request adds no headers to its answer, and logs nothing', async () => {
    const warnings: string[] = [];
    const [mismatch, missing] = await ownAnswers({ problemHeaders: () => undefined, logger: { warn: (line: string) => warnings.push(line) } });
    for (const answer of [mismatch, missing]) expect(answer.headers).toEqual({ 'Content-Type': 'application/problem+json' });
    expect(warnings).toEqual([]);
  });

  test.each([
    ['a string', 'https://shop.example'],
    ['an object with a number', { 'Access-Control-Max-Age': 600 }],
    ['a promise', Promise.resolve({ 'Access-Control-Allow-Origin': ORIGIN })],
    ['null', null],
  ])('`problemHeaders` as %s is a TypeError at construction', (_, problemHeaders) => {
    expect(() => httpIdempotency({ store, problemHeaders: problemHeaders as never })).toThrow(
      new TypeError('httpIdempotency: `problemHeaders` must be an object of header names to strings, or a function of the event that returns one.'),
    );
  });
});
