/**
 * Two RedisStores on one server whose key prefixes overlap: one prefix is the other's beginning.
 * A record is `<keyPrefix><namespace>#<hash>`, with nothing between the prefix and the namespace,
 * so `'idempotency:'` + `'payments:refund'` is `'idempotency:payments:'` + `'refund'`: one Redis key
 * for two stores. Separating them would move the Redis key of every record whose namespace holds the
 * prefix's separator (a redelivery after the upgrade would run again), so the key stays, and each
 * record names the key it was written for: the other store fails closed instead of replaying it.
 */
import { randomUUID } from 'node:crypto';
import { forgetRecord, inspectRecord, makeIdempotent } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { inspector, ioredisClient } from '../support/redis.js';
import { rejection, thrown } from '../support/rejections.js';

const client = ioredisClient();
const raw = inspector();
afterAll(() => {
  client.disconnect();
  raw.disconnect();
});

function stores(run: string) {
  return { shared: new RedisStore({ client, keyPrefix: `overlap-${run}:` }), team: new RedisStore({ client, keyPrefix: `overlap-${run}:payments:` }) };
}

function refunds(run: string) {
  const calls: string[] = [];
  const { shared, team } = stores(run);
  const sharedRefund = makeIdempotent(async (id: string) => (calls.push(`a:${id}`), { refunded: 'by the shared store' }), {
    store: shared,
    name: 'payments:refund',
    key: (id) => id,
  });
  const teamRefund = makeIdempotent(async (id: string) => (calls.push(`b:${id}`), { refunded: 'by the team store' }), {
    store: team,
    name: 'refund',
    key: (id) => id,
  });
  return { calls, sharedRefund, teamRefund };
}

test('a store whose prefix begins another store’s never replays that store’s records (different names, same key): it fails closed, naming both keys', async () => {
  const run = randomUUID();
  const { calls, sharedRefund, teamRefund } = refunds(run);
  expect(await sharedRefund('r-1')).toEqual({ refunded: 'by the shared store' });
  const error = await rejection(teamRefund('r-1'));
  expect(error.code).toBe('STORE_FAILURE');
  expect(error.message).toMatch(
    /^STORE_FAILURE: The idempotency store failed \(a live record .* another store, whose keyPrefix overlaps this one's \('overlap-.*:payments:'\): give stores on one server prefixes none of which begins another/,
  );
  expect((error.cause as Error).message).toMatch(/was written for the key 'payments:refund#[\w-]+', not 'refund#[\w-]+'/);
  // The shared store's record is untouched: it still replays, and neither function ran again.
  expect(await sharedRefund('r-1')).toEqual({ refunded: 'by the shared store' });
  expect(calls).toEqual(['a:r-1']);
  expect(await raw.keys(`overlap-${run}:*`)).toHaveLength(1);
});

test('a record written before records named their key is still replayed by its own store', async () => {
  const run = randomUUID();
  const { calls, sharedRefund } = refunds(run);
  expect(await sharedRefund('r-2')).toEqual({ refunded: 'by the shared store' });
  const [stored] = await raw.keys(`overlap-${run}:*`);
  await raw.hdel(stored!, 'key');
  expect(await sharedRefund('r-2')).toEqual({ refunded: 'by the shared store' });
  expect(calls).toEqual(['a:r-2']);
});

test('the operations tools never delete or show another store’s record as their own: forgetRecord keeps it, inspectRecord fails saying so', async () => {
  const run = randomUUID();
  const { calls, sharedRefund } = refunds(run);
  const { team } = stores(run);
  expect(await sharedRefund('r-3')).toEqual({ refunded: 'by the shared store' });
  const address = { store: team, name: 'refund', key: 'r-3' };
  expect((await thrown(inspectRecord(address))).message).toMatch(
    /^STORE_FAILURE: The idempotency record .* was written for the key 'payments:refund#[\w-]+', not 'refund#[\w-]+'.*keyPrefix overlaps/,
  );
  expect([await forgetRecord(address), await forgetRecord({ ...address, onlyIf: 'COMPLETED' })]).toEqual([false, false]);
  // Deleted, the shared store's duplicate would run the refund again.
  expect(await sharedRefund('r-3')).toEqual({ refunded: 'by the shared store' });
  expect(calls).toEqual(['a:r-3']);
});
