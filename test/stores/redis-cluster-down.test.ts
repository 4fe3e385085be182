/**
 * A cluster that refuses for a while: a node answers `CLUSTERDOWN Hash slot not served` while the
 * key's slot is served by no node, and `CLUSTERDOWN The cluster is down` to every key while any
 * slot is (with `cluster-require-full-coverage`, the default), as during a failover before the
 * replica has taken its failed primary's slots over. A completion refused so is sent again until
 * the cluster takes it, within the call's bound: the function has run, and a record left
 * INPROGRESS would let a duplicate after the lease run it again. A claim refused so fails closed.
 * One real node in cluster mode: the test takes a slot from it (CLUSTER DELSLOTS) and gives it
 * back (ADDSLOTS) once the client has told the store of the refusal. Each test has a client of its own.
 */
import { Cluster, Redis } from 'ioredis';
import { createCluster } from 'redis';
import { createCluster as createCluster5 } from 'redis5';
import { hashKey, makeIdempotent } from '../../lib/index.js';
import { slotOf } from '../../lib/redis/connection.js';
import { type RedisClient, RedisStore } from '../../lib/redis/index.js';
import { type RedisServer, startRedisServer } from '../../tools/redis-server.js';
import { before, NODE_REDIS_SOCKET, type OpenedClient, refusalTo } from '../support/redis.js';
import { rejection } from '../support/rejections.js';

/** The cluster clients, connected, each configured to fail fast as docs/redis.md says. */
const KINDS: ReadonlyArray<readonly [string, (server: RedisServer) => Promise<OpenedClient>]> = [
  [
    'ioredis Cluster',
    async (server) => {
      // An ioredis Cluster sends a command refused with CLUSTERDOWN again itself, every
      // `retryDelayOnClusterDown` (100 ms by default), until its `maxRedirections` (16), and then fails
      // it with an error that quotes the last reply: a shorter delay makes that 0.3 s instead of 1.6 s.
      const client = new Cluster([{ host: server.host, port: server.port }], {
        enableOfflineQueue: false,
        redisOptions: { maxRetriesPerRequest: 0 },
        retryDelayOnClusterDown: 20,
      });
      // Ready before a slot is taken: its ready check fails while the cluster is down.
      await new Promise((resolve) => client.once('ready', resolve));
      return { client, close: () => client.disconnect() };
    },
  ],
  ...(
    [
      ['node-redis 6 cluster', createCluster],
      ['node-redis 5 cluster', createCluster5 as unknown as typeof createCluster],
    ] as const
  ).map(
    ([name, create]) =>
      [
        name,
        async (server: RedisServer) => {
          const client = create({ rootNodes: [{ url: server.url }], defaults: { disableOfflineQueue: true, socket: NODE_REDIS_SOCKET } });
          client.on('error', () => undefined);
          await client.connect();
          return { client: client as unknown as RedisClient, close: () => client.destroy() };
        },
      ] as const,
  ),
];

/** Which slot the test takes away: the record's own, or another one, which puts the whole cluster down. */
const OUTAGES = [
  ["the record's slot is served by no node", /CLUSTERDOWN Hash slot not served/, (slot: number) => slot],
  ['another slot is served by no node, so the cluster is down', /CLUSTERDOWN The cluster is down/, (slot: number) => (slot + 1) % 16384],
] as const;

let server: RedisServer;
let raw: Redis;
beforeAll(async () => {
  server = await startRedisServer({ cluster: true });
  raw = new Redis(server.port, server.host);
});
afterAll(async () => {
  raw?.disconnect();
  await server?.stop();
});

/** The slot is served again (ADDSLOTS refuses a slot that is: a test that gave it back already). */
const served = (slot: number) => raw.call('CLUSTER', 'ADDSLOTS', String(slot)).catch(() => undefined);

describe.each(KINDS)('%s', (name, open) => {
  test.each(OUTAGES)(
    '%s: a completion refused with CLUSTERDOWN is sent again once the slot is served, so the record is COMPLETED and a duplicate replays',
    async (outage, reply, taken) => {
      const keyPrefix = `down-${name.replace(/ /g, '-')}-${outage.split(' ')[0]}:`;
      const key = `${keyPrefix}pay#${hashKey('k')}`;
      const slot = taken(slotOf(key));
      const opened = await open(server);
      let runs = 0;
      const pay = makeIdempotent(
        async (_id: string) => {
          runs++;
          await raw.call('CLUSTER', 'DELSLOTS', String(slot));
          return 'paid';
        },
        { store: new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 15_000 }), name: 'pay' },
      );
      try {
        const refused = refusalTo(opened.client, reply);
        const paid = pay('k');
        // The slot is served again only once the client has given the store the refusal.
        expect(await before(refused, paid)).toBe(true);
        await served(slot);
        expect(await paid).toBe('paid');
        expect(await raw.hget(key, 'status')).toBe('COMPLETED');
        expect(await pay('k')).toBe('paid');
        expect(runs).toBe(1);
      } finally {
        await served(slot);
        opened.close();
      }
    },
    30_000,
  );

  test('a claim refused with CLUSTERDOWN fails closed (STORE_FAILURE), the function does not run; once the slot is served, a retry runs it', async () => {
    const keyPrefix = `down-claim-${name.replace(/ /g, '-')}:`;
    const slot = slotOf(`${keyPrefix}pay#${hashKey('k')}`);
    const opened = await open(server);
    let runs = 0;
    const pay = makeIdempotent(
      async (_id: string) => {
        runs++;
        return 'paid';
      },
      { store: new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 15_000 }), name: 'pay' },
    );
    try {
      await raw.call('CLUSTER', 'DELSLOTS', String(slot));
      const error = await rejection(pay('k'));
      expect(error.code).toBe('STORE_FAILURE');
      expect(String((error.cause as Error).message)).toMatch(/CLUSTERDOWN Hash slot not served/);
      expect(runs).toBe(0);
      await served(slot);
      expect(await pay('k')).toBe('paid');
      expect(runs).toBe(1);
    } finally {
      await served(slot);
      opened.close();
    }
  }, 30_000);
});
