/**
 * The cost model: capacity units per request from the items actually written (DynamoDB's rules),
 * cross-checked against the ConsumedCapacity that DynamoDB Local reports, and priced on demand.
 *
 * Rules applied (DynamoDB Developer Guide):
 * - a write consumes 1 WCU per started KB of the larger of the item before and after it;
 * - a refused conditional write still consumes write units: the size of the existing item, at least 1;
 * - a DeleteItem consumes the size of the deleted item;
 * - `ReturnValues` / `ReturnValuesOnConditionCheckFailure` cost no read units;
 * - transactional writes cost double (neither library's paths here use transactions);
 * - a strongly consistent read consumes 1 RCU per started 4 KB.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { itemSize, readUnits, writeUnits } from './item-size.js';
import type { RequestRecord } from './request-counter.js';

type Item = Record<string, AttributeValue>;

/** On-demand prices assumed, USD (us-east-1 on-demand list prices). */
export const PRICES = { region: 'us-east-1', perMillionWriteUnits: 1.25, perMillionReadUnits: 0.25 } as const;

export interface PricedRequest {
  readonly operation: string;
  readonly ok: boolean;
  readonly bytes: number;
  readonly wcu: number;
  readonly rcu: number;
  /** What DynamoDB Local reported, when it reported anything. */
  readonly reported?: number;
}

export interface CallCost {
  readonly requests: PricedRequest[];
  readonly wcu: number;
  readonly rcu: number;
  /** USD per million calls. */
  readonly usdPerMillion: number;
}

const keyOf = (item: Item | undefined): string => JSON.stringify(item ?? {});

/**
 * Prices the requests of one call. `sizes` holds the size of each live item before the call (by
 * key) and is updated; `after` reads an item's final size once the call is over (for updates,
 * whose after-image the request does not carry).
 */
export function priceCall(requests: readonly RequestRecord[], sizes: Map<string, number>, after: (key: string) => number | undefined): CallCost {
  const priced: PricedRequest[] = [];
  for (const request of requests) {
    const key = keyOf(request.key);
    const before = sizes.get(key) ?? 0;
    let bytes = 0;
    let wcu = 0;
    let rcu = 0;
    if (!request.ok && request.error === 'ConditionalCheckFailedException') {
      bytes = request.existing ? itemSize(request.existing) : before;
      wcu = writeUnits(bytes);
      // The refusal shows the live item (possibly written by another attempt): later writes start from it.
      if (request.existing) sizes.set(key, bytes);
    } else if (!request.ok) {
      bytes = 0; // refused before any work (validation, throttling): not metered here
    } else if (request.operation === 'PutItem') {
      const written = itemSize(request.written ?? {});
      bytes = Math.max(before, written);
      wcu = writeUnits(bytes);
      sizes.set(key, written);
    } else if (request.operation === 'UpdateItem') {
      const afterSize = after(key) ?? before;
      bytes = Math.max(before, afterSize);
      wcu = writeUnits(bytes);
      sizes.set(key, afterSize);
    } else if (request.operation === 'DeleteItem') {
      bytes = before;
      wcu = writeUnits(bytes);
      sizes.delete(key);
    } else if (request.operation === 'GetItem') {
      bytes = before;
      rcu = readUnits(bytes, request.consistentRead === true);
    }
    priced.push({ operation: request.operation, ok: request.ok, bytes, wcu, rcu, ...(request.consumed === undefined ? {} : { reported: request.consumed }) });
  }
  const wcu = priced.reduce((sum, r) => sum + r.wcu, 0);
  const rcu = priced.reduce((sum, r) => sum + r.rcu, 0);
  return { requests: priced, wcu, rcu, usdPerMillion: wcu * PRICES.perMillionWriteUnits + rcu * PRICES.perMillionReadUnits };
}

export { keyOf };
