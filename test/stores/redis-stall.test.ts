/**
 * A stalled event loop does not fail a request that Redis answered in time. A long synchronous task
 * (a large `JSON.stringify`, a 128 MB function's throttled CPU) can hold the loop past the store's
 * `timeoutMillis` while the answer waits in the socket; Node runs expired timers before it reads
 * sockets, so the bound must let that answer be read before it fails the call. Real clients on the
 * run's redis-server, real timers: the stall starts once the request is written, and lasts until
 * Redis has applied it and the bound has passed.
 */
import { execFileSync } from 'node:child_process';
import { Socket } from 'node:net';
import { RedisStore } from '../../lib/redis/index.js';
import { CLIENT_KINDS, inspector, redisPort } from '../support/redis.js';

const BOUND = 300;
const raw = inspector();
afterAll(() => raw.disconnect());

/** Whether `key` exists, asked of the server by another process: this one is stalled and cannot read its own sockets. */
function existsElsewhere(key: string): boolean {
  const ask = `const s=require('net').connect(${redisPort()},'127.0.0.1',()=>s.write(${JSON.stringify(`EXISTS ${key}\r\n`)}));s.on('data',(d)=>{process.stdout.write(String(d));s.end()})`;
  return execFileSync(process.execPath, ['-e', ask], { encoding: 'utf8', env: {} }).trim() === ':1';
}

/**
 * Holds the event loop, from the moment the first socket write that carries `marker` is flushed
 * (at once, or when its socket is uncorked: node-redis corks its writes), until `applied()` and then
 * until `millis` have passed since: the answer is then in the socket, unread, and every timer
 * started before the write has expired. Fails instead of holding for ever when the write never
 * reaches the server.
 */
function stallOnWrite(marker: string, millis: number, applied: () => boolean): { readonly stalled: () => number; restore(): void } {
  const { write, uncork } = Socket.prototype;
  let carrier: Socket | undefined;
  let stalled = 0;
  const stallOnceFlushed = (socket: Socket) => {
    if (socket !== carrier || stalled > 0 || socket.writableCorked > 0) return;
    const started = performance.now();
    while (!applied()) {
      if (performance.now() - started > 10_000) throw new Error(`the write carrying ${marker} did not reach Redis`);
    }
    while (performance.now() - started < millis);
    stalled = performance.now() - started;
  };
  // biome-ignore lint/suspicious/noExplicitAny: Socket.write's overloads, passed through as they came
  Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: any[]): boolean {
    const written = write.call(this, chunk as string, ...rest);
    if (carrier === undefined && String(chunk).includes(marker)) carrier = this;
    stallOnceFlushed(this);
    return written;
  };
  Socket.prototype.uncork = function (this: Socket): void {
    uncork.call(this);
    stallOnceFlushed(this);
  };
  return {
    stalled: () => stalled,
    restore: () => {
      Socket.prototype.write = write;
      Socket.prototype.uncork = uncork;
    },
  };
}

for (const kind of CLIENT_KINDS) {
  test(`${kind.name}: a claim answered while the event loop was stalled past timeoutMillis succeeds, and holds the record`, async () => {
    const { client, close } = await kind.open();
    const keyPrefix = `stall-${kind.name}-${Date.now()}:`;
    const store = new RedisStore({ client, keyPrefix, timeoutMillis: BOUND });
    const now = Date.now();
    const claim = () => ({ owner: 'a', now, leaseUntil: now + 60_000, expiresAt: Math.floor(now / 1000) + 60 });
    await store.claim({ key: 'warm', ...claim() }); // connected, eviction checked: the next claim is one write
    const stall = stallOnWrite(`${keyPrefix}k`, BOUND + 200, () => existsElsewhere(`${keyPrefix}k`));
    try {
      const claimed = await store.claim({ key: 'k', ...claim() });
      expect(stall.stalled()).toBeGreaterThan(BOUND);
      expect(claimed).toMatchObject({ claimed: true });
      expect(await raw.hget(`${keyPrefix}k`, 'status')).toBe('INPROGRESS');
    } finally {
      stall.restore();
      await close();
    }
  });
}
