/**
 * A single redis-server that crashes (SIGKILL) and restarts on its data, with the AOF fsynced on
 * every write (`appendfsync always`): while it is down, calls fail closed; after it, every record
 * is there with its TTL, a duplicate is still IN_PROGRESS, and the attempt that held the key
 * completes on the restarted server (whose script cache is empty: EVALSHA falls back to EVAL).
 * Without persistence, the documented risk: a restart forgets every record, and a primary that
 * restarts empty before a failover empties its replica as well.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeIdempotent } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { type RedisServer, startRedisServer } from '../../tools/redis-server.js';
import { Turnstile } from '../support/gate.js';
import { CLIENT_KINDS, inspector, pttl } from '../support/redis.js';
import { rejection } from '../support/rejections.js';

/**
 * Resolves once the client answers a PING again (it reconnected). Polled rather than awaited as a
 * `ready` event, which a reconnection that completes before the listener is added never repeats.
 * Each PING has its own deadline: a client that reports ready on a dead socket (node-redis before
 * 5.11, after a reset during its handshake) never settles one, and the test names that instead of
 * running into jest's timeout.
 */
async function reconnected(client: object): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const unanswered = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the client did not answer a PING within 1 s')), 1000);
    });
    try {
      await Promise.race([(client as { ping(): Promise<unknown> }).ping(), unanswered]);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`The client did not reconnect within 10 s: ${String(error)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      clearTimeout(timer);
    }
  }
}

for (const kind of CLIENT_KINDS) {
  test(`${kind.name}: a crash and restart of a node with an fsynced AOF loses no record; calls fail closed meanwhile`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redis-restart-'));
    let server: RedisServer = await startRedisServer({ dir, appendOnly: true });
    const opened = await kind.open(server.url);
    const raw = inspector(server.url);
    try {
      // Each call, eviction check and script included, within 2 s: a server that just loaded its AOF on a
      // loaded machine may take longer than 500 ms to answer a whole call, and the call would fail closed.
      const store = new RedisStore({ client: opened.client, keyPrefix: 'restart:', timeoutMillis: 2000 });
      const turnstile = new Turnstile<string>();
      const fn = async (_: string) => turnstile.enter();
      // Two wrappers of one function: two processes sharing the server.
      const a = makeIdempotent(fn, { store, name: 'restart' });
      const b = makeIdempotent(fn, { store, name: 'restart' });
      const first = a('k-1');
      const holder = await turnstile.next();
      const [key] = await raw.keys('restart:*');

      raw.disconnect();
      await server.stop();
      expect((await rejection(b('k-1'))).code).toBe('STORE_FAILURE');

      server = await startRedisServer({ dir, appendOnly: true, port: server.port });
      await reconnected(opened.client);
      expect((await rejection(b('k-1'))).code).toBe('IN_PROGRESS');
      const after = inspector(server.url);
      expect(await pttl(after, key!)).toBeGreaterThan(0);
      after.disconnect();

      holder.open('first');
      expect(await first).toBe('first');
      expect(await b('k-1')).toBe('first');
      expect(turnstile.count).toBe(1);
    } finally {
      raw.disconnect();
      await opened.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
}

test('without persistence a restart forgets every record: a call repeated after it runs again', async () => {
  let server = await startRedisServer();
  const { client, close } = await CLIENT_KINDS[0]!.open(server.url);
  try {
    let runs = 0;
    const charge = makeIdempotent(async (_: string) => ++runs, {
      store: new RedisStore({ client, keyPrefix: 'volatile:', timeoutMillis: 2000 }),
      name: 'charge',
    });
    expect([await charge('k-1'), await charge('k-1')]).toEqual([1, 1]);
    await server.stop();
    server = await startRedisServer({ port: server.port });
    await reconnected(client);
    expect(await charge('k-1')).toBe(2);
  } finally {
    await close();
    await server.stop();
  }
});

// docs/redis.md, "Durability": the call whose function ran across the restart finds no record to
// complete: its caller gets the function's result all the same, with a warning that it was not stored.
test("without persistence a restart while the function runs forgets its claim: the call gets its function's outcome, not stored, and a repeat runs it again", async () => {
  let server = await startRedisServer();
  const { client, close } = await CLIENT_KINDS[0]!.open(server.url);
  try {
    let runs = 0;
    const warnings: string[] = [];
    const logger = { warn: (line: string) => warnings.push(line) };
    const charge = makeIdempotent(
      async (_: string) => {
        if (++runs === 1) {
          await server.stop();
          server = await startRedisServer({ port: server.port });
          await reconnected(client);
        }
        return runs;
      },
      { store: new RedisStore({ client, keyPrefix: 'volatile-running:', timeoutMillis: 2000 }), name: 'charge', logger },
    );
    expect(await charge('k-1')).toBe(1);
    expect(warnings).toEqual([expect.stringContaining('the record was deleted while the call ran')]);
    expect(await charge('k-1')).toBe(2);
  } finally {
    await close();
    await server.stop();
  }
});

test('a primary without persistence that restarts before a failover empties its replica too: the record the replica had is forgotten, and a call repeated after it runs again', async () => {
  let primary = await startRedisServer();
  const replica = await startRedisServer({ replicaOf: primary.port });
  const fromReplica = inspector(replica.url);
  const { client, close } = await CLIENT_KINDS[0]!.open(primary.url);
  /** Polls the replica until `done` holds of its INFO replication and the record's key count (bounded: 20 s). */
  const replicaAt = async (done: (info: string, keys: number) => boolean): Promise<void> => {
    const deadline = Date.now() + 20_000;
    while (!done(await fromReplica.info('replication'), (await fromReplica.keys('replicated:*')).length)) {
      if (Date.now() > deadline) throw new Error('the replica did not reach the state awaited within 20 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  try {
    let runs = 0;
    const charge = makeIdempotent(async (_: string) => ++runs, {
      store: new RedisStore({ client, keyPrefix: 'replicated:', waitForReplicas: { replicas: 1, timeoutMillis: 5000 } }),
      name: 'charge',
    });
    expect([await charge('k-1'), await charge('k-1')]).toEqual([1, 1]);
    await replicaAt((_, keys) => keys === 1);
    await primary.stop();
    primary = await startRedisServer({ port: primary.port });
    // The replica resynchronises from the empty primary and drops what it had.
    await replicaAt((info, keys) => /master_link_status:up/.test(info) && keys === 0);
    await reconnected(client);
    expect(await charge('k-1')).toBe(2);
  } finally {
    fromReplica.disconnect();
    await close();
    await Promise.all([primary.stop(), replica.stop()]);
  }
}, 60_000);

test('a release, which runs only after a failure, is sent by its source at once: no NOSCRIPT round trip, even on a server whose script cache is empty', async () => {
  const server = await startRedisServer();
  const { client, close } = await CLIENT_KINDS[0]!.open(server.url);
  const stats = inspector(server.url);
  try {
    const store = new RedisStore({ client, keyPrefix: 'release:' });
    const now = Date.now();
    await store.claim({ key: 'k', owner: 'owner-a', leaseUntil: now + 60_000, expiresAt: Math.floor(now / 1000) + 3600, now });
    await stats.script('FLUSH'); // a restart, a failover, or a release never cached since
    await stats.config('RESETSTAT');
    expect(await store.release({ key: 'k', owner: 'owner-a' })).toEqual({ released: true });
    const commands = await stats.info('commandstats');
    expect(/cmdstat_eval:calls=(\d+)/.exec(commands)?.[1]).toBe('1');
    expect(commands).not.toContain('cmdstat_evalsha');
  } finally {
    stats.disconnect();
    await close();
    await server.stop();
  }
});
