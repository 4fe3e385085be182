/**
 * Counts the DynamoDB requests a client sends, one per HTTP attempt (it sits below the SDK's retry
 * middleware), and keeps what the cost model needs: the operation, its outcome, the item written
 * by a PutItem, the item a refused write returned (`ALL_OLD`), and the `ConsumedCapacity` reported.
 */
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';

type Item = Record<string, AttributeValue>;

export interface RequestRecord {
  /** `PutItem`, `UpdateItem`, `DeleteItem`, `GetItem`, … */
  readonly operation: string;
  readonly ok: boolean;
  /** The error's name when the request failed, e.g. `ConditionalCheckFailedException`. */
  readonly error?: string;
  /** Primary key of the item the request addressed. */
  readonly key?: Item;
  /** The item a PutItem wrote. */
  readonly written?: Item;
  /** The item a refused conditional write returned. */
  readonly existing?: Item;
  /** `ConsumedCapacity.CapacityUnits` from the response, when the request asked for it. */
  readonly consumed?: number;
  readonly consistentRead?: boolean;
}

interface CommandInput {
  Key?: Item;
  Item?: Item;
  ConsistentRead?: boolean;
  ReturnConsumedCapacity?: string;
}

export class RequestCounter {
  readonly records: RequestRecord[] = [];

  /**
   * @param keyAttribute the table's partition key, to pick the key out of a PutItem's item
   * @param consumedCapacity ask DynamoDB for `ReturnConsumedCapacity: TOTAL` on every request
   */
  attach(client: DynamoDBClient, keyAttribute: string, consumedCapacity = false): this {
    if (consumedCapacity) {
      client.middlewareStack.add(
        (next) => async (args) => {
          (args.input as CommandInput).ReturnConsumedCapacity = 'TOTAL';
          return next(args);
        },
        { step: 'initialize', priority: 'high', name: 'benchConsumedCapacity' },
      );
    }
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as CommandInput;
        const operation = String(context.commandName ?? 'Unknown').replace(/Command$/, '');
        const key = input.Key ?? (input.Item?.[keyAttribute] ? { [keyAttribute]: input.Item[keyAttribute]! } : undefined);
        const base = {
          operation,
          ...(key ? { key } : {}),
          ...(operation === 'PutItem' && input.Item ? { written: input.Item } : {}),
          ...(input.ConsistentRead !== undefined ? { consistentRead: input.ConsistentRead } : {}),
        };
        try {
          const result = await next(args);
          const consumed = (result.output as { ConsumedCapacity?: { CapacityUnits?: number } } | undefined)?.ConsumedCapacity?.CapacityUnits;
          this.records.push({ ...base, ok: true, ...(consumed === undefined ? {} : { consumed }) });
          return result;
        } catch (error) {
          const e = error as { name?: string; Item?: Item };
          this.records.push({ ...base, ok: false, error: e.name ?? 'Error', ...(e.Item ? { existing: e.Item } : {}) });
          throw error;
        }
      },
      { step: 'finalizeRequest', priority: 'low', name: 'benchRequestCounter' },
    );
    return this;
  }

  /** A position to pass to {@link since}. */
  mark(): number {
    return this.records.length;
  }

  since(mark: number): RequestRecord[] {
    return this.records.slice(mark);
  }
}
