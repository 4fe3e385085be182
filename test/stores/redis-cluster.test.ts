/**
 * Redis Cluster: each operation is one script on one key, so it runs on the key's primary with no
 * cross-slot access. The whole store contract runs on a one-node cluster (every slot on one real
 * redis-server in cluster mode) with ioredis's `Cluster` and node-redis's `createCluster`, and the
 * eviction policy is read from every primary. With a second node, a record's slot moves and
 * `waitForReplicas` still waits on the primary that ran the script. With two primaries, a
 * completion whose connections were reset is sent again once its own key's primary is back, and a
 * forget that ioredis sends again after its answer was lost counts as deleted. With a
 * primary and its replica, a failover while the function runs: node-redis sends the completion
 * again to the promoted replica, not to the primary it lost.
 */
import { Cluster, Redis } from 'ioredis';
import { createCluster } from 'redis';
import { createCluster as createCluster5 } from 'redis5';
import { hashKey, makeIdempotent } from '../../lib/index.js';
import { connectionOf, type NodeRedisCluster, slotOf } from '../../lib/redis/connection.js';
import type { RedisClient } from '../../lib/redis/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { CLAIM, COMPLETE, FORGET } from '../../lib/redis/scripts.js';
import { storeContract } from '../../lib/testing/index.js';
import { type RedisServer, startRedisServer } from '../../tools/redis-server.js';
import { forgetWithAnswerLost, NODE_REDIS_SOCKET, type OpenedClient, pttl, until } from '../support/redis.js';
import { rejection } from '../support/rejections.js';
import { TcpProxy } from '../support/tcp-proxy.js';

const KINDS: ReadonlyArray<readonly [string, (server: RedisServer) => Promise<OpenedClient>]> = [
  [
    'ioredis Cluster',
    async (server) => {
      const client = new Cluster([{ host: server.host, port: server.port }], { enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 0 } });
      return { client, close: () => client.disconnect() };
    },
  ],
  [
    'node-redis cluster',
    async (server) => {
      const client = createCluster({ rootNodes: [{ url: server.url }] });
      client.on('error', () => undefined);
      await client.connect();
      return { client, close: () => client.destroy() };
    },
  ],
];

/**
 * Every cluster node of the file, started together before its first test: a node in cluster mode
 * serves only 2 s after its start (Redis's writable delay for a master that may be rejoining), so
 * nodes started one after another, as each group of tests needed them, waited that long each.
 */
const NODES = [
  'main',
  'moved',
  'ask',
  'reset',
  'first',
  'second',
  'node-redis 6 primary',
  'node-redis 6 replica',
  'node-redis 5 primary',
  'node-redis 5 replica',
  'wait primary',
  'wait replica',
  'wait other',
] as const;
const nodes = new Map<(typeof NODES)[number], RedisServer>();
const node = (name: (typeof NODES)[number]): RedisServer => nodes.get(name)!;

let server: RedisServer;
let raw: Redis;
beforeAll(async () => {
  const started = await Promise.allSettled(NODES.map(async (name) => nodes.set(name, await startRedisServer({ cluster: true }))));
  const failed = started.find((result) => result.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  server = node('main');
  raw = new Redis(server.port, server.host);
});
afterAll(async () => {
  raw?.disconnect();
  await Promise.all([...nodes.values()].map((started) => started.stop()));
});

/**
 * The slot of `key`, emptied of the records earlier tests left on the first node (one in a few
 * dozen slots holds one): Redis moves no slot away from a node that holds keys in it.
 */
async function vacatedSlotOf(key: string): Promise<string> {
  const slot = String(await raw.call('CLUSTER', 'KEYSLOT', key));
  const left = (await raw.call('CLUSTER', 'GETKEYSINSLOT', slot, '10000')) as string[];
  if (left.length > 0) await raw.del(...left);
  return slot;
}

/** Makes `server` a member of the first node's cluster, holding no slot; returns a connection to it. */
async function joinedWithoutSlots(server: RedisServer): Promise<Redis> {
  const { host, port } = server;
  const joining = new Redis(port, host);
  await joining.call('CLUSTER', 'DELSLOTSRANGE', '0', '16383');
  await raw.call('CLUSTER', 'MEET', host, String(port));
  const healthy = async (node: Redis) => String(await node.call('CLUSTER', 'INFO')).includes('cluster_state:ok');
  const id = String(await joining.call('CLUSTER', 'MYID'));
  while (!((await healthy(raw)) && (await healthy(joining)) && String(await raw.call('CLUSTER', 'NODES')).includes(id))) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return joining;
}

const waitsOn = async (node: Redis) => Number(/cmdstat_wait:calls=(\d+)/.exec(await node.info('commandstats'))?.[1] ?? 0);

describe.each(KINDS)('%s', (name, open) => {
  const keyPrefix = `${name.replace(/ /g, '-')}:`;
  let opened: OpenedClient;
  beforeAll(async () => {
    opened = await open(server);
  });
  afterAll(() => opened.close());

  for (const check of storeContract(() => new RedisStore({ client: opened.client, keyPrefix }), {
    sharedRecords: true,
    ttlOf: (key) => pttl(raw, keyPrefix + key),
  })) {
    test(check.name, check.run);
  }

  test('a record is one hash, named by the prefix and the record key', async () => {
    const store = new RedisStore({ client: opened.client, keyPrefix });
    const now = Date.now();
    await store.claim({ key: 'orders#abc', owner: 'a', now, leaseUntil: now + 1000, expiresAt: Math.floor(now / 1000) + 60 });
    expect(await raw.keys(`${keyPrefix}orders*`)).toEqual([`${keyPrefix}orders#abc`]);
    expect(await raw.type(`${keyPrefix}orders#abc`)).toBe('hash');
  });

  test("waitForReplicas sends WAIT to the key's primary, after the script (in the same round trip where the client allows)", async () => {
    // This cluster has no replicas: the write is applied on the primary, and WAIT reports 0 of 1.
    const store = new RedisStore({ client: opened.client, keyPrefix: `${keyPrefix}wait:`, waitForReplicas: { replicas: 1, timeoutMillis: 50 } });
    const now = Date.now();
    await expect(store.claim({ key: 'k', owner: 'a', now, leaseUntil: now + 1000, expiresAt: Math.floor(now / 1000) + 60 })).rejects.toThrow(
      /Only 0 of 1 replicas/,
    );
    expect(await raw.hget(`${keyPrefix}wait:k`, 'owner')).toBe('a');
  });

  test('every primary connected: a call that failed otherwise is not sent again, nor waited on (no connection was lost)', async () => {
    const connection = connectionOf(opened.client);
    await connection.send(keyPrefix, ['EXISTS', keyPrefix]); // connected by now
    // A wait of ten minutes: one taken by mistake outlasts the test.
    expect(await connection.reconnected('k', 600_000)).toBe(false);
  });

  test('the eviction policy is read from the primaries', async () => {
    // A client of its own: a client that passed the check once is not asked again.
    const fresh = await open(server);
    await raw.config('SET', 'maxmemory-policy', 'volatile-ttl');
    try {
      const store = new RedisStore({ client: fresh.client, keyPrefix: `${keyPrefix}evict:` });
      const now = Date.now();
      await expect(store.claim({ key: 'k', owner: 'a', now, leaseUntil: now + 1000, expiresAt: Math.floor(now / 1000) + 60 })).rejects.toThrow(
        /'volatile-ttl'/,
      );
    } finally {
      await raw.config('SET', 'maxmemory-policy', 'noeviction');
      fresh.close();
    }
  });
});

test("ioredis Cluster closed by the application: a claim fails with the client's own error, not a refusal that blames the eviction policy and points to allowEviction", async () => {
  const client = new Cluster([{ host: server.host, port: server.port }], { enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 0 } });
  await new Promise((resolve) => client.once('ready', resolve));
  const ended = new Promise((resolve) => client.once('end', resolve));
  client.disconnect();
  await ended;
  // A client of its own that never passed the eviction check: the check is the claim's first request.
  let runs = 0;
  const charge = makeIdempotent(async (_id: string) => ++runs, { store: new RedisStore({ client, keyPrefix: 'closed-cluster:' }), name: 'charge' });
  const error = await rejection(charge('order-1'));
  expect(error.code).toBe('STORE_FAILURE');
  expect((error.cause as Error).message).toBe('Connection is closed.');
  expect(error.message).not.toMatch(/maxmemory-policy|allowEviction/);
  expect(runs).toBe(0);
});

test("a key's slot is the one Redis computes, hash tags and any characters included", async () => {
  const keys = ['', 'k', 'idempotency:pay#N2ZNWJX3h1jsjpTkQLMMmiz8aIc8KDBjAbQNai8_76M', '{user1}.a', 'a{}{b}', 'a{{b}}c', 'a{b', '{}', 'é∂😀{ü}'];
  const slots = await Promise.all(keys.map(async (key) => Number(await raw.call('CLUSTER', 'KEYSLOT', key))));
  expect(keys.map(slotOf)).toEqual(slots);
});

test.each([
  ['never connected', false],
  ['still connecting', true],
])('node-redis cluster %s: STORE_FAILURE that says to connect it, not a refusal of its eviction policy', async (_state, connecting) => {
  const client = createCluster({ rootNodes: [{ url: server.url }] });
  client.on('error', () => undefined);
  const connected = connecting ? client.connect() : undefined;
  try {
    const charge = makeIdempotent(async (_id: string) => 1, { store: new RedisStore({ client, keyPrefix: 'cluster-unconnected:' }), name: 'charge' });
    const error = await rejection(charge('order-1'));
    expect(error.code).toBe('STORE_FAILURE');
    expect((error.cause as Error).message).toMatch(/call `await client.connect\(\)` first/);
    // Said by the error itself too, which is all Lambda's log of an uncaught error shows.
    expect(error.message).toMatch(
      /^STORE_FAILURE: The idempotency store failed \(The node-redis cluster is not connected: call `await client.connect\(\)` first/,
    );
  } finally {
    if (connected !== undefined) {
      await connected;
      client.destroy();
    }
  }
});

describe('a slot moved to another primary (MOVED)', () => {
  let other: RedisServer;
  let rawOther: Redis;
  beforeAll(async () => {
    other = node('moved');
    // The second node gives up its slots and joins the first: one cluster, every slot on the first.
    rawOther = await joinedWithoutSlots(other);
  }, 60_000);
  afterAll(() => rawOther.disconnect());

  /** Moves the slot of `key` to the second node, which also learns the claim script. */
  async function moveSlotOf(key: string): Promise<void> {
    const slot = await vacatedSlotOf(key);
    const otherId = String(await rawOther.call('CLUSTER', 'MYID'));
    await raw.call('CLUSTER', 'SETSLOT', slot, 'NODE', otherId);
    await rawOther.call('CLUSTER', 'SETSLOT', slot, 'NODE', otherId);
    await rawOther.script('LOAD', CLAIM.source);
  }

  // node-redis resends a moved command by itself, and WAIT must follow it; ioredis redirects no
  // pipeline that holds WAIT, and must not fail every later call with MOVED. With node-redis, WAIT
  // goes to the slot's primary once the script has answered: one sent beside the script, not after
  // it, would go to the primary the slot left.
  const NODE_REDIS_5: (typeof KINDS)[number] = [
    'node-redis 5 cluster',
    async (server) => {
      const client = createCluster5({ rootNodes: [{ url: server.url }] });
      client.on('error', () => undefined);
      await client.connect();
      return { client: client as unknown as RedisClient, close: () => client.destroy() };
    },
  ];
  test.each([...KINDS, NODE_REDIS_5])(
    "%s: a write whose slot moved runs on the slot's new primary, and WAIT goes there too",
    async (name, open) => {
      const opened = await open(server);
      try {
        const keyPrefix = `moved-${name.replace(/ /g, '-')}:`;
        const now = Date.now();
        const request = { key: 'k', owner: 'a', now, leaseUntil: now + 10_000, expiresAt: Math.floor(now / 1000) + 60 };
        await new RedisStore({ client: opened.client, keyPrefix }).claim({ ...request, key: 'warm' }); // the client learns the slot map
        await moveSlotOf(`${keyPrefix}k`);
        const before = await waitsOn(rawOther);
        const store = new RedisStore({ client: opened.client, keyPrefix, waitForReplicas: { replicas: 1, timeoutMillis: 10 } });
        await expect(store.claim(request)).rejects.toThrow(/Only 0 of 1 replicas/);
        expect(await rawOther.hget(`${keyPrefix}k`, 'owner')).toBe('a');
        expect((await waitsOn(rawOther)) - before).toBeGreaterThanOrEqual(1);
        const again = await store.claim({ ...request, owner: 'b' });
        expect(again.claimed === false && again.record.owner).toBe('a');
      } finally {
        opened.close();
      }
    },
    60_000,
  );

  test("ioredis Cluster: a write whose slot moved, its slot map read again only after the call's timeoutMillis, is not sent again after it", async () => {
    const [, open] = KINDS[0]!;
    const opened = await open(server);
    const client = opened.client as Cluster;
    try {
      const keyPrefix = 'moved-late-ioredis:';
      const now = Date.now();
      const request = { key: 'k', owner: 'a', now, leaseUntil: now + 10_000, expiresAt: Math.floor(now / 1000) + 60 };
      const store = new RedisStore({ client, keyPrefix, timeoutMillis: 300, waitForReplicas: { replicas: 1, timeoutMillis: 10 } });
      await store.claim({ ...request, key: 'warm' }).catch(() => undefined); // the client learns the slot map
      await moveSlotOf(`${keyPrefix}k`);
      // The slot map is read again (as after a MOVED) only once the call has failed at its bound.
      const refresh = client.refreshSlotsCache.bind(client);
      let failed!: () => void;
      const callFailed = new Promise<void>((resolve) => (failed = resolve));
      let refreshed!: Promise<void>;
      client.refreshSlotsCache = (callback) => {
        refreshed = callFailed.then(() => new Promise<void>((resolve) => refresh((error) => (callback?.(error), resolve()))));
      };
      await expect(store.claim(request)).rejects.toThrow(/did not answer within 300 ms/);
      failed();
      await refreshed;
      await new Promise((resolve) => setImmediate(resolve));
      // Read through the same client: a claim sent again after the refresh would have reached the node first, on the same connection.
      expect(await client.call('EXISTS', `${keyPrefix}k`)).toBe(0);
      expect(await rawOther.exists(`${keyPrefix}k`)).toBe(0);
    } finally {
      opened.close();
    }
  }, 60_000);
});

// During a resharding, a key already on the slot's new node is answered with ASK by the old one;
// ioredis follows no ASK in a pipeline that holds WAIT. (node-redis follows it, but sends WAIT to
// the slot's old primary, where it reports nothing about the write.) A node added to the cluster to
// take slots over holds none until its first slot's migration ends, so the client has no
// connection to it yet; behind a NAT, its address is the one the cluster announces, which the
// client's `natMap` maps.
describe('a slot migrating to a node that holds no slot yet (ASK)', () => {
  let adding: RedisServer;
  let rawAdding: Redis;
  beforeAll(async () => {
    adding = node('ask');
    rawAdding = await joinedWithoutSlots(adding);
    // Each test gives the slot back; a primary that loses its last slot would otherwise become a replica of the node that took it.
    await rawAdding.call('CONFIG', 'SET', 'cluster-allow-replica-migration', 'no');
  }, 60_000);
  afterAll(() => rawAdding.disconnect());

  // A Cluster's own `keyPrefix` is not its nodes' (only `redisOptions.keyPrefix` is): a command sent
  // to a node must carry the Cluster's prefix all the same, or it touches another key.
  test.each([
    ['', {}],
    [', with a keyPrefix of its own', { keyPrefix: 'app:' }],
    [', with a keyPrefix for its nodes', { redisOptions: { maxRetriesPerRequest: 0, keyPrefix: 'app:' } }],
    [', with a natMap', { natMap: true }],
  ] as const)(
    "ioredis Cluster%s: during a slot's migration (ASK), a claim and its completion run on the slot's new node, and WAIT goes there too",
    async (name, options) => {
      const proxy = 'natMap' in options ? await TcpProxy.start(adding.port) : undefined;
      const { natMap: _, ...clusterOptions } = { natMap: undefined, ...options };
      const client = new Cluster([{ host: server.host, port: server.port }], {
        enableOfflineQueue: false,
        redisOptions: { maxRetriesPerRequest: 0 },
        ...clusterOptions,
        ...(proxy && { natMap: { [`${adding.host}:${adding.port}`]: { host: adding.host, port: proxy.port } } }),
      });
      const clientPrefix = 'keyPrefix' in options ? options.keyPrefix : 'redisOptions' in options ? options.redisOptions.keyPrefix : '';
      const [mainId, addingId] = [String(await raw.call('CLUSTER', 'MYID')), String(await rawAdding.call('CLUSTER', 'MYID'))];
      const keyPrefix = `ask-ioredis${name.replace(/\W+/g, '-')}:`;
      const slot = await vacatedSlotOf(`${clientPrefix}${keyPrefix}k`);
      try {
        const now = Date.now();
        const request = { key: 'k', owner: 'a', now, leaseUntil: now + 10_000, expiresAt: Math.floor(now / 1000) + 60 };
        const store = new RedisStore({ client, keyPrefix, waitForReplicas: { replicas: 1, timeoutMillis: 10 } });
        await store.claim({ ...request, key: 'warm' }).catch(() => undefined); // the client learns the slot map
        expect(client.nodes('master').map(({ options }) => options.port)).not.toContain(proxy?.port ?? adding.port);
        await rawAdding.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', mainId);
        await raw.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', addingId);
        const before = await waitsOn(rawAdding);
        await expect(store.claim(request)).rejects.toThrow(/Only 0 of 1 replicas/);
        await expect(store.complete({ key: 'k', owner: 'a', expiresAt: request.expiresAt, response: '"done"', now })).rejects.toThrow(/Only 0 of 1 replicas/);
        expect((await waitsOn(rawAdding)) - before).toBeGreaterThanOrEqual(2);
        if (proxy) expect(proxy.requests).toBeGreaterThan(0); // reached at the address the natMap gives
        // The migration ends: the slot is the new node's, with the completed record.
        await rawAdding.call('CLUSTER', 'SETSLOT', slot, 'NODE', addingId);
        await raw.call('CLUSTER', 'SETSLOT', slot, 'NODE', addingId);
        expect(await rawAdding.hmget(`${clientPrefix}${keyPrefix}k`, 'owner', 'status')).toEqual(['a', 'COMPLETED']);
        // No other key was written: a command sent without the Cluster's prefix writes one, or meets MOVED.
        expect([...(await raw.keys(`*${keyPrefix}k`)), ...(await rawAdding.keys(`*${keyPrefix}k`))]).toEqual([`${clientPrefix}${keyPrefix}k`]);
      } finally {
        client.disconnect();
        await proxy?.cut();
        // The slot goes back to the first node, so that the next test's migration is again to a node without slots.
        const left = (await rawAdding.call('CLUSTER', 'GETKEYSINSLOT', slot, '10000')) as string[];
        if (left.length > 0) await rawAdding.del(...left);
        await rawAdding.call('CLUSTER', 'SETSLOT', slot, 'NODE', mainId);
        await raw.call('CLUSTER', 'SETSLOT', slot, 'NODE', mainId);
      }
    },
    60_000,
  );

  // docs/redis.md: a redirected write is "not sent there after the call's timeoutMillis". The new
  // node's connection is made at the ASK reply; its ready check waits at a proxy until the call has
  // failed at its bound, and then the node is ready: the claim must not follow.
  test("ioredis Cluster: a write redirected (ASK) to a node whose connection is ready only after the call's timeoutMillis is not sent there after it", async () => {
    const proxy = await TcpProxy.start(adding.port);
    const client = new Cluster([{ host: server.host, port: server.port }], {
      enableOfflineQueue: false,
      redisOptions: { maxRetriesPerRequest: 0 },
      natMap: { [`${adding.host}:${adding.port}`]: { host: adding.host, port: proxy.port } },
    });
    const [mainId, addingId] = [String(await raw.call('CLUSTER', 'MYID')), String(await rawAdding.call('CLUSTER', 'MYID'))];
    const keyPrefix = 'ask-late-ioredis:';
    const slot = await vacatedSlotOf(`${keyPrefix}k`);
    try {
      const now = Date.now();
      const request = { key: 'k', owner: 'a', now, leaseUntil: now + 10_000, expiresAt: Math.floor(now / 1000) + 60 };
      const store = new RedisStore({ client, keyPrefix, timeoutMillis: 300, waitForReplicas: { replicas: 1, timeoutMillis: 10 } });
      await store.claim({ ...request, key: 'warm' }).catch(() => undefined); // the client learns the slot map
      await rawAdding.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', mainId);
      await raw.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', addingId);
      proxy.hold();
      await expect(store.claim(request)).rejects.toThrow(/did not answer within 300 ms/);
      const adder = client.nodes('all').find(({ options }) => options.port === proxy.port);
      expect(adder?.status).toBe('connect'); // connected to the proxy, its ready check held there
      const ready = new Promise((resolve) => adder!.once('ready', resolve));
      await proxy.restore();
      await ready;
      await new Promise((resolve) => setImmediate(resolve));
      // A claim sent again once the node was ready would have been written before this, on the same connection.
      expect(await adder!.call('PING')).toBe('PONG');
      const keysIn = (node: Redis) => node.call('CLUSTER', 'COUNTKEYSINSLOT', slot);
      expect([await keysIn(rawAdding), await keysIn(raw)]).toEqual([0, 0]);
    } finally {
      client.disconnect();
      await proxy.cut();
      const left = (await rawAdding.call('CLUSTER', 'GETKEYSINSLOT', slot, '10000')) as string[];
      if (left.length > 0) await rawAdding.del(...left);
      await rawAdding.call('CLUSTER', 'SETSLOT', slot, 'NODE', mainId);
      await raw.call('CLUSTER', 'SETSLOT', slot, 'NODE', mainId);
    }
  }, 60_000);

  // docs/redis.md: on a Cluster, the commands it lists for the store, with `CLUSTER|SLOTS`,
  // `CLUSTER|INFO` and `@connection` (which holds `ASKING`) for the client, are all a user needs.
  test("ioredis Cluster, as a user granted only the commands docs/redis.md lists on the prefix: a claim and its completion during a slot's migration (ASK)", async () => {
    const user = 'cluster-listed';
    const keyPrefix = 'ask-acl:';
    const commands = ['evalsha', 'eval', 'info', 'wait', 'hgetall', 'hmget', 'hset', 'hdel', 'del', 'pttl', 'pexpire', 'type', 'cluster|slots', 'cluster|info'];
    const rules = ['on', '>secret', `~${keyPrefix}*`, '-@all', '+@connection', ...commands.map((command) => `+${command}`)];
    // On every node: the client connects to each member of the cluster (earlier tests joined others).
    const each = (command: string[]) =>
      Promise.all(
        [...nodes.values()].map(async ({ port, host }) => {
          const direct = new Redis(port, host);
          await direct.call('ACL', ...command).finally(() => direct.disconnect());
        }),
      );
    await each(['SETUSER', user, ...rules]);
    const client = new Cluster([{ host: server.host, port: server.port }], {
      enableOfflineQueue: false,
      redisOptions: { maxRetriesPerRequest: 0, username: user, password: 'secret' },
    });
    const [mainId, addingId] = [String(await raw.call('CLUSTER', 'MYID')), String(await rawAdding.call('CLUSTER', 'MYID'))];
    const slot = await vacatedSlotOf(`${keyPrefix}k`);
    try {
      const now = Date.now();
      const request = { key: 'k', owner: 'a', now, leaseUntil: now + 10_000, expiresAt: Math.floor(now / 1000) + 60 };
      const store = new RedisStore({ client, keyPrefix });
      expect(await store.claim({ ...request, key: 'warm' })).toMatchObject({ claimed: true }); // connected, and the slot map learnt
      await rawAdding.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', mainId);
      await raw.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', addingId);
      expect(await store.claim(request)).toMatchObject({ claimed: true });
      await store.complete({ key: 'k', owner: 'a', expiresAt: request.expiresAt, response: '"done"', now });
      // The migration ends: the slot is the new node's, with the completed record.
      await rawAdding.call('CLUSTER', 'SETSLOT', slot, 'NODE', addingId);
      await raw.call('CLUSTER', 'SETSLOT', slot, 'NODE', addingId);
      expect(await rawAdding.hmget(`${keyPrefix}k`, 'owner', 'status')).toEqual(['a', 'COMPLETED']);
    } finally {
      client.disconnect();
      await each(['DELUSER', user]);
      const left = (await rawAdding.call('CLUSTER', 'GETKEYSINSLOT', slot, '10000')) as string[];
      if (left.length > 0) await rawAdding.del(...left);
      await rawAdding.call('CLUSTER', 'SETSLOT', slot, 'NODE', mainId);
      await raw.call('CLUSTER', 'SETSLOT', slot, 'NODE', mainId);
    }
  }, 60_000);
});

describe('a connection to a primary reset while the function runs (a cluster of its own, reached through a proxy)', () => {
  let server: RedisServer;
  let raw: Redis;
  let proxy: TcpProxy;
  beforeAll(async () => {
    server = node('reset');
    raw = new Redis(server.port, server.host);
    proxy = await TcpProxy.start(server.port);
  });
  afterAll(async () => {
    await proxy.cut();
    raw.disconnect();
  });

  // The cluster's own address for its node is the proxy's, so that cutting the proxy resets the client's connection to it.
  const THROUGH_PROXY: ReadonlyArray<readonly [string, () => Promise<OpenedClient>]> = [
    [
      'ioredis Cluster',
      async () => {
        const natMap = { [`${server.host}:${server.port}`]: { host: server.host, port: proxy.port } };
        const client = new Cluster([{ host: server.host, port: proxy.port }], { natMap, enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 0 } });
        client.on('error', () => undefined); // a slot refresh that fails while the proxy is cut
        return { client, close: () => client.disconnect() };
      },
    ],
    [
      'node-redis cluster',
      async () => {
        const client = createCluster({
          rootNodes: [{ url: proxy.url }],
          nodeAddressMap: () => ({ host: server.host, port: proxy.port }),
          defaults: { disableOfflineQueue: true, socket: NODE_REDIS_SOCKET },
        });
        client.on('error', () => undefined);
        await client.connect();
        return { client, close: () => client.destroy() };
      },
    ],
  ];

  test.each(THROUGH_PROXY)('%s: the completion is sent again once the client has reconnected, so the record is COMPLETED', async (name, open) => {
    const opened = await open();
    try {
      const keyPrefix = `reset-${name.replace(/ /g, '-')}:`;
      const pay = makeIdempotent(
        async (_id: string) => {
          await proxy.cut(); // a failover, a node replaced: the client reconnects while the function ends
          await proxy.restore();
          return 'paid';
        },
        { store: new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 5000 }), name: 'pay' },
      );
      expect(await pay('k')).toBe('paid');
      const [key] = await raw.keys(`${keyPrefix}*`);
      expect(await raw.hget(key!, 'status')).toBe('COMPLETED');
    } finally {
      opened.close();
    }
  });

  // docs/redis.md: "the release of a failed claim that never reached a ready client (the client still
  // away since the claim failed) fails at once, as the claim did". A node-redis cluster is ready
  // while its slot map names a primary: the release is not sent while the key's primary is away.
  test.each(THROUGH_PROXY)(
    "%s: a claim whose primary's connection is cut fails at once, its release not waiting within timeoutMillis for a node it never reached",
    async (name, open) => {
      const opened = await open();
      try {
        const keyPrefix = `cut-claim-${name.replace(/ /g, '-')}:`;
        let runs = 0;
        const pay = makeIdempotent(
          async (_id: string) => {
            runs++;
            return 'paid';
          },
          { store: new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 8000 }), name: 'pay' },
        );
        expect(await pay('before')).toBe('paid');
        await proxy.cut(); // connections reset, and refused until restored
        await new Promise((resolve) => setTimeout(resolve, 200)); // the client has seen it
        const started = performance.now();
        const error = await rejection(pay('k'));
        expect(error.code).toBe('STORE_FAILURE');
        expect(runs).toBe(1);
        // At once: not after the store's 8 s timeoutMillis (with room for a loaded machine).
        expect(performance.now() - started).toBeLessThan(4000);
      } finally {
        await proxy.restore();
        opened.close();
      }
    },
    30_000,
  );

  // The same release, after a claim applied whose answer a reset lost, frees the key once the client
  // has reconnected: a command on a key whose primary is reconnecting waits for that attempt.
  test.each(THROUGH_PROXY)(
    '%s: a claim applied whose answer was lost to a connection reset: STORE_FAILURE, and the release that follows frees the key once the client has reconnected, so a retry runs',
    async (name, open) => {
      const opened = await open();
      try {
        const keyPrefix = `lost-claim-${name.replace(/ /g, '-')}:`;
        let runs = 0;
        const pay = makeIdempotent(
          async (_id: string) => {
            runs++;
            return 'paid';
          },
          { store: new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 5000 }), name: 'pay' },
        );
        expect(await pay('before')).toBe('paid');
        proxy.loseReplies(); // the claim reaches Redis, its answer does not come back
        const first = rejection(pay('k'));
        await until(() => raw.keys(`${keyPrefix}pay#${hashKey('k')}`));
        await proxy.cut();
        await proxy.restore();
        expect((await first).code).toBe('STORE_FAILURE');
        expect(await raw.keys(`${keyPrefix}pay#${hashKey('k')}`)).toEqual([]);
        expect(await pay('k')).toBe('paid');
        expect(runs).toBe(2);
      } finally {
        await proxy.restore();
        opened.close();
      }
    },
    30_000,
  );

  // docs/redis.md: a completion is sent again "within what is left of the call's timeoutMillis,
  // which bounds the whole call": with the key's primary away past it, the wait ends then, with false.
  test("node-redis cluster: the key's primary away past the call's timeoutMillis, the wait for its return ends at that bound, unreconnected", async () => {
    const [, open] = THROUGH_PROXY[1]!;
    const opened = await open();
    try {
      const primary = (opened.client as NodeRedisCluster).masters[0]!.client!;
      const lost = new Promise((resolve) => primary.once('reconnecting', resolve));
      await proxy.cut(); // connections reset, and refused until restored
      await lost;
      const started = performance.now();
      expect(await connectionOf(opened.client, 300).reconnected('k', 5000)).toBe(false);
      expect(performance.now() - started).toBeLessThan(2500); // the bound (300 ms), not the 5 s asked, on a loaded machine too
    } finally {
      await proxy.restore();
      opened.close();
    }
  });

  // ioredis: the only node's connection ended, the Cluster closes and fails the commands it left
  // unanswered (it sends them again only while another node is connected); node-redis never resends.
  test.each(THROUGH_PROXY)('%s: a forget applied whose answer the reset lost is unknown (thrown), never "nothing deleted"', async (name, open) => {
    const opened = await open();
    try {
      const keyPrefix = `reset-forget-${name.replace(/ /g, '-')}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 5000 });
      const now = Date.now();
      await store.claim({ key: 'k', owner: 'o', leaseUntil: now + 60_000, expiresAt: Math.floor(now / 1000) + 600, now });
      await raw.script('LOAD', FORGET.source); // its EVALSHA's NOSCRIPT answer is not the one lost
      const outcome = await forgetWithAnswerLost(
        proxy,
        () => store.forget('k'),
        async () => (await raw.exists(`${keyPrefix}k`)) === 0,
      );
      expect(outcome).toEqual({ error: expect.any(Error) });
    } finally {
      opened.close();
    }
  });
});

describe("two primaries, each reached through a proxy: a completion waits for its key's primary only", () => {
  let first: RedisServer;
  let second: RedisServer;
  let rawFirst: Redis;
  let rawSecond: Redis;
  let proxies: Map<number, TcpProxy>;
  beforeAll(async () => {
    [first, second] = [node('first'), node('second')];
    rawFirst = new Redis(first.port, first.host);
    rawSecond = new Redis(second.port, second.host);
    // The upper half of the slots moves to the second node, which joins the first: one cluster, two primaries.
    await rawFirst.call('CLUSTER', 'DELSLOTSRANGE', '8192', '16383');
    await rawSecond.call('CLUSTER', 'DELSLOTSRANGE', '0', '8191');
    await rawFirst.call('CLUSTER', 'MEET', second.host, String(second.port));
    const ready = async (node: Redis) => {
      const nodes = String(await node.call('CLUSTER', 'NODES'));
      return (
        String(await node.call('CLUSTER', 'INFO')).includes('cluster_state:ok') && nodes.split('\n').filter((line) => line.includes('master')).length === 2
      );
    };
    while (!((await ready(rawFirst)) && (await ready(rawSecond)))) await new Promise((resolve) => setTimeout(resolve, 50));
    proxies = new Map([
      [first.port, await TcpProxy.start(first.port)],
      [second.port, await TcpProxy.start(second.port)],
    ]);
  }, 60_000);
  afterAll(async () => {
    for (const proxy of proxies.values()) await proxy.cut();
    rawFirst.disconnect();
    rawSecond.disconnect();
  });

  // The second row's hash tag puts the record in slot 8191, the first primary's last: the slot after
  // it is the other primary's, and a wait for the wrong slot would wait for that one.
  test.each([
    ['', 'two-primaries-3:'],
    [", its key's slot the last of its primary's range", '{edge10922}:'],
  ])(
    "node-redis cluster: both primaries' connections reset, only the key's comes back: the completion is sent again there, so the record is COMPLETED%s",
    async (_edge, keyPrefix) => {
      const client = createCluster({
        rootNodes: [{ url: proxies.get(first.port)!.url }],
        // Each node's own address is its proxy's, so that cutting a proxy resets the client's connection to that node.
        nodeAddressMap: (address: string) => ({ host: first.host, port: proxies.get(Number(address.split(':')[1]))!.port }),
        defaults: { disableOfflineQueue: true, socket: NODE_REDIS_SOCKET },
      });
      client.on('error', () => undefined);
      await client.connect();
      try {
        expect(client.masters.map((master) => master.client?.isReady)).toEqual([true, true]);
        /** The primary that holds the call's record, its proxy, the other primary's proxy, and the record's key. */
        const holder = async () => {
          const [keyed, unkeyed] = (await rawFirst.keys(`${keyPrefix}*`)).length > 0 ? [rawFirst, rawSecond] : [rawSecond, rawFirst];
          const [key] = await keyed.keys(`${keyPrefix}*`);
          const proxyOf = (node: Redis) => proxies.get(node === rawFirst ? first.port : second.port)!;
          return { node: keyed, key: key!, proxy: proxyOf(keyed), other: proxyOf(unkeyed) };
        };
        let other: TcpProxy | undefined;
        const pay = makeIdempotent(
          async (_id: string) => {
            const held = await holder();
            other = held.other;
            // Both connections reset; only the record's primary answers again.
            await Promise.all([...proxies.values()].map((proxy) => proxy.cut()));
            await held.proxy.restore();
            return 'paid';
          },
          { store: new RedisStore({ client, keyPrefix, timeoutMillis: 2000 }), name: 'pay' },
        );
        // The record's slot without the prefix is on the other primary: a completion that waited for that one would give up.
        const primaryOf = (key: string) => (slotOf(key) < 8192 ? 'first' : 'second');
        expect(primaryOf(`pay#${hashKey('k')}`)).not.toBe(primaryOf(`${keyPrefix}pay#${hashKey('k')}`));
        expect(slotOf(`${keyPrefix}pay#${hashKey('k')}`) === 8191).toBe(keyPrefix === '{edge10922}:');
        try {
          expect(await pay('k')).toBe('paid');
        } finally {
          await other?.restore();
        }
        const { node, key } = await holder();
        expect(await node.hget(key, 'status')).toBe('COMPLETED');
      } finally {
        client.destroy();
      }
    },
    30_000,
  );

  // A keyless command from an ioredis Cluster goes to one primary, chosen at random: INFO sent so would
  // read one policy. Five fresh clients a primary: a check that read one would pass 1 in 1024 runs.
  test('ioredis Cluster: a claim is refused when either primary can evict, whichever it is', async () => {
    for (const [evicting, name] of [
      [rawFirst, 'first'],
      [rawSecond, 'second'],
    ] as const) {
      await evicting.config('SET', 'maxmemory-policy', 'allkeys-lru');
      try {
        for (let attempt = 0; attempt < 5; attempt++) {
          // A client of its own: a client that passed the check once is not asked again.
          const client = new Cluster([{ host: first.host, port: first.port }]);
          try {
            const store = new RedisStore({ client, keyPrefix: `two-primaries-evict-${name}:` });
            const now = Date.now();
            await expect(store.claim({ key: 'k', owner: 'o', now, leaseUntil: now + 1000, expiresAt: Math.floor(now / 1000) + 60 })).rejects.toThrow(
              /'allkeys-lru'/,
            );
          } finally {
            client.disconnect();
          }
        }
      } finally {
        await evicting.config('SET', 'maxmemory-policy', 'noeviction');
      }
    }
  }, 30_000);

  // ioredis Cluster's nodes do not reconnect by default: a node whose connection closed ends, and the
  // Cluster sends the commands it left unanswered again (`retryDelayOnFailover`) while another node is
  // connected, whatever `maxRetriesPerRequest` and the offline queue say. With `clusterNodeRetryStrategy`
  // the node reconnects and sends them again itself: the Cluster emits no `-node`, only the node a `close`.
  test.each([
    ['as many applications configure it', {}],
    ['failing fast (maxRetriesPerRequest: 0, no offline queue)', { enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 0 } }],
    // A node that reconnects stays in the Cluster (no `-node`) and sends what its lost connection left unanswered again.
    ['reconnecting its nodes (clusterNodeRetryStrategy)', { clusterNodeRetryStrategy: () => 20 }],
  ] as const)(
    'ioredis Cluster %s: a forget applied whose answer a reset connection to its primary lost is deleted (true), never "nothing deleted"',
    async (how, options) => {
      const natMap = Object.fromEntries([first, second].map(({ host, port }) => [`${host}:${port}`, { host, port: proxies.get(port)!.port }]));
      const client = new Cluster([{ host: first.host, port: proxies.get(first.port)!.port }], { natMap, ...options });
      try {
        const keyPrefix = `two-primaries-forget-${how.split(' ')[0]}:`;
        const store = new RedisStore({ client, keyPrefix, timeoutMillis: 10_000 });
        const now = Date.now();
        await store.claim({ key: 'k', owner: 'o', leaseUntil: now + 60_000, expiresAt: Math.floor(now / 1000) + 600, now });
        // FORGET in both script caches: its EVALSHA's NOSCRIPT answer is not the one lost.
        for (const node of [rawFirst, rawSecond]) await node.script('LOAD', FORGET.source);
        const [holder, proxy] = slotOf(`${keyPrefix}k`) < 8192 ? [rawFirst, proxies.get(first.port)!] : [rawSecond, proxies.get(second.port)!];
        // The forget reaches its primary, its answer does not come back.
        const outcome = await forgetWithAnswerLost(
          proxy,
          () => store.forget('k'),
          async () => (await holder.exists(`${keyPrefix}k`)) === 0,
        );
        expect(outcome).toEqual({ deleted: true });
      } finally {
        client.disconnect();
      }
    },
  );

  // ioredis Cluster sends a command whose connection closed again itself, and one refused with
  // CLUSTERDOWN again until its maxRedirections, then fails it quoting that last reply: the claim
  // reads as refused for now, which ran nothing, yet its first attempt applied. Its release must be
  // sent again until the cluster takes it, not once, as after a claim that ran nothing.
  test('ioredis Cluster: a claim applied whose answer a reset lost, then refused with CLUSTERDOWN while the cluster is down: its release is sent again until the cluster takes it, so a retry runs', async () => {
    const natMap = Object.fromEntries([first, second].map(({ host, port }) => [`${host}:${port}`, { host, port: proxies.get(port)!.port }]));
    const client = new Cluster([{ host: first.host, port: proxies.get(first.port)!.port }], {
      natMap,
      enableOfflineQueue: false,
      redisOptions: { maxRetriesPerRequest: 0 },
      retryDelayOnClusterDown: 20,
    });
    client.on('error', () => undefined); // a slots refresh that fails while the cluster is down
    const keyPrefix = 'two-primaries-down-after-reset:';
    const key = `${keyPrefix}pay#${hashKey('k')}`;
    const [holder, proxy] = slotOf(key) < 8192 ? [rawFirst, proxies.get(first.port)!] : [rawSecond, proxies.get(second.port)!];
    // A slot of each primary, but not the record's: each then answers every key with CLUSTERDOWN.
    const taken: ReadonlyArray<readonly [Redis, string]> = [
      [rawFirst, slotOf(key) === 0 ? '1' : '0'],
      [rawSecond, slotOf(key) === 8192 ? '8193' : '8192'],
    ];
    try {
      let runs = 0;
      const pay = makeIdempotent(
        async (_id: string) => {
          runs++;
          return 'paid';
        },
        { store: new RedisStore({ client, keyPrefix, timeoutMillis: 10_000 }), name: 'pay' },
      );
      expect(await pay('before')).toBe('paid');
      for (const node of [rawFirst, rawSecond]) await node.script('LOAD', CLAIM.source); // its EVALSHA's NOSCRIPT answer is not the one lost
      // The claim's last refusal, then its release's first: each as the Cluster fails the command.
      let refusals = 0;
      const releaseRefused = new Promise<void>((resolve) => {
        const target = client as unknown as { sendCommand(...args: unknown[]): unknown };
        const send = target.sendCommand.bind(target);
        target.sendCommand = (...args) => {
          const reply = send(...args);
          Promise.resolve(reply).catch((error: unknown) => {
            if (error instanceof Error && /CLUSTERDOWN/.test(error.message) && ++refusals === 2) resolve();
          });
          return reply;
        };
      });
      proxy.loseReplies(); // the claim reaches its primary, its answer does not come back
      const failed = rejection(pay('k'));
      await until(() => holder.exists(key));
      for (const [node, slot] of taken) await node.call('CLUSTER', 'DELSLOTS', slot);
      await proxy.cut();
      await proxy.restore();
      try {
        await releaseRefused;
      } finally {
        for (const [node, slot] of taken) await node.call('CLUSTER', 'ADDSLOTS', slot).catch(() => undefined);
      }
      const error = await failed;
      expect([error.code, String((error.cause as Error).message)]).toEqual(['STORE_FAILURE', expect.stringMatching(/CLUSTERDOWN/)]);
      expect(await holder.exists(key)).toBe(0);
      expect(await pay('k')).toBe('paid');
      expect(runs).toBe(2);
    } finally {
      client.disconnect();
    }
  }, 30_000);
});

// node-redis reads its slot map again only at a MOVED reply (node-redis 6 also after a node has been
// reconnecting 5 s): a completion that waited for the key's old primary, which a failover replaced,
// waited for a node that never comes back, and the record stayed INPROGRESS until its lease.
describe('a failover while the function runs: the primary is lost for good, its replica takes the slots over', () => {
  const NODE_REDIS_CLUSTERS = [
    ['node-redis 6', createCluster],
    ['node-redis 5', createCluster5 as unknown as typeof createCluster],
  ] as const;
  /** Polls `done` until it holds: a state the cluster reaches by gossip. */
  const until = async (done: () => Promise<boolean>) => {
    while (!(await done())) await new Promise((resolve) => setTimeout(resolve, 20));
  };
  const nodes = async (node: Redis) => String(await node.call('CLUSTER', 'NODES'));

  test.each(NODE_REDIS_CLUSTERS)(
    '%s cluster: the completion is sent again to the promoted replica, so the record is COMPLETED',
    async (name, create) => {
      const [primary, replica] = [node(`${name} primary`), node(`${name} replica`)];
      const rawPrimary = new Redis(primary.port, primary.host);
      const rawReplica = new Redis(replica.port, replica.host);
      const proxies = new Map([
        [primary.port, await TcpProxy.start(primary.port)],
        [replica.port, await TcpProxy.start(replica.port)],
      ]);
      const client = create({
        // The cluster's configuration endpoint: any node answers with the slot map.
        rootNodes: [...proxies.values()].map((proxy) => ({ url: proxy.url })),
        // Each node's own address is its proxy's, so that cutting a proxy loses the client's connection to that node.
        nodeAddressMap: (address: string) => ({ host: primary.host, port: proxies.get(Number(address.split(':')[1]))!.port }),
        defaults: { disableOfflineQueue: true, socket: NODE_REDIS_SOCKET },
      });
      client.on('error', () => undefined);
      try {
        // The second node joins as the first one's replica; every slot is the first one's, as both nodes see it.
        await rawReplica.call('CLUSTER', 'DELSLOTSRANGE', '0', '16383');
        await rawReplica.call('CLUSTER', 'MEET', primary.host, String(primary.port));
        const myId = async (node: Redis) => String(await node.call('CLUSTER', 'MYID'));
        const [primaryId, replicaId] = [await myId(rawPrimary), await myId(rawReplica)];
        await until(async () => (await nodes(rawReplica)).includes(primaryId));
        await rawReplica.call('CLUSTER', 'REPLICATE', primaryId);
        const replicated = (view: string) => view.includes(`slave ${primaryId}`) && /master - .* connected 0-16383/.test(view);
        await until(async () => replicated(await nodes(rawPrimary)) && replicated(await nodes(rawReplica)));
        await until(async () => /master_link_status:up/.test(await rawReplica.info('replication')));
        await client.connect();
        const keyPrefix = `failover-${name.replace(/ /g, '-')}:`;
        const pay = makeIdempotent(
          async (_id: string) => {
            expect(await rawPrimary.call('WAIT', '1', '5000')).toBe(1); // the replica has the claim
            await proxies.get(primary.port)!.cut(); // the client loses the primary for good
            // A failover the primary takes part in (it still reaches its replica): no write is lost.
            await rawReplica.call('CLUSTER', 'FAILOVER');
            // The failover is over once the old primary, as the cluster sees it, follows the new one.
            const failedOver = (view: string) => view.includes(`slave ${replicaId}`) && /myself,master|master - /.test(view);
            await until(async () => failedOver(await nodes(rawPrimary)) && failedOver(await nodes(rawReplica)));
            return 'paid';
          },
          { store: new RedisStore({ client, keyPrefix, timeoutMillis: 2000 }), name: 'pay' },
        );
        expect(await pay('k')).toBe('paid');
        const [key] = await rawReplica.keys(`${keyPrefix}*`);
        expect(await rawReplica.hget(key!, 'status')).toBe('COMPLETED');
      } finally {
        client.destroy();
        rawPrimary.disconnect();
        rawReplica.disconnect();
        for (const proxy of proxies.values()) await proxy.cut();
      }
    },
    30_000,
  );
});

// WAIT has command tips (request_policy:all_shards, response_policy:agg_min): node-redis 6 follows
// them for a WAIT sent through the cluster, sends it to every primary and answers with the lowest
// count, so another shard without a replica in sync failed every write on this one, after the wait's
// whole timeout. The wait must be on the primary that ran the write only.
describe("two primaries, only the key's primary with a replica: waitForReplicas waits on that primary only", () => {
  let primary: Redis;
  let other: Redis;
  let replica: Redis;
  beforeAll(async () => {
    const [p, r, o] = [node('wait primary'), node('wait replica'), node('wait other')];
    [primary, replica, other] = [new Redis(p.port, p.host), new Redis(r.port, r.host), new Redis(o.port, o.host)];
    await primary.call('CLUSTER', 'DELSLOTSRANGE', '8192', '16383');
    await other.call('CLUSTER', 'DELSLOTSRANGE', '0', '8191');
    await replica.call('CLUSTER', 'DELSLOTSRANGE', '0', '16383');
    await primary.call('CLUSTER', 'MEET', o.host, String(o.port));
    await primary.call('CLUSTER', 'MEET', r.host, String(r.port));
    const primaryId = String(await primary.call('CLUSTER', 'MYID'));
    const view = async (node: Redis) => String(await node.call('CLUSTER', 'NODES'));
    while (!(await view(replica)).includes(primaryId)) await new Promise((resolve) => setTimeout(resolve, 20));
    await replica.call('CLUSTER', 'REPLICATE', primaryId);
    const settled = async (node: Redis) =>
      String(await node.call('CLUSTER', 'INFO')).includes('cluster_state:ok') &&
      (await view(node)).split('\n').filter((line) => line.includes('master') && / connected \d/.test(line)).length === 2 &&
      (await view(node)).includes(`slave ${primaryId}`);
    while (!((await settled(primary)) && (await settled(other)) && (await settled(replica)))) await new Promise((resolve) => setTimeout(resolve, 50));
    while (!/master_link_status:up/.test(await replica.info('replication'))) await new Promise((resolve) => setTimeout(resolve, 50));
    await replica.call('READONLY'); // the test reads the replica's copy of the record
    // Both scripts cached: each write is one EVALSHA and one WAIT, not an EVALSHA refused (NOSCRIPT) and its WAIT first.
    for (const script of [CLAIM, COMPLETE]) await primary.script('LOAD', script.source);
  }, 60_000);
  afterAll(() => {
    for (const raw of [primary, replica, other]) raw.disconnect();
  });

  const NODE_REDIS_CLUSTERS = [
    ['node-redis 6 cluster', createCluster],
    ['node-redis 5 cluster', createCluster5 as unknown as typeof createCluster],
  ] as const;
  const CLIENTS: ReadonlyArray<readonly [string, () => Promise<OpenedClient>]> = [
    [
      'ioredis Cluster',
      async () => {
        const client = new Cluster([{ host: '127.0.0.1', port: node('wait primary').port }], {
          enableOfflineQueue: false,
          redisOptions: { maxRetriesPerRequest: 0 },
        });
        return { client, close: () => client.disconnect() };
      },
    ],
    ...NODE_REDIS_CLUSTERS.map(
      ([name, create]) =>
        [
          name,
          async () => {
            const client = create({ rootNodes: [{ url: node('wait primary').url }], defaults: { disableOfflineQueue: true, socket: NODE_REDIS_SOCKET } });
            client.on('error', () => undefined);
            await client.connect();
            return { client: client as unknown as RedisClient, close: () => client.destroy() };
          },
        ] as const,
    ),
  ];

  test.each(CLIENTS)(
    "%s: a claim and its completion on the key's shard succeed, WAIT sent to its primary only",
    async (name, open) => {
      const opened = await open();
      try {
        const keyPrefix = `wait-shard-${name.replace(/ /g, '-')}:`;
        // A record key on the primary with a replica (slots 0 to 8191).
        const key = ['k', 'k1', 'k2', 'k3', 'k4', 'k5'].find((k) => slotOf(keyPrefix + k) < 8192)!;
        const [onPrimary, onOther] = [await waitsOn(primary), await waitsOn(other)];
        const store = new RedisStore({ client: opened.client, keyPrefix, waitForReplicas: { replicas: 1, timeoutMillis: 2000 } });
        const now = Date.now();
        const expiresAt = Math.floor(now / 1000) + 60;
        expect(await store.claim({ key, owner: 'a', now, leaseUntil: now + 10_000, expiresAt })).toEqual({ claimed: true });
        expect(await store.complete({ key, owner: 'a', now, expiresAt, response: 'paid' })).toMatchObject({ completed: true });
        expect(await replica.hget(`${keyPrefix}${key}`, 'status')).toBe('COMPLETED');
        expect([(await waitsOn(primary)) - onPrimary, (await waitsOn(other)) - onOther]).toEqual([2, 0]);
      } finally {
        opened.close();
      }
    },
    30_000,
  );
});
