/**
 * Four defects reported against Powertools' cache persistence layer cannot happen with RedisStore,
 * with either client (powertools-lambda-typescript issues #5716, #5714, #5678, #5705):
 * records without expiry, "orphan recovery" overwriting a live record, an in-progress record
 * without a deadline taken over while it runs, and a fingerprint dropped on completion.
 */
import { makeIdempotent } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { onlyOneEnters, Turnstile } from '../support/gate.js';
import { CLIENT_KINDS, commandsOn, inspector, ttlsGiven } from '../support/redis.js';
import { rejection } from '../support/rejections.js';

const raw = inspector();
afterAll(() => raw.disconnect());

const RETENTION = 3600;

for (const kind of CLIENT_KINDS) {
  // Duplicates here stand for other execution environments: no in-process single-flight.
  describe(kind.name, () => {
    let opened: Awaited<ReturnType<(typeof kind)['open']>>;
    let store: RedisStore;
    const keyPrefix = `defects-${kind.name}:`;
    const recordKeys = async (name: string) => raw.keys(`${keyPrefix}${name}#*`);
    beforeAll(async () => {
      opened = await kind.open();
      store = new RedisStore({ client: opened.client, keyPrefix });
    });
    afterAll(() => opened.close());

    test('#5716: every record expires (its retention), and a duplicate is refused while the first runs', async () => {
      const turnstile = new Turnstile();
      const run = makeIdempotent(async (_id: string) => turnstile.enter(), {
        store,
        name: 'nx-ex',
        key: (id) => id,
        expiresAfterSeconds: RETENTION,
        singleFlight: false,
      });
      const calls = [run('order-1'), run('order-1'), run('order-1')];
      const inside = await onlyOneEnters(turnstile, calls);
      const [key] = await recordKeys('nx-ex');
      expect(await raw.pttl(key!)).toBeGreaterThan(0);
      inside.open();
      await Promise.allSettled(calls);
      const ttl = await raw.pttl(key!);
      expect(Math.abs(ttl - RETENTION * 1000)).toBeLessThan(5000);
      expect(turnstile.count).toBe(1);
    });

    test('#5716: a live record that lost its TTL (copied with HSET, or PERSIST) gets it back from the first claim that meets it: its retention, or its lease if later', async () => {
      const now = Date.now();
      const expiresAt = Math.floor(now / 1000) + RETENTION;
      const leaseUntil = (expiresAt + 600) * 1000;
      await raw.hset(`${keyPrefix}copied#done`, { status: 'COMPLETED', owner: 'other', expiresAt: String(expiresAt), response: '"done"' });
      await raw.hset(`${keyPrefix}copied#held`, { status: 'INPROGRESS', owner: 'other', expiresAt: String(expiresAt), leaseUntil: String(leaseUntil) });
      for (const [key, status, until] of [
        ['copied#done', 'COMPLETED', (expiresAt + 1) * 1000 - 1],
        ['copied#held', 'INPROGRESS', leaseUntil],
      ] as const) {
        let claim: unknown;
        const given = await ttlsGiven(raw, keyPrefix + key, async () => {
          claim = await store.claim({ key, owner: 'me', now, leaseUntil: now + 1000, expiresAt: expiresAt + 60 });
        });
        expect(claim).toEqual({ claimed: false, record: expect.objectContaining({ owner: 'other', status, expiresAt }) });
        // PEXPIRE counts the time left at the caller's `now` from the server's clock: the key expires
        // at `until` (through the last millisecond of the retention's second, not before).
        expect(given).toEqual([until - now]);
      }
    });

    test("#5716: a claim sent again by the owner of a record that lost its TTL, at its lease's last millisecond, gives the key that millisecond: never a hash rewritten without a TTL", async () => {
      // The time left is 0 ms by the caller's clock. A PEXPIRE of 0 would delete the key at once, and
      // the script's rewrite of the caller's own record would then leave a hash that never expires.
      const expiresAt = Math.floor(Date.now() / 1000) + RETENTION;
      const now = (expiresAt + 1) * 1000 - 1;
      const key = `${keyPrefix}copied#last-ms`;
      await raw.hset(key, { status: 'INPROGRESS', owner: 'me', expiresAt: String(expiresAt), leaseUntil: String(now) });
      let claim: unknown;
      const commands = await commandsOn(raw, key, async () => {
        claim = await store.claim({ key: 'copied#last-ms', owner: 'me', now, leaseUntil: now + 1000, expiresAt: expiresAt + 60 });
      });
      expect(claim).toEqual({ claimed: false, record: expect.objectContaining({ owner: 'me', status: 'INPROGRESS', leaseUntil: now }) });
      // Expiring within a millisecond (0, 1), or gone (-2): not -1, a key without a TTL.
      expect([-2, 0, 1]).toContain(await raw.pttl(key));
      // The TTL is the script's last write: Redis 7.0 reads its clock twice for a PEXPIRE and deletes
      // the key at once when a millisecond's edge falls between (about 1 claim in 10,000 on a loaded
      // machine), and the rewrite of the record after it then made a new hash without a TTL.
      const writes = commands.filter(([name]) => !['hgetall', 'hmget', 'pttl'].includes(name!));
      expect(writes.at(-1)).toEqual(['pexpire', '1']);
    });

    test("#5716: a completion sent again by its owner (its answer lost) that finds its COMPLETED record without a TTL (made persistent meanwhile) gives the key its retention's TTL back: the script writes the record again", async () => {
      const now = Date.now();
      const expiresAt = Math.floor(now / 1000) + RETENTION;
      const key = `${keyPrefix}resent#done`;
      await raw.hset(key, { status: 'COMPLETED', owner: 'me', expiresAt: String(expiresAt), response: '"done"' });
      let result: unknown;
      const given = await ttlsGiven(raw, key, async () => {
        result = await store.complete({ key: 'resent#done', owner: 'me', now, expiresAt, response: '"done"' });
      });
      expect(result).toEqual({ completed: false, record: expect.objectContaining({ owner: 'me', status: 'COMPLETED', response: '"done"' }) });
      expect(given).toEqual([(expiresAt + 1) * 1000 - 1 - now]);
    });

    test('#5714: after a lease ends, one attempt takes over; no "recovery" overwrites its record, and the late first attempt changes nothing', async () => {
      let clock = Date.now();
      const turnstile = new Turnstile<string>();
      const run = makeIdempotent(async (_id: string) => turnstile.enter(), {
        store,
        name: 'orphan',
        key: (id) => id,
        leaseSeconds: 1,
        now: () => clock,
        singleFlight: false,
      });
      const first = run('order-1'); // holds the record, then outlives its 1 s lease
      const stuck = await turnstile.next();
      clock += 5_000;
      const takeovers = Array.from({ length: 8 }, () => run('order-1'));
      (await onlyOneEnters(turnstile, takeovers)).open('second');
      const results = await Promise.allSettled(takeovers);
      expect(results.filter((r) => r.status === 'fulfilled').map((r) => r.value)).toEqual(['second']);
      // Duplicates whose clock is still past the first lease replay; none "recovers" the record.
      clock += 5_000;
      expect(await Promise.all([run('order-1'), run('order-1')])).toEqual(['second', 'second']);
      stuck.open('first, late');
      expect((await rejection(first)).code).toBe('SUPERSEDED');
      expect(await run('order-1')).toBe('second');
      expect(turnstile.count).toBe(2);
    });

    test('#5678: a record without a Lambda deadline still has a lease; a record without a lease is held until its retention', async () => {
      const turnstile = new Turnstile();
      const run = makeIdempotent(async (_id: string) => turnstile.enter(), { store, name: 'no-deadline', key: (id) => id, singleFlight: false });
      const calls = [run('order-1'), run('order-1')];
      (await onlyOneEnters(turnstile, calls)).open();
      expect((await rejection(calls[1]!)).code).toBe('IN_PROGRESS');
      // A held record whose lease field is missing (written by hand here) is live until its retention.
      const now = Date.now();
      const key = 'no-deadline#raw';
      await raw.hset(keyPrefix + key, { status: 'INPROGRESS', owner: 'other', expiresAt: String(Math.floor(now / 1000) + 60) });
      await raw.pexpireat(keyPrefix + key, now + 60_000);
      const claim = await store.claim({ key, owner: 'me', now: now + 50_000, leaseUntil: now + 60_000, expiresAt: Math.floor(now / 1000) + 120 });
      expect(claim.claimed === false && claim.record.owner).toBe('other');
      expect(turnstile.count).toBe(1);
    });

    test('#5705: the fingerprint survives completion: the same payload replays, another is a mismatch', async () => {
      let runs = 0;
      const pay = makeIdempotent(async (input: { id: string; amount: number }) => ({ paid: input.amount, runs: ++runs }), {
        store,
        name: 'fingerprint',
        key: (input) => input.id,
        fingerprint: (input) => input.amount,
      });
      expect(await pay({ id: 'order-1', amount: 100 })).toEqual({ paid: 100, runs: 1 });
      const [key] = await recordKeys('fingerprint');
      expect(await raw.hget(key!, 'status')).toBe('COMPLETED');
      expect(await raw.hget(key!, 'fingerprint')).toMatch(/^[\w-]{43}$/);
      expect(await pay({ id: 'order-1', amount: 100 })).toEqual({ paid: 100, runs: 1 });
      expect((await rejection(pay({ id: 'order-1', amount: 200 }))).code).toBe('PAYLOAD_MISMATCH');
    });
  });
}
