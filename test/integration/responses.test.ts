/** How responses are stored and replayed by a real DynamoDB Local: JSON text, gzip, or not at all. */

import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import middy from '@middy/core';
import { DynamoDBStore, idempotency, makeIdempotent, transaction } from '../../lib/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { lambdaContext } from '../support/lambda.js';
import { rejection } from '../support/rejections.js';

const { client, tableName, store } = useFreshTable();

test('a 1 MB response of compressible JSON is stored gzip-compressed and replayed equal', async () => {
  const rows = Array.from({ length: 12_000 }, (_, i) => ({ id: i, status: 'settled', currency: 'EUR', note: 'monthly subscription renewal' }));
  let runs = 0;
  const once = makeIdempotent(
    async (_key: string) => {
      runs++;
      return { rows };
    },
    { store, name: 'large' },
  );
  const first = await once('k');
  expect(JSON.stringify(first).length).toBeGreaterThan(1_000_000);
  const item = await readItem(client, tableName, recordId('large', 'k'));
  expect(item?.status).toEqual({ S: 'COMPLETED' });
  expect(item?.response?.S).toBeUndefined();
  const stored = item!.response!.B!;
  expect(stored.byteLength).toBeLessThan(100 * 1024);
  expect(JSON.parse(gunzipSync(stored).toString('utf8'))).toEqual({ rows });
  const replay = await once('k');
  expect(replay).toEqual({ rows });
  expect(replay).not.toBe(first);
  expect(runs).toBe(1);
});

test('an incompressible 600 KB response reaches the first caller; the record is COMPLETED without it; replays are RESPONSE_NOT_STORED', async () => {
  const blob = randomBytes(450 * 1024).toString('base64'); // 600 KB of text that gzip cannot shrink below 400 KB
  let runs = 0;
  const once = makeIdempotent(
    async (_key: string) => {
      runs++;
      return { blob };
    },
    { store, name: 'too-large' },
  );
  expect(await once('k')).toEqual({ blob });
  const item = await readItem(client, tableName, recordId('too-large', 'k'));
  expect(item).toMatchObject({ status: { S: 'COMPLETED' }, responseOmitted: { BOOL: true } });
  expect(item).not.toHaveProperty('response');
  expect(item).not.toHaveProperty('leaseUntil');
  expect((await rejection(once('k'))).code).toBe('RESPONSE_NOT_STORED');
  expect(runs).toBe(1);
});

test('when DynamoDB itself refuses the item as too large, the record still completes without the response', async () => {
  // Compression only above the item limit itself: a text just under 400 KB goes out as S, and with
  // the record's other attributes the item is over the limit, so the real DynamoDB says no.
  const uncompressed = new DynamoDBStore({ tableName, client, compressAboveBytes: 400 * 1024 });
  const text = 'a'.repeat(400 * 1024 - 10);
  let runs = 0;
  const once = makeIdempotent(
    async (_key: string) => {
      runs++;
      return text;
    },
    { store: uncompressed, name: 'refused-size' },
  );
  expect(await once('k')).toBe(text);
  const item = await readItem(client, tableName, recordId('refused-size', 'k'));
  expect(item).toMatchObject({ status: { S: 'COMPLETED' }, responseOmitted: { BOOL: true } });
  expect(item).not.toHaveProperty('response');
  expect((await rejection(once('k'))).code).toBe('RESPONSE_NOT_STORED');
  expect(runs).toBe(1);
});

test('with transaction writes: a record DynamoDB refuses as too large commits again without its response, writes included', async () => {
  const uncompressed = new DynamoDBStore({ tableName, client, compressAboveBytes: 400 * 1024 });
  const text = 'a'.repeat(400 * 1024 - 10);
  let runs = 0;
  const once = makeIdempotent(
    async (_key: string) => {
      runs++;
      transaction().put({ TableName: tableName, Item: { id: 'business-item-of-refused-size-tx', written: true } });
      return text;
    },
    { store: uncompressed, name: 'refused-size-tx', transactions: true },
  );
  expect(await once('k')).toBe(text);
  expect(await readItem(client, tableName, recordId('refused-size-tx', 'k'))).toMatchObject({ status: { S: 'COMPLETED' }, responseOmitted: { BOOL: true } });
  expect(await readItem(client, tableName, 'business-item-of-refused-size-tx')).toMatchObject({ written: { BOOL: true } });
  expect((await rejection(once('k'))).code).toBe('RESPONSE_NOT_STORED');
  expect(runs).toBe(1);
});

test('through middy: Dates and undefined fields replay as their JSON form', async () => {
  const at = new Date('2025-01-02T03:04:05.678Z');
  let runs = 0;
  const handler = middy(async (_event: { id: string }) => {
    runs++;
    return { at, missing: undefined, nested: { also: undefined, n: 0 } };
  }).use(idempotency({ store, key: (event: { id: string }) => event.id }));
  const context = lambdaContext('dates', 5_000);
  expect(await handler({ id: 'd' }, context)).toStrictEqual({ at, missing: undefined, nested: { also: undefined, n: 0 } });
  const item = await readItem(client, tableName, recordId('dates', 'd'));
  expect(item?.response).toEqual({ S: '{"at":"2025-01-02T03:04:05.678Z","nested":{"n":0}}' });
  expect(await handler({ id: 'd' }, context)).toStrictEqual({ at: '2025-01-02T03:04:05.678Z', nested: { n: 0 } });
  expect(runs).toBe(1);
});

test('through middy: a result JSON cannot hold (BigInt) is returned once, then RESPONSE_NOT_STORED', async () => {
  let runs = 0;
  const handler = middy(async (_event: { id: string }) => ({ total: BigInt(++runs) })).use(idempotency({ store, key: (event: { id: string }) => event.id }));
  const context = lambdaContext('bigint', 5_000);
  expect(await handler({ id: 'b' }, context)).toEqual({ total: 1n });
  expect(await readItem(client, tableName, recordId('bigint', 'b'))).toMatchObject({ status: { S: 'COMPLETED' }, responseOmitted: { BOOL: true } });
  expect((await rejection(handler({ id: 'b' }, context))).code).toBe('RESPONSE_NOT_STORED');
  expect(runs).toBe(1);
});
