import assert from 'node:assert/strict';
import { setImmediate } from 'node:timers';
import type { ClaimResult, CompleteResult, IdempotencyRecord, IdempotencyStore, ReleaseResult } from '../store.js';
import type { Check } from './contract-claims.js';
import { type Fixture, LEASE_MILLIS, refused } from './contract-fixture.js';

/** Keys raced at once per order of issue: a network store meets both interleavings among them. */
const RACES = 8;

/**
 * A second store from the contract's `makeStore` when it shares the records of `f.store` (a database
 * that two processes use), else `f.store` itself (a store that keeps records of its own, in memory).
 * With `sharedRecords: true`, a second store that does not share them fails the check; with `false`,
 * `f.store` itself.
 */
async function peerOf(f: Fixture): Promise<IdempotencyStore> {
  if (f.sharedRecords === false) return f.store;
  const other = await f.another();
  if (other === f.store) return other;
  const probe = f.key('probe');
  await f.claim(probe, 'owner-a');
  if (!(await other.claim(f.claimRequest(probe, 'owner-b'))).claimed) return other;
  assert.notEqual(
    f.sharedRecords,
    true,
    "a second store from makeStore claimed a key the first one holds: the stores do not share their records, so two processes would each run the function. Two stores on one database must see each other's records (a prefix, table or client of each instance's own keeps them apart).",
  );
  return f.store;
}

/**
 * Runs `late` (the first owner's completion or release) and a takeover through another process's
 * store at once on `RACES` fresh keys each held by `owner-a` with a lapsed lease, issued in both
 * orders and staggered: a store that reads, then writes, leaves a gap that the takeover fills.
 */
async function racesWithTakeover<T extends CompleteResult | ReleaseResult>(
  f: Fixture,
  late: (key: string) => Promise<T>,
): Promise<{ key: string; late: T; takeover: ClaimResult }[]> {
  const later = f.t0 + LEASE_MILLIS + 1;
  const peer = await peerOf(f);
  const rounds = Array.from({ length: 2 * RACES }, async (_, i) => {
    const key = f.key(`race-${i}`);
    await f.claim(key, 'owner-a');
    // Sent after 0 to RACES - 1 turns of the event loop: it lands before, inside or after the late request.
    // Real turns (`setImmediate` from `node:timers`), also under a test's fake timers, which fake the global one.
    const takeover = async () => {
      for (let turn = 0; turn < i >> 1; turn++) await new Promise((resolve) => setImmediate(resolve));
      return peer.claim(f.claimRequest(key, 'owner-b', { now: later }));
    };
    if (i % 2 === 0) {
      const [lateResult, claimResult] = await Promise.all([late(key), takeover()]);
      return { key, late: lateResult, takeover: claimResult };
    }
    const [claimResult, lateResult] = await Promise.all([takeover(), late(key)]);
    return { key, late: lateResult, takeover: claimResult };
  });
  return Promise.all(rounds);
}

/** The fields a record holds, for a message. */
const shown = (record: IdempotencyRecord | undefined): string => (record === undefined ? 'no record' : JSON.stringify(record));

/**
 * Integrity under races and reuse: a completion or release racing a takeover, a record claimed
 * anew, and keys that differ only in case or far into a long key. @internal
 */
export const integrityChecks: readonly Check[] = [
  [
    "a late completion racing a takeover: exactly one of them wins, and the record is the winner's",
    async (f) => {
      const later = f.t0 + LEASE_MILLIS + 1;
      for (const race of await racesWithTakeover(f, (key) => f.complete(key, 'owner-a', '"late"'))) {
        const record = await f.live(race.key, later);
        assert.ok(
          !(race.late.completed && race.takeover.claimed),
          `the late completion and the takeover both won, and the record is now ${shown(record)}: the completion overwrote the record the takeover had just written. ` +
            "A completion must be one conditional write (owner = the request's owner AND status = INPROGRESS), not a read followed by a write.",
        );
        assert.ok(race.late.completed || race.takeover.claimed, 'neither the late completion nor the takeover won');
        const winner = race.late.completed ? { status: 'COMPLETED', owner: 'owner-a' } : { status: 'INPROGRESS', owner: 'owner-b' };
        assert.deepEqual({ status: record?.status, owner: record?.owner }, winner, "the record is the winner's");
      }
    },
  ],
  [
    'an attempt that outlives its lease still completes its record while no other attempt has taken it over',
    async (f) => {
      const key = f.key();
      await f.claim(key, 'owner-a');
      const late = f.t0 + LEASE_MILLIS + 1;
      assert.deepEqual(
        await f.complete(key, 'owner-a', '"late"', { now: late }),
        { completed: true, responseStored: true },
        'the completion of an attempt past its lease, which no other attempt had taken over, was refused: its result is lost, and the next duplicate takes the record over and runs again. ' +
          'Fence a completion by owner and status only, never by the lease.',
      );
      const record = refused(await f.claim(key, 'owner-b', { now: late }), 'a claim after the late completion');
      assert.deepEqual([record.status, record.owner, record.response], ['COMPLETED', 'owner-a', '"late"']);
    },
  ],
  [
    'an attempt that outlives its lease still releases its record while no other attempt has taken it over',
    async (f) => {
      const key = f.key();
      // A lease over by every clock, the store's own too: a release carries no clock of the caller's.
      await f.claim(key, 'owner-a', { now: f.t0 - 2 * LEASE_MILLIS, leaseUntil: f.t0 - LEASE_MILLIS });
      assert.deepEqual(
        await f.store.release({ key, owner: 'owner-a' }),
        { released: true },
        'the release of an attempt that failed past its lease, which no other attempt had taken over, was refused: the next call then counts as a takeover of a timed-out attempt. ' +
          'Fence a release by owner and status only, never by the lease.',
      );
      assert.deepEqual(await f.claim(key, 'owner-b'), { claimed: true }, 'a claim after the release, with no previous record');
    },
  ],
  [
    'concurrent claims through two stores that share their records (two processes on one database): exactly one wins',
    async (f) => {
      const other = await peerOf(f);
      const key = f.key();
      const owners = Array.from({ length: 2 * RACES }, (_, i) => `owner-${i}`);
      const results = await Promise.all(owners.map((owner, i) => (i % 2 === 0 ? f.store : other).claim(f.claimRequest(key, owner))));
      const winners = results.filter((result) => result.claimed).length;
      assert.equal(
        winners,
        1,
        `${winners} of ${owners.length} claims through two stores won: the store serialises claims within one instance (a lock in memory), not in the database. ` +
          'A claim must be one conditional write that the database decides.',
      );
    },
  ],
  [
    'a late release racing a takeover never deletes the record the takeover wrote',
    async (f) => {
      const later = f.t0 + LEASE_MILLIS + 1;
      for (const race of await racesWithTakeover(f, (key) => f.store.release({ key, owner: 'owner-a' }))) {
        assert.ok(race.takeover.claimed, 'the takeover of a lapsed (or released) record goes through');
        const record = await f.live(race.key, later);
        assert.equal(
          record?.owner,
          'owner-b',
          `after the takeover the record is ${shown(record)}: the late release deleted the record the takeover had just written. ` +
            "A release must be one conditional delete (owner = the request's owner AND status = INPROGRESS), not a read followed by a delete.",
        );
        const replaced = race.takeover.claimed ? race.takeover.previous : undefined;
        assert.equal(race.late.released, replaced === undefined, 'the release went through exactly when the takeover found no record to replace');
      }
    },
  ],
  [
    'a record claimed anew (after a retention or a lease) carries only what its claim sets: no fingerprint, response or error of the record it replaced',
    async (f) => {
      const afterRetention = (f.expiresAt + 61) * 1000;
      const cases = [
        ['a completed response', afterRetention, (key: string) => f.complete(key, 'owner-a', '"old"')],
        ['a final error', afterRetention, (key: string) => f.complete(key, 'owner-a', undefined, { error: '{"name":"Old","message":"old"}' })],
        ['an omitted response', afterRetention, (key: string) => f.complete(key, 'owner-a', undefined, { responseOmitted: true })],
        ['an attempt past its lease', f.t0 + LEASE_MILLIS + 1, async () => undefined],
      ] as const;
      for (const [label, now, end] of cases) {
        const key = f.key(label);
        await f.claim(key, 'owner-a', { fingerprint: 'fp-old' });
        await end(key);
        const expiresAt = Math.floor(now / 1000) + 3_600;
        assert.ok((await f.claim(key, 'owner-b', { now, expiresAt })).claimed, `the record with ${label} is claimed anew`);
        const claimed = refused(await f.claim(key, 'owner-c', { now }), 'a claim of the new INPROGRESS record');
        const fresh = { key, status: 'INPROGRESS', owner: 'owner-b', leaseUntil: now + LEASE_MILLIS, expiresAt };
        assert.deepEqual(
          claimed,
          fresh,
          `the record that replaced one with ${label} kept its fields: a claim must write the whole record, not update the old one in place (an old fingerprint refuses the new payload, an old response or error is replayed for a call that never returned it)`,
        );
        await f.complete(key, 'owner-b', undefined, { expiresAt });
        const completed = refused(await f.claim(key, 'owner-c', { now }), 'a claim of the new COMPLETED record');
        assert.deepEqual(
          completed,
          { key, status: 'COMPLETED', owner: 'owner-b', expiresAt },
          `the new completion (an undefined result) of the record that replaced one with ${label}`,
        );
      }
    },
  ],
  [
    'keys are compared exactly: keys that differ only in case, or only in their last character after 1000 others, are different records',
    async (f) => {
      const long = 'y'.repeat(1000);
      const labels = ['Payments', 'payments', 'PAYMENTS', `${long}1`, `${long}2`];
      const named = (label: string): string => (label.length > 40 ? `${label.length - 1} × y then ${label.at(-1)}` : label);
      const keys = labels.map((label) => f.key(label));
      for (const [i, key] of keys.entries()) {
        const result = await f.claim(key, `owner-${i}`);
        const other = result.claimed ? -1 : Number(refused(result, `the claim of <…#${named(labels[i]!)}>`).owner.slice('owner-'.length));
        assert.ok(
          result.claimed,
          `the key <…#${named(labels[i]!)}> met the record of <…#${named(labels[other] ?? '?')}>: the store cuts or case-folds keys, so the records of two functions or two payloads collide`,
        );
      }
      for (const [i, key] of keys.entries()) assert.equal((await f.live(key))?.owner, `owner-${i}`, `the record of ${key.slice(0, 40)}… is its own`);
    },
  ],
];

/** Checks of the optional transactional methods, with no writes of the call's own: the record's part of the transaction. @internal */
export const transactionCheck: Check = [
  'completeWithWrites and claimCompleted (when the store has them) are fenced and conditional as complete and claim are, and keep the fingerprint',
  async (f) => {
    const { store } = f;
    const expiresAt = f.expiresAt + 60;
    if (typeof store.completeWithWrites === 'function') {
      const key = f.key('with-writes');
      await f.claim(key, 'owner-a', { fingerprint: 'fp-1' });
      const theirs = await store.completeWithWrites({ key, owner: 'owner-b', expiresAt, response: '"theirs"' }, []);
      assert.equal(theirs.completed, false, "another owner's completeWithWrites was applied: it must be fenced as complete is (owner and status)");
      assert.deepEqual(await store.completeWithWrites({ key, owner: 'owner-a', expiresAt, response: '"mine"' }, []), { completed: true, responseStored: true });
      const record = refused(await f.claim(key, 'owner-c'), 'a claim of the record completeWithWrites completed');
      assert.deepEqual(
        [record.status, record.owner, record.response, record.expiresAt, record.fingerprint],
        ['COMPLETED', 'owner-a', '"mine"', expiresAt, 'fp-1'],
        "completeWithWrites must keep the record's fingerprint, as complete does: without it, an identical retry is refused as another payload",
      );
      const again = await store.completeWithWrites({ key, owner: 'owner-a', expiresAt, response: '"again"' }, []);
      assert.equal(again.completed, false, 'a retried completeWithWrites is refused, as a retried complete is');
    }
    if (typeof store.claimCompleted === 'function') {
      const key = f.key('claim-completed');
      const claimCompleted = (owner: string, now: number, response: string, on = key) =>
        store.claimCompleted!({ key: on, owner, now, expiresAt, response, fingerprint: 'fp-1' }, []);
      assert.equal((await claimCompleted('owner-a', f.t0, '"first"')).claimed, true, 'claimCompleted of a new key goes through');
      const record = refused(await claimCompleted('owner-b', f.t0 + LEASE_MILLIS + 1, '"second"'), 'claimCompleted of a COMPLETED record within its retention');
      assert.deepEqual(
        [record.status, record.owner, record.response, record.fingerprint],
        ['COMPLETED', 'owner-a', '"first"', 'fp-1'],
        'claimCompleted must create the COMPLETED record with the fingerprint it is given: without it, an identical retry is refused as another payload',
      );
      // An attempt that claimed the key without writes (another function of the same name, or one deployed before atomic mode) holds it.
      const held = f.key('claim-completed-held');
      await f.claim(held, 'owner-x');
      const holder = refused(await claimCompleted('owner-y', f.t0 + 1, '"over"', held), 'claimCompleted of an INPROGRESS record within its lease');
      assert.deepEqual(
        [holder.status, holder.owner],
        ['INPROGRESS', 'owner-x'],
        'claimCompleted must leave a live INPROGRESS record as claim does: the attempt holding it runs',
      );
      assert.equal(
        (await claimCompleted('owner-y', f.t0 + LEASE_MILLIS + 1, '"after"', held)).claimed,
        true,
        'claimCompleted takes over an INPROGRESS record past its lease, as claim does',
      );
      const later = (expiresAt + 1) * 1000;
      const anew = await store.claimCompleted({ key, owner: 'owner-c', now: later, expiresAt: expiresAt + 3_600, response: '"third"' }, []);
      assert.equal(anew.claimed, true, 'claimCompleted after the retention claims the record anew');
    }
  },
];

/**
 * Check of the outcome the optional transactional methods store: atomic mode commits a final error
 * or an omitted response through `claimCompleted`, `transaction()` an omitted response through
 * `completeWithWrites`. A store that drops it answers the duplicates of a call that failed with a
 * success. @internal
 */
export const transactionOutcomeCheck: Check = [
  'completeWithWrites and claimCompleted (when the store has them) store the outcome they are given: a final error, a response that could not be stored',
  async (f) => {
    const { store } = f;
    const expiresAt = f.expiresAt + 60;
    const error = '{"name":"CardDeclined","message":"declined","code":"DECLINED"}';
    if (typeof store.completeWithWrites === 'function') {
      const key = f.key('with-writes-omitted');
      await f.claim(key, 'owner-a');
      assert.deepEqual(
        await store.completeWithWrites({ key, owner: 'owner-a', expiresAt, response: undefined, responseOmitted: true }, []),
        { completed: true, responseStored: false },
        'completeWithWrites of a response that could not be stored (`responseOmitted`) must report it not stored, as complete does',
      );
      const record = refused(await f.claim(key, 'owner-b'), 'a claim of the record completeWithWrites completed');
      assert.deepEqual(
        [record.status, record.responseOmitted, record.response],
        ['COMPLETED', true, undefined],
        'completeWithWrites must mark a response that could not be stored omitted, as complete does: without it, duplicates replay `undefined` as the result',
      );
    }
    if (typeof store.claimCompleted === 'function') {
      const claimCompleted = (key: string, owner: string, outcome: { error?: string; responseOmitted?: true }) =>
        store.claimCompleted!({ key, owner, now: f.t0, expiresAt, response: undefined, ...outcome }, []);
      const failed = f.key('claim-completed-error');
      const stored = await claimCompleted(failed, 'owner-a', { error });
      assert.ok(stored.claimed && stored.responseStored !== false, 'claimCompleted of a final error goes through and stores it');
      const record = refused(await f.claim(failed, 'owner-b'), 'a claim of the record claimCompleted created');
      assert.deepEqual(
        [record.status, record.error, record.response, record.responseOmitted],
        ['COMPLETED', error, undefined, undefined],
        'claimCompleted must store the final error it is given (`error`): without it, the duplicates of a call that failed replay a success',
      );
      const omitted = f.key('claim-completed-omitted');
      const result = await claimCompleted(omitted, 'owner-a', { responseOmitted: true });
      assert.deepEqual(
        result.claimed && result.responseStored,
        false,
        'claimCompleted of a response that could not be stored (`responseOmitted`) must report it not stored (`responseStored: false`)',
      );
      const marked = refused(await f.claim(omitted, 'owner-b'), 'a claim of the record claimCompleted created');
      assert.deepEqual(
        [marked.status, marked.responseOmitted, marked.response],
        ['COMPLETED', true, undefined],
        'claimCompleted must mark a response that could not be stored omitted: without it, duplicates replay `undefined` as the result',
      );
      const resent = refused(await claimCompleted(omitted, 'owner-a', { responseOmitted: true }), 'a claimCompleted sent again by its owner');
      assert.deepEqual(
        [resent.status, resent.owner, resent.responseOmitted],
        ['COMPLETED', 'owner-a', true],
        'a claimCompleted sent again by its owner finds its own record with the outcome as stored (here: omitted), as a retried completion does',
      );
    }
  },
];
