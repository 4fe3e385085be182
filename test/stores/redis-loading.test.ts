/**
 * Replies that refuse a command before it runs, for a while: `LOADING` (a server that restarted on
 * its data answers every command with it until the data is loaded, and node-redis reconnects and
 * sends during that time), `BUSY` (another client's script ran past `busy-reply-threshold`) and
 * `NOREPLICAS` (a primary with `min-replicas-to-write` whose replica is away). A
 * completion refused so is sent again until the server takes it, within the call's bound: the
 * function has run, and a record left INPROGRESS would let a duplicate after the lease run it again.
 * So is one sent again after a reconnection, which a server that restarted refuses while it loads.
 * Each test has a server of its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { makeIdempotent } from '../../lib/index.js';
import { type NodeRedisClient, RedisStore } from '../../lib/redis/index.js';
import { type RedisServer, startRedisServer } from '../../tools/redis-server.js';
import { before, CLIENT_KINDS, type ClientKind, inspector, ioredisClient, nextReady, PREVIOUS_CLIENT_KINDS, refusalTo, until } from '../support/redis.js';
import { TcpProxy } from '../support/tcp-proxy.js';

// Loading 2,000 keys at 1 ms each takes 2 s, answering LOADING every 1 KB of the file; a test ends the
// wait (CONFIG SET key-load-delay 0, which a loading server runs) once its completion was refused.
const SLOW_LOADING = ['--key-load-delay', '1000', '--loading-process-events-interval-bytes', '1024'];

/**
 * A server holding 2,000 filler keys, which it loads slowly (above) when started again on its data,
 * and an inspector connected to it. `restart` ends the inspector's connection, stops the server and
 * starts it again on its data and port; `restarted` is that one once it answers; `close` stops
 * whichever runs and removes the data.
 */
async function slowLoadingServer() {
  const dir = mkdtempSync(join(tmpdir(), 'redis-loading-'));
  const server = await startRedisServer({ dir, extraArgs: SLOW_LOADING });
  const raw = inspector(server.url);
  await raw.eval("for i = 1, 2000 do redis.call('SET', 'filler:' .. i, i) end", 0);
  let restarted: Promise<RedisServer> | undefined;
  return {
    server,
    raw,
    async restart(): Promise<void> {
      raw.disconnect();
      await server.stop();
      restarted = startRedisServer({ dir, port: server.port, extraArgs: SLOW_LOADING });
    },
    restarted: (): Promise<RedisServer> => restarted!,
    async close(): Promise<void> {
      raw.disconnect();
      await (await restarted?.catch(() => undefined))?.stop();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * How many record scripts (EVAL, EVALSHA) the server refused before running them (LOADING, BUSY),
 * from its `INFO commandstats`: the proof that a completion met the refusal a test is about, and
 * did not arrive after it had passed. The test's own clients send no script that is refused.
 */
async function refusedScripts(redis: Redis): Promise<number> {
  const stats = await redis.info('commandstats');
  return [...stats.matchAll(/^cmdstat_eval(?:sha)?:.*\brejected_calls=(\d+)/gm)].reduce((sum, [, count]) => sum + Number(count), 0);
}

/** On the restarted server at `url`: the record under `prefix` is COMPLETED, and the server refused a script (LOADING) before it took it. */
async function expectTakenAfterRefusal(url: string, prefix: string): Promise<void> {
  const after = inspector(url);
  try {
    const [key] = await after.keys(`${prefix}*`);
    expect(await after.hget(key!, 'status')).toBe('COMPLETED');
    expect(await refusedScripts(after)).toBeGreaterThan(0);
  } finally {
    after.disconnect();
  }
}

const NODE_REDIS = [...CLIENT_KINDS, ...PREVIOUS_CLIENT_KINDS].filter((kind) => kind.name.startsWith('node-redis'));

for (const kind of NODE_REDIS) {
  test(`${kind.name}: a completion sent while a restarted server loads its data (LOADING) is sent again once it has, so the record is COMPLETED`, async () => {
    const loading = await slowLoadingServer();
    const opened = await kind.open(loading.server.url);
    try {
      const store = new RedisStore({ client: opened.client, keyPrefix: 'loading:', timeoutMillis: 15_000 });
      let runs = 0;
      const pay = makeIdempotent(
        async (_id: string) => {
          runs++;
          await loading.raw.save();
          const ready = nextReady(opened.client);
          await loading.restart();
          await ready; // node-redis is connected again, to a server still loading
          return 'paid';
        },
        { store, name: 'pay' },
      );
      const refused = refusalTo(opened.client, /^LOADING /);
      const paid = pay('k');
      // Loading ends at once when the completion has been refused (or after 2 s otherwise).
      expect(await before(refused, paid)).toBe(true);
      await (opened.client as NodeRedisClient).sendCommand(['CONFIG', 'SET', 'key-load-delay', '0']);
      expect(await paid).toBe('paid');
      await expectTakenAfterRefusal((await loading.restarted()).url, 'loading:');
      expect(await pay('k')).toBe('paid');
      expect(runs).toBe(1);
    } finally {
      await opened.close();
      await loading.close();
    }
  }, 60_000);
}

/**
 * Clients that send as soon as they have reconnected, to a server still loading: node-redis, and
 * ioredis without its ready check (set off where `INFO` is renamed or refused), which otherwise waits
 * for the data to be loaded.
 */
const SEND_WHILE_LOADING: readonly Pick<ClientKind, 'name' | 'open'>[] = [
  ...NODE_REDIS,
  {
    name: 'ioredis',
    open: async (url) => {
      const client = ioredisClient(url, { enableReadyCheck: false });
      return { client, close: async () => void client.disconnect() };
    },
  },
];

for (const kind of SEND_WHILE_LOADING) {
  test(`${kind.name === 'ioredis' ? 'ioredis without its ready check' : kind.name}: a completion whose connection a restart closed is sent again once the client is back and, refused while the server loads its data (LOADING), again until it is taken: the record is COMPLETED`, async () => {
    const loading = await slowLoadingServer();
    const proxy = await TcpProxy.start(loading.server.port);
    const opened = await kind.open(proxy.url);
    try {
      const store = new RedisStore({ client: opened.client, keyPrefix: 'reconnected:', timeoutMillis: 15_000 });
      let runs = 0;
      const pay = makeIdempotent(
        async (_id: string) => {
          runs++;
          await loading.raw.save(); // the claim is on disk
          proxy.stall(); // the completion goes nowhere
          return 'paid';
        },
        { store, name: 'pay' },
      );
      const refused = refusalTo(opened.client, /^LOADING /);
      const paid = pay('k');
      // The completion was sent; the server restarts on its data, and the connection it was sent on is gone.
      await proxy.swallowed();
      await loading.restart();
      await proxy.cut();
      await proxy.restore();
      expect(await before(refused, paid)).toBe(true);
      const loadNow = ['CONFIG', 'SET', 'key-load-delay', '0'];
      await (kind.name === 'ioredis' ? (opened.client as Redis).call(...(loadNow as [string])) : (opened.client as NodeRedisClient).sendCommand(loadNow));
      expect(await paid).toBe('paid');
      await expectTakenAfterRefusal((await loading.restarted()).url, 'reconnected:');
      expect(await pay('k')).toBe('paid');
      expect(runs).toBe(1);
    } finally {
      await opened.close();
      await proxy.cut();
      await loading.close();
    }
  }, 60_000);
}

// A script that runs until SCRIPT KILL ends it (it writes nothing, so it can be killed): once it has
// run 100 ms, the server answers BUSY to every other command.
const ENDLESS_SCRIPT = 'while true do end';

/** Starts the endless script on `busy` (its promise, for the caller to settle once it kills the script). */
function runEndless(busy: Redis): Promise<unknown> {
  const script = busy.eval(ENDLESS_SCRIPT, 0);
  script.catch(() => undefined); // killed by the test
  return script;
}

/** Resolves once the server answers `probe` BUSY: the script has run past the threshold. */
const untilBusy = (probe: Redis): Promise<boolean> =>
  until(() =>
    probe.ping().then(
      () => false,
      (error: Error) => error.message.startsWith('BUSY'),
    ),
  );

describe("another client's script runs past busy-reply-threshold (BUSY)", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedisServer({ extraArgs: ['--busy-reply-threshold', '100'] });
  });
  afterAll(() => server.stop());

  test.each([...CLIENT_KINDS, ...PREVIOUS_CLIENT_KINDS].map((kind) => [kind.name, kind] as const))(
    '%s: a completion refused with BUSY is sent again once the script has ended, so the record is COMPLETED',
    async (name, kind) => {
      const opened = await kind.open(server.url);
      const [busy, probe, raw] = [inspector(server.url), inspector(server.url), inspector(server.url)];
      let script: Promise<unknown> | undefined;
      try {
        const keyPrefix = `busy-${name}:`;
        const store = new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 15_000 });
        const refusedBefore = await refusedScripts(raw);
        const pay = makeIdempotent(
          async (_id: string) => {
            await Promise.all([busy.ping(), probe.ping()]); // connected before the server is busy
            script = runEndless(busy);
            await untilBusy(probe);
            return 'paid';
          },
          { store, name: 'pay' },
        );
        const refused = refusalTo(opened.client, /^BUSY /);
        const paid = pay('k');
        // The script ends only once the completion has been refused (the finally kills it otherwise).
        expect(await before(refused, paid)).toBe(true);
        await probe.script('KILL');
        expect(await paid).toBe('paid');
        await expect(script).rejects.toThrow(/SCRIPT KILL/);
        const [key] = await raw.keys(`${keyPrefix}*`);
        expect(await raw.hget(key!, 'status')).toBe('COMPLETED');
        // The completion was refused with BUSY (the probe's refusals are PINGs), then sent again.
        expect(await refusedScripts(raw)).toBeGreaterThan(refusedBefore);
      } finally {
        await probe.script('KILL').catch(() => undefined); // NOTBUSY once it has ended
        await script?.catch(() => undefined);
        for (const client of [busy, probe, raw]) client.disconnect();
        await opened.close();
      }
    },
    30_000,
  );

  test.each([...CLIENT_KINDS, ...PREVIOUS_CLIENT_KINDS].map((kind) => [kind.name, kind] as const))(
    '%s: a completion or release refused with BUSY is not sent again after its resendBy (when the call must answer), however long timeoutMillis is',
    async (name, kind) => {
      const opened = await kind.open(server.url);
      const [busy, probe] = [inspector(server.url), inspector(server.url)];
      let script: Promise<unknown> | undefined;
      try {
        const store = new RedisStore({ client: opened.client, keyPrefix: `busy-resend-by-${name}:`, timeoutMillis: 15_000 });
        const now = Date.now();
        const expiresAt = Math.floor(now / 1000) + 3600;
        for (const key of ['completed', 'released']) await store.claim({ key, owner: 'me', now, leaseUntil: now + 60_000, expiresAt });
        await Promise.all([busy.ping(), probe.ping()]);
        script = runEndless(busy);
        await untilBusy(probe);
        const started = performance.now();
        const resendBy = started + 300;
        await expect(store.complete({ key: 'completed', owner: 'me', expiresAt, now, response: '"paid"', resendBy })).rejects.toThrow(/^BUSY /);
        await expect(store.release({ key: 'released', owner: 'me', resendBy: performance.now() + 300 })).rejects.toThrow(/^BUSY /);
        // Both gave up at their resendBy, not after the store's 15 s (with room for a loaded machine).
        expect(performance.now() - started).toBeLessThan(5_000);
      } finally {
        await probe.script('KILL').catch(() => undefined);
        await script?.catch(() => undefined);
        busy.disconnect();
        probe.disconnect();
        await opened.close();
      }
    },
    30_000,
  );

  test.each([...CLIENT_KINDS, ...PREVIOUS_CLIENT_KINDS].map((kind) => [kind.name, kind] as const))(
    '%s: a claim refused with BUSY fails the call at once (STORE_FAILURE, the function does not run): the release sent after it, refused too, is not sent again for timeoutMillis',
    async (name, kind) => {
      const opened = await kind.open(server.url);
      const [busy, probe, raw] = [inspector(server.url), inspector(server.url), inspector(server.url)];
      let script: Promise<unknown> | undefined;
      try {
        const store = new RedisStore({ client: opened.client, keyPrefix: `busy-claim-${name}:`, timeoutMillis: 10_000 });
        let runs = 0;
        const pay = makeIdempotent(
          async (_id: string) => {
            runs++;
            return 'paid';
          },
          { store, name: 'pay' },
        );
        await pay('warm'); // the scripts are loaded, the eviction check done
        await Promise.all([busy.ping(), probe.ping(), raw.ping()]);
        const refusedBefore = await refusedScripts(raw);
        script = runEndless(busy);
        await untilBusy(probe);
        const started = performance.now();
        await expect(pay('k')).rejects.toMatchObject({ code: 'STORE_FAILURE' });
        const took = performance.now() - started;
        await probe.script('KILL');
        await expect(script).rejects.toThrow(/SCRIPT KILL/);
        expect(runs).toBe(1);
        // The claim and its one release were refused, not a release every 50 ms for timeoutMillis.
        expect(await refusedScripts(raw)).toBeLessThanOrEqual(refusedBefore + 2);
        expect(took).toBeLessThan(2_000);
      } finally {
        await probe.script('KILL').catch(() => undefined); // NOTBUSY once it has ended
        await script?.catch(() => undefined);
        for (const client of [busy, probe, raw]) client.disconnect();
        await opened.close();
      }
    },
    30_000,
  );

  // Its own block: biome reads `before` (the helper) as a test hook, one a block.
  describe('the function threw', () => {
    test.each([...CLIENT_KINDS, ...PREVIOUS_CLIENT_KINDS].map((kind) => [kind.name, kind] as const))(
      '%s: a release refused with BUSY (the function threw) is sent again once the script has ended, so the key is free and a retry runs',
      async (name, kind) => {
        const opened = await kind.open(server.url);
        const [busy, probe, raw] = [inspector(server.url), inspector(server.url), inspector(server.url)];
        let script: Promise<unknown> | undefined;
        try {
          const keyPrefix = `busy-release-${name}:`;
          const store = new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 15_000 });
          let runs = 0;
          const pay = makeIdempotent(
            async (_id: string) => {
              if (++runs > 1) return 'paid';
              await Promise.all([busy.ping(), probe.ping()]); // connected before the server is busy
              script = runEndless(busy);
              await untilBusy(probe);
              throw new Error('declined for now');
            },
            { store, name: 'pay' },
          );
          const refused = refusalTo(opened.client, /^BUSY /);
          const declined = pay('k');
          declined.catch(() => undefined);
          // The script ends only once the release has been refused (the finally kills it otherwise).
          expect(await before(refused, declined)).toBe(true);
          await probe.script('KILL');
          await expect(declined).rejects.toThrow('declined for now');
          // Released: no record left INPROGRESS until its lease, and a retry runs at once.
          expect(await raw.keys(`${keyPrefix}*`)).toEqual([]);
          expect(await pay('k')).toBe('paid');
          expect(runs).toBe(2);
        } finally {
          await probe.script('KILL').catch(() => undefined); // NOTBUSY once it has ended
          await script?.catch(() => undefined);
          for (const client of [busy, probe, raw]) client.disconnect();
          await opened.close();
        }
      },
      30_000,
    );
  });
});

describe('a primary that takes writes only with a replica in sync (`min-replicas-to-write`), whose replica is away (NOREPLICAS)', () => {
  let primary: RedisServer;
  let replica: RedisServer;
  beforeAll(async () => {
    primary = await startRedisServer({ extraArgs: ['--min-replicas-to-write', '1', '--min-replicas-max-lag', '1'] });
    replica = await startRedisServer({ replicaOf: primary.port });
  });
  afterAll(() => Promise.all([primary.stop(), replica.stop()]));

  /** Whether the primary takes a write now (its replica counted in sync), or refuses it with NOREPLICAS. */
  const takesWrites = (raw: Redis): Promise<boolean> =>
    raw.set('noreplicas-probe', '1').then(
      () => true,
      (error: Error) => (error.message.startsWith('NOREPLICAS') ? false : Promise.reject(error)),
    );

  test.each([...CLIENT_KINDS, ...PREVIOUS_CLIENT_KINDS].map((kind) => [kind.name, kind] as const))(
    '%s: a completion refused with NOREPLICAS is sent again once the replica is back, so the record is COMPLETED and a duplicate replays',
    async (name, kind) => {
      const [raw, fromReplica] = [inspector(primary.url), inspector(replica.url)];
      const opened = await kind.open(primary.url);
      try {
        await until(() => takesWrites(raw));
        const keyPrefix = `noreplicas-${name}:`;
        const store = new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 15_000 });
        let runs = 0;
        const pay = makeIdempotent(
          async (_id: string) => {
            runs++;
            // The replica leaves; once it has been away longer than min-replicas-max-lag, the primary refuses writes.
            await fromReplica.call('REPLICAOF', 'NO', 'ONE');
            await until(async () => !(await takesWrites(raw)));
            return 'paid';
          },
          { store, name: 'pay' },
        );
        const refused = refusalTo(opened.client, /^NOREPLICAS /);
        const paid = pay('k');
        // The replica comes back only once the completion has been refused.
        expect(await before(refused, paid)).toBe(true);
        await fromReplica.call('REPLICAOF', primary.host, String(primary.port));
        expect(await paid).toBe('paid');
        const [key] = await raw.keys(`${keyPrefix}*`);
        expect(await raw.hget(key!, 'status')).toBe('COMPLETED');
        expect(await pay('k')).toBe('paid');
        expect(runs).toBe(1);
      } finally {
        await fromReplica.call('REPLICAOF', primary.host, String(primary.port));
        raw.disconnect();
        fromReplica.disconnect();
        await opened.close();
      }
    },
    30_000,
  );
});
