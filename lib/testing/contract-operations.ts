import assert from 'node:assert/strict';
import type { Check } from './contract-claims.js';
import { LEASE_MILLIS } from './contract-fixture.js';
import type { TtlOf } from './ttl-of.js';

/**
 * How much longer than expected a key's TTL may be: the time the check itself takes (a store counts
 * a TTL from the caller's `now`, the check's start). Never shorter: a key gone before its record's
 * retention or lease ends lets a duplicate run while the record still holds its key.
 */
const TTL_SLACK_MILLIS = 5_000;

/** Checks of the optional operations tools' methods, run only on stores that have them. @internal */
export const inspectCheck: Check = [
  'inspect (when the store has it) shows state and sizes, never the response, error or owner',
  async (f) => {
    const inspect = f.store.inspect!.bind(f.store);
    const key = f.key();
    assert.equal(await inspect(key), undefined, 'no record');
    await f.claim(key, 'owner-a', { fingerprint: 'fp-1' });
    assert.deepEqual(await inspect(key), {
      key,
      status: 'INPROGRESS',
      expiresAt: f.expiresAt,
      leaseUntil: f.t0 + LEASE_MILLIS,
      hasFingerprint: true,
      responseOmitted: false,
    });
    await f.complete(key, 'owner-a', '{"secret":"card 4242"}');
    const completed = await inspect(key);
    assert.equal(completed?.status, 'COMPLETED');
    assert.equal(completed?.leaseUntil, undefined, 'a COMPLETED record has no lease');
    assert.ok((completed?.responseBytes ?? 0) > 0, 'the stored response has a size');
    // What an operator reads to decide whether to forget a record: its retention, and whether its fingerprint and response are there
    // (and, from a store that encrypts, the id of the key that sealed it, which a store may report).
    assert.deepEqual(
      completed,
      {
        key,
        status: 'COMPLETED',
        expiresAt: f.expiresAt + 60,
        hasFingerprint: true,
        responseBytes: completed?.responseBytes,
        responseOmitted: false,
        ...(completed?.keyId === undefined ? {} : { keyId: completed.keyId }),
      },
      "a COMPLETED record shows the completion's retention, its fingerprint and a stored response",
    );
    assert.ok(!JSON.stringify(completed).includes('4242') && !JSON.stringify(completed).includes('owner-a'), 'neither the response nor the owner shows');
    const failed = f.key('error');
    await f.claim(failed, 'owner-a');
    const error = '{"name":"Declined","message":"no"}';
    await f.complete(failed, 'owner-a', undefined, { error });
    const summary = await inspect(failed);
    assert.equal(summary?.responseBytes, undefined, 'a record with a final error stores no response');
    assert.deepEqual(
      [summary?.hasFingerprint, summary?.responseOmitted],
      [false, false],
      'a record claimed without a fingerprint has none; a final error is no omitted response',
    );
    // The size as stored: the text's, or more once encrypted (a store that encrypts says so by its size alone).
    assert.ok(
      (summary?.errorBytes ?? 0) >= Buffer.byteLength(error),
      `the final error's size as stored is at least its ${Buffer.byteLength(error)} bytes of text (got ${summary?.errorBytes})`,
    );
    const omitted = f.key('omitted');
    await f.claim(omitted, 'owner-a');
    await f.complete(omitted, 'owner-a', undefined, { responseOmitted: true });
    const omittedSummary = await inspect(omitted);
    assert.deepEqual(
      [omittedSummary?.responseOmitted, omittedSummary?.responseBytes],
      [true, undefined],
      'a record completed without its response shows it omitted, with no size',
    );
  },
];

/** Check of atomic mode's read, run only on stores that have it. @internal */
export const readCheck: Check = [
  'read (when the store has it) returns the record as stored, its outcome decoded, and changes nothing',
  async (f) => {
    const read = f.store.read!.bind(f.store);
    const key = f.key();
    assert.equal(await read(key), undefined, 'no record');
    await f.claim(key, 'owner-a', { fingerprint: 'fp-1' });
    const held = { key, status: 'INPROGRESS', owner: 'owner-a', expiresAt: f.expiresAt, leaseUntil: f.t0 + LEASE_MILLIS, fingerprint: 'fp-1' };
    assert.deepEqual(await read(key), held);
    assert.deepEqual(await read(key), held, 'a second read finds the same');
    await f.complete(key, 'owner-a', '{"paid":"é"}');
    const completed = { key, status: 'COMPLETED', owner: 'owner-a', expiresAt: f.expiresAt + 60, fingerprint: 'fp-1', response: '{"paid":"é"}' };
    assert.deepEqual(await read(key), completed);
    assert.deepEqual(await f.live(key), completed, 'the record is as it was');
    const failed = f.key('error');
    await f.claim(failed, 'owner-a');
    const error = '{"name":"Declined","message":"no"}';
    await f.complete(failed, 'owner-a', undefined, { error });
    assert.equal((await read(failed))?.error, error, 'a final error, decoded');
    const omitted = f.key('omitted');
    await f.claim(omitted, 'owner-a');
    await f.complete(omitted, 'owner-a', undefined, { responseOmitted: true });
    const record = await read(omitted);
    assert.deepEqual(
      [record?.responseOmitted, record?.response],
      [true, undefined],
      'read must return a response that could not be stored as omitted (`responseOmitted`): without it, a duplicate whose run fails replays `undefined` as the result',
    );
  },
];

export const forgetCheck: Check = [
  'forget (when the store has it) deletes a record, only while it has the status asked for',
  async (f) => {
    const forget = f.store.forget!.bind(f.store);
    const key = f.key();
    assert.equal(await forget(key), false, 'no record to forget');
    await f.claim(key, 'owner-a');
    assert.equal(await forget(key, 'COMPLETED'), false, 'an INPROGRESS record is kept when only a COMPLETED one may go');
    assert.equal((await f.live(key))?.owner, 'owner-a');
    assert.equal(await forget(key, 'INPROGRESS'), true);
    assert.deepEqual(await f.claim(key, 'owner-b'), { claimed: true }, 'the key is free again');
    await f.complete(key, 'owner-b', '1');
    // forgetRecord's clean-up of a stuck attempt: the call completed meanwhile, and must keep its record or run again.
    assert.equal(await forget(key, 'INPROGRESS'), false, 'a COMPLETED record is kept when only an INPROGRESS one may go');
    assert.equal((await f.live(key))?.status, 'COMPLETED');
    assert.equal(await forget(key), true);
    assert.equal(await f.live(key), undefined);
  },
];

export const forgetLeaseCheck: Check = [
  'forget by lease (when the store declares forgetChecksLease) deletes only the attempt whose lease ends then, never one that took it over',
  async (f) => {
    const forget = f.store.forget!.bind(f.store);
    const key = f.key();
    const leaseUntil = f.t0 + LEASE_MILLIS;
    await f.claim(key, 'owner-a', { leaseUntil });
    assert.equal(await forget(key, 'INPROGRESS', leaseUntil + 1), false, 'an attempt with another lease end is kept');
    assert.equal(await forget(key, 'COMPLETED', leaseUntil), false, 'an INPROGRESS record is kept when only a COMPLETED one may go');
    const later = leaseUntil + 1;
    assert.ok((await f.claim(key, 'owner-b', { now: later })).claimed, 'the lapsed record is taken over');
    assert.equal(await forget(key, 'INPROGRESS', leaseUntil), false, 'the attempt that took the record over is kept');
    assert.equal((await f.live(key, later))?.owner, 'owner-b');
    assert.equal(await forget(key, undefined, later + LEASE_MILLIS), true, 'the attempt holding that lease is deleted');
    assert.equal(await f.live(key, later), undefined);
    await f.claim(key, 'owner-c', { leaseUntil });
    await f.complete(key, 'owner-c', '1');
    assert.equal(await forget(key, undefined, leaseUntil), false, 'a COMPLETED record has no lease to match');
  },
];

/**
 * `ttlOf(key)` is defined and covers the time left until `expectedUntil` (epoch ms), within the
 * slack above it. The clock is read once the TTL is known: time spent reading it only shortens
 * the time expected.
 */
async function assertTtl(ttlOf: TtlOf, key: string, expectedUntil: number, what: string): Promise<void> {
  const ttl = await ttlOf(key);
  assert.notEqual(ttl, undefined, `${what}: the key has no TTL, so the store would keep it forever`);
  const expected = expectedUntil - Date.now();
  // Whole milliseconds: a store rounds a TTL up to one, and reports it in them.
  assert.ok(ttl! >= Math.floor(expected), `${what}: TTL ${ttl} ms, so the key goes before the record stops holding it, in ${expected} ms`);
  assert.ok(ttl! - expected <= TTL_SLACK_MILLIS, `${what}: TTL ${ttl} ms, expected about ${expected} ms`);
}

/** The end of the retention `expiresAt` (epoch seconds), epoch ms: a record is live through its second's last millisecond. */
const retentionEnd = (expiresAt: number): number => (expiresAt + 1) * 1000 - 1;

export const ttlCheck = (ttlOf: TtlOf): Check => [
  'every key expires with its retention, never before its lease, also after a takeover',
  async (f) => {
    const key = f.key();
    await f.claim(key, 'owner-a');
    await assertTtl(ttlOf, key, retentionEnd(f.expiresAt), 'an INPROGRESS record');
    await f.complete(key, 'owner-a', '"done"');
    await assertTtl(ttlOf, key, retentionEnd(f.expiresAt + 60), 'a COMPLETED record');
    // A lease longer than the retention: the record must outlive the lease.
    const long = f.key('long-lease');
    const leaseUntil = (f.expiresAt + 600) * 1000;
    await f.claim(long, 'owner-a', { leaseUntil });
    await assertTtl(ttlOf, long, leaseUntil, 'a record whose lease outlasts its retention');
    // A takeover after a lease ended: the new claim's retention, not the shorter one it replaced.
    const taken = f.key('takeover');
    await f.claim(taken, 'owner-a', { now: f.t0 - 120_000, leaseUntil: f.t0 - 60_000, expiresAt: f.expiresAt - 1800 });
    assert.equal((await f.claim(taken, 'owner-b')).claimed, true, 'a record past its lease is taken over');
    await assertTtl(ttlOf, taken, retentionEnd(f.expiresAt), 'a record taken over after its lease');
  },
];
