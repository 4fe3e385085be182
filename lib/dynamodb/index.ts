/**
 * `lambda-idempotency/dynamodb`: the `DynamoDBStore` with the record protocol alone (claim,
 * complete, release), for handlers that want the smallest bundle. Use it with `idempotency` from
 * `lambda-idempotency/middy`, or with any entry point of `lambda-idempotency`; for `transaction()`, atomic mode,
 * the operations tools or the older `encryption` shape, use the `DynamoDBStore` of
 * `lambda-idempotency`, which extends this one.
 */

export type { AttributeNames, LeanDynamoDBStoreOptions as DynamoDBStoreOptions } from '../dynamodb-store-options.js';
export { DEFAULT_ATTRIBUTE_NAMES } from '../dynamodb-store-options.js';
export { DynamoDBStore } from './dynamodb-store.js';
