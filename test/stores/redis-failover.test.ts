/**
 * A failover that demotes the primary without closing its connections (a manual or planned
 * failover of ElastiCache, `REPLICAOF` run by hand): the old primary answers every write with
 * READONLY on the connections it still has, while the endpoint's name moves to the promoted
 * replica (here a loopback proxy whose new connections go there).
 */
import type { Context } from 'aws-lambda';
import { Redis } from 'ioredis';
import { makeIdempotent } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { lambdaContext, manualClock } from '../../lib/testing/index.js';
import type { RedisServer } from '../../tools/redis-server.js';
import { ioredisClient, nodeRedisClient, startPrimaryAndReplica } from '../support/redis.js';
import { rejection } from '../support/rejections.js';
import { TcpProxy } from '../support/tcp-proxy.js';

let first: RedisServer;
let second: RedisServer;
let proxy: TcpProxy;

beforeEach(async () => {
  [first, second] = await startPrimaryAndReplica();
  proxy = await TcpProxy.start(first.port);
});
afterEach(async () => {
  await proxy.cut();
  await Promise.all([first.stop(), second.stop()]);
});

/** Promotes the replica, demotes the primary (its open connections stay), and points the endpoint at the new primary (unless `retarget` is false). */
async function failover({ retarget = true } = {}): Promise<void> {
  const [a, b] = [new Redis(first.port, first.host), new Redis(second.port, second.host)];
  try {
    // Every write so far is on the replica before it takes over.
    expect(await a.wait(1, 2000)).toBe(1);
    await b.replicaof('NO', 'ONE');
    await a.replicaof(second.host, second.port);
    if (retarget) proxy.retarget(second.port);
  } finally {
    a.disconnect();
    b.disconnect();
  }
}

/** Resolves once `client` answers again (after it reconnected). */
async function connectedAgain(client: Redis): Promise<void> {
  while ((await client.ping().catch(() => undefined)) !== 'PONG') await new Promise((resolve) => setTimeout(resolve, 20));
}

test('ioredis with reconnectOnError for READONLY: a completion refused by the demoted primary is sent again to the new one, so a duplicate after the lease replays', async () => {
  const client = ioredisClient(proxy.url, { reconnectOnError: (error) => error.message.startsWith('READONLY') });
  try {
    const clock = manualClock();
    let calls = 0;
    const store = new RedisStore({ client, keyPrefix: 'failover:', timeoutMillis: 2000 });
    const pay = makeIdempotent(
      async (_id: string, _context?: Context) => {
        calls++;
        if (calls === 1) await failover();
        return calls;
      },
      { store, name: 'pay', now: clock.now },
    );
    expect(await pay('k', lambdaContext({ remainingMillis: 3000, now: clock.now }))).toBe(1);
    clock.advance(3001);
    await connectedAgain(client);
    expect(await pay('k')).toBe(1);
    expect(calls).toBe(1);
  } finally {
    client.disconnect();
  }
});

test('ioredis with reconnectOnError for READONLY, whose endpoint still leads to the demoted primary after its first reconnection (a DNS name not moved yet): the completion is sent again after each one until the new primary takes it', async () => {
  const client = ioredisClient(proxy.url, { reconnectOnError: (error) => error.message.startsWith('READONLY') });
  try {
    const clock = manualClock();
    let calls = 0;
    let reconnections = 0;
    const store = new RedisStore({ client, keyPrefix: 'failover-lag:', timeoutMillis: 5000 });
    const pay = makeIdempotent(
      async (_id: string, _context?: Context) => {
        calls++;
        if (calls === 1) {
          await failover({ retarget: false });
          // The endpoint moves only once the client has reconnected to the demoted primary once.
          client.on('reconnecting', () => {
            if (++reconnections === 2) proxy.retarget(second.port);
          });
        }
        return calls;
      },
      { store, name: 'pay', now: clock.now },
    );
    expect(await pay('k', lambdaContext({ remainingMillis: 6000, now: clock.now }))).toBe(1);
    expect(reconnections).toBe(2);
    clock.advance(6001);
    await connectedAgain(client);
    expect(await pay('k')).toBe(1);
    expect(calls).toBe(1);
  } finally {
    client.disconnect();
  }
});

test.each([
  ['without reconnectOnError', {}],
  ['with a reconnectOnError that does not ask to reconnect on READONLY', { reconnectOnError: (error: Error) => error.message.startsWith('LOADING') }],
])(
  'ioredis %s: the refused completion is not waited for (the call answers at once, the record stays INPROGRESS until its lease), and claims fail closed',
  async (_name, options) => {
    const client = ioredisClient(proxy.url, options);
    const warnings: string[] = [];
    try {
      let calls = 0;
      const pay = makeIdempotent(
        async (_id: string) => {
          calls++;
          await failover();
          return calls;
        },
        { store: new RedisStore({ client, keyPrefix: 'stays:', timeoutMillis: 60_000 }), name: 'pay', logger: { warn: (line) => void warnings.push(line) } },
      );
      const started = Date.now();
      expect(await pay('k')).toBe(1);
      // Not after the store's 60 s timeoutMillis, waiting for a reconnection that never comes (with room for a loaded machine).
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(warnings.map((line) => JSON.parse(line))).toEqual([
        expect.objectContaining({ message: expect.stringMatching(/could not mark the record COMPLETED/), error: 'READONLY' }),
      ]);
      const error = await rejection(pay('other'));
      expect([error.code, (error.cause as Error).message]).toEqual(['STORE_FAILURE', expect.stringMatching(/^READONLY/)]);
      expect(calls).toBe(1);
    } finally {
      client.disconnect();
    }
  },
);

test('node-redis, which has no reconnectOnError: the refused completion is not waited for (the call answers at once, the record stays INPROGRESS), claims fail closed, and calls work again once that connection closes', async () => {
  const client = nodeRedisClient(proxy.url);
  await client.connect();
  const warnings: string[] = [];
  const inspect = new Redis(second.port, second.host);
  try {
    let calls = 0;
    const pay = makeIdempotent(
      async (_id: string) => {
        if (++calls === 1) await failover();
        return calls;
      },
      { store: new RedisStore({ client, keyPrefix: 'node-stays:', timeoutMillis: 60_000 }), name: 'pay', logger: { warn: (line) => void warnings.push(line) } },
    );
    const started = Date.now();
    expect(await pay('k')).toBe(1);
    // Not after the store's 60 s timeoutMillis, waiting for a reconnection that never comes (with room for a loaded machine).
    expect(Date.now() - started).toBeLessThan(10_000);
    // Named by the reply's code, not the client's class (node-redis: a plain Error).
    expect(warnings.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({ message: expect.stringMatching(/could not mark the record COMPLETED/), error: 'READONLY' }),
    ]);
    const [record] = await inspect.keys('node-stays:*');
    expect(await inspect.hget(record!, 'status')).toBe('INPROGRESS');
    const error = await rejection(pay('other'));
    expect([error.code, (error.cause as Error).message]).toEqual(['STORE_FAILURE', expect.stringMatching(/^READONLY/)]);
    expect(calls).toBe(1);
    // Once the old connection closes, the client reconnects through the endpoint, now the new primary.
    const ready = new Promise((resolve) => client.once('ready', resolve));
    await proxy.cut();
    await proxy.restore();
    await ready;
    expect(await pay('other')).toBe(2);
  } finally {
    inspect.disconnect();
    client.destroy();
  }
});
