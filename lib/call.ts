import type { TransactWriteItem } from '@aws-sdk/client-dynamodb';
import { marshall, type NativeAttributeValue } from '@aws-sdk/util-dynamodb';
import { sha256 } from './key.js';
import type { Transaction, TransactionConditionCheck, TransactionDelete, TransactionPut, TransactionUpdate } from './transaction.js';

type Values = Record<string, NativeAttributeValue>;
interface Expressions {
  readonly ConditionExpression?: string;
  readonly ExpressionAttributeNames?: Record<string, string>;
  readonly ExpressionAttributeValues?: Values;
}

const MARSHALL = { removeUndefinedValues: true, convertClassInstanceToMap: false } as const;

function expressions(params: Expressions) {
  return {
    ...(params.ConditionExpression === undefined ? {} : { ConditionExpression: params.ConditionExpression }),
    ...(params.ExpressionAttributeNames === undefined ? {} : { ExpressionAttributeNames: params.ExpressionAttributeNames }),
    ...(params.ExpressionAttributeValues === undefined ? {} : { ExpressionAttributeValues: marshall(params.ExpressionAttributeValues, MARSHALL) }),
  };
}

function tableOf(params: { TableName?: unknown } | undefined, action: string): string {
  if (typeof params?.TableName !== 'string' || params.TableName.length === 0) throw new TypeError(`transaction().${action}: \`TableName\` is required.`);
  return params.TableName;
}

/**
 * How a call holds its record: `claimed` (an INPROGRESS record with this owner exists), `atomic`
 * (nothing is written until the call ends; its completion creates the record), or `unkeyed` (the
 * key is missing and `onMissingKey` is 'skip': no record, no transaction).
 */
export type CallMode = 'claimed' | 'atomic' | 'unkeyed';

/**
 * The state of one idempotent call, from its claim to its end: record key, owner token,
 * fingerprint, the DynamoDB writes added through `transaction()`, and whether it has ended. The
 * engine creates it and ends it (once); entry points only carry it. @internal
 */
export class Call implements Transaction {
  readonly writes: TransactWriteItem[] = [];
  private ended = false;

  constructor(
    readonly key: string,
    readonly owner: string,
    readonly fingerprint: string | undefined,
    readonly mode: CallMode,
    /** When the call started (epoch ms): an atomic call's claim is judged at this instant. */
    readonly startedAt: number,
    /** Whether the store can commit writes with the record. */
    private readonly transactional: boolean,
  ) {}

  /** Marks the call ended; `false` when it had already ended (so it ends exactly once). */
  end(): boolean {
    if (this.ended) return false;
    this.ended = true;
    return true;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** The owner token: the fence the record's completion is conditioned on. */
  get fence(): string {
    return this.owner;
  }

  put(params: TransactionPut): Transaction {
    const table = tableOf(params, 'put');
    return this.add({ Put: { TableName: table, Item: marshall(params.Item, MARSHALL), ...expressions(params) } });
  }

  update(params: TransactionUpdate): Transaction {
    const table = tableOf(params, 'update');
    return this.add({ Update: { TableName: table, Key: marshall(params.Key, MARSHALL), UpdateExpression: params.UpdateExpression, ...expressions(params) } });
  }

  delete(params: TransactionDelete): Transaction {
    const table = tableOf(params, 'delete');
    return this.add({ Delete: { TableName: table, Key: marshall(params.Key, MARSHALL), ...expressions(params) } });
  }

  conditionCheck(params: TransactionConditionCheck): Transaction {
    const table = tableOf(params, 'conditionCheck');
    return this.add({
      ConditionCheck: { TableName: table, Key: marshall(params.Key, MARSHALL), ...expressions(params), ConditionExpression: params.ConditionExpression },
    });
  }

  downstreamKey(label = ''): string {
    this.assertOpen(false);
    return sha256(`${this.key}\n${label}`);
  }

  private add(action: TransactWriteItem): Transaction {
    this.assertOpen(true);
    this.writes.push(action);
    return this;
  }

  private assertOpen(writing: boolean): void {
    if (this.ended) throw new TypeError('transaction(): this idempotent call has already ended; its transaction is committed or discarded.');
    if (this.mode === 'unkeyed') {
      throw new TypeError(
        'transaction(): this call runs without idempotency (its key is missing and onMissingKey is "skip"), so there is no transaction to join.',
      );
    }
    if (writing && !this.transactional) {
      throw new TypeError('transaction(): the store of this idempotent call cannot commit writes with its record; use a DynamoDBStore.');
    }
  }
}
