/**
 * Calls whose writes go over DynamoDB's limits on one transaction (4 MB, 100 actions), through one
 * entry point: `oversize.test.ts` runs these tests through `makeIdempotent`, and
 * `oversize-middy.test.ts` through the middleware, on every middy major.
 */
import { randomUUID } from 'node:crypto';
import { BatchGetItemCommand, type BatchGetItemCommandOutput, type DynamoDBClient, type KeysAndAttributes } from '@aws-sdk/client-dynamodb';
import { DynamoDBStore, type IdempotencyLogger, transaction } from '../../lib/index.js';
import { T0 } from './counting-function.js';
import { readItem, recordId, testClient } from './dynamodb.js';
import { rejection } from './rejections.js';
import { collectingLogger, omittedMessage } from './warnings.js';

/** DynamoDB's limit on the size of an item. */
export const ITEM_LIMIT = 400 * 1024;

/** A string whose JSON text is exactly `bytes` bytes. */
export const jsonOfSize = (bytes: number): string => 'x'.repeat(bytes - 2);

/** Clients of DynamoDB Local that list the commands they send; every client handed to it is destroyed after the file's tests. */
export function useProbedClients() {
  const clients: DynamoDBClient[] = [];
  afterAll(() => {
    for (const c of clients) c.destroy();
  });
  return {
    /** Destroys `client` after the file's tests. */
    destroyLater: (client: DynamoDBClient) => void clients.push(client),
    probedClient() {
      const client = testClient();
      clients.push(client);
      const commands: string[] = [];
      client.middlewareStack.add((next, context) => (args) => (commands.push(context.commandName!), next(args)), { step: 'initialize', name: 'probe' });
      return { client, commands };
    },
  };
}

export interface BulkInput {
  readonly id: string;
  readonly puts: number;
  readonly updates?: number;
  readonly response: string;
}

/** The idempotency options of a bulk function, besides its namespace. */
export interface BulkOptions {
  readonly store: DynamoDBStore;
  readonly transactions: true;
  readonly atomic: boolean;
  readonly key: (input: BulkInput) => string;
  readonly now: () => number;
  readonly logger: IdempotencyLogger;
}

/** `body` made idempotent with `options` through one entry point, in the namespace `name`. */
export type Entry = (body: (input: BulkInput) => Promise<string>, options: BulkOptions, name: string) => (input: BulkInput) => Promise<string>;

export interface LimitTables {
  /** The client that reads both tables. */
  readonly admin: DynamoDBClient;
  readonly tableName: string;
  readonly bizTable: string;
  readonly probedClient: ReturnType<typeof useProbedClients>['probedClient'];
}

/** Those of `ids` that are items of `tableName`, read consistently in one BatchGetItem per 100 ids (their ids alone, not their blobs). */
async function existing(client: DynamoDBClient, tableName: string, ids: string[]): Promise<string[]> {
  const found: string[] = [];
  for (let at = 0; at < ids.length; at += 100) {
    let request: Record<string, KeysAndAttributes> | undefined = {
      [tableName]: { Keys: ids.slice(at, at + 100).map((id) => ({ id: { S: id } })), ConsistentRead: true, ProjectionExpression: 'id' },
    };
    while (request && Object.keys(request).length > 0) {
      const out: BatchGetItemCommandOutput = await client.send(new BatchGetItemCommand({ RequestItems: request }));
      for (const item of out.Responses?.[tableName] ?? []) found.push(item.id!.S!);
      request = out.UnprocessedKeys;
    }
  }
  return found;
}

/** 4 MB, DynamoDB's limit on the items of one transaction, counted as it counts an item's size. */
const TRANSACTION_LIMIT = 4 * 1024 * 1024;
const BLOB = 390_000;

/** The tests of calls made through `entry` whose writes go over a transaction's limits, in `mode`. */
export function transactionLimitTests(mode: 'transactions' | 'atomic', tables: LimitTables, entry: Entry): void {
  const { admin, tableName, bizTable, probedClient } = tables;

  /**
   * A function that puts `input.puts` business items of ~390 KB each (and updates `input.updates`
   * more, setting as much) with its record and returns `input.response`, made idempotent through
   * `entry` on a probed client.
   */
  function bulk(blob = BLOB) {
    const { client, commands } = probedClient();
    const store = new DynamoDBStore({ tableName, client, compressAboveBytes: ITEM_LIMIT });
    const name = `bulk${randomUUID().slice(0, 8)}`;
    let runs = 0;
    const body = async (input: BulkInput) => {
      runs++;
      const tx = transaction();
      for (let i = 0; i < input.puts; i++) tx.put({ TableName: bizTable, Item: { id: `${name}-${input.id}-${i}`, blob: 'b'.repeat(blob) } });
      for (let i = 0; i < (input.updates ?? 0); i++) {
        tx.update({
          TableName: bizTable,
          Key: { id: `${name}-${input.id}-u${i}` },
          UpdateExpression: 'SET #blob = :blob',
          ExpressionAttributeNames: { '#blob': 'blob' },
          ExpressionAttributeValues: { ':blob': 'u'.repeat(blob) },
        });
      }
      return input.response;
    };
    const { logger, omitted } = collectingLogger();
    const fn = entry(body, { store, transactions: true, atomic: mode === 'atomic', key: (input) => input.id, now: () => T0, logger }, name);
    const business = (id: string) => readItem(admin, bizTable, `${name}-${id}`);
    return {
      name,
      fn,
      omitted,
      commits: () => commands.filter((command) => command === 'TransactWriteItemsCommand').length,
      runs: () => runs,
      business,
      record: (id: string) => readItem(admin, tableName, recordId(name, id)),
      /** How many of the call `id`'s `puts` items exist. */
      written: async (id: string, puts: number) =>
        (
          await existing(
            admin,
            bizTable,
            Array.from({ length: puts }, (_, i) => `${name}-${id}-${i}`),
          )
        ).length,
    };
  }

  test.each([11, 45])(
    '%i puts of 390 KB (over 4 MB) are TRANSACTION_INVALID without being sent: nothing written, the key released, a retry runs again',
    async (puts) => {
      expect(puts * BLOB).toBeGreaterThan(TRANSACTION_LIMIT);
      const f = bulk();
      const error = await rejection(f.fn({ id: 'big', puts, response: 'ok' }));
      expect(error.code).toBe('TRANSACTION_INVALID');
      expect(error.message).toMatch(/4 MB/);
      // Never sent: 17.5 MB in one request is more than DynamoDB reads before it answers (DynamoDB Local answers 413 and drops the connection).
      expect(f.commits()).toBe(0);
      expect(await f.written('big', puts)).toBe(0);
      expect(await f.record('big')).toBeUndefined();
      // The key is free: the retry runs (and is refused the same way); it does not meet IN_PROGRESS.
      expect((await rejection(f.fn({ id: 'big', puts, response: 'ok' }))).code).toBe('TRANSACTION_INVALID');
      expect(f.runs()).toBe(2);
    },
  );

  test("writes DynamoDB counts over 4 MB (an update's values) are refused by it: TRANSACTION_INVALID, nothing written, the key released", async () => {
    const f = bulk();
    const error = await rejection(f.fn({ id: 'updates', puts: 10, updates: 1, response: 'ok' }));
    expect(error.code).toBe('TRANSACTION_INVALID');
    expect(error.message).toMatch(/4 ?MB/);
    // Refused with the response, then without it (the response might have been what tipped it over).
    expect(f.commits()).toBe(2);
    expect(await f.written('updates', 10)).toBe(0);
    expect(await f.business('updates-u0')).toBeUndefined();
    expect(await f.record('updates')).toBeUndefined();
    expect((await rejection(f.fn({ id: 'updates', puts: 10, updates: 1, response: 'ok' }))).code).toBe('TRANSACTION_INVALID');
    expect(f.runs()).toBe(2);
  });

  test('writes that fit but not with the stored response commit without it; duplicates get RESPONSE_NOT_STORED', async () => {
    const response = jsonOfSize(300_000);
    expect(10 * BLOB).toBeLessThan(TRANSACTION_LIMIT);
    expect(10 * BLOB + response.length).toBeGreaterThan(TRANSACTION_LIMIT);
    const f = bulk();
    expect((await f.fn({ id: 'fits', puts: 10, response })) === response).toBe(true);
    expect(await f.written('fits', 10)).toBe(10);
    const item = await f.record('fits');
    expect(item?.status?.S).toBe('COMPLETED');
    expect(item?.responseOmitted?.BOOL).toBe(true);
    // Refused once with the response, committed once without it.
    expect(f.commits()).toBe(2);
    expect(f.omitted()).toEqual([{ level: 'WARN', message: omittedMessage('size'), namespace: f.name, recordId: recordId(f.name, 'fits') }]);
    expect((await rejection(f.fn({ id: 'fits', puts: 10, response }))).code).toBe('RESPONSE_NOT_STORED');
    expect(f.omitted()).toHaveLength(1);
    expect(f.runs()).toBe(mode === 'atomic' ? 2 : 1); // an atomic duplicate re-runs its pure handler; its writes are cancelled
    expect(await f.written('fits', 10)).toBe(10);
  });

  test('100 writes (101 actions with the record) are TRANSACTION_INVALID: nothing written, the key released; 99 commit', async () => {
    const f = bulk(10);
    const error = await rejection(f.fn({ id: 'many', puts: 100, response: 'ok' }));
    expect(error.code).toBe('TRANSACTION_INVALID');
    expect(error.message).toMatch(/100/);
    expect(await f.written('many', 100)).toBe(0);
    expect(await f.record('many')).toBeUndefined();
    expect(await f.fn({ id: 'many', puts: 99, response: 'ok' })).toBe('ok');
    expect(await f.written('many', 99)).toBe(99);
  });
}
