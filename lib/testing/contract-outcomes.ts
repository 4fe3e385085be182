import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IdempotencyRecord } from '../store.js';
import type { Check } from './contract-claims.js';
import { LEASE_MILLIS, refused } from './contract-fixture.js';

/**
 * The state of a record: what a refused completion or release must carry when the record is not
 * the caller's own COMPLETED one (a store may then leave out the stored outcome, which the engine
 * never reads from such a refusal).
 */
function stateOf(record: IdempotencyRecord | undefined): IdempotencyRecord | undefined {
  if (record === undefined) return undefined;
  const { response: _response, error: _error, responseOmitted: _omitted, ...state } = record;
  return state as IdempotencyRecord;
}

function refusedState(result: object): object {
  return 'record' in result ? { ...result, record: stateOf(result.record as IdempotencyRecord | undefined) } : result;
}

/** A JSON text of about `bytes` bytes, repetitive enough to compress well (as real responses do). */
const largeJson = (bytes: number): string =>
  JSON.stringify({ items: Array.from({ length: Math.ceil(bytes / 64) }, (_, i) => ({ sku: `SKU-${100000 + i}`, quantity: i % 7, note: 'répété ✓' })) });

/** Completion, release, and requests retried after their first answer was lost. @internal */
export const outcomeChecks: readonly Check[] = [
  [
    'complete stores the response and the new retention, keeps the fingerprint and ends the lease',
    async (f) => {
      const key = f.key();
      await f.claim(key, 'owner-a', { fingerprint: 'fp-1' });
      assert.deepEqual(await f.complete(key, 'owner-a', '{"ok":true}'), { completed: true, responseStored: true });
      const record = refused(await f.claim(key, 'owner-b'), 'a claim of a COMPLETED record');
      assert.deepEqual(record, { key, status: 'COMPLETED', owner: 'owner-a', expiresAt: f.expiresAt + 60, fingerprint: 'fp-1', response: '{"ok":true}' });
    },
  ],
  [
    'responses come back exactly: undefined, empty, Unicode, escapes',
    async (f) => {
      const responses = [undefined, '""', 'null', '0', '{"text":"ünïcödé ✓ 😀 שלום","escaped":"\\u0000\\ud800\\n","nested":[[{}]]}'];
      for (const [i, response] of responses.entries()) {
        const key = f.key(`r${i}`);
        await f.claim(key, 'owner-a');
        assert.deepEqual(await f.complete(key, 'owner-a', response), { completed: true, responseStored: true });
        const record = refused(await f.claim(key, 'owner-b'), 'a claim of a COMPLETED record');
        assert.equal(record.response, response, `response ${String(response)}`);
        assert.equal('response' in record, response !== undefined, 'an undefined response leaves no response');
        assert.equal(record.responseOmitted, undefined, 'a stored response is not marked omitted');
      }
    },
  ],
  [
    'large responses: 1 MB of JSON is stored and comes back intact; one too large to store is marked omitted',
    async (f) => {
      const json = largeJson(1024 * 1024);
      const key = f.key('large');
      await f.claim(key, 'owner-a');
      assert.deepEqual(await f.complete(key, 'owner-a', json), { completed: true, responseStored: true });
      assert.equal(refused(await f.claim(key, 'owner-b'), 'a claim of a COMPLETED record').response, json);
      // Random bytes do not compress: a store may keep them or complete without them, never corrupt them.
      const noise = JSON.stringify(randomBytes(512 * 1024).toString('base64'));
      const other = f.key('noise');
      await f.claim(other, 'owner-a');
      const result = await f.complete(other, 'owner-a', noise);
      assert.equal(result.completed, true);
      const record = refused(await f.claim(other, 'owner-b'), 'a claim of a COMPLETED record');
      if (result.completed && result.responseStored) assert.equal(record.response, noise);
      else assert.deepEqual([record.response, record.responseOmitted], [undefined, true], 'an omitted response is marked so');
    },
  ],
  [
    'a response that could not be stored and a final error are recorded',
    async (f) => {
      const omitted = f.key('omitted');
      await f.claim(omitted, 'owner-a');
      assert.deepEqual(await f.complete(omitted, 'owner-a', undefined, { responseOmitted: true }), { completed: true, responseStored: false });
      const record = refused(await f.claim(omitted, 'owner-b'), 'a claim of a COMPLETED record');
      assert.deepEqual([record.responseOmitted, record.response], [true, undefined]);
      const failed = f.key('error');
      await f.claim(failed, 'owner-a');
      const error = '{"name":"CardDeclined","message":"declined","code":"DECLINED"}';
      assert.deepEqual(await f.complete(failed, 'owner-a', undefined, { error }), { completed: true, responseStored: true });
      assert.equal(refused(await f.claim(failed, 'owner-b'), 'a claim of a COMPLETED record').error, error);
    },
  ],
  [
    "complete is fenced: another owner's completion changes nothing and returns the record",
    async (f) => {
      const key = f.key();
      await f.claim(key, 'owner-a', { fingerprint: 'fp-1' });
      const before = await f.live(key);
      const result = await f.complete(key, 'owner-b', '"theirs"');
      assert.deepEqual(refusedState(result), { completed: false, record: stateOf(before) }, 'the refusal carries the unchanged record');
      assert.deepEqual(await f.live(key), before, 'the record is unchanged');
      assert.deepEqual(await f.complete(f.key('none'), 'owner-a', '1'), { completed: false, record: undefined }, 'completing no record');
    },
  ],
  [
    'release deletes the record its owner holds: the key can be claimed again at once',
    async (f) => {
      const key = f.key();
      await f.claim(key, 'owner-a');
      assert.deepEqual(await f.store.release({ key, owner: 'owner-a' }), { released: true });
      assert.deepEqual(await f.claim(key, 'owner-b'), { claimed: true }, 'a claim after the release, with no previous record');
    },
  ],
  [
    "release is fenced by owner and status: never another's record, never a COMPLETED one",
    async (f) => {
      const key = f.key();
      await f.claim(key, 'owner-a');
      const held = await f.live(key);
      assert.deepEqual(refusedState(await f.store.release({ key, owner: 'owner-b' })), { released: false, record: stateOf(held) });
      await f.complete(key, 'owner-a', '"done"');
      const completed = await f.live(key);
      assert.equal(completed?.status, 'COMPLETED');
      assert.deepEqual(
        refusedState(await f.store.release({ key, owner: 'owner-a' })),
        { released: false, record: stateOf(completed) },
        'the owner cannot release its COMPLETED record',
      );
      assert.deepEqual(await f.live(key), completed, 'the COMPLETED record stays');
    },
  ],
  [
    "a claim by the owner of a COMPLETED record (a durable execution's replay) is refused with that record, within its lease and after it, and leaves it COMPLETED",
    async (f) => {
      const key = f.key();
      await f.claim(key, 'owner-a', { fingerprint: 'fp-1' });
      await f.complete(key, 'owner-a', '"done"');
      const completed = await f.live(key);
      for (const now of [f.t0 + 1, f.t0 + LEASE_MILLIS + 1]) {
        const record = refused(await f.claim(key, 'owner-a', { now, fingerprint: 'fp-1' }), `the owner's claim ${now - f.t0} ms after its first`);
        assert.deepEqual(record, completed, "the refusal carries the owner's COMPLETED record, with its response");
      }
      assert.deepEqual(await f.live(key), completed, 'the record is still COMPLETED, unchanged');
    },
  ],
  [
    'ambiguous writes: a retried claim, completion or release meets its own result',
    async (f) => {
      const key = f.key();
      await f.claim(key, 'owner-a');
      assert.equal(refused(await f.claim(key, 'owner-a'), 'a retried claim').owner, 'owner-a', 'a retried claim finds its own record');
      await f.complete(key, 'owner-a', '"first"');
      const again = await f.complete(key, 'owner-a', '"second"');
      assert.equal(again.completed, false, 'a retried completion is refused');
      assert.deepEqual(again.completed === false && [again.record?.owner, again.record?.status], ['owner-a', 'COMPLETED']);
      assert.equal((await f.live(key))?.response, '"first"', 'the retried completion changed nothing');
      const omitted = f.key('omitted');
      await f.claim(omitted, 'owner-a');
      await f.complete(omitted, 'owner-a', undefined, { responseOmitted: true });
      const resent = await f.complete(omitted, 'owner-a', undefined, { responseOmitted: true });
      assert.deepEqual(
        resent.completed === false && [resent.record?.status, resent.record?.responseOmitted],
        ['COMPLETED', true],
        'a retried completion finds its own record with the outcome as stored (here: omitted)',
      );
      const failed = f.key('error');
      await f.claim(failed, 'owner-a');
      const error = '{"name":"CardDeclined","message":"declined"}';
      await f.complete(failed, 'owner-a', undefined, { error });
      const resentError = await f.complete(failed, 'owner-a', undefined, { error: '{"name":"Other","message":"sent again"}' });
      assert.equal(resentError.completed === false && resentError.record?.error, error, 'a retried completion finds its own stored error');
      const released = f.key('released');
      await f.claim(released, 'owner-a');
      await f.store.release({ key: released, owner: 'owner-a' });
      assert.deepEqual(await f.store.release({ key: released, owner: 'owner-a' }), { released: false, record: undefined }, 'a retried release finds nothing');
    },
  ],
];
