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
import middy, { type MiddlewareObj } from '@middy/core';
import httpContentNegotiation from '@middy/http-content-negotiation';
import type { ALBEvent, APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import { toHttpApiEvent } from '../../demo/http-event.js';
import { type HttpResult, httpIdempotency, idempotency } from '../../lib/index.js';
import { useFreshTable } from '../support/dynamodb.js';
import { albEvent } from '../support/identity-events.js';
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

/** A payment API compressing its answers, behind `middleware` (httpIdempotency unless given). */
function paymentApi(middleware: MiddlewareObj<APIGatewayProxyEventV2, HttpResult> = httpIdempotency({ store, name: `encoding-${randomUUID()}` })) {
  let runs = 0;
  const handler = middy<APIGatewayProxyEventV2, HttpResult>()
    .use(middleware)
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

test('idempotency(), which knows nothing of HTTP, replays the stored answer as it is: in the coding of the first caller (br), whatever the duplicate accepts', async () => {
  const api = paymentApi(
    idempotency({ store, name: `encoding-${randomUUID()}`, key: (event: APIGatewayProxyEventV2) => event.headers['idempotency-key'] }) as MiddlewareObj<
      APIGatewayProxyEventV2,
      HttpResult
    >,
  );
  const key = randomUUID();
  const first = await api.send(key, 'br');
  const replay = await api.send(key);
  expect(api.runs).toBe(1);
  expect(replay).toEqual(first);
  expect(replay.headers?.['Content-Encoding']).toBe('br');
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

/**
 * A streaming handler behind httpIdempotency and the encoder, whose answer streams what `body`
 * makes of its run's number; `send` posts to it under `key`, accepting `acceptEncoding`.
 */
function streamedExport(key: string, contentType: string, body: (run: number) => Readable) {
  const counter = { runs: 0 };
  const handler = middy(async () => ({ statusCode: 200, headers: { 'Content-Type': contentType }, body: body(++counter.runs) }), streamingMode as never)
    .use(httpIdempotency({ store, name: `encoding-${randomUUID()}` }))
    .use(httpContentNegotiation({ parseCharsets: false, parseLanguages: false, parseMediaTypes: false }))
    .use(httpContentEncoding());
  const send = (acceptEncoding: string) =>
    invokeStreaming(
      handler,
      toHttpApiEvent({ method: 'POST', url: '/payments', headers: { 'idempotency-key': key, 'accept-encoding': acceptEncoding }, body: '{}' })!,
      lambdaContext('exports'),
    );
  return { send, counter };
}

test('a streamed answer the encoder compressed (br) reaches a duplicate that accepts gzip only as gzip bytes, through the response stream', async () => {
  const { send, counter } = streamedExport('k-stream', 'application/json', (run) => Readable.from([receipt(run)]));
  const first = await send('br');
  expect(first.prelude).toMatchObject({ headers: { 'Content-Encoding': 'br' } });
  expect(zlib.brotliDecompressSync(first.bytes).toString()).toBe(receipt(1));
  const replay = await send('gzip');
  expect(replay.prelude).toMatchObject({ statusCode: 200, headers: { 'Content-Encoding': 'gzip', 'Idempotent-Replayed': 'true', Vary: 'Accept-Encoding' } });
  expect(zlib.gunzipSync(replay.bytes).toString()).toBe(receipt(1));
  expect(counter.runs).toBe(1);
});

test('an empty streamed answer the encoder compressed (br: the single byte ";", which reads as text) reaches a duplicate that accepts gzip only as gzip bytes, not base64 text', async () => {
  const { send, counter } = streamedExport('k-empty-stream', 'application/x-ndjson', () => Readable.from([]));
  const first = await send('br');
  expect(first.prelude).toMatchObject({ headers: { 'Content-Encoding': 'br' } });
  expect(first.bytes).toEqual(Buffer.from(';'));
  const replay = await send('gzip');
  expect(replay.prelude).toMatchObject({ statusCode: 200, headers: { 'Content-Encoding': 'gzip', 'Idempotent-Replayed': 'true' } });
  expect(zlib.gunzipSync(replay.bytes).length).toBe(0);
  const plain = await send('identity');
  expect(plain.bytes.length).toBe(0);
  expect(counter.runs).toBe(1);
});

test('a streamed answer the handler gave as a string under Content-Encoding (br of an empty body: ";") reaches a duplicate that accepts gzip only as gzip bytes, not base64 text', async () => {
  let runs = 0;
  const handler = middy(
    async () => (
      ++runs, { statusCode: 200, headers: { 'Content-Type': 'application/x-ndjson', 'Content-Encoding': 'br' }, body: zlib.brotliCompressSync('').toString() }
    ),
    streamingMode as never,
  ).use(httpIdempotency({ store, name: `encoding-${randomUUID()}`, responseStreaming: true }));
  const send = (acceptEncoding: string) =>
    invokeStreaming(
      handler,
      toHttpApiEvent({ method: 'POST', url: '/payments', headers: { 'idempotency-key': 'k-string', 'accept-encoding': acceptEncoding }, body: '{}' })!,
      lambdaContext('exports'),
    );
  const first = await send('br');
  expect(first.bytes).toEqual(Buffer.from(';'));
  const replay = await send('gzip');
  expect(replay.prelude).toMatchObject({ statusCode: 200, headers: { 'Content-Encoding': 'gzip', 'Idempotent-Replayed': 'true' } });
  // The response stream sends a string as its UTF-8, whatever `isBase64Encoded` says.
  expect(zlib.gunzipSync(replay.bytes).length).toBe(0);
  expect((await send('identity')).bytes.length).toBe(0);
  expect(runs).toBe(1);
});

describe('@middy/http-content-encoding used before httpIdempotency, against the documented order', () => {
  const negotiation = () => httpContentNegotiation({ parseCharsets: false, parseLanguages: false, parseMediaTypes: false });
  const paymentEvent = (key: string, acceptEncoding: string) =>
    toHttpApiEvent({ method: 'POST', url: '/payments', headers: { 'idempotency-key': key, 'accept-encoding': acceptEncoding }, body: '{}' })!;

  test('the first answer is compressed, but its replay, an early answer the encoder never sees, is not: even for the same client', async () => {
    let runs = 0;
    const handler = middy<APIGatewayProxyEventV2, HttpResult>()
      .use(negotiation())
      .use(httpContentEncoding())
      .use(httpIdempotency({ store, name: `encoding-${randomUUID()}` }))
      .handler(async () => ({ statusCode: 201, headers: { 'Content-Type': 'application/json' }, body: receipt(++runs) }));
    const key = randomUUID();
    const first = (await handler(paymentEvent(key, 'br'), lambdaContext('payments'))) as HttpResult;
    expect(first).toMatchObject({ isBase64Encoded: true, headers: { 'Content-Encoding': 'br' } });
    const replay = (await handler(paymentEvent(key, 'br'), lambdaContext('payments'))) as HttpResult;
    expect(runs).toBe(1);
    expect(replay.headers).toMatchObject({ 'Idempotent-Replayed': 'true' });
    expect(replay.headers?.['Content-Encoding']).toBeUndefined();
    expect(replay.body).toBe(receipt(1));
  });

  test('in streaming mode, the first answer breaks too: the encoder gets the stream read to text, and its compressed body is sent as base64 text under Content-Encoding', async () => {
    const handler = middy(
      async () => ({ statusCode: 200, headers: { 'Content-Type': 'application/json' }, body: Readable.from([receipt(1)]) }),
      streamingMode as never,
    )
      .use(negotiation())
      .use(httpContentEncoding())
      .use(httpIdempotency({ store, name: `encoding-${randomUUID()}` }));
    const first = await invokeStreaming(handler, paymentEvent(randomUUID(), 'br'), lambdaContext('exports'));
    expect(first.prelude).toMatchObject({ headers: { 'Content-Encoding': 'br' } });
    // The client reads base64 text where it expects br bytes.
    expect(() => zlib.brotliDecompressSync(first.bytes)).toThrow();
    expect(zlib.brotliDecompressSync(Buffer.from(first.bytes.toString('utf8'), 'base64')).toString()).toBe(receipt(1));
  });
});

describe('a body that decodes to more than the answer Lambda can send', () => {
  // Lambda sends at most 6 MB as a buffered answer, a load balancer takes at most 1 MB: a stored
  // body compressed well below that can decode to far more. Decoded for a duplicate, the answer
  // would fail as a 502 on every retry; the stored bytes reach the client (RFC 9110 §12.5.3: a
  // request without Accept-Encoding accepts any coding).
  const report = (megabytes: number) =>
    `{"lines":[${Array.from({ length: megabytes * 1024 * 16 }, () => '"0123456789abcdef0123456789abcdef0123456789abcdef012345678"').join(',')}]}`;
  const gzipped = (text: string): HttpResult => ({
    statusCode: 200,
    headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', Vary: 'Accept-Encoding' },
    body: zlib.gzipSync(text).toString('base64'),
    isBase64Encoded: true,
  });

  test.each([
    ['sends no Accept-Encoding', undefined],
    ['accepts only br, which the replay does not write', 'br'],
  ])('an HTTP API duplicate whose client %s gets the stored gzip bytes when the decoded body is over 6 MB', async (_, acceptEncoding) => {
    const text = report(7);
    let runs = 0;
    const handler = middy<APIGatewayProxyEventV2, HttpResult>()
      .use(httpIdempotency({ store, name: `encoding-${randomUUID()}` }))
      .handler(async () => (++runs, gzipped(text)));
    const send = (accept?: string) => {
      const headers: Record<string, string> = { 'idempotency-key': 'k-report', 'content-type': 'application/json' };
      if (accept !== undefined) headers['accept-encoding'] = accept;
      return handler(toHttpApiEvent({ method: 'POST', url: '/payments', headers, body: '{"year":2024}' })!, lambdaContext('reports')) as Promise<HttpResult>;
    };
    const first = await send('gzip');
    const replay = await send(acceptEncoding);
    expect(runs).toBe(1);
    expect(replay).toEqual({ ...first, headers: { ...first.headers, 'Idempotent-Replayed': 'true' } });
    expect(Buffer.byteLength(JSON.stringify(replay))).toBeLessThan(6 * 1024 * 1024);
    // Below the limit, the same body is still decoded for such a client.
    const small = report(1);
    const smallHandler = middy<APIGatewayProxyEventV2, HttpResult>()
      .use(httpIdempotency({ store, name: `encoding-${randomUUID()}` }))
      .handler(async () => gzipped(small));
    const event = () => toHttpApiEvent({ method: 'POST', url: '/payments', headers: { 'idempotency-key': 'k-small' }, body: '{"year":2024}' })!;
    await smallHandler(event(), lambdaContext('reports'));
    const decodedReplay = (await smallHandler(event(), lambdaContext('reports'))) as HttpResult;
    expect(decodedReplay.headers?.['Content-Encoding']).toBeUndefined();
    expect(decodedReplay.body).toBe(small);
  });

  /** A handler behind a load balancer that answers `text` gzipped, and how often it ran. */
  const albReport = (text: string) => {
    let runs = 0;
    const handler = middy<ALBEvent, HttpResult>()
      .use(httpIdempotency<ALBEvent>({ store, name: `encoding-${randomUUID()}`, scope: 'shared' }))
      .handler(async () => (++runs, { ...gzipped(text), statusDescription: '200 OK' }));
    return { handler, runs: () => runs };
  };

  test('behind a load balancer, a duplicate gets the stored bytes when the decoded body is over 1 MB', async () => {
    const text = report(2);
    const { handler, runs } = albReport(text);
    const first = (await handler(albEvent({ key: 'k-alb-report', headers: { 'accept-encoding': 'gzip' } }), lambdaContext('reports'))) as HttpResult;
    const replay = (await handler(albEvent({ key: 'k-alb-report' }), lambdaContext('reports'))) as HttpResult;
    expect(runs()).toBe(1);
    expect(replay).toEqual({ ...first, headers: { ...first.headers, 'Idempotent-Replayed': 'true' } });
    expect(Buffer.byteLength(JSON.stringify(replay))).toBeLessThan(1024 * 1024);
  });

  test('behind a load balancer, a duplicate gets the stored bytes when the decoded answer fits only without the Idempotent-Replayed field the replay adds', async () => {
    const answer = (body: string): HttpResult => ({
      statusCode: 200,
      statusDescription: '200 OK',
      headers: { 'Content-Type': 'application/json', Vary: 'Accept-Encoding' },
      body,
      isBase64Encoded: false,
    });
    // The decoded answer as the store's content alone would make it: 5 bytes under the 1 MB the load balancer takes.
    const text = 'x'.repeat(1024 * 1024 - 5 - Buffer.byteLength(JSON.stringify(answer(''))));
    expect(Buffer.byteLength(JSON.stringify(answer(text)))).toBe(1024 * 1024 - 5);
    const { handler, runs } = albReport(text);
    const first = (await handler(albEvent({ key: 'k-alb-edge', headers: { 'accept-encoding': 'gzip' } }), lambdaContext('reports'))) as HttpResult;
    const replay = (await handler(albEvent({ key: 'k-alb-edge' }), lambdaContext('reports'))) as HttpResult;
    expect(runs()).toBe(1);
    expect(Buffer.byteLength(JSON.stringify(replay))).toBeLessThanOrEqual(1024 * 1024);
    expect([replay.body, replay.isBase64Encoded]).toEqual([first.body, true]);
  });
});

test('a request body the client compressed anew for its retry (gzip stamps the time in its header) is the same request: the retry replays, a changed body is a 422', async () => {
  let runs = 0;
  const handler = middy<APIGatewayProxyEventV2, HttpResult>()
    .use(httpIdempotency({ store, name: `compressed-request-${randomUUID()}` }))
    .handler(async () => ({ statusCode: 201, body: JSON.stringify({ run: ++runs }) }));
  const send = (json: string, mtime: number) => {
    const compressed = zlib.gzipSync(json);
    compressed.writeUInt32LE(mtime, 4); // as Python's gzip.compress writes it: the time of compression
    const event = toHttpApiEvent({
      method: 'POST',
      url: '/payments',
      headers: { 'idempotency-key': 'k-gzip', 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: '',
    })!;
    // API Gateway base64-encodes a body sent with a Content-Encoding.
    return handler({ ...event, body: compressed.toString('base64'), isBase64Encoded: true }, lambdaContext('payments')) as Promise<HttpResult>;
  };
  const first = await send('{"amount":2500}', 1_700_000_000);
  const retry = await send('{ "amount": 2500 }', 1_700_000_003);
  expect([first.statusCode, retry.statusCode, retry.body, retry.headers?.['Idempotent-Replayed']]).toEqual([201, 201, first.body, 'true']);
  expect((await send('{"amount":2501}', 1_700_000_005)).statusCode).toBe(422);
  expect(runs).toBe(1);
});

describe('an answer that fits what Lambda sends only as the first caller got it', () => {
  test('behind a load balancer, a duplicate whose Idempotent-Replayed field would take the answer over 1 MB gets the first answer, unmarked', async () => {
    const answer = (body: string): HttpResult => ({
      statusCode: 200,
      statusDescription: '200 OK',
      headers: { 'Content-Type': 'text/plain' },
      body,
      isBase64Encoded: false,
    });
    // 5 bytes under the 1 MB the load balancer takes: the field the replay adds does not fit.
    const text = 'x'.repeat(1024 * 1024 - 5 - Buffer.byteLength(JSON.stringify(answer(''))));
    let runs = 0;
    const handler = middy<ALBEvent, HttpResult>()
      .use(httpIdempotency<ALBEvent>({ store, name: `limit-${randomUUID()}`, scope: 'shared' }))
      .handler(async () => (++runs, answer(text)));
    const first = (await handler(albEvent({ key: 'k-alb-marker' }), lambdaContext('reports'))) as HttpResult;
    expect(Buffer.byteLength(JSON.stringify(first))).toBe(1024 * 1024 - 5);
    const replay = (await handler(albEvent({ key: 'k-alb-marker' }), lambdaContext('reports'))) as HttpResult;
    expect(runs).toBe(1);
    expect(Buffer.byteLength(JSON.stringify(replay))).toBeLessThanOrEqual(1024 * 1024);
    expect(replay).toEqual(first);
  });

  test('an HTTP API duplicate of a plain value whose answer, made a proxy result, would be over 6 MB gets the value as the first caller did', async () => {
    // 5 MB of JSON full of escaped quotes: as a proxy result's body, each escape is escaped again, and the answer passes 6 MB.
    const value = { csv: '"id","name"\n'.repeat(300_000) };
    expect(Buffer.byteLength(JSON.stringify(value))).toBeLessThan(6 * 1024 * 1024);
    let runs = 0;
    const handler = middy<APIGatewayProxyEventV2, unknown>()
      .use(httpIdempotency({ store, name: `limit-${randomUUID()}` }))
      .handler(async () => (++runs, value));
    const send = () =>
      handler(
        toHttpApiEvent({ method: 'POST', url: '/payments', headers: { 'idempotency-key': 'k-plain' }, body: '{"amount":2500}' })!,
        lambdaContext('codes'),
      );
    const first = await send();
    const replay = await send();
    expect(runs).toBe(1);
    expect(Buffer.byteLength(JSON.stringify(replay))).toBeLessThanOrEqual(6 * 1024 * 1024);
    expect(replay).toEqual(first);
  });
});
