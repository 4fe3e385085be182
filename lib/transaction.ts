import type { TransactWriteItem } from '@aws-sdk/client-dynamodb';
import { type NativeAttributeValue, marshall } from '@aws-sdk/util-dynamodb';
import { AsyncLocalStorage } from 'node:async_hooks';
import { sha256 } from './key.js';

type Values = Record<string, NativeAttributeValue>;

interface Expressions {
  readonly ConditionExpression?: string;
  readonly ExpressionAttributeNames?: Record<string, string>;
  readonly ExpressionAttributeValues?: Values;
}
/** A Put in lib-dynamodb style: native JavaScript values. */
export interface TransactionPut extends Expressions {
  readonly TableName: string;
  readonly Item: Values;
}
export interface TransactionUpdate extends Expressions {
  readonly TableName: string;
  readonly Key: Values;
  readonly UpdateExpression: string;
}
export interface TransactionDelete extends Expressions {
  readonly TableName: string;
  readonly Key: Values;
}
export interface TransactionConditionCheck extends Expressions {
  readonly TableName: string;
  readonly Key: Values;
  readonly ConditionExpression: string;
}

/**
 * The writes of the current idempotent call, committed in one DynamoDB transaction together with
 * the call's COMPLETED record, so the effects and the record exist together or not at all.
 */
export interface Transaction {
  put(params: TransactionPut): Transaction;
  update(params: TransactionUpdate): Transaction;
  delete(params: TransactionDelete): Transaction;
  conditionCheck(params: TransactionConditionCheck): Transaction;
  /** The record key of this logical call: the same on every retry and takeover. */
  readonly key: string;
  /** This attempt's owner token (the fence its record is conditioned on); changes on takeover. */
  readonly fence: string;
  /**
   * A stable key for an external call made by this logical request (e.g. a payment provider's
   * idempotency key): identical across retries and takeovers, different for each `label`.
   */
  downstreamKey(label?: string): string;
}

const MARSHALL = { removeUndefinedValues: true, convertClassInstanceToMap: false } as const;

function expressions(params: Expressions): Pick<TransactWriteItem['Put'] & object, 'ConditionExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'> {
  return {
    ...(params.ConditionExpression === undefined ? {} : { ConditionExpression: params.ConditionExpression }),
    ...(params.ExpressionAttributeNames === undefined ? {} : { ExpressionAttributeNames: params.ExpressionAttributeNames }),
    ...(params.ExpressionAttributeValues === undefined ? {} : { ExpressionAttributeValues: marshall(params.ExpressionAttributeValues, MARSHALL) }),
  };
}

function requireTable(params: { TableName?: unknown }, action: string): string {
  if (typeof params?.TableName !== 'string' || params.TableName.length === 0) {
    throw new TypeError(`transaction().${action}: \`TableName\` is required.`);
  }
  return params.TableName;
}

/** Collects one call's writes; closed when the call ends. @internal */
export class WriteCollector implements Transaction {
  readonly actions: TransactWriteItem[] = [];
  /** Table of each action, for error messages. */
  readonly tables: string[] = [];
  key = '';
  fence = '';
  // 'unbound' until an attempt holds it: a middy request whose `before` failed (e.g. KEY_MISSING)
  // leaves its collector in the caller's async context, where writes would be silently dropped.
  private state: 'unbound' | 'open' | 'closed' | 'inactive' = 'unbound';

  /** The attempt this collector belongs to, and whether its store can commit writes. */
  bind(key: string, fence: string): void {
    this.key = key;
    this.fence = fence;
    if (this.state === 'unbound') this.state = 'open';
  }

  put(params: TransactionPut): Transaction {
    const table = requireTable(params, 'put');
    return this.add(table, { Put: { TableName: table, Item: marshall(params.Item, MARSHALL), ...expressions(params) } });
  }

  update(params: TransactionUpdate): Transaction {
    const table = requireTable(params, 'update');
    return this.add(table, { Update: { TableName: table, Key: marshall(params.Key, MARSHALL), UpdateExpression: params.UpdateExpression, ...expressions(params) } });
  }

  delete(params: TransactionDelete): Transaction {
    const table = requireTable(params, 'delete');
    return this.add(table, { Delete: { TableName: table, Key: marshall(params.Key, MARSHALL), ...expressions(params) } });
  }

  conditionCheck(params: TransactionConditionCheck): Transaction {
    const table = requireTable(params, 'conditionCheck');
    return this.add(table, {
      ConditionCheck: { TableName: table, Key: marshall(params.Key, MARSHALL), ...expressions(params), ConditionExpression: params.ConditionExpression },
    });
  }

  downstreamKey(label = ''): string {
    this.assertOpen();
    return sha256(`${this.key}\n${label}`);
  }

  /**
   * True once the call has ended, or when no attempt ever held the collector (a middy request's
   * collector outlives it in the caller's context).
   */
  get ended(): boolean {
    return this.state === 'closed' || this.state === 'unbound';
  }

  /** The call ends: later writes are refused instead of silently dropped. */
  close(): void {
    this.state = 'closed';
  }

  /** The call runs without idempotency (missing key with `onMissingKey: 'skip'`): nothing would commit the writes. */
  deactivate(): void {
    this.state = 'inactive';
  }

  private add(table: string, action: TransactWriteItem): Transaction {
    this.assertOpen();
    this.actions.push(action);
    this.tables.push(table);
    return this;
  }

  private assertOpen(): void {
    if (this.state === 'closed' || this.state === 'unbound') throw new TypeError('transaction(): this idempotent call has already ended; its transaction is committed or discarded.');
    if (this.state === 'inactive') {
      throw new TypeError('transaction(): this call runs without idempotency (its key is missing and onMissingKey is "skip"), so there is no transaction to join.');
    }
  }
}

/** @internal */
export const currentCall = new AsyncLocalStorage<WriteCollector>();

/**
 * The write collector of the idempotent call in progress (middleware, `makeIdempotent`, HTTP or
 * batch). Writes added to it are committed atomically with the call's COMPLETED record.
 *
 * @example
 * ```ts
 * const pay = makeIdempotent(async (input: Payment) => {
 *   transaction().put({ TableName: 'payments', Item: { id: input.id, amount: input.amount, status: 'PAID' } });
 *   return { id: input.id };
 * }, { store, name: 'pay', key: (input) => input.id });
 * ```
 */
export function transaction(): Transaction {
  const collector = currentCall.getStore();
  if (collector === undefined || collector.ended) {
    throw new TypeError(
      'transaction() was called outside an idempotent call with `transactions: true` (or `atomic: true`); with middy, `.use()` the idempotency middleware before any other middleware.',
    );
  }
  return collector;
}

