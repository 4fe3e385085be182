/**
 * Lambda response streaming (middy's response-streaming mode) on DynamoDB Local: a handler that
 * returns a stream, alone or as the body of `{ statusCode, headers, body }`, runs once, and every
 * duplicate receives the same prelude and the same bytes.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { aesGcmEncryption, DynamoDBStore, httpIdempotency, idempotency } from '../../lib/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { flush, gate } from '../support/gate.js';
import { httpEvent } from '../support/identity-events.js';
import { aesKey, keyring } from '../support/keyring.js';
import { lambdaContext } from '../support/lambda.js';
import { middyMajor } from '../support/middy.js';
import { rejection, thrown } from '../support/rejections.js';
import { heldStream, invokeStreaming, ResponseStream, streamingMode } from '../support/streaming.js';

const { client, tableName, store } = useFreshTable();

type Body = 'node' | 'web';
const streamOf = (kind: Body, chunks: ReadonlyArray<string | Uint8Array>): Readable | ReadableStream =>
  kind === 'node'
    ? Readable.from(chunks)
    : new ReadableStream({
        start(controller) {
          for (const chunk of chunks) controller.enqueue(typeof chunk === 'string' ? new TextEncoder().encode(chunk) : chunk);
          controller.close();
        },
      });

/** A streaming handler made idempotent under `name`, counting its runs; `respond` makes each response. */
function streaming(name: string, respond: (event: { id: string }) => unknown | Promise<unknown>) {
  const runs = { count: 0 };
  const handler = middy(async (event: { id: string }) => {
    runs.count++;
    return respond(event);
  }, streamingMode as never).use(idempotency({ store, name }));
  return { handler, runs };
}

const euro = Buffer.from('€', 'utf8');
/** Text whose chunks split a character and start with a byte order mark: stored as the text, sent as the same bytes. */
const textChunks = (id: string): Array<string | Uint8Array> => ['\uFEFFdata: {"id":"', id, '","price":"12 ', euro.subarray(0, 1), euro.subarray(1), '"}\n\n'];
const text = (id: string): string => `\uFEFFdata: {"id":"${id}","price":"12 €"}\n\n`;

describe.each<Body>(['node', 'web'])('a %s stream', (kind) => {
  test('of UTF-8 text: runs once, the duplicate receives the same bytes, and the record holds the text', async () => {
    const name = `text-${kind}`;
    const { handler, runs } = streaming(name, (event) => streamOf(kind, textChunks(event.id)));
    const id = randomUUID();
    const first = await invokeStreaming(handler, { id }, lambdaContext(name));
    const again = await invokeStreaming(handler, { id }, lambdaContext(name));
    expect(first.bytes.equals(Buffer.from(text(id), 'utf8'))).toBe(true);
    expect(again.bytes.equals(first.bytes)).toBe(true);
    expect(runs.count).toBe(1);
    const item = await readItem(client, tableName, recordId(name, { id }));
    expect(item?.status?.S).toBe('COMPLETED');
    expect(JSON.parse(item!.response!.S!)).toBe(text(id));
  });

  test('of bytes that are not UTF-8: the duplicate receives the same bytes, as a stream', async () => {
    const name = `bytes-${kind}`;
    const payload = Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0xc3]), randomBytes(4096)]);
    const { handler, runs } = streaming(name, () => streamOf(kind, [payload.subarray(0, 1000), payload.subarray(1000)]));
    const id = randomUUID();
    const first = await invokeStreaming(handler, { id }, lambdaContext(name));
    const again = await invokeStreaming(handler, { id }, lambdaContext(name));
    expect(first.bytes.equals(payload)).toBe(true);
    expect(again.bytes.equals(payload)).toBe(true);
    expect(runs.count).toBe(1);
  });

  test('as the body of { statusCode, headers, body }: the duplicate receives the same prelude and bytes', async () => {
    const name = `http-${kind}`;
    const { handler, runs } = streaming(name, (event) => ({
      statusCode: 201,
      headers: { 'Content-Type': 'text/event-stream' },
      body: streamOf(kind, textChunks(event.id)),
    }));
    const id = randomUUID();
    const first = await invokeStreaming(handler, { id }, lambdaContext(name));
    const again = await invokeStreaming(handler, { id }, lambdaContext(name));
    expect(first.prelude).toEqual({ statusCode: 201, headers: { 'Content-Type': 'text/event-stream' } });
    expect(again.prelude).toEqual(first.prelude);
    expect(again.bytes.toString('utf8')).toBe(text(id));
    expect(runs.count).toBe(1);
  });
});

test('a stream that fails on the way is the handler failing: the caller gets its error, the key is released, and a retry runs', async () => {
  const name = 'failing-stream';
  let fail = true;
  const { handler, runs } = streaming(name, () =>
    Readable.from(
      (async function* () {
        yield 'partial ';
        if (fail) throw new Error('upstream closed');
        yield 'whole';
      })(),
    ),
  );
  const id = randomUUID();
  const error = await thrown(invokeStreaming(handler, { id }, lambdaContext(name)));
  expect(error.message).toBe('upstream closed');
  expect(await readItem(client, tableName, recordId(name, { id }))).toBeUndefined();
  fail = false;
  const retried = await invokeStreaming(handler, { id }, lambdaContext(name));
  expect(retried.bytes.toString('utf8')).toBe('partial whole');
  expect(runs.count).toBe(2);
});

test('while the stream is still being produced the record stays INPROGRESS and nothing is sent yet: a duplicate gets IN_PROGRESS, the handler runs once', async () => {
  const name = 'slow-stream';
  const rest = gate<string>();
  const { handler, runs } = streaming(name, () => heldStream(rest.promise, 'first half, '));
  const id = randomUUID();
  const received = new ResponseStream();
  const first = invokeStreaming(handler, { id }, lambdaContext(name), received);
  while (runs.count === 0) await flush();
  // An in-process duplicate waits for the first caller until its own bound: one with a second left, not the default ten.
  const duplicate = await rejection(invokeStreaming(handler, { id }, lambdaContext(name, 1_000)));
  expect(duplicate.code).toBe('IN_PROGRESS');
  expect((await readItem(client, tableName, recordId(name, { id })))?.status?.S).toBe('INPROGRESS');
  // The body is read whole before the record completes: the first caller receives it then, at once.
  expect(received.chunks).toEqual([]);
  rest.open('second half');
  expect((await first).bytes.toString('utf8')).toBe('first half, second half');
  const replay = await invokeStreaming(handler, { id }, lambdaContext(name));
  expect(replay.bytes.toString('utf8')).toBe('first half, second half');
  expect(runs.count).toBe(1);
});

describe('httpIdempotency on a streaming Function URL', () => {
  const urlEvent = (key: string): APIGatewayProxyEventV2 => httpEvent('url', {}, { key }) as APIGatewayProxyEventV2;
  function streamingHttp(name: string, statusCode: number) {
    const runs = { count: 0 };
    const handler = middy(async () => {
      runs.count++;
      return { statusCode, headers: { 'Content-Type': 'application/x-ndjson' }, body: Readable.from(['{"n":1}\n', '{"n":2}\n']) };
    }, streamingMode as never).use(httpIdempotency({ store, name }));
    return { handler, runs };
  }

  test('a final response is replayed with Idempotent-Replayed and the same bytes', async () => {
    const { handler, runs } = streamingHttp('url-final', 201);
    const key = randomUUID();
    const first = await invokeStreaming(handler, urlEvent(key), lambdaContext('url-final'));
    const again = await invokeStreaming(handler, urlEvent(key), lambdaContext('url-final'));
    expect(first.prelude).toEqual({ statusCode: 201, headers: { 'Content-Type': 'application/x-ndjson' } });
    expect(again.prelude).toEqual({ statusCode: 201, headers: { 'Content-Type': 'application/x-ndjson', 'Idempotent-Replayed': 'true' } });
    expect(again.bytes.equals(first.bytes)).toBe(true);
    expect(first.bytes.toString('utf8')).toBe('{"n":1}\n{"n":2}\n');
    expect(runs.count).toBe(1);
  });

  describe.each<[string, unknown, string]>([
    ['a string', 'payment accepted', 'payment accepted'],
    ['nothing', undefined, ''],
  ])('with `responseStreaming`, %s returned without a prelude', (_, value, text) => {
    test('reaches the first caller and every duplicate as the same 200 of the response stream’s default type, with the same bytes', async () => {
      const name = `url-plain-${text.length}`;
      let runs = 0;
      const handler = middy(async () => (runs++, value), streamingMode as never).use(httpIdempotency({ store, name, responseStreaming: true }));
      const key = randomUUID();
      const first = await invokeStreaming(handler, urlEvent(key), lambdaContext(name));
      const again = await invokeStreaming(handler, urlEvent(key), lambdaContext(name));
      const contentType = { 'Content-Type': 'application/octet-stream' };
      expect(first.prelude).toEqual({ statusCode: 200, headers: contentType });
      expect(again.prelude).toEqual({ statusCode: 200, headers: { ...contentType, 'Idempotent-Replayed': 'true' } });
      expect([first.bytes.toString('utf8'), again.bytes.toString('utf8')]).toEqual([text, text]);
      expect(runs).toBe(1);
    });
  });

  test('with `responseStreaming`, a record kept before it was set replays a string as the response stream sent it, not as JSON', async () => {
    const name = 'url-plain-upgrade';
    const before = middy(async () => 'payment accepted', streamingMode as never).use(httpIdempotency({ store, name }));
    const key = randomUUID();
    await invokeStreaming(before, urlEvent(key), lambdaContext(name));
    const after = middy(async () => 'run again', streamingMode as never).use(httpIdempotency({ store, name, responseStreaming: true }));
    const again = await invokeStreaming(after, urlEvent(key), lambdaContext(name));
    expect(again.prelude).toEqual({ statusCode: 200, headers: { 'Content-Type': 'application/octet-stream', 'Idempotent-Replayed': 'true' } });
    expect(again.bytes.toString('utf8')).toBe('payment accepted');
  });

  test('with `responseStreaming`, a value middy cannot stream fails the first caller and every duplicate alike, and runs once', async () => {
    const name = 'url-plain-object';
    let runs = 0;
    const handler = middy(async () => (runs++, { paid: true }), streamingMode as never).use(httpIdempotency({ store, name, responseStreaming: true }));
    const key = randomUUID();
    const first = await thrown(invokeStreaming(handler, urlEvent(key), lambdaContext(name)));
    const again = await thrown(invokeStreaming(handler, urlEvent(key), lambdaContext(name)));
    expect(again.message).toBe(first.message);
    expect(first.message).toMatch(/not a Readable/);
    expect(runs).toBe(1);
  });

  test.each<[string, unknown, string]>([
    ['a string', 'payment accepted', 'payment accepted'],
    ['nothing', undefined, 'null'],
  ])(
    'without `responseStreaming`, %s returned without a prelude: a duplicate gets the JSON 200 an HTTP API makes of it, without running',
    async (_, value, text) => {
      const name = `url-unflagged-${text.length}`;
      let runs = 0;
      const handler = middy(async () => (runs++, value), streamingMode as never).use(httpIdempotency({ store, name }));
      const key = randomUUID();
      const first = invokeStreaming(handler, urlEvent(key), lambdaContext(name));
      // middy 6's streaming core cannot send `undefined` itself: the first caller fails there, once the record completed.
      if (value === undefined && middyMajor === 6) expect((await thrown(first)).message).toMatch(/statusCode/);
      else await first;
      const again = await invokeStreaming(handler, urlEvent(key), lambdaContext(name));
      expect(again.prelude).toEqual({ statusCode: 200, headers: { 'Content-Type': 'application/json', 'Idempotent-Replayed': 'true' } });
      expect(again.bytes.toString('utf8')).toBe(text);
      expect(runs).toBe(1);
    },
  );

  test('without `responseStreaming`, a value middy cannot stream fails the first caller; a duplicate gets a JSON 200 of it, without running', async () => {
    const name = 'url-unflagged-object';
    let runs = 0;
    const handler = middy(async () => (runs++, { paid: true }), streamingMode as never).use(httpIdempotency({ store, name }));
    const key = randomUUID();
    expect((await thrown(invokeStreaming(handler, urlEvent(key), lambdaContext(name)))).message).toMatch(/not a Readable/);
    const again = await invokeStreaming(handler, urlEvent(key), lambdaContext(name));
    expect(again.prelude).toEqual({ statusCode: 200, headers: { 'Content-Type': 'application/json', 'Idempotent-Replayed': 'true' } });
    expect(again.bytes.toString('utf8')).toBe('{"paid":true}');
    expect(runs).toBe(1);
  });

  test('`responseStreaming` must be a boolean', () => {
    expect(() => httpIdempotency({ store, responseStreaming: 'yes' as never })).toThrow(/`?responseStreaming`? must be a boolean/);
  });

  test('a 503 is sent whole and releases the key: the retry runs', async () => {
    const { handler, runs } = streamingHttp('url-503', 503);
    const key = randomUUID();
    const first = await invokeStreaming(handler, urlEvent(key), lambdaContext('url-503'));
    expect(first.bytes.toString('utf8')).toBe('{"n":1}\n{"n":2}\n');
    await invokeStreaming(handler, urlEvent(key), lambdaContext('url-503'));
    expect(runs.count).toBe(2);
  });
});

test('a stream the handler returned before a later middleware threw is read and stored: the caller gets the error, a duplicate the bytes', async () => {
  const name = 'stream-then-throw';
  let runs = 0;
  const handler = middy(async (event: { id: string }) => {
    runs++;
    return Readable.from(['receipt for ', event.id]);
  }, streamingMode as never)
    .use(idempotency({ store, name }))
    .use({
      after: () => {
        throw new Error('a later middleware failed');
      },
    });
  const id = randomUUID();
  const error = await thrown(invokeStreaming(handler, { id }, lambdaContext(name)));
  expect(error.message).toBe('a later middleware failed');
  const again = await invokeStreaming(handler, { id }, lambdaContext(name));
  expect(again.bytes.toString('utf8')).toBe(`receipt for ${id}`);
  expect(runs).toBe(1);
});

test('a stream an inner middleware answers with from `after` is read and stored like the handler’s own', async () => {
  const name = 'early-stream';
  let runs = 0;
  const handler = middy(async (event: { id: string }) => {
    runs++;
    return event.id;
  }, streamingMode as never)
    .use(idempotency({ store, name }))
    .use({ after: (request) => Readable.from(['wrapped ', String(request.response)]) });
  const id = randomUUID();
  const first = await invokeStreaming(handler, { id }, lambdaContext(name));
  const again = await invokeStreaming(handler, { id }, lambdaContext(name));
  expect(first.bytes.toString('utf8')).toBe(`wrapped ${id}`);
  expect(again.bytes.toString('utf8')).toBe(`wrapped ${id}`);
  expect(runs).toBe(1);
});

test('with encryption at rest: a streamed body of bytes, and a large one (compressed, then sealed), is stored as ciphertext and replayed byte for byte', async () => {
  const sealing = new DynamoDBStore({ tableName, client, encryption: aesGcmEncryption(keyring(aesKey('k1')).encryption) });
  const name = `sealed-stream-${randomUUID().slice(0, 8)}`;
  let runs = 0;
  const secret = randomBytes(64);
  const handler = middy(async (event: { id: string; big?: boolean }) => {
    runs++;
    const chunks = event.big ? [Buffer.alloc(200_000, 'secret '), secret] : [secret, Buffer.of(0xff, 0xfe)];
    return { statusCode: 200, headers: { 'content-type': 'application/octet-stream' }, body: Readable.from(chunks) };
  }, streamingMode as never).use(idempotency({ store: sealing, name }));
  for (const big of [false, true]) {
    const id = randomUUID();
    const first = await invokeStreaming(handler, { id, big }, lambdaContext(name));
    const again = await invokeStreaming(handler, { id, big }, lambdaContext(name));
    expect(again.bytes.equals(first.bytes)).toBe(true);
    expect(first.bytes.includes(secret)).toBe(true);
    const item = await readItem(client, tableName, recordId(name, { id, big }));
    expect([item?.keyId?.S, item?.response?.S]).toEqual(['k1', undefined]);
    const stored = Buffer.from(item!.response!.B!);
    expect(stored.includes(secret.subarray(0, 16))).toBe(false);
    expect(stored.toString('latin1')).not.toContain('secret');
    if (big) expect(stored.byteLength).toBeLessThan(10_000); // gzip before sealing
  }
  expect(runs).toBe(2);
});
