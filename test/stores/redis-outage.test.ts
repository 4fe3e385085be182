/**
 * Fail fast: with the client settings the README recommends, a Redis outage ends the call at once
 * with STORE_FAILURE and the function does not run (instead of commands queued until the Lambda
 * timeout); the store works again once the connection is back. The outage is a real cut TCP
 * connection (a loopback proxy closed), or a black hole bounded by the store's `timeoutMillis` (or,
 * without it, by the Lambda deadline). A
 * completion whose connection was reset is sent again once the client reconnects.
 */
import { randomBytes } from 'node:crypto';
import type { Context } from 'aws-lambda';
import { delay } from '../../lib/deadline.js';
import { IdempotencyError, makeIdempotent } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { lambdaContext, manualClock } from '../../lib/testing/index.js';
import { CLIENT_KINDS, inspector, nextReady, PREVIOUS_CLIENT_KINDS, redisPort, until } from '../support/redis.js';
import { rejection, thrown } from '../support/rejections.js';
import { TcpProxy } from '../support/tcp-proxy.js';

/**
 * The timeout of the store that meets a black hole: only a stalled proxy's requests wait for it, so
 * it need not be longer than the answers of a healthy server may take; short, as every client kind
 * waits for it twice.
 */
const STALL_TIMEOUT_MILLIS = 200;

const raw = inspector();
afterAll(() => raw.disconnect());

for (const kind of [...CLIENT_KINDS, ...PREVIOUS_CLIENT_KINDS]) {
  describe(kind.name, () => {
    let proxy: TcpProxy;
    let opened: Awaited<ReturnType<(typeof kind)['open']>>;
    let runs = 0;
    let charge: (input: { id: string }) => Promise<number>;
    /** The same function on a store whose timeout is far longer than any answer may take here. */
    let patientCharge: (input: { id: string }) => Promise<number>;
    beforeAll(async () => {
      proxy = await TcpProxy.start(redisPort());
      opened = await kind.open(proxy.url);
      const charged = (timeoutMillis: number) =>
        makeIdempotent(async (_input: { id: string }) => ++runs, {
          store: new RedisStore({ client: opened.client, keyPrefix: `outage-${kind.name}:`, timeoutMillis }),
          name: 'charge',
          key: (input: { id: string }) => `${input.id}-${Date.now()}`,
        });
      charge = charged(STALL_TIMEOUT_MILLIS);
      patientCharge = charged(20_000);
      expect(await patientCharge({ id: 'before' })).toBe(1);
    });
    afterAll(async () => {
      await opened.close();
      await proxy.cut();
    });

    /** Restores the proxy and waits until the client has reconnected through it. */
    async function reconnect(): Promise<void> {
      const ready = nextReady(opened.client);
      await proxy.restore();
      await ready;
    }

    test('a cut connection: STORE_FAILURE at once, the function does not run; calls work again after it', async () => {
      await proxy.cut();
      const started = Date.now();
      const error = await patientCharge({ id: 'during' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(IdempotencyError);
      expect((error as IdempotencyError).code).toBe('STORE_FAILURE');
      // At once: not after the store's 20 s timeout (with room for a loaded machine).
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(runs).toBe(1);
      await reconnect();
      expect(await patientCharge({ id: 'after' })).toBe(2);
    });

    test('a connection reset while the function runs: its completion is sent again once the client has reconnected, so a duplicate after the lease replays', async () => {
      const clock = manualClock();
      let calls = 0;
      const store = new RedisStore({ client: opened.client, keyPrefix: `reset-${kind.name}:`, timeoutMillis: 2000 });
      const pay = makeIdempotent(
        async (_id: string, _context?: Context) => {
          calls++;
          await proxy.cut(); // a failover, a node replaced: the client reconnects while the function ends
          await proxy.restore();
          return calls;
        },
        { store, name: 'pay', now: clock.now },
      );
      expect(await pay('k', lambdaContext({ remainingMillis: 3000, now: clock.now }))).toBe(1);
      clock.advance(3001);
      const client = opened.client as { status?: string; isReady?: boolean };
      if (client.status !== 'ready' && client.isReady !== true) await nextReady(client);
      expect(await pay('k')).toBe(1);
      expect(calls).toBe(1);
    });

    test('a connection reset while the function throws: its release is sent again once the client has reconnected, so a retry runs at once instead of meeting IN_PROGRESS until the lease', async () => {
      const keyPrefix = `reset-release-${kind.name}:`;
      let calls = 0;
      const store = new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 2000 });
      const pay = makeIdempotent(
        async (_id: string) => {
          if (++calls > 1) return calls;
          await proxy.cut(); // a failover, a node replaced: the client reconnects while the function ends
          await proxy.restore();
          throw new Error('declined for now');
        },
        { store, name: 'pay' },
      );
      await expect(pay('k')).rejects.toThrow('declined for now');
      expect(await raw.keys(`${keyPrefix}*`)).toEqual([]);
      const client = opened.client as { status?: string; isReady?: boolean };
      if (client.status !== 'ready' && client.isReady !== true) await nextReady(client);
      expect(await pay('k')).toBe(2);
    });

    test('a completion whose connection stays away longer than a second waits for it for what is left of timeoutMillis (not the second it waits without one), and is sent again', async () => {
      const keyPrefix = `long-reset-${kind.name}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 20_000 });
      let restored: Promise<void> | undefined;
      const pay = makeIdempotent(
        async (_id: string) => {
          await proxy.cut();
          // Back 1.5 s after the completion first fails: a reconnection wait of one second has ended by then.
          restored = new Promise((resolve) => setTimeout(resolve, 1500)).then(() => proxy.restore());
          return 'paid';
        },
        { store, name: 'pay' },
      );
      expect(await pay('k')).toBe('paid');
      await restored;
      const [key] = await raw.keys(`${keyPrefix}*`);
      expect(await raw.hget(key!, 'status')).toBe('COMPLETED');
    });

    test('a release (the function threw) whose connection stays away through failed reconnection attempts waits for it within timeoutMillis, as a completion does, and is sent again: the key is free', async () => {
      const keyPrefix = `long-reset-release-${kind.name}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 20_000 });
      let restored: Promise<void> | undefined;
      const pay = makeIdempotent(
        async (_id: string) => {
          await proxy.cut();
          // Back 1.5 s later: the client's first attempts to reconnect are refused meanwhile.
          restored = new Promise((resolve) => setTimeout(resolve, 1500)).then(() => proxy.restore());
          // The function ends once the client knows its connection is gone, as one that runs on a while does.
          const client = opened.client as { status?: string; isReady?: boolean };
          await until(async () => client.status !== 'ready' && client.isReady !== true);
          throw new Error('declined for now');
        },
        { store, name: 'pay' },
      );
      await expect(pay('k')).rejects.toThrow('declined for now');
      await restored;
      expect(await raw.keys(`${keyPrefix}*`)).toEqual([]);
    });

    test('a completion applied whose answer was lost, sent again onto its own record: an in-process duplicate gets the final error as stored, cut short', async () => {
      const keyPrefix = `lost-answer-${kind.name}:`;
      let calls = 0;
      // 600,000 characters that gzip cannot bring under what a record keeps: stored cut short.
      const message = randomBytes(450_000).toString('base64');
      const store = new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 5000 });
      const handler = async (_id: string) => {
        calls++;
        proxy.loseReplies(); // the completion reaches Redis, its answer does not come back
        throw Object.assign(new Error(message), { name: 'DeclinedError' });
      };
      const options = { store, name: 'decline', isFinalError: () => true };
      const decline = makeIdempotent(handler, { ...options, cacheSize: 10 });
      const first = thrown(decline('k'));
      // Once the record is COMPLETED on the server, the connection drops; the client reconnects.
      const [key] = await until(() => raw.keys(`${keyPrefix}*`));
      await until(async () => (await raw.hget(key!, 'status')) === 'COMPLETED');
      await proxy.cut();
      await reconnect();
      expect((await first).message === message).toBe(true); // the caller gets its own error whole
      const fromCache = await thrown(decline('k'));
      const fromStore = await thrown(makeIdempotent(handler, options)('k'));
      expect(fromStore.message.length).toBeLessThan(message.length);
      expect(fromCache.message === fromStore.message).toBe(true);
      expect(calls).toBe(1);
    });

    test('a claim applied whose answer was lost to a connection reset: STORE_FAILURE, and the release that follows frees the key once the client has reconnected, so a retry runs', async () => {
      const keyPrefix = `lost-claim-${kind.name}:`;
      let calls = 0;
      const pay = makeIdempotent(async (_id: string) => ++calls, {
        store: new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 5000 }),
        name: 'pay',
      });
      proxy.loseReplies(); // the claim reaches Redis, its answer does not come back
      const first = rejection(pay('k'));
      await until(() => raw.keys(`${keyPrefix}*`));
      await proxy.cut();
      await proxy.restore();
      expect((await first).code).toBe('STORE_FAILURE');
      expect(await raw.keys(`${keyPrefix}*`)).toEqual([]);
      expect(await pay('k')).toBe(1);
    });

    test('many completions whose connection was cut wait for the reconnection together, within the listener limit (no MaxListenersExceededWarning), and are all sent again', async () => {
      const keyPrefix = `many-${kind.name}:`;
      const client = opened.client as unknown as NodeJS.EventEmitter;
      let running = 0;
      let end!: () => void;
      const ended = new Promise<void>((resolve) => (end = resolve));
      const pay = makeIdempotent(
        async (id: string) => {
          running++;
          await ended;
          return id;
        },
        { store: new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 20_000 }), name: 'pay' },
      );
      const ids = Array.from({ length: 15 }, (_, i) => `order-${i}`);
      const calls = Promise.all(ids.map((id) => pay(id)));
      await until(async () => running === ids.length);
      const before = client.listenerCount('ready');
      let most = before;
      const count = (event: string | symbol) => void (event === 'ready' && (most = Math.max(most, client.listenerCount('ready') + 1)));
      client.on('newListener', count);
      try {
        await proxy.cut();
        end();
        // A reconnection attempt fails while the proxy is away: every completion has failed once by then.
        await new Promise((resolve) => client.once('error', resolve));
        await proxy.restore();
        expect(await calls).toEqual(ids);
      } finally {
        client.off('newListener', count);
      }
      // Node warns once an event has more listeners than this (10 by default).
      expect(most).toBeLessThanOrEqual(client.getMaxListeners());
      expect(client.listenerCount('ready')).toBe(before);
      const keys = await raw.keys(`${keyPrefix}*`);
      expect(await Promise.all(keys.map((key) => raw.hget(key, 'status')))).toEqual(ids.map(() => 'COMPLETED'));
    });

    test("a black hole: STORE_FAILURE after the store's timeoutMillis, the function does not run", async () => {
      proxy.stall();
      const started = Date.now();
      const error = await charge({ id: 'stalled' }).catch((e: unknown) => e);
      expect((error as IdempotencyError).code).toBe('STORE_FAILURE');
      // The claim and the release the engine then tries, each ended by the timeout: the call
      // waited for it, and no longer than the timeouts (with room for a loaded machine).
      expect(Date.now() - started).toBeGreaterThanOrEqual(STALL_TIMEOUT_MILLIS);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(runs).toBe(2);
      // The stalled connection lost bytes: start over on a new one.
      await proxy.cut();
      await reconnect();
      expect(await patientCharge({ id: 'after-stall' })).toBe(3);
    });

    test('a black hole with no timeoutMillis: STORE_FAILURE before the Lambda deadline, the function does not run', async () => {
      const before = runs;
      const unbounded = makeIdempotent(async (_input: { id: string }, _context?: Context) => ++runs, {
        store: new RedisStore({ client: opened.client, keyPrefix: `deadline-${kind.name}:` }),
        name: 'charge',
      });
      proxy.stall();
      // The library's own `delay`: held past both, it ends one turn late as the call's bound does.
      const deadline = delay(1_500).elapsed.then(() => 'deadline passed' as const);
      const call = unbounded({ id: 'stalled' }, lambdaContext({ remainingMillis: 1_500 })).catch((e: unknown) => e);
      const error = await Promise.race([call, deadline]);
      expect((error as IdempotencyError).code).toBe('STORE_FAILURE');
      expect(runs).toBe(before);
      await proxy.cut();
      await reconnect();
    });
  });
}

for (const kind of [...CLIENT_KINDS, ...PREVIOUS_CLIENT_KINDS].filter(({ name }) => name.startsWith('ioredis'))) {
  test(`${kind.name}: a completion sent as the server closes the connection (the socket ended, the client still reading ready) is sent again once the client has reconnected`, async () => {
    const proxy = await TcpProxy.start(redisPort());
    const { client, close } = await kind.open(proxy.url);
    const keyPrefix = `closing-${kind.name}:`;
    try {
      const io = client as unknown as { status: string; stream: NodeJS.EventEmitter };
      let calls = 0;
      const pay = makeIdempotent(
        async (_id: string) => {
          calls++;
          // Redis closes the connection (a node replaced, an idle timeout): the socket has ended,
          // and ioredis reads ready until it has closed.
          const ended = new Promise((resolve) => io.stream.once('end', resolve));
          await proxy.cut();
          await ended;
          expect(io.status).toBe('ready');
          void proxy.restore();
          return calls;
        },
        { store: new RedisStore({ client, keyPrefix, timeoutMillis: 20_000 }), name: 'pay' },
      );
      expect(await pay('k')).toBe(1);
      const [key] = await raw.keys(`${keyPrefix}*`);
      expect(await raw.hget(key!, 'status')).toBe('COMPLETED');
    } finally {
      await close();
      await proxy.cut();
    }
  });
}
