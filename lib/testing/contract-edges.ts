import assert from 'node:assert/strict';
import { IdempotencyError, MAX_RETRY_AFTER_SECONDS } from '../errors.js';
import { makeIdempotent } from '../idempotent.js';
import { recordIdOf } from '../operations.js';
import type { ClaimResult, IdempotencyRecord, IdempotencyStore } from '../store.js';
import type { Check } from './contract-claims.js';
import { type Fixture, LEASE_MILLIS, refused } from './contract-fixture.js';

/**
 * A record as a hand, or an older version of a store, may have left it: any status, and a retention
 * or lease only when given; no stored response (a COMPLETED one replays `undefined`), since a store
 * that encrypts refuses one in plain text. The fields carry the names of `IdempotencyRecord`.
 */
export interface HandWrittenRecord {
  readonly key: string;
  readonly status: string;
  readonly owner: string;
  /** Epoch seconds; absent: the record has none. */
  readonly expiresAt?: number;
  /** Epoch milliseconds; absent: the record has none. */
  readonly leaseUntil?: number;
}

/**
 * Writes `record` into the store's database as given: no condition, and no expiry of the store's own
 * (a Redis key without a TTL), as a hand or an older version would.
 *
 * @example
 * ```ts
 * const writeRecord: WriteRecord = async (_store, { key, ...fields }) => {
 *   await redis.hset(`idempotency:${key}`, Object.fromEntries(Object.entries(fields).map(([name, value]) => [name, String(value)])));
 * };
 * ```
 */
export type WriteRecord = (store: IdempotencyStore, record: HandWrittenRecord) => Promise<void>;

/** What a claim met: its record, or the error it threw, for a message. */
async function attempt(what: string, claim: () => Promise<ClaimResult>): Promise<IdempotencyRecord> {
  let result: ClaimResult;
  try {
    result = await claim();
  } catch (error) {
    assert.fail(`${what} threw (${(error as Error).message}), where the record is one the protocol reads: it must be refused with that record.`);
  }
  return refused(result, what);
}

/**
 * Records the store did not write itself (by hand, by an older version): every store reads them
 * alike, fails closed on what cannot be read, and holds no key beyond a retention. @internal
 */
export function edgeChecks(write: WriteRecord): readonly Check[] {
  const plant = (f: Fixture, record: HandWrittenRecord) => write(f.store, record);
  return [
    [
      'an INPROGRESS record without a lease is held until its retention: claims are refused with it, its owner completes or releases it, and after its retention it is claimed anew',
      async (f) => {
        const held = { status: 'INPROGRESS', owner: 'owner-a', expiresAt: f.expiresAt } as const;
        const key = f.key('no-lease');
        await plant(f, { key, ...held });
        const late = f.t0 + 100 * LEASE_MILLIS;
        const record = await attempt('a claim of an INPROGRESS record without a lease, within its retention', () => f.claim(key, 'owner-b', { now: late }));
        assert.deepEqual(
          { status: record.status, owner: record.owner, leaseUntil: record.leaseUntil, expiresAt: record.expiresAt },
          { status: 'INPROGRESS', owner: 'owner-a', leaseUntil: undefined, expiresAt: f.expiresAt },
          'a claim of an INPROGRESS record without a lease must be refused with that record as it is (no lease invented): the attempt that wrote it may still run, and only its retention bounds it',
        );
        if (typeof f.store.inspect === 'function') {
          const summary = await f.store.inspect(key);
          assert.deepEqual(
            [summary?.status, summary?.leaseUntil, summary?.expiresAt],
            ['INPROGRESS', undefined, f.expiresAt],
            'inspect shows an INPROGRESS record without a lease as it is, as claims read it',
          );
        }
        const stranger = await f.store.release({ key, owner: 'owner-b' });
        assert.deepEqual(
          [stranger.released, stranger.released ? undefined : stranger.record?.owner],
          [false, 'owner-a'],
          "another owner's release of an INPROGRESS record without a lease must be refused with the record, as for any held record",
        );
        assert.equal((await f.complete(key, 'owner-a', '"done"')).completed, true, 'the owner of an INPROGRESS record without a lease completes it');
        const released = f.key('no-lease-released');
        await plant(f, { key: released, ...held });
        assert.deepEqual(
          await f.store.release({ key: released, owner: 'owner-a' }),
          { released: true },
          'the owner of an INPROGRESS record without a lease releases it',
        );
        const expired = f.key('no-lease-expired');
        await plant(f, { key: expired, ...held });
        const after = (f.expiresAt + 1) * 1000;
        const anew = await f.claim(expired, 'owner-b', { now: after, expiresAt: f.expiresAt + 3_600 });
        assert.equal(anew.claimed, true, 'an INPROGRESS record without a lease, past its retention, must be claimed anew: its retention bounds it');
      },
    ],
    [
      'a call that meets an INPROGRESS record without a lease is told to retry when its retention ends, not in a second: nothing takes the record over before',
      async (f) => {
        const name = f.key('hint').replace('#', '-');
        await plant(f, { key: recordIdOf({ name, key: 'order-1' }), status: 'INPROGRESS', owner: 'owner-a', expiresAt: f.expiresAt });
        const late = f.t0 + 100 * LEASE_MILLIS;
        const call = makeIdempotent(async (_order: string) => 'ran', { store: f.store, name, key: (order) => order, now: () => late });
        const error: unknown = await call('order-1').then(
          () => assert.fail('a call that met an INPROGRESS record without a lease ran, where the record is held until its retention'),
          (rejection: unknown) => rejection,
        );
        assert.ok(error instanceof IdempotencyError && error.code === 'IN_PROGRESS', `expected IN_PROGRESS, got ${String(error)}`);
        const left = f.expiresAt + 1 - late / 1000;
        assert.ok(
          error.retryAfterSeconds !== undefined && error.retryAfterSeconds >= Math.floor(left) && error.retryAfterSeconds <= Math.ceil(left),
          `the retry hint of an INPROGRESS record without a lease must be the time until its retention ends (${Math.ceil(left)} s), as a lease's is the time until it ends; got ${error.retryAfterSeconds} s`,
        );
        assert.deepEqual(
          error.headers,
          { 'Retry-After': String(MAX_RETRY_AFTER_SECONDS) },
          'the HTTP Retry-After is capped as for any lease: its holder may finish sooner',
        );
      },
    ],
    [
      'inspect shows a record without a retention as it is, without one, rather than fail: the first claim that meets it gives it one',
      async (f) => {
        if (typeof f.store.inspect !== 'function') return;
        const completed = f.key('inspect-no-retention-completed');
        await plant(f, { key: completed, status: 'COMPLETED', owner: 'owner-a' });
        const leaseUntil = f.t0 + LEASE_MILLIS;
        const leased = f.key('inspect-no-retention-leased');
        await plant(f, { key: leased, status: 'INPROGRESS', owner: 'owner-a', leaseUntil });
        for (const [key, status, lease] of [
          [completed, 'COMPLETED', undefined],
          [leased, 'INPROGRESS', leaseUntil],
        ] as const) {
          let summary: Awaited<ReturnType<NonNullable<IdempotencyStore['inspect']>>>;
          try {
            summary = await f.store.inspect(key);
          } catch (error) {
            assert.fail(
              `inspect of a ${status} record without a retention threw (${(error as Error).message}), where the protocol reads the record: it must show it.`,
            );
          }
          assert.deepEqual(
            [summary?.status, summary?.leaseUntil, summary?.expiresAt, summary !== undefined && 'expiresAt' in summary],
            [status, lease, undefined, false],
            `inspect shows a ${status} record without a retention with none (no \`expiresAt\`), as it is stored`,
          );
        }
        await attempt('a claim of a COMPLETED record without a retention', () => f.claim(completed, 'owner-b'));
        assert.equal((await f.store.inspect(completed))?.expiresAt, f.expiresAt, 'inspect shows the retention the first claim gave the record');
      },
    ],
    [
      'a claim that replaces a record the store did not write returns it as `previous`, as any takeover does: an INPROGRESS one without a lease past its retention, one without a retention past its lease',
      async (f) => {
        const noLease = f.key('previous-no-lease');
        await plant(f, { key: noLease, status: 'INPROGRESS', owner: 'owner-a', expiresAt: f.expiresAt });
        const after = (f.expiresAt + 1) * 1000;
        const anew = await f.claim(noLease, 'owner-b', { now: after, expiresAt: f.expiresAt + 3_600 });
        assert.equal(anew.claimed, true, 'an INPROGRESS record without a lease, past its retention, must be claimed anew');
        assert.deepEqual(
          anew.claimed && [anew.previous?.status, anew.previous?.owner, anew.previous?.leaseUntil, anew.previous?.expiresAt],
          ['INPROGRESS', 'owner-a', undefined, f.expiresAt],
          'the claim that replaces an INPROGRESS record without a lease returns it as `previous` (a takeover: its attempt may have run)',
        );
        const noRetention = f.key('previous-no-retention');
        const leaseUntil = f.t0 - 1;
        await plant(f, { key: noRetention, status: 'INPROGRESS', owner: 'owner-a', leaseUntil });
        const takeover = await f.claim(noRetention, 'owner-b');
        assert.equal(takeover.claimed, true, 'an INPROGRESS record without a retention, past its lease, must be taken over');
        assert.deepEqual(
          takeover.claimed && [takeover.previous?.status, takeover.previous?.owner, takeover.previous?.leaseUntil, takeover.previous?.expiresAt],
          ['INPROGRESS', 'owner-a', leaseUntil, f.expiresAt],
          "the takeover of an INPROGRESS record without a retention returns it as `previous`, with the retention a claim gives such a record (the claim's)",
        );
      },
    ],
    [
      'a record without a retention gets the retention of the first claim that meets it (or its lease end, if later): a COMPLETED one replays until then, and is claimed anew after it',
      async (f) => {
        const after = (f.expiresAt + 1) * 1000;
        const laterRetention = f.expiresAt + 3_600;
        const completed = f.key('no-retention-completed');
        await plant(f, { key: completed, status: 'COMPLETED', owner: 'owner-a' });
        const replayed = await attempt('a claim of a COMPLETED record without a retention', () => f.claim(completed, 'owner-b'));
        assert.deepEqual(
          [replayed.status, replayed.owner, replayed.expiresAt],
          ['COMPLETED', 'owner-a', f.expiresAt],
          "a claim of a COMPLETED record without a retention must be refused with the record (its call may have succeeded: never run it again), now carrying the claim's retention",
        );
        assert.equal(
          (await f.claim(completed, 'owner-b', { now: after, expiresAt: laterRetention })).claimed,
          true,
          'a COMPLETED record without a retention of its own still refused claims after the retention the first claim gave it: it holds its key forever',
        );
        const leased = f.key('no-retention-leased');
        const leaseUntil = (f.expiresAt + 10) * 1000;
        await plant(f, { key: leased, status: 'INPROGRESS', owner: 'owner-a', leaseUntil });
        const held = await attempt('a claim of an INPROGRESS record without a retention, within its lease', () => f.claim(leased, 'owner-b'));
        assert.deepEqual(
          [held.status, held.owner, held.leaseUntil, held.expiresAt],
          ['INPROGRESS', 'owner-a', leaseUntil, f.expiresAt + 10],
          "a record without a retention gets the claim's, but never one earlier than its own lease",
        );
        assert.equal((await f.claim(leased, 'owner-b', { now: leaseUntil + 1, expiresAt: laterRetention })).claimed, true, 'taken over after its lease');
        const bare = f.key('no-retention-no-lease');
        await plant(f, { key: bare, status: 'INPROGRESS', owner: 'owner-a' });
        const bareRecord = await attempt('a claim of an INPROGRESS record with neither retention nor lease', () => f.claim(bare, 'owner-b'));
        assert.deepEqual([bareRecord.status, bareRecord.expiresAt], ['INPROGRESS', f.expiresAt], "refused, with the claim's retention");
        assert.equal(
          (await f.claim(bare, 'owner-b', { now: after, expiresAt: laterRetention })).claimed,
          true,
          'an INPROGRESS record with neither retention nor lease must be claimed anew after the retention the first claim gave it',
        );
      },
    ],
    [
      'a record past its retention (not yet deleted) is claimed anew, as is an INPROGRESS one past its lease; a COMPLETED record that still carries a lease replays, whatever the lease',
      async (f) => {
        const seconds = Math.floor(f.t0 / 1000);
        const expired = f.key('expired');
        await plant(f, { key: expired, status: 'COMPLETED', owner: 'owner-a', expiresAt: seconds - 10 });
        assert.equal(
          (await f.claim(expired, 'owner-b')).claimed,
          true,
          'a COMPLETED record whose retention has passed, not yet deleted (DynamoDB TTL lags by hours), must be claimed anew',
        );
        const lapsed = f.key('lapsed');
        await plant(f, { key: lapsed, status: 'INPROGRESS', owner: 'owner-a', expiresAt: f.expiresAt, leaseUntil: f.t0 - 1 });
        assert.equal((await f.claim(lapsed, 'owner-b')).claimed, true, 'an INPROGRESS record past its lease, within its retention, must be taken over');
        const leased = f.key('completed-with-lease');
        await plant(f, { key: leased, status: 'COMPLETED', owner: 'owner-a', expiresAt: f.expiresAt, leaseUntil: f.t0 - 1 });
        const record = await attempt('a claim of a COMPLETED record that carries a past lease', () => f.claim(leased, 'owner-b'));
        assert.deepEqual(
          [record.status, record.owner],
          ['COMPLETED', 'owner-a'],
          'a COMPLETED record must replay within its retention: a lease only bounds an INPROGRESS record, and taking this one over would run a call that succeeded again',
        );
      },
    ],
    [
      'a record with an unknown status fails closed: claims reject, its owner neither completes nor releases it, and after its retention it is claimed anew',
      async (f) => {
        const key = f.key('unknown-status');
        await plant(f, { key, status: 'DONE', owner: 'owner-a', expiresAt: f.expiresAt });
        await assert.rejects(
          f.claim(key, 'owner-b'),
          'a claim of a record with an unknown status must reject (the call may have succeeded, and the record cannot say): neither run the call nor replay something else',
        );
        const completion = await f.complete(key, 'owner-a', '"x"').catch(() => ({ completed: false }));
        assert.equal(
          completion.completed,
          false,
          'a completion of a record with an unknown status must not apply: the condition is INPROGRESS and held by the owner',
        );
        const release = await f.store.release({ key, owner: 'owner-a' }).catch(() => ({ released: false }));
        assert.equal(
          release.released,
          false,
          'a release of a record with an unknown status must not delete it: the condition is INPROGRESS and held by the owner',
        );
        await assert.rejects(f.claim(key, 'owner-b'), 'the record with an unknown status is still there, and still refuses claims');
        const after = (f.expiresAt + 1) * 1000;
        assert.equal(
          (await f.claim(key, 'owner-b', { now: after, expiresAt: f.expiresAt + 3_600 })).claimed,
          true,
          'a record with an unknown status must be claimed anew after its retention: it holds its key no longer than any record',
        );
      },
    ],
  ];
}
