/**
 * Ambiguous writes against a real DynamoDB Local: the request reaches the server and is applied,
 * its response is lost (a reset connection, a timeout, a 500 after the write), and the SDK retries
 * it. The retry meets the attempt's own result and must read it as success; only a record owned by
 * someone else is IN_PROGRESS or SUPERSEDED. The fault layer sits between the SDK and DynamoDB Local.
 */
import { type AttributeValue, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { jest } from '@jest/globals';
import middy from '@middy/core';
import { DynamoDBStore, type HttpResult, httpIdempotency, type IdempotencyEvent, idempotency, makeIdempotent, transaction } from '../../lib/index.js';
import { endpoint, readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { type Fault, faultyClient } from '../support/faults.js';
import { gate, Turnstile } from '../support/gate.js';
import { aesKey, keyring } from '../support/keyring.js';
import { lambdaContext } from '../support/lambda.js';
import { paymentRequest } from '../support/payment-request.js';
import { thrown } from '../support/rejections.js';
import { collectingLogger, omittedMessage } from '../support/warnings.js';

const T0 = 1_700_000_000_000;
const { client, faults } = faultyClient(endpoint());
const { client: inspect, tableName, store } = useFreshTable({ storeClient: client });
afterEach(() => {
  faults.clear();
});
afterAll(() => client.destroy());

const item = (namespace: string, key: unknown): Promise<Record<string, AttributeValue> | undefined> => readItem(inspect, tableName, recordId(namespace, key));

/** An update that adds 1 to the counter item `id`. */
const increment = (id: string) => ({ TableName: tableName, Key: { id }, UpdateExpression: 'ADD n :one', ExpressionAttributeValues: { ':one': 1 } });

/** A logger whose warnings (bookkeeping failures) the test inspects. */
const silentLogger = () => ({ warn: jest.fn<(message: string) => void>() });

/** The three ways a response gets lost after the server applied the write. */
const LOST: ReadonlyArray<[string, Fault]> = [
  ['a reset connection', { kind: 'drop-response', error: 'ECONNRESET' }],
  ['a timeout', { kind: 'drop-response', error: 'TimeoutError' }],
  ['a 500 after the write', { kind: 'server-error', applied: true }],
];

describe.each(LOST)('a response lost to %s', (label, fault) => {
  const ns = (step: string): string => `${step}-${label.replace(/\W+/g, '-')}`;

  test('claim: the SDK retry meets our own record, which we hold: the function runs once, no IN_PROGRESS', async () => {
    const name = ns('claim');
    const logger = silentLogger();
    let runs = 0;
    const once = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store, name, logger });
    faults.schedule({ operations: ['PutItem'], fault });

    expect(await once('k')).toEqual({ id: 'k', run: 1 });
    expect(faults.injected).toEqual([{ operation: 'PutItem', attempt: 1, kind: fault.kind }]);
    expect(faults.attemptsOf('PutItem')).toBe(2); // the retry really happened, and met the applied claim
    expect(await item(name, 'k')).toMatchObject({ status: { S: 'COMPLETED' }, response: { S: '{"id":"k","run":1}' } });
    expect(await once('k')).toEqual({ id: 'k', run: 1 });
    expect(runs).toBe(1);
    expect(logger.warn).not.toHaveBeenCalled();
  });

  test('complete: the retry meets our own COMPLETED record: the caller gets the result, the record is COMPLETED', async () => {
    const name = ns('complete');
    const logger = silentLogger();
    let runs = 0;
    const once = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store, name, logger });
    faults.schedule({ operations: ['UpdateItem'], fault });

    expect(await once('k')).toEqual({ id: 'k', run: 1 });
    expect(faults.injected).toEqual([{ operation: 'UpdateItem', attempt: 1, kind: fault.kind }]);
    expect(faults.attemptsOf('UpdateItem')).toBe(2);
    const record = await item(name, 'k');
    expect(record).toMatchObject({ status: { S: 'COMPLETED' }, response: { S: '{"id":"k","run":1}' } });
    expect(record).not.toHaveProperty('leaseUntil');
    expect(await once('k')).toEqual({ id: 'k', run: 1 });
    expect(runs).toBe(1);
    expect(logger.warn).not.toHaveBeenCalled();
  });

  test('release: the retry finds no record, which means released: the caller gets its own error and a rerun works', async () => {
    const name = ns('release');
    const logger = silentLogger();
    const failure = new Error('card network down');
    let runs = 0;
    const once = makeIdempotent(
      async (id: string) => {
        if (++runs === 1) throw failure;
        return { id, run: runs };
      },
      { store, name, logger },
    );
    faults.schedule({ operations: ['DeleteItem'], fault });

    await expect(once('k')).rejects.toBe(failure);
    expect(faults.injected).toEqual([{ operation: 'DeleteItem', attempt: 1, kind: fault.kind }]);
    expect(faults.attemptsOf('DeleteItem')).toBe(2);
    expect(await item(name, 'k')).toBeUndefined();
    expect(await once('k')).toEqual({ id: 'k', run: 2 });
    expect(await once('k')).toEqual({ id: 'k', run: 2 });
    expect(runs).toBe(2);
    expect(logger.warn).not.toHaveBeenCalled();
  });
});

test('through middy, a claim and a completion both losing their responses: one run, the response stored and replayed', async () => {
  let runs = 0;
  const handler = middy(async (event: { id: string }) => ({ id: event.id, run: ++runs })).use(
    idempotency({ store, key: (event: { id: string }) => event.id, logger: silentLogger() }),
  );
  const context = lambdaContext('middy-lost');
  faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response', error: 'TimeoutError' } });
  faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'drop-response', error: 'ECONNRESET' } });

  expect(await handler({ id: 'm' }, context)).toEqual({ id: 'm', run: 1 });
  expect(await handler({ id: 'm' }, context)).toEqual({ id: 'm', run: 1 });
  expect(faults.injected.map((f) => f.operation)).toEqual(['PutItem', 'UpdateItem']);
  expect(await item('middy-lost', 'm')).toMatchObject({ status: { S: 'COMPLETED' } });
  expect(runs).toBe(1);
});

test("a completion with the call's own writes whose response is lost applies the writes once", async () => {
  const counter = { id: { S: 'ambiguous-counter' } };
  let runs = 0;
  const once = makeIdempotent(
    async (id: string) => {
      runs++;
      transaction().update(increment('ambiguous-counter'));
      return { id };
    },
    { store, name: 'tx-lost', transactions: true, logger: silentLogger() },
  );
  faults.schedule({ operations: ['TransactWriteItems'], fault: { kind: 'drop-response', error: 'ECONNRESET' } });

  expect(await once('t')).toEqual({ id: 't' });
  expect(faults.attemptsOf('TransactWriteItems')).toBe(2);
  expect(await once('t')).toEqual({ id: 't' });
  const row = await inspect.send(new GetItemCommand({ TableName: tableName, Key: counter, ConsistentRead: true }));
  expect(row.Item?.n).toEqual({ N: '1' });
  expect(await item('tx-lost', 't')).toMatchObject({ status: { S: 'COMPLETED' } });
  expect(runs).toBe(1);
});

test('httpIdempotency: a commit that never reached DynamoDB is settled by the release: 503 with Retry-After: 1, and the retry with the same key runs and writes once', async () => {
  let runs = 0;
  const pay = middy(async (): Promise<HttpResult> => {
    runs++;
    transaction().update(increment('http-unsent-counter'));
    return { statusCode: 201, body: 'paid' };
  }).use(httpIdempotency({ store, name: 'http-unsent', logger: silentLogger() }));
  faults.schedule({ operations: ['TransactWriteItems'], fault: { kind: 'reset' }, attempts: 'all' });

  const refused = await pay(paymentRequest('k-1'), lambdaContext('http-unsent'));
  expect([refused.statusCode, refused.headers?.['Retry-After']]).toEqual([503, '1']);
  faults.clear();
  expect((await pay(paymentRequest('k-1'), lambdaContext('http-unsent'))).statusCode).toBe(201);
  expect(runs).toBe(2);
  expect((await readItem(inspect, tableName, 'http-unsent-counter'))?.n).toEqual({ N: '1' });
});

test("atomic mode: a one-round-trip transaction whose response is lost applies once (the SDK's retry carries its ClientRequestToken)", async () => {
  let runs = 0;
  const once = makeIdempotent(
    async (id: string) => {
      runs++;
      transaction().put({ TableName: tableName, Item: { id: `atomic-effect-${id}`, run: runs } });
      return { id, run: runs };
    },
    { store, name: 'atomic-lost', atomic: true, logger: silentLogger() },
  );
  faults.schedule({ operations: ['TransactWriteItems'], fault: { kind: 'server-error', applied: true } });

  expect(await once('a')).toEqual({ id: 'a', run: 1 });
  expect(faults.attemptsOf('TransactWriteItems')).toBe(2);
  expect(await item('atomic-lost', 'a')).toMatchObject({ status: { S: 'COMPLETED' }, response: { S: '{"id":"a","run":1}' } });
  expect(await readItem(inspect, tableName, 'atomic-effect-a')).toMatchObject({ run: { N: '1' } });
});

test('atomic mode: a resent transaction that meets its own COMPLETED record (a retry DynamoDB does not match by its token) gives the caller its own result, not a replay', async () => {
  // The first send applies; the second, a new request, is refused by the record the first wrote.
  const resent = Object.assign(Object.create(store) as typeof store, {
    claimCompleted: async (...args: Parameters<typeof store.claimCompleted>) => {
      await store.claimCompleted(...args);
      return store.claimCompleted(...args);
    },
  });
  const results = { plain: { charged: true }, unstorable: { charged: 1n } };
  const { logger, omitted } = collectingLogger();
  const once = makeIdempotent(async (id: keyof typeof results) => results[id], { store: resent, name: 'atomic-resent', atomic: true, logger });

  expect(await once('plain')).toBe(results.plain);
  // Its response could not be stored: the caller still gets its own result, not RESPONSE_NOT_STORED.
  expect(await once('unstorable')).toBe(results.unstorable);
  expect(await item('atomic-resent', 'unstorable')).toMatchObject({ status: { S: 'COMPLETED' }, responseOmitted: { BOOL: true } });
  // One warning for the one completion, though both sends reached the record.
  expect(omitted()).toEqual([
    { level: 'WARN', message: omittedMessage('json'), namespace: 'atomic-resent', recordId: recordId('atomic-resent', 'unstorable') },
  ]);
});

test("atomic mode, encrypted: a resent transaction that meets its own COMPLETED record while the key provider fails gives the caller its own result, not STORE_FAILURE's 'nothing was written'", async () => {
  const ring = keyring(aesKey('k1'));
  const encrypted = new DynamoDBStore({ tableName, client, encryption: ring.encryption });
  // The first send applies; the key provider then fails, and the second send meets the first one's record.
  const resent = Object.assign(Object.create(encrypted) as typeof encrypted, {
    claimCompleted: async (...args: Parameters<typeof encrypted.claimCompleted>) => {
      await encrypted.claimCompleted(...args);
      ring.failById = 'throws';
      return encrypted.claimCompleted(...args);
    },
  });
  const once = makeIdempotent(
    async (id: string) => {
      transaction().update(increment(`atomic-sealed-${id}`));
      return { charged: id };
    },
    { store: resent, name: 'atomic-sealed', atomic: true },
  );

  expect(await once('a')).toEqual({ charged: 'a' });
  expect((await readItem(inspect, tableName, 'atomic-sealed-a'))?.n).toEqual({ N: '1' });
  expect(await item('atomic-sealed', 'a')).toMatchObject({ status: { S: 'COMPLETED' } });
});

test('atomic mode: a transaction that loses every response is COMMIT_FAILED (it may have applied; there is no record to release); a retry replays what it applied, its writes once', async () => {
  let runs = 0;
  const events: IdempotencyEvent[] = [];
  const once = makeIdempotent(
    async (id: string) => {
      runs++;
      transaction().update(increment(`atomic-unknown-${id}`));
      return { id, run: runs };
    },
    { store, name: 'atomic-unknown', atomic: true, logger: silentLogger(), observability: (event) => void events.push(event) },
  );
  faults.schedule({ operations: ['TransactWriteItems'], fault: { kind: 'drop-response' }, attempts: 'all' });
  const error = await thrown(once('a'));
  expect(error.code).toBe('COMMIT_FAILED');
  expect(error.message).toMatch(/may or may not be applied/);
  // Counted as a store failure (the commit is the claim), although this one applied: the
  // StoreFailures alarm cannot say that nothing of an atomic call was written.
  expect(events).toEqual(['storeFailure']);
  faults.clear();

  // The pure function runs again; its commit meets the record the lost one wrote.
  expect(await once('a')).toEqual({ id: 'a', run: 1 });
  expect(runs).toBe(2);
  expect(events).toEqual(['storeFailure', 'replay']);
  expect((await readItem(inspect, tableName, 'atomic-unknown-a'))?.n).toEqual({ N: '1' });
});

test("a lost claim whose retry arrives after another attempt took the key over meets the other's record: IN_PROGRESS, the function runs once", async () => {
  const clock = { now: T0 };
  const turnstile = new Turnstile<string>();
  const once = makeIdempotent(async (_id: string) => turnstile.enter(), {
    store,
    name: 'claim-late-retry',
    leaseSeconds: 5,
    now: () => clock.now,
    singleFlight: false,
  }); // the second call stands for another process
  const retryArrived = gate();
  const releaseRetry = gate();
  faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response' } });
  faults.schedule({
    operations: ['PutItem'],
    fault: { kind: 'latency', until: releaseRetry.promise },
    attempt: 2,
    where: () => (retryArrived.open(), true),
  });

  const a = once('k');
  await retryArrived.promise; // A's claim is applied, its response lost, its retry held
  const ofA = await item('claim-late-retry', 'k');
  expect(ofA).toMatchObject({ status: { S: 'INPROGRESS' } });

  clock.now = T0 + 5_001; // A's lease has ended: B takes the key over
  const b = once('k');
  const holderB = await turnstile.next();
  const ofB = await item('claim-late-retry', 'k');
  expect(ofB!.owner!.S).not.toBe(ofA!.owner!.S);

  releaseRetry.open();
  expect(await thrown(a)).toMatchObject({ code: 'IN_PROGRESS' });
  expect(await item('claim-late-retry', 'k')).toStrictEqual(ofB);
  holderB.open('B');
  expect(await b).toBe('B');
  expect(turnstile.count).toBe(1);
});

test("a lost release whose retry arrives after another attempt claimed the key leaves the other's record alone, and is no superseded attempt: its lease had not ended, so nothing took it over", async () => {
  const turnstile = new Turnstile<() => string>();
  const events: IdempotencyEvent[] = [];
  const once = makeIdempotent(async (_id: string) => (await turnstile.enter())(), {
    store,
    name: 'release-late-retry',
    logger: silentLogger(),
    singleFlight: false,
    observability: (event) => void events.push(event),
  }); // the second call stands for another process
  const retryArrived = gate();
  const releaseRetry = gate();
  faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'drop-response', error: 'TimeoutError' } });
  faults.schedule({
    operations: ['DeleteItem'],
    fault: { kind: 'latency', until: releaseRetry.promise },
    attempt: 2,
    where: () => (retryArrived.open(), true),
  });

  const failure = new Error('A failed');
  const a = once('k');
  (await turnstile.next()).open(() => {
    throw failure;
  });
  await retryArrived.promise; // A's record is deleted, the response lost, the retry held
  expect(await item('release-late-retry', 'k')).toBeUndefined();

  const b = once('k');
  const holderB = await turnstile.next();
  const ofB = await item('release-late-retry', 'k');
  expect(ofB).toMatchObject({ status: { S: 'INPROGRESS' } });

  releaseRetry.open();
  await expect(a).rejects.toBe(failure);
  expect(await item('release-late-retry', 'k')).toStrictEqual(ofB);
  holderB.open(() => 'B');
  expect(await b).toBe('B');
  expect(await item('release-late-retry', 'k')).toMatchObject({ status: { S: 'COMPLETED' }, owner: ofB!.owner });
  // Two misses: A's claim and B's, made once A's record was gone. No takeover, so no Superseded alarm.
  expect(events).toEqual(['miss', 'miss']);
});

test('a claim that loses every response fails closed (STORE_FAILURE, nothing ran) and releases what it may have claimed; the next call runs once', async () => {
  const clock = { now: T0 };
  let runs = 0;
  const once = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store, name: 'claim-all-lost', leaseSeconds: 5, now: () => clock.now });
  faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response' }, attempts: 'all' });

  expect(await thrown(once('k'))).toMatchObject({ code: 'STORE_FAILURE' });
  expect(faults.injected).toHaveLength(3);
  expect(runs).toBe(0);
  // The first attempt was applied, but its owner released it after the failure: nothing holds the key.
  expect(await item('claim-all-lost', 'k')).toBeUndefined();
  expect(await once('k')).toEqual({ id: 'k', run: 1 });
  expect(await once('k')).toEqual({ id: 'k', run: 1 });
  expect(runs).toBe(1);
});

test('a claim DynamoDB throttled on every attempt applied nothing: no release is sent after it, to a table that throttles every request', async () => {
  let runs = 0;
  const once = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store, name: 'claim-all-throttled', leaseSeconds: 5, now: () => T0 });
  faults.schedule({ operations: ['PutItem', 'DeleteItem'], fault: { kind: 'throttle' }, requests: 100, attempts: 'all' });

  expect(await thrown(once('k'))).toMatchObject({ code: 'STORE_FAILURE' });
  expect(faults.attemptsOf('PutItem')).toBe(3);
  expect(faults.attemptsOf('DeleteItem')).toBe(0);
  expect(runs).toBe(0);
  faults.clear();
  expect(await once('k')).toEqual({ id: 'k', run: 1 });
});

test('a claim refused by the record of another attempt that cannot be read (its outcome not gzip) applied nothing: STORE_FAILURE, and no release is sent after it', async () => {
  const name = 'claim-refused-unreadable';
  await inspect.send(
    new PutItemCommand({
      TableName: tableName,
      Item: {
        id: { S: recordId(name, 'k') },
        status: { S: 'COMPLETED' },
        owner: { S: 'another-attempt' },
        expiration: { N: String(T0 / 1000 + 3_600) },
        response: { B: Uint8Array.of(1, 2, 3) },
      },
    }),
  );
  let runs = 0;
  const once = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store, name, now: () => T0 });
  expect(await thrown(once('k'))).toMatchObject({ code: 'STORE_FAILURE' });
  expect(faults.attemptsOf('PutItem')).toBe(1);
  expect(faults.attemptsOf('DeleteItem')).toBe(0);
  expect(runs).toBe(0);
  expect(await item(name, 'k')).toMatchObject({ owner: { S: 'another-attempt' } });
});

test('a claim whose first attempt may have applied (its answer lost) and whose retries were throttled releases what it may have claimed, sent again while throttled', async () => {
  let runs = 0;
  const once = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store, name: 'claim-lost-then-throttled', leaseSeconds: 5, now: () => T0 });
  faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response' } });
  faults.schedule({ operations: ['PutItem'], fault: { kind: 'throttle' }, attempt: 2, attempts: 'all' });
  faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'throttle' }, attempts: 'all' });

  expect(await thrown(once('k'))).toMatchObject({ code: 'STORE_FAILURE' });
  expect(faults.attemptsOf('PutItem')).toBe(3);
  // The release's first send, throttled on its every attempt, then its resend, which deletes the claim.
  expect(faults.attemptsOf('DeleteItem')).toBe(4);
  expect(await item('claim-lost-then-throttled', 'k')).toBeUndefined();
  expect(runs).toBe(0);
  expect(await once('k')).toEqual({ id: 'k', run: 1 });
});

test('a completion that loses the response of every SDK attempt is sent again, meets its own COMPLETED record, and replays', async () => {
  const logger = silentLogger();
  let runs = 0;
  const once = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store, name: 'complete-all-lost', logger });
  faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'drop-response' }, attempts: 'all' });

  expect(await once('k')).toEqual({ id: 'k', run: 1 });
  expect(faults.injected).toHaveLength(3);
  // The store's resend (a fourth attempt, answered) met the record the first one applied: no warning.
  expect(faults.attemptsOf('UpdateItem')).toBe(4);
  expect(logger.warn).not.toHaveBeenCalled();
  expect(await item('complete-all-lost', 'k')).toMatchObject({ status: { S: 'COMPLETED' }, response: { S: '{"id":"k","run":1}' } });
  expect(await once('k')).toEqual({ id: 'k', run: 1 });
  expect(runs).toBe(1);
});
