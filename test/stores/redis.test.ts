/**
 * RedisStore on a real redis-server, with both clients: the eviction-policy guard, a flushed script
 * cache, binary-safe compressed and encrypted responses, clients that are still connecting, and
 * option validation.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { jest } from '@jest/globals';
import { Redis as Redis5 } from 'ioredis5';
import { createClient, createSentinel, RESP_TYPES } from 'redis';
import { createSentinel as createSentinel5 } from 'redis5';
import {
  aesGcmEncryption,
  describeStoreFailure,
  forgetRecord,
  hashKey,
  IdempotencyError,
  inspectRecord,
  makeIdempotent,
  type OutcomeEncryption,
} from '../../lib/index.js';
import { connectionOf } from '../../lib/redis/connection.js';
import { RedisStore } from '../../lib/redis/index.js';
import { CLAIM, FORGET } from '../../lib/redis/scripts.js';
import { ITEM_LIMIT_BYTES } from '../../lib/stored-outcome.js';
import { manualClock, storeContract } from '../../lib/testing/index.js';
import { freePort } from '../../tools/dynamodb-local.js';
import { type RedisServer, startRedisServer } from '../../tools/redis-server.js';
import { Turnstile } from '../support/gate.js';
import { gzipBomb } from '../support/gzip-bomb.js';
import { aesKey, keyring } from '../support/keyring.js';
import { CLIENT_KINDS, inspector, ioredisClient, NODE_REDIS_SOCKET, nodeRedisClient, pttl, redisUrl, ttlsGiven } from '../support/redis.js';
import { rejection, thrown } from '../support/rejections.js';

const raw = inspector();
afterAll(() => raw.disconnect());

const t0 = Date.now();
const claimRequest = (key: string, owner = 'owner-a') => ({ key, owner, now: t0, leaseUntil: t0 + 10_000, expiresAt: Math.floor(t0 / 1000) + 3600 });

describe('a flushed script cache (on a server of its own: no other test file loads scripts into it)', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(() => server.stop());

  for (const kind of CLIENT_KINDS) {
    test(`${kind.name}: after SCRIPT FLUSH every operation falls back to EVAL and the scripts are cached again`, async () => {
      const { client, close } = await kind.open(server.url);
      const direct = inspector(server.url);
      try {
        const store = new RedisStore({ client, keyPrefix: `flush-${kind.name}:` });
        await store.claim(claimRequest('warm'));
        await direct.script('FLUSH');
        expect(await store.claim(claimRequest('k'))).toEqual({ claimed: true });
        await direct.script('FLUSH');
        expect(await store.complete({ key: 'k', owner: 'owner-a', expiresAt: Math.floor(t0 / 1000) + 7200, response: '"ok"' })).toEqual({
          completed: true,
          responseStored: true,
        });
        await direct.script('FLUSH');
        expect(await store.release({ key: 'warm', owner: 'owner-a' })).toEqual({ released: true });
        await direct.script('FLUSH');
        expect(await store.forget('k')).toBe(true);
        // EVAL cached the script it ran; the flush had really emptied the cache.
        expect(await direct.script('EXISTS', FORGET.sha, CLAIM.sha)).toEqual([1, 0]);
      } finally {
        direct.disconnect();
        await close();
      }
    });
  }
});

describe('the eviction policy', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedisServer({ maxmemoryPolicy: 'volatile-lru' });
  });
  afterAll(() => server.stop());

  for (const kind of CLIENT_KINDS) {
    test(`${kind.name}: under volatile-lru nothing is claimed and the function does not run, until the policy is noeviction`, async () => {
      const { client, close } = await kind.open(server.url);
      const direct = inspector(server.url);
      try {
        await direct.config('SET', 'maxmemory-policy', 'volatile-lru');
        const store = new RedisStore({ client, keyPrefix: `${kind.name}:` });
        let runs = 0;
        const charge = makeIdempotent(async (_id: string) => ++runs, { store, name: 'charge', key: (id) => id });
        const error = (await charge('order-1').catch((e: unknown) => e)) as IdempotencyError;
        expect(error.code).toBe('STORE_FAILURE');
        expect((error.cause as Error).message).toMatch(/maxmemory-policy is 'noeviction' \(here: 'volatile-lru'\)/);
        // Named by the error itself, which is all Lambda's log of an uncaught error shows (its cause is not enumerable).
        expect(error.message).toMatch(
          /^STORE_FAILURE: The idempotency store failed \(RedisStore claims only on servers whose maxmemory-policy is 'noeviction' \(here: 'volatile-lru'\).*`allowEviction: true`.*\(docs\/redis\.md\)\); the function did not run\.$/,
        );
        expect(runs).toBe(0);
        expect(await direct.keys(`${kind.name}:*`)).toEqual([]);
        // The refusal is not remembered: once the policy is fixed, the same client claims.
        await direct.config('SET', 'maxmemory-policy', 'noeviction');
        expect(await charge('order-1')).toBe(1);
      } finally {
        direct.disconnect();
        await close();
      }
    });
  }

  test('a claim whose retention and lease ended is a TypeError before anything is sent, the eviction check included', async () => {
    const client = ioredisClient(server.url);
    const direct = inspector(server.url);
    try {
      // A server whose policy the check would refuse: the caller's mistake is named, not the policy.
      await direct.config('SET', 'maxmemory-policy', 'volatile-lru');
      const store = new RedisStore({ client, keyPrefix: 'ended:' });
      const ended = { leaseUntil: t0 - 1, expiresAt: Math.floor(t0 / 1000) - 10 };
      await expect(store.claim({ ...claimRequest('k'), ...ended })).rejects.toThrow(/^RedisStore: a record's retention and lease must end after `now`/);
      expect(await direct.keys('ended:*')).toEqual([]);
    } finally {
      direct.disconnect();
      client.disconnect();
    }
  });

  // `+@all -@dangerous` is the usual application user (ElastiCache RBAC's example): INFO is in @dangerous.
  test.each(CLIENT_KINDS.map((kind) => [kind.name, kind] as const))(
    '%s, as a user whose ACL refuses INFO (`+@all -@dangerous`): nothing is claimed, the failure says why and names `allowEviction`, which then claims',
    async (_, kind) => {
      const direct = inspector(server.url);
      await direct.acl('SETUSER', 'no-info', 'on', '>secret', '~*', '&*', '+@all', '-@dangerous').finally(() => direct.disconnect());
      // ioredis skips its own ready check (INFO) on NOPERM, with a warning.
      const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
      const { client, close } = await kind.open(`redis://no-info:secret@127.0.0.1:${server.port}`);
      try {
        let runs = 0;
        const charge = (allowEviction: boolean) =>
          makeIdempotent(async (_id: string) => ++runs, {
            store: new RedisStore({ client, keyPrefix: `no-info-${kind.name}:`, allowEviction }),
            name: 'charge',
          });
        const error = await rejection(charge(false)('order-1'));
        expect(error.code).toBe('STORE_FAILURE');
        expect((error.cause as Error).message).toMatch(/maxmemory-policy .*INFO.*NOPERM.*`allowEviction: true`/);
        expect(error.message).toMatch(
          /^STORE_FAILURE: The idempotency store failed \(RedisStore claims only .*maxmemory-policy .*INFO.*NOPERM.*`allowEviction: true`/,
        );
        expect(runs).toBe(0);
        expect(await charge(true)('order-1')).toBe(1);
      } finally {
        warn.mockRestore();
        await close();
      }
    },
  );

  // Hardened and some managed servers rename INFO away; ioredis then needs `enableReadyCheck: false`, its ready check being INFO too.
  const RENAMED_INFO_CLIENTS = [
    {
      name: 'ioredis',
      open: async (url: string) => {
        const client = ioredisClient(url, { enableReadyCheck: false });
        return { client, close: () => client.disconnect() };
      },
    },
    {
      name: 'node-redis',
      open: async (url: string) => {
        const client = nodeRedisClient(url);
        await client.connect();
        return { client, close: () => client.destroy() };
      },
    },
  ];
  test.each(RENAMED_INFO_CLIENTS.map((kind) => [kind.name, kind] as const))(
    '%s, on a server whose INFO was renamed away (`rename-command INFO ""`): nothing is claimed, the failure says why and names `allowEviction`, which then claims',
    async (name, kind) => {
      const renamed = await startRedisServer({ extraArgs: ['--rename-command', 'INFO', ''] });
      const { client, close } = await kind.open(renamed.url);
      try {
        let runs = 0;
        const charge = (allowEviction: boolean) =>
          makeIdempotent(async (_id: string) => ++runs, {
            store: new RedisStore({ client, keyPrefix: `no-info-command-${name}:`, allowEviction }),
            name: 'charge',
          });
        const error = await rejection(charge(false)('order-1'));
        expect(error.code).toBe('STORE_FAILURE');
        expect((error.cause as Error).message).toMatch(/maxmemory-policy .*no INFO command.*unknown command.*`allowEviction: true`, which skips this check/);
        expect(error.message).toMatch(
          /^STORE_FAILURE: The idempotency store failed \(RedisStore claims only .*no INFO command.*`allowEviction: true`, which skips this check/,
        );
        expect(runs).toBe(0);
        expect(await charge(true)('order-1')).toBe(1);
      } finally {
        close();
        await renamed.stop();
      }
    },
  );

  test("ioredis with its ready check (INFO, by default) on a server whose INFO was renamed away: STORE_FAILURE that names `enableReadyCheck: false`, not a bare 'unknown command'", async () => {
    const renamed = await startRedisServer({ extraArgs: ['--rename-command', 'INFO', ''] });
    // Connected by the store's first call, so the wait sees that connection's failed ready check.
    const client = ioredisClient(renamed.url, { lazyConnect: true });
    try {
      const store = new RedisStore({ client, keyPrefix: 'ready-check:', allowEviction: true });
      const error = await rejection(makeIdempotent(async (_id: string) => 1, { store, name: 'charge' })('order-1'));
      expect(error.code).toBe('STORE_FAILURE');
      expect((error.cause as Error).message).toMatch(
        /ready check sends INFO, which this server does not have \(ERR unknown command.*`enableReadyCheck: false`/,
      );
      expect(error.message).toMatch(
        /^STORE_FAILURE: The idempotency store failed \(ioredis never became ready: .*`enableReadyCheck: false`.*\); the function did not run\.$/,
      );
    } finally {
      client.disconnect();
      await renamed.stop();
    }
  });

  test('a full node under noeviction: a new claim fails (STORE_FAILURE, the function does not run), a held record still completes, a claim or completion sent again finds its own record', async () => {
    const client = ioredisClient(server.url);
    const direct = inspector(server.url);
    try {
      await direct.config('SET', 'maxmemory-policy', 'noeviction');
      const store = new RedisStore({ client, keyPrefix: 'full:' });
      expect(await store.claim(claimRequest('held'))).toEqual({ claimed: true });
      await direct.config('SET', 'maxmemory', '1');
      let runs = 0;
      const charge = makeIdempotent(async (_id: string) => ++runs, { store, name: 'charge', key: (id) => id });
      const error = (await charge('order-1').catch((e: unknown) => e)) as IdempotencyError;
      expect([error.code, (error.cause as Error).message]).toEqual(['STORE_FAILURE', expect.stringMatching(/^OOM/)]);
      expect(runs).toBe(0);
      expect(await direct.keys('full:charge*')).toEqual([]);
      // A claim sent again writes its own record again, unchanged (for WAIT to count): that is no new memory.
      expect(await store.claim(claimRequest('held'))).toEqual({ claimed: false, record: expect.objectContaining({ owner: 'owner-a', status: 'INPROGRESS' }) });
      // Redis lets a script that has already written go on writing, so a completion is never half applied.
      const done = { key: 'held', owner: 'owner-a', expiresAt: Math.floor(t0 / 1000) + 3600, response: '"done"' };
      expect(await store.complete(done)).toEqual({ completed: true, responseStored: true });
      expect(await direct.hgetall('full:held')).toMatchObject({ status: 'COMPLETED', response: '"done"' });
      expect(await store.complete(done)).toEqual({ completed: false, record: expect.objectContaining({ owner: 'owner-a', status: 'COMPLETED' }) });
    } finally {
      await direct.config('SET', 'maxmemory', '0');
      client.disconnect();
      direct.disconnect();
    }
  });

  test('a client that passed the check is not asked again: one INFO for every claim of every store on it', async () => {
    const client = nodeRedisClient(server.url);
    const direct = inspector(server.url);
    try {
      await client.connect();
      await direct.config('SET', 'maxmemory-policy', 'noeviction');
      await direct.config('RESETSTAT');
      for (const keyPrefix of ['asked-once-a:', 'asked-once-b:']) {
        const store = new RedisStore({ client, keyPrefix });
        for (const key of ['k1', 'k2', 'k3']) expect(await store.claim(claimRequest(key))).toEqual({ claimed: true });
      }
      expect(await direct.info('commandstats')).toMatch(/^cmdstat_info:calls=1,/m);
    } finally {
      client.destroy();
      direct.disconnect();
    }
  });

  test('allowEviction: true claims under any policy', async () => {
    const client = ioredisClient(server.url);
    const direct = inspector(server.url);
    try {
      await direct.config('SET', 'maxmemory-policy', 'allkeys-lru');
      const store = new RedisStore({ client, keyPrefix: 'allowed:', allowEviction: true });
      expect(await store.claim(claimRequest('k'))).toEqual({ claimed: true });
    } finally {
      client.disconnect();
      direct.disconnect();
    }
  });
});

// An application user granted what the records look like (`+@hash +@scripting`) lacks the key
// commands the scripts also run (PEXPIRE, DEL: `@keyspace`); one granted `+@all -del` lacks DEL.
describe('an ACL user refused a command that the scripts run', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedisServer();
    const direct = inspector(server.url);
    await direct.acl('SETUSER', 'hash-only', 'on', '>secret', '~*', '&*', '-@all', '+@hash', '+@scripting', '+info', '+@connection');
    await direct.acl('SETUSER', 'no-del', 'on', '>secret', '~*', '&*', '+@all', '-del');
    direct.disconnect();
  });
  afterAll(() => server.stop());

  const users = [
    ['hash-only', /NOPERM .*'pexpire'.*RedisStore/],
    ['no-del', /NOPERM .*'del'.*RedisStore/],
  ] as const;
  for (const kind of CLIENT_KINDS) {
    test.each(users)(`${kind.name}, as %s: nothing is claimed nor left without a TTL, the failure names the commands refused`, async (user, named) => {
      const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
      const { client, close } = await kind.open(`redis://${user}:secret@127.0.0.1:${server.port}`);
      const direct = inspector(server.url);
      try {
        let runs = 0;
        const store = new RedisStore({ client, keyPrefix: `acl-${user}-${kind.name}:` });
        const charge = makeIdempotent(async (_id: string) => ++runs, { store, name: 'charge', key: (id) => id });
        const error = await rejection(charge('order-1'));
        expect([error.code, (error.cause as Error).message]).toEqual(['STORE_FAILURE', expect.stringMatching(named)]);
        expect(runs).toBe(0);
        expect(await direct.keys(`acl-${user}-${kind.name}:*`)).toEqual([]);
      } finally {
        warn.mockRestore();
        direct.disconnect();
        await close();
      }
    });
  }

  // docs/redis.md: `+@hash +@scripting` alone lacks DEL, PEXPIRE, PTTL and TYPE; each script names every one its user lacks.
  test.each(CLIENT_KINDS.map((kind) => [kind.name, kind] as const))(
    '%s, as a user granted `+@hash +@scripting`: a claim names DEL, PTTL and PEXPIRE, a forget TYPE and DEL, and nothing is written',
    async (_, kind) => {
      const { client, close } = await kind.open(`redis://hash-only:secret@127.0.0.1:${server.port}`);
      const direct = inspector(server.url);
      try {
        const keyPrefix = `acl-named-${kind.name}:`;
        const store = new RedisStore({ client, keyPrefix });
        await expect(store.claim(claimRequest('k'))).rejects.toThrow(/^NOPERM this user has no permissions to run 'del', 'pttl', 'pexpire', which RedisStore/);
        const refused = await rejection(forgetRecord({ store, id: 'charge#x' }));
        expect(refused.message).toMatch(/^STORE_FAILURE: The idempotency store failed \(NOPERM\); /);
        expect((refused.cause as Error).message).toMatch(/^NOPERM this user has no permissions to run 'type', 'del', which RedisStore/);
        expect(await direct.keys(`${keyPrefix}*`)).toEqual([]);
      } finally {
        direct.disconnect();
        await close();
      }
    },
  );

  // docs/redis.md lists every command the store sends and its scripts run: granted those alone, on the prefix's keys, every operation works.
  test.each(CLIENT_KINDS.map((kind) => [kind.name, kind] as const))(
    '%s, as a user granted only the commands docs/redis.md lists on the prefix: claim, completion, replay, release, inspectRecord, forgetRecord and WAIT all run',
    async (name, kind) => {
      const keyPrefix = `acl-listed-${name}:`;
      const direct = inspector(server.url);
      const commands = ['evalsha', 'eval', 'info', 'wait', 'hgetall', 'hmget', 'hset', 'hdel', 'del', 'pttl', 'pexpire', 'type'];
      // `@connection` (HELLO, AUTH, PING, CLIENT SETINFO…) is the client's own, not the store's.
      await direct.acl('SETUSER', `listed-${name}`, 'on', '>secret', `~${keyPrefix}*`, '-@all', '+@connection', ...commands.map((command) => `+${command}`));
      const { client, close } = await kind.open(`redis://listed-${name}:secret@127.0.0.1:${server.port}`);
      try {
        await direct.config('SET', 'maxmemory-policy', 'noeviction');
        const store = new RedisStore({ client, keyPrefix });
        let runs = 0;
        const charge = makeIdempotent(
          async (id: string) => {
            runs++;
            if (id === 'fails') throw new Error('declined');
            return `charged ${id}`;
          },
          { store, name: 'charge' },
        );
        expect([await charge('order-1'), await charge('order-1'), runs]).toEqual(['charged order-1', 'charged order-1', 1]);
        await expect(charge('fails')).rejects.toThrow('declined');
        await expect(charge('fails')).rejects.toThrow('declined');
        expect(runs).toBe(3); // released, so the retry ran
        expect(await inspectRecord({ store, name: 'charge', key: 'order-1' })).toMatchObject({ status: 'COMPLETED' });
        expect(await forgetRecord({ store, name: 'charge', key: 'order-1' })).toBe(true);
        expect(await charge('order-1')).toBe('charged order-1');
        expect(runs).toBe(4);
        // No replica here: WAIT runs (it is allowed) and answers 0, so the claim fails for want of a replica, not of a permission.
        const waiting = new RedisStore({ client, keyPrefix, waitForReplicas: { replicas: 1, timeoutMillis: 10 } });
        await expect(waiting.claim(claimRequest('waited'))).rejects.toMatchObject({ name: 'ReplicaWaitTimeout' });
      } finally {
        await direct.acl('DELUSER', `listed-${name}`);
        direct.disconnect();
        await close();
      }
    },
  );
});

for (const kind of CLIENT_KINDS) {
  describe(`${kind.name}`, () => {
    let opened: Awaited<ReturnType<(typeof kind)['open']>>;
    beforeAll(async () => {
      opened = await kind.open();
    });
    afterAll(() => opened.close());

    test('forgetRecord by lease leaves alone a retry that took a stuck record over: the retry runs alone and completes', async () => {
      const store = new RedisStore({ client: opened.client, keyPrefix: `fenced-${kind.name}:` });
      const id = `fenced#${hashKey('k')}`;
      const now = Date.now();
      await store.claim({ key: id, owner: 'crashed', now: now - 120_000, leaseUntil: now - 60_000, expiresAt: Math.floor(now / 1000) + 3600 });
      const seen = await inspectRecord({ store, id });
      const turnstile = new Turnstile();
      let runs = 0;
      const handler = async (_id: string) => {
        runs++;
        await turnstile.enter();
        return runs;
      };
      const retry = makeIdempotent(handler, { store, name: 'fenced' })('k');
      const inside = await turnstile.next();
      expect(await forgetRecord({ store, id, onlyIf: 'INPROGRESS', leaseUntil: seen!.leaseUntil! })).toBe(false);
      expect((await rejection(makeIdempotent(handler, { store, name: 'fenced' })('k'))).code).toBe('IN_PROGRESS');
      inside.open();
      expect(await retry).toBe(1);
      expect(await inspectRecord({ store, id })).toMatchObject({ status: 'COMPLETED' });
    });

    test('forget by lease never deletes a COMPLETED record, even one that still carries that lease (copied by hand from an attempt that held it)', async () => {
      const store = new RedisStore({ client: opened.client, keyPrefix: `lease-done-${kind.name}:` });
      const now = Date.now();
      const hash = `lease-done-${kind.name}:k`;
      const fields = { status: 'COMPLETED', owner: 'a', leaseUntil: String(now + 60_000), expiresAt: String(Math.floor(now / 1000) + 3600), response: '1' };
      await raw.hset(hash, fields);
      await raw.pexpire(hash, 3_600_000);
      expect([await store.forget('k', undefined, now + 60_000), await store.forget('k', 'COMPLETED', now + 60_000)]).toEqual([false, false]);
      expect(await raw.hgetall(hash)).toEqual(fields);
    });

    test('a live hash the store did not write fails closed, naming what is wrong and how to remove it; forgotten, the call runs', async () => {
      const keyPrefix = `malformed-${kind.name}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix });
      let runs = 0;
      const once = makeIdempotent(async (_id: string) => ++runs, { store, name: 'malformed' });
      const id = `malformed#${hashKey('k')}`;
      await raw.hset(keyPrefix + id, { status: 'DONE', owner: 'someone', expiresAt: String(Math.floor(Date.now() / 1000) + 60) });
      await raw.pexpire(keyPrefix + id, 60_000);
      const refused = await rejection(once('k'));
      expect(refused.code).toBe('STORE_FAILURE');
      expect(describeStoreFailure(refused.cause)).toBe('UnreadableRecordError');
      expect((refused.cause as Error).message).toBe(
        `The idempotency record ${id} in Redis is malformed (\`status\` is neither INPROGRESS nor COMPLETED): it was not written by this store. Remove it with forgetRecord; the next call with its key then runs.`,
      );
      expect(runs).toBe(0);
      expect(await forgetRecord({ store, id })).toBe(true);
      expect(await once('k')).toBe(1);
      expect(await once('k')).toBe(1);
    });

    test('a key that is not a hash (another application wrote a string there, without a TTL) fails closed, naming the record and how to remove it; forgotten, the call runs', async () => {
      const keyPrefix = `not-a-hash-${kind.name}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix });
      let runs = 0;
      const once = makeIdempotent(async (_id: string) => ++runs, { store, name: 'malformed' });
      const id = `malformed#${hashKey('k')}`;
      await raw.set(keyPrefix + id, 'a value of another application');
      const refused = await rejection(once('k'));
      expect(refused.code).toBe('STORE_FAILURE');
      expect(describeStoreFailure(refused.cause)).toBe('UnreadableRecordError');
      expect((refused.cause as Error).message).toBe(
        `The idempotency record ${id} in Redis is malformed (the key is not a hash): it was not written by this store. Remove it with forgetRecord; the next call with its key then runs.`,
      );
      await expect(inspectRecord({ store, id })).rejects.toThrow(/is malformed \(the key is not a hash\)/);
      expect(runs).toBe(0);
      // Only an unconditional forget removes it: it has no status, and no lease.
      expect(await forgetRecord({ store, id, onlyIf: 'COMPLETED' })).toBe(false);
      expect(await forgetRecord({ store, id, onlyIf: 'INPROGRESS', leaseUntil: 1 })).toBe(false);
      expect(await forgetRecord({ store, id })).toBe(true);
      expect(await once('k')).toBe(1);
      expect(await once('k')).toBe(1);
    });

    test('a live hash whose responseOmitted is not the 1 the store writes fails closed, rather than replay the call as one that returned undefined', async () => {
      const keyPrefix = `malformed-omitted-${kind.name}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix });
      let runs = 0;
      const once = makeIdempotent(async (_id: string) => ++runs, { store, name: 'malformed' });
      const id = `malformed#${hashKey('k')}`;
      await raw.hset(keyPrefix + id, { status: 'COMPLETED', owner: 'someone', expiresAt: String(Math.floor(Date.now() / 1000) + 60), responseOmitted: 'true' });
      await raw.pexpire(keyPrefix + id, 60_000);
      const refused = await rejection(once('k'));
      expect(refused.code).toBe('STORE_FAILURE');
      expect((refused.cause as Error).message).toContain('is malformed (`responseOmitted` is not 1)');
      expect(runs).toBe(0);
    });

    test('a live hash whose errorOmitted is not the 1 the store writes fails closed, rather than replay a failed call as a success', async () => {
      const keyPrefix = `malformed-error-omitted-${kind.name}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix });
      let runs = 0;
      const once = makeIdempotent(async (_id: string) => ++runs, { store, name: 'malformed' });
      const id = `malformed#${hashKey('k')}`;
      const expiresAt = String(Math.floor(Date.now() / 1000) + 60);
      await raw.hset(keyPrefix + id, { status: 'COMPLETED', owner: 'someone', expiresAt, responseOmitted: '1', errorOmitted: 'yes' });
      await raw.pexpire(keyPrefix + id, 60_000);
      const refused = await rejection(once('k'));
      expect(refused.code).toBe('STORE_FAILURE');
      expect((refused.cause as Error).message).toContain('is malformed (`errorOmitted` is not 1)');
      expect(runs).toBe(0);
    });

    test.each([
      ['no `owner`', { status: 'COMPLETED' }],
      ['no `expiresAt` number', { status: 'COMPLETED', owner: 'someone', expiresAt: 'tomorrow' }],
      ['`leaseUntil` is not a number', { status: 'INPROGRESS', owner: 'someone', leaseUntil: 'soon' }],
    ])('a live hash with %s fails closed, naming what is wrong: the function does not run', async (problem, fields) => {
      const keyPrefix = `malformed-fields-${kind.name}-${problem.length}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix });
      let runs = 0;
      const once = makeIdempotent(async (_id: string) => ++runs, { store, name: 'malformed' });
      const id = `malformed#${hashKey('k')}`;
      await raw.hset(keyPrefix + id, { expiresAt: String(Math.floor(Date.now() / 1000) + 60), ...fields });
      await raw.pexpire(keyPrefix + id, 60_000);
      const refused = await rejection(once('k'));
      expect(refused.code).toBe('STORE_FAILURE');
      expect((refused.cause as Error).message).toContain(`is malformed (${problem})`);
      expect(runs).toBe(0);
    });

    test('a hash the store did not write, past its retention, is taken over as DynamoDBStore takes over such an item: the call runs once', async () => {
      const keyPrefix = `malformed-past-${kind.name}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix });
      let runs = 0;
      const once = makeIdempotent(async (_id: string) => ++runs, { store, name: 'malformed' });
      await raw.hset(`${keyPrefix}malformed#${hashKey('k')}`, { status: 'DONE', expiresAt: String(Math.floor(Date.now() / 1000) - 60) });
      expect(await once('k')).toBe(1);
      expect(await once('k')).toBe(1);
    });

    test('records sealed through aesGcmEncryption(provider) and through the key provider itself read each other, across a rotation', async () => {
      const k2 = aesKey('k2');
      const ring = keyring(aesKey('k1'), k2);
      const keyPrefix = `forms-${kind.name}:`;
      const viaProvider = new RedisStore({ client: opened.client, keyPrefix, encryption: ring.encryption });
      const viaModule = new RedisStore({ client: opened.client, keyPrefix, encryption: aesGcmEncryption(ring.encryption) });
      let runs = 0;
      const charge = (store: RedisStore) =>
        makeIdempotent(async (input: { id: string; pad: number }) => ({ id: input.id, run: ++runs, pad: 'p'.repeat(input.pad) }), {
          store,
          name: 'forms',
          key: (input) => input.id,
        });
      const a = await charge(viaProvider)({ id: 'a', pad: 0 });
      ring.rotate(k2);
      const b = await charge(viaModule)({ id: 'b', pad: 100_000 }); // compressed, then sealed
      expect(await raw.hget(`${keyPrefix}forms#${hashKey('a')}`, 'keyId')).toBe('k1');
      expect(await raw.hget(`${keyPrefix}forms#${hashKey('b')}`, 'keyId')).toBe('k2');
      expect(await charge(viaModule)({ id: 'a', pad: 0 })).toEqual(a);
      expect(await charge(viaProvider)({ id: 'b', pad: 100_000 })).toEqual(b);
      expect(runs).toBe(2);
    });

    test('inspectRecord names the key that sealed a response or a final error, across a rotation, as DynamoDBStore does; none for an outcome stored in the clear', async () => {
      const ring = keyring(aesKey('k-2024'));
      const keyPrefix = `sealed-by-${kind.name}:`;
      const sealing = new RedisStore({ client: opened.client, keyPrefix, encryption: ring.encryption });
      const plain = new RedisStore({ client: opened.client, keyPrefix });
      const charge = (store: RedisStore, fail = false) =>
        makeIdempotent(
          async (id: string) => {
            if (fail) throw new Error(`card ${id} declined`);
            return { id };
          },
          { store, name: 'sealed-by', isFinalError: () => true },
        );
      await charge(sealing)('old');
      ring.rotate(aesKey('k-2025'));
      await charge(sealing, true)('new-error').catch(() => undefined);
      await charge(plain)('clear');
      const inspected = (key: string) => inspectRecord({ store: plain, name: 'sealed-by', key });
      expect(await inspected('old')).toMatchObject({ keyId: 'k-2024', responseBytes: expect.any(Number) });
      expect(await inspected('new-error')).toMatchObject({ keyId: 'k-2025', errorBytes: expect.any(Number) });
      expect(await inspected('clear')).not.toHaveProperty('keyId');
    });

    test('a key provider that fails, as DynamoDBStore: at completion the record completes without its outcome (one warning names why); at the claim, STORE_FAILURE; the function runs once', async () => {
      const ring = keyring(aesKey('k1'));
      const warnings: string[] = [];
      const store = new RedisStore({ client: opened.client, keyPrefix: `faults-${kind.name}:`, encryption: aesGcmEncryption(ring.encryption) });
      let runs = 0;
      const charge = makeIdempotent(async (id: string) => ({ id, run: ++runs }), {
        store,
        name: 'faults',
        logger: { warn: (line) => void warnings.push(line) },
      });
      ring.failCurrent = 'throws'; // a throttled KMS at completion
      expect(await charge('a')).toEqual({ id: 'a', run: 1 });
      expect(warnings.map((line) => JSON.parse(line).error)).toEqual(['ThrottlingException']);
      ring.failCurrent = undefined;
      expect((await rejection(charge('a'))).code).toBe('RESPONSE_NOT_STORED');
      expect(await charge('b')).toEqual({ id: 'b', run: 2 });
      ring.failById = 'short key'; // at the claim, opening b's outcome
      const error = await rejection(charge('b'));
      expect([error.code, describeStoreFailure(error.cause)]).toEqual(['STORE_FAILURE', 'TypeError']);
      ring.failById = undefined;
      expect(await charge('b')).toEqual({ id: 'b', run: 2 });
      expect(runs).toBe(2);
      expect(warnings).toHaveLength(1);
    });

    test('a final error the key provider fails to seal: the hash marks the lost outcome as an error, nothing in the clear; duplicates get ERROR_NOT_STORED and never run', async () => {
      const ring = keyring(aesKey('k1'));
      const keyPrefix = `error-omitted-${kind.name}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix, encryption: aesGcmEncryption(ring.encryption) });
      let runs = 0;
      const charge = makeIdempotent(
        async (_id: string): Promise<never> => {
          runs++;
          throw Object.assign(new Error('card 4111-1111-1111-1111 declined'), { name: 'PaymentDeclined' });
        },
        { store, name: 'declines', isFinalError: () => true, logger: { warn: () => undefined } },
      );
      ring.failCurrent = 'throws';
      expect((await thrown(charge('a'))).name).toBe('PaymentDeclined');
      ring.failCurrent = undefined;
      const hash = await raw.hgetall(`${keyPrefix}declines#${hashKey('a')}`);
      expect(hash).toMatchObject({ status: 'COMPLETED', responseOmitted: '1', errorOmitted: '1' });
      // The owner is a random UUID and the retention a time in seconds, which may hold any four digits.
      const { owner: _owner, expiresAt, ...stored } = hash;
      expect(expiresAt).toMatch(/^\d+$/);
      expect(JSON.stringify(stored)).not.toContain('4111');
      expect((await rejection(charge('a'))).code).toBe('ERROR_NOT_STORED');
      expect(await store.inspect(`declines#${hashKey('a')}`)).toMatchObject({ responseOmitted: true, errorOmitted: true });
      expect(runs).toBe(1);
    });

    test('a key provider that has not answered by `sealBy` (a KMS call that hangs), or a module whose currentKey() has no key: the record completes without its outcome, nothing in the clear', async () => {
      const ring = keyring(aesKey('k1'));
      const inner = aesGcmEncryption(ring.encryption);
      const hanging = aesGcmEncryption({ currentKey: () => new Promise<never>(() => undefined), keyById: ring.encryption.keyById });
      const unready = { ...inner, currentKey: async () => undefined } as unknown as OutcomeEncryption;
      for (const [name, encryption] of [
        ['hanging', hanging],
        ['unready', unready],
      ] as const) {
        const keyPrefix = `seal-${name}-${kind.name}:`;
        const store = new RedisStore({ client: opened.client, keyPrefix, encryption });
        const { expiresAt } = claimRequest('k');
        await store.claim(claimRequest('k', 'owner-a'));
        const result = await store.complete({ key: 'k', owner: 'owner-a', expiresAt, response: '"4111-1111-1111-1111"', sealBy: performance.now() });
        expect(result).toMatchObject({ completed: true, responseStored: false, sealFailure: { name: name === 'hanging' ? 'TimeoutError' : 'TypeError' } });
        const hash = await raw.hgetall(`${keyPrefix}k`);
        expect(hash).toMatchObject({ status: 'COMPLETED', responseOmitted: '1' });
        expect(JSON.stringify(hash)).not.toContain('4111');
      }
    });

    test('a key id that is not well-formed text (a lone surrogate, which Redis would store as U+FFFD): the record completes without its outcome rather than fail closed for its retention', async () => {
      const key = { id: 'k\uD800', key: randomBytes(32) };
      const keyById = (id: string) => {
        if (id !== key.id) throw new Error('no such key');
        return key.key;
      };
      const warnings: string[] = [];
      const store = new RedisStore({
        client: opened.client,
        keyPrefix: `ill-formed-id-${kind.name}:`,
        encryption: aesGcmEncryption({ currentKey: () => key, keyById }),
      });
      let runs = 0;
      const charge = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store, name: 'ids', logger: { warn: (line) => void warnings.push(line) } });
      expect(await charge('a')).toEqual({ id: 'a', run: 1 });
      expect(warnings.map((line) => JSON.parse(line).error)).toEqual(['TypeError']);
      expect((await rejection(charge('a'))).code).toBe('RESPONSE_NOT_STORED');
      expect(runs).toBe(1);
    });

    test('a store without encryption refuses a sealed record with a sentence that names no other store', async () => {
      const ring = keyring(aesKey('k1'));
      const keyPrefix = `sealed-unread-${kind.name}:`;
      const sealing = new RedisStore({ client: opened.client, keyPrefix, encryption: aesGcmEncryption(ring.encryption) });
      let runs = 0;
      const charge = (store: RedisStore) => makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store, name: 'unread' });
      await charge(sealing)('a');
      const refused = await rejection(charge(new RedisStore({ client: opened.client, keyPrefix }))('a'));
      expect(refused.code).toBe('STORE_FAILURE');
      expect((refused.cause as Error).message).toBe(
        `The stored response of the idempotency record unread#${hashKey('a')} is encrypted; configure \`encryption\` on the store to read it.`,
      );
      expect(runs).toBe(1);
    });

    test('a sealed response altered in Redis fails closed (not base64, empty, cut, copied from another record, replaced by plaintext): STORE_FAILURE, nothing runs', async () => {
      const keyPrefix = `tampered-${kind.name}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix, encryption: aesGcmEncryption(keyring(aesKey('k1')).encryption) });
      let runs = 0;
      const charge = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store, name: 'tampered' });
      const record = (id: string) => `${keyPrefix}tampered#${hashKey(id)}`;
      await charge('donor');
      const donor = (await raw.hget(record('donor'), 'responseBase64'))!;
      const alterations: Record<string, string>[] = [
        { responseBase64: 'not base64 at all!' },
        { responseBase64: '' },
        { responseBase64: donor.slice(0, -8) },
        { responseBase64: donor },
      ];
      for (const [i, fields] of alterations.entries()) {
        await charge(`t${i}`);
        await raw.hset(record(`t${i}`), fields);
      }
      await charge('plain');
      await raw.hdel(record('plain'), 'responseBase64');
      await raw.hset(record('plain'), { response: '{"id":"plain","run":0}' });
      for (const id of [...alterations.keys()].map((i) => `t${i}`).concat('plain')) {
        const error = await rejection(charge(id));
        expect([id, error.code, describeStoreFailure(error.cause)]).toEqual([id, 'STORE_FAILURE', 'UnreadableRecordError']);
      }
      expect(runs).toBe(6);
    });

    test('a decompression bomb planted as a stored response (zeros one byte past what gzip makes of any value a store keeps) fails closed: STORE_FAILURE naming the bound, and the function does not run again', async () => {
      const keyPrefix = `bomb-${kind.name}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix, compressAboveBytes: 0 });
      let runs = 0;
      const once = makeIdempotent(async (_id: string) => ({ run: ++runs }), { store, name: 'bomb' });
      expect(await once('k')).toEqual({ run: 1 });
      const hash = `${keyPrefix}bomb#${hashKey('k')}`;
      expect(await raw.hexists(hash, 'responseBase64')).toBe(1);
      await raw.hset(hash, { responseBase64: (await gzipBomb()).toString('base64') });
      // Whatever comes back is reported by its kind: a replay of hundreds of MiB would not print.
      const outcome = await once('k').then(
        (value) => ({ replayed: typeof value }),
        (error: unknown) => error,
      );
      expect(outcome).toBeInstanceOf(IdempotencyError);
      const refused = outcome as IdempotencyError;
      expect([refused.code, describeStoreFailure(refused.cause), (refused.cause as Error).message]).toEqual([
        'STORE_FAILURE',
        'UnreadableRecordError',
        `The stored response of the idempotency record bomb#${hashKey('k')} decompresses to more than ${1032 * ITEM_LIMIT_BYTES} bytes, more than any stored value holds.`,
      ]);
      expect(runs).toBe(1);
    });

    test('compressed and encrypted responses are stored as base64 and come back byte for byte', async () => {
      const key = { id: 'k1', key: randomBytes(32) };
      const encryption = { currentKey: () => key, keyById: () => key.key };
      const json = JSON.stringify({ text: 'ünïcödé ✓ 😀'.repeat(2000), bytes: randomBytes(20_000).toString('latin1') });
      for (const [label, options] of [
        ['gzip', { compressAboveBytes: 0 }],
        ['encrypted', { encryption }],
        ['encrypted gzip', { encryption, compressAboveBytes: 0 }],
      ] as const) {
        const keyPrefix = `binary-${kind.name}-${label.replace(' ', '-')}:`;
        const store = new RedisStore({ client: opened.client, keyPrefix, ...options });
        await store.claim(claimRequest('k'));
        expect(await store.complete({ key: 'k', owner: 'owner-a', expiresAt: Math.floor(t0 / 1000) + 3600, response: json })).toEqual({
          completed: true,
          responseStored: true,
        });
        const stored = await raw.hgetallBuffer(`${keyPrefix}k`);
        expect(stored.response).toBeUndefined();
        const bytes = Buffer.from(stored.responseBase64!.toString('latin1'), 'base64');
        if (label === 'gzip') expect([...bytes.subarray(0, 2)]).toEqual([0x1f, 0x8b]);
        else expect(bytes.includes(Buffer.from('ünïcödé'))).toBe(false);
        const replay = await store.claim(claimRequest('k', 'owner-b'));
        expect(replay.claimed === false && replay.record.response).toBe(json);
      }
    });
  });
}

describe('node-redis 6 told to speak RESP2 (`RESP: 2`), whose hashes arrive as flat arrays (RESP3, its default, answers with objects)', () => {
  const client = createClient({ url: redisUrl(), RESP: 2, disableOfflineQueue: true, socket: NODE_REDIS_SOCKET });
  client.on('error', () => undefined);
  beforeAll(() => client.connect());
  afterAll(() => client.destroy());
  for (const check of storeContract(() => new RedisStore({ client, keyPrefix: 'resp2:' }), { ttlOf: (key) => pttl(raw, `resp2:${key}`) })) {
    test(check.name, check.run);
  }
});

// Integer replies as text: the scripts' verdicts, and FORGET's, must be read as the numbers they are.
for (const [name, open] of [
  ['ioredis with `stringNumbers: true`', () => ioredisClient(redisUrl(), { stringNumbers: true })],
  ['ioredis 5 with `stringNumbers: true`', () => new Redis5(redisUrl(), { stringNumbers: true, maxRetriesPerRequest: 0, enableOfflineQueue: false })],
  [
    'node-redis 6 with RESP3 numbers typed as `String` (`typeMapping`)',
    () => nodeRedisClient(redisUrl(), { commandOptions: { typeMapping: { [RESP_TYPES.NUMBER]: String } } }),
  ],
] as const) {
  describe(name, () => {
    // Opened by the first test that runs: a client opened here would outlive a run that filters out every test below.
    let client!: ReturnType<typeof open>;
    const keyPrefix = `numbers-as-text-${name.slice(0, 12)}:`;
    beforeAll(async () => {
      client = open();
      if ('isOpen' in client) await client.connect();
    });
    afterAll(() => ('isOpen' in client ? client.destroy() : client.disconnect()));
    for (const check of storeContract(() => new RedisStore({ client, keyPrefix }), { ttlOf: (key) => pttl(raw, `${keyPrefix}${key}`) })) {
      test(check.name, check.run);
    }
    test('with waitForReplicas (this server has no replica): a refused claim writes nothing and waits for nothing, a forget that deleted waits', async () => {
      const store = new RedisStore({ client, keyPrefix });
      const waiting = new RedisStore({ client, keyPrefix, waitForReplicas: { replicas: 1, timeoutMillis: 1 } });
      const key = `waits#${randomBytes(8).toString('hex')}`;
      expect(await store.claim(claimRequest(key))).toEqual({ claimed: true });
      expect(await waiting.claim(claimRequest(key, 'owner-b'))).toMatchObject({ claimed: false, record: { owner: 'owner-a', status: 'INPROGRESS' } });
      expect(await waiting.forget(`waits#none-${randomBytes(8).toString('hex')}`)).toBe(false);
      const forgotten = await waiting.forget(key).then(String, (error: Error) => error.name);
      expect([forgotten, await raw.exists(`${keyPrefix}${key}`)]).toEqual(['ReplicaWaitTimeout', 0]);
    });
    test("with waitForReplicas (no replica): a late attempt's completion or release refused by another owner's record, held or COMPLETED, writes nothing and waits for nothing", async () => {
      const store = new RedisStore({ client, keyPrefix });
      const waiting = new RedisStore({ client, keyPrefix, waitForReplicas: { replicas: 1, timeoutMillis: 1 } });
      const key = `late#${randomBytes(8).toString('hex')}`;
      const late = { key, owner: 'owner-b', expiresAt: Math.floor(t0 / 1000) + 7200, now: t0, response: '"late"' };
      expect(await store.claim(claimRequest(key))).toEqual({ claimed: true });
      expect(await waiting.complete(late)).toMatchObject({ completed: false, record: { owner: 'owner-a', status: 'INPROGRESS' } });
      expect(await waiting.release(late)).toMatchObject({ released: false, record: { owner: 'owner-a', status: 'INPROGRESS' } });
      expect(await store.complete({ ...late, owner: 'owner-a', response: '"first"' })).toEqual({ completed: true, responseStored: true });
      const stored = await raw.hgetall(`${keyPrefix}${key}`);
      expect(await waiting.complete(late)).toMatchObject({ completed: false, record: { owner: 'owner-a', status: 'COMPLETED' } });
      expect(await waiting.release(late)).toMatchObject({ released: false, record: { owner: 'owner-a', status: 'COMPLETED' } });
      expect(await raw.hgetall(`${keyPrefix}${key}`)).toEqual(stored);
    });
  });
}

describe('node-redis 6 with RESP3 maps typed as `Map` (`typeMapping`), whose hashes arrive as a `Map`', () => {
  const client = nodeRedisClient(redisUrl(), { commandOptions: { typeMapping: { [RESP_TYPES.MAP]: Map } } });
  beforeAll(() => client.connect());
  afterAll(() => client.destroy());
  for (const check of storeContract(() => new RedisStore({ client, keyPrefix: 'resp3-map:' }), { ttlOf: (key) => pttl(raw, `resp3-map:${key}`) })) {
    test(check.name, check.run);
  }
});

describe('a client that is still connecting (a cold start)', () => {
  test('ioredis, connecting, with the offline queue off: the store waits for it to be ready', async () => {
    const client = ioredisClient();
    expect(client.status).toBe('connecting');
    try {
      expect(await new RedisStore({ client, keyPrefix: 'cold-io:' }).claim(claimRequest('k'))).toEqual({ claimed: true });
    } finally {
      client.disconnect();
    }
  });

  test('ioredis with lazyConnect: the store connects it', async () => {
    const client = ioredisClient(undefined, { lazyConnect: true });
    expect(client.status).toBe('wait');
    try {
      const store = new RedisStore({ client, keyPrefix: 'cold-lazy:' });
      const results = await Promise.all([store.claim(claimRequest('k', 'owner-a')), store.claim(claimRequest('k', 'owner-b'))]);
      expect(results.filter((r) => r.claimed)).toHaveLength(1);
    } finally {
      client.disconnect();
    }
  });

  test('node-redis, connect() not awaited yet: the store waits for it to be ready', async () => {
    const client = nodeRedisClient();
    const connecting = client.connect();
    expect([client.isOpen, client.isReady]).toEqual([true, false]);
    try {
      expect(await new RedisStore({ client, keyPrefix: 'cold-node:' }).claim(claimRequest('k'))).toEqual({ claimed: true });
    } finally {
      await connecting;
      client.destroy();
    }
  });

  test('many calls at once on a connecting client wait with one listener per event (no MaxListenersExceededWarning)', async () => {
    const io = ioredisClient(undefined, { lazyConnect: true });
    const node = nodeRedisClient();
    const connecting = node.connect();
    try {
      for (const client of [io, node]) {
        const events = ['ready', 'error', 'close', 'end'];
        const listeners = () => events.map((event) => client.listenerCount(event));
        const before = client.listenerCount('ready');
        const all = listeners();
        const store = new RedisStore({ client, keyPrefix: 'cold-many:' });
        const claims = Array.from({ length: 20 }, (_, i) => store.claim(claimRequest(`k-${i}`)));
        expect(client.listenerCount('ready') - before).toBeLessThanOrEqual(1);
        expect((await Promise.all(claims)).every((claim) => claim.claimed)).toBe(true);
        // Once ready, none of the wait's listeners is left behind, for any event; the claims watch
        // the connection for a loss (a claim a client sends again may apply twice) through one
        // `close` listener, shared by every call on the client and gone at its next close.
        const [ready, error, close, end] = listeners();
        expect([ready, error, end]).toEqual([all[0], all[1], all[3]]);
        expect(close! - all[2]!).toBeLessThanOrEqual(1);
        await Promise.all(claims.map((_, i) => store.forget(`k-${i}`)));
      }
    } finally {
      await connecting;
      io.disconnect();
      node.destroy();
    }
  });

  test('ioredis: the claims of a client that never loses its connection keep nothing of theirs reachable (their loss watch)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const client = ioredisClient();
    try {
      const store = new RedisStore({ client, keyPrefix: 'loss-watch:', allowEviction: true });
      // Short retentions: the keys expire by themselves.
      const claims = async (tag: string, count: number) => {
        for (let i = 0; i < count; i++) {
          const now = Date.now();
          await store.claim({ key: `${tag}-${i}`, owner: 'owner-a', now, leaseUntil: now + 1000, expiresAt: Math.floor(now / 1000) + 2 });
        }
      };
      await claims('warm', 1000);
      gc();
      const before = process.memoryUsage().heapUsed;
      await claims('many', 20_000);
      gc();
      // A watch held by each claim until the client's next `close` grew the heap by ~190 bytes a claim (3.8 MB here).
      expect(process.memoryUsage().heapUsed - before).toBeLessThan(1_000_000);
    } finally {
      client.disconnect();
    }
  });

  test('node-redis never connected: STORE_FAILURE that says to connect it', async () => {
    const store = new RedisStore({ client: nodeRedisClient(), keyPrefix: 'cold-never:' });
    const charge = makeIdempotent(async (_id: string) => 1, { store, name: 'charge', key: (id) => id });
    const error = (await charge('order-1').catch((e: unknown) => e)) as IdempotencyError;
    expect(error.code).toBe('STORE_FAILURE');
    expect((error.cause as Error).message).toMatch(/call `await client.connect\(\)` first/);
  });

  test('an unreachable server: the connection attempt fails, STORE_FAILURE with its error (not a command sent as if it were ready)', async () => {
    const client = ioredisClient(`redis://127.0.0.1:${await freePort()}`, { retryStrategy: () => null });
    const store = new RedisStore({ client, keyPrefix: 'cold-gone:' });
    // A call through the store: STORE_FAILURE, its cause the connection's own error (its message, or
    // its event where jest's realm hides that it is an Error), and the function never runs.
    let runs = 0;
    const error = await rejection(makeIdempotent(async (_id: string) => ++runs, { store, name: 'charge' })('order-1'));
    expect([error.code, runs]).toEqual(['STORE_FAILURE', 0]);
    expect(String((error.cause as { message?: unknown } | undefined)?.message)).toMatch(/ECONNREFUSED|ended \(error\) before it was ready/);
    client.disconnect();
  });
});

describe('after a failed call, an ioredis client is waited for only when a reconnection is coming (else the call answers at once)', () => {
  // A wait of ten minutes: one taken by mistake outlasts the test.
  const WAIT = 600_000;
  test('ready, its connection open (reconnectOnError set), after a failure: not waited for', async () => {
    const client = ioredisClient(undefined, { reconnectOnError: () => true });
    try {
      await new Promise((resolve) => client.once('ready', resolve));
      expect(await connectionOf(client).reconnected('k', WAIT)).toBe(false);
    } finally {
      client.disconnect();
    }
  });
  test('closed by the application (quit), with reconnectOnError set: not waited for', async () => {
    const client = ioredisClient(undefined, { reconnectOnError: () => true });
    await new Promise((resolve) => client.once('ready', resolve));
    const ended = new Promise((resolve) => client.once('end', resolve));
    await client.quit();
    await ended;
    expect(client.status).toBe('end');
    expect(await connectionOf(client).reconnected('k', WAIT)).toBe(false);
  });
  test('reconnecting, then closed by the application while waited for: the wait ends at its end event, not after its time', async () => {
    const client = ioredisClient(`redis://127.0.0.1:${await freePort()}`, { retryStrategy: () => 50 });
    const waited = connectionOf(client).reconnected('k', WAIT);
    // A failed attempt first (the wait goes on); then `close` and `end` in consecutive ticks, and the wait must not miss the `end`.
    await new Promise((resolve) => client.once('error', resolve));
    client.disconnect();
    expect(await waited).toBe(false);
  });
});

test('a store whose bounds are ten minutes long leaves no timer behind: once its client is closed, the process exits', async () => {
  const script = fileURLToPath(new URL('../support/redis-exit.ts', import.meta.url));
  const env = { ...process.env, REDIS_URL: redisUrl(), NODE_OPTIONS: '' };
  // A timer left behind would hold the child for ten minutes: it is stopped well before this test's own limit.
  const output = await new Promise((resolve, reject) =>
    execFile(process.execPath, ['--import', 'tsx', script], { env, timeout: 20_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`${error.message}\n${stdout}${stderr}`)) : resolve(stdout.trim()),
    ),
  );
  expect(output).toBe('{"outcome":"claimed"}');
});

test('after a failed call, a node-redis client closed by the application is not waited for', async () => {
  const client = nodeRedisClient();
  await client.connect();
  client.destroy();
  expect([client.isOpen, client.isReady]).toEqual([false, false]);
  // A wait of ten minutes: one taken by mistake outlasts the test.
  expect(await connectionOf(client).reconnected('k', 600_000)).toBe(false);
});

describe('options', () => {
  const client = ioredisClient(undefined, { lazyConnect: true });
  const provider = keyring(aesKey('k1')).encryption;
  const moduleWithoutOverhead: object = { ...aesGcmEncryption(provider), overheadBytes: undefined };
  test.each([
    [{ client: {} }, /`client` must be an ioredis Redis or Cluster, or a node-redis client or cluster \(version 5 or 6\)/],
    [{ client, keyPrefix: 1 }, /`keyPrefix` must be a string/],
    [{ client, compressAboveBytes: -1 }, /`compressAboveBytes` must be a whole number of bytes from 0 to 409600/],
    [{ client, encryption: { currentKey: () => undefined } }, /`encryption` must have `currentKey\(\)` and `keyById\(id\)` functions/],
    [
      { client, encryption: moduleWithoutOverhead },
      /`encryption` has `seal` and `open`, so its `overheadBytes` must be the bytes sealing adds, a whole number, 0 or more \(got undefined\)/,
    ],
    // Every record's size counts it: one below 0 would let a sealed outcome outgrow what the store keeps.
    [
      { client, encryption: { ...aesGcmEncryption(provider), overheadBytes: -1 } },
      /`encryption` has `seal` and `open`, so its `overheadBytes` must be the bytes sealing adds, a whole number, 0 or more \(got -1\)/,
    ],
    [{ client, allowEviction: 'yes' }, /`allowEviction` must be a boolean/],
    [{ client, timeoutMillis: 0 }, /`timeoutMillis` must be a whole number of milliseconds, from 1 to 2147483647/],
    [{ client, timeoutMillis: 2 ** 31 }, /`timeoutMillis` must be a whole number of milliseconds, from 1 to 2147483647/],
    [
      { client, waitForReplicas: { replicas: 0, timeoutMillis: 50 } },
      /`waitForReplicas` must be `\{ replicas, timeoutMillis \}`, two whole numbers from 1 to Number.MAX_SAFE_INTEGER/,
    ],
    [
      { client, waitForReplicas: { replicas: 1, timeoutMillis: 0 } },
      /`waitForReplicas` must be `\{ replicas, timeoutMillis \}`, two whole numbers from 1 to Number.MAX_SAFE_INTEGER/,
    ],
    // Whole numbers that Redis's WAIT refuses (see below): every write would fail after it was applied.
    [
      { client, waitForReplicas: { replicas: 2 ** 64, timeoutMillis: 50 } },
      /`waitForReplicas` must be `\{ replicas, timeoutMillis \}`, two whole numbers from 1 to Number.MAX_SAFE_INTEGER/,
    ],
    [
      { client, waitForReplicas: { replicas: 1, timeoutMillis: 1e21 } },
      /`waitForReplicas` must be `\{ replicas, timeoutMillis \}`, two whole numbers from 1 to Number.MAX_SAFE_INTEGER/,
    ],
    // Its sendCommand(isReadonly, args) would be called as a client's sendCommand(args): every call would fail deep inside node-redis.
    [{ client: createSentinel({ name: 'primary', sentinelRootNodes: [{ host: '127.0.0.1', port: 1 }] }) }, /`client` is a node-redis Sentinel/],
    [{ client: createSentinel5({ name: 'primary', sentinelRootNodes: [{ host: '127.0.0.1', port: 1 }] }) }, /`client` is a node-redis Sentinel/],
    [{ client, ttl: 5 }, /unknown option `ttl`/],
    // A misspelt member would be dropped without a word.
    [
      { client, waitForReplicas: { replicas: 1, timeoutMillis: 100, timeout: 5 } },
      /^RedisStore: `waitForReplicas`: unknown option `timeout`. Known options: replicas, timeoutMillis.$/,
    ],
  ])('%p is refused with a TypeError', (options, message) => {
    expect(() => new RedisStore(options as never)).toThrow(TypeError);
    expect(() => new RedisStore(options as never)).toThrow(message);
  });
  test('a keyPrefix with a lone surrogate is refused: Redis writes each as U+FFFD, so two such prefixes would share records', async () => {
    await raw.set('\ud800:lone-surrogate', 'written under one prefix', 'PX', 60_000);
    expect(await raw.get('\udfff:lone-surrogate')).toBe('written under one prefix');
    for (const keyPrefix of ['\ud800:', 'payments-\udfff:']) {
      expect(() => new RedisStore({ client, keyPrefix })).toThrow(new TypeError('RedisStore: `keyPrefix` must be a string without lone surrogates.'));
    }
    // A surrogate pair is one character, which UTF-8 writes as it is.
    expect(() => new RedisStore({ client, keyPrefix: '支払い-💳:' })).not.toThrow();
  });
  test('a key provider with members of its own (an `open()`) and a module with a `keyById` helper are taken', () => {
    const withOpen = Object.assign({ open: () => undefined }, provider);
    expect(() => new RedisStore({ client, encryption: withOpen })).not.toThrow();
    expect(() => new RedisStore({ client, encryption: { ...aesGcmEncryption(provider), keyById: provider.keyById } })).not.toThrow();
  });
  test('the largest waitForReplicas taken are ones WAIT takes; the next whole numbers written as text are refused by it', async () => {
    const largest = Number.MAX_SAFE_INTEGER;
    expect(() => new RedisStore({ client, waitForReplicas: { replicas: largest, timeoutMillis: largest } })).not.toThrow();
    expect(await raw.call('WAIT', String(largest), '1')).toBe(0);
    await expect(raw.call('WAIT', String(2 ** 64), '1')).rejects.toThrow(/out of range/);
    await expect(raw.call('WAIT', '1', String(1e21))).rejects.toThrow(/out of range/);
  });
  test.each([1, 2 ** 31 - 1])('a timeoutMillis of %i (the bounds of a Node timer) is taken', (timeoutMillis) => {
    expect(() => new RedisStore({ client, timeoutMillis })).not.toThrow();
  });
  test('nothing is sent to the server before the first call', () => {
    new RedisStore({ client });
    expect(client.status).toBe('wait');
  });
});

test('`atomic: true` and `transactions: true` on a RedisStore are TypeErrors when the call is made idempotent: Redis has no transactions', () => {
  const store = new RedisStore({ client: ioredisClient(undefined, { lazyConnect: true }) });
  for (const option of ['atomic', 'transactions'] as const) {
    expect(() => makeIdempotent(async () => 1, { store, name: 'charge', [option]: true })).toThrow(
      new TypeError(`makeIdempotent: \`${option}: true\` needs a store with transactions, such as the DynamoDBStore of 'lambda-idempotency'.`),
    );
  }
});

test('compressAboveBytes defaults to 32768: a response of that many bytes of JSON is stored as text, one byte more gzip-compressed', async () => {
  const client = ioredisClient();
  try {
    const store = new RedisStore({ client, keyPrefix: 'default-compression:' });
    for (const [key, bytes] of [
      ['at', 32_768],
      ['above', 32_769],
    ] as const) {
      const response = JSON.stringify('x'.repeat(bytes - 2));
      expect(Buffer.byteLength(response)).toBe(bytes);
      await store.claim(claimRequest(key));
      await store.complete({ key, owner: 'owner-a', expiresAt: Math.floor(t0 / 1000) + 3600, response });
    }
    expect(await raw.hget('default-compression:at', 'response')).toHaveLength(32_768);
    expect(await raw.hexists('default-compression:at', 'responseBase64')).toBe(0);
    const gzipped = Buffer.from((await raw.hget('default-compression:above', 'responseBase64'))!, 'base64');
    expect([...gzipped.subarray(0, 2)]).toEqual([0x1f, 0x8b]);
    expect(await raw.hexists('default-compression:above', 'response')).toBe(0);
  } finally {
    client.disconnect();
  }
});

test('without keyPrefix, each record is the hash `idempotency:` followed by its record key', async () => {
  const client = ioredisClient();
  try {
    const store = new RedisStore({ client });
    expect(store.keyPrefix).toBe('idempotency:');
    const key = `default-prefix#${randomBytes(8).toString('hex')}`;
    expect(await store.claim(claimRequest(key))).toEqual({ claimed: true });
    expect(await raw.hget(`idempotency:${key}`, 'owner')).toBe('owner-a');
    expect(await store.forget(key)).toBe(true);
  } finally {
    client.disconnect();
  }
});

test('an ioredis client with a keyPrefix of its own: each record is the one hash under both prefixes, every operation and the scripts touch it alone', async () => {
  const client = ioredisClient(undefined, { keyPrefix: 'app:' });
  try {
    const store = new RedisStore({ client, keyPrefix: 'client-prefix:' });
    let runs = 0;
    const charge = makeIdempotent(async (_id: string) => ({ runs: ++runs }), { store, name: 'charge', key: (id) => id, fingerprint: (id) => id });
    expect([await charge('order-1'), await charge('order-1')]).toEqual([{ runs: 1 }, { runs: 1 }]);
    const key = `charge#${hashKey('order-1')}`;
    expect(await raw.keys('*client-prefix:*')).toEqual([`app:client-prefix:${key}`]);
    expect(await raw.hget(`app:client-prefix:${key}`, 'status')).toBe('COMPLETED');
    expect(await raw.pttl(`app:client-prefix:${key}`)).toBeGreaterThan(0);
    expect(await store.inspect(key)).toEqual(expect.objectContaining({ status: 'COMPLETED', hasFingerprint: true }));
    expect(await store.forget(key, 'COMPLETED')).toBe(true);
    expect(await raw.keys('*client-prefix:*')).toEqual([]);
  } finally {
    client.disconnect();
  }
});

test('a claim that takes a record over answers with that record without its outcome, stored as text or as bytes: a large response or final error does not travel back', async () => {
  for (const [field, value] of [
    ['response', '"done"'],
    ['responseBase64', Buffer.from('done').toString('base64')],
    ['error', '{"name":"Declined"}'],
    ['errorBase64', Buffer.from('declined').toString('base64')],
  ] as const) {
    const key = `previous-without-outcome:${field}`;
    await raw.hset(key, { status: 'COMPLETED', owner: 'a', expiresAt: '1', [field]: value }); // past its retention
    const args = ['b', String(t0 + 10_000), String(Math.floor(t0 / 1000) + 60), String(t0), '60000'];
    expect(await raw.eval(CLAIM.source, 1, key, ...args)).toEqual([1, ['status', 'COMPLETED', 'owner', 'a', 'expiresAt', '1']]);
    await raw.del(key);
  }
});

describe("retention, as the caller's clock judges it", () => {
  // Opened in beforeAll: a client opened as the block is collected stays open when a `-t` filter skips its tests and their afterAll.
  let client: ReturnType<typeof ioredisClient>;
  beforeAll(() => {
    client = ioredisClient();
  });
  afterAll(() => client.disconnect());

  const ttlGiven = (key: string, write: () => Promise<unknown>) => ttlsGiven(raw, key, write);

  test("a key lives through the last millisecond of its record's retention second, and never less than its lease", async () => {
    // A record is live while its retention (epoch seconds) is not before the caller's second:
    // Redis must not forget it at that second's first millisecond.
    const store = new RedisStore({ client, keyPrefix: 'retention-end:' });
    const { expiresAt, now } = claimRequest('k');
    expect(await ttlGiven('retention-end:k', () => store.claim(claimRequest('k')))).toEqual([(expiresAt + 1) * 1000 - 1 - now]);
    const done = { key: 'k', owner: 'owner-a', expiresAt: expiresAt + 60, response: '"done"', now };
    expect(await ttlGiven('retention-end:k', () => store.complete(done))).toEqual([(expiresAt + 61) * 1000 - 1 - now]);
    await store.forget('k');
    const leaseUntil = (expiresAt + 600) * 1000 + 1;
    expect(await ttlGiven('retention-end:k', () => store.claim({ ...claimRequest('k'), leaseUntil }))).toEqual([leaseUntil - now]);
  });

  test('a record found without a TTL, or without a retention, by a claim gets a TTL to the last millisecond of its retention second too', async () => {
    const store = new RedisStore({ client, keyPrefix: 'retention-end-found:' });
    const { expiresAt, now } = claimRequest('k');
    // Written by hand (HSET, no TTL): its own retention, a minute after the claim's.
    await raw.hset('retention-end-found:k', { status: 'COMPLETED', owner: 'someone', expiresAt: String(expiresAt + 60) });
    expect(await ttlGiven('retention-end-found:k', () => store.claim(claimRequest('k', 'owner-b')))).toEqual([(expiresAt + 61) * 1000 - 1 - now]);
    await raw.del('retention-end-found:k');
    // Without a retention: the claim's.
    await raw.hset('retention-end-found:k', { status: 'COMPLETED', owner: 'someone' });
    expect(await ttlGiven('retention-end-found:k', () => store.claim(claimRequest('k', 'owner-b')))).toEqual([(expiresAt + 1) * 1000 - 1 - now]);
    await raw.del('retention-end-found:k');
  });

  test.each([
    ['1e+22', 10 ** 22],
    ['a whole number past 2^63 ms', '1'.padEnd(23, '0')],
  ])(
    'a record found without a retention, held by a lease of %s (written by hand), is held by every claim that meets it, as DynamoDBStore holds it',
    async (_, lease) => {
      const store = new RedisStore({ client, keyPrefix: 'adopted-far-lease:' });
      await raw.hset('adopted-far-lease:k', { status: 'INPROGRESS', owner: 'someone', leaseUntil: String(lease) });
      try {
        // The retention the first claim gives it is the lease's second, which Lua's `%d` cannot write past 2^63.
        for (const owner of ['owner-b', 'owner-c']) {
          expect(await store.claim(claimRequest('k', owner))).toEqual({
            claimed: false,
            record: expect.objectContaining({ owner: 'someone', status: 'INPROGRESS', expiresAt: expect.any(Number) }),
          });
        }
        expect(Number(await raw.hget('adopted-far-lease:k', 'expiresAt'))).toBeGreaterThan(Math.floor(t0 / 1000));
        expect(await raw.pttl('adopted-far-lease:k')).toBeGreaterThan(0);
      } finally {
        await raw.del('adopted-far-lease:k');
      }
    },
  );

  test.each([
    ['two days behind', -2 * 86_400_000],
    ['a year ahead of', 365 * 86_400_000],
    ['before 1970, far behind', Date.parse('1938-01-01T00:00:00Z') - Date.now()],
  ])("a caller's clock %s the server's (a manualClock in a test): each key lives for the retention as that clock counts it", async (_, offset) => {
    const clock = manualClock(Date.now() + offset);
    let runs = 0;
    const charge = makeIdempotent(async (_id: string) => ++runs, {
      store: new RedisStore({ client, keyPrefix: 'skew:' }),
      name: `skew${offset}`,
      now: clock.now,
    });
    const left = async (): Promise<number | undefined> => pttl(raw, (await raw.keys(`skew:skew${offset}#*`))[0] ?? 'none');
    expect(await charge('k')).toBe(1);
    // The retention (24 h) as the caller counts it; Redis forgot the record at once (two days behind),
    // or would have kept it a year too long.
    expect(await left()).toBeGreaterThan(86_400_000 - 60_000);
    expect(await left()).toBeLessThanOrEqual(86_401_000);
    clock.advance(86_000_000);
    expect(await charge('k')).toBe(1);
    expect(runs).toBe(1);
  });

  test.each([
    ['a lease that never ends (Infinity)', { leaseUntil: Number.POSITIVE_INFINITY }],
    ['a retention and a lease that ended before now', { leaseUntil: t0 - 1, expiresAt: Math.floor(t0 / 1000) - 10 }],
    ['a lease that ends exactly now, after the retention (a time to live of 0 ms)', { leaseUntil: t0, expiresAt: Math.floor(t0 / 1000) - 1 }],
  ])('%s: the claim is refused with a TypeError before anything is written, never a key without a TTL or one deleted at once', async (_, times) => {
    const store = new RedisStore({ client, keyPrefix: 'bad-ttl:' });
    const key = `k-${times.leaseUntil}`;
    await expect(store.claim({ ...claimRequest(key), ...times })).rejects.toThrow(TypeError);
    expect(await raw.exists(`bad-ttl:${key}`)).toBe(0);
    expect(await store.claim(claimRequest(key))).toEqual({ claimed: true });
    const done = { key, owner: 'owner-a', response: '"done"', now: t0 };
    await expect(store.complete({ ...done, expiresAt: Math.floor(t0 / 1000) - 10 })).rejects.toThrow(TypeError);
    expect(await raw.hget(`bad-ttl:${key}`, 'status')).toBe('INPROGRESS');
  });

  test('the longest retention and leases an entry point takes, with a lease that outlasts the retention, give the key a time to live Redis takes', async () => {
    let runs = 0;
    const longest = 9_000_000_000_000;
    const charge = makeIdempotent(async (_id: string) => ++runs, {
      store: new RedisStore({ client, keyPrefix: 'longest:' }),
      name: 'charge',
      expiresAfterSeconds: longest - 1,
      leaseSeconds: longest,
      // A fraction of a millisecond past a whole second: the retention's last second rounds the time to live up.
      now: () => Date.UTC(2030, 0, 1) + 0.5,
    });
    expect([await charge('k'), await charge('k')]).toEqual([1, 1]);
    const [key] = await raw.keys('longest:*');
    expect(await raw.pttl(key!)).toBeGreaterThan((longest - 2) * 1000);
    expect(await raw.pttl(key!)).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
    await raw.del(key!);
  });

  test('a lease with a fraction of a millisecond (a clock built on performance.now()) that outlasts the retention: the key expires after it', async () => {
    // PEXPIRE takes whole milliseconds only: a fraction made the script fail after it had written the record.
    const store = new RedisStore({ client, keyPrefix: 'fraction:' });
    const request = claimRequest('k');
    const leaseUntil = (request.expiresAt + 600) * 1000 + 0.25;
    const given = await ttlGiven('fraction:k', async () => expect(await store.claim({ ...request, leaseUntil })).toEqual({ claimed: true }));
    expect(given).toEqual([Math.ceil(leaseUntil - request.now)]);
  });
});
