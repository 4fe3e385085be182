/**
 * With `encryption` configured, only authenticated ciphertext is replayed: whoever can write the
 * item (but holds no key) cannot choose what a duplicate gets. Every forged or altered record fails
 * closed at the claim (`STORE_FAILURE`), and the function does not run. On DynamoDB Local, through
 * `makeIdempotent`.
 */

import { randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { type AttributeValue, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { aesGcmEncryption, DynamoDBStore, describeStoreFailure, makeIdempotent } from '../../lib/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { aesKey, keyring } from '../support/keyring.js';
import { rejection } from '../support/rejections.js';

const { client, tableName } = useFreshTable({ prefix: 'enc-tamper' });
const ring = keyring(aesKey('k1'));
const encrypted = new DynamoDBStore({ tableName, client, encryption: ring.encryption, compressAboveBytes: 1024 });

type Item = Record<string, AttributeValue>;
const FORGED = '{"refunded":1000000}';

/** A function on the encrypted store; `genuine` makes a real record of `id` and returns its item. */
function fixture() {
  const name = `t${randomUUID().slice(0, 8)}`;
  let runs = 0;
  const fn = makeIdempotent(
    async (input: { id: string; big?: boolean; fail?: boolean }) => {
      runs++;
      if (input.fail) throw Object.assign(new Error('declined'), { code: 'DECLINED' });
      return { refunded: 10, pad: input.big ? 'x'.repeat(4096) : '' };
    },
    { store: encrypted, name, key: (input) => input.id, isFinalError: () => true },
  );
  const id = (key: string) => recordId(name, key);
  return {
    fn,
    runs: () => runs,
    id,
    async genuine(key: string, input: { big?: boolean; fail?: boolean } = {}): Promise<Item> {
      await fn({ id: key, ...input }).catch(() => undefined);
      return (await readItem(client, tableName, id(key)))!;
    },
    write: (item: Item) => client.send(new PutItemCommand({ TableName: tableName, Item: item })),
    completed: (key: string, outcome: Item): Item => ({
      id: { S: id(key) },
      status: { S: 'COMPLETED' },
      expiration: { N: String(Math.floor(Date.now() / 1000) + 3600) },
      owner: { S: 'forger' },
      ...outcome,
    }),
  };
}

async function expectFailsClosed(f: ReturnType<typeof fixture>, key: string, runsBefore: number) {
  const error = await rejection(f.fn({ id: key }));
  expect(error.code).toBe('STORE_FAILURE');
  expect(f.runs()).toBe(runsBefore);
  return error;
}

describe('forged records, written without the key', () => {
  test.each<[string, Item]>([
    ['a plaintext S response', { response: { S: FORGED } }],
    ['a plaintext S response with a keyId', { response: { S: FORGED }, keyId: { S: 'k1' } }],
    ['a gzip B response without a keyId', { response: { B: gzipSync(FORGED) } }],
    ['a gzip B response with a keyId', { response: { B: gzipSync(FORGED) }, keyId: { S: 'k1' } }],
    ['a response of a type the store never writes (N)', { response: { N: '1' } }],
    ['a plaintext S final error', { error: { S: '{"name":"Error","message":"forged"}' } }],
    ['a plaintext S final error with a keyId', { error: { S: '{"name":"Error","message":"forged"}' }, keyId: { S: 'k1' } }],
  ])('%s fails closed: STORE_FAILURE, nothing runs', async (_what, outcome) => {
    const f = fixture();
    await f.write(f.completed('k', outcome));
    const error = await expectFailsClosed(f, 'k', 0);
    expect(describeStoreFailure(error.cause)).toBe('UnreadableRecordError');
  });
});

describe('genuine records, altered', () => {
  test('a flipped ciphertext bit fails authentication', async () => {
    const f = fixture();
    const item = await f.genuine('a');
    const sealed = Buffer.from(item.response!.B!);
    sealed[sealed.length - 1]! ^= 1;
    await f.write({ ...item, response: { B: sealed } });
    const error = await expectFailsClosed(f, 'a', 1);
    expect(describeStoreFailure(error.cause)).toBe('UnreadableRecordError');
  });

  test.each([
    ['a compressed response relabelled as uncompressed', true, 1],
    ['an uncompressed response relabelled as compressed', false, 2],
  ] as const)('%s (the format byte is outside the ciphertext) fails closed', async (_what, big, format) => {
    const f = fixture();
    const item = await f.genuine('b', { big });
    const sealed = Buffer.from(item.response!.B!);
    expect(sealed[0]).toBe(big ? 2 : 1);
    sealed[0] = format;
    await f.write({ ...item, response: { B: sealed } });
    await expectFailsClosed(f, 'b', 1);
  });

  test('a sealed response moved into the error attribute fails closed (and the reverse)', async () => {
    const f = fixture();
    const response = await f.genuine('r');
    const { response: sealedResponse, ...rest } = response;
    await f.write({ ...rest, error: sealedResponse! });
    await expectFailsClosed(f, 'r', 1);

    const failed = await f.genuine('e', { fail: true });
    expect(failed.error?.B).toBeDefined();
    const { error: sealedError, ...others } = failed;
    await f.write({ ...others, response: sealedError! });
    await expectFailsClosed(f, 'e', 2);
  });

  test('a sealed response copied from another record fails closed', async () => {
    const f = fixture();
    const donor = await f.genuine('donor');
    const target = await f.genuine('target');
    await f.write({ ...target, response: donor.response! });
    await expectFailsClosed(f, 'target', 2);
  });

  test('a sealed final error copied from another record fails closed', async () => {
    const f = fixture();
    const donor = await f.genuine('donor', { fail: true });
    const target = await f.genuine('target', { fail: true });
    expect(donor.error?.B).toBeDefined();
    await f.write({ ...target, error: donor.error! });
    await expectFailsClosed(f, 'target', 2);
  });

  test('the keyId pointed at another key of the ring fails authentication', async () => {
    const two = keyring(aesKey('k1'), aesKey('k2'));
    const store = new DynamoDBStore({ tableName, client, encryption: two.encryption });
    const name = `t${randomUUID().slice(0, 8)}`;
    let runs = 0;
    const fn = makeIdempotent(async (_: string) => ++runs, { store, name });
    await fn('x');
    const item = (await readItem(client, tableName, recordId(name, 'x')))!;
    await client.send(new PutItemCommand({ TableName: tableName, Item: { ...item, keyId: { S: 'k2' } } }));
    expect((await rejection(fn('x'))).code).toBe('STORE_FAILURE');
    expect(runs).toBe(1);
  });

  test('a sealed response whose keyId was removed fails closed, also with a key provider that ignores the id it is asked for', async () => {
    const key = aesKey('only');
    const asked: unknown[] = [];
    const encryption = aesGcmEncryption({ currentKey: () => key, keyById: (id) => (asked.push(id), key.key) });
    const store = new DynamoDBStore({ tableName, client, encryption });
    const name = `t${randomUUID().slice(0, 8)}`;
    let runs = 0;
    const fn = makeIdempotent(async (_: string) => ({ run: ++runs }), { store, name });
    await fn('x');
    const { keyId: _keyId, ...item } = (await readItem(client, tableName, recordId(name, 'x')))!;
    expect(item.response?.B).toBeDefined();
    await client.send(new PutItemCommand({ TableName: tableName, Item: item }));
    const error = await rejection(fn('x'));
    expect(error.code).toBe('STORE_FAILURE');
    expect(describeStoreFailure(error.cause)).toBe('UnreadableRecordError');
    expect(asked).toEqual([]); // the provider is never asked for a key without an id
    expect(runs).toBe(1);
  });
});

describe('what encryption does not protect: the record itself', () => {
  /** A record of each kind (a response, a final error), genuine, then without its sealed outcome and `keyId`. */
  async function* withoutOutcomes(f: ReturnType<typeof fixture>) {
    for (const [key, input] of [
      ['r', {}],
      ['e', { fail: true }],
    ] as const) {
      const { response: _response, error: _error, keyId: _keyId, ...stripped } = await f.genuine(key, input);
      yield [key, stripped] as const;
    }
  }

  test('a sealed outcome removed from its record (with its keyId) replays as a call that returned nothing: undefined', async () => {
    const f = fixture();
    for await (const [key, stripped] of withoutOutcomes(f)) {
      await f.write(stripped);
      await expect(f.fn({ id: key })).resolves.toBeUndefined();
    }
    expect(f.runs()).toBe(2);
  });

  test('a sealed outcome replaced by the responseOmitted mark gets RESPONSE_NOT_STORED, and a lost final error unmarked (errorOmitted removed) reads as a lost response', async () => {
    const f = fixture();
    for await (const [key, stripped] of withoutOutcomes(f)) {
      await f.write({ ...stripped, responseOmitted: { BOOL: true } });
      expect((await rejection(f.fn({ id: key }))).code).toBe('RESPONSE_NOT_STORED');
    }
    // The same final error, marked as the store marks one it could not seal, fails as the call did.
    const { error: _error, keyId: _keyId, ...lost } = await f.genuine('e2', { fail: true });
    await f.write({ ...lost, responseOmitted: { BOOL: true }, errorOmitted: { BOOL: true } });
    expect((await rejection(f.fn({ id: 'e2' }))).code).toBe('ERROR_NOT_STORED');
    expect(f.runs()).toBe(3);
  });

  test("an outcome sealed for an earlier record of the same key (another owner, since expired) opens in a later one: it is bound to the record key, not to one record's owner", async () => {
    const f = fixture();
    const earlier = await f.genuine('again', { fail: true });
    const { error: sealedError, keyId, ...rest } = earlier;
    await f.write({ ...rest, expiration: { N: '1' } }); // expired, without its outcome: the next call runs again
    const later = await f.genuine('again');
    expect(later.owner).not.toEqual(earlier.owner);
    const { response: _response, ...laterRest } = later;
    await f.write({ ...laterRest, error: sealedError!, keyId: keyId! });
    await expect(f.fn({ id: 'again' })).rejects.toMatchObject({ message: 'declined', code: 'DECLINED' }); // the earlier call's error, replayed
    expect(f.runs()).toBe(2);
  });
});

test('a store without encryption refuses an encrypted response or error rather than replaying it', async () => {
  const f = fixture();
  const response = await f.genuine('plainreader-r');
  const error = await f.genuine('plainreader-e', { fail: true });
  const plain = new DynamoDBStore({ tableName, client });
  for (const item of [response, error]) {
    const claim = plain.claim({ key: item.id!.S!, owner: 'o', leaseUntil: Date.now() + 1000, expiresAt: Math.floor(Date.now() / 1000) + 60, now: Date.now() });
    await expect(claim).rejects.toThrow(/configure `encryption` on the store to read it/);
  }
});
