import { type NativeAttributeValue, type NumberValue, NumberValueImpl } from '@aws-sdk/util-dynamodb';
import { faultOfCode } from './errors.js';
import { assertKnownOptions } from './options.js';
import type { TransactionUpdate } from './transaction.js';

/** Every parameter: a misspelt one (`versoin`) is refused rather than left unread, with the guard it meant. */
const PARAMETERS = ['TableName', 'Key', 'from', 'to', 'attribute', 'version', 'set', 'add', 'condition'] as const satisfies readonly (keyof TransitionParams)[];

/** The members of `version` and `condition`: a misspelt `attribute` would guard another attribute, a misspelt `values` be refused only at the commit. */
const NESTED_PARAMETERS = {
  version: ['attribute', 'expected'],
  condition: ['expression', 'names', 'values'],
} as const satisfies { readonly [P in 'version' | 'condition']: readonly (keyof NonNullable<TransitionParams[P]>)[] };

/** DynamoDB's limit on the operands of `IN`. */
const MAX_FROM_STATES = 100;

/** The parameters of {@link transition}: the item, the states it may leave, the state it enters, and what else to change or check. */
export interface TransitionParams {
  /** The table of the item. */
  readonly TableName: string;
  /** The item's key, in plain values (as lib-dynamodb takes them). */
  readonly Key: Record<string, NativeAttributeValue>;
  /** The states the item may be in; any other state (or no item) fails the condition. */
  readonly from: string | readonly string[];
  /** The state the item enters. */
  readonly to: string;
  /** The attribute that holds the state. @default 'status' */
  readonly attribute?: string | undefined;
  /** Optimistic concurrency: the item's version (`attribute`, default `'version'`) must equal `expected`; it is incremented. */
  readonly version?: { readonly attribute?: string | undefined; readonly expected: number } | undefined;
  /** Further attributes to set. */
  readonly set?: Record<string, NativeAttributeValue> | undefined;
  /** Numbers to add (e.g. `{ refunded: 25 }`; a `bigint` or a `NumberValue` beyond a double's precision), or elements to add to a set attribute. */
  readonly add?: Record<string, number | bigint | NumberValue | Set<string> | Set<number>> | undefined;
  /** A further condition: each placeholder its expression uses defined in its `names` or `values` (or one of the guard's own), each one they define used; its own must not start with `#t` or `:t`. */
  readonly condition?:
    | {
        readonly expression: string;
        readonly names?: Record<string, string> | undefined;
        readonly values?: Record<string, NativeAttributeValue> | undefined;
      }
    | undefined;
}

/**
 * A guarded state change (e.g. PAID → REFUNDED) as an update that applies only from the allowed
 * states, so a duplicate or out-of-order event fails its condition instead of applying twice.
 * Join it to the call's transaction, or send it as a lib-dynamodb `UpdateCommand`.
 *
 * @example
 * ```ts
 * transaction().update(transition({ TableName: 'payments', Key: { id }, from: 'PAID', to: 'REFUNDED' }));
 * ```
 */
export function transition(params: TransitionParams): TransactionUpdate {
  try {
    return guardedUpdate(params);
  } catch (error) {
    // A fault of the code that builds the write, never a call's outcome (see `transaction()`).
    throw faultOfCode(error);
  }
}

/** The update of {@link transition}. */
function guardedUpdate(params: TransitionParams): TransactionUpdate {
  if (params !== null && typeof params === 'object') {
    assertKnownOptions('transition', params, PARAMETERS);
    for (const [option, known] of Object.entries(NESTED_PARAMETERS)) {
      const value: unknown = params[option as keyof typeof NESTED_PARAMETERS];
      if (value !== null && typeof value === 'object') assertKnownOptions('transition', value, known, option);
    }
  }
  const from: unknown[] = typeof params?.from === 'string' ? [params.from] : Array.isArray(params?.from) ? [...params.from] : [];
  if (from.length === 0 || !from.every((state) => typeof state === 'string' && state.length > 0)) {
    throw new TypeError('transition: `from` must name at least one state.');
  }
  if (from.length > MAX_FROM_STATES)
    throw new TypeError(`transition: \`from\` names ${from.length} states; DynamoDB compares with at most ${MAX_FROM_STATES}.`);
  if (typeof params.to !== 'string' || params.to.length === 0) throw new TypeError('transition: `to` must be a state name.');
  const attribute = params.attribute ?? 'status';
  if (typeof attribute !== 'string' || attribute.length === 0) throw new TypeError('transition: `attribute` must be an attribute name.');
  const versionAttribute = params.version?.attribute ?? 'version';
  if (params.version && (typeof versionAttribute !== 'string' || versionAttribute.length === 0)) {
    throw new TypeError('transition: `version.attribute` must be an attribute name.');
  }
  // DynamoDB refuses an update that writes one attribute twice, or a key attribute, but only when
  // the transaction is sent, after the function returned: refused here, where the mistake is made.
  const written = new Map<string, string>(Object.keys(params.Key ?? {}).map((name) => [name, 'a key attribute']));
  const write = (name: string, role: string): void => {
    const earlier = written.get(name);
    if (earlier !== undefined)
      throw new TypeError(`transition: \`${name}\` is ${earlier} and ${role} too; an update writes an attribute once, and never a key attribute.`);
    written.set(name, role);
  };
  write(attribute, 'the state attribute');
  if (params.version) write(versionAttribute, 'the version attribute');
  for (const option of ['set', 'add'] as const) {
    for (const name of Object.keys(params[option] ?? {})) {
      if (name.length === 0) throw new TypeError(`transition: \`${option}\` names an attribute with an empty name.`);
      write(name, `in \`${option}\``);
    }
  }
  const names: Record<string, string> = { '#tState': attribute };
  const values: Record<string, NativeAttributeValue> = { ':tTo': params.to };
  const set = ['#tState = :tTo'];
  const conditions = [`#tState IN (${from.map((state, i) => ((values[`:tFrom${i}`] = state), `:tFrom${i}`)).join(', ')})`];
  if (params.version) {
    // Past 2^53 a double has no exact next number: the update would write the version it expects, and never move the guard.
    const expected = params.version.expected;
    if (!Number.isSafeInteger(expected) || expected === Number.MAX_SAFE_INTEGER) {
      throw new TypeError('transition: `version.expected` must be a whole number from Number.MIN_SAFE_INTEGER to Number.MAX_SAFE_INTEGER - 1.');
    }
    names['#tVersion'] = versionAttribute;
    values[':tVersion'] = params.version.expected;
    values[':tNext'] = params.version.expected + 1;
    set.push('#tVersion = :tNext');
    conditions.push('#tVersion = :tVersion');
  }
  // An undefined value would be left out of the values, and DynamoDB refuse the update for a placeholder the caller never wrote.
  const defined = (option: 'set' | 'add', name: string, value: unknown): void => {
    if (value === undefined) throw new TypeError(`transition: \`${option}.${name}\` is undefined; leave the attribute out, or give it a value.`);
  };
  Object.entries(params.set ?? {}).forEach(([name, value], i) => {
    defined('set', name, value);
    names[`#tSet${i}`] = name;
    values[`:tSet${i}`] = value;
    set.push(`#tSet${i} = :tSet${i}`);
  });
  const add = Object.entries(params.add ?? {}).map(([name, amount], i) => {
    defined('add', name, amount);
    // DynamoDB's ADD takes a number or a set; a body's "25" would be refused only at the commit,
    // after the function ran (and moved the money).
    const adds =
      (typeof amount === 'number' && Number.isFinite(amount)) ||
      typeof amount === 'bigint' ||
      amount instanceof NumberValueImpl ||
      (amount instanceof Set && amount.size > 0);
    if (!adds)
      throw new TypeError(`transition: \`add.${name}\` must be a finite number (or a bigint or NumberValue), or a non-empty set to add to a set attribute.`);
    names[`#tAdd${i}`] = name;
    values[`:tAdd${i}`] = amount;
    return `#tAdd${i} :tAdd${i}`;
  });
  const condition: unknown = params.condition;
  if (
    condition !== undefined &&
    condition !== null &&
    (typeof condition !== 'object' ||
      typeof (condition as { expression?: unknown }).expression !== 'string' ||
      (condition as { expression: string }).expression.trim() === '')
  ) {
    throw new TypeError('transition: `condition` must be an object with an `expression`, not empty (and the `names` and `values` it uses).');
  }
  if (params.condition) {
    // A clash would silently replace one of the guard's own placeholders, and with it the guard.
    const clash = [...Object.keys(params.condition.names ?? {}), ...Object.keys(params.condition.values ?? {})].find((p) => p in names || p in values);
    if (clash !== undefined) throw new TypeError(`transition: the condition's placeholder \`${clash}\` is one transition() uses itself; rename it.`);
    conditions.push(`(${params.condition.expression})`);
    Object.assign(names, params.condition.names);
    Object.assign(values, params.condition.values);
    // DynamoDB refuses a placeholder the expression uses that nothing defines, and one the condition
    // defines that no expression uses, but only when the transaction is sent, after the function ran.
    // One that holds `undefined` is left out when sent (the SDK leaves out such a name, transaction()
    // such a value): it defines nothing, so it is never unused (a value so that the expression uses
    // is transaction()'s TRANSACTION_INVALID, as in any write).
    const used = new Set(params.condition.expression.match(/[#:][A-Za-z0-9_]+/g));
    const missing = [...used].find((p) => (p.startsWith('#') ? names[p] === undefined : !Object.hasOwn(values, p)));
    if (missing !== undefined) {
      const map = missing.startsWith('#') ? 'names' : 'values';
      throw new TypeError(`transition: the condition uses \`${missing}\`, which its \`${map}\` do not define.`);
    }
    for (const map of ['names', 'values'] as const) {
      const defined = Object.entries(params.condition[map] ?? {}).filter(([, value]) => value !== undefined);
      const unused = defined.map(([p]) => p).find((p) => !used.has(p));
      if (unused !== undefined)
        throw new TypeError(
          `transition: the condition's \`${map}\` define \`${unused}\`, which its expression does not use; DynamoDB refuses a placeholder left unused.`,
        );
    }
  }
  return {
    TableName: params.TableName,
    Key: params.Key,
    UpdateExpression: `SET ${set.join(', ')}${add.length > 0 ? ` ADD ${add.join(', ')}` : ''}`,
    ConditionExpression: conditions.join(' AND '),
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  };
}
