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

/**
 * `values` as DynamoDB attribute values. The marshaller's own error asks for options that
 * `transaction()` does not take: it becomes the cause of one that names the write and its parameter.
 */
function marshalled(values: Values, action: string, parameter: string) {
  try {
    return marshall(values, MARSHALL);
  } catch (error) {
    throw new TypeError(
      `transaction().${action}: \`${parameter}\` holds a value DynamoDB cannot store (a class instance such as a Date: write its ISO string or epoch number; a function; an empty set); the marshaller's message is the cause.`,
      { cause: error },
    );
  }
}

function expressions(params: Expressions, action: string) {
  return {
    ...(params.ConditionExpression === undefined ? {} : { ConditionExpression: params.ConditionExpression }),
    ...(params.ExpressionAttributeNames === undefined ? {} : { ExpressionAttributeNames: params.ExpressionAttributeNames }),
    ...(params.ExpressionAttributeValues === undefined
      ? {}
      : { ExpressionAttributeValues: marshalled(params.ExpressionAttributeValues, action, 'ExpressionAttributeValues') }),
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
    this.assertKeyed();
    return this.call.key;
  }

  get owner(): string {
    this.assertKeyed();
    return this.call.owner;
  }

  /** The owner token: the fence the record's completion is conditioned on. */
  get fence(): string {
    return this.owner;
  }

  put(params: TransactionPut): Transaction {
    const table = tableOf(params, 'put');
    return this.add({ Put: { TableName: table, Item: marshalled(params.Item, 'put', 'Item'), ...expressions(params, 'put') } });
  }

  update(params: TransactionUpdate): Transaction {
    const table = tableOf(params, 'update');
    return this.add({
      Update: { TableName: table, Key: marshalled(params.Key, 'update', 'Key'), UpdateExpression: params.UpdateExpression, ...expressions(params, 'update') },
    });
  }

  delete(params: TransactionDelete): Transaction {
    const table = tableOf(params, 'delete');
    return this.add({ Delete: { TableName: table, Key: marshalled(params.Key, 'delete', 'Key'), ...expressions(params, 'delete') } });
  }

  conditionCheck(params: TransactionConditionCheck): Transaction {
    const table = tableOf(params, 'conditionCheck');
    return this.add({
      ConditionCheck: {
        TableName: table,
        Key: marshalled(params.Key, 'conditionCheck', 'Key'),
        ...expressions(params, 'conditionCheck'),
        ConditionExpression: params.ConditionExpression,
      },
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

  /** A call run without idempotency has no record: no key and no owner to read, no transaction to join. */
  private assertKeyed(): void {
    if (this.call.mode === 'unkeyed') {
      throw new TypeError(
        'transaction(): this call runs without idempotency (its key is missing and onMissingKey is "skip"), so there is no transaction to join.',
      );
    }
  }

  private assertOpen(writing: boolean): void {
    const call = this.call;
    if (call.isEnded) throw new TypeError('transaction(): this idempotent call has already ended; its transaction is committed or discarded.');
    this.assertKeyed();
    if (writing && !call.transactional) {
      throw new TypeError(
        "transaction(): the store of this idempotent call cannot commit writes with its record; use the DynamoDBStore of 'lambda-idempotency'.",
      );
    }
  }
}
