/**
 * `lambda-idempotency/testing`: an in-memory store for unit tests of idempotent functions, and the
 * contract every store meets, runnable by any test runner.
 */
export { InMemoryStore } from './in-memory-store.js';
export { storeContract } from './store-contract.js';
export type { StoreCheck, StoreContractOptions } from './store-contract.js';
export type { TtlOf } from './contract-operations.js';
