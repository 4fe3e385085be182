/**
 * `attributes` as users build it, on DynamoDB Local: from configuration that may leave a name out
 * (`{ key: process.env.KEY_ATTRIBUTE }`, a Powertools layer's options copied over), and with names
 * that are DynamoDB reserved words or hold its expression syntax. Every name reaches DynamoDB
 * through a placeholder, and a name left `undefined` is the default, as an option left `undefined` is.
 */
import { DynamoDBStore, makeIdempotent } from '../../lib/index.js';
import { createTable } from '../../tools/tables.js';
import { dropTable, scanItems, useFreshTable } from '../support/dynamodb.js';
import { rejection } from '../support/rejections.js';

const { client, tableName } = useFreshTable({ prefix: 'attribute-names' });

test.each([
  ['key', { key: undefined }],
  ['expiration', { expiration: undefined }],
  ['fingerprint', { fingerprint: undefined }],
])('`%s: undefined` is the default name: the function runs once, a duplicate replays, the record reads as any other', async (field, attributes) => {
  const name = `undefined-${field}`;
  const warnings: string[] = [];
  let runs = 0;
  const once = makeIdempotent(async (order: { id: string; amount: number }) => ({ charged: order.amount, run: ++runs }), {
    store: new DynamoDBStore({ tableName, client, attributes }),
    name,
    key: (order) => order.id,
    fingerprint: (order) => order.amount,
    logger: { warn: (line) => warnings.push(line) },
  });
  expect(await once({ id: 'o-1', amount: 5 })).toEqual({ charged: 5, run: 1 });
  expect(await once({ id: 'o-1', amount: 5 })).toEqual({ charged: 5, run: 1 });
  expect((await rejection(once({ id: 'o-1', amount: 6 }))).code).toBe('PAYLOAD_MISMATCH');
  expect(runs).toBe(1);
  expect(warnings).toEqual([]);
  const [item] = await scanItems(client, tableName, `${name}#`);
  expect(Object.keys(item!).sort()).toEqual(['expiration', 'fingerprint', 'id', 'owner', 'response', 'status']);
  expect(item!.status).toEqual({ S: 'COMPLETED' });
});

test('names that are DynamoDB reserved words or hold its expression syntax: run once, replay, a stored final error, a release, inspect and forget', async () => {
  const table = `reserved-${Date.now()}`;
  await createTable(client, table, { partitionKey: { name: 'key', type: 'S' } });
  try {
    const attributes = {
      key: 'key',
      status: 'state',
      expiration: 'ttl',
      leaseUntil: 'timestamp',
      owner: 'user',
      fingerprint: 'hash',
      response: 'data',
      responseOmitted: 'size',
      error: 'a.b',
      keyId: 'x#y :z',
    };
    const store = new DynamoDBStore({ tableName: table, client, attributes });
    const runs: string[] = [];
    const once = makeIdempotent(
      async (input: string) => {
        runs.push(input);
        if (input === 'fails') throw new Error('transient');
        if (input === 'declined') throw Object.assign(new Error('declined'), { code: 'DECLINED' });
        return { input };
      },
      { store, name: 'reserved', fingerprint: (input) => input, isFinalError: (error) => (error as { code?: string }).code === 'DECLINED' },
    );
    expect(await once('ok')).toEqual({ input: 'ok' });
    expect(await once('ok')).toEqual({ input: 'ok' });
    await expect(once('fails')).rejects.toThrow('transient');
    await expect(once('fails')).rejects.toThrow('transient');
    await expect(once('declined')).rejects.toMatchObject({ message: 'declined', code: 'DECLINED' });
    await expect(once('declined')).rejects.toMatchObject({ message: 'declined', code: 'DECLINED' });
    expect(runs).toEqual(['ok', 'fails', 'fails', 'declined']);
    const keys = (await scanItems(client, table)).map((item) => item.key!.S!);
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      expect(await store.inspect(key)).toMatchObject({ key, status: 'COMPLETED', hasFingerprint: true });
      expect(await store.forget(key, 'COMPLETED')).toBe(true);
    }
    expect(await once('ok')).toEqual({ input: 'ok' });
    expect(runs).toEqual(['ok', 'fails', 'fails', 'declined', 'ok']);
  } finally {
    await dropTable(client, table);
  }
});
