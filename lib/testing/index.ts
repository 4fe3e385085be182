/**
 * `lambda-idempotency/testing`: for unit tests of idempotent handlers, an in-memory store, Lambda
 * contexts with a deadline and a clock that moves only when told to; and the contract every store
 * meets, runnable by any test runner.
 */
export type { HandWrittenRecord, WriteRecord } from './contract-edges.js';
export type { SealingStore } from './contract-sealing.js';
export type { InMemoryStoreOptions } from './in-memory-store.js';
export { InMemoryStore } from './in-memory-store.js';
export type { LambdaContextOptions } from './lambda-context.js';
export { lambdaContext } from './lambda-context.js';
export type { ManualClock } from './manual-clock.js';
export { manualClock } from './manual-clock.js';
export type { StoreCheck, StoreContractOptions } from './store-contract.js';
export { storeContract } from './store-contract.js';
export type { TtlOf } from './ttl-of.js';
