/**
 * `waitForReplicas`: with a real primary and replica, every write the store reports is already on
 * the replica; with the replica gone, a claim fails (STORE_FAILURE, the function does not run)
 * while a replay, which writes nothing, still answers. A client pointed at the replica itself
 * cannot claim: every claim is a write.
 */
import { Redis } from 'ioredis';
import { makeIdempotent } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import type { RedisServer } from '../../tools/redis-server.js';
import { CLIENT_KINDS, startPrimaryAndReplica } from '../support/redis.js';
import { rejection } from '../support/rejections.js';

let primary: RedisServer;
let replica: RedisServer;
let fromReplica: Redis;

beforeAll(async () => {
  [primary, replica] = await startPrimaryAndReplica();
  fromReplica = new Redis(replica.port, replica.host);
});
afterAll(async () => {
  fromReplica.disconnect();
  await Promise.all([primary.stop(), replica.stop()]);
});

test.each(CLIENT_KINDS.map((kind) => [kind.name, kind] as const))('%s: a write is on the replica when the store reports it', async (name, kind) => {
  const { client, close } = await kind.open(primary.url);
  try {
    const store = new RedisStore({ client, keyPrefix: `wait-${name}:`, waitForReplicas: { replicas: 1, timeoutMillis: 2000 } });
    const now = Date.now();
    const claim = { key: 'k', owner: 'a', now, leaseUntil: now + 10_000, expiresAt: Math.floor(now / 1000) + 60 };
    expect(await store.claim(claim)).toEqual({ claimed: true });
    expect(await fromReplica.hget(`wait-${name}:k`, 'owner')).toBe('a');
    expect(await store.complete({ key: 'k', owner: 'a', expiresAt: claim.expiresAt, response: '"done"' })).toEqual({ completed: true, responseStored: true });
    expect(await fromReplica.hget(`wait-${name}:k`, 'status')).toBe('COMPLETED');
    expect(await store.forget('k')).toBe(true);
    expect(await fromReplica.exists(`wait-${name}:k`)).toBe(0);
  } finally {
    await close();
  }
});

test.each(CLIENT_KINDS.map((kind) => [kind.name, kind] as const))(
  '%s pointed at a replica (a reader endpoint): a new call fails closed (READONLY), the function does not run',
  async (name, kind) => {
    const { client, close } = await kind.open(replica.url);
    try {
      let runs = 0;
      const charge = makeIdempotent(async (_id: string) => ++runs, {
        store: new RedisStore({ client, keyPrefix: `on-replica-${name}:` }),
        name: 'charge',
        key: (id) => id,
      });
      const error = await rejection(charge('order-1'));
      expect([error.code, (error.cause as Error).message]).toEqual(['STORE_FAILURE', expect.stringMatching(/READONLY/)]);
      expect(runs).toBe(0);
    } finally {
      await close();
    }
  },
);

test('without the replica a claim fails and the function does not run; a replay still answers', async () => {
  const { client, close } = await CLIENT_KINDS[0]!.open(primary.url);
  try {
    const store = new RedisStore({ client, keyPrefix: 'wait-gone:', waitForReplicas: { replicas: 1, timeoutMillis: 300 } });
    let runs = 0;
    const charge = makeIdempotent(async (_id: string) => ++runs, { store, name: 'charge', key: (id) => id });
    expect(await charge('before')).toBe(1);
    await replica.stop();
    const error = await rejection(charge('after'));
    expect(error.code).toBe('STORE_FAILURE');
    expect((error.cause as Error).message).toMatch(/Only 0 of 1 replicas acknowledged the write within 300 ms/);
    expect(runs).toBe(1);
    expect(await charge('before')).toBe(1);
  } finally {
    await close();
  }
});
