/** How responses are stored and replayed by a real DynamoDB Local: JSON text, gzip, or not at all. */

import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import middy from '@middy/core';
import { DynamoDBStore, IdempotencyError, idempotency, makeIdempotent, transaction } from '../../lib/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { lambdaContext } from '../support/lambda.js';
import { rejection } from '../support/rejections.js';
import { collectingLogger, omittedMessage } from '../support/warnings.js';

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
  const { logger, omitted } = collectingLogger();
  let runs = 0;
  const once = makeIdempotent(
    async (_key: string) => {
      runs++;
      return { blob };
    },
    { store, name: 'too-large', logger },
  );
  expect(await once('k')).toEqual({ blob });
  expect(omitted()).toEqual([{ level: 'WARN', message: omittedMessage('size'), namespace: 'too-large', recordId: recordId('too-large', 'k') }]);
  const item = await readItem(client, tableName, recordId('too-large', 'k'));
  expect(item).toMatchObject({ status: { S: 'COMPLETED' }, responseOmitted: { BOOL: true } });
  expect(item).not.toHaveProperty('response');
  expect(item).not.toHaveProperty('leaseUntil');
  expect((await rejection(once('k'))).code).toBe('RESPONSE_NOT_STORED');
  expect(omitted()).toHaveLength(1);
  expect(runs).toBe(1);
});

test('when DynamoDB itself refuses the item as too large, the record still completes without the response', async () => {
  // Compression only above the item limit itself: a text just under 400 KB goes out as S, and with
  // the record's other attributes the item is over the limit, so the real DynamoDB says no.
  const uncompressed = new DynamoDBStore({ tableName, client, compressAboveBytes: 400 * 1024 });
  const text = 'a'.repeat(400 * 1024 - 10);
  const { logger, omitted } = collectingLogger();
  let runs = 0;
  const once = makeIdempotent(
    async (_key: string) => {
      runs++;
      return text;
    },
    { store: uncompressed, name: 'refused-size', logger },
  );
  expect(await once('k')).toBe(text);
  // One completion (refused, then sent again without the response), one warning naming the record.
  expect(omitted()).toEqual([{ level: 'WARN', message: omittedMessage('size'), namespace: 'refused-size', recordId: recordId('refused-size', 'k') }]);
  const item = await readItem(client, tableName, recordId('refused-size', 'k'));
  expect(item).toMatchObject({ status: { S: 'COMPLETED' }, responseOmitted: { BOOL: true } });
  expect(item).not.toHaveProperty('response');
  expect((await rejection(once('k'))).code).toBe('RESPONSE_NOT_STORED');
  expect(omitted()).toHaveLength(1);
  expect(runs).toBe(1);
});

test('with transaction writes: a record DynamoDB refuses as too large commits again without its response, writes included', async () => {
  const uncompressed = new DynamoDBStore({ tableName, client, compressAboveBytes: 400 * 1024 });
  const text = 'a'.repeat(400 * 1024 - 10);
  const { logger, omitted } = collectingLogger();
  let runs = 0;
  const once = makeIdempotent(
    async (_key: string) => {
      runs++;
      transaction().put({ TableName: tableName, Item: { id: 'business-item-of-refused-size-tx', written: true } });
      return text;
    },
    { store: uncompressed, name: 'refused-size-tx', transactions: true, logger },
  );
  expect(await once('k')).toBe(text);
  expect(omitted()).toEqual([{ level: 'WARN', message: omittedMessage('size'), namespace: 'refused-size-tx', recordId: recordId('refused-size-tx', 'k') }]);
  expect(await readItem(client, tableName, recordId('refused-size-tx', 'k'))).toMatchObject({ status: { S: 'COMPLETED' }, responseOmitted: { BOOL: true } });
  expect(await readItem(client, tableName, 'business-item-of-refused-size-tx')).toMatchObject({ written: { BOOL: true } });
  expect((await rejection(once('k'))).code).toBe('RESPONSE_NOT_STORED');
  expect(omitted()).toHaveLength(1);
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
  const { logger, omitted } = collectingLogger();
  const handler = middy(async (_event: { id: string }) => ({ total: BigInt(++runs) })).use(
    idempotency({ store, key: (event: { id: string }) => event.id, logger }),
  );
  const context = lambdaContext('bigint', 5_000);
  expect(await handler({ id: 'b' }, context)).toEqual({ total: 1n });
  expect(omitted()).toEqual([{ level: 'WARN', message: omittedMessage('json'), namespace: 'bigint', recordId: recordId('bigint', 'b') }]);
  expect(await readItem(client, tableName, recordId('bigint', 'b'))).toMatchObject({ status: { S: 'COMPLETED' }, responseOmitted: { BOOL: true } });
  expect((await rejection(handler({ id: 'b' }, context))).code).toBe('RESPONSE_NOT_STORED');
  expect(omitted()).toHaveLength(1);
  expect(runs).toBe(1);
});

describe('stored final errors (isFinalError, errorFields)', () => {
  const declined = (fields: Record<string, unknown>): Error => Object.assign(new Error('card declined'), { name: 'CardError', code: 'DECLINED' }, fields);
  /** The error the first call and a duplicate get from `fn` made idempotent under `name` with `errorFields`. */
  async function firstAndDuplicate(name: string, errorFields: string[], make: () => Error): Promise<[unknown, Error]> {
    let runs = 0;
    const once = makeIdempotent(
      async (_id: string) => {
        runs++;
        throw make();
      },
      { store, name, isFinalError: () => true, errorFields },
    );
    const first = await once('k').catch((error: unknown) => error);
    const again = (await once('k').catch((error: unknown) => error)) as Error;
    expect(runs).toBe(1);
    return [first, again];
  }

  test("the replay is an Error, not an instance of the class thrown, and its stack is the replay's, not the first call's", async () => {
    class CardError extends Error {
      override name = 'CardError';
      readonly code = 'DECLINED';
    }
    const [first, again] = await firstAndDuplicate('replay-class-stack', [], () => new CardError('card declined'));
    expect(first).toBeInstanceOf(CardError);
    expect(again).toBeInstanceOf(Error);
    expect(again).not.toBeInstanceOf(CardError);
    expect(again).toMatchObject({ name: 'CardError', message: 'card declined', code: 'DECLINED' });
    expect(again.stack).not.toBe((first as Error).stack);
  });

  test('a field JSON cannot hold (a cause that leads back to the error, a BigInt) is dropped alone: the other fields replay', async () => {
    const [, again] = await firstAndDuplicate('fields-dropped-alone', ['statusCode', 'cause', 'amount'], () => {
      const error = declined({ statusCode: 402, amount: 10n });
      error.cause = { error };
      return error;
    });
    expect(again).toBeInstanceOf(Error);
    expect(again).toMatchObject({ name: 'CardError', message: 'card declined', code: 'DECLINED', statusCode: 402 });
    expect('cause' in again || 'amount' in again).toBe(false);
  });

  test('errors held by a field (a cause, AggregateError’s errors) replay as their name, message and code, not as {}', async () => {
    const [, again] = await firstAndDuplicate('nested-errors', ['cause', 'errors'], () =>
      Object.assign(new AggregateError([new TypeError('bad card'), declined({})], 'two failures'), {
        cause: Object.assign(new RangeError('limit'), { code: 'LIMIT', cause: new Error('root') }),
      }),
    );
    expect(again.name).toBe('AggregateError');
    expect((again as unknown as { errors: unknown }).errors).toEqual([
      { name: 'TypeError', message: 'bad card' },
      { name: 'CardError', message: 'card declined', code: 'DECLINED' },
    ]);
    expect(again.cause).toEqual({ name: 'RangeError', message: 'limit', code: 'LIMIT', cause: { name: 'Error', message: 'root' } });
  });

  test('`name`, `message` and `code` in errorFields are stored as always, once: a code that is an object replays as its text either way', async () => {
    const make = () => Object.assign(new Error('card declined'), { name: 'CardError', code: { reason: 'DECLINED' } });
    const [, plain] = await firstAndDuplicate('base-members-plain', [], make);
    const [, selected] = await firstAndDuplicate('base-members-selected', ['name', 'message', 'code', 'statusCode'], make);
    expect(plain).toMatchObject({ name: 'CardError', message: 'card declined', code: '[object Object]' });
    expect({ ...selected }).toStrictEqual({ ...plain });
    const stored = (await readItem(client, tableName, recordId('base-members-selected', 'k')))!.error!.S!;
    expect(stored).toBe('{"name":"CardError","message":"card declined","code":"[object Object]"}');
  });

  test('a code of null or a boolean (an API error’s `"code": null`) replays as it is, not as its text, also when the error is cut short', async () => {
    const apiError = (code: unknown, message = 'Invalid model') => Object.assign(new Error(message), { name: 'BadRequestError', code, status: 400 });
    const [first, again] = await firstAndDuplicate('code-null', ['status'], () => apiError(null));
    expect((first as { code: unknown }).code).toBeNull();
    expect(again).toMatchObject({ name: 'BadRequestError', message: 'Invalid model', code: null, status: 400 });
    const [, flag] = await firstAndDuplicate('code-boolean', [], () => apiError(false));
    expect((flag as unknown as { code: unknown }).code).toBe(false);
    const [, cut] = await firstAndDuplicate('code-null-cut', ['status'], () => apiError(null, 'x'.repeat(500 * 1024)));
    expect(cut.message.endsWith('…')).toBe(true);
    expect(cut).toMatchObject({ name: 'BadRequestError', code: null, status: 400 });
  });

  test('a nested error keeps the cause and errors its constructor set (own members that are not enumerable)', async () => {
    const [, again] = await firstAndDuplicate('nested-constructor-members', ['cause'], () => {
      const inner = new AggregateError([new TypeError('bad card')], 'both failed', { cause: new Error('root') });
      return new Error('card declined', { cause: new RangeError('limit', { cause: inner }) });
    });
    expect(again.cause).toEqual({
      name: 'RangeError',
      message: 'limit',
      cause: {
        name: 'AggregateError',
        message: 'both failed',
        cause: { name: 'Error', message: 'root' },
        errors: [{ name: 'TypeError', message: 'bad card' }],
      },
    });
  });

  test('a field no longer in errorFields (removed in a later deployment) never reaches a duplicate from a record stored before', async () => {
    const name = 'field-removed';
    let runs = 0;
    const fn = async (_id: string): Promise<never> => {
      runs++;
      throw declined({ statusCode: 402, details: { holder: 'Jane Doe', pan: '4111111111111111' } });
    };
    const before = makeIdempotent(fn, { store, name, isFinalError: () => true, errorFields: ['statusCode', 'details'] });
    expect(await before('k').catch((error: unknown) => error)).toHaveProperty('details');
    const after = makeIdempotent(fn, { store, name, isFinalError: () => true, errorFields: ['statusCode'] });
    const again = (await after('k').catch((error: unknown) => error)) as Error;
    expect(runs).toBe(1);
    expect(again).toMatchObject({ name: 'CardError', message: 'card declined', code: 'DECLINED', statusCode: 402 });
    expect(again).not.toHaveProperty('details');
  });

  test('a stored error whose fields name `__proto__` still replays as an Error, the member kept as a field', async () => {
    const name = 'planted-proto';
    const once = makeIdempotent(async (id: string) => `ran ${id}`, { store, name, errorFields: ['__proto__'] });
    const key = recordId(name, 'k');
    await client.send(
      new PutItemCommand({
        TableName: tableName,
        Item: {
          id: { S: key },
          status: { S: 'COMPLETED' },
          owner: { S: 'someone' },
          expiration: { N: String(Math.floor(Date.now() / 1000) + 3600) },
          error: { S: '{"name":"CardError","message":"card declined","__proto__":null}' },
        },
      }),
    );
    const again = await once('k').catch((error: unknown) => error);
    expect(again).toBeInstanceOf(Error);
    expect(Object.getPrototypeOf(again)).toBe(Error.prototype);
    expect(again).toMatchObject({ name: 'CardError', message: 'card declined' });
    expect(Object.hasOwn(again as object, '__proto__')).toBe(true);
  });
});

describe('an error that asks for a retry is never stored, whatever isFinalError says', () => {
  test('a nested call’s IN_PROGRESS (a function calling itself with its key): the key is released, and the retry runs and completes', async () => {
    let runs = 0;
    const once: (id: string) => Promise<string> = makeIdempotent(
      async (id: string) => {
        runs++;
        return runs === 1 ? once(id) : `done ${id}`;
      },
      { store, name: 'nested-in-progress', isFinalError: () => true },
    );
    expect((await rejection(once('k'))).code).toBe('IN_PROGRESS');
    expect(await readItem(client, tableName, recordId('nested-in-progress', 'k'))).toBeUndefined();
    expect(await once('k')).toBe('done k');
    expect(runs).toBe(2);
  });

  test('a nested call’s SUPERSEDED (its record taken over while it ran): the key is released, and the retry replays the taker’s outcome', async () => {
    let innerRuns = 0;
    const inner = makeIdempotent(
      async (id: string) => {
        innerRuns++;
        // Another attempt takes the record over and completes it while this one runs.
        await client.send(
          new PutItemCommand({
            TableName: tableName,
            Item: {
              id: { S: recordId('superseded-inner', id) },
              status: { S: 'COMPLETED' },
              owner: { S: 'another attempt' },
              expiration: { N: String(Math.floor(Date.now() / 1000) + 3600) },
              response: { S: '"taken over"' },
            },
          }),
        );
        return `inner ${id}`;
      },
      { store, name: 'superseded-inner' },
    );
    const outer = makeIdempotent(async (id: string) => `outer saw ${await inner(id)}`, {
      store,
      name: 'superseded-outer',
      isFinalError: () => true,
    });
    expect((await rejection(outer('k'))).code).toBe('SUPERSEDED');
    expect(await readItem(client, tableName, recordId('superseded-outer', 'k'))).toBeUndefined();
    expect(await outer('k')).toBe('outer saw taken over');
    expect(innerRuns).toBe(1);
  });

  test('a nested call’s STORE_FAILURE (its store unreachable): the key is released, and the retry runs and completes', async () => {
    let runs = 0;
    // A table that does not exist: every claim of the nested call fails closed.
    const inner = makeIdempotent(async (id: string) => `inner ${id}`, {
      store: new DynamoDBStore({ tableName: `missing-${randomBytes(4).toString('hex')}`, client }),
      name: 'store-failure-inner',
    });
    const outer = makeIdempotent(
      async (id: string) => {
        runs++;
        return runs === 1 ? inner(id) : `done ${id}`;
      },
      { store, name: 'store-failure-outer', isFinalError: () => true },
    );
    expect((await rejection(outer('k'))).code).toBe('STORE_FAILURE');
    expect(await readItem(client, tableName, recordId('store-failure-outer', 'k'))).toBeUndefined();
    expect(await outer('k')).toBe('done k');
    expect(runs).toBe(2);
  });

  test.each(['COMMIT_FAILED', 'TRANSACTION_CONFLICT'] as const)(
    'a nested call’s %s, rethrown by the handler: the key is released, and the retry runs and completes',
    async (code) => {
      let runs = 0;
      const name = `rethrown-${code}`;
      const once = makeIdempotent(
        async (id: string) => {
          runs++;
          if (runs === 1) throw new IdempotencyError(code, 'the nested call did not commit');
          return `done ${id}`;
        },
        { store, name, isFinalError: () => true },
      );
      expect((await rejection(once('k'))).code).toBe(code);
      expect(await readItem(client, tableName, recordId(name, 'k'))).toBeUndefined();
      expect(await once('k')).toBe('done k');
      expect(runs).toBe(2);
    },
  );
});
