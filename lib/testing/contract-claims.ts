import assert from 'node:assert/strict';
import { type Fixture, LEASE_MILLIS, refused } from './contract-fixture.js';

/** A named check of the contract, run on a fresh {@link Fixture}. */
export type Check = readonly [name: string, run: (f: Fixture) => Promise<void>];

const CONCURRENT = 16;

/** Claims: creation, races, leases, takeovers and retention, all judged by the caller's clock. @internal */
export const claimChecks: readonly Check[] = [
  [
    'claim creates an INPROGRESS record with the owner, lease, retention and fingerprint given',
    async (f) => {
      const key = f.key();
      const first = await f.claim(key, 'owner-a', { fingerprint: 'fp-1' });
      assert.deepEqual(first, { claimed: true }, 'a first claim is claimed, with no previous record');
      const record = refused(await f.claim(key, 'owner-b'), 'a second claim within the lease');
      assert.deepEqual(record, { key, status: 'INPROGRESS', owner: 'owner-a', leaseUntil: f.t0 + LEASE_MILLIS, expiresAt: f.expiresAt, fingerprint: 'fp-1' });
    },
  ],
  [
    'concurrent claims of one key: exactly one wins, the others get its record',
    async (f) => {
      const key = f.key();
      const owners = Array.from({ length: CONCURRENT }, (_, i) => `owner-${i}`);
      const results = await Promise.all(owners.map((owner) => f.claim(key, owner)));
      const winners = owners.filter((_, i) => results[i]!.claimed);
      assert.equal(winners.length, 1, `${winners.length} of ${CONCURRENT} concurrent claims won`);
      for (const result of results)
        if (!result.claimed) assert.equal(refused(result, 'a concurrent claim').owner, winners[0], "a refused claim carries the winner's record");
    },
  ],
  [
    'a record is not taken over within its lease, even at its last millisecond',
    async (f) => {
      const key = f.key();
      await f.claim(key, 'owner-a');
      const record = refused(await f.claim(key, 'owner-b', { now: f.t0 + LEASE_MILLIS }), "a claim at the lease's last millisecond");
      assert.equal(record.owner, 'owner-a');
    },
  ],
  [
    'a lease and a clock with a fraction of a millisecond (a clock built on performance.now()) are judged to the fraction',
    async (f) => {
      const key = f.key();
      const leaseUntil = f.t0 + 0.25 + LEASE_MILLIS;
      await f.claim(key, 'owner-a', { now: f.t0 + 0.25, leaseUntil });
      const record = refused(await f.claim(key, 'owner-b', { now: leaseUntil }), "a claim at the fractional lease's last instant");
      assert.deepEqual([record.owner, record.leaseUntil], ['owner-a', leaseUntil]);
      assert.ok((await f.claim(key, 'owner-b', { now: leaseUntil + 0.25 })).claimed, 'a claim a fraction after the lease takes the record over');
    },
  ],
  [
    'after its lease an INPROGRESS record is taken over, and its old owner can neither complete nor release it',
    async (f) => {
      const key = f.key();
      await f.claim(key, 'owner-a');
      const later = f.t0 + LEASE_MILLIS + 1;
      const takeover = await f.claim(key, 'owner-b', { now: later });
      assert.ok(takeover.claimed, 'a claim after the lease takes the record over');
      assert.equal(takeover.previous?.status, 'INPROGRESS', 'the takeover returns the record it replaced');
      assert.equal(takeover.previous?.owner, 'owner-a');
      const late = await f.complete(key, 'owner-a', '"late"');
      assert.equal(late.completed, false, "the old owner's completion is refused");
      assert.equal(late.completed === false && late.record?.owner, 'owner-b', "the refusal carries the new owner's record");
      const release = await f.store.release({ key, owner: 'owner-a' });
      assert.equal(release.released, false, "the old owner's release is refused");
      assert.equal((await f.live(key, later))?.owner, 'owner-b', 'the new owner still holds the record');
      assert.deepEqual(await f.complete(key, 'owner-b', '"done"'), { completed: true, responseStored: true });
    },
  ],
  [
    'concurrent takeovers of a lapsed record: exactly one wins',
    async (f) => {
      const key = f.key();
      await f.claim(key, 'owner-a');
      const now = f.t0 + LEASE_MILLIS + 1;
      const results = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => f.claim(key, `owner-${i}`, { now })));
      assert.equal(results.filter((r) => r.claimed).length, 1, 'exactly one takeover wins');
    },
  ],
  [
    'a COMPLETED record is never taken over within its retention, whatever its old lease',
    async (f) => {
      const key = f.key();
      await f.claim(key, 'owner-a');
      await f.complete(key, 'owner-a', '"done"');
      const retention = f.expiresAt + 60;
      for (const now of [f.t0 + LEASE_MILLIS + 1, retention * 1000 + 999]) {
        const record = refused(await f.claim(key, 'owner-b', { now }), `a claim ${now - f.t0} ms after the first`);
        assert.equal(record.status, 'COMPLETED');
        assert.equal(record.response, '"done"');
      }
    },
  ],
  [
    'after its retention a record is claimed anew; the claim returns the old record without its response',
    async (f) => {
      const key = f.key();
      await f.claim(key, 'owner-a');
      await f.complete(key, 'owner-a', '"done"');
      const result = await f.claim(key, 'owner-b', { now: (f.expiresAt + 61) * 1000 });
      assert.ok(result.claimed, 'a claim after the retention goes through');
      assert.equal(result.previous?.status, 'COMPLETED');
      assert.equal(result.previous?.owner, 'owner-a');
      assert.equal(result.previous?.response, undefined, "the replaced record's response is not returned");
    },
  ],
  [
    "a caller's clock before 1970 (a test's manualClock) writes records that read back: negative leases and retentions",
    async (f) => {
      const key = f.key();
      const now = -1_000_000_000_123.5; // 1938, with a fraction
      const expiresAt = Math.floor(now / 1000) + 3_600;
      await f.claim(key, 'owner-a', { now, expiresAt });
      const held = refused(await f.claim(key, 'owner-b', { now: now + 1 }), 'a second claim within the lease');
      assert.deepEqual([held.owner, held.leaseUntil, held.expiresAt], ['owner-a', now + LEASE_MILLIS, expiresAt]);
      assert.deepEqual(await f.store.complete({ key, owner: 'owner-a', expiresAt, now: now + 2, response: '"done"' }), {
        completed: true,
        responseStored: true,
      });
      const done = refused(await f.claim(key, 'owner-b', { now: now + LEASE_MILLIS + 1 }), 'a claim after the lease, within the retention');
      assert.deepEqual([done.status, done.response, done.expiresAt], ['COMPLETED', '"done"', expiresAt]);
      assert.ok((await f.claim(key, 'owner-b', { now: (expiresAt + 1) * 1000 })).claimed, 'a claim after the retention');
    },
  ],
  [
    'keys are independent, whatever their characters',
    async (f) => {
      const keys = ['plain', 'with space', 'braces {tag}', 'ünïcödé ✓ 😀', 'x'.repeat(1000)].map((label) => f.key(label));
      for (const key of keys) assert.ok((await f.claim(key, 'owner-a')).claimed, `claim of ${key.slice(0, 40)}`);
      await f.complete(keys[0]!, 'owner-a', '1');
      for (const key of keys.slice(1)) assert.equal((await f.live(key))?.status, 'INPROGRESS', `${key.slice(0, 40)} is untouched`);
    },
  ],
];
