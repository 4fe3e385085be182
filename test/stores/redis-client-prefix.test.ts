/**
 * A client with a `keyPrefix` of its own (ioredis; node-redis 6's `createClient({ keyPrefix })` and
 * `createCluster({ keyPrefix })`): the store's records are under it too, as the application's own
 * keys are, so applications that share a server apart by their clients' prefixes never share a
 * record, and an ACL user confined to its prefix can run the store. node-redis does not put its
 * prefix before the keys of `sendCommand`, the way the store sends: the store puts it there.
 */
import { randomUUID } from 'node:crypto';
import { createCluster } from 'redis';
import { createClient as createClient5 } from 'redis5';
import { makeIdempotent } from '../../lib/index.js';
import { type RedisClient, RedisStore } from '../../lib/redis/index.js';
import { startRedisServer } from '../../tools/redis-server.js';
import { inspector, ioredisClient, NODE_REDIS_SOCKET, nodeRedisClient, type OpenedClient, redisUrl } from '../support/redis.js';

const raw = inspector();
afterAll(() => raw.disconnect());

/** A client of each kind with `keyPrefix` as its own prefix, connected, and how to close it. */
const KINDS: ReadonlyArray<readonly [string, (keyPrefix: string, options?: object) => Promise<OpenedClient>]> = [
  [
    'ioredis',
    async (keyPrefix, options = {}) => {
      const client = ioredisClient(undefined, { keyPrefix, ...options });
      return { client, close: () => client.disconnect() };
    },
  ],
  [
    'node-redis 6',
    async (keyPrefix, options = {}) => {
      const client = nodeRedisClient(undefined, { keyPrefix, ...options } as never);
      await client.connect();
      return { client, close: () => client.destroy() };
    },
  ],
];

describe.each(KINDS)('%s', (_name, open) => {
  test('two applications apart by their clients’ prefixes never share a record: each runs its own function, its records under its prefix', async () => {
    const run = randomUUID();
    const [a, b] = await Promise.all([open(`prefix-a-${run}:`), open(`prefix-b-${run}:`)]);
    try {
      const charge = (tenant: string, client: RedisClient) =>
        makeIdempotent(async (_orderId: string) => ({ tenant }), { store: new RedisStore({ client, keyPrefix: 'idem:' }), name: 'charge' });
      expect([await charge('A', a.client)('order-1'), await charge('B', b.client)('order-1')]).toEqual([{ tenant: 'A' }, { tenant: 'B' }]);
      expect((await raw.keys(`*${run}*`)).sort()).toEqual([
        expect.stringMatching(new RegExp(`^prefix-a-${run}:idem:charge#`)),
        expect.stringMatching(new RegExp(`^prefix-b-${run}:idem:charge#`)),
      ]);
      for (const key of await raw.keys(`*${run}*`)) expect(await raw.pttl(key)).toBeGreaterThan(0);
    } finally {
      a.close();
      b.close();
    }
  });

  test('an ACL user confined to its prefix runs the store: claim, completion and replay', async () => {
    const run = randomUUID();
    const user = `confined-${run}`;
    await raw.call('ACL', 'SETUSER', user, 'on', '>secret', `~${user}:*`, '+@all');
    const { client, close } = await open(`${user}:`, { username: user, password: 'secret' });
    try {
      let runs = 0;
      const charge = makeIdempotent(async (_orderId: string) => `charged ${++runs}`, { store: new RedisStore({ client }), name: 'charge' });
      expect([await charge('order-1'), await charge('order-1')]).toEqual(['charged 1', 'charged 1']);
      expect(await raw.keys(`${user}:idempotency:charge#*`)).toHaveLength(1);
    } finally {
      close();
      await raw.call('ACL', 'DELUSER', user);
    }
  });
});

test('a node-redis 6 client whose keyPrefix is a Buffer: its UTF-8 text is the prefix; other bytes are a TypeError when the store is made', async () => {
  const run = randomUUID();
  const client = nodeRedisClient(undefined, { keyPrefix: Buffer.from(`bytes-${run}:`) } as never);
  await client.connect();
  try {
    await makeIdempotent(async () => 'ok', { store: new RedisStore({ client }), name: 'charge' })('k');
    expect(await raw.keys(`bytes-${run}:idempotency:charge#*`)).toHaveLength(1);
    const binary = nodeRedisClient(undefined, { keyPrefix: Buffer.from([0xff, 0x3a]) } as never);
    expect(() => new RedisStore({ client: binary })).toThrow(
      new TypeError("RedisStore: the client's keyPrefix is not UTF-8 text; give the store its prefix as `keyPrefix` instead."),
    );
  } finally {
    client.destroy();
  }
});

test('a node-redis 6 cluster with a keyPrefix: the records are under it, on the node that serves the prefixed key', async () => {
  const server = await startRedisServer({ cluster: true });
  const cluster = createCluster({
    rootNodes: [{ url: server.url }],
    keyPrefix: 'tenant-a:',
    defaults: { disableOfflineQueue: true, socket: NODE_REDIS_SOCKET },
  } as never);
  cluster.on('error', () => undefined);
  await cluster.connect();
  try {
    let runs = 0;
    const charge = makeIdempotent(async (_orderId: string) => `charged ${++runs}`, {
      store: new RedisStore({ client: cluster as unknown as RedisClient }),
      name: 'charge',
    });
    expect([await charge('order-1'), await charge('order-1')]).toEqual(['charged 1', 'charged 1']);
    const keys = (await cluster.sendCommand(undefined, true, ['KEYS', '*'])) as string[];
    expect(keys).toEqual([expect.stringMatching(/^tenant-a:idempotency:charge#/)]);
  } finally {
    cluster.destroy();
    await server.stop();
  }
}, 30_000);

test('a node-redis 5 client, which has no keyPrefix of its own and ignores one given to it, keeps the records under the store’s prefix alone, as its own keys are', async () => {
  const run = randomUUID();
  const client = createClient5({ url: redisUrl(), keyPrefix: `ignored-${run}:`, disableOfflineQueue: true, socket: NODE_REDIS_SOCKET } as never);
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.set(`own-${run}`, 'x');
    await makeIdempotent(async () => 'ok', { store: new RedisStore({ client: client as unknown as RedisClient, keyPrefix: `v5-${run}:` }), name: 'charge' })(
      'k',
    );
    expect((await raw.keys(`*${run}*`)).sort()).toEqual([`own-${run}`, expect.stringMatching(new RegExp(`^v5-${run}:charge#`))]);
  } finally {
    client.destroy();
  }
});
