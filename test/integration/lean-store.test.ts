/**
 * The lean DynamoDBStore of `lambda-idempotency/dynamodb` under the Middy middleware of
 * `lambda-idempotency`, on DynamoDB Local: the record protocol alone (claim, complete, release),
 * encryption through the module only, and nothing of transactions, atomic mode or the operations
 * tools, which the main entry's DynamoDBStore adds on top of it.
 */
import middy from '@middy/core';
import { DynamoDBStore } from '../../lib/dynamodb/index.js';
import { aesGcmEncryption, DynamoDBStore as FullDynamoDBStore, idempotency, transaction } from '../../lib/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { aesKey, keyring } from '../support/keyring.js';
import { lambdaContext } from '../support/lambda.js';
import { thrown } from '../support/rejections.js';

const { client, tableName } = useFreshTable({ prefix: 'lean' });
const store = new DynamoDBStore({ tableName, client });

interface Order {
  readonly id: string;
  readonly answer?: 'json' | 'undefined' | 'large';
}

/** A middy handler on `on` that counts its runs and answers as the event asks. */
function orderHandler(on: DynamoDBStore, fail: (event: Order) => boolean = () => false) {
  let runs = 0;
  const handler = middy(async (event: Order) => {
    runs++;
    if (fail(event)) throw new Error('payment service unavailable');
    if (event.answer === 'undefined') return undefined;
    return { id: event.id, runs, ...(event.answer === 'large' ? { pad: 'p'.repeat(200_000) } : {}) };
  }).use(idempotency({ store: on, key: (event: Order) => event.id, singleFlight: false })); // each invocation stands for another process
  return { handler, runs: () => runs };
}

test('the handler runs once and duplicates replay its response: JSON, undefined, and a large one stored compressed', async () => {
  const { handler, runs } = orderHandler(store);
  const orders: Order[] = [{ id: 'json' }, { id: 'void', answer: 'undefined' }, { id: 'large', answer: 'large' }];
  const firsts = [];
  for (const order of orders) firsts.push(await handler(order, lambdaContext('lean-orders')));
  for (const [i, order] of orders.entries()) expect(await handler(order, lambdaContext('lean-orders'))).toEqual(firsts[i]);
  expect(runs()).toBe(3);
  expect(firsts[1]).toBeUndefined();
  expect((await readItem(client, tableName, recordId('lean-orders', 'json')))?.response).toEqual({ S: '{"id":"json","runs":1}' });
  const voided = await readItem(client, tableName, recordId('lean-orders', 'void'));
  expect(voided?.status).toEqual({ S: 'COMPLETED' });
  expect(voided).not.toHaveProperty('response');
  const large = (await readItem(client, tableName, recordId('lean-orders', 'large')))!.response!.B!;
  expect([...large.subarray(0, 2)]).toEqual([0x1f, 0x8b]); // gzip
  expect(large.byteLength).toBeLessThan(5_000);
});

test('a handler error releases the record, so the retry runs the handler again', async () => {
  let failing = true;
  const { handler, runs } = orderHandler(store, () => failing);
  expect((await thrown(handler({ id: 'retry' }, lambdaContext('lean-errors')))).message).toBe('payment service unavailable');
  expect(await readItem(client, tableName, recordId('lean-errors', 'retry'))).toBeUndefined();
  failing = false;
  expect(await handler({ id: 'retry' }, lambdaContext('lean-errors'))).toEqual({ id: 'retry', runs: 2 });
  expect(await handler({ id: 'retry' }, lambdaContext('lean-errors'))).toEqual({ id: 'retry', runs: 2 });
  expect(runs()).toBe(2);
});

test('encryption through the module: the response is sealed at rest with its key id, and duplicates replay it', async () => {
  const encrypted = new DynamoDBStore({ tableName, client, encryption: aesGcmEncryption(keyring(aesKey('k1')).encryption) });
  const { handler, runs } = orderHandler(encrypted);
  const first = await handler({ id: 'sealed' }, lambdaContext('lean-sealed'));
  const item = await readItem(client, tableName, recordId('lean-sealed', 'sealed'));
  expect(item?.keyId).toEqual({ S: 'k1' });
  expect(item!.response!.B![0]).toBe(1); // the sealed format's byte for a plaintext that is not compressed
  expect(Buffer.from(item!.response!.B!).toString('latin1')).not.toContain('"sealed"');
  expect(await handler({ id: 'sealed' }, lambdaContext('lean-sealed'))).toEqual(first);
  expect(runs()).toBe(1);
});

test('the key provider itself is refused with a TypeError that says to pass aesGcmEncryption(provider)', () => {
  const { encryption } = keyring(aesKey('k1'));
  const make = () => new DynamoDBStore({ tableName, encryption: encryption as never });
  expect(make).toThrow(TypeError);
  expect(make).toThrow(/`encryption` must be `aesGcmEncryption\(provider\)` from 'lambda-idempotency'/);
});

test('the main entry DynamoDBStore is a lean DynamoDBStore with more; the lean one has no transactions, atomic mode or operations', () => {
  const full = new FullDynamoDBStore({ tableName, client });
  expect(full).toBeInstanceOf(DynamoDBStore);
  expect(store).not.toBeInstanceOf(FullDynamoDBStore);
  for (const method of ['completeWithWrites', 'claimCompleted', 'inspect', 'forget']) {
    expect(typeof (full as unknown as Record<string, unknown>)[method]).toBe('function');
    expect(method in store).toBe(false);
  }
  expect([store.tableName, store.attributes.key, store.expiresAfterSeconds]).toEqual([tableName, 'id', undefined]);
});

test('transaction() writes and atomic mode are refused on the lean store with a TypeError, before anything is written', async () => {
  expect(() => idempotency({ store, atomic: true })).toThrow(
    new TypeError("idempotency: `atomic: true` needs a store with transactions, such as the DynamoDBStore of 'lambda-idempotency'."),
  );
  let runs = 0;
  const handler = middy(async (event: Order) => {
    runs++;
    transaction().put({ TableName: tableName, Item: { id: `order#${event.id}` } });
    return 'charged';
  }).use(idempotency({ store, key: (event: Order) => event.id }));
  expect(await thrown(handler({ id: 'tx' }, lambdaContext('lean-tx')))).toEqual(
    new TypeError("transaction(): the store of this idempotent call cannot commit writes with its record; use the DynamoDBStore of 'lambda-idempotency'."),
  );
  expect(runs).toBe(1);
  expect(await readItem(client, tableName, 'order#tx')).toBeUndefined();
  expect(await readItem(client, tableName, recordId('lean-tx', 'tx'))).toBeUndefined(); // released: a retry runs again
});
