/**
 * A zero-latency DynamoDB: a terminal SDK middleware at the bottom of the stack (below the
 * deserializer), so serialization, signing, retries and deserialization all run as in production
 * and only the network and the server are gone. It answers every request at once: `{}` (success),
 * or, in replay mode, a PutItem with `ConditionalCheckFailedException` carrying the stored item, as
 * DynamoDB does under `ReturnValuesOnConditionCheckFailure: ALL_OLD`. The answers are prepared
 * bytes, so the stand-in itself costs the same for every caller.
 */
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBClient as Client } from '@aws-sdk/client-dynamodb';
import { LOCAL_CREDENTIALS } from '../tools/dynamodb-local.js';

const HEADERS = { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': 'stand-in' };
const encoder = new TextEncoder();

export class StandIn {
  /** When set, PutItem is refused with this item, as for a duplicate. */
  private conflict: Uint8Array | undefined;
  private readonly ok = encoder.encode('{}');

  /** A client wired to this stand-in (never touches the network). */
  client(): DynamoDBClient {
    const client = new Client({ endpoint: 'http://127.0.0.1:9', region: 'us-east-1', credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });
    client.middlewareStack.add(
      () => async (args) => {
        const target = String((args.request as { headers: Record<string, string> }).headers['x-amz-target'] ?? '');
        if (this.conflict !== undefined && target.endsWith('.PutItem')) {
          return { response: { statusCode: 400, headers: HEADERS, body: this.conflict.slice() } } as never;
        }
        return { response: { statusCode: 200, headers: HEADERS, body: this.ok.slice() } } as never;
      },
      { step: 'deserialize', priority: 'low', name: 'benchStandIn' },
    );
    return client;
  }

  /** Every request succeeds (a first call). */
  succeed(): void {
    this.conflict = undefined;
  }

  /** PutItem meets `item` (a replay); other requests succeed. */
  refusePutWith(item: Record<string, AttributeValue>): void {
    this.conflict = encoder.encode(
      JSON.stringify({
        __type: 'com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException',
        message: 'The conditional request failed',
        Item: toWire(item),
      }),
    );
  }
}

/** AttributeValues as DynamoDB's JSON wire format writes them (binary as base64). */
function toWire(item: Record<string, AttributeValue>): unknown {
  const convert = (value: unknown): unknown => {
    if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
    if (Array.isArray(value)) return value.map(convert);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, convert(v)]));
    return value;
  };
  return convert(item);
}
