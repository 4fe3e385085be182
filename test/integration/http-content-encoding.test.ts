/**
 * `httpIdempotency` used first, with `@middy/http-content-negotiation` and
 * `@middy/http-content-encoding` after it: the stored response is the one compressed for the first
 * caller's `Accept-Encoding`. A duplicate is the same request whatever its client decodes, and gets
 * the stored answer in a coding its client accepts.
 */

import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { jest } from '@jest/globals';
import middy from '@middy/core';
import httpContentNegotiation from '@middy/http-content-negotiation';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import { toHttpApiEvent } from '../../demo/http-event.js';
import { type HttpResult, httpIdempotency } from '../../lib/index.js';
import { useFreshTable } from '../support/dynamodb.js';
import { lambdaContext } from '../support/lambda.js';
import { invokeStreaming, streamingMode } from '../support/streaming.js';

// @middy/http-content-encoding 7 imports zstd from node:zlib by name, which Node.js 20 lacks; these
// tests never ask for zstd, so on Node.js 20 it gets functions that say so.
if (!('zstdCompressSync' in zlib)) {
  const missing = () => {
    throw new Error('zstd needs Node.js 22.15 or later');
  };
  jest.unstable_mockModule('node:zlib', () => ({ ...zlib, createZstdCompress: missing, zstdCompressSync: missing }));
}
const { default: httpContentEncoding } = await import('@middy/http-content-encoding');

const { store } = useFreshTable({ prefix: 'encoding' });

/** A JSON body large enough that every coding makes it smaller, so the encoder always compresses. */
const receipt = (run: number) => JSON.stringify({ paymentId: `pay-${run}`, lines: Array.from({ length: 50 }, (_, i) => ({ sku: `SKU-${i}`, qty: 1 })) });

function paymentApi() {
  let runs = 0;
  const handler = middy<APIGatewayProxyEventV2, HttpResult>()
    .use(httpIdempotency({ store, name: `encoding-${randomUUID()}` }))
    .use(httpContentNegotiation({ parseCharsets: false, parseLanguages: false, parseMediaTypes: false }))
    .use(httpContentEncoding())
    .handler(async () => ({ statusCode: 201, headers: { 'Content-Type': 'application/json' }, body: receipt(++runs) }));
  const send = (key: string, acceptEncoding?: string) => {
    const headers: Record<string, string> = { 'idempotency-key': key, 'content-type': 'application/json' };
    if (acceptEncoding !== undefined) headers['accept-encoding'] = acceptEncoding;
    const event = toHttpApiEvent({ method: 'POST', url: '/payments', headers, body: '{"amount":2500}' })!;
    return handler(event, lambdaContext('payments')) as Promise<HttpResult>;
  };
  return {
    send,
    get runs() {
      return runs;
    },
  };
}

const DECODE: Record<string, (bytes: Buffer) => Buffer> = { br: zlib.brotliDecompressSync, gzip: zlib.gunzipSync, deflate: zlib.inflateSync };

/** What the client reads: the body decoded by the coding the response names, or as it is. */
function decoded(response: HttpResult): string {
  const coding = response.headers?.['Content-Encoding'] as string | undefined;
  const bytes = response.isBase64Encoded ? Buffer.from(response.body!, 'base64') : Buffer.from(response.body!, 'utf8');
  return (coding === undefined ? bytes : DECODE[coding]!(bytes)).toString('utf8');
}

test('the first answer is compressed for its client (br), as the encoder does without httpIdempotency', async () => {
  const api = paymentApi();
  const first = await api.send(randomUUID(), 'br, gzip');
  expect(first).toMatchObject({ statusCode: 201, isBase64Encoded: true, headers: { 'Content-Encoding': 'br', Vary: 'Accept-Encoding' } });
  expect(decoded(first)).toBe(receipt(1));
});

test.each([
  ['accepts the stored coding (br)', 'gzip, deflate, br', 'br'],
  ['accepts gzip only', 'gzip', 'gzip'],
  ['accepts gzip by a wildcard, br refused', 'br;q=0, *', 'gzip'],
  ['sends no Accept-Encoding', undefined, undefined],
  ['accepts only identity', 'identity', undefined],
  ['refuses every coding (the server then sends none)', 'br;q=0, gzip;q=0, *;q=0', undefined],
])('a duplicate whose client %s replays the stored answer in a coding it reads, without running again', async (_, acceptEncoding, coding) => {
  const api = paymentApi();
  const key = randomUUID();
  const first = await api.send(key, 'br');
  const replay = await api.send(key, acceptEncoding);
  expect(api.runs).toBe(1);
  expect(replay.statusCode).toBe(201);
  expect(replay.headers).toMatchObject({ 'Idempotent-Replayed': 'true', 'Content-Type': 'application/json', Vary: 'Accept-Encoding' });
  expect(replay.headers?.['Content-Encoding']).toBe(coding);
  expect(decoded(replay)).toBe(receipt(1));
  // Bytes sent in the coding the first caller got are the stored bytes; an uncoded body is text.
  if (coding === 'br') expect(replay.body).toBe(first.body);
  if (coding === undefined) expect(replay.isBase64Encoded).toBe(false);
});

test('a duplicate sent after an uncompressed first answer (no Accept-Encoding) gets it uncompressed, whatever it accepts', async () => {
  const api = paymentApi();
  const key = randomUUID();
  const first = await api.send(key);
  expect(first.headers?.['Content-Encoding']).toBeUndefined();
  const replay = await api.send(key, 'br');
  expect(replay).toEqual({ ...first, headers: { ...first.headers, 'Idempotent-Replayed': 'true' } });
  expect(api.runs).toBe(1);
});

test('a REST API duplicate is read from multiValueHeaders (Accept-Encoding sent on two lines), and the coding it names is found there too', async () => {
  const handler = middy<APIGatewayProxyEvent, HttpResult>()
    .use(httpIdempotency({ store, name: `encoding-${randomUUID()}` }))
    .handler(async () => ({
      statusCode: 200,
      multiValueHeaders: { 'content-encoding': ['br'], Vary: ['Accept-Encoding'] },
      body: zlib.brotliCompressSync(receipt(1)).toString('base64'),
      isBase64Encoded: true,
    }));
  const event = (acceptEncoding: string[]): APIGatewayProxyEvent =>
    ({
      httpMethod: 'POST',
      resource: '/payments',
      path: '/payments',
      headers: { 'Idempotency-Key': 'k-rest', 'Accept-Encoding': acceptEncoding.at(-1)! },
      multiValueHeaders: { 'Idempotency-Key': ['k-rest'], 'Accept-Encoding': acceptEncoding },
      queryStringParameters: null,
      multiValueQueryStringParameters: null,
      pathParameters: null,
      stageVariables: null,
      requestContext: { httpMethod: 'POST', resourcePath: '/payments', path: '/prod/payments', stage: 'prod', identity: { sourceIp: '203.0.113.7' } },
      body: '{"amount":2500}',
      isBase64Encoded: false,
    }) as unknown as APIGatewayProxyEvent;
  await handler(event(['br']), lambdaContext('payments'));
  // The last line alone (`identity`) would say no gzip; the two lines together accept it.
  const replay = (await handler(event(['gzip', 'identity']), lambdaContext('payments'))) as HttpResult;
  expect(replay.headers).toMatchObject({ 'Content-Encoding': 'gzip', 'Idempotent-Replayed': 'true' });
  expect(replay.multiValueHeaders).toEqual({ Vary: ['Accept-Encoding'] });
  expect(decoded(replay)).toBe(receipt(1));
});

test('a streamed answer the encoder compressed (br) reaches a duplicate that accepts gzip only as gzip bytes, through the response stream', async () => {
  let runs = 0;
  const handler = middy(
    async () => ({ statusCode: 200, headers: { 'Content-Type': 'application/json' }, body: Readable.from([receipt(++runs)]) }),
    streamingMode as never,
  )
    .use(httpIdempotency({ store, name: `encoding-${randomUUID()}` }))
    .use(httpContentNegotiation({ parseCharsets: false, parseLanguages: false, parseMediaTypes: false }))
    .use(httpContentEncoding());
  const send = (acceptEncoding: string) =>
    invokeStreaming(
      handler,
      toHttpApiEvent({ method: 'POST', url: '/payments', headers: { 'idempotency-key': 'k-stream', 'accept-encoding': acceptEncoding }, body: '{}' })!,
      lambdaContext('exports'),
    );
  const first = await send('br');
  expect(first.prelude).toMatchObject({ headers: { 'Content-Encoding': 'br' } });
  expect(zlib.brotliDecompressSync(first.bytes).toString()).toBe(receipt(1));
  const replay = await send('gzip');
  expect(replay.prelude).toMatchObject({ statusCode: 200, headers: { 'Content-Encoding': 'gzip', 'Idempotent-Replayed': 'true', Vary: 'Accept-Encoding' } });
  expect(zlib.gunzipSync(replay.bytes).toString()).toBe(receipt(1));
  expect(runs).toBe(1);
});
