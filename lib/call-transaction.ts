import type { AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem } from '@aws-sdk/client-dynamodb';
import { marshall, type NativeAttributeValue } from '@aws-sdk/util-dynamodb';
import type { Call } from './call.js';
import { faultOfCode, IdempotencyError } from './errors.js';
import { decimalValue } from './exact-json.js';
import { sha256 } from './key.js';
import type { RecordItem } from './store.js';
import { actionTable } from './transact-items.js';
import type { Transaction, TransactionConditionCheck, TransactionDelete, TransactionPut, TransactionUpdate } from './transaction.js';

type Values = Record<string, NativeAttributeValue>;
interface Expressions {
  readonly ConditionExpression?: string;
  readonly ExpressionAttributeNames?: Record<string, string>;
  readonly ExpressionAttributeValues?: Values;
  readonly ReturnValuesOnConditionCheckFailure?: ReturnValuesOnConditionCheckFailure;
}

const MARSHALL = { removeUndefinedValues: true, convertClassInstanceToMap: false } as const;

/** Whether `value` has the form of a DynamoDB AttributeValue: one member, named for its type, holding that type. */
function isAttributeValue(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) return false;
  const entries = Object.entries(value);
  if (entries.length !== 1) return false;
  const [type, inner] = entries[0]!;
  const strings = Array.isArray(inner) && inner.every((element) => typeof element === 'string');
  switch (type) {
    case 'S':
      return typeof inner === 'string';
    case 'N':
      return typeof inner === 'string' && inner.trim() !== '' && Number.isFinite(Number(inner));
    case 'B':
      return inner instanceof Uint8Array;
    case 'BOOL':
      return typeof inner === 'boolean';
    case 'NULL':
      return inner === true;
    case 'SS':
    case 'NS':
      return strings;
    case 'BS':
      return Array.isArray(inner) && inner.every((element) => element instanceof Uint8Array);
    case 'L':
      return Array.isArray(inner);
    case 'M':
      return typeof inner === 'object' && inner !== null && !Array.isArray(inner);
    default:
      return false;
  }
}

/**
 * `values` as DynamoDB attribute values. The marshaller's own error asks for options that
 * `transaction()` does not take: it becomes the cause of one that names the write and its parameter.
 * A key or an item in DynamoDB's AttributeValue form (every value of it, copied from the
 * low-level client) is refused: marshalled again, each value would be a map such as `{ S: 'PAID' }`,
 * which a key cannot be, so no native key or item has that form. An expression's values are not
 * judged: a native map may have any shape.
 */
function marshalled(values: Values | undefined, action: string, parameter: string) {
  if (values === undefined || values === null) throw new TypeError(`transaction().${action}: \`${parameter}\` is required.`);
  // A bare value (`Key: id`) would be marshalled to one AttributeValue, which DynamoDB cannot even read: an unknown outcome.
  if (typeof values !== 'object' || Array.isArray(values)) {
    throw new TypeError(`transaction().${action}: \`${parameter}\` must be an object of attribute names and values ({ id: 'p-1' }).`);
  }
  if (parameter === 'Key') {
    // Undefined members are dropped as they are from an item, and a key without its attributes would
    // be taken for any other key-less write on its table, or be refused only by the commit.
    const names = Object.keys(values);
    const missing = names.filter((name) => values[name] === undefined);
    if (missing.length > 0 || names.length === 0) {
      const which = missing.length > 0 ? `holds undefined for ${missing.map((name) => `\`${name}\``).join(', ')}` : 'is empty';
      throw new TypeError(`transaction().${action}: \`Key\` ${which}: give each key attribute of the item its value.`);
    }
  }
  const entries = Object.values(values);
  // Only a key, or an item that holds its key, tells: an expression's values may be native maps of any shape.
  if (parameter !== 'ExpressionAttributeValues' && entries.length > 0 && entries.every(isAttributeValue)) {
    throw new TypeError(
      `transaction().${action}: \`${parameter}\` is in DynamoDB's AttributeValue form ({ S: '…' }, { N: '…' }); transaction() takes native values, as lib-dynamodb does ({ id: 'p-1', amount: 5 }): unmarshall() of @aws-sdk/util-dynamodb converts them.`,
    );
  }
  try {
    return marshall(values, MARSHALL);
  } catch (error) {
    throw new TypeError(
      `transaction().${action}: \`${parameter}\` holds a value DynamoDB cannot store (a class instance such as a Date: write its ISO string or epoch number; a symbol; an empty set); the marshaller's message is the cause.`,
      { cause: error },
    );
  }
}

/** The name and value placeholders (`#s`, `:amount`) the expressions of a write use. */
const placeholdersIn = (...texts: (string | undefined)[]): Set<string> =>
  new Set(texts.flatMap((text) => (typeof text === 'string' ? (text.match(/[#:]\w+/g) ?? []) : [])));

/** Where a refused write is in the call's writes: the `actionIndex` and `tableName` of its `TRANSACTION_INVALID`. */
interface WriteAt {
  readonly actionIndex: number;
  readonly tableName: string;
}

function expressions(params: Expressions, action: string, at: WriteAt, updateExpression?: string) {
  const names: unknown = params.ExpressionAttributeNames;
  if (names !== undefined && (typeof names !== 'object' || names === null || Array.isArray(names))) {
    throw new TypeError(`transaction().${action}: \`ExpressionAttributeNames\` must be an object of placeholders and attribute names ({ '#s': 'status' }).`);
  }
  // An undefined value or name is left out (as undefined members are; the SDK leaves out such a
  // name), and DynamoDB would refuse the commit for a placeholder the expression uses, once the
  // function returned: refused here instead, as DynamoDB's refusal is (TRANSACTION_INVALID), so that
  // it is never stored as a final error either (a TypeError would be, by an isFinalError that keeps
  // it) and the corrected code runs.
  const used = placeholdersIn(params.ConditionExpression, updateExpression);
  for (const parameter of ['ExpressionAttributeNames', 'ExpressionAttributeValues'] as const) {
    const map: Values | undefined = params[parameter];
    if (map === undefined || map === null || typeof map !== 'object') continue;
    const missing = Object.keys(map).filter((placeholder) => map[placeholder] === undefined && used.has(placeholder));
    if (missing.length > 0) {
      throw new IdempotencyError(
        'TRANSACTION_INVALID',
        `transaction().${action}: \`${parameter}\` holds undefined for ${missing.map((placeholder) => `\`${placeholder}\``).join(', ')}, which the expression uses: give it a value.`,
        at,
      );
    }
  }
  return {
    ...(params.ConditionExpression === undefined ? {} : { ConditionExpression: params.ConditionExpression }),
    ...(params.ExpressionAttributeNames === undefined ? {} : { ExpressionAttributeNames: params.ExpressionAttributeNames }),
    ...(params.ExpressionAttributeValues === undefined
      ? {}
      : { ExpressionAttributeValues: marshalled(params.ExpressionAttributeValues, action, 'ExpressionAttributeValues') }),
    ...(params.ReturnValuesOnConditionCheckFailure === undefined ? {} : { ReturnValuesOnConditionCheckFailure: params.ReturnValuesOnConditionCheckFailure }),
  };
}

type Action = 'put' | 'update' | 'delete' | 'conditionCheck';

const EXPRESSION_PARAMETERS = ['ConditionExpression', 'ExpressionAttributeNames', 'ExpressionAttributeValues', 'ReturnValuesOnConditionCheckFailure'];

/** The parameters each write takes, as its `TransactWriteItem` action does. */
const PARAMETERS: Readonly<Record<Action, readonly string[]>> = {
  put: ['TableName', 'Item', ...EXPRESSION_PARAMETERS],
  update: ['TableName', 'Key', 'UpdateExpression', ...EXPRESSION_PARAMETERS],
  delete: ['TableName', 'Key', ...EXPRESSION_PARAMETERS],
  conditionCheck: ['TableName', 'Key', ...EXPRESSION_PARAMETERS],
};

/**
 * What a single-item command (`PutCommand`'s input, spread into a write) asks of its answer alone: a
 * transaction's action has no such answer, and they are left out, as they always were.
 */
const ANSWER_ONLY = ['ReturnValues', 'ReturnConsumedCapacity', 'ReturnItemCollectionMetrics'];

/**
 * The table of a write whose parameters are each one it takes: a misspelt one (`conditionExpression`)
 * would go unsent, and the write commit without the guard it meant. One left `undefined` means nothing.
 */
function tableOf(params: { TableName?: unknown } | undefined, action: Action): string {
  if (params !== null && typeof params === 'object') {
    const unknown = Object.keys(params).find(
      (name) => !PARAMETERS[action].includes(name) && !ANSWER_ONLY.includes(name) && params[name as keyof typeof params] !== undefined,
    );
    if (unknown !== undefined) {
      throw new TypeError(`transaction().${action}: unknown parameter \`${unknown}\`. Known parameters: ${PARAMETERS[action].join(', ')}.`);
    }
  }
  if (typeof params?.TableName !== 'string' || params.TableName.length === 0) throw new TypeError(`transaction().${action}: \`TableName\` is required.`);
  return params.TableName;
}

/** The expression a write cannot do without (DynamoDB Local would even commit an update that has none). */
function expressionOf(expression: unknown, action: string, parameter: string): string {
  if (typeof expression !== 'string' || expression.length === 0) throw new TypeError(`transaction().${action}: \`${parameter}\` is required.`);
  return expression;
}

/** DynamoDB's limit on the actions of one transaction, less the record's own. */
const MAX_WRITES = 99;

type Item = Record<string, AttributeValue>;

/** Whether two key values are the same (a key attribute is a string, a number or a binary). */
const sameValue = (a: AttributeValue, b: AttributeValue | undefined): boolean =>
  b !== undefined &&
  (a.S !== undefined
    ? a.S === b.S
    : a.N !== undefined
      ? b.N !== undefined && decimalValue(a.N) === decimalValue(b.N)
      : a.B !== undefined && b.B !== undefined && Buffer.from(a.B).equals(Buffer.from(b.B)));

/** Whether `item` holds every attribute of `key` with its value: for a whole key, the same item. */
const holds = (key: Item, item: Item): boolean => Object.entries(key).every(([name, value]) => sameValue(value, item[name]));

/** The item a write names: its table, and its key (an update, a delete, a check) or its item (a put). */
interface Target {
  readonly table: string | undefined;
  readonly key?: Item;
  readonly item?: Item;
}

/** The table of a write, and its key (an update, a delete, a check) or its item (a put). */
function targetOf(action: TransactWriteItem): Target {
  const table = actionTable(action);
  if (action.Put !== undefined) return { table, ...(action.Put.Item === undefined ? {} : { item: action.Put.Item }) };
  const key = (action.Update ?? action.Delete ?? action.ConditionCheck)?.Key;
  return { table, ...(key === undefined ? {} : { key }) };
}

/**
 * Whether two writes surely name one item, which DynamoDB refuses in one transaction: the same key,
 * or a put whose item holds the other's key. Two puts name their keys nowhere: DynamoDB judges them.
 * A table named two ways (by its name and by its ARN) is left to DynamoDB too.
 */
function sameItem(x: Target, y: Target): boolean {
  if (x.table !== y.table) return false;
  if (x.key !== undefined && y.key !== undefined) return holds(x.key, y.key) && holds(y.key, x.key);
  if (x.key !== undefined && y.item !== undefined) return holds(x.key, y.item);
  return y.key !== undefined && x.item !== undefined && holds(y.key, x.item);
}

/**
 * What `transaction()` returns: a call's writes as DynamoDB `TransactWriteItem`s, added to the
 * call the engine commits with its record. Only code that calls `transaction()` reaches this
 * module, so a handler without writes does not bundle it. @internal
 */
export class CallTransaction implements Transaction {
  constructor(
    private readonly call: Call,
    /** The item of the call's own record, which its commit writes. */
    private readonly ownRecord: RecordItem | undefined,
    /** The record items of the calls it is nested in, which their own completions write. */
    private readonly outerRecords: readonly RecordItem[],
  ) {}

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
    return this.write(() => {
      const table = tableOf(params, 'put');
      return { Put: { TableName: table, Item: marshalled(params.Item, 'put', 'Item'), ...expressions(params, 'put', this.at(table)) } };
    });
  }

  update(params: TransactionUpdate): Transaction {
    return this.write(() => {
      const table = tableOf(params, 'update');
      const key = marshalled(params.Key, 'update', 'Key');
      const UpdateExpression = expressionOf(params.UpdateExpression, 'update', 'UpdateExpression');
      return { Update: { TableName: table, Key: key, UpdateExpression, ...expressions(params, 'update', this.at(table), UpdateExpression) } };
    });
  }

  delete(params: TransactionDelete): Transaction {
    return this.write(() => {
      const table = tableOf(params, 'delete');
      return { Delete: { TableName: table, Key: marshalled(params.Key, 'delete', 'Key'), ...expressions(params, 'delete', this.at(table)) } };
    });
  }

  conditionCheck(params: TransactionConditionCheck): Transaction {
    return this.write(() => {
      const table = tableOf(params, 'conditionCheck');
      const key = marshalled(params.Key, 'conditionCheck', 'Key');
      const ConditionExpression = expressionOf(params.ConditionExpression, 'conditionCheck', 'ConditionExpression');
      return { ConditionCheck: { TableName: table, Key: key, ...expressions(params, 'conditionCheck', this.at(table)), ConditionExpression } };
    });
  }

  downstreamKey(label = ''): string {
    this.assertOpen(false);
    return sha256(`${this.call.key}\n${label}`);
  }

  /** Where a write on `table` added now would be among the call's writes. */
  private at(table: string): WriteAt {
    return { actionIndex: this.call.writes.length, tableName: table };
  }

  /**
   * Adds the write `build` makes. What it or the call refuses is a fault of the code that adds it,
   * never the call's outcome, whatever `isFinalError` says: the key is released, as DynamoDB's
   * refusal of the commit releases it, and the corrected code runs.
   */
  private write(build: () => TransactWriteItem): Transaction {
    try {
      return this.add(build());
    } catch (error) {
      throw faultOfCode(error);
    }
  }

  private add(action: TransactWriteItem): Transaction {
    this.assertOpen(true);
    const writes = this.call.writes;
    // Refused as it is added, where the mistake is, rather than at the commit once the function returned.
    // No table name in the messages: an HTTP error handler may send them to the client.
    const table = actionTable(action);
    const at = { actionIndex: writes.length, ...(table === undefined ? {} : { tableName: table }) };
    if (writes.length >= MAX_WRITES) {
      throw new IdempotencyError(
        'TRANSACTION_INVALID',
        `transaction(): a call commits at most ${MAX_WRITES} writes (its record is the 100th action DynamoDB takes in one transaction); write ${writes.length} is one too many.`,
        at,
      );
    }
    const target = targetOf(action);
    const onRecord = (record: RecordItem | undefined) => record !== undefined && sameItem({ table: record.TableName, key: record.Key }, target);
    if (onRecord(this.ownRecord)) {
      throw new IdempotencyError(
        'TRANSACTION_INVALID',
        `transaction(): write ${writes.length} is on the item of this call's idempotency record, which its commit writes (DynamoDB takes one action per item in a transaction): keep the call's data in another item.`,
        at,
      );
    }
    // A condition check on it changes nothing: a nested call may commit only while its caller holds its record.
    if (action.ConditionCheck === undefined && this.outerRecords.some(onRecord)) {
      throw new IdempotencyError(
        'TRANSACTION_INVALID',
        `transaction(): write ${writes.length} is on the item of the idempotency record of a call this one is nested in, which would replace or remove that call's record: keep the call's data in another item.`,
        at,
      );
    }
    const same = writes.findIndex((write) => sameItem(targetOf(write), target));
    if (same >= 0) {
      throw new IdempotencyError(
        'TRANSACTION_INVALID',
        `transaction(): write ${writes.length} is on the item of write ${same}, and DynamoDB takes one action per item in a transaction: make them one write.`,
        at,
      );
    }
    writes.push(action);
    return this;
  }

  /**
   * A call run without idempotency has no record: no key and no owner to read, no transaction to
   * join. The message names every way to one, `httpIdempotency`'s too, whose users set no `onMissingKey`.
   */
  private assertKeyed(): void {
    if (this.call.mode === 'unkeyed') {
      throw new TypeError(
        'transaction(): this call runs without idempotency, so there is no record to commit writes with: its key is missing and onMissingKey is "skip", or, under httpIdempotency, the request has no Idempotency-Key and `required` is false, or its method is GET, HEAD, OPTIONS or TRACE. Write to DynamoDB yourself in such a call.',
      );
    }
  }

  private assertOpen(writing: boolean): void {
    const call = this.call;
    if (call.isEnded) throw new TypeError('transaction(): this idempotent call has already ended; its transaction is committed or discarded.');
    this.assertKeyed();
    if (writing && call.hasReturned) {
      throw new TypeError(
        "transaction(): this idempotent call's function has already returned, so a write added now is no part of its outcome: await the work that adds it before returning.",
      );
    }
    if (writing && !call.transactional) {
      throw new TypeError(
        "transaction(): the store of this idempotent call cannot commit writes with its record; use the DynamoDBStore of 'lambda-idempotency'.",
      );
    }
  }
}
