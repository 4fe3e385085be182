/**
 * The store contract on every store the library ships: InMemoryStore, DynamoDBStore on DynamoDB
 * Local (the main entry's, and the lean one of `lambda-idempotency/dynamodb`), and RedisStore on
 * the run's redis-server with both clients, each in its current major version (6) and the
 * previous one (5) that the peer ranges still allow (with the TTL check).
 */
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import { aesGcmEncryption } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { InMemoryStore, storeContract } from '../../lib/testing/index.js';
import { useFreshTable } from '../support/dynamodb.js';
import { aesKey, keyring } from '../support/keyring.js';
import { CLIENT_KINDS, type ClientKind, inspector, PREVIOUS_CLIENT_KINDS, pttl } from '../support/redis.js';

describe('InMemoryStore', () => {
  for (const check of storeContract(() => new InMemoryStore())) test(check.name, check.run);
});

describe('DynamoDBStore on DynamoDB Local', () => {
  const { store } = useFreshTable({ prefix: 'contract' });
  for (const check of storeContract(() => store)) test(check.name, check.run);
});

describe('the lean DynamoDBStore on DynamoDB Local, encrypting', () => {
  const { client, tableName } = useFreshTable({ prefix: 'contract-lean' });
  const encryption = aesGcmEncryption(keyring(aesKey('k1')).encryption);
  for (const check of storeContract(() => new LeanDynamoDBStore({ tableName, client, encryption }))) test(check.name, check.run);
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
    const checks = storeContract(() => new RedisStore({ client: opened.client, keyPrefix }), { ttlOf: (key) => pttl(raw, keyPrefix + key) });
    for (const check of checks) test(check.name, check.run);
  });
}
