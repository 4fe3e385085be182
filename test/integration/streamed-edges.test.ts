/**
 * Response streaming at its edges, on DynamoDB Local with real middy (6 and 7): chunks of every
 * kind the response stream accepts, empty and oversized bodies, what `isFinalResponse` sees, a
 * Function URL's answer to a bare stream, official HTTP middlewares inside `httpIdempotency`,
 * REST APIs, encrypted and in-memory stores, and standard mode.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import middy from '@middy/core';
import httpCors from '@middy/http-cors';
import httpErrorHandler from '@middy/http-error-handler';
import httpResponseSerializer from '@middy/http-response-serializer';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import { DynamoDBStore, type HttpResult, httpIdempotency, type IdempotencyStore, idempotency } from '../../lib/index.js';
import { idempotency as leanIdempotency } from '../../lib/middy/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { flush, gate } from '../support/gate.js';
import { httpEvent } from '../support/identity-events.js';
import { aesKey, keyring } from '../support/keyring.js';
import { lambdaContext } from '../support/lambda.js';
import { rejection, thrown } from '../support/rejections.js';
import { heldStream, invokeStreaming, ResponseStream, streamingMode } from '../support/streaming.js';
import { collectingLogger, omittedMessage } from '../support/warnings.js';

const { client, tableName, store } = useFreshTable();

const urlEvent = (key: string): APIGatewayProxyEventV2 => httpEvent('url', {}, { key }) as APIGatewayProxyEventV2;

test('chunks that are typed arrays or DataViews are stored as the bytes the response stream sends', async () => {
  const name = 'typed-chunks';
  const chunks = () => [new Uint16Array([0x4241, 0x4443]), new DataView(new Uint8Array([0xff, 0x00, 0x01]).buffer, 1, 2), new Float32Array([1.5])];
  // What the client receives without idempotency: the response stream writes each view's bytes.
  const plain = await invokeStreaming(
    middy(async () => Readable.from(chunks()), streamingMode as never),
    { id: 1 },
    lambdaContext(name),
  );
  let runs = 0;
  const handler = middy(async () => (runs++, Readable.from(chunks())), streamingMode as never).use(idempotency({ store, name }));
  const first = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
  const again = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
  expect(plain.bytes.length).toBe(4 + 2 + 4);
  expect(first.bytes.equals(plain.bytes)).toBe(true);
  expect(again.bytes.equals(plain.bytes)).toBe(true);
  expect(runs).toBe(1);
});

/**
 * A stream of a library that predates async iteration (readable-stream 2, through2 2 and the
 * streams built on them): a Readable with stream state and `pipe`, but no `Symbol.asyncIterator`.
 */
function legacyStream(chunks: ReadonlyArray<string | Uint8Array>, failure?: Error): Readable {
  const stream = Readable.from(
    (async function* () {
      yield* chunks;
      if (failure !== undefined) throw failure;
    })(),
  );
  Object.defineProperty(stream, Symbol.asyncIterator, { value: undefined });
  return stream;
}

test('a stream without async iteration, which middy pipes as any other, is read and stored: the duplicate gets the same bytes', async () => {
  const name = 'legacy-stream';
  const chunks = () => ['receipt ', Buffer.from('€', 'utf8').subarray(0, 1), Buffer.from('€', 'utf8').subarray(1), ' 12'];
  const plain = await invokeStreaming(
    middy(async () => ({ statusCode: 200, body: legacyStream(chunks()) }), streamingMode as never),
    { id: 1 },
    lambdaContext(name),
  );
  let runs = 0;
  const handler = middy(async () => (runs++, { statusCode: 200, body: legacyStream(chunks()) }), streamingMode as never).use(idempotency({ store, name }));
  const first = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
  const again = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
  expect(plain.bytes.toString('utf8')).toBe('receipt € 12');
  expect(first.bytes.equals(plain.bytes)).toBe(true);
  expect(again.bytes.equals(plain.bytes)).toBe(true);
  expect(again.prelude).toEqual(plain.prelude);
  expect(runs).toBe(1);
});

test('a stream without async iteration that fails on the way is the handler failing: the key is released', async () => {
  const name = 'legacy-stream-failing';
  let runs = 0;
  const handler = middy(async () => (runs++, legacyStream(['partial'], new Error('upstream closed'))), streamingMode as never).use(
    idempotency({ store, name }),
  );
  expect((await thrown(invokeStreaming(handler, { id: 1 }, lambdaContext(name)))).message).toBe('upstream closed');
  expect(await readItem(client, tableName, recordId(name, { id: 1 }))).toBeUndefined();
  await thrown(invokeStreaming(handler, { id: 1 }, lambdaContext(name)));
  expect(runs).toBe(2);
});

test('isFinalResponse sees a body of bytes that are not text as base64, as API Gateway carries binary bodies', async () => {
  const name = 'final-bytes';
  const payload = Buffer.from([0xff, 0xfe, 0x00, 0x80]);
  const seen: HttpResult[] = [];
  const handler = middy(async () => ({ statusCode: 200, body: Readable.from([payload]) }), streamingMode as never).use(
    httpIdempotency({ store, name, isFinalResponse: (result) => (seen.push(result), typeof result.body === 'string' && result.body.length > 0) }),
  );
  const key = randomUUID();
  const first = await invokeStreaming(handler, urlEvent(key), lambdaContext(name));
  const again = await invokeStreaming(handler, urlEvent(key), lambdaContext(name));
  expect(seen).toEqual([{ statusCode: 200, body: payload.toString('base64'), isBase64Encoded: true }]);
  expect(first.bytes.equals(payload)).toBe(true);
  expect(again.bytes.equals(payload)).toBe(true);
  expect(again.prelude).toEqual({ statusCode: 200, headers: { 'Idempotent-Replayed': 'true' } });
});

describe.each([
  ['text', () => Readable.from(['{"n":1}\n'])],
  ['bytes', () => Readable.from([Buffer.from([0xff, 0x00])])],
])('a Function URL handler that returns a bare stream of %s', (_kind, body) => {
  test('answers the duplicate as the first caller: 200, application/octet-stream, the same bytes', async () => {
    const name = `url-bare-${_kind}`;
    let runs = 0;
    const handler = middy(async () => (runs++, body()), streamingMode as never).use(httpIdempotency({ store, name }));
    const plain = await invokeStreaming(
      middy(async () => body(), streamingMode as never),
      urlEvent(randomUUID()),
      lambdaContext(name),
    );
    const key = randomUUID();
    const first = await invokeStreaming(handler, urlEvent(key), lambdaContext(name));
    const again = await invokeStreaming(handler, urlEvent(key), lambdaContext(name));
    // Without a prelude, Lambda sends a stream as 200 with the response stream's default type.
    expect(plain.prelude).toBeUndefined();
    const octets = { statusCode: 200, headers: { 'Content-Type': 'application/octet-stream' } };
    expect(first.prelude ?? octets).toEqual(octets);
    expect(again.prelude).toEqual({ statusCode: 200, headers: { 'Content-Type': 'application/octet-stream', 'Idempotent-Replayed': 'true' } });
    expect(first.bytes.equals(plain.bytes)).toBe(true);
    expect(again.bytes.equals(plain.bytes)).toBe(true);
    expect(runs).toBe(1);
  });
});

describe.each<[string, (text: Readable) => unknown]>([
  ['alone', (text) => text],
  ['as the body', (text) => ({ statusCode: 200, headers: { 'Content-Type': 'text/plain' }, body: text })],
])('UTF-8 text longer than middy writes in one chunk, %s', (label, respond) => {
  test('reaches the first caller and a duplicate as its own bytes, also where a character is two UTF-16 units across a chunk boundary', async () => {
    const name = `long-text-${label.replaceAll(/\W+/g, '-')}`;
    // Middy writes a string body in slices of 16,384 UTF-16 units: this emoji straddles the first cut.
    const bytes = Buffer.from(`${'a'.repeat(16_383)}😀${'b'.repeat(20_000)}€`, 'utf8');
    let runs = 0;
    const handler = middy(async () => (runs++, respond(Readable.from([bytes]))), streamingMode as never).use(idempotency({ store, name }));
    const plain = await invokeStreaming(
      middy(async () => respond(Readable.from([bytes])), streamingMode as never),
      { id: 1 },
      lambdaContext(name),
    );
    const first = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
    const again = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
    expect(plain.bytes.equals(bytes)).toBe(true);
    expect(first.bytes.equals(bytes)).toBe(true);
    expect(again.bytes.equals(bytes)).toBe(true);
    expect(again.prelude).toEqual(plain.prelude);
    expect(runs).toBe(1);
  });

  /** Streams `bytes` to a first caller and a duplicate: both get them exactly, from one run of the handler. */
  async function streamsTwice(name: string, bytes: Buffer): Promise<void> {
    let runs = 0;
    const handler = middy(async () => (runs++, respond(Readable.from([bytes]))), streamingMode as never).use(idempotency({ store, name }));
    const first = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
    const again = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
    expect(first.bytes.equals(bytes)).toBe(true);
    expect(again.bytes.equals(bytes)).toBe(true);
    expect(runs).toBe(1);
  }

  test('ending in a character of two UTF-16 units across the last cut, reaches the first caller and a duplicate as its own bytes', async () => {
    const name = `last-cut-${label.replaceAll(/\W+/g, '-')}`;
    // 16,385 units: middy's second slice would be the emoji's low half alone.
    const bytes = Buffer.from(`${'a'.repeat(16_383)}😀`, 'utf8');
    await streamsTwice(name, bytes);
  });

  test('with a character of two UTF-16 units that ends exactly at a cut, is stored as text, as middy writes it whole', async () => {
    const name = `whole-at-cut-${label.replaceAll(/\W+/g, '-')}`;
    const text = `${'a'.repeat(16_382)}😀${'b'.repeat(100)}`;
    const bytes = Buffer.from(text, 'utf8');
    await streamsTwice(name, bytes);
    const stored = JSON.parse((await readItem(client, tableName, recordId(name, { id: 1 })))!.response!.S!) as unknown;
    expect(label === 'alone' ? stored : (stored as { body: unknown }).body).toBe(text);
  });
});

test('a body under Content-Encoding: identity (no coding) is stored as its text, not as base64 bytes a third larger; the duplicate gets the same bytes', async () => {
  const name = 'identity-coding';
  const text = '{"receipt":"r-1","amount":5}';
  let runs = 0;
  const handler = middy(
    async () => (runs++, { statusCode: 200, headers: { 'Content-Encoding': 'identity' }, body: Readable.from([text]) }),
    streamingMode as never,
  ).use(idempotency({ store, name }));
  const first = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
  const again = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
  expect([first.bytes.toString(), again.bytes.toString(), runs]).toEqual([text, text, 1]);
  const stored = JSON.parse((await readItem(client, tableName, recordId(name, { id: 1 })))!.response!.S!) as { body: unknown };
  expect(stored.body).toBe(text);
});

test('a stream too large to store even compressed: the first caller gets every byte, the record completes without it, a duplicate gets RESPONSE_NOT_STORED', async () => {
  const name = 'too-large';
  const payload = randomBytes(600 * 1024);
  let runs = 0;
  const { logger, omitted } = collectingLogger();
  const handler = middy(async () => (runs++, { statusCode: 200, body: Readable.from([payload]) }), streamingMode as never).use(
    idempotency({ store, name, logger }),
  );
  const first = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
  expect(first.bytes.equals(payload)).toBe(true);
  const item = await readItem(client, tableName, recordId(name, { id: 1 }));
  expect(item?.status?.S).toBe('COMPLETED');
  expect(item?.response).toBeUndefined();
  expect(omitted()).toEqual([{ level: 'WARN', message: omittedMessage('size'), namespace: name, recordId: recordId(name, { id: 1 }) }]);
  expect((await rejection(invokeStreaming(handler, { id: 1 }, lambdaContext(name)))).code).toBe('RESPONSE_NOT_STORED');
  expect(omitted()).toHaveLength(1);
  expect(runs).toBe(1);
});

test('a stream of many small chunks (a token at a time) is held while read as about its bytes, not as an object per chunk', async () => {
  const name = 'small-chunks';
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const held = () => {
    gc();
    const { heapUsed, arrayBuffers } = process.memoryUsage();
    return heapUsed + arrayBuffers;
  };
  const count = 500_000;
  let retained = 0;
  const handler = middy(async () => {
    const before = held();
    return Readable.from(
      (function* () {
        for (let index = 1; index < count; index++) yield 'tok ';
        // Every chunk but this one has been read and kept.
        retained = held() - before;
        yield 'end.';
      })(),
    );
  }, streamingMode as never).use(idempotency({ store, name }));
  const first = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
  expect(first.bytes.length).toBe(4 * count);
  // 2 MB of bytes; kept as a Buffer per chunk they took about 60 MB.
  expect(retained).toBeLessThan(4 * 4 * count);
});

test('httpIdempotency answers a duplicate of a stream too large to store with its 409 problem, prelude and body', async () => {
  const name = 'too-large-http';
  const payload = randomBytes(600 * 1024);
  const { logger, omitted } = collectingLogger();
  const handler = middy(async () => ({ statusCode: 201, body: Readable.from([payload]) }), streamingMode as never).use(
    httpIdempotency({ store, name, logger }),
  );
  const key = randomUUID();
  expect((await invokeStreaming(handler, urlEvent(key), lambdaContext(name))).bytes.equals(payload)).toBe(true);
  expect(omitted()).toEqual([{ level: 'WARN', message: omittedMessage('size'), namespace: name, recordId: expect.stringMatching(`^${name}#`) }]);
  const again = await invokeStreaming(handler, urlEvent(key), lambdaContext(name));
  expect(again.prelude).toEqual({ statusCode: 409, headers: { 'Content-Type': 'application/problem+json' } });
  expect(JSON.parse(again.bytes.toString('utf8'))).toMatchObject({
    status: 409,
    title: 'A request with this Idempotency-Key completed, but its response was not kept',
  });
  expect(omitted()).toHaveLength(1);
});

test('a stream of objects is the handler failing, as the response stream would refuse them: the key is released and a retry runs', async () => {
  const name = 'object-chunks';
  let runs = 0;
  const handler = middy(async () => (runs++, Readable.from([{ n: 1 }])), streamingMode as never).use(idempotency({ store, name }));
  const error = await thrown(invokeStreaming(handler, { id: 1 }, lambdaContext(name)));
  expect(error).toBeInstanceOf(TypeError);
  expect(error.message).toBe('A streamed response can only send strings and bytes, but the stream gave object.');
  expect(await readItem(client, tableName, recordId(name, { id: 1 }))).toBeUndefined();
  await thrown(invokeStreaming(handler, { id: 1 }, lambdaContext(name)));
  expect(runs).toBe(2);
});

describe.each<[string, () => unknown]>([
  ['an empty Node.js stream', () => Readable.from([])],
  ['an empty web stream', () => new ReadableStream({ start: (controller) => controller.close() })],
  ['an empty stream as the body', () => ({ statusCode: 200, body: Readable.from([]) })],
  ['a body of null', () => ({ statusCode: 204, body: null })],
  ["a body of ''", () => ({ statusCode: 204, body: '' })],
  ['no body', () => ({ statusCode: 204, headers: { 'X-Trace': 't' } })],
])('%s', (label, respond) => {
  test('the duplicate receives what the first caller received: the same prelude (or none) and no bytes', async () => {
    const name = `empty-${label.replaceAll(/\W+/g, '-')}`;
    let runs = 0;
    const handler = middy(async () => (runs++, respond()), streamingMode as never).use(idempotency({ store, name }));
    const plain = await invokeStreaming(
      middy(async () => respond(), streamingMode as never),
      { id: 1 },
      lambdaContext(name),
    );
    const first = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
    const again = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
    for (const received of [first, again]) {
      expect(received.prelude).toEqual(plain.prelude);
      expect(received.bytes.length).toBe(0);
    }
    expect(runs).toBe(1);
  });
});

describe.each<[string, () => IdempotencyStore, object]>([
  ['an encrypting DynamoDBStore', () => new DynamoDBStore({ tableName, client, encryption: keyring(aesKey('k1')).encryption }), {}],
  ['InMemoryStore', () => new InMemoryStore(), {}],
  ['the local cache', () => store, { cacheSize: 10 }],
  ['the lean entry points', () => new LeanDynamoDBStore({ tableName, client }), { lean: true }],
])('bytes that are not text, through %s', (label, storeOf, { lean, ...options }: { lean?: boolean }) => {
  test('every duplicate receives its own stream of the same bytes', async () => {
    const name = `bytes-${label.replaceAll(/\W+/g, '-')}`;
    const payload = Buffer.concat([Buffer.from([0xff, 0x00]), randomBytes(64)]);
    let runs = 0;
    const middleware = (lean ? leanIdempotency : idempotency)({ store: storeOf(), name, ...options });
    const handler = middy(async () => (runs++, { statusCode: 200, body: Readable.from([payload]) }), streamingMode as never).use(middleware);
    for (let call = 0; call < 3; call++) {
      const received = await invokeStreaming(handler, { id: 1 }, lambdaContext(name));
      expect(received.prelude).toEqual({ statusCode: 200 });
      expect(received.bytes.equals(payload)).toBe(true);
    }
    expect(runs).toBe(1);
  });
});

test('an in-process duplicate that arrives while the stream is produced waits for it and receives the same prelude and bytes', async () => {
  const name = 'single-flight';
  const rest = gate<string>();
  let runs = 0;
  const handler = middy(async () => {
    runs++;
    const body = heldStream(rest.promise, 'first, ');
    return { statusCode: 200, headers: { 'Content-Type': 'text/plain' }, body };
  }, streamingMode as never).use(idempotency({ store, name }));
  const first = invokeStreaming(handler, { id: 1 }, lambdaContext(name));
  while (runs === 0) await flush();
  const duplicate = invokeStreaming(handler, { id: 1 }, lambdaContext(name));
  rest.open('second');
  const [a, b] = await Promise.all([first, duplicate]);
  expect(b.prelude).toEqual(a.prelude);
  expect(b.bytes.toString('utf8')).toBe('first, second');
  expect(a.bytes.toString('utf8')).toBe('first, second');
  expect(runs).toBe(1);
});

test('a GET, which keeps no record, streams as the handler produces it: the client has the first chunk before the last is made', async () => {
  const name = 'get-streams';
  const rest = gate<string>();
  const handler = middy(async () => ({ statusCode: 200, body: heldStream(rest.promise, 'first, ') }), streamingMode as never).use(
    httpIdempotency({ store, name }),
  );
  const event = urlEvent(randomUUID());
  event.requestContext.http.method = 'GET';
  const stream = new ResponseStream();
  const done = invokeStreaming(handler, event, lambdaContext(name), stream);
  // Bounded: a middleware that read the whole stream before answering would send nothing until `rest` opens.
  for (let turn = 0; turn < 1000 && stream.chunks.length === 0; turn++) await flush();
  expect(stream.bytes.toString('utf8')).toBe('first, ');
  rest.open('second');
  expect((await done).bytes.toString('utf8')).toBe('first, second');
});

test('a request with the same key and another payload, while the first is still streaming, gets the 422 problem; the handler runs once', async () => {
  const name = 'mismatch-while-streaming';
  const rest = gate<string>();
  let runs = 0;
  const handler = middy(async () => {
    runs++;
    const body = heldStream(rest.promise);
    return { statusCode: 200, body };
  }, streamingMode as never).use(httpIdempotency({ store, name }));
  const key = randomUUID();
  const first = invokeStreaming(handler, urlEvent(key), lambdaContext(name));
  while (runs === 0) await flush();
  const other = httpEvent('url', {}, { key, body: '{"amount":5}' });
  const mismatch = invokeStreaming(handler, other, lambdaContext(name));
  rest.open('done');
  expect((await first).bytes.toString('utf8')).toBe('done');
  const answered = await mismatch;
  expect(answered.prelude).toEqual({ statusCode: 422, headers: { 'Content-Type': 'application/problem+json' } });
  expect(runs).toBe(1);
});

describe('official HTTP middlewares inside httpIdempotency, in streaming mode', () => {
  const name = 'official';
  let runs = 0;
  /** The errors http-error-handler logs, which it writes to `console.error` by default. */
  let logged: Error[] = [];
  const handler = middy(async (event: APIGatewayProxyEventV2) => {
    runs++;
    if (event.body === '{"fail":true}') throw Object.assign(new Error('Unprocessable order'), { statusCode: 422, expose: true });
    return { statusCode: 201, headers: { 'Content-Type': 'text/csv' }, body: Readable.from(['id,amount\n', '1,1000\n']) };
  }, streamingMode as never)
    .use(httpIdempotency({ store, name }))
    .use(httpCors({ origins: ['https://shop.example'] }))
    .use(httpErrorHandler({ logger: (error: Error) => void logged.push(error) }))
    .use(
      httpResponseSerializer({
        serializers: [{ regex: /^application\/json$/, serializer: ({ body }) => JSON.stringify(body) }],
        defaultContentType: 'application/json',
      }),
    );
  const event = (key: string, body?: string) => {
    const sent = httpEvent('url', {}, { key, ...(body === undefined ? {} : { body }) }) as APIGatewayProxyEventV2;
    sent.headers.origin = 'https://shop.example';
    return sent;
  };

  test('the duplicate receives the first caller’s prelude (CORS headers included) and bytes, plus Idempotent-Replayed', async () => {
    runs = 0;
    const key = randomUUID();
    const first = await invokeStreaming(handler, event(key), lambdaContext(name));
    const again = await invokeStreaming(handler, event(key), lambdaContext(name));
    expect(first.prelude).toEqual({
      statusCode: 201,
      headers: { 'Content-Type': 'text/csv', 'Access-Control-Allow-Origin': 'https://shop.example', Vary: 'Origin' },
    });
    expect(again.prelude).toEqual({
      ...(first.prelude as object),
      headers: { ...(first.prelude as { headers: object }).headers, 'Idempotent-Replayed': 'true', 'Access-Control-Expose-Headers': 'Idempotent-Replayed' },
    });
    expect(first.bytes.toString('utf8')).toBe('id,amount\n1,1000\n');
    expect(again.bytes.equals(first.bytes)).toBe(true);
    expect(runs).toBe(1);
  });

  test('an error http-error-handler answers is sent as its prelude and body, and releases the key', async () => {
    runs = 0;
    logged = [];
    const key = randomUUID();
    const first = await invokeStreaming(handler, event(key, '{"fail":true}'), lambdaContext(name));
    await invokeStreaming(handler, event(key, '{"fail":true}'), lambdaContext(name));
    expect(first.prelude).toMatchObject({ statusCode: 422 });
    expect(first.bytes.toString('utf8')).toBe('Unprocessable order');
    expect(runs).toBe(2);
    // Each run's error reached http-error-handler, which logged it.
    expect(logged.map((error) => error.message)).toEqual(['Unprocessable order', 'Unprocessable order']);
  });
});

describe('httpIdempotency on a streaming REST API', () => {
  const name = 'rest';
  const handler = middy(
    async () => ({ statusCode: 201, headers: { 'Content-Type': 'text/plain' }, body: Readable.from(['created']) }),
    streamingMode as never,
  ).use(httpIdempotency({ store, name }));

  test('a duplicate is replayed with Idempotent-Replayed; a different payload gets its 422 and a missing key its 400, each as prelude and body', async () => {
    const key = randomUUID();
    const first = await invokeStreaming(handler, httpEvent('rest', {}, { key }), lambdaContext(name));
    const again = await invokeStreaming(handler, httpEvent('rest', {}, { key }), lambdaContext(name));
    expect(again.prelude).toEqual({ statusCode: 201, headers: { 'Content-Type': 'text/plain', 'Idempotent-Replayed': 'true' } });
    expect(again.bytes.equals(first.bytes)).toBe(true);
    const other = await invokeStreaming(handler, httpEvent('rest', {}, { key, body: '{"amount":2000}' }), lambdaContext(name));
    expect(other.prelude).toEqual({ statusCode: 422, headers: { 'Content-Type': 'application/problem+json' } });
    expect(JSON.parse(other.bytes.toString('utf8'))).toMatchObject({ status: 422 });
    const keyless = await invokeStreaming(handler, httpEvent('rest', {}, {}), lambdaContext(name));
    expect(keyless.prelude).toEqual({ statusCode: 400, headers: { 'Content-Type': 'application/problem+json' } });
  });

  test('a duplicate of a request still streaming gets the 409 with Retry-After', async () => {
    const rest = gate<string>();
    let runs = 0;
    const slow = middy(async () => {
      runs++;
      return {
        statusCode: 200,
        body: heldStream(rest.promise),
      };
    }, streamingMode as never).use(httpIdempotency({ store, name: 'rest-slow', singleFlight: false }));
    const key = randomUUID();
    const received = new ResponseStream();
    const first = invokeStreaming(slow, httpEvent('rest', {}, { key }), lambdaContext('rest-slow'), received);
    while (runs === 0) await flush();
    const duplicate = await invokeStreaming(slow, httpEvent('rest', {}, { key }), lambdaContext('rest-slow'));
    expect(duplicate.prelude).toMatchObject({ statusCode: 409, headers: { 'Content-Type': 'application/problem+json', 'Retry-After': expect.any(String) } });
    rest.open('done');
    expect((await first).bytes.toString('utf8')).toBe('done');
    expect(runs).toBe(1);
  });
});

describe('standard mode (no streaming)', () => {
  test('a handler that returns a stream of text, alone or as the body, answers its text, and so does a duplicate: nothing hangs, no stream state is stored', async () => {
    const name = 'standard';
    let runs = 0;
    const handler = middy(async (event: { as: 'bare' | 'body' }) => {
      runs++;
      const body = Readable.from(['plain ', 'text']);
      return event.as === 'bare' ? body : { statusCode: 200, body };
    }).use(idempotency({ store, name }));
    for (const as of ['bare', 'body'] as const) {
      const expected = as === 'bare' ? 'plain text' : { statusCode: 200, body: 'plain text' };
      expect(await handler({ as }, lambdaContext(name))).toEqual(expected);
      expect(await handler({ as }, lambdaContext(name))).toEqual(expected);
    }
    expect(runs).toBe(2);
  });

  test('a response that only looks like a stream (a `pipe` method, no stream state), alone or as the body, is a value: stored as JSON, never read as a stream', async () => {
    const name = 'pipe-only';
    let runs = 0;
    // A query builder or a lazy collection: `pipe` chains, it does not stream.
    const rows = () => ({ rows: ++runs, pipe: () => 'chained' });
    const handler = middy(async (event: { as: 'bare' | 'body' }) => (event.as === 'bare' ? rows() : { statusCode: 200, body: rows() })).use(
      idempotency({ store, name }),
    );
    const bare = await handler({ as: 'bare' }, lambdaContext(name));
    expect((bare as ReturnType<typeof rows>).pipe()).toBe('chained');
    expect(await handler({ as: 'bare' }, lambdaContext(name))).toEqual({ rows: 1 });
    expect(await handler({ as: 'body' }, lambdaContext(name))).toMatchObject({ statusCode: 200, body: { rows: 2 } });
    expect(await handler({ as: 'body' }, lambdaContext(name))).toEqual({ statusCode: 200, body: { rows: 2 } });
    expect(runs).toBe(2);
  });

  /** Values with the members replay reads specially: stored stream bytes, and the member a value of that shape is stored escaped in. */
  const storedShapes = [
    { 'lambda-idempotency:stream-base64': 'aGk=' },
    { 'lambda-idempotency:value': { 'lambda-idempotency:stream-base64': 'aGk=' } },
    { 'lambda-idempotency:value': 'the handler’s own' },
  ];

  test.each([{ 'lambda-idempotency:stream-base64': 'aGk=', note: 'not stream bytes' }, ...storedShapes])(
    'a value with a member replay reads specially (%j), alone or as the body, reaches the first caller and a duplicate as that value, never as a stream',
    async (value) => {
      const name = `shape-${randomUUID()}`;
      let runs = 0;
      const handler = middy(async (event: { as: 'bare' | 'body' }) => (runs++, event.as === 'bare' ? value : { statusCode: 200, body: value })).use(
        idempotency({ store, name }),
      );
      for (const as of ['bare', 'body'] as const) {
        const expected = as === 'bare' ? value : { statusCode: 200, body: value };
        expect(await handler({ as }, lambdaContext(name))).toStrictEqual(expected);
        expect(await handler({ as }, lambdaContext(name))).toStrictEqual(expected);
      }
      expect(runs).toBe(2);
    },
  );

  test.each(storedShapes)(
    'httpIdempotency: a value of a shape replay reads specially (%j) is sent as its JSON, to the first caller and a duplicate',
    async (value) => {
      const name = `http-shape-${randomUUID()}`;
      let runs = 0;
      const seen: unknown[] = [];
      const handler = middy(async () => (runs++, value)).use(
        httpIdempotency({ store, name, isFinalResponse: (result) => (seen.push(result.body), result.statusCode === 200) }),
      );
      const first = (await handler(urlEvent('k-1'), lambdaContext(name))) as HttpResult;
      const again = (await handler(urlEvent('k-1'), lambdaContext(name))) as HttpResult;
      expect(first).toStrictEqual(value);
      expect(again).toMatchObject({ statusCode: 200, body: JSON.stringify(value), headers: { 'Idempotent-Replayed': 'true' } });
      expect(seen).toEqual([JSON.stringify(value)]);
      expect(runs).toBe(1);
    },
  );

  test.each(storedShapes)(
    'httpIdempotency: a body of a shape replay reads specially (%j) is what isFinalResponse sees, and reaches a duplicate as that body',
    async (value) => {
      const name = `http-body-shape-${randomUUID()}`;
      let runs = 0;
      const seen: unknown[] = [];
      const handler = middy(async () => (runs++, { statusCode: 201, body: value })).use(
        httpIdempotency({ store, name, logger: collectingLogger().logger, isFinalResponse: (result) => (seen.push(result.body), true) }),
      );
      expect(await handler(urlEvent('k-1'), lambdaContext(name))).toStrictEqual({ statusCode: 201, body: value });
      expect(await handler(urlEvent('k-1'), lambdaContext(name))).toMatchObject({ statusCode: 201, body: value, headers: { 'Idempotent-Replayed': 'true' } });
      expect(seen).toEqual([value]);
      expect(runs).toBe(1);
    },
  );
});
