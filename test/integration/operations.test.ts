/**
 * `inspectRecord` and `forgetRecord` on DynamoDB Local: records written by the real entry points,
 * addressed by key, by HTTP request parts and by record id.
 */

import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import {
  callerIdentity,
  DynamoDBStore,
  forgetRecord,
  httpIdempotency,
  httpKeyValue,
  IdempotencyError,
  type IdempotencyEvent,
  type IdempotencyStore,
  inspectRecord,
  makeIdempotent,
  recordIdOf,
  transaction,
} from '../../lib/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { Turnstile } from '../support/gate.js';
import { aesKey, keyring } from '../support/keyring.js';
import { lambdaContext } from '../support/lambda.js';
import { paymentRequest } from '../support/payment-request.js';
import { rejection } from '../support/rejections.js';

const T0 = 1_700_000_000_000;
const { client, tableName, store } = useFreshTable({ prefix: 'ops' });

interface Order {
  readonly orderId: string;
  readonly amount: number;
}

function counted(name: string, options: { fingerprint?: boolean; fail?: Error } = {}) {
  let runs = 0;
  const once = makeIdempotent(
    async (order: Order) => {
      runs++;
      if (options.fail) throw options.fail;
      return { charged: order.amount, note: 'é' };
    },
    {
      store,
      name,
      key: (order) => order.orderId,
      now: () => T0,
      ...(options.fingerprint ? { fingerprint: (order: Order) => order.amount } : {}),
      ...(options.fail ? { isFinalError: () => true } : {}),
    },
  );
  return { once, runs: () => runs };
}

test('inspect shows a completed record, its sizes and no response', async () => {
  const { once } = counted('inspect-completed', { fingerprint: true });
  await once({ orderId: 'o-1', amount: 5 });
  const summary = await inspectRecord({ store, name: 'inspect-completed', key: 'o-1' });
  expect(summary).toEqual({
    key: recordId('inspect-completed', 'o-1'),
    status: 'COMPLETED',
    expiresAt: T0 / 1000 + 86_400,
    hasFingerprint: true,
    // 'é' takes two bytes in UTF-8: the size is in bytes, as stored.
    responseBytes: Buffer.byteLength(JSON.stringify({ charged: 5, note: 'é' })),
    responseOmitted: false,
  });
  expect(await inspectRecord({ store, name: 'inspect-completed', key: 'o-2' })).toBeUndefined();
  expect(await inspectRecord({ store, id: recordId('inspect-completed', 'o-1') })).toEqual(summary);
});

test('inspect shows an in-progress record with its lease end', async () => {
  const turnstile = new Turnstile();
  const once = makeIdempotent(async (_order: Order) => turnstile.enter(), {
    store,
    name: 'inspect-held',
    key: (o) => o.orderId,
    now: () => T0,
    leaseSeconds: 30,
  });
  const call = once({ orderId: 'o-1', amount: 1 });
  const holder = await turnstile.next();
  expect(await inspectRecord({ store, name: 'inspect-held', key: 'o-1' })).toEqual({
    key: recordId('inspect-held', 'o-1'),
    status: 'INPROGRESS',
    expiresAt: T0 / 1000 + 86_400,
    leaseUntil: T0 + 30_000,
    hasFingerprint: false,
    responseOmitted: false,
  });
  holder.open();
  await call;
});

test('inspect reports a stored final error by size, and a compressed response by its stored size', async () => {
  const { once } = counted('inspect-error', { fail: Object.assign(new Error('card declined'), { code: 'DECLINED' }) });
  await expect(once({ orderId: 'o-1', amount: 5 })).rejects.toThrow('card declined');
  const failed = await inspectRecord({ store, name: 'inspect-error', key: 'o-1' });
  expect(failed?.status).toBe('COMPLETED');
  expect(failed?.errorBytes).toBeGreaterThan('card declined'.length);
  expect(failed).not.toHaveProperty('responseBytes');

  const large = 'x'.repeat(100_000);
  const zipping = new DynamoDBStore({ tableName, client, compressAboveBytes: 1024 });
  await makeIdempotent(async () => large, { store: zipping, name: 'inspect-large', now: () => T0 })('k');
  const summary = await inspectRecord({ store: zipping, name: 'inspect-large', key: 'k' });
  const item = await readItem(client, tableName, recordId('inspect-large', 'k'));
  expect(summary?.responseBytes).toBe(item!.response!.B!.byteLength);
  expect(summary?.responseBytes).toBeLessThan(large.length / 10);
});

test('inspect never decrypts: an encrypted record is inspected without its keys', async () => {
  const key = { id: 'k1', key: new Uint8Array(32).fill(7) };
  const sealing = new DynamoDBStore({ tableName, client, encryption: { currentKey: () => key, keyById: () => key.key } });
  await makeIdempotent(async () => ({ secret: 'pin' }), { store: sealing, name: 'inspect-sealed', now: () => T0 })('k');
  const keyless = new DynamoDBStore({
    tableName,
    client,
    encryption: {
      currentKey: () => key,
      keyById: () => {
        throw new Error('inspect must not decrypt');
      },
    },
  });
  const summary = await inspectRecord({ store: keyless, name: 'inspect-sealed', key: 'k' });
  // The sealed form: format byte, IV, tag and ciphertext of the JSON.
  expect(summary?.responseBytes).toBe(1 + 12 + 16 + JSON.stringify({ secret: 'pin' }).length);
});

test('inspect names the key that sealed a response or a final error, across a rotation; none for an outcome stored in the clear or one the key provider failed to seal', async () => {
  const ring = keyring(aesKey('k-2024'), aesKey('k-2025'));
  const sealing = new DynamoDBStore({ tableName, client, encryption: ring.encryption });
  const plain = new DynamoDBStore({ tableName, client });
  const charge = (store: DynamoDBStore, name: string, fail = false) =>
    makeIdempotent(
      async (id: string) => {
        if (fail) throw new Error(`card ${id} declined`);
        return { id };
      },
      { store, name, now: () => T0, isFinalError: () => true, logger: { warn: () => undefined } },
    );
  await charge(sealing, 'inspect-rotated')('old');
  await charge(sealing, 'inspect-rotated', true)('old-error').catch(() => undefined);
  ring.rotate(aesKey('k-2025'));
  await charge(sealing, 'inspect-rotated')('new');
  await charge(plain, 'inspect-rotated')('clear');
  ring.failCurrent = 'throws';
  await charge(sealing, 'inspect-rotated')('unsealed');
  const inspected = async (key: string) => inspectRecord({ store: plain, name: 'inspect-rotated', key });
  expect(await inspected('old')).toMatchObject({ keyId: 'k-2024', responseBytes: expect.any(Number) });
  expect(await inspected('old-error')).toMatchObject({ keyId: 'k-2024', errorBytes: expect.any(Number) });
  expect(await inspected('new')).toMatchObject({ keyId: 'k-2025' });
  expect(await inspected('clear')).not.toHaveProperty('keyId');
  expect(await inspected('unsealed')).toMatchObject({ responseOmitted: true });
  expect(await inspected('unsealed')).not.toHaveProperty('keyId');
});

test('a forgotten key runs again', async () => {
  const { once, runs } = counted('forget-rerun');
  await once({ orderId: 'o-1', amount: 5 });
  await once({ orderId: 'o-1', amount: 5 });
  expect(runs()).toBe(1);
  expect(await forgetRecord({ store, name: 'forget-rerun', key: 'o-1' })).toBe(true);
  expect(await readItem(client, tableName, recordId('forget-rerun', 'o-1'))).toBeUndefined();
  expect(await forgetRecord({ store, name: 'forget-rerun', key: 'o-1' })).toBe(false);
  await once({ orderId: 'o-1', amount: 5 });
  expect(runs()).toBe(2);
});

test("a forgotten key still replays from the memory of an instance that cached it (cacheSize), until the record's retention ends", async () => {
  let runs = 0;
  let now = T0;
  const options = { store, name: 'forget-cached', cacheSize: 10, expiresAfterSeconds: 3600, now: () => now };
  const cached = makeIdempotent(async (_: string) => ++runs, options);
  expect(await cached('o-1')).toBe(1);
  expect(await forgetRecord({ store, name: 'forget-cached', key: 'o-1' })).toBe(true);
  // An instance that never served the key runs it again; the one that did answers from its memory.
  expect(await makeIdempotent(async (_: string) => ++runs, options)('o-1')).toBe(2);
  expect(await cached('o-1')).toBe(1);
  now += 3601 * 1000;
  expect(await cached('o-1')).toBe(3);
});

test('onlyIf deletes a record only in that status', async () => {
  const { once } = counted('forget-only-if');
  await once({ orderId: 'o-1', amount: 5 });
  const id = recordId('forget-only-if', 'o-1');
  expect(await forgetRecord({ store, id, onlyIf: 'INPROGRESS' })).toBe(false);
  expect(await readItem(client, tableName, id)).toBeDefined();
  expect(await forgetRecord({ store, id, onlyIf: 'COMPLETED' })).toBe(true);
  expect(await readItem(client, tableName, id)).toBeUndefined();
  // INPROGRESS is a status, not a lease check: a live attempt goes too (only `leaseUntil` fences on the lease).
  const now = Date.now();
  await store.claim({ key: id, owner: 'running', leaseUntil: now + 60_000, expiresAt: Math.floor(now / 1000) + 86_400, now });
  expect(await forgetRecord({ store, id, onlyIf: 'INPROGRESS' })).toBe(true);
});

test("a live attempt whose record forgetRecord deleted while it ran gets its function's outcome, with a warning that it was not stored; the next call runs again", async () => {
  const turnstile = new Turnstile();
  const warnings: string[] = [];
  let runs = 0;
  const options = {
    store,
    name: 'forget-live',
    key: (order: Order) => order.orderId,
    now: () => T0,
    logger: { warn: (line: string) => warnings.push(JSON.parse(line).message) },
  };
  const pay = makeIdempotent(async (order: Order) => {
    runs++;
    await turnstile.enter();
    return order.amount;
  }, options);
  const running = pay({ orderId: 'o-1', amount: 5 });
  const inside = await turnstile.next();
  const id = recordId('forget-live', 'o-1');
  expect(await forgetRecord({ store, id })).toBe(true);
  inside.open();
  // The function ran: an error would have its caller retry, and run it again.
  expect(await running).toBe(5);
  expect(warnings).toEqual([
    "lambda-idempotency: the record was deleted while the call ran (forgetRecord, or a store that lost it); the caller gets the call's outcome, which was not stored: the next call with its key runs again",
  ]);
  expect(await readItem(client, tableName, id)).toBeUndefined();
  const again = pay({ orderId: 'o-1', amount: 5 });
  (await turnstile.next()).open();
  expect(await again).toBe(5);
  expect(runs).toBe(2);
});

test('a live attempt with writes whose record forgetRecord deleted while it ran ends SUPERSEDED: its commit, fenced on its claim, wrote none of them', async () => {
  const turnstile = new Turnstile();
  const events: IdempotencyEvent[] = [];
  const options = {
    store,
    name: 'forget-live-writes',
    key: (order: Order) => order.orderId,
    now: () => T0,
    observability: (event: IdempotencyEvent) => void events.push(event),
  };
  const running = makeIdempotent(async (order: Order) => {
    transaction().put({ TableName: tableName, Item: { id: `effect-${order.orderId}` } });
    await turnstile.enter();
    return order.amount;
  }, options)({ orderId: 'o-1', amount: 5 });
  const inside = await turnstile.next();
  const id = recordId('forget-live-writes', 'o-1');
  expect(await forgetRecord({ store, id })).toBe(true);
  inside.open();
  const error = await rejection(running);
  expect(error).toMatchObject({ code: 'SUPERSEDED', record: undefined });
  expect(error.message).toBe(
    "SUPERSEDED: This attempt's record was deleted while it ran, so none of its writes was committed and the next call with its key runs again; nothing was overwritten.",
  );
  expect(await readItem(client, tableName, id)).toBeUndefined();
  expect(await readItem(client, tableName, 'effect-o-1')).toBeUndefined();
  // No attempt took the record over: the function ran and its record was gone, for the BookkeepingFailures alarm, as without writes.
  expect(events).toEqual(['miss', 'bookkeepingFailure']);
});

test('a live attempt whose record forgetRecord deleted and another attempt then claimed ends SUPERSEDED with a message that says so, not that it outlived its lease', async () => {
  const turnstile = new Turnstile();
  let now = T0;
  const options = { store, name: 'forget-live-claimed', key: (order: Order) => order.orderId, now: () => now, leaseSeconds: 60 };
  const first = makeIdempotent(async (order: Order) => {
    await turnstile.enter();
    return order.amount;
  }, options);
  // Another instance: no in-process sharing of the claim with the first.
  const other = makeIdempotent(async (order: Order) => order.amount * 10, options);

  // Its lease has not ended: the other attempt claimed the key only because the record was deleted.
  const running = first({ orderId: 'o-1', amount: 5 });
  const inside = await turnstile.next();
  const id = recordId('forget-live-claimed', 'o-1');
  expect(await forgetRecord({ store, id })).toBe(true);
  expect(await other({ orderId: 'o-1', amount: 5 })).toBe(50);
  now = T0 + 60_000; // the lease's last millisecond still belongs to it
  inside.open();
  const error = await rejection(running);
  expect(error).toMatchObject({ code: 'SUPERSEDED', record: { key: id, status: 'COMPLETED' } });
  expect(error.message).toBe(
    "SUPERSEDED: This attempt's record was deleted while it ran, before its lease ended, and then claimed by another attempt; nothing was overwritten.",
  );

  // Past its lease, the other attempt took the record over: the message says that.
  now = T0;
  const late = first({ orderId: 'o-2', amount: 7 });
  const lateInside = await turnstile.next();
  now = T0 + 60_001;
  expect(await other({ orderId: 'o-2', amount: 7 })).toBe(70);
  lateInside.open();
  const takenOver = await rejection(late);
  expect(takenOver).toMatchObject({ code: 'SUPERSEDED', record: { status: 'COMPLETED' } });
  expect(takenOver.message).toBe('SUPERSEDED: This attempt outlived its lease and its record was taken over by another attempt; nothing was overwritten.');
});

/** A record left INPROGRESS by an attempt that crashed: its lease ended at T0 + 1 s. */
async function crashed(name: string): Promise<string> {
  const id = recordId(name, 'o-1');
  await store.claim({ key: id, owner: 'crashed', leaseUntil: T0 + 1_000, expiresAt: T0 / 1000 + 86_400, now: T0 });
  return id;
}

test('leaseUntil deletes only the attempt inspected: a retry that took the record over since keeps it, runs alone and completes', async () => {
  const id = await crashed('forget-fenced');
  const seen = await inspectRecord({ store, id });
  // A retry takes the record over and runs its handler.
  const turnstile = new Turnstile();
  let runs = 0;
  const options = { store, name: 'forget-fenced', key: (order: Order) => order.orderId, now: () => T0 + 5_000 };
  const handler = async (order: Order) => {
    runs++;
    await turnstile.enter();
    return order.amount;
  };
  const retry = makeIdempotent(handler, options)({ orderId: 'o-1', amount: 5 });
  const inside = await turnstile.next();

  expect(await forgetRecord({ store, id, onlyIf: 'INPROGRESS', leaseUntil: seen!.leaseUntil! })).toBe(false);
  // Another instance's duplicate is refused while the retry runs, instead of running a second time.
  expect((await rejection(makeIdempotent(handler, options)({ orderId: 'o-1', amount: 5 }))).code).toBe('IN_PROGRESS');
  inside.open();
  expect(await retry).toBe(5);
  expect(runs).toBe(1);
  expect(await inspectRecord({ store, id })).toMatchObject({ status: 'COMPLETED' });
});

test('leaseUntil deletes the attempt inspected while it still holds the record', async () => {
  const id = await crashed('forget-seen');
  const seen = await inspectRecord({ store, id });
  expect(await forgetRecord({ store, id, leaseUntil: seen!.leaseUntil! + 1 })).toBe(false);
  expect(await forgetRecord({ store, id, leaseUntil: seen!.leaseUntil! })).toBe(true);
  expect(await readItem(client, tableName, id)).toBeUndefined();
  // A clock built on performance.now() sets leases with a fraction of a millisecond: matched exactly.
  const fraction = recordId('forget-seen', 'o-2');
  await store.claim({ key: fraction, owner: 'crashed', leaseUntil: T0 + 1_000.25, expiresAt: T0 / 1000 + 86_400, now: T0 });
  expect(await forgetRecord({ store, id: fraction, leaseUntil: T0 + 1_000 })).toBe(false);
  expect(await forgetRecord({ store, id: fraction, leaseUntil: (await inspectRecord({ store, id: fraction }))!.leaseUntil! })).toBe(true);
});

test('forgetting by lease is refused on a store whose forget does not declare it checks the lease, and with COMPLETED', async () => {
  const id = await crashed('forget-unfenced');
  // A custom store written before the parameter: it ignores the lease and would delete any attempt.
  const unfenced: IdempotencyStore = {
    ...{ claim: store.claim.bind(store), complete: store.complete.bind(store), release: store.release.bind(store) },
    forget: (key, onlyIf) => store.forget(key, onlyIf),
  };
  await expect(forgetRecord({ store: unfenced, id, leaseUntil: T0 + 1_000 })).rejects.toThrow(
    new TypeError(
      'This store cannot forget by lease: its `forget` does not declare `forgetChecksLease`, so it could delete an attempt that took the record over.',
    ),
  );
  await expect(forgetRecord({ store, id, onlyIf: 'COMPLETED', leaseUntil: T0 + 1_000 })).rejects.toThrow('a COMPLETED record has no lease');
  await expect(forgetRecord({ store, id, leaseUntil: '1700000001000' as never })).rejects.toThrow('`leaseUntil` must be the epoch milliseconds');
  // No lease is NaN or infinite: such a number reaches no store (DynamoDB would refuse it as a bad request).
  for (const leaseUntil of [Number.NaN, Number.POSITIVE_INFINITY]) {
    await expect(forgetRecord({ store, id, leaseUntil })).rejects.toThrow(
      new TypeError('forgetRecord: `leaseUntil` must be the epoch milliseconds inspectRecord returned, a number.'),
    );
  }
  expect(await readItem(client, tableName, id)).toBeDefined();
});

test('an HTTP record is addressed by its header key, method, route and caller', async () => {
  const handler = middy(async () => ({ statusCode: 201, body: '{"paymentId":"p-1"}' })).use(httpIdempotency({ store, name: 'ops-http' }));
  const event = paymentRequest('k-1', 'user-7');
  await handler(event, lambdaContext('ops-http'));

  // The caller is the identity the request carries, as `callerIdentity` derives it.
  const http = { key: 'k-1', method: 'post', route: 'POST /payments', caller: callerIdentity(event)! };
  expect((await inspectRecord({ store, name: 'ops-http', http }))?.responseBytes).toBeGreaterThan(0);
  // Another caller's key of the same value is another record.
  expect(await inspectRecord({ store, name: 'ops-http', http: { ...http, caller: callerIdentity(paymentRequest('k-1', 'user-8'))! } })).toBeUndefined();
  expect(await inspectRecord({ store, name: 'ops-http', http: { key: 'k-1', method: 'POST', route: 'POST /payments' } })).toBeUndefined();
  expect(await forgetRecord({ store, name: 'ops-http', http })).toBe(true);
});

test("an HTTP API's $default route (payload 2.0) is addressed as '<METHOD> <path>', as the docs say", async () => {
  const handler = middy(async () => ({ statusCode: 201, body: '{}' })).use(httpIdempotency({ store, name: 'ops-http-default', scope: () => undefined }));
  const event = paymentRequest('k-default') as APIGatewayProxyEventV2;
  await handler({ ...event, routeKey: '$default', requestContext: { ...event.requestContext, routeKey: '$default' } }, lambdaContext('ops-http-default'));
  const http = { key: 'k-default', method: 'POST', route: 'POST /payments' };
  expect(await inspectRecord({ store, name: 'ops-http-default', http })).toMatchObject({ status: 'COMPLETED' });
  expect(await inspectRecord({ store, name: 'ops-http-default', http: { ...http, route: '$default' } })).toBeUndefined();
  // The method that leads a route is upper-cased, as the middleware upper-cases it; a path is not.
  expect(await inspectRecord({ store, name: 'ops-http-default', http: { ...http, route: 'post /payments' } })).toMatchObject({ status: 'COMPLETED' });
  expect(await inspectRecord({ store, name: 'ops-http-default', http: { ...http, route: 'POST /PAYMENTS' } })).toBeUndefined();
});

test('an HTTP API route of payload format 1.0 is addressed by its path, the `resource` its events carry, not by its route key', async () => {
  const handler = middy(async () => ({ statusCode: 201, body: '{}' })).use(httpIdempotency({ store, name: 'ops-http-v1', scope: () => undefined }));
  // As API Gateway sends a request of the route `POST /payments` in payload format 1.0.
  const headers = { 'Content-Type': 'application/json', 'Idempotency-Key': 'k-v1' };
  const event = {
    version: '1.0',
    resource: '/payments',
    path: '/payments',
    httpMethod: 'POST',
    headers,
    multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, [value]])),
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    requestContext: {
      httpMethod: 'POST',
      path: '/payments',
      resourceId: 'POST /payments',
      resourcePath: '/payments',
      stage: '$default',
      identity: { sourceIp: '192.0.2.1' },
    },
    pathParameters: null,
    stageVariables: null,
    body: '{"amount":1200}',
    isBase64Encoded: false,
  };
  await handler(event as never, lambdaContext('ops-http-v1'));
  const http = { key: 'k-v1', method: 'POST', route: '/payments' };
  expect(await inspectRecord({ store, name: 'ops-http-v1', http })).toMatchObject({ status: 'COMPLETED' });
  expect(await inspectRecord({ store, name: 'ops-http-v1', http: { ...http, route: 'POST /payments' } })).toBeUndefined();
});

test('addresses are hashed as the engine hashes keys, and bad ones are refused with a sentence', async () => {
  expect(recordIdOf({ name: 'n', key: { b: 1, a: 2 } })).toBe(recordId('n', { a: 2, b: 1 }));
  expect(recordIdOf({ id: 'n#abc' })).toBe('n#abc');
  for (const bad of ['nohash', '#abc', 'n#']) expect(() => recordIdOf({ id: bad })).toThrow('`<namespace>#<hash>`');
  expect(() => recordIdOf({ name: 'a#b', key: 'k' })).toThrow(TypeError);
  expect(() => recordIdOf({ name: 'n', key: 'k', id: 'n#x' } as never)).toThrow('exactly one of');
  expect(() => recordIdOf({ name: 'n', http: { key: 'k', method: 'POST' } as never })).toThrow(
    new TypeError('recordIdOf: `http.route` must be a non-empty string.'),
  );
  for (const missing of [undefined, null, '']) expect(() => recordIdOf({ name: 'n', key: missing })).toThrow(IdempotencyError);
  expect((await rejection(inspectRecord({ store, name: 'n', key: 1n }))).code).toBe('INVALID_KEY');
  await expect(forgetRecord({ store, name: 'n', key: 'k', onlyIf: 'DONE' as never })).rejects.toThrow(
    new TypeError("forgetRecord: `onlyIf` must be 'INPROGRESS' or 'COMPLETED'."),
  );
  // Not the store's fault: no options at all.
  await expect(inspectRecord(undefined as never)).rejects.toThrow(new TypeError("inspectRecord takes an object: the `store` and the record's address."));
  await expect(forgetRecord(null as never)).rejects.toThrow(new TypeError("forgetRecord takes an object: the `store` and the record's address."));
});

test('a missing key is KEY_MISSING, an address with no key, http or id is refused, and so are HTTP parts the middleware never hashes', async () => {
  for (const missing of [undefined, null, '']) expect((await rejection(inspectRecord({ store, name: 'n', key: missing }))).code).toBe('KEY_MISSING');
  // Read as `key: undefined`, a name alone would be answered KEY_MISSING, as if a key had been given.
  expect(() => recordIdOf({ name: 'n' } as never)).toThrow(
    new TypeError('Address a record by exactly one of `key` (with `name`), `http` (with `name`) or `id`.'),
  );
  // No request the middleware keeps a record of has an empty key, method or route.
  for (const field of ['key', 'method', 'route'] as const) {
    const http = { key: 'k-1', method: 'POST', route: 'POST /payments', [field]: '' };
    expect(() => httpKeyValue(http)).toThrow(new TypeError(`httpKeyValue: \`${field}\` must be a non-empty string.`));
  }
  // A caller the middleware derives is a string or none: a number would hash as another record.
  expect(() => httpKeyValue({ key: 'k-1', method: 'POST', route: 'POST /payments', caller: 7 as never })).toThrow(
    new TypeError('httpKeyValue: `caller` must be a string.'),
  );
  expect(httpKeyValue({ key: 'k-1', method: 'post', route: 'post /payments' })).toStrictEqual({
    key: 'k-1',
    method: 'POST',
    route: 'POST /payments',
    caller: null,
  });
});

test('a misspelt member of an HTTP address is refused: it would address the record of a request without that part, and delete it', async () => {
  const memory = new InMemoryStore();
  const request = { key: 'k-1', method: 'POST', route: 'POST /payments' };
  // The record of an anonymous request: its caller is none.
  await makeIdempotent(async (_: string) => 'paid', { store: memory, name: 'api', key: () => httpKeyValue(request) })('anonymous');
  const misspelt = { ...request, calller: 'user-1' } as never;
  const message = 'unknown option `http.calller`. Known options of `http`: key, method, route, caller.';
  await expect(forgetRecord({ store: memory, name: 'api', http: misspelt })).rejects.toThrow(new TypeError(`forgetRecord: ${message}`));
  await expect(inspectRecord({ store: memory, name: 'api', http: misspelt })).rejects.toThrow(new TypeError(`inspectRecord: ${message}`));
  expect(() => recordIdOf({ name: 'api', http: misspelt })).toThrow(new TypeError(`recordIdOf: ${message}`));
  expect(() => httpKeyValue(misspelt)).toThrow(new TypeError('httpKeyValue: unknown option `calller`. Known options: key, method, route, caller.'));
  expect(await inspectRecord({ store: memory, name: 'api', http: request })).toMatchObject({ status: 'COMPLETED' });
});

test('a store without inspect or forget, such as the lean DynamoDBStore, is refused with a sentence that names the stores that have them', async () => {
  const bare: IdempotencyStore = { claim: store.claim.bind(store), complete: store.complete.bind(store), release: store.release.bind(store) };
  const lean = new LeanDynamoDBStore({ tableName, client });
  for (const without of [bare, lean]) {
    await expect(inspectRecord({ store: without, name: 'n', key: 'k' })).rejects.toThrow(
      new TypeError(
        "This store cannot inspect records: it has no `inspect` method (the DynamoDBStore of 'lambda-idempotency', RedisStore and InMemoryStore have one).",
      ),
    );
    await expect(forgetRecord({ store: without, name: 'n', key: 'k' })).rejects.toThrow(
      new TypeError(
        "This store cannot forget records: it has no `forget` method (the DynamoDBStore of 'lambda-idempotency', RedisStore and InMemoryStore have one).",
      ),
    );
  }
  // The stores the sentence names are accepted.
  const memory = new InMemoryStore();
  expect(await inspectRecord({ store: memory, name: 'n', key: 'k' })).toBeUndefined();
  expect(await forgetRecord({ store: memory, name: 'n', key: 'k' })).toBe(false);
});

test("a store's failure is a STORE_FAILURE naming it, the table and the fix, with the store's error as its cause, not the SDK's error as it came", async () => {
  const id = recordId('ops-store-failure', 'o-1');
  const missing = new DynamoDBStore({ tableName: 'ops-no-such-table', client });
  for (const call of [
    () => inspectRecord({ store: missing, id }),
    () => forgetRecord({ store: missing, id }),
    () => forgetRecord({ store: missing, id, onlyIf: 'COMPLETED' }),
    () => forgetRecord({ store: missing, id, leaseUntil: T0 }),
  ]) {
    const error = await rejection(call());
    expect(error.code).toBe('STORE_FAILURE');
    expect(error.message).toMatch(
      /^STORE_FAILURE: The idempotency store failed \(ResourceNotFoundException: no table ops-no-such-table in this account and Region; create it, or fix tableName or IDEMPOTENCY_TABLE\); /,
    );
    expect((error.cause as Error).name).toBe('ResourceNotFoundException');
  }
  // What became of the record is said: an inspection read nothing, a delete's outcome is unknown (its answer may be lost).
  expect((await rejection(inspectRecord({ store: missing, id }))).message).toMatch(/; inspectRecord read no record\.$/);
  expect((await rejection(forgetRecord({ store: missing, id }))).message).toMatch(
    /; forgetRecord cannot tell whether the record was deleted: inspectRecord tells\.$/,
  );
});

test("an IdempotencyError a store of one's own throws reaches the caller as it came: its code and message already say what failed", async () => {
  const failure = new IdempotencyError('STORE_FAILURE', 'The audit store is read-only during its migration.');
  const own: IdempotencyStore = {
    claim: async () => ({ claimed: true }),
    complete: async () => ({ completed: true, responseStored: true }),
    release: async () => ({ released: true }),
    inspect: async () => Promise.reject(failure),
    forget: async () => Promise.reject(failure),
    forgetChecksLease: true,
  };
  const id = recordId('ops-own-failure', 'o-1');
  for (const call of [
    () => inspectRecord({ store: own, id }),
    () => forgetRecord({ store: own, id }),
    () => forgetRecord({ store: own, id, leaseUntil: T0 }),
  ]) {
    expect(await rejection(call())).toBe(failure);
  }
});

test('a misspelt option or a second address is refused before anything is deleted', async () => {
  const { once } = counted('forget-strict');
  await once({ orderId: 'o-1', amount: 5 });
  const id = recordId('forget-strict', 'o-1');
  // Silently ignored, `onlyif` would delete the COMPLETED record unconditionally.
  await expect(forgetRecord({ store, id, onlyif: 'INPROGRESS' } as never)).rejects.toThrow(
    new TypeError('forgetRecord: unknown option `onlyif`. Known options: store, name, key, http, id, tenant, onlyIf, leaseUntil.'),
  );
  await expect(inspectRecord({ store, id, onlyIf: 'INPROGRESS' } as never)).rejects.toThrow('inspectRecord: unknown option `onlyIf`');
  // An id already names its namespace: a `name` beside it is a contradiction, not a detail to drop.
  expect(() => recordIdOf({ name: 'other', id })).toThrow('`id` already holds the namespace: leave out `name`.');
  // … and its tenant: a `tenant` beside it would not scope it, and another tenant's record would go.
  await expect(forgetRecord({ store, id, tenant: 'tenant-b' } as never)).rejects.toThrow(new TypeError('`id` already holds the tenant: leave out `tenant`.'));
  expect(await readItem(client, tableName, id)).toBeDefined();
});
