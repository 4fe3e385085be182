import { isNamespace } from './key.js';
import type { IdempotencyListener, ObservabilityOptions } from './observability.js';
import type { IdempotencyStore } from './store.js';

/** The part of a Lambda context the library reads. */
export interface LambdaContextLike {
  readonly functionName?: string;
  getRemainingTimeInMillis?(): number;
}

/**
 * Receives bookkeeping failures that must not replace the caller's outcome. A `warn` or `error`
 * that throws, or returns a promise that rejects, loses its line and changes nothing else.
 */
export interface IdempotencyLogger {
  warn(message: string): void;
  /**
   * Used, when present, for batch records reported failed: poison records, and records that failed
   * (`warn`: a key another consumer holds, records left unstarted at the deadline). A method, else a
   * `TypeError` at construction; without it, `warn`.
   */
  error?(message: string): void;
}

/**
 * Writes one JSON line through `logger`: `{ level, message: 'lambda-idempotency: <message>', ...fields }`,
 * with `error` when asked and present, else `warn`. A logger that throws, or whose promise
 * rejects, loses the line and nothing else: it is never the outcome of a call or a batch, nor an
 * unhandled rejection. @internal
 */
export function logLine(logger: IdempotencyLogger, level: 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): void {
  try {
    const line = JSON.stringify({ level: level.toUpperCase(), message: `lambda-idempotency: ${message}`, ...fields });
    const result: unknown = (logger[level] ?? logger.warn).call(logger, line);
    if (typeof (result as PromiseLike<unknown> | null)?.then === 'function') (result as PromiseLike<unknown>).then(undefined, () => undefined);
  } catch {
    // The line is lost; the outcome stays the function's.
  }
}

/**
 * Options of `idempotency` and `makeIdempotent`. `httpIdempotency` takes them all but `key`,
 * `fingerprint`, `onMissingKey` and `leaseSeconds`; `idempotentBatch` all but `onMissingKey`, with
 * its own `key` and `fingerprint`.
 */
export interface IdempotencyOptions<TInput = unknown, TContext = LambdaContextLike> {
  /** Where records live, e.g. a {@link DynamoDBStore}. */
  readonly store: IdempotencyStore;
  /**
   * Selects the idempotency key from the input. A key that is `undefined`, `null` or `''`, or an
   * object or array of only such parts, is missing (`onMissingKey`); so is an object or array key
   * with any top-level part `undefined` (`{ tenant, orderId }` of an event without `orderId`),
   * which every such call would otherwise share: select `null` for a part that may be absent.
   * The whole input suits an event that names its occurrence (an EventBridge, SNS or S3 event), not
   * one that two requests can send alike, such as a Cognito user pool trigger's (two sign-ins of one
   * user): the second would get the first's stored answer.
   * @default the whole input (a whole input's `undefined` members are dropped, as JSON drops them)
   */
  readonly key?: ((input: TInput, context: TContext | undefined) => unknown) | undefined;
  /** Selects the payload a duplicate must match; a different one is rejected with `PAYLOAD_MISMATCH`. @default none */
  readonly fingerprint?: ((input: TInput) => unknown) | undefined;
  /**
   * Namespace of the records; callers with different names never share records. Non-empty, without '#' or lone surrogates, at most 2,004 bytes of UTF-8.
   * @default the Lambda context's `functionName`, then `AWS_LAMBDA_FUNCTION_NAME` (else a `TypeError` at the call); `makeIdempotent` requires it
   */
  readonly name?: string | undefined;
  /**
   * Retention of a record, whole seconds, 1 to 9,000,000,000,000 (about 285,000 years). Must outlive every retry of the caller.
   * @default the store's default (`DynamoDBStore`: `IDEMPOTENCY_EXPIRES_AFTER_SECONDS`), else 86400
   */
  readonly expiresAfterSeconds?: number | undefined;
  /** What to do when the key selector finds no value. @default 'throw' */
  readonly onMissingKey?: 'throw' | 'skip' | undefined;
  /**
   * Keep up to this many completed records in memory, so repeated duplicates cost no request. A
   * record stays until its retention ends, even if deleted from the store (`forgetRecord`). Each
   * holds its outcome decompressed: a response stored compressed can be far larger than an item's
   * 400 KB, so budget memory by this many of the largest responses. A whole number, 0 or more. @default 0
   */
  readonly cacheSize?: number | undefined;
  /**
   * Lease of an attempt made without a Lambda context, outside any idempotent call that has one
   * (with one, the lease ends at its deadline; a context whose time left is 0, not a number, or more
   * than a `Date` can hold, such as a stub's `Infinity`, counts as none). Whole seconds, 1 to 9,000,000,000,000. @default 60
   */
  readonly leaseSeconds?: number | undefined;
  /** Clock, epoch milliseconds: a finite number (a `Date` or text is a `TypeError` at the call). @default Date.now */
  readonly now?: (() => number) | undefined;
  /** Where bookkeeping failures, warnings and a batch's failed records are reported (no payloads or keys are logged). @default console */
  readonly logger?: IdempotencyLogger | undefined;
  /**
   * Errors that are the call's final outcome (a declined card, a validation error): stored and
   * replayed to duplicates as an error with the same name, message and `code`. Other errors release
   * the record so a retry runs again, and so does an `IdempotencyError` that asks for a retry
   * (`IN_PROGRESS`, `SUPERSEDED`, `STORE_FAILURE`, `COMMIT_FAILED`, `TRANSACTION_CONFLICT`) or a
   * `TRANSACTION_INVALID` (a write `transaction()` refused: a fault of the code) whatever this says.
   * Only `true` counts: a promise (an `async` function) is taken as not final, with a warning.
   * @default none: every error releases
   */
  readonly isFinalError?: ((error: unknown) => boolean) | undefined;
  /** Further fields of a final error to store and replay (e.g. `['statusCode']`). @default [] */
  readonly errorFields?: readonly string[] | undefined;
  /**
   * One-round-trip mode for handlers whose only effects are the writes they add to `transaction()`:
   * the handler runs first, then one `TransactWriteItems` creates the COMPLETED record together with
   * those writes. A duplicate runs the handler again (it must be pure) and gets the stored outcome,
   * also when its run throws (on the first call's effect, say): that error, unless final, reads the
   * record once and is replaced by its outcome; with no record, the caller gets it.
   * @default false
   */
  readonly atomic?: boolean | undefined;
  /**
   * No effect with a store that has transactions (the `DynamoDBStore` of 'lambda-idempotency'): every
   * call can add writes to `transaction()`. With another store, `true` is a `TypeError` at
   * construction. Kept so that existing code compiles.
   * @deprecated `transaction()` works in every idempotent call whose store has transactions: remove the option.
   */
  readonly transactions?: boolean | undefined;
  /**
   * Receives each event (misses, replays, takeovers, …): `cloudWatchLines()` writes CloudWatch EMF
   * metrics and structured logs, or pass a listener of your own. The options object of
   * `cloudWatchLines` is still accepted here (metrics and logs off unless set) but deprecated: pass
   * `cloudWatchLines(options)`. @default off
   */
  readonly observability?: IdempotencyListener | ObservabilityOptions | undefined;
  /**
   * Concurrent calls with the same key in this process share one claim: duplicates wait for the
   * first call's outcome instead of getting `IN_PROGRESS`, while they can still answer before their
   * Lambda deadline. A call given a durable context waits only for a call of the same invocation of
   * its execution, and does so whatever this option says: both hold the record as the execution,
   * so the store cannot tell them apart. @default true
   */
  readonly singleFlight?: boolean | undefined;
  /**
   * How long a duplicate that meets another process's INPROGRESS record waits for it to complete,
   * counted from the call's start, also when it first followed an in-process duplicate (bounded
   * backoff, ending a tenth of the time left, at most 1 s, before the Lambda deadline), then
   * replays it; 0 answers `IN_PROGRESS` at once. Each poll is one conditional write. A whole number,
   * 0 or more. @default 0
   */
  readonly waitForInProgressMillis?: number | undefined;
  /**
   * Lease of a durable execution's record, whole seconds, 1 to 9,000,000,000,000: the execution holds its key
   * across suspensions and replays for this long, and the outcome of a call it completes is kept at
   * least as long from the call's claim (the execution's body makes the call again on every replay).
   * Never shorter than the time left in the invocation that claims the record (its Lambda deadline).
   * @default the retention
   */
  readonly durableLeaseSeconds?: number | undefined;
}

/** A check of one option's value: the sentence that says what is wrong, or `undefined`. */
export type OptionCheck = (value: unknown) => string | undefined;

/** @internal */
export const isFunction: OptionCheck = (value) => (typeof value === 'function' ? undefined : 'must be a function');
/** Any value: an option whose value is checked elsewhere, listed so that it is known. @internal */
export const anyValue: OptionCheck = () => undefined;
/** A string with at least one character. @internal */
export const isNonEmptyString: OptionCheck = (value) => (typeof value === 'string' && value.length > 0 ? undefined : 'must be a non-empty string');
/** @internal */
export const isBoolean: OptionCheck = (value) => (typeof value === 'boolean' ? undefined : 'must be a boolean');
/** A whole number from `min`, in `unit` when given ("a whole number of seconds, 1 or more"). @internal */
export const wholeNumber =
  (min: number, unit?: string): OptionCheck =>
  (value) =>
    typeof value === 'number' && Number.isSafeInteger(value) && value >= min
      ? undefined
      : `must be a whole number${unit === undefined ? '' : ` of ${unit}`}, ${min} or more (got ${typeof value === 'string' ? JSON.stringify(value) : typeof value === 'bigint' ? `${value}n, a BigInt` : String(value)})`;

/**
 * A retention or a lease: a whole number of seconds from 1 to 9e12 (about 285,000 years). RedisStore
 * gives a key a time to live in milliseconds, up to Number.MAX_SAFE_INTEGER, through the retention's
 * last second: a longer one fails every claim.
 */
const span: OptionCheck = (value) =>
  wholeNumber(1)(value) ?? ((value as number) > 9e12 ? `must be at most 9,000,000,000,000 seconds, about 285,000 years (got ${value})` : undefined);

/** Every shared option and its check: validation, the "known options" message and the entry points' subsets derive from it. */
const SHARED_CHECKS = {
  store: (value) => {
    const store = value as Partial<IdempotencyStore> | null | undefined;
    return typeof store?.claim === 'function' && typeof store.complete === 'function' && typeof store.release === 'function'
      ? undefined
      : 'is required: a DynamoDBStore or another IdempotencyStore';
  },
  key: isFunction,
  fingerprint: isFunction,
  name: (value) => (isNamespace(value) ? undefined : "must be a non-empty string without '#', at most 2,004 bytes of UTF-8, without lone surrogates"),
  expiresAfterSeconds: span,
  onMissingKey: (value) => (value === 'throw' || value === 'skip' ? undefined : "must be 'throw' or 'skip'"),
  cacheSize: wholeNumber(0),
  leaseSeconds: span,
  now: isFunction,
  // An `error` that is no function would lose every line sent to it (poison batch records), without a word.
  logger: (value) => {
    const { warn, error } = (value ?? {}) as { warn?: unknown; error?: unknown };
    return typeof warn === 'function' && (error === undefined || error === null || typeof error === 'function')
      ? undefined
      : 'must have a `warn(message)` method, and `error`, if it has one, must be a method too';
  },
  isFinalError: isFunction,
  errorFields: (value) => (Array.isArray(value) && value.every((field) => typeof field === 'string') ? undefined : 'must be an array of property names'),
  atomic: isBoolean,
  transactions: isBoolean,
  observability: (value) =>
    Array.isArray(value)
      ? 'must be one listener, not an array: to send the events to several, give one that calls each'
      : typeof value === 'function' || (value !== null && typeof value === 'object')
        ? undefined
        : 'must be a listener, such as `cloudWatchLines()`',
  singleFlight: isBoolean,
  waitForInProgressMillis: wholeNumber(0),
  durableLeaseSeconds: span,
} satisfies { readonly [K in keyof IdempotencyOptions]-?: OptionCheck };

/** The name of a shared option. */
export type SharedOptionName = keyof typeof SHARED_CHECKS;

/** Checks of an entry point's options: a subset of the shared ones, plus its own. @internal */
export function optionChecks(shared: readonly SharedOptionName[], own: Readonly<Record<string, OptionCheck>> = {}): Readonly<Record<string, OptionCheck>> {
  return { ...Object.fromEntries(shared.map((name) => [name, SHARED_CHECKS[name]])), ...own };
}

/** The shared options an entry point takes: all but those it derives itself. @internal */
export function sharedOptionsExcept<const K extends SharedOptionName>(excluded: readonly K[]): Exclude<SharedOptionName, K>[] {
  return (Object.keys(SHARED_CHECKS) as SharedOptionName[]).filter((name) => !(excluded as readonly SharedOptionName[]).includes(name)) as Exclude<
    SharedOptionName,
    K
  >[];
}

/** Throws a `TypeError` naming the first option of `options` that is not in `known`. @internal */
export function assertKnownOptions(where: string, options: object, known: readonly string[], member?: string): void {
  const unknown = Object.keys(options).find((name) => !known.includes(name));
  if (unknown === undefined) return;
  // The members of an option (`version` of transition()) are named by their path.
  const [name, of] = member === undefined ? [unknown, ''] : [`${member}.${unknown}`, ` of \`${member}\``];
  throw new TypeError(`${where}: unknown option \`${name}\`. Known options${of}: ${known.join(', ')}.`);
}

/**
 * Checks options against a table: an unknown name, or a value its check refuses, throws a
 * `TypeError` that names the option. Options left `undefined` are not checked, except `required` ones.
 * With `member`, the options are the members of that option (`observability` as an object), named by their path (`observability.logs`). @internal
 */
export function checkOptions(
  where: string,
  options: unknown,
  checks: Readonly<Record<string, OptionCheck>>,
  required: readonly string[] = [],
  member?: string,
): void {
  if (options === null || typeof options !== 'object')
    throw new TypeError(`${where}: ${member === undefined ? 'options' : `\`${member}\``} must be an object.`);
  const values = options as Record<string, unknown>;
  const known = Object.keys(checks);
  assertKnownOptions(where, values, known, member);
  for (const name of known) {
    if (values[name] === undefined && !required.includes(name)) continue;
    const problem = checks[name]!(values[name]);
    if (problem !== undefined) throw new TypeError(`${where}: \`${member === undefined ? name : `${member}.${name}`}\` ${problem}.`);
  }
}

/**
 * Validates an entry point's options at construction: an unknown key, a missing store or a bad
 * value throws a `TypeError` that names the option. Returns the values checked, read once: an
 * options object changed afterwards (reused to make the next function) changes nothing of what was
 * made with it. @internal
 */
export function validateOptions(where: string, options: unknown, checks: Readonly<Record<string, OptionCheck>> = SHARED_CHECKS): Record<string, unknown> {
  checkOptions(where, options, checks, ['store']);
  const values = options as Record<string, unknown>;
  const store = values.store as IdempotencyStore | undefined;
  // Either option needs the store method that commits the call's writes in its mode.
  const needsTransactions =
    values.transactions === true && typeof store?.completeWithWrites !== 'function'
      ? 'transactions'
      : values.atomic === true && typeof store?.claimCompleted !== 'function'
        ? 'atomic'
        : undefined;
  if (needsTransactions !== undefined) {
    throw new TypeError(`${where}: \`${needsTransactions}: true\` needs a store with transactions, such as the DynamoDBStore of 'lambda-idempotency'.`);
  }
  // An array (`errorFields`, read at every final error) is copied: one changed afterwards (pushed to for the next function) changes nothing.
  return Object.fromEntries(Object.keys(checks).map((name) => [name, Array.isArray(values[name]) ? [...values[name]] : values[name]]));
}
