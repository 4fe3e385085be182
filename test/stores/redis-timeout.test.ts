/**
 * `timeoutMillis` bounds a store call, every request of it together: a completion whose first
 * attempt hung most of the bound, then lost its connection, does not wait a whole bound more for a
 * reconnection and a third for its resend; a claim whose eviction check was answered late does not
 * give its script a whole bound of its own. Real clients on a real redis-server behind a loopback
 * proxy that holds or drops their requests; the bound's timers and clock are jest's fake ones, moved
 * by the test, so each assertion is about which step the call was at when the bound ran out.
 */
import { jest } from '@jest/globals';
import { RedisStore } from '../../lib/redis/index.js';
import { flush } from '../support/gate.js';
import { CLIENT_KINDS, inspector, redisPort } from '../support/redis.js';
import { TcpProxy } from '../support/tcp-proxy.js';

const BOUND = 1000;
const raw = inspector();
afterAll(() => raw.disconnect());
afterEach(() => jest.useRealTimers());

/** What a call came to so far: nothing yet, its value, or its error. */
function watch<T>(call: Promise<T>): { readonly settled: () => { value?: T; error?: unknown } | undefined } {
  let settled: { value?: T; error?: unknown } | undefined;
  call.then(
    (value) => void (settled = { value }),
    (error: unknown) => void (settled = { error }),
  );
  return { settled: () => settled };
}

/** Turns of the event loop (real ones: setImmediate is not faked) until `done()`; the proxy and the client's sockets are real. */
async function turnsUntil(done: () => boolean): Promise<void> {
  while (!done()) await flush();
}

const fakeTimers = () => jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });

for (const kind of CLIENT_KINDS) {
  describe(kind.name, () => {
    let proxy: TcpProxy;
    let opened: Awaited<ReturnType<(typeof kind)['open']>>;
    const ready = () => {
      const client = opened.client as { status?: string; isReady?: boolean };
      return client.status === 'ready' || client.isReady === true;
    };
    beforeEach(async () => {
      proxy = await TcpProxy.start(redisPort());
      opened = await kind.open(proxy.url);
      await turnsUntil(ready); // ioredis connects by itself: its own first requests are not the call's
    });
    afterEach(async () => {
      jest.useRealTimers();
      await opened.close();
      await proxy.cut();
    });

    test('a completion that hung, then lost its connection, fails at the bound: it does not wait for the reconnection past it, nor resend', async () => {
      const keyPrefix = `bound-complete-${kind.name}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: BOUND });
      const now = Date.now();
      const expiresAt = Math.floor(now / 1000) + 60;
      await store.claim({ key: 'k', owner: 'a', now, leaseUntil: now + 60_000, expiresAt });
      fakeTimers();
      const started = performance.now();
      proxy.stall(); // the server stops answering
      const sent = proxy.requests;
      const completion = watch(store.complete({ key: 'k', owner: 'a', now, expiresAt, response: '"done"' }));
      await turnsUntil(() => proxy.requests > sent);
      jest.advanceTimersByTime(BOUND - 1);
      await proxy.cut(); // the hung connection drops at last; the client starts reconnecting
      await turnsUntil(() => completion.settled() !== undefined || !ready());
      await flush();
      // Still waiting for the reconnection, as it may within the bound.
      expect(completion.settled()).toBeUndefined();
      jest.advanceTimersByTime(1); // the bound
      await flush();
      expect(performance.now() - started).toBe(BOUND);
      expect(completion.settled()?.error).toBeInstanceOf(Error);
      // The connection comes back after the bound: the completion, given up on, is not sent again.
      await proxy.restore();
      await turnsUntil(() => {
        jest.advanceTimersByTime(50); // ioredis waits for its reconnection on a (faked) timer
        return ready();
      });
      await flush();
      expect(await raw.hget(`${keyPrefix}k`, 'status')).toBe('INPROGRESS');
    });

    // ioredis only: a node-redis client held in its handshake here did not become ready again within the test's time.
    const ioredisOnly = kind.name === 'ioredis' ? test : () => undefined;
    ioredisOnly('a claim that waited the whole bound for a client still connecting fails, and is not sent once the client is ready', async () => {
      const keyPrefix = `bound-connecting-${kind.name}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: BOUND, allowEviction: true });
      const client = opened.client as { disconnect?(reconnect: boolean): void };
      proxy.hold(); // the connection opens, its handshake is not answered yet
      const sent = proxy.requests;
      client.disconnect!(true); // a new connection
      await turnsUntil(() => proxy.requests > sent);
      expect(ready()).toBe(false);
      fakeTimers();
      const now = Date.now();
      const claim = watch(store.claim({ key: 'k', owner: 'a', now, leaseUntil: now + 60_000, expiresAt: Math.floor(now / 1000) + 60 }));
      await flush();
      jest.advanceTimersByTime(BOUND);
      await flush();
      expect(String(claim.settled()?.error)).toMatch(/did not answer within 1000 ms/);
      // The client is ready after the bound: the claim given up on stays unsent, so no record is held with nothing running.
      jest.useRealTimers();
      await proxy.restore();
      await turnsUntil(ready);
      await raw.ping();
      await flush();
      expect(await raw.exists(`${keyPrefix}k`)).toBe(0);
    });

    test('a claim whose eviction check was answered late fails at the bound: its script is not given a bound of its own', async () => {
      const keyPrefix = `bound-claim-${kind.name}:`;
      // A client of its own has not passed the eviction check: the claim asks INFO memory first.
      const store = new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: BOUND });
      fakeTimers();
      const started = performance.now();
      proxy.hold();
      const now = Date.now();
      let sent = proxy.requests;
      const claim = watch(store.claim({ key: 'k', owner: 'a', now, leaseUntil: now + 60_000, expiresAt: Math.floor(now / 1000) + 60 }));
      await turnsUntil(() => proxy.requests > sent); // INFO memory, held
      jest.advanceTimersByTime(BOUND - 1);
      sent = proxy.requests;
      proxy.release(); // answered just within the bound; the script that follows is held
      await turnsUntil(() => proxy.requests > sent);
      expect(claim.settled()).toBeUndefined();
      jest.advanceTimersByTime(1);
      await flush();
      expect(performance.now() - started).toBe(BOUND);
      expect(String(claim.settled()?.error)).toMatch(/did not answer within 1000 ms/);
    });
  });
}
