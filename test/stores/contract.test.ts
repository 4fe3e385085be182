/**
 * The store contract on every store the library ships: InMemoryStore, DynamoDBStore on DynamoDB
 * Local, and RedisStore on the run's redis-server with both clients (with the TTL check).
 */
import { RedisStore } from '../../lib/redis/index.js';
import { InMemoryStore, storeContract } from '../../lib/testing/index.js';
import { useFreshTable } from '../support/dynamodb.js';
import { CLIENT_KINDS, type ClientKind, inspector, pttl } from '../support/redis.js';

describe('InMemoryStore', () => {
  for (const check of storeContract(() => new InMemoryStore())) test(check.name, check.run);
});

describe('DynamoDBStore on DynamoDB Local', () => {
  const { store } = useFreshTable({ prefix: 'contract' });
  for (const check of storeContract(() => store)) test(check.name, check.run);
});

for (const kind of CLIENT_KINDS) {
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
