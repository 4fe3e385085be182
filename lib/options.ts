import type { ObservabilityOptions } from './observability.js';
import type { IdempotencyStore } from './store.js';

/** The part of a Lambda context the library reads. */
export interface LambdaContextLike {
  readonly functionName?: string;
  getRemainingTimeInMillis?(): number;
}

/** Receives bookkeeping failures that must not replace the caller's outcome. */
export interface IdempotencyLogger {
  warn(message: string): void;
  /** Used for poison batch records when present; `warn` otherwise. */
  error?(message: string): void;
}

/** Options shared by every entry point (middleware, wrapper, HTTP, batch). */
export interface IdempotencyOptions<TInput = unknown, TContext = LambdaContextLike> {
  /** Where records live, e.g. a {@link DynamoDBStore}. */
  readonly store: IdempotencyStore;
  /** Selects the idempotency key from the input. @default the whole input */
  readonly key?: (input: TInput, context: TContext | undefined) => unknown;
  /** Selects the payload a duplicate must match; a different one is rejected with `PAYLOAD_MISMATCH`. */
  readonly fingerprint?: (input: TInput) => unknown;
  /** Namespace of the records; callers with different names never share records. */
  readonly name?: string;
  /** Retention of a record, seconds. Must outlive every retry of the caller. @default 86400 */
  readonly expiresAfterSeconds?: number;
  /** What to do when the key selector finds no value. @default 'throw' */
  readonly onMissingKey?: 'throw' | 'skip';
  /** Keep up to this many completed records in memory, so repeated duplicates cost no request. @default 0 */
  readonly cacheSize?: number;
  /** Lease of an attempt made without a Lambda context (with one, the lease ends at its deadline). @default 60 */
  readonly leaseSeconds?: number;
  /** Clock, epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /** Where bookkeeping failures are reported (no payloads or keys are logged). @default console */
  readonly logger?: IdempotencyLogger;
  /**
   * Errors that are the call's final outcome (a declined card, a validation error): stored and
   * replayed to duplicates as an error with the same name, message and `code`. Other errors release
   * the record so a retry runs again. @default none: every error releases
   */
  readonly isFinalError?: (error: unknown) => boolean;
  /** Further fields of a final error to store and replay (e.g. `['statusCode']`). @default [] */
  readonly errorFields?: readonly string[];
  /**
   * One-round-trip mode for handlers whose only effects are the writes they add to `transaction()`:
   * the handler runs first, then one `TransactWriteItems` creates the COMPLETED record together with
   * those writes. A duplicate runs the handler again (it must be pure) and gets the stored outcome.
   * @default false
   */
  readonly atomic?: boolean;
  /**
   * Lets the function add DynamoDB writes to `transaction()`, committed with its record. It runs
   * each call in an AsyncLocalStorage, which costs every promise a little, so it is opt-in.
   * @default false (true with `atomic`)
   */
  readonly transactions?: boolean;
  /** Structured log lines and CloudWatch EMF metrics per event (misses, replays, takeovers, …). @default off */
  readonly observability?: ObservabilityOptions;
}

const OPTION_NAMES = [
  'store', 'key', 'fingerprint', 'name', 'expiresAfterSeconds', 'onMissingKey', 'cacheSize', 'leaseSeconds', 'now', 'logger', 'isFinalError', 'errorFields', 'atomic',
  'transactions', 'observability',
];

/** Throws a `TypeError` naming the first key of `options` that is not in `allowed`. @internal */
export function assertOptions(where: string, options: unknown, allowed: readonly string[]): void {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`${where}: options must be an object.`);
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new TypeError(`${where}: unknown option \`${key}\`. Known options: ${allowed.join(', ')}.`);
    }
  }
}

function optionalFunction(where: string, options: object, name: string): void {
  const value = (options as Record<string, unknown>)[name];
  if (value !== undefined && typeof value !== 'function') throw new TypeError(`${where}: \`${name}\` must be a function.`);
}

function positiveInteger(where: string, name: string, value: unknown, min = 1): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < min)) {
    throw new TypeError(`${where}: \`${name}\` must be a whole number, ${min} or more (got ${String(value)}).`);
  }
}

/** Validates the shared options at construction: unknown keys and bad values throw a `TypeError`. @internal */
export function validateOptions<TInput, TContext>(where: string, options: IdempotencyOptions<TInput, TContext>, extraOptionNames: readonly string[]): void {
  assertOptions(where, options, [...OPTION_NAMES, ...extraOptionNames]);
  const store = options.store as Partial<IdempotencyStore> | undefined;
  if (!store || typeof store.claim !== 'function' || typeof store.complete !== 'function' || typeof store.release !== 'function') {
    throw new TypeError(`${where}: \`store\` is required: a DynamoDBStore or another IdempotencyStore.`);
  }
  for (const name of ['key', 'fingerprint', 'now', 'isFinalError']) optionalFunction(where, options, name);
  if (options.errorFields !== undefined && (!Array.isArray(options.errorFields) || !options.errorFields.every((f) => typeof f === 'string'))) {
    throw new TypeError(`${where}: \`errorFields\` must be an array of property names.`);
  }
  if (options.atomic !== undefined && typeof options.atomic !== 'boolean') throw new TypeError(`${where}: \`atomic\` must be a boolean.`);
  if (options.transactions !== undefined && typeof options.transactions !== 'boolean') throw new TypeError(`${where}: \`transactions\` must be a boolean.`);
  if (options.transactions && typeof store.completeWithWrites !== 'function') {
    throw new TypeError(`${where}: \`transactions: true\` needs a store with transactions, such as DynamoDBStore.`);
  }
  if (options.atomic && typeof store.claimCompleted !== 'function') {
    throw new TypeError(`${where}: \`atomic: true\` needs a store with transactions, such as DynamoDBStore.`);
  }
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name.length === 0 || options.name.includes('#'))) {
    throw new TypeError(`${where}: \`name\` must be a non-empty string without '#'.`);
  }
  if (options.onMissingKey !== undefined && options.onMissingKey !== 'throw' && options.onMissingKey !== 'skip') {
    throw new TypeError(`${where}: \`onMissingKey\` must be 'throw' or 'skip'.`);
  }
  if (options.logger !== undefined && typeof options.logger?.warn !== 'function') {
    throw new TypeError(`${where}: \`logger\` must have a \`warn(message)\` method.`);
  }
  positiveInteger(where, 'expiresAfterSeconds', options.expiresAfterSeconds);
  positiveInteger(where, 'cacheSize', options.cacheSize, 0);
  positiveInteger(where, 'leaseSeconds', options.leaseSeconds);
}
