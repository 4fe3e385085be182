/**
 * Run as a child process (`node --import tsx`): a RedisStore whose bounds are ten minutes long waits
 * for its ioredis client to connect (as after a lost connection) and claims a key, then the client
 * is closed. Prints `{"outcome":"claimed"}` and exits once nothing holds the event loop: a timer a
 * wait or a request left behind would keep the process running for those ten minutes.
 * Reads REDIS_URL.
 */
import { Redis } from 'ioredis';
import { connectionOf } from '../../lib/redis/connection.js';
import { RedisStore } from '../../lib/redis/index.js';

const TEN_MINUTES = 600_000;
const client = new Redis(process.env.REDIS_URL!, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false });
const waited = connectionOf(client).reconnected('k', TEN_MINUTES);
void client.connect();
if (!(await waited)) throw new Error('The client did not become ready.');
const store = new RedisStore({ client, keyPrefix: `exit-${process.pid}:`, timeoutMillis: TEN_MINUTES });
const now = Date.now();
const claim = await store.claim({ key: 'k', owner: 'o', now, leaseUntil: now + 60_000, expiresAt: Math.floor(now / 1000) + 60 });
await store.forget('k');
await client.quit();
console.log(JSON.stringify({ outcome: claim.claimed ? 'claimed' : 'not claimed' }));
