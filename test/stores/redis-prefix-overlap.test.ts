/**
 * Two RedisStores on one server whose key prefixes overlap: one prefix is the other's beginning.
 * A record is `<keyPrefix><namespace>#<hash>`, with nothing between the prefix and the namespace,
 * so `'idempotency:'` + `'payments:refund'` is `'idempotency:payments:'` + `'refund'`.
 */
import { randomUUID } from 'node:crypto';
import { makeIdempotent } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { inspector, ioredisClient } from '../support/redis.js';

const client = ioredisClient();
const raw = inspector();
afterAll(() => {
  client.disconnect();
  raw.disconnect();
});

// Separating them changes the Redis key of every record whose namespace holds the prefix's
// separator (a redelivery after the upgrade would run again): held for a decision, documented in
// docs/redis.md. `test.failing` turns red once it is fixed.
test.failing('a store whose prefix begins another store’s never replays that store’s records (different names, same key)', async () => {
  const run = randomUUID();
  const shared = new RedisStore({ client, keyPrefix: `overlap-${run}:` });
  const team = new RedisStore({ client, keyPrefix: `overlap-${run}:payments:` });
  const refunds: string[] = [];
  const sharedRefund = makeIdempotent(async (id: string) => (refunds.push(`a:${id}`), { refunded: 'by the shared store' }), {
    store: shared,
    name: 'payments:refund',
    key: (id) => id,
  });
  const teamRefund = makeIdempotent(async (id: string) => (refunds.push(`b:${id}`), { refunded: 'by the team store' }), {
    store: team,
    name: 'refund',
    key: (id) => id,
  });
  expect(await sharedRefund('r-1')).toEqual({ refunded: 'by the shared store' });
  const second = await teamRefund('r-1');
  // One Redis key for both: the team store replays the shared store's response, and its refund never runs.
  expect(await raw.keys(`overlap-${run}:*`)).toHaveLength(2);
  expect(second).toEqual({ refunded: 'by the team store' });
  expect(refunds).toEqual(['a:r-1', 'b:r-1']);
});
