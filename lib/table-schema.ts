import { DEFAULT_ATTRIBUTE_NAMES } from './dynamodb-store.js';

/** The key schema and TTL attribute of a DynamoDB table. */
export interface TableSchema {
  readonly partitionKey: { readonly name: string; readonly type: 'S' | 'N' };
  readonly sortKey?: { readonly name: string; readonly type: 'S' | 'N' };
  readonly timeToLiveAttribute?: string;
}

/**
 * The idempotency table as `DynamoDBStore` expects it by default: partition key `id` (S), TTL on
 * `expiration`. The CDK construct, the demo and the tests all derive their tables from it.
 *
 * @example
 * ```ts
 * idempotencyTableSchema.partitionKey.name; // 'id'
 * ```
 */
export const idempotencyTableSchema: TableSchema = Object.freeze({
  partitionKey: Object.freeze({ name: DEFAULT_ATTRIBUTE_NAMES.key, type: 'S' as const }),
  timeToLiveAttribute: DEFAULT_ATTRIBUTE_NAMES.expiration,
});
