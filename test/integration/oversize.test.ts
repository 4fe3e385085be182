/**
 * Outcomes that do not fit DynamoDB's 400 KB item, on DynamoDB Local: the call completes all the
 * same — without its response, or with its final error cut short — in plain, transactional and
 * atomic mode, so the function never runs twice and its writes commit once. The size is decided
 * before sending; a refusal DynamoDB still makes is retried once with the smallest outcome.
 */

import { randomUUID } from 'node:crypto';
import type { DynamoDBClient, TransactWriteItem } from '@aws-sdk/client-dynamodb';
import { DynamoDBStore, IdempotencyError, makeIdempotent } from '../../lib/index.js';
import { MODES, type Mode, T0, useCountingTables } from '../support/counting-function.js';
import { endpoint, readItem, recordId } from '../support/dynamodb.js';
import { faultyClient } from '../support/faults.js';
import { aesKey, keyring } from '../support/keyring.js';
import { rejection, thrown } from '../support/rejections.js';
import { ITEM_LIMIT, jsonOfSize, transactionLimitTests, useProbedClients } from '../support/transaction-limits.js';
import { collectingLogger, omittedMessage } from '../support/warnings.js';

const { client: admin, tableName, bizTable, applied: counterOf, countingFunction } = useCountingTables('oversize');
const { probedClient, destroyLater } = useProbedClients();

function fixture<R>(
  mode: Mode,
  body: () => R,
  options: { encrypted?: boolean; keyId?: string; errorFields?: string[]; cacheSize?: number; client?: DynamoDBClient } = {},
) {
  const probed = probedClient();
  const { commands } = probed;
  const client = options.client ?? probed.client;
  const store = new DynamoDBStore({
    tableName,
    client,
    compressAboveBytes: ITEM_LIMIT, // never compress: the response is stored as it is, or not at all
    ...(options.encrypted ? { encryption: keyring(aesKey(options.keyId ?? 'k1')).encryption } : {}),
  });
  const { logger, omitted } = collectingLogger();
  const f = countingFunction(mode, store, body, { ...options, logger });
  return { ...f, commands, omitted, recordId: (id: string) => recordId(f.name, id) };
}

const SENT: Record<Mode, string[]> = {
  plain: ['PutItemCommand', 'UpdateItemCommand'],
  transactions: ['PutItemCommand', 'TransactWriteItemsCommand'],
  atomic: ['TransactWriteItemsCommand'],
};

describe.each(MODES)('%s mode', (mode) => {
  test('a 409,550-byte response completes the record without it, in one request with the writes; duplicates get RESPONSE_NOT_STORED', async () => {
    const big = jsonOfSize(409_550);
    const f = fixture(mode, () => big);
    expect(await f.fn({ id: 'a' })).toBe(big);
    expect(f.commands).toEqual(SENT[mode]); // the size was decided before sending: no refused request
    const item = await f.record('a');
    expect(item?.status?.S).toBe('COMPLETED');
    expect(item?.responseOmitted?.BOOL).toBe(true);
    expect(item?.response).toBeUndefined();
    // An operator learns of it as the record completes, not only from a duplicate's 409.
    expect(f.omitted()).toEqual([{ level: 'WARN', message: omittedMessage('size'), namespace: f.name, recordId: f.recordId('a') }]);
    f.pastLease();
    expect((await rejection(f.fn({ id: 'a' }))).code).toBe('RESPONSE_NOT_STORED');
    expect(f.omitted()).toHaveLength(1); // the duplicate completed nothing (an atomic one's commit met the record)
    expect(f.runs()).toBe(mode === 'atomic' ? 2 : 1); // an atomic duplicate re-runs its pure handler; its writes are cancelled
    if (mode !== 'plain') expect(await f.counter('a')).toBe(1);
  });

  test('a response 600 bytes short of the item limit is stored and replays', async () => {
    const big = jsonOfSize(ITEM_LIMIT - 600);
    const f = fixture(mode, () => big);
    await f.fn({ id: 'b' });
    expect((await f.record('b'))?.response?.S).toBe(JSON.stringify(big));
    expect(await f.fn({ id: 'b' })).toBe(big);
  });

  test('an encrypted response too large for the item completes without it', async () => {
    const big = jsonOfSize(ITEM_LIMIT - 100); // fits as text, not once sealed with its key id
    const f = fixture(mode, () => big, { encrypted: true });
    expect(await f.fn({ id: 'c' })).toBe(big);
    expect((await f.record('c'))?.responseOmitted?.BOOL).toBe(true);
    expect(f.omitted()).toEqual([{ level: 'WARN', message: omittedMessage('size'), namespace: f.name, recordId: f.recordId('c') }]);
    f.pastLease();
    expect((await rejection(f.fn({ id: 'c' }))).code).toBe('RESPONSE_NOT_STORED');
  });

  test('an encrypted response that fits once sealed but not beside its key id is left out before sending, not refused by DynamoDB', async () => {
    const big = jsonOfSize(ITEM_LIMIT - 600); // stored as text (above); sealed too, but for a key id of 1,000 characters
    const f = fixture(mode, () => big, { encrypted: true, keyId: 'k'.repeat(1000) });
    expect(await f.fn({ id: 'd' })).toBe(big);
    expect(f.commands).toEqual(SENT[mode]); // the size was decided before sending: no refused request
    expect((await f.record('d'))?.responseOmitted?.BOOL).toBe(true);
    expect(f.omitted()).toEqual([{ level: 'WARN', message: omittedMessage('size'), namespace: f.name, recordId: f.recordId('d') }]);
  });
});

describe.each(MODES)('%s mode: a final error larger than the item', (mode) => {
  const hugeError =
    (message: string, fields: Record<string, unknown> = {}) =>
    () => {
      throw Object.assign(new Error(message), { name: 'DeclinedError', code: 'DECLINED', ...fields });
    };

  test.each([
    ['a 500 KB message', 'm'.repeat(500_000)],
    ['a message of 400,000 emoji (never split)', '😀'.repeat(400_000)],
    ['a message of quotes and control characters (longer once escaped)', '"\u0001'.repeat(150_000)],
  ])('%s is stored cut short, with its name and code; duplicates get it and the function ran once', async (_what, message) => {
    const f = fixture(mode, hugeError(message));
    expect((await thrown(f.fn({ id: 'e' }))).message).toBe(message); // the caller gets its own error whole
    const item = await f.record('e');
    expect(item?.status?.S).toBe('COMPLETED');
    expect(f.omitted()).toEqual([]); // stored cut short: nothing is lost to duplicates
    f.pastLease();
    const replayed = await thrown(f.fn({ id: 'e' }));
    expect(replayed).not.toBeInstanceOf(IdempotencyError);
    expect(replayed.name).toBe('DeclinedError');
    expect(replayed.code).toBe('DECLINED');
    expect(replayed.message.endsWith('…')).toBe(true);
    expect(replayed.message.length).toBeGreaterThan(100_000);
    expect(message.startsWith(replayed.message.slice(0, -1))).toBe(true);
    expect(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(replayed.message)).toBe(false);
    if (mode !== 'atomic') expect(f.runs()).toBe(1);
    if (mode !== 'plain') expect(await f.counter('e')).toBe(0); // a final error's writes are discarded
  });

  test.each([
    ['plain', false],
    ['encrypted', true],
  ])('%s: a duplicate answered from the local cache gets the error as stored, cut short, as other containers do', async (_what, encrypted) => {
    const f = fixture(mode, hugeError('c'.repeat(450_000)), { encrypted, cacheSize: 10 });
    expect((await thrown(f.fn({ id: 'h' }))).message).toHaveLength(450_000); // the caller gets its own error whole
    const fromCache = await thrown(f.fn({ id: 'h' }));
    f.pastLease();
    const fromStore = await thrown(f.fn({ id: 'h' }));
    // Compared by length and ending: a failure would print the whole 450 KB message.
    expect(fromCache.message.length).toBeGreaterThan(100_000);
    expect(fromCache.message.length).toBeLessThan(450_000);
    expect(fromCache.message.endsWith('c…')).toBe(true);
    expect(fromCache.message === fromStore.message).toBe(true);
    expect(f.runs()).toBe(1);
  });

  test('a completion whose answer was lost, resent onto its own record: a duplicate from the local cache gets the error as stored, cut short', async () => {
    const { client, faults } = faultyClient(endpoint());
    destroyLater(client);
    // The completion is applied and its answer lost; the SDK's retry meets the call's own COMPLETED record.
    faults.schedule({ operations: [mode === 'atomic' ? 'TransactWriteItems' : 'UpdateItem'], fault: { kind: 'drop-response', error: 'ECONNRESET' } });
    const f = fixture(mode, hugeError('c'.repeat(450_000)), { cacheSize: 10, client });
    expect((await thrown(f.fn({ id: 'l' }))).message).toHaveLength(450_000);
    expect(faults.injected).toHaveLength(1);
    const fromCache = await thrown(f.fn({ id: 'l' }));
    f.pastLease();
    const fromStore = await thrown(f.fn({ id: 'l' }));
    expect(fromStore.message.length).toBeLessThan(450_000);
    expect(fromCache.message === fromStore.message).toBe(true);
    expect(f.runs()).toBe(1);
  });

  test('large fields are dropped, small ones (a statusCode, primitive values) and the message kept whole', async () => {
    const fields = {
      detail: 'd'.repeat(450_000),
      lines: ['x'],
      statusCode: 422,
      retryable: false,
      reason: 'card_declined',
      nothing: null,
      long: 'l'.repeat(300),
    };
    const f = fixture(mode, hugeError('declined', fields), { errorFields: Object.keys(fields) });
    await thrown(f.fn({ id: 'f' }));
    f.pastLease();
    const replayed = await thrown(f.fn({ id: 'f' }));
    expect(replayed).toMatchObject({
      name: 'DeclinedError',
      message: 'declined',
      code: 'DECLINED',
      statusCode: 422,
      retryable: false,
      reason: 'card_declined',
      nothing: null,
    });
    // A large value, cut, would be another value: it is dropped, as are objects and arrays.
    for (const dropped of ['detail', 'lines', 'long']) expect(replayed[dropped]).toBeUndefined();
  });

  test('a huge message beside small fields: the message is cut short, the statusCode and small fields kept, so an HTTP duplicate gets the same 4xx', async () => {
    const f = fixture(mode, hugeError('m'.repeat(500_000), { statusCode: 409, expose: true, detail: 'd'.repeat(100_000) }), {
      errorFields: ['statusCode', 'expose', 'detail'],
    });
    await thrown(f.fn({ id: 'k' }));
    f.pastLease();
    const replayed = await thrown(f.fn({ id: 'k' }));
    expect(replayed).toMatchObject({ name: 'DeclinedError', code: 'DECLINED', statusCode: 409, expose: true });
    expect(replayed.detail).toBeUndefined();
    expect(replayed.message).toMatch(/^m{100000,}…$/);
    if (mode !== 'atomic') expect(f.runs()).toBe(1);
  });

  test('encrypted: the sealed error is cut short to fit', async () => {
    const f = fixture(mode, hugeError('s'.repeat(450_000)), { encrypted: true });
    await thrown(f.fn({ id: 'g' }));
    expect((await f.record('g'))?.error?.B).toBeDefined();
    f.pastLease();
    const replayed = await thrown(f.fn({ id: 'g' }));
    expect(replayed.code).toBe('DECLINED');
    expect(replayed.message).toMatch(/^s{100000,}…$/);
  });
});

describe('a refusal the size estimate did not foresee (a fingerprint larger than the room kept for it)', () => {
  const expiresAt = T0 / 1000 + 86_400;
  const claimWithLargeFingerprint = async (store: DynamoDBStore, key: string) =>
    store.claim({ key, owner: 'me', leaseUntil: T0 + 60_000, expiresAt, now: T0, fingerprint: 'f'.repeat(8_000) });
  const response = JSON.stringify(jsonOfSize(ITEM_LIMIT - 1_000));

  test('complete: DynamoDB refuses the item (ValidationException); it is sent once more without the response and completes', async () => {
    const { client, commands } = probedClient();
    const store = new DynamoDBStore({ tableName, client, compressAboveBytes: ITEM_LIMIT });
    const key = `refused#${randomUUID()}`;
    await claimWithLargeFingerprint(store, key);
    expect(await store.complete({ key, owner: 'me', expiresAt, response })).toStrictEqual({ completed: true, responseStored: false });
    expect(commands).toEqual(['PutItemCommand', 'UpdateItemCommand', 'UpdateItemCommand']);
    expect((await readItem(admin, tableName, key))?.responseOmitted?.BOOL).toBe(true);
  });

  test('complete with a final error: DynamoDB refuses the item; it is sent once more with the error cut to 1 KB (name and code kept) and completes', async () => {
    const { client, commands } = probedClient();
    const store = new DynamoDBStore({ tableName, client });
    const key = `refused#${randomUUID()}`;
    await claimWithLargeFingerprint(store, key);
    const error = JSON.stringify({ name: 'DeclinedError', message: 'd'.repeat(ITEM_LIMIT - 1_000), code: 'DECLINED' });
    expect(await store.complete({ key, owner: 'me', expiresAt, response: undefined, error })).toMatchObject({ completed: true, responseStored: true });
    expect(commands).toEqual(['PutItemCommand', 'UpdateItemCommand', 'UpdateItemCommand']);
    const stored = (await readItem(admin, tableName, key))?.error?.S;
    expect(Buffer.byteLength(stored!)).toBeLessThanOrEqual(1024);
    expect(JSON.parse(stored!)).toMatchObject({ name: 'DeclinedError', code: 'DECLINED', message: expect.stringMatching(/^d+…$/) });
  });

  test('completeWithWrites: DynamoDB cancels with ValidationError at the record; it is sent once more without the response, with the writes', async () => {
    const { client, commands } = probedClient();
    const store = new DynamoDBStore({ tableName, client, compressAboveBytes: ITEM_LIMIT });
    const key = `refused#${randomUUID()}`;
    const counter = `refused-${randomUUID()}`;
    const increment: TransactWriteItem = {
      Update: { TableName: bizTable, Key: { id: { S: counter } }, UpdateExpression: 'ADD n :one', ExpressionAttributeValues: { ':one': { N: '1' } } },
    };
    await claimWithLargeFingerprint(store, key);
    expect(await store.completeWithWrites({ key, owner: 'me', expiresAt, response }, [increment])).toStrictEqual({ completed: true, responseStored: false });
    expect(commands).toEqual(['PutItemCommand', 'TransactWriteItemsCommand', 'TransactWriteItemsCommand']);
    const item = await readItem(admin, tableName, key);
    expect(item?.status?.S).toBe('COMPLETED');
    expect(item?.responseOmitted?.BOOL).toBe(true);
    expect(await counterOf(counter)).toBe(1);
  });

  test('a business write that is itself too large is TRANSACTION_INVALID: nothing is written', async () => {
    const { client, commands } = probedClient();
    const store = new DynamoDBStore({ tableName, client });
    const key = `refused#${randomUUID()}`;
    const huge: TransactWriteItem = { Put: { TableName: bizTable, Item: { id: { S: `huge-${randomUUID()}` }, blob: { S: 'z'.repeat(ITEM_LIMIT) } } } };
    await store.claim({ key, owner: 'me', leaseUntil: T0 + 60_000, expiresAt, now: T0 });
    const error = await rejection(store.completeWithWrites({ key, owner: 'me', expiresAt, response: '1' }, [huge]));
    expect(error.code).toBe('TRANSACTION_INVALID');
    // DynamoDB refuses the request as a whole without naming the item: the record's smallest form is tried once.
    expect(commands).toEqual(['PutItemCommand', 'TransactWriteItemsCommand', 'TransactWriteItemsCommand']);
    expect((await readItem(admin, tableName, key))?.status?.S).toBe('INPROGRESS');
  });
});

describe('the room left for the outcome', () => {
  const expiresAt = T0 / 1000 + 86_400;

  test('a response that fills the room left beside a 64-character fingerprint to the byte is stored and replays, in one request', async () => {
    const { client, commands } = probedClient();
    const store = new DynamoDBStore({ tableName, client, compressAboveBytes: ITEM_LIMIT });
    const key = `exact#${randomUUID()}`;
    const owner = 'owner-exact';
    const fingerprint = 'f'.repeat(64); // SHA-256 in hex, as the engine writes it
    await store.claim({ key, owner, leaseUntil: T0 + 60_000, expiresAt, now: T0, fingerprint });
    // The COMPLETED item's other attributes, names included; DynamoDB counts a number as at most one byte more than its digits.
    const others =
      'id'.length +
      key.length +
      'status'.length +
      'COMPLETED'.length +
      'expiration'.length +
      String(expiresAt).length +
      1 +
      'owner'.length +
      owner.length +
      'fingerprint'.length +
      64;
    const exact = JSON.stringify(jsonOfSize(ITEM_LIMIT - others - 'response'.length));
    expect(await store.complete({ key, owner, expiresAt, response: exact })).toStrictEqual({ completed: true, responseStored: true });
    expect(commands).toEqual(['PutItemCommand', 'UpdateItemCommand']);
    expect((await readItem(admin, tableName, key))?.response?.S).toBe(exact);
    const replay = await store.claim({ key, owner: 'owner-late', leaseUntil: T0 + 120_000, expiresAt, now: T0 + 61_000, fingerprint });
    expect(replay.claimed === false && replay.record.response).toBe(exact);
  });
});

describe.each(['transactions', 'atomic'] as const)("%s mode: a transaction over DynamoDB's limits (4 MB, 100 actions)", (mode) => {
  describe('makeIdempotent', () =>
    transactionLimitTests(mode, { admin, tableName, bizTable, probedClient }, (body, options, name) => makeIdempotent(body, { ...options, name })));
});
