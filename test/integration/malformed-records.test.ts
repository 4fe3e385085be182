/**
 * Items the store did not write (by hand, by another tool, or read under other attribute names)
 * against DynamoDB Local: a malformed item the claim may replace is replaced, and one it may not
 * fails closed with an error that names the record, what is wrong and how to remove it.
 */
import { type AttributeValue, type DynamoDBClient, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import { type DynamoDBStore, describeStoreFailure, forgetRecord, inspectRecord, makeIdempotent } from '../../lib/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { rejection } from '../support/rejections.js';

const T0 = 1_700_000_000_000;
const LIVE_EXPIRATION = { N: String(T0 / 1000 + 3600) };
const { client, tableName, store } = useFreshTable({ prefix: 'malformed' });
const lean = new LeanDynamoDBStore({ tableName, client });

let seq = 0;

/** A function made idempotent under a fresh namespace, with the item `item` already under the id of key 'k'. */
async function withItem(item: Record<string, AttributeValue>, on: DynamoDBStore | LeanDynamoDBStore = store) {
  const name = `malformed${++seq}`;
  const id = recordId(name, 'k');
  await client.send(new PutItemCommand({ TableName: tableName, Item: { id: { S: id }, ...item } }));
  let runs = 0;
  const once = makeIdempotent(async (_key: string) => ++runs, { store: on, name, now: () => T0 });
  return { id, name, once, runs: () => runs };
}

describe('a malformed item the claim may replace is replaced: the call runs once', () => {
  test.each<[string, Record<string, AttributeValue>]>([
    ['expired, without an owner', { status: { S: 'COMPLETED' }, expiration: { N: String(T0 / 1000 - 1) } }],
    ['expired, with a status this store never writes', { status: { S: 'EXPIRED' }, owner: { S: 'o' }, expiration: { N: String(T0 / 1000 - 1) } }],
    ['INPROGRESS past its lease, without an expiration', { status: { S: 'INPROGRESS' }, owner: { S: 'o' }, leaseUntil: { N: String(T0 - 1) } }],
  ])('%s', async (_case, item) => {
    for (const on of [store, lean]) {
      const f = await withItem(item, on);
      expect(await f.once('k')).toBe(1);
      expect(await f.once('k')).toBe(1);
      expect(f.runs()).toBe(1);
      expect((await readItem(client, tableName, f.id))?.status?.S).toBe('COMPLETED');
    }
  });
});

describe('a live malformed item fails closed, with an error that says what is wrong and how to remove it', () => {
  test.each<[string, Record<string, AttributeValue>, string]>([
    ['without an owner', { status: { S: 'COMPLETED' }, expiration: LIVE_EXPIRATION }, 'no `owner` string'],
    ['with a status this store never writes', { status: { S: 'DONE' }, owner: { S: 'o' }, expiration: LIVE_EXPIRATION }, '`status` is neither'],
    // Read as absent, the lease would hold the record until its retention, whatever it says.
    [
      'INPROGRESS with a lease that is not a number',
      { status: { S: 'INPROGRESS' }, owner: { S: 'o' }, expiration: LIVE_EXPIRATION, leaseUntil: { S: String(T0 - 1) } },
      '`leaseUntil` is not of type N',
    ],
    // Read as absent, each would change what is replayed: `undefined` for a call marked as completed without its response.
    [
      'with a responseOmitted that is not a boolean',
      { status: { S: 'COMPLETED' }, owner: { S: 'o' }, expiration: LIVE_EXPIRATION, responseOmitted: { S: 'true' } },
      '`responseOmitted` is not of type BOOL',
    ],
    [
      'with an errorOmitted that is not a boolean',
      { status: { S: 'COMPLETED' }, owner: { S: 'o' }, expiration: LIVE_EXPIRATION, responseOmitted: { BOOL: true }, errorOmitted: { S: 'true' } },
      '`errorOmitted` is not of type BOOL',
    ],
    [
      'with a fingerprint that is not a string',
      { status: { S: 'COMPLETED' }, owner: { S: 'o' }, expiration: LIVE_EXPIRATION, fingerprint: { N: '1' } },
      '`fingerprint` is not of type S',
    ],
    [
      'with a keyId that is not a string',
      { status: { S: 'COMPLETED' }, owner: { S: 'o' }, expiration: LIVE_EXPIRATION, keyId: { N: '1' } },
      '`keyId` is not of type S',
    ],
  ])('%s', async (_case, item, problem) => {
    const f = await withItem(item);
    const error = await rejection(f.once('k'));
    expect(error.code).toBe('STORE_FAILURE');
    expect(error.message).toBe('STORE_FAILURE: The idempotency store failed (UnreadableRecordError); the function did not run.');
    expect(describeStoreFailure(error.cause)).toBe('UnreadableRecordError');
    const cause = (error.cause as Error).message;
    expect(cause).toContain(`The idempotency record ${f.id} in ${tableName} is malformed`);
    expect(cause).toContain(problem);
    expect(cause).toContain(`lambda-idempotency forget --table ${tableName} --region local --id '${f.id}' --yes`); // the test client's Region
    expect(f.runs()).toBe(0);

    // inspect says the same, and forget removes it: the next call runs.
    const inspected = await rejection(inspectRecord({ store, id: f.id }));
    expect(inspected.code).toBe('STORE_FAILURE');
    expect(inspected.message).toBe(`STORE_FAILURE: ${cause}`);
    expect(describeStoreFailure(inspected.cause)).toBe('UnreadableRecordError');
    expect(await forgetRecord({ store, id: f.id })).toBe(true);
    expect(await f.once('k')).toBe(1);
  });
});

test("an item without an expiration (TTL never removes it) gets the first claim's retention: it replays until then, and is claimed anew after it", async () => {
  const f = await withItem({ status: { S: 'COMPLETED' }, owner: { S: 'o' }, response: { S: '"kept"' } });
  expect(await f.once('k')).toBe('kept');
  expect(f.runs()).toBe(0);
  // 24 hours, the default retention, from the claim's clock.
  expect((await readItem(client, tableName, f.id))?.expiration).toEqual({ N: String(T0 / 1000 + 86_400) });
  const later = makeIdempotent(async (_key: string) => 'anew', { store, name: f.name, now: () => (T0 / 1000 + 86_401) * 1000 });
  expect(await later('k')).toBe('anew');
});

test("an INPROGRESS item without an expiration whose lease ends after the claim's retention, within a second, gets a retention that covers the lease: the table's TTL never removes it while it is held", async () => {
  // The lease ends half a second into the retention's second: a retention of that second (rounded
  // down) would have lapsed, for DynamoDB's TTL, half a second before the lease.
  const leaseUntil = T0 + 86_400_000 + 7_200_500;
  for (const on of [store, lean]) {
    const f = await withItem({ status: { S: 'INPROGRESS' }, owner: { S: 'o' }, leaseUntil: { N: String(leaseUntil) } }, on);
    expect((await rejection(f.once('k'))).code).toBe('IN_PROGRESS');
    expect(f.runs()).toBe(0);
    const expiration = Number((await readItem(client, tableName, f.id))?.expiration?.N);
    expect(expiration * 1000).toBeGreaterThanOrEqual(leaseUntil);
    expect(expiration).toBe(Math.ceil(leaseUntil / 1000));
  }
});

test('a record that replaced an item without an expiration while a claim was giving that item one keeps its own retention: the claim meets it as it is', async () => {
  const name = `malformed${++seq}`;
  const id = recordId(name, 'k');
  const week = T0 / 1000 + 7 * 86_400;
  let interleaved = false;
  // Between the claim's refusal and its UpdateItem, the item is forgotten and the key claimed and
  // completed by a process whose retention is a week (longer than this call's day).
  const interleaving = {
    config: client.config,
    send: async (command: { input: unknown }) => {
      if (command instanceof UpdateItemCommand && !interleaved) {
        interleaved = true;
        const other = { id: { S: id }, status: { S: 'COMPLETED' }, owner: { S: 'o2' }, expiration: { N: String(week) }, response: { S: '"other"' } };
        await client.send(new PutItemCommand({ TableName: tableName, Item: other }));
      }
      return client.send(command as never);
    },
  } as unknown as DynamoDBClient;
  await client.send(
    new PutItemCommand({ TableName: tableName, Item: { id: { S: id }, status: { S: 'COMPLETED' }, owner: { S: 'o' }, response: { S: '"kept"' } } }),
  );
  let runs = 0;
  const once = makeIdempotent(async (_key: string) => ++runs, { store: new LeanDynamoDBStore({ tableName, client: interleaving }), name, now: () => T0 });
  expect(await once('k')).toBe('other');
  expect(interleaved).toBe(true);
  expect(runs).toBe(0);
  expect((await readItem(client, tableName, id))?.expiration).toEqual({ N: String(week) });
});

test('an INPROGRESS item without a lease is held until its expiration: IN_PROGRESS, inspectRecord shows it, and after it the call runs', async () => {
  const f = await withItem({ status: { S: 'INPROGRESS' }, owner: { S: 'o' }, expiration: LIVE_EXPIRATION });
  expect((await rejection(f.once('k'))).code).toBe('IN_PROGRESS');
  expect(await inspectRecord({ store, id: f.id })).toMatchObject({ status: 'INPROGRESS', expiresAt: T0 / 1000 + 3600 });
  const later = makeIdempotent(async (_key: string) => 'ran', { store, name: f.name, now: () => (T0 / 1000 + 3601) * 1000 });
  expect(await later('k')).toBe('ran');
});

test("an INPROGRESS item without a lease answers IN_PROGRESS with the time until its retention's last second has passed: a retry then runs, one a millisecond earlier is still held", async () => {
  const f = await withItem({ status: { S: 'INPROGRESS' }, owner: { S: 'o' }, expiration: LIVE_EXPIRATION });
  // The record lives through the retention's second (T0 / 1000 + 3600), to its last millisecond.
  expect(await rejection(f.once('k'))).toMatchObject({ code: 'IN_PROGRESS', retryAfterSeconds: 3601 });
  const at = (millis: number) => makeIdempotent(async (_key: string) => 'ran', { store, name: f.name, now: () => T0 + millis });
  expect(await rejection(at(3_600_999)('k'))).toMatchObject({ code: 'IN_PROGRESS', retryAfterSeconds: 1 });
  expect(await at(3_601_000)('k')).toBe('ran');
});

test.each<[string, Record<string, AttributeValue>]>([
  ['response is not JSON', { response: { S: '{"cut short' } }],
  ['final error is not JSON', { error: { S: 'not json' } }],
  ['final error is JSON null', { error: { S: 'null' } }],
])(
  'a live record whose stored %s fails closed: STORE_FAILURE, the function does not run, and its cause names the record, never what it holds',
  async (_case, outcome) => {
    const f = await withItem({ status: { S: 'COMPLETED' }, owner: { S: 'o' }, expiration: LIVE_EXPIRATION, ...outcome });
    const error = await rejection(f.once('k'));
    expect(error.code).toBe('STORE_FAILURE');
    expect(error.message).toBe(
      'STORE_FAILURE: The idempotency store failed (UnreadableRecordError: a stored outcome that is not JSON); the function did not run.',
    );
    expect(describeStoreFailure(error.cause)).toBe('UnreadableRecordError');
    const kind = outcome.response === undefined ? 'error' : 'response';
    expect((error.cause as Error).message).toMatch(new RegExp(`^The stored ${kind} of the idempotency record ${f.id.replace(/[^\w]/g, '\\$&')} is not`));
    // JSON.parse's own message quotes the text it could not read: a stored outcome is the function's, never logged.
    expect(JSON.stringify(error, Object.getOwnPropertyNames(error))).not.toMatch(/cut short|not json/);
    expect((error.cause as Error).cause).toBeUndefined();
    expect(f.runs()).toBe(0);
  },
);

test('atomic: a live record whose stored response is not JSON fails closed after the function ran, and the message says so: nothing of the call was written', async () => {
  const f = await withItem({ status: { S: 'COMPLETED' }, owner: { S: 'o' }, expiration: LIVE_EXPIRATION, response: { S: '{"cut short' } });
  let runs = 0;
  const atomic = makeIdempotent(async (_key: string) => ++runs, { store, name: f.name, atomic: true, now: () => T0 });
  const error = await rejection(atomic('k'));
  expect(runs).toBe(1);
  expect(error.code).toBe('STORE_FAILURE');
  expect(error.message).toBe(
    'STORE_FAILURE: The idempotency store failed (UnreadableRecordError: a stored outcome that is not JSON); the function ran, and nothing of this call was written.',
  );
  expect((await readItem(client, tableName, f.id))?.response).toEqual({ S: '{"cut short' });
});

test('a stored outcome that is not JSON is counted as a store failure, not a replay, and is not cached: once repaired, it replays', async () => {
  const name = `malformed${++seq}`;
  const id = recordId(name, 'k');
  const item = { id: { S: id }, status: { S: 'COMPLETED' }, owner: { S: 'o' }, expiration: LIVE_EXPIRATION, response: { S: '{"cut short' } };
  await client.send(new PutItemCommand({ TableName: tableName, Item: item }));
  const events: string[] = [];
  let runs = 0;
  const once = makeIdempotent(async (_key: string) => ++runs, {
    store,
    name,
    now: () => T0,
    cacheSize: 10,
    observability: (event) => events.push(event),
  });
  expect((await rejection(once('k'))).code).toBe('STORE_FAILURE');
  expect(events).toEqual(['storeFailure']);
  await client.send(new PutItemCommand({ TableName: tableName, Item: { ...item, response: { S: '"repaired"' } } }));
  expect(await once('k')).toBe('repaired');
  expect(events).toEqual(['storeFailure', 'replay']);
  expect(runs).toBe(0);
});

test('a COMPLETED item whose responseOmitted is false (as another writer may store it) replays its stored response', async () => {
  const f = await withItem({
    status: { S: 'COMPLETED' },
    owner: { S: 'o' },
    expiration: LIVE_EXPIRATION,
    response: { S: '"kept"' },
    responseOmitted: { BOOL: false },
  });
  expect(await f.once('k')).toBe('kept');
  expect(f.runs()).toBe(0);
  expect(await inspectRecord({ store, id: f.id })).toMatchObject({ status: 'COMPLETED', responseOmitted: false });
});

test("atomic: a COMPLETED item without an expiration gets the commit's retention: it replays until then, and is committed anew after it", async () => {
  const f = await withItem({ status: { S: 'COMPLETED' }, owner: { S: 'o' }, response: { S: '"kept"' } });
  let runs = 0;
  const atomic = (at: number) => makeIdempotent(async (_key: string) => `ran${++runs}`, { store, name: f.name, atomic: true, now: () => at });
  expect(await atomic(T0)('k')).toBe('kept');
  expect((await readItem(client, tableName, f.id))?.expiration).toEqual({ N: String(T0 / 1000 + 86_400) });
  expect(await atomic((T0 / 1000 + 86_401) * 1000)('k')).toBe('ran2');
});

test("atomic: a function that throws, meeting a COMPLETED item without an expiration, replays it as the commit would: the read gives it the commit's retention", async () => {
  const f = await withItem({ status: { S: 'COMPLETED' }, owner: { S: 'o' }, response: { S: '"kept"' } });
  let runs = 0;
  const failing = makeIdempotent(
    async (_key: string) => {
      runs++;
      throw new Error('already refunded');
    },
    { store, name: f.name, atomic: true, now: () => T0 },
  );
  expect(await failing('k')).toBe('kept');
  expect(runs).toBe(1);
  expect(await readItem(client, tableName, f.id)).toEqual({
    id: { S: f.id },
    status: { S: 'COMPLETED' },
    owner: { S: 'o' },
    response: { S: '"kept"' },
    expiration: { N: String(T0 / 1000 + 86_400) },
  });
  // A lease it carries bounds the retention it gets from below, as for a claim.
  const leased = await withItem({ status: { S: 'COMPLETED' }, owner: { S: 'o' }, response: { S: '"kept"' }, leaseUntil: { N: String(T0 + 100_000_000) } });
  expect(await store.read(leased.id, T0 / 1000 + 60)).toMatchObject({ status: 'COMPLETED', response: '"kept"', expiresAt: T0 / 1000 + 100_000 });
  // Without the retention to give it, the read is as it was: it changes nothing and refuses the item.
  const bare = await withItem({ status: { S: 'COMPLETED' }, owner: { S: 'o' }, response: { S: '"kept"' } });
  await expect(store.read(bare.id)).rejects.toThrow(/is malformed \(no `expiration` number\)/);
  expect((await readItem(client, tableName, bare.id))?.expiration).toBeUndefined();
});

describe('an expiration written in epoch milliseconds (by hand, by another tool) reads as epoch seconds, a retention ending in year ~55,000', () => {
  // docs/troubleshooting.md names the symptom: the store cannot tell it from a retention of that
  // length, which the entry points accept (up to about 285,000 years).
  const IN_MILLIS = { N: String(T0 + 3_600_000) };

  test('a COMPLETED item replays its response a year after the hour it meant, until it is removed', async () => {
    const f = await withItem({ status: { S: 'COMPLETED' }, owner: { S: 'o' }, expiration: IN_MILLIS, response: { S: '"hand"' } });
    const yearLater = makeIdempotent(async (_key: string) => 'ran', { store, name: f.name, now: () => T0 + 365 * 86_400_000 });
    expect(await yearLater('k')).toBe('hand');
    expect(await inspectRecord({ store, name: f.name, key: 'k' })).toMatchObject({ status: 'COMPLETED', expiresAt: T0 + 3_600_000 });
    expect(await forgetRecord({ store, name: f.name, key: 'k' })).toBe(true);
    expect(await yearLater('k')).toBe('ran');
  });

  test('an INPROGRESS item without a lease holds its key a year after the hour it meant, until it is removed', async () => {
    const f = await withItem({ status: { S: 'INPROGRESS' }, owner: { S: 'o' }, expiration: IN_MILLIS });
    const yearLater = makeIdempotent(async (_key: string) => 'ran', { store, name: f.name, now: () => T0 + 365 * 86_400_000 });
    expect((await rejection(yearLater('k'))).code).toBe('IN_PROGRESS');
    expect(await forgetRecord({ store, name: f.name, key: 'k' })).toBe(true);
    expect(await yearLater('k')).toBe('ran');
  });
});
