/**
 * `waitForReplicas`: with a real primary and replica, every write the store reports is already on
 * the replica; with the replica gone, a claim fails (STORE_FAILURE, the function does not run)
 * while a replay, which writes nothing, still answers. A claim or completion sent again after its
 * answer was lost (a client that resends) finds its own record and still counts only once the
 * replica has it. A client pointed at the replica itself cannot claim: every claim is a write.
 */
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { makeIdempotent } from '../../lib/index.js';
import { type RedisClient, RedisStore } from '../../lib/redis/index.js';
import { CLAIM, COMPLETE } from '../../lib/redis/scripts.js';
import type { RedisServer } from '../../tools/redis-server.js';
import { CLIENT_KINDS, startPrimaryAndReplica, until } from '../support/redis.js';
import { rejection, thrown } from '../support/rejections.js';
import { TcpProxy } from '../support/tcp-proxy.js';

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

test('a write that fewer replicas acknowledge than waitForReplicas asks for fails, though some did: one of two is not enough', async () => {
  const { client, close } = await CLIENT_KINDS[0]!.open(primary.url);
  try {
    // The one replica there acknowledges within the wait; the second never can.
    const store = new RedisStore({ client, keyPrefix: 'one-of-two:', waitForReplicas: { replicas: 2, timeoutMillis: 2000 } });
    const now = Date.now();
    const error = await thrown(store.claim({ key: 'k', owner: 'a', now, leaseUntil: now + 10_000, expiresAt: Math.floor(now / 1000) + 60 }));
    expect([error.name, error.message]).toEqual([
      'ReplicaWaitTimeout',
      'Only 1 of 2 replicas acknowledged the write within 2000 ms: the primary has it, but a failover could lose it.',
    ]);
    expect(await until(() => fromReplica.hget('one-of-two:k', 'owner'))).toBe('a');
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

/**
 * Points the replica at the primary again, and returns once it has every write so far: a replica
 * the primary lists as online may still be loading what it was sent, and the next test's WAIT
 * would not count it in time.
 */
async function reattachReplica(raw: Redis): Promise<void> {
  await fromReplica.call('REPLICAOF', primary.host, String(primary.port));
  await raw.set('replica-caught-up', String(Date.now()));
  expect(await raw.call('WAIT', '1', '10000')).toBe(1);
}

describe('a write sent again after its answer was lost finds its own record', () => {
  let raw: Redis;
  beforeAll(() => {
    raw = new Redis(primary.port, primary.host);
  });
  afterAll(() => raw.disconnect());

  /** Detaches the replica (it stops receiving writes, and WAIT counts it no more) until `resume`. */
  async function detachReplica(): Promise<{ resume(): Promise<void> }> {
    await fromReplica.call('REPLICAOF', 'NO', 'ONE');
    return {
      resume: async () => {
        await reattachReplica(raw);
      },
    };
  }

  /** Stores on `client`: one whose WAIT gives up soon, for a replica that is away, and one that waits long enough for one that is there. */
  const stores = (client: RedisClient, keyPrefix: string) => ({
    detached: new RedisStore({ client, keyPrefix, waitForReplicas: WAIT }),
    attached: new RedisStore({ client, keyPrefix, waitForReplicas: { replicas: 1, timeoutMillis: 5000 } }),
  });
  const REPLICA_ERROR = /Only 0 of 1 replicas acknowledged the write within 300 ms/;
  const WAIT = { replicas: 1, timeoutMillis: 300 };

  /**
   * A call on `client` whose claim reaches the primary while the replica is away, its answer (and
   * WAIT's) lost to a connection reset, after a first call (connected, the eviction policy read, the
   * scripts known to the server) that waits long enough for a replica that has just synced. The
   * replica stays away until `replication.resume()`.
   */
  async function claimAnswerLost(client: RedisClient, proxy: TcpProxy, keyPrefix: string) {
    const { detached, attached } = stores(client, keyPrefix);
    await makeIdempotent(async () => 'warm', { store: attached, name: 'pay' })('warm');
    let runs = 0;
    const run = async (_id: string) => ++runs;
    const pay = makeIdempotent(run, { store: detached, name: 'pay' });
    // The same call on a store whose WAIT has time for a replica that is back, under any load.
    const payAttached = makeIdempotent(run, { store: attached, name: 'pay' });
    const replication = await detachReplica();
    try {
      proxy.loseReplies();
      const first = rejection(pay('k'));
      await until(async () => (await raw.keys(`${keyPrefix}*`)).length === 2); // the warm call's record and this one's
      await proxy.cut();
      await proxy.restore();
      return { error: await first, runs: () => runs, payAttached, replication };
    } catch (error) {
      await replication.resume();
      throw error;
    }
  }

  test('ioredis with its offline queue resends a claim whose answer a reset lost: finding its own record, with the replica away, it fails closed and the function does not run', async () => {
    const proxy = await TcpProxy.start(primary.port);
    // ioredis's defaults: commands sent but unanswered when the connection drops are sent again once it is back.
    const client = new Redis(proxy.port, '127.0.0.1', { retryStrategy: () => 50 });
    let replication: { resume(): Promise<void> } | undefined;
    try {
      const lost = await claimAnswerLost(client, proxy, 'resent-by-ioredis:');
      replication = lost.replication;
      expect([lost.error.code, (lost.error.cause as Error).message]).toEqual(['STORE_FAILURE', expect.stringMatching(REPLICA_ERROR)]);
      expect(lost.runs()).toBe(0);
    } finally {
      await replication?.resume();
      client.disconnect();
      await proxy.cut();
    }
  });

  test('node-redis with its offline queue, whose answer to a claim a reset lost: the function does not run, and a retry once the client is back runs it', async () => {
    const proxy = await TcpProxy.start(primary.port);
    // node-redis's defaults (the offline queue on): commands written but unanswered when the connection drops fail; those sent while it is away wait for it.
    const client = createClient({ url: `redis://127.0.0.1:${proxy.port}`, socket: { reconnectStrategy: () => 50 } });
    client.on('error', () => undefined);
    let replication: { resume(): Promise<void> } | undefined;
    try {
      await client.connect();
      const lost = await claimAnswerLost(client, proxy, 'resent-by-node-redis:');
      replication = lost.replication;
      // Not sent again by the client: the connection's loss is the failure.
      expect(lost.error.code).toBe('STORE_FAILURE');
      expect(lost.runs()).toBe(0);
      await lost.replication.resume();
      replication = undefined;
      // The failed call's claim, released once the client was back, does not hold the key until its lease.
      expect(await lost.payAttached('k')).toBe(1);
    } finally {
      await replication?.resume();
      client.destroy();
      await proxy.cut();
    }
  });

  test.each(CLIENT_KINDS.map((kind) => [kind.name, kind] as const))(
    '%s: a claim whose first send never reached the replica fails; once the replica has it, the claim holds the key',
    async (name, kind) => {
      const { client, close } = await kind.open(primary.url);
      const replication = await detachReplica();
      try {
        const prefix = `resent-claim-${name}:`;
        const { detached, attached } = stores(client, prefix);
        const now = Date.now();
        const claim = { key: 'k', owner: 'a', now, leaseUntil: now + 60_000, expiresAt: Math.floor(now / 1000) + 120 };
        // The first send, applied on the primary, its answer lost before the WAIT after it could count the replica.
        await raw.eval(CLAIM.source, 1, `${prefix}k`, 'a', String(claim.leaseUntil), String(claim.expiresAt), String(now), '120000');
        expect(await fromReplica.exists(`${prefix}k`)).toBe(0);
        // A failover now would lose the record, and another attempt could claim the key and run the function again.
        expect((await thrown(detached.claim(claim))).message).toMatch(REPLICA_ERROR);
        await replication.resume();
        expect(await attached.claim(claim)).toEqual({ claimed: false, record: expect.objectContaining({ owner: 'a', status: 'INPROGRESS' }) });
        expect(await fromReplica.hgetall(`${prefix}k`)).toEqual(await raw.hgetall(`${prefix}k`));
      } finally {
        await replication.resume();
        await close();
      }
    },
  );

  test.each(CLIENT_KINDS.map((kind) => [kind.name, kind] as const))(
    '%s: a completion whose first send never reached the replica fails; once the replica has it, it reads as completed',
    async (name, kind) => {
      const { client, close } = await kind.open(primary.url);
      let replication: { resume(): Promise<void> } | undefined;
      try {
        const prefix = `resent-completion-${name}:`;
        const { detached, attached } = stores(client, prefix);
        const now = Date.now();
        const expiresAt = Math.floor(now / 1000) + 120;
        expect(await attached.claim({ key: 'k', owner: 'a', now, leaseUntil: now + 60_000, expiresAt })).toEqual({ claimed: true });
        replication = await detachReplica();
        await raw.eval(COMPLETE.source, 1, `${prefix}k`, 'a', String(expiresAt), '120000', 'response', '"done"');
        expect(await fromReplica.hget(`${prefix}k`, 'status')).toBe('INPROGRESS');
        // A failover now would bring the INPROGRESS record back, and a duplicate after its lease would run the function again.
        const completion = { key: 'k', owner: 'a', expiresAt, now, response: '"done"' };
        const error = await thrown(detached.complete(completion));
        expect([error.name, error.message]).toEqual(['ReplicaWaitTimeout', expect.stringMatching(REPLICA_ERROR)]);
        expect(error.message).toContain('the primary has it, but a failover could lose it');
        // Another attempt's completion finds the record not its own: it writes nothing, so there is nothing to wait for.
        expect(await detached.complete({ ...completion, owner: 'b' })).toEqual({
          completed: false,
          record: expect.objectContaining({ owner: 'a', status: 'COMPLETED' }),
        });
        await replication.resume();
        expect(await attached.complete(completion)).toEqual({
          completed: false,
          record: expect.objectContaining({ owner: 'a', status: 'COMPLETED', response: '"done"' }),
        });
        expect(await fromReplica.hget(`${prefix}k`, 'status')).toBe('COMPLETED');
      } finally {
        await replication?.resume();
        await close();
      }
    },
  );
});

test('through makeIdempotent, a completion the replica does not acknowledge: the warning does not claim the record INPROGRESS, and names the replica wait; a duplicate replays', async () => {
  const client = new Redis(primary.port, primary.host);
  const raw = new Redis(primary.port, primary.host);
  const warnings: string[] = [];
  const detached = { done: false };
  try {
    let runs = 0;
    const pay = makeIdempotent(
      async (_id: string) => {
        // The replica stops receiving writes while the function runs: the claim reached it, the completion will not.
        await fromReplica.call('REPLICAOF', 'NO', 'ONE');
        detached.done = true;
        return ++runs;
      },
      {
        store: new RedisStore({ client, keyPrefix: 'unacknowledged:', waitForReplicas: { replicas: 1, timeoutMillis: 300 } }),
        name: 'pay',
        logger: { warn: (line) => void warnings.push(line) },
      },
    );
    expect(await pay('k')).toBe(1);
    expect(warnings.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({
        message:
          'lambda-idempotency: could not mark the record COMPLETED; unless the write applied all the same or was refused (see `error`), it stays INPROGRESS until its lease ends',
        error: 'ReplicaWaitTimeout',
      }),
    ]);
    const [key] = await raw.keys('unacknowledged:*');
    expect(await raw.hget(key!, 'status')).toBe('COMPLETED');
    expect(await pay('k')).toBe(1);
    expect(runs).toBe(1);
  } finally {
    if (detached.done) {
      await reattachReplica(raw);
    }
    client.disconnect();
    raw.disconnect();
  }
});

test('without the replica a claim fails and the function does not run; a replay still answers', async () => {
  const { client, close } = await CLIENT_KINDS[0]!.open(primary.url);
  try {
    const store = new RedisStore({ client, keyPrefix: 'wait-gone:', waitForReplicas: { replicas: 1, timeoutMillis: 300 } });
    let runs = 0;
    const charge = makeIdempotent(async (_id: string) => ++runs, { store, name: 'charge', key: (id) => id });
    // With the replica there, a store that waits long enough for it (a loaded machine can take more than 300 ms to acknowledge).
    const patient = new RedisStore({ client, keyPrefix: 'wait-gone:', waitForReplicas: { replicas: 1, timeoutMillis: 10_000 } });
    expect(await makeIdempotent(async (_id: string) => ++runs, { store: patient, name: 'charge', key: (id) => id })('before')).toBe(1);
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

// WAIT is in @slow and @connection, not @write: an ACL written by category can leave it out. Its
// refusal is no acknowledgement, and a claim that may not be on any replica must not count.
test.each(CLIENT_KINDS.map((kind) => [kind.name, kind] as const))(
  '%s, as a user whose ACL refuses WAIT: a claim fails with the refusal (STORE_FAILURE), the function does not run',
  async (name, kind) => {
    const admin = new Redis(primary.port, primary.host);
    await admin.acl('SETUSER', 'no-wait', 'on', '>secret', '~*', '&*', '+@all', '-wait');
    const { client, close } = await kind.open(`redis://no-wait:secret@${primary.host}:${primary.port}`);
    try {
      let runs = 0;
      const store = new RedisStore({ client, keyPrefix: `no-wait-${name}:`, waitForReplicas: { replicas: 1, timeoutMillis: 2000 } });
      const error = await rejection(makeIdempotent(async (_id: string) => ++runs, { store, name: 'charge' })('order-1'));
      expect([error.code, (error.cause as Error).message]).toEqual(['STORE_FAILURE', expect.stringMatching(/^NOPERM.*wait/i)]);
      expect(runs).toBe(0);
    } finally {
      await close();
      await admin.acl('DELUSER', 'no-wait').finally(() => admin.disconnect());
    }
  },
);

test.each(CLIENT_KINDS.map((kind) => [kind.name, kind] as const))(
  '%s: a forget that deletes nothing wrote nothing a failover could lose: false, without waiting for replicas; one that deletes waits',
  async (name, kind) => {
    const { client, close } = await kind.open(primary.url);
    try {
      // Two replicas asked for, at most one there: WAIT never counts enough for a write.
      const store = new RedisStore({ client, keyPrefix: `forget-nothing-${name}:`, waitForReplicas: { replicas: 2, timeoutMillis: 50 } });
      const tooFew = /of 2 replicas acknowledged the write within 50 ms/;
      expect(await store.forget('none')).toBe(false);
      const now = Date.now();
      await expect(store.claim({ key: 'k', owner: 'a', now, leaseUntil: now + 10_000, expiresAt: Math.floor(now / 1000) + 60 })).rejects.toThrow(tooFew);
      expect(await store.forget('k', 'COMPLETED')).toBe(false);
      await expect(store.forget('k')).rejects.toThrow(tooFew);
    } finally {
      await close();
    }
  },
);
