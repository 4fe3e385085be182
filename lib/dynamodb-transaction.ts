import { type AttributeValue, type DynamoDBClient, type TransactWriteItem, TransactWriteItemsCommand } from '@aws-sdk/client-dynamodb';
import { conflictBackoff } from './dynamodb/dynamodb-store.js';
import { IdempotencyError, storeFailureDetail } from './errors.js';
import { ITEM_LIMIT_BYTES } from './stored-outcome.js';
import { actionTable } from './transact-items.js';

type CancellationReason = { Code?: string; Message?: string; Item?: Record<string, AttributeValue> };

const reasonsOf = (error: unknown): CancellationReason[] =>
  (error as { name?: unknown } | null)?.name === 'TransactionCanceledException'
    ? ((error as { CancellationReasons?: CancellationReason[] }).CancellationReasons ?? [])
    : [];

/**
 * True when DynamoDB cancelled a transaction because the record's own action (the first) is
 * invalid: for an item write, that it would exceed the item size limit. @internal
 */
export const recordActionInvalid = (error: unknown): boolean => reasonsOf(error)[0]?.Code === 'ValidationError';

/**
 * True when DynamoDB refused a transaction as a whole for its size: an item over 400 KB (`Item size
 * has exceeded…`), or items over 4 MB in all (DynamoDB Local: `Transaction payload size cannot
 * exceed 4MB`). Told by the message, as these refusals have no code of their own (each is a
 * `ValidationException`, as a malformed expression is), and read broadly, as the wording of the
 * second is not documented: a refusal taken for one costs one more request, sent without the
 * stored outcome, never a wrong answer. @internal
 */
export const refusedForSize = (error: unknown): boolean =>
  (error as { name?: unknown } | null)?.name === 'ValidationException' && /size|\b4 ?MB\b|larger/i.test(String((error as Error).message));

/** Cancellation reasons of an action whose condition DynamoDB did not evaluate. */
const UNJUDGED: ReadonlySet<string> = new Set(['TransactionConflict', 'ThrottlingError', 'ProvisionedThroughputExceeded']);

/** DynamoDB's limit on the actions of one transaction, the record's included. */
const TRANSACTION_LIMIT_ACTIONS = 100;

/** DynamoDB's limit on the items of one transaction, in all. */
const TRANSACTION_LIMIT_BYTES = 4 * 1024 * 1024;

/** The bytes of a value's strings and binaries, and of its maps' names: never more than DynamoDB counts for it. */
const leastBytes = (value: AttributeValue): number => {
  if (value.S !== undefined) return Buffer.byteLength(value.S);
  if (value.B !== undefined) return value.B.byteLength;
  if (value.SS !== undefined) return value.SS.reduce((sum, text) => sum + Buffer.byteLength(text), 0);
  if (value.BS !== undefined) return value.BS.reduce((sum, bytes) => sum + bytes.byteLength, 0);
  if (value.L !== undefined) return value.L.reduce((sum, element) => sum + leastBytes(element), 0);
  if (value.M !== undefined) return leastItemBytes(value.M);
  return 0;
};
const leastItemBytes = (item: Record<string, AttributeValue>): number =>
  Object.entries(item).reduce((sum, [name, value]) => sum + Buffer.byteLength(name) + leastBytes(value), 0);

/** Whether the action puts an item that, counted low, already exceeds DynamoDB's 400 KB (`ITEM_LIMIT_BYTES`). */
const overItemLimit = (action: TransactWriteItem): boolean => action.Put?.Item !== undefined && leastItemBytes(action.Put.Item) > ITEM_LIMIT_BYTES;

/** Which of the call's own writes action `index` of the transaction is (the record's is the first), and its table. */
function writeAt(items: readonly TransactWriteItem[], index: number): { actionIndex: number; tableName?: string } {
  const table = actionTable(items[index]!);
  return { actionIndex: index - 1, ...(table === undefined ? {} : { tableName: table }) };
}

/**
 * What to fix for a transaction refused for a table that does not exist (DynamoDB names neither
 * the table nor the Region it looked in, so the tables it may be are named) or a missing
 * grant (the action and table, as for a store failure: not the role, nor DynamoDB's free text).
 */
function refusal(error: unknown, items: readonly TransactWriteItem[]): string {
  const detail = storeFailureDetail(error);
  if (detail !== 'ResourceNotFoundException') return detail;
  // A record's action that updates it follows the claim that put it: its table exists.
  const tables = [...new Set((items[0]?.Update ? items.slice(1) : items).map(actionTable))].join(', ');
  // A store's table given by its ARN runs the transaction in that table's account and Region, which may not be the function's.
  const arn = /^arn:[^:]+:dynamodb:([^:]+):(\d+):table\//.exec(actionTable(items[0]!) ?? '');
  const where = arn
    ? `account ${arn[2]}, Region ${arn[1]}, the idempotency table's (a transaction spans neither accounts nor Regions)`
    : 'this account and Region';
  return `${detail}: ${tables.includes(', ') ? 'one of the tables' : 'the table'} ${tables} is not in ${where}; create it, or fix its name`;
}

/**
 * Sends a transaction whose first action is the record's. Returns `null` when it committed, or
 * the item (raw, `ALL_OLD`) that refused the first action. A refused write of the caller's own, a
 * transaction DynamoDB rejects as invalid (or whose writes surely exceed its 4 MB: never sent), and
 * conflicts that outlast a few quick retries (`TRANSACTION_CONFLICT`) throw typed errors: in each
 * case nothing was written. Any other error leaves the outcome unknown and is rethrown.
 * @internal
 */
export async function sendTransaction(client: DynamoDBClient, items: TransactWriteItem[]): Promise<Record<string, AttributeValue> | undefined | null> {
  // The items the caller puts, counted low, already exceed what DynamoDB takes, whatever the record
  // holds: refused here, rather than sent as a request so large that DynamoDB may close the
  // connection on it instead of answering (an outcome that would then look unknown).
  const putBytes = items.slice(1).reduce((sum, action) => sum + (action.Put?.Item === undefined ? 0 : leastItemBytes(action.Put.Item)), 0);
  if (putBytes > TRANSACTION_LIMIT_BYTES) {
    throw new IdempotencyError(
      'TRANSACTION_INVALID',
      `The call's writes put at least ${putBytes} bytes, more than the 4 MB DynamoDB takes in one transaction; nothing was written.`,
    );
  }
  // DynamoDB's own refusal names neither the writes nor the record's place among the actions.
  if (items.length > TRANSACTION_LIMIT_ACTIONS) {
    throw new IdempotencyError(
      'TRANSACTION_INVALID',
      `The call adds ${items.length - 1} writes: with its record, ${items.length} actions, more than the ${TRANSACTION_LIMIT_ACTIONS} DynamoDB takes in one transaction; nothing was written.`,
    );
  }
  for (let attempt = 1; ; attempt++) {
    try {
      // The SDK fills ClientRequestToken, so its own retries of a lost response cannot apply the writes twice.
      await client.send(new TransactWriteItemsCommand({ TransactItems: items }));
      return null;
    } catch (error) {
      const name = (error as { name?: unknown } | null)?.name;
      // Refused as a whole (a limit, a malformed expression, a table that does not exist, a write the
      // function has no grant for): nothing was written.
      if (name === 'ValidationException') {
        // Refused for an item over 400 KB, DynamoDB names no action: a put surely that large is the one.
        const large = refusedForSize(error) ? items.findIndex((action, index) => index > 0 && overItemLimit(action)) : -1;
        if (large > 0) {
          throw new IdempotencyError(
            'TRANSACTION_INVALID',
            `DynamoDB refused transaction write ${large - 1}: ${(error as Error).message}; nothing was written.`,
            {
              cause: error,
              ...writeAt(items, large),
            },
          );
        }
        throw new IdempotencyError('TRANSACTION_INVALID', `DynamoDB refused the transaction: ${(error as Error).message}`, { cause: error });
      }
      if (name === 'ResourceNotFoundException' || name === 'AccessDeniedException') {
        throw new IdempotencyError('TRANSACTION_INVALID', `DynamoDB refused the transaction: ${refusal(error, items)}.`, { cause: error });
      }
      // A request too large for DynamoDB to read (HTTP 413, answered without a body: the SDK names no error) was not run.
      if ((error as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode === 413) {
        throw new IdempotencyError('TRANSACTION_INVALID', 'DynamoDB refused the transaction as a request too large to read (HTTP 413).', { cause: error });
      }
      if (name !== 'TransactionCanceledException') throw error;
      const reasons = reasonsOf(error);
      if (reasons[0]?.Code === 'ConditionalCheckFailed') return reasons[0].Item;
      // No table name in the messages: an HTTP error handler may send them to the client (`actionIndex` and `tableName` name it).
      const failed = reasons.findIndex((reason) => reason.Code === 'ConditionalCheckFailed');
      // Unless the record's action was not judged (a conflict, throttling): DynamoDB applies a
      // transaction item by item, so one on the same key (an atomic duplicate's) may have landed its
      // writes, failing ours, and still hold the record, which the retry meets with that call's outcome.
      if (failed > 0 && !UNJUDGED.has(reasons[0]?.Code ?? '')) {
        throw new IdempotencyError('TRANSACTION_CONDITION_FAILED', `The condition of transaction write ${failed - 1} failed; nothing was written.`, {
          cause: error,
          ...writeAt(items, failed),
        });
      }
      const invalid = reasons.findIndex((reason) => reason.Code === 'ValidationError' || reason.Code === 'ItemCollectionSizeLimitExceeded');
      if (invalid === 0) throw new IdempotencyError('TRANSACTION_INVALID', `DynamoDB refused the transaction: ${reasons[0]!.Code}.`, { cause: error });
      if (invalid > 0) {
        const { Code, Message } = reasons[invalid]!;
        throw new IdempotencyError(
          'TRANSACTION_INVALID',
          `DynamoDB refused transaction write ${invalid - 1}: ${Code}${Message ? ` (${Message})` : ''}; nothing was written.`,
          { cause: error, ...writeAt(items, invalid) },
        );
      }
      // TransactionConflict, throttling: cancelled, so nothing was written; retry briefly. Its own
      // code: no other attempt holds the key, the same call can be retried at once.
      if (attempt >= 3) {
        throw new IdempotencyError('TRANSACTION_CONFLICT', 'The transaction kept conflicting with concurrent writes (or was throttled); nothing was written.', {
          cause: error,
          retryAfterSeconds: 1,
        });
      }
      await conflictBackoff(attempt);
    }
  }
}
