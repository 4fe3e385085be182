import { checkOptions, isBoolean, isFunction } from '../options.js';
import type { IdempotencyStore } from '../store.js';
import { claimChecks } from './contract-claims.js';
import { edgeChecks, type WriteRecord } from './contract-edges.js';
import { Fixture } from './contract-fixture.js';
import { integrityChecks, transactionCheck, transactionOutcomeCheck } from './contract-integrity.js';
import { forgetCheck, forgetLeaseCheck, inspectCheck, readCheck, ttlCheck } from './contract-operations.js';
import { outcomeChecks } from './contract-outcomes.js';
import { type SealingStore, sealingChecks } from './contract-sealing.js';
import type { TtlOf } from './ttl-of.js';

/**
 * One check of the store contract: run it with any test runner; it rejects when the store fails it.
 *
 * @example
 * ```ts
 * for (const check of storeContract(() => store)) await check.run();
 * ```
 */
export interface StoreCheck {
  readonly name: string;
  run(): Promise<void>;
}

/**
 * Options of {@link storeContract}.
 *
 * @example
 * ```ts
 * storeContract(() => new RedisStore({ client }), { ttlOf });
 * ```
 */
export interface StoreContractOptions {
  /**
   * Milliseconds until the store drops `key` by itself, `undefined` when it never will: enables the
   * check that every key expires with its retention (a key without one lives forever).
   */
  readonly ttlOf?: TtlOf | undefined;
  /**
   * Writes a record into the store's database as given, bypassing the store (as a hand or an older
   * version would): enables the checks of records the store did not write, an INPROGRESS one
   * without a lease, one without a retention, an unknown status.
   */
  readonly writeRecord?: WriteRecord | undefined;
  /**
   * Makes a store like the checked one that seals every outcome with the encryption it is given:
   * enables the checks that a refused completion or release never opens another owner's sealed
   * outcome (nor fails when the key provider does), that a completion sent again by its owner
   * reads its own, and that a completion while the key provider fails completes the record without
   * its outcome (neither throws nor stores it in the clear).
   */
  readonly sealing?: SealingStore | undefined;
  /**
   * Whether the stores `makeStore` makes share their records, as two processes on one database do:
   * `true` fails the checks that race two stores when a second store does not see the first one's
   * records; `false` runs them on one store (records kept in memory). Without it, a second store that
   * does not see them is taken for a store in memory, and those checks run on one store.
   */
  readonly sharedRecords?: boolean | undefined;
}

/**
 * The contract every {@link IdempotencyStore} must meet, as data: named async checks of claim
 * races (claims, and a late completion or release racing a takeover), fencing, a late completion or release with no takeover, takeover after the lease, retention
 * expiry (on any clock, before 1970 too), records claimed anew, exact keys, retried (ambiguous) writes, a COMPLETED record claimed by its owner,
 * fingerprints, responses (`undefined`, Unicode, large), release, records it did not write (with `writeRecord`), `inspect`/`forget` (by lease with `forgetChecksLease`), sealed outcomes (with `sealing`)
 * and `completeWithWrites`/`claimCompleted`/`read` when the store has them. Each check makes a store with `makeStore` (one check makes a second: two stores that share
 * their records, as two processes on one database, must race as one) and uses keys of its own, with the real
 * time as the caller's clock, so checks may run in any order or at once.
 *
 * @example
 * ```ts
 * import { storeContract } from 'lambda-idempotency/testing';
 *
 * describe('my store', () => {
 *   for (const check of storeContract(() => new MyStore())) test(check.name, check.run);
 * });
 * ```
 */
export function storeContract(makeStore: () => IdempotencyStore | Promise<IdempotencyStore>, options: StoreContractOptions = {}): readonly StoreCheck[] {
  if (typeof makeStore !== 'function') throw new TypeError('storeContract: `makeStore` must be a function that returns a store.');
  // A misspelt option would leave out the checks it enables, and the contract would pass a store it should fail.
  checkOptions('storeContract', options, { ttlOf: isFunction, writeRecord: isFunction, sealing: isFunction, sharedRecords: isBoolean });
  const optional = [
    { check: inspectCheck, has: (store: IdempotencyStore) => typeof store.inspect === 'function' },
    { check: forgetCheck, has: (store: IdempotencyStore) => typeof store.forget === 'function' },
    { check: readCheck, has: (store: IdempotencyStore) => typeof store.read === 'function' },
    { check: forgetLeaseCheck, has: (store: IdempotencyStore) => typeof store.forget === 'function' && store.forgetChecksLease === true },
    ...[transactionCheck, transactionOutcomeCheck].map((check) => ({
      check,
      has: (store: IdempotencyStore) => typeof store.completeWithWrites === 'function' || typeof store.claimCompleted === 'function',
    })),
  ];
  const always = [
    ...claimChecks,
    ...outcomeChecks,
    ...integrityChecks,
    ...(options.ttlOf ? [ttlCheck(options.ttlOf)] : []),
    ...(options.writeRecord ? edgeChecks(options.writeRecord) : []),
    ...(options.sealing ? sealingChecks(options.sealing) : []),
  ];
  const checks = [...always.map((check) => ({ check, has: () => true })), ...optional];
  return checks.map(({ check: [name, run], has }) => ({
    name,
    run: async () => {
      const store = await makeStore();
      // A store without the optional method passes its check: the contract only binds what exists.
      if (has(store)) await run(new Fixture(store, makeStore, options.sharedRecords));
    },
  }));
}
