import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { aesGcmEncryption, type OutcomeEncryption } from '../encryption.js';
import type { IdempotencyStore } from '../store.js';
import type { Check } from './contract-claims.js';
import { Fixture, refused } from './contract-fixture.js';

/**
 * Makes a store that seals every stored outcome with `encryption`, sharing nothing with the store of
 * the other checks but what `encryption` gives it.
 *
 * @example
 * ```ts
 * const sealing: SealingStore = (encryption) => new RedisStore({ client, keyPrefix: 'sealed:', encryption });
 * ```
 */
export type SealingStore = (encryption: OutcomeEncryption) => IdempotencyStore | Promise<IdempotencyStore>;

/** One AES key behind a provider that throws, as a throttled KMS, while `failing` is set. */
function faultyKeys(): { failing: boolean; readonly encryption: OutcomeEncryption } {
  const key = { id: 'contract-key', key: randomBytes(32) };
  const throttled = () => Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
  const keys = {
    failing: false,
    encryption: aesGcmEncryption({
      currentKey: () => {
        if (keys.failing) throw throttled();
        return key;
      },
      keyById: (id) => {
        if (keys.failing) throw throttled();
        if (id !== key.id) throw new Error(`no key ${id}`);
        return key.key;
      },
    }),
  };
  return keys;
}

/** A check on a sealing store, with the key provider that seals for it. */
type SealingCheck = readonly [name: string, run: (f: Fixture, keys: ReturnType<typeof faultyKeys>) => Promise<void>];

const checks: readonly SealingCheck[] = [
  [
    "a refused completion or release returns the record's state without opening another owner's sealed outcome, whether or not the key provider answers",
    async (f, keys) => {
      const key = f.key();
      await f.claim(key, 'owner-a');
      assert.equal((await f.complete(key, 'owner-a', '"a"')).completed, true);
      for (const failing of [true, false]) {
        keys.failing = failing;
        const when = failing ? 'while the key provider fails' : 'while the key provider answers';
        const completion = await f.complete(key, 'owner-b', '"b"');
        assert.equal(completion.completed, false, `another owner's completion is refused ${when}`);
        assert.equal(completion.record?.status, 'COMPLETED', `a refused completion returns the record ${when}`);
        assert.equal(completion.record?.owner, 'owner-a', `a refused completion returns the record ${when}`);
        assert.equal(completion.record?.response, undefined, `a refused completion does not open another owner's outcome ${when}`);
        const release = await f.store.release({ key, owner: 'owner-b' });
        assert.equal(release.released, false, `another owner's release is refused ${when}`);
        assert.equal(release.record?.status, 'COMPLETED', `a refused release returns the record ${when}`);
        assert.equal(release.record?.response, undefined, `a refused release does not open another owner's outcome ${when}`);
      }
    },
  ],
  [
    "a completion sent again by its owner reads its own outcome; while the key provider fails, the record's state",
    async (f, keys) => {
      const key = f.key();
      await f.claim(key, 'owner-a');
      assert.equal((await f.complete(key, 'owner-a', '"a"')).completed, true);
      const resent = await f.complete(key, 'owner-a', '"a"');
      assert.equal(resent.completed, false, 'a resent completion finds the record COMPLETED');
      assert.equal(resent.record?.response, '"a"', 'a resent completion reads its own outcome, as stored');
      keys.failing = true;
      const blind = await f.complete(key, 'owner-a', '"a"');
      assert.equal(blind.completed, false, 'a resent completion finds the record COMPLETED while the key provider fails');
      assert.equal(blind.record?.status, 'COMPLETED', "a resent completion returns the record's state while the key provider fails");
      assert.equal(blind.record?.owner, 'owner-a', "a resent completion returns the record's state while the key provider fails");
      assert.equal(blind.record?.response, undefined, 'a resent completion cannot read its outcome while the key provider fails');
    },
  ],
  [
    'a completion while the key provider fails completes the record without its outcome, never in the clear: its duplicates are told it was not stored, and the call never runs again',
    async (f, keys) => {
      // A throttled KMS: the call ran, and only its outcome cannot be sealed. A store that throws
      // leaves the record INPROGRESS for a retry to run the call again after the lease; one that
      // stores the outcome unsealed breaks the encryption the deployment asked for.
      keys.failing = true;
      for (const [label, outcome] of [
        ['a response', { response: '{"card":"4242"}' }],
        ['a final error', { response: undefined, error: '{"name":"CardDeclined","message":"card 4242 declined"}' }],
      ] as const) {
        const key = f.key(label);
        await f.claim(key, 'owner-a');
        let result: Awaited<ReturnType<typeof f.complete>>;
        try {
          result = await f.complete(key, 'owner-a', outcome.response, outcome);
        } catch (error) {
          assert.fail(
            `the completion of ${label} threw while the key provider failed (${(error as Error).message}): the record stays INPROGRESS, and a retry after its lease runs the call again. Complete it without its outcome.`,
          );
        }
        assert.deepEqual(
          [result.completed, result.completed && result.responseStored],
          [true, false],
          `the completion of ${label} while the key provider failed must complete the record and report its outcome not stored (\`responseStored: false\`)`,
        );
        const record = refused(await f.claim(key, 'owner-b'), 'a claim of the record completed while the key provider failed');
        assert.deepEqual(
          [record.status, record.owner, record.responseOmitted, record.response, record.error],
          ['COMPLETED', 'owner-a', true, undefined, undefined],
          `the record of ${label} completed while the key provider failed must be COMPLETED and marked omitted (\`responseOmitted\`), with no outcome: none can be sealed, and none may be stored in the clear`,
        );
      }
    },
  ],
];

/** The checks of a store that seals outcomes, each on a store of its own from `sealing`. @internal */
export const sealingChecks = (sealing: SealingStore): readonly Check[] =>
  checks.map(([name, run]) => [
    name,
    async () => {
      const keys = faultyKeys();
      const store = await sealing(keys.encryption);
      await run(new Fixture(store, () => store), keys);
    },
  ]);
