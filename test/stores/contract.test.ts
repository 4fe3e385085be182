/**
 * The store contract on every store the library ships: InMemoryStore (also encrypting), DynamoDBStore on DynamoDB
 * Local (the main entry's, and the lean one of `lambda-idempotency/dynamodb`), and RedisStore on
 * the run's redis-server with both clients, each in its current major version (6) and the
 * previous one (5) that the peer ranges still allow (with the TTL check).
 */
import { type AttributeValue, type DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { jest } from '@jest/globals';
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import { aesGcmEncryption, DynamoDBStore, type OutcomeEncryption } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { type HandWrittenRecord, InMemoryStore, storeContract, type WriteRecord } from '../../lib/testing/index.js';
import { useFreshTable } from '../support/dynamodb.js';
import { aesKey, keyring } from '../support/keyring.js';
import { CLIENT_KINDS, type ClientKind, inspector, PREVIOUS_CLIENT_KINDS, pttl } from '../support/redis.js';

/** The record's fields as strings, under the names a Redis hash and InMemoryStore keep them. */
const fieldsOf = ({ key: _key, ...fields }: HandWrittenRecord): Record<string, string> =>
  Object.fromEntries(Object.entries(fields).flatMap(([name, value]) => (value === undefined ? [] : [[name, String(value)]])));

/** A hand-written item under the default attribute names. */
const writeItem =
  (client: DynamoDBClient, tableName: string): WriteRecord =>
  async (_store, record) => {
    const item: Record<string, AttributeValue> = { id: { S: record.key }, status: { S: record.status }, owner: { S: record.owner } };
    if (record.expiresAt !== undefined) item.expiration = { N: String(record.expiresAt) };
    if (record.leaseUntil !== undefined) item.leaseUntil = { N: String(record.leaseUntil) };
    await client.send(new PutItemCommand({ TableName: tableName, Item: item }));
  };

describe('InMemoryStore', () => {
  // The store's own map: a unit test has no other way in, which is what makes a record hand-written.
  const writeRecord: WriteRecord = async (store, record) =>
    void (store as unknown as { records: Map<string, Record<string, string>> }).records.set(record.key, fieldsOf(record));
  const sealing = (encryption: OutcomeEncryption) => new InMemoryStore({ encryption });
  for (const check of storeContract(() => new InMemoryStore(), { writeRecord, sealing })) test(check.name, check.run);
});

describe('InMemoryStore, encrypting and compressing every response', () => {
  const encryption = aesGcmEncryption(keyring(aesKey('k1')).encryption);
  for (const check of storeContract(() => new InMemoryStore({ encryption, compressAboveBytes: 0 }))) test(check.name, check.run);
});

describe("InMemoryStore, under Jest's default fake timers (a project that fakes them for every test)", () => {
  // Captured before the timers are faked: a check that waits on a faked timer fails in 5 s of real time.
  const realSetTimeout = setTimeout;
  const realClearTimeout = clearTimeout;
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());
  for (const check of storeContract(() => new InMemoryStore())) {
    test(check.name, async () => {
      let timer: NodeJS.Timeout | undefined;
      const stuck = new Promise<never>((_, reject) => (timer = realSetTimeout(reject, 5_000, new Error('waits on a faked timer'))));
      await Promise.race([check.run(), stuck]).finally(() => realClearTimeout(timer));
    });
  }
});

describe('DynamoDBStore on DynamoDB Local', () => {
  const { store, client, tableName } = useFreshTable({ prefix: 'contract' });
  const sealing = (encryption: OutcomeEncryption) => new DynamoDBStore({ tableName, client, encryption });
  for (const check of storeContract(() => store, { writeRecord: writeItem(client, tableName), sealing })) test(check.name, check.run);
});

describe('the lean DynamoDBStore on DynamoDB Local, encrypting', () => {
  const { client, tableName } = useFreshTable({ prefix: 'contract-lean' });
  const encryption = aesGcmEncryption(keyring(aesKey('k1')).encryption);
  const checks = storeContract(() => new LeanDynamoDBStore({ tableName, client, encryption }), {
    sharedRecords: true,
    writeRecord: writeItem(client, tableName),
    sealing: (sealedWith) => new LeanDynamoDBStore({ tableName, client, encryption: sealedWith }),
  });
  for (const check of checks) test(check.name, check.run);
});

for (const kind of [...CLIENT_KINDS, ...PREVIOUS_CLIENT_KINDS]) {
  describe(`RedisStore with ${kind.name}`, () => {
    let opened: Awaited<ReturnType<ClientKind['open']>>;
    const raw = inspector();
    const keyPrefix = `contract-${kind.name}:`;
    beforeAll(async () => {
      opened = await kind.open();
    });
    afterAll(async () => {
      await opened.close();
      raw.disconnect();
    });
    const checks = storeContract(() => new RedisStore({ client: opened.client, keyPrefix }), {
      sharedRecords: true,
      ttlOf: (key) => pttl(raw, keyPrefix + key),
      // No TTL: a hash written by hand has none unless its writer set one.
      writeRecord: async (_store, record) => void (await raw.hset(keyPrefix + record.key, fieldsOf(record))),
      sealing: (encryption) => new RedisStore({ client: opened.client, keyPrefix, encryption }),
    });
    for (const check of checks) test(check.name, check.run);
  });
}
