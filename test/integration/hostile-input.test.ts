/**
 * Hostile input against a real DynamoDB Local: oversized and malformed Idempotency-Key headers,
 * events nested 10,000 levels deep or 5 MB large, values JSON cannot hold in keys and in responses,
 * responses over the item limit. Each gets a typed error or the documented behaviour; none crashes
 * (no RangeError from a stack overflow), runs the handler twice, or leaves a record INPROGRESS.
 */

import { randomBytes } from 'node:crypto';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { type HttpEvent, type HttpResult, httpIdempotency, idempotency, makeIdempotent } from '../../lib/index.js';
import { useFreshTable } from '../support/dynamodb.js';
import { flush, gate } from '../support/gate.js';
import { scanRecords } from '../support/invariants.js';
import { lambdaContext } from '../support/lambda.js';
import { rejection } from '../support/rejections.js';
import { collectingLogger, type OmittedWhy, omittedMessage } from '../support/warnings.js';

const { client, tableName, store } = useFreshTable();

let namespaces = 0;
const namespace = (label: string): string => `hostile-${label}-${++namespaces}`;

/** The namespace's records: `status` of each. No INPROGRESS may be left behind by a rejected or finished call. */
async function statuses(name: string): Promise<string[]> {
  return (await scanRecords(client, tableName, `${name}#`)).map((r) => r.status);
}

/** The one warning expected of the namespace `name`'s single record, completed without its outcome because of `why`. */
async function omittedWarning(name: string, why: OmittedWhy) {
  const [record] = await scanRecords(client, tableName, `${name}#`);
  return [{ level: 'WARN', message: omittedMessage(why), namespace: name, recordId: record!.id }];
}

/** `depth` objects nested in one another, built without recursion. */
function nested(depth: number, leaf: unknown = 'bottom'): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

// ---------------------------------------------------------------------------------------------
// HTTP: the Idempotency-Key header

function httpEvent(headers: Record<string, unknown>, body: string = '{"amount":1000}'): HttpEvent {
  const event = {
    version: '2.0',
    routeKey: 'POST /orders',
    rawPath: '/orders',
    rawQueryString: '',
    headers: { 'content-type': 'application/json', ...headers },
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'api.example.com',
      domainPrefix: 'api',
      http: { method: 'POST', path: '/orders', protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'test' },
      requestId: 'r',
      routeKey: 'POST /orders',
      stage: '$default',
      time: '15/Jan/2025:12:00:00 +0000',
      timeEpoch: 1_736_942_400_000,
    },
    body,
    isBase64Encoded: false,
  };
  return event as unknown as APIGatewayProxyEventV2;
}

function httpHandler(name: string, result: (run: number) => HttpResult = (run) => ({ statusCode: 201, body: JSON.stringify({ run }) })) {
  const state = { runs: 0 };
  const { logger, omitted } = collectingLogger();
  const handler = middy(async (_event: HttpEvent) => result(++state.runs)).use(httpIdempotency({ store, name, logger }));
  return { state, omitted, send: (event: HttpEvent) => handler(event, lambdaContext(name)) as Promise<HttpResult> };
}

const MALFORMED_KEYS: ReadonlyArray<[string, unknown]> = [
  ['256 characters', 'k'.repeat(256)],
  ['8 KB', 'k'.repeat(8 * 1024)],
  ['1 MB', 'k'.repeat(1024 * 1024)],
  ['empty', ''],
  ['only spaces', '   '],
  ['an inner space', 'order 1'],
  ['a NUL byte', 'order\u00001'],
  ['CR LF (header injection)', 'order-1\r\nX-Injected: yes'],
  ['non-ASCII', 'ключ-1'],
  ['an emoji', 'order-\u{1F600}'],
  ['a quoted string with a bare quote inside', '"ord"er"'],
  ['an empty quoted string', '""'],
  ['a number, not a string', 12345],
  ['an array, not a string', ['order-1']],
  ['an object, not a string', { key: 'order-1' }],
];

describe('httpIdempotency with a hostile Idempotency-Key', () => {
  test.each(MALFORMED_KEYS)('%s: 400 problem+json, the handler does not run, nothing is stored', async (_label, key) => {
    const name = namespace('header');
    const { state, send } = httpHandler(name);
    const response = await send(httpEvent({ 'idempotency-key': key }));
    expect(response.statusCode).toBe(400);
    expect(response.headers).toMatchObject({ 'Content-Type': 'application/problem+json' });
    expect(JSON.parse(response.body!)).toMatchObject({ status: 400, title: 'Idempotency-Key is invalid' });
    expect(state.runs).toBe(0);
    expect(await statuses(name)).toEqual([]);
  });

  test('the key sent twice, under names that differ only in case: 400', async () => {
    const name = namespace('twice');
    const { state, send } = httpHandler(name);
    const response = await send(httpEvent({ 'Idempotency-Key': 'a', 'idempotency-key': 'b' }));
    expect(response.statusCode).toBe(400);
    expect(state.runs).toBe(0);
  });

  test('255 visible characters, every one but the comma allowed: accepted, run once, replayed', async () => {
    const name = namespace('longest');
    const visible = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).join('');
    // A bare comma is a second key: HTTP APIs join a header sent twice with one.
    const key = visible.replace(',', '').repeat(3).slice(0, 255);
    const { state, send } = httpHandler(name);
    const first = await send(httpEvent({ 'idempotency-key': key }));
    const second = await send(httpEvent({ 'idempotency-key': key }));
    expect(first).toMatchObject({ statusCode: 201, body: '{"run":1}' });
    expect(second).toMatchObject({ statusCode: 201, body: '{"run":1}', headers: { 'Idempotent-Replayed': 'true' } });
    expect(state.runs).toBe(1);
  });

  test('a 5 MB body is fingerprinted and replayed; a changed byte in it is a different request (422)', async () => {
    const name = namespace('big-body');
    const body = JSON.stringify({ items: 'x'.repeat(5 * 1024 * 1024) });
    const { state, send } = httpHandler(name);
    expect(await send(httpEvent({ 'idempotency-key': 'big' }, body))).toMatchObject({ statusCode: 201 });
    expect(await send(httpEvent({ 'idempotency-key': 'big' }, body))).toMatchObject({ statusCode: 201, headers: { 'Idempotent-Replayed': 'true' } });
    const changed = `${body.slice(0, -3)}y"}`;
    expect(await send(httpEvent({ 'idempotency-key': 'big' }, changed))).toMatchObject({ statusCode: 422 });
    expect(state.runs).toBe(1);
    expect(await statuses(name)).toEqual(['COMPLETED']);
  });

  test('a JSON body nested 10,000 levels deep is fingerprinted by its bytes, without a stack overflow: it runs once, then replays', async () => {
    const name = namespace('deep-body');
    const body = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
    const { state, send } = httpHandler(name);
    const response = await send(httpEvent({ 'idempotency-key': 'deep' }, body));
    expect(response.statusCode).toBeLessThan(300);
    const duplicate = await send(httpEvent({ 'idempotency-key': 'deep' }, body));
    expect(duplicate.headers).toMatchObject({ 'Idempotent-Replayed': 'true' });
    const changed = await send(httpEvent({ 'idempotency-key': 'deep' }, body.replace('1', '2')));
    expect(changed.statusCode).toBe(422);
    expect(state.runs).toBe(1);
    expect(await statuses(name)).toEqual(['COMPLETED']);
  });

  test('a response over the item limit reaches the first caller; a duplicate gets 409, never a second run', async () => {
    const name = namespace('huge-response');
    const blob = randomBytes(600 * 1024).toString('base64'); // 800 KB that gzip cannot shrink below 400 KB
    const { state, send, omitted } = httpHandler(name, (run) => ({ statusCode: 200, body: JSON.stringify({ run, blob }) }));
    const first = await send(httpEvent({ 'idempotency-key': 'huge' }));
    expect(first.statusCode).toBe(200);
    expect(JSON.parse(first.body!)).toEqual({ run: 1, blob });
    const duplicate = await send(httpEvent({ 'idempotency-key': 'huge' }));
    expect(duplicate.statusCode).toBe(409);
    expect(JSON.parse(duplicate.body!)).toMatchObject({ title: expect.stringContaining('response was not kept') });
    expect(state.runs).toBe(1);
    expect(await statuses(name)).toEqual(['COMPLETED']);
    expect(omitted()).toEqual(await omittedWarning(name, 'size')); // once: the duplicate completed nothing
  });

  const forged = { executionContext: { durableExecutionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:f/durable-execution/forged' } };
  // JSON carries no function: members named like a context's methods are data, whatever their value.
  test.each([
    ['names a durable execution', forged],
    ['names a durable execution and a `step`', { ...forged, step: 'charge' }],
    ['names a durable execution and a time left', { ...forged, getRemainingTimeInMillis: 900_000 }],
    ['names a durable execution and a `lambdaContext`', { ...forged, lambdaContext: { getRemainingTimeInMillis: 900_000 } }],
  ])('a second argument parsed from a request that %s is no context: concurrent duplicates on two instances run once', async (_label, metadata) => {
    const name = namespace('forged-durable');
    const body = JSON.stringify(metadata);
    const release = gate();
    let runs = 0;
    // Two instances of one function: two wrappers of one name on one table, each with its own engine.
    const instance = () =>
      makeIdempotent(
        async (orderId: string, _metadata: unknown) => {
          runs++;
          await release.promise;
          return `charged ${orderId}`;
        },
        { store, name },
      );
    const [first, second] = [instance(), instance()];
    const running = first('o-1', JSON.parse(body));
    await flush();
    while ((await statuses(name)).length === 0) await flush();
    let answered: unknown;
    const duplicate = second('o-1', JSON.parse(body)).then(
      (value) => (answered = value),
      (error: unknown) => (answered = error),
    );
    // Until the duplicate answers, or runs the function a second time.
    while (answered === undefined && runs < 2) await flush();
    release.open();
    await duplicate;
    expect(runs).toBe(1);
    expect(answered).toMatchObject({ code: 'IN_PROGRESS' });
    expect(await running).toBe('charged o-1');
  });
});

// ---------------------------------------------------------------------------------------------
// Keys: deep, huge, and values JSON cannot hold

describe('hostile keys', () => {
  test.each([
    ['objects nested 10,000 levels deep', () => nested(10_000)],
    ['arrays nested 10,000 levels deep', () => JSON.parse(`${'['.repeat(10_000)}${']'.repeat(10_000)}`)],
    [
      'a toJSON that returns itself',
      () => ({
        toJSON() {
          return this;
        },
      }),
    ], // prettier-ignore
  ])('%s: INVALID_KEY, no stack overflow, nothing ran or was stored', async (_label, make) => {
    const name = namespace('deep-key');
    let runs = 0;
    const once = makeIdempotent(async (_event: unknown) => ++runs, { store, name });
    const error = await rejection(once(make()));
    expect(error.code).toBe('INVALID_KEY');
    expect(error.message).not.toMatch(/call stack/i);
    // Refused at the depth limit, not by a stack overflow caught and reported as a throwing toJSON.
    expect(error.message).toMatch(/nesting deeper than 200 levels/);
    expect(error.cause).toBeUndefined();
    expect(runs).toBe(0);
    expect(await statuses(name)).toEqual([]);
  });

  test('through the middleware, a 10,000-level event as the key: INVALID_KEY, the handler does not run', async () => {
    const name = namespace('deep-event');
    let runs = 0;
    const handler = middy(async (_event: unknown) => ++runs).use(idempotency({ store }));
    const error = await rejection(handler(nested(10_000), lambdaContext(name)));
    expect(error.code).toBe('INVALID_KEY');
    expect(error.message).toMatch(/nesting deeper than 200 levels/);
    expect(runs).toBe(0);
    expect(await statuses(name)).toEqual([]);
  });

  test('a 5 MB event as the key: hashed to a fixed-size id, run once, replayed', async () => {
    const name = namespace('huge-key');
    const event = { orderId: 'o-1', lines: Array.from({ length: 50_000 }, (_, i) => ({ sku: `sku-${i}`, qty: i % 7, note: 'x'.repeat(72) })) };
    expect(JSON.stringify(event).length).toBeGreaterThan(5 * 1024 * 1024);
    let runs = 0;
    const handler = middy(async (_event: typeof event) => ({ run: ++runs })).use(idempotency({ store }));
    expect(await handler(event, lambdaContext(name))).toEqual({ run: 1 });
    expect(await handler(structuredClone(event), lambdaContext(name))).toEqual({ run: 1 });
    const [record] = await scanRecords(client, tableName, `${name}#`);
    expect(record!.id).toMatch(new RegExp(`^${name}#[A-Za-z0-9_-]{43}$`));
    expect(runs).toBe(1);
  });

  const cycle: Record<string, unknown> = { id: 'c' };
  cycle.self = cycle;
  test.each([
    ['a BigInt', { id: 1n }],
    ['a cycle', cycle],
    // biome-ignore lint/suspicious/noThenProperty: a thenable key is the hostile input under test
    ['a function', { id: 'f', then: () => undefined }],
    ['a symbol', { id: Symbol('s') }],
    ['NaN', { id: Number.NaN }],
    ['Infinity', { amount: Number.POSITIVE_INFINITY }],
    ['a Map', { id: new Map([['a', 1]]) }],
    ['a Set', new Set(['a'])],
    // JSON writes these as {} whatever they hold: every such key would be one.
    ['an ArrayBuffer', { id: new Uint8Array([1]).buffer }],
    ['a WeakRef', new WeakRef({ id: 'w' })],
  ])('a key holding %s: INVALID_KEY, nothing ran or was stored', async (_label, key) => {
    const name = namespace('non-json-key');
    let runs = 0;
    const once = makeIdempotent(async (_input: unknown) => ++runs, { store, name });
    expect((await rejection(once(key))).code).toBe('INVALID_KEY');
    expect(runs).toBe(0);
    expect(await statuses(name)).toEqual([]);
  });

  // JSON writes an invalid Date as null (its toJSON returns null) and a boxed '' as "": such a key
  // is as missing as null or '' returned directly, not one key shared by every such call.
  test.each([
    ['an invalid Date', () => new Date(Number.NaN)],
    ['a boxed empty string', () => new String('')],
    ['a toJSON returning null', () => ({ toJSON: () => null })],
  ])('a key selector returning %s: KEY_MISSING, and with onMissingKey skip every call runs', async (_label, make) => {
    const name = namespace('null-json-key');
    let runs = 0;
    const once = makeIdempotent(async (_input: { n: number }) => ++runs, { store, name, key: make });
    expect((await rejection(once({ n: 1 }))).code).toBe('KEY_MISSING');
    const skipping = makeIdempotent(async (_input: { n: number }) => ++runs, { store, name, key: make, onMissingKey: 'skip' });
    expect(await skipping({ n: 1 })).toBe(1);
    expect(await skipping({ n: 2 })).toBe(2);
    expect(await statuses(name)).toEqual([]);
  });

  test.each([
    [
      'a toJSON that throws',
      {
        toJSON: () => {
          throw new Error('toJSON failed');
        },
      },
    ], // prettier-ignore
    [
      'a getter that throws',
      Object.defineProperty({}, 'id', {
        enumerable: true,
        get: () => {
          throw new Error('getter failed');
        },
      }),
    ], // prettier-ignore
    [
      'a proxy whose ownKeys throws',
      new Proxy(
        {},
        {
          ownKeys: () => {
            throw new Error('ownKeys failed');
          },
        },
      ),
    ], // prettier-ignore
  ])('a key with %s: INVALID_KEY with the error as its cause, nothing ran', async (_label, key) => {
    const name = namespace('throwing-key');
    let runs = 0;
    const once = makeIdempotent(async (_input: unknown) => ++runs, { store, name });
    const error = await rejection(once(key));
    expect(error.code).toBe('INVALID_KEY');
    expect(error.cause).toBeInstanceOf(Error);
    expect(runs).toBe(0);
    expect(await statuses(name)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Responses JSON cannot hold, or too large to store

describe('hostile responses', () => {
  const cyclic = (): unknown => {
    const value: Record<string, unknown> = { ok: true };
    value.self = value;
    return value;
  };
  test.each<[string, () => unknown, OmittedWhy]>([
    ['a BigInt', () => ({ total: 10n }), 'json'],
    ['a cycle', cyclic, 'json'],
    ['nesting 10,000 levels deep (JSON.stringify overflows)', () => nested(10_000), 'json'],
    [
      'a toJSON that throws',
      () => ({
        toJSON: () => {
          throw new Error('toJSON failed');
        },
      }),
      'json',
    ], // prettier-ignore
    ['5 MB of incompressible text', () => ({ blob: randomBytes(3.75 * 1024 * 1024).toString('base64') }), 'size'],
  ])('%s: the first caller gets it, the record is COMPLETED, duplicates get RESPONSE_NOT_STORED, no second run', async (_label, make, why) => {
    const name = namespace('response');
    const { logger, omitted } = collectingLogger();
    const results: unknown[] = [];
    const once = makeIdempotent(
      async (_id: string) => {
        const result = make();
        results.push(result);
        return result;
      },
      { store, name, logger },
    );
    expect(await once('k')).toBe(results[0]);
    expect((await rejection(once('k'))).code).toBe('RESPONSE_NOT_STORED');
    expect(results).toHaveLength(1);
    expect(await statuses(name)).toEqual(['COMPLETED']);
    expect(omitted()).toEqual(await omittedWarning(name, why));
  });

  test.each([
    ['a BigInt', () => ({ total: 10n })],
    ['nesting 10,000 levels deep', () => nested(10_000)],
  ])('an HTTP API (v2) handler returning a plain value with %s: it fails as a thrown error would, and the key is released', async (_label, make) => {
    const name = namespace('http-unsendable');
    let runs = 0;
    const handler = middy(async (_event: HttpEvent) => (++runs === 1 ? make() : { run: runs })).use(httpIdempotency({ store, name }));
    const event = httpEvent({ 'idempotency-key': 'unsendable' });
    // Lambda could not send this result either; what matters is that the key is not left held.
    await expect(handler(event, lambdaContext(name))).rejects.toThrow();
    expect(await statuses(name)).toEqual([]);
    expect(await handler(event, lambdaContext(name))).toEqual({ run: 2 });
    expect(await statuses(name)).toEqual(['COMPLETED']);
  });

  test('functions and symbols in a response replay as JSON writes them (dropped members; undefined at the top)', async () => {
    const name = namespace('functions');
    let runs = 0;
    const once = makeIdempotent(
      async (id: string) => {
        runs++;
        return id === 'top' ? () => 'a function' : { run: runs, fn: () => 1, sym: Symbol('s'), list: [() => 1] };
      },
      { store, name },
    );
    expect(await once('member')).toMatchObject({ run: 1 });
    expect(await once('member')).toStrictEqual({ run: 1, list: [null] });
    expect(typeof (await once('top'))).toBe('function');
    expect(await once('top')).toBeUndefined();
    expect(runs).toBe(2);
    expect(await statuses(name)).toEqual(['COMPLETED', 'COMPLETED']);
  });
});

describe('hostile final errors', () => {
  const throwing = () => {
    throw new Error('read failed');
  };
  test.each([
    ['a `code` getter that throws', () => Object.defineProperty(new Error('card declined'), 'code', { enumerable: true, get: throwing })],
    ['a stored field whose getter throws', () => Object.defineProperty(new Error('card declined'), 'statusCode', { enumerable: true, get: throwing })],
    [
      'a Proxy whose get trap throws for `name`',
      () => new Proxy(new Error('card declined'), { get: (target, p) => (p === 'name' ? throwing() : Reflect.get(target, p)) }),
    ],
  ])('%s: the caller gets its own error, the record is COMPLETED with what could be read, no second run', async (_label, make) => {
    const name = namespace('final-error');
    const thrown: unknown[] = [];
    const once = makeIdempotent(
      async (_id: string) => {
        const error = make();
        thrown.push(error);
        throw error;
      },
      { store, name, isFinalError: () => true, errorFields: ['statusCode'] },
    );
    // Compared by identity: jest cannot print a value whose reads throw.
    expect((await once('k').catch((error: unknown) => error)) === thrown[0]).toBe(true);
    expect(await statuses(name)).toEqual(['COMPLETED']);
    expect(((await once('k').catch((error: unknown) => error)) as Error).message).toBe('card declined');
    expect(thrown).toHaveLength(1);
  });
});

describe('a thrown value whose prototype cannot be read (a revoked Proxy, a getPrototypeOf trap that throws)', () => {
  const revoked = () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    return proxy;
  };
  const trapped = () =>
    new Proxy(new Error('card declined'), {
      getPrototypeOf: () => {
        throw new Error('no prototype');
      },
    });
  test.each([
    ['a revoked Proxy', revoked, undefined],
    ['a revoked Proxy, with isFinalError', revoked, () => true],
    ['a getPrototypeOf trap that throws', trapped, undefined],
  ])('%s: the caller gets it, the key is released, and the next call in the process runs at once', async (_label, make, isFinalError) => {
    const name = namespace('prototype');
    const thrown: unknown[] = [];
    const once = makeIdempotent(
      async (_id: string, _context?: unknown) => {
        if (thrown.length > 0) return 'ran again';
        const error = make();
        thrown.push(error);
        throw error;
      },
      { store, name, ...(isFinalError === undefined ? {} : { isFinalError }) },
    );
    // Compared by identity, wrapped: a promise cannot resolve to a value whose `then` cannot be read.
    const [caught] = (await once('k').then(
      () => [],
      (error: unknown) => [error],
    )) as unknown[];
    expect(caught === thrown[0]).toBe(true);
    expect(await statuses(name)).toEqual([]);
    // Given a deadline 2 s away: a call that waited on the first call's flight would answer IN_PROGRESS by then.
    expect(await once('k', lambdaContext(name, 2_000))).toBe('ran again');
  });
});

describe('a hostile Lambda context', () => {
  test('a deadline that cannot be read counts as absent: the call runs once on `leaseSeconds`, and its duplicate replays', async () => {
    const name = namespace('context');
    const context = {
      functionName: name,
      getRemainingTimeInMillis: (): number => {
        throw new Error('no deadline');
      },
    };
    let runs = 0;
    const once = makeIdempotent(async (id: string, _context: typeof context) => `ran ${id} ${++runs}`, { store, name, leaseSeconds: 5 });
    expect(await once('k', context)).toBe('ran k 1');
    expect(await once('k', context)).toBe('ran k 1');
    expect(await statuses(name)).toEqual(['COMPLETED']);
  });
});
