import type { TransactWriteItem } from '@aws-sdk/client-dynamodb';
import { marshall, type NativeAttributeValue } from '@aws-sdk/util-dynamodb';
import type { Call } from './call.js';
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
 * What `transaction()` returns: a call's writes as DynamoDB `TransactWriteItem`s, added to the
 * call the engine commits with its record. Only code that calls `transaction()` reaches this
 * module, so a handler without writes does not bundle it. @internal
 */
export class CallTransaction implements Transaction {
  constructor(private readonly call: Call) {}

  get key(): string {
    return this.call.key;
  }

  get owner(): string {
    return this.call.owner;
  }

  /** The owner token: the fence the record's completion is conditioned on. */
  get fence(): string {
    return this.call.owner;
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
    return sha256(`${this.call.key}\n${label}`);
  }

  private add(action: TransactWriteItem): Transaction {
    this.assertOpen(true);
    this.call.writes.push(action);
    return this;
  }

  private assertOpen(writing: boolean): void {
    const call = this.call;
    if (call.isEnded) throw new TypeError('transaction(): this idempotent call has already ended; its transaction is committed or discarded.');
    if (call.mode === 'unkeyed') {
      throw new TypeError(
        'transaction(): this call runs without idempotency (its key is missing and onMissingKey is "skip"), so there is no transaction to join.',
      );
    }
    if (writing && !call.transactional) {
      throw new TypeError(
        "transaction(): the store of this idempotent call cannot commit writes with its record; use the DynamoDBStore of 'lambda-idempotency'.",
      );
    }
  }
}
