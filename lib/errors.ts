import { types } from 'node:util';
import type { IdempotencyRecord } from './store.js';

/**
 * Stable codes of {@link IdempotencyError}. Branch on these, never on message text (which starts with the code).
 *
 * - `IN_PROGRESS`: another attempt holds the record; retry after `retryAfterSeconds`.
 * - `PAYLOAD_MISMATCH`: the key was used before with a different payload fingerprint.
 * - `KEY_MISSING`: the key selector found no value (`undefined`, `null`, `''`, or an object or array of only those;
 *   a whole payload of such parts, with no selector, is a key; a whole payload that is itself `undefined`, `null`
 *   or `''` is not, and the message says so), or returned an object or array key with a
 *   top-level part `undefined`, which the message names: every call without that part would share one
 *   record. Select `null` for a part that may be absent.
 * - `INVALID_KEY`: the `key` or `fingerprint` selector threw, or what it selected cannot be hashed
 *   faithfully (BigInt, function, cycle, Map…), or the invocation's tenant id holds a lone surrogate
 *   (UTF-8 would write it as another tenant's id). From `httpIdempotency`, a 400: the
 *   `Idempotency-Key` header is malformed (sent twice, not 1 to 255 visible ASCII characters), or,
 *   with `signedKeys`, not issued with its secrets, expired or issued in the future; its other
 *   `INVALID_KEY`s (a `scope` value that cannot be hashed, the tenant id) are thrown, no 400.
 * - `STORE_FAILURE`: the store could not be reached, or answered unexpectedly (a record that fails
 *   decryption, say): at the claim, the handler did not run (in a durable execution: this invocation
 *   went no further, the execution's record is kept, and the error carries `isUnrecoverableInvocation`
 *   for the SDK to end the invocation, not the execution); in atomic mode, nothing was written.
 *   The `cause` is the store's error ({@link describeStoreFailure} names it); the message names it too,
 *   with, for a table that does not exist, the store's `tableName` and the fix, and for a missing
 *   grant, its action and table. `inspectRecord` and `forgetRecord` fail the same way.
 * - `SUPERSEDED`: this attempt's lease expired and another attempt took the record over; nothing was overwritten.
 *   `record` is the other attempt's, when the store returned it. Also the end of a `transaction()` commit that
 *   failed without an answer when its release finds the record taken over: the commit, fenced on this
 *   attempt's claim, never applied (nothing of the call was written), but the key is the other attempt's;
 *   its `cause` is the commit's failure, as a `COMMIT_FAILED`'s is.
 *   Also, without `record`, a `transaction()` commit that finds no record: it was deleted while the call ran
 *   (`forgetRecord` deletes a live attempt's) or, past this attempt's lease, as a rule taken over and released
 *   by another attempt (the message says which), so none of its writes was committed and the next call runs again.
 * - `RESPONSE_NOT_STORED`: the call completed, but its response could not be stored, so it cannot be replayed.
 * - `ERROR_NOT_STORED`: the call ended with a final error (`isFinalError`), which could not be stored (the
 *   key provider failed as it was sealed, say), so it cannot be replayed; the function does not run again. Unlike
 *   `RESPONSE_NOT_STORED`, the call did not succeed.
 * - `TRANSACTION_CONDITION_FAILED`: a condition of one of the call's own transaction writes failed
 *   (`actionIndex`, `tableName`); nothing was written and the record was released.
 * - `TRANSACTION_INVALID`: `transaction()` refused a write as it was added, thrown by the write itself
 *   (`actionIndex`, `tableName`: the 100th write of the call, its record being the 100th action, a
 *   write on an item another write of the call names, one on the call's own record or on the record of
 *   a call it is nested in, or an `ExpressionAttributeValues` value `undefined` that its expression
 *   uses); or DynamoDB refused the call's transaction as a
 *   whole (over 4 MB, two puts of one item, a malformed expression, a missing table or grant, which the
 *   message names: the tables it may be, or the grant's action and table), or one of its
 *   writes (`actionIndex`, `tableName`: a key of the wrong type, an item over 400 KB), or the call's
 *   puts exceed 4 MB and it was not sent; nothing was written, the record was released (for a write
 *   refused as it was added, when the function lets the error through). (A transaction
 *   that only its stored response takes over 4 MB commits without the response instead.)
 * - `TRANSACTION_CONFLICT`: the call's transaction kept being cancelled by concurrent writes to the
 *   same items (or by throttling) after a few retries; nothing was written and the record was
 *   released, so the same call can be retried after `retryAfterSeconds`. Unlike `IN_PROGRESS`, no
 *   other attempt holds the key.
 * - `COMMIT_FAILED`: the call's transaction failed without an answer (network, throttling). The
 *   record is then released, which proves nothing was written (the message says so, and
 *   `retryAfterSeconds` is 1) and frees the key; a commit found applied is no error; a release that finds
 *   the record taken over by another attempt (this one's lease ended) answers `SUPERSEDED` instead. Should the
 *   release fail too, the writes may or may not be applied and the record is left to its lease; a retry
 *   after it replays or re-runs.
 *
 * In a durable execution, a `COMMIT_FAILED` or `TRANSACTION_CONFLICT` releases nothing: the error is
 * marked `isUnrecoverableInvocation`, so that the invocation ends, not the execution, and the
 * execution's next invocation commits again or finds the commit applied.
 */
export type IdempotencyErrorCode =
  | 'IN_PROGRESS'
  | 'PAYLOAD_MISMATCH'
  | 'KEY_MISSING'
  | 'INVALID_KEY'
  | 'STORE_FAILURE'
  | 'SUPERSEDED'
  | 'RESPONSE_NOT_STORED'
  | 'ERROR_NOT_STORED'
  | 'TRANSACTION_CONDITION_FAILED'
  | 'TRANSACTION_INVALID'
  | 'TRANSACTION_CONFLICT'
  | 'COMMIT_FAILED';

/**
 * The HTTP status of each code, as `httpIdempotency` answers it and as {@link IdempotencyError}'s
 * `statusCode` carries it: 400 for a key the request lacks or gets wrong, 409 for a request that
 * conflicts with another one's, 422 for a key reused with another payload, 503 for a store or
 * transaction fault the same request may be retried after. A code missing here
 * (`TRANSACTION_INVALID`) is a fault of the code, a plain 500. @internal
 */
export const HTTP_STATUS: Readonly<Partial<Record<IdempotencyErrorCode, number>>> = {
  KEY_MISSING: 400,
  INVALID_KEY: 400,
  PAYLOAD_MISMATCH: 422,
  IN_PROGRESS: 409,
  SUPERSEDED: 409,
  RESPONSE_NOT_STORED: 409,
  ERROR_NOT_STORED: 409,
  TRANSACTION_CONDITION_FAILED: 409,
  STORE_FAILURE: 503,
  COMMIT_FAILED: 503,
  TRANSACTION_CONFLICT: 503,
};

/** The longest `Retry-After` an HTTP answer gives by default: a holder may finish long before its lease ends. @internal */
export const MAX_RETRY_AFTER_SECONDS = 60;

/** What an {@link IdempotencyError} carries beside its code and message; each becomes the field of the same name. */
export interface IdempotencyErrorOptions {
  /** The error that led to this one (the store's, the transaction's), as `Error.cause`. */
  readonly cause?: unknown;
  /**
   * With `IN_PROGRESS`: seconds until the holder's lease ends (its retention, for a record without a
   * lease); with `TRANSACTION_CONFLICT`: when to retry; with `COMMIT_FAILED`: 1, when the release
   * proved nothing was written (none when the outcome is unknown).
   */
  readonly retryAfterSeconds?: number | undefined;
  /** With `TRANSACTION_CONDITION_FAILED`, and `TRANSACTION_INVALID` for one write refused (by DynamoDB, or by `transaction()` as it was added): index of the action among the call's own writes. */
  readonly actionIndex?: number | undefined;
  /** With `TRANSACTION_CONDITION_FAILED`, and `TRANSACTION_INVALID` for one write refused (by DynamoDB, or by `transaction()` as it was added): the table of that action. */
  readonly tableName?: string | undefined;
  /** With `SUPERSEDED`: the record as the attempt that took over left it, when the store returned it. */
  readonly record?: IdempotencyRecord | undefined;
}

/** Marks an `IdempotencyError` of any copy of the package (a registered symbol is one across module instances). */
const BRAND = Symbol.for('lambda-idempotency.IdempotencyError');

const isBranded = (value: unknown): boolean => {
  try {
    return typeof value === 'object' && value !== null && Object.hasOwn(value, BRAND);
  } catch {
    return false; // a proxy whose trap throws is no error of ours
  }
};

/**
 * The one error type the library throws for idempotency outcomes, with a stable `code`.
 *
 * It also carries the fields of an HTTP error, which `@middy/http-error-handler` (and error
 * handlers written to the same convention) answer with: `statusCode`, `expose` and `headers`. So
 * behind `idempotency()` a duplicate still in progress is a 409 with `Retry-After`, another payload
 * under a used key a 422, a missing key a 400, with `message` as the body (it never holds a key, a
 * payload or a table name). Faults of the server keep their `message` private (`expose: false`):
 * the error handler answers them with its own 500.
 *
 * @example
 * ```ts
 * try {
 *   await chargeOnce(input);
 * } catch (error) {
 *   if (error instanceof IdempotencyError && error.code === 'IN_PROGRESS') {
 *     retryLater(error.retryAfterSeconds);
 *   } else throw error;
 * }
 * ```
 */
export class IdempotencyError extends Error {
  /**
   * `instanceof` also knows an `IdempotencyError` of another copy of the package in the same
   * application (a dependency's own, or a bundle of two versions) by the brand every instance
   * carries, so a branch on `code` works whichever copy threw. A subclass's check stays the prototype's.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class `instanceof` names, a subclass included.
    return Function.prototype[Symbol.hasInstance].call(this, value) || (this === IdempotencyError && isBranded(value));
  }

  /** Always `'IdempotencyError'`, also for an error replayed from another copy of the package. */
  override readonly name = 'IdempotencyError';
  /** What went wrong, stable across versions: branch on it, never on `message` (see docs/options.md, "Errors"). */
  readonly code: IdempotencyErrorCode;
  /**
   * With `IN_PROGRESS`: seconds until the holder's lease ends (its retention, for a record without a
   * lease); with `TRANSACTION_CONFLICT`: when to retry; with `COMMIT_FAILED`: 1, when the release
   * proved nothing was written (none when the outcome is unknown).
   */
  readonly retryAfterSeconds: number | undefined;
  /** With `TRANSACTION_CONDITION_FAILED`, and `TRANSACTION_INVALID` for one write refused: index of that write among the call's own writes. */
  readonly actionIndex: number | undefined;
  /** With `TRANSACTION_CONDITION_FAILED`, and `TRANSACTION_INVALID` for one write refused: the table of that write. */
  readonly tableName: string | undefined;
  /** With `SUPERSEDED`: the record as the attempt that took over left it, when the store returned it. */
  readonly record: IdempotencyRecord | undefined;
  /**
   * The HTTP status of the code, as `httpIdempotency` answers it: 400 `KEY_MISSING`, 409
   * `IN_PROGRESS`, `SUPERSEDED`, `RESPONSE_NOT_STORED`, `ERROR_NOT_STORED` and `TRANSACTION_CONDITION_FAILED`, 422
   * `PAYLOAD_MISMATCH`, 503 `STORE_FAILURE`, `COMMIT_FAILED` and `TRANSACTION_CONFLICT`. None for
   * `TRANSACTION_INVALID` and `INVALID_KEY`: outside `httpIdempotency`, whose header checks it
   * answers itself, `INVALID_KEY` means the key selector threw or selected a value that cannot be
   * hashed, and its message may name a path in that value.
   */
  readonly statusCode: number | undefined;
  /** Whether an HTTP error handler may send `message` to the client: for statuses below 500 only. */
  readonly expose: boolean;
  /** With a `statusCode` and a known `retryAfterSeconds`: `Retry-After`, at most 60 seconds (a holder may finish sooner). */
  readonly headers: Readonly<Record<string, string>> | undefined;

  /**
   * `message` is the sentence; the error's `message` starts with the code (`IN_PROGRESS: …`), which
   * is all that reaches a caller that sees only an error's type and message, such as a durable
   * execution's result.
   */
  constructor(code: IdempotencyErrorCode, message: string, options: IdempotencyErrorOptions = {}) {
    super(message.startsWith(`${code}: `) ? message : `${code}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    Object.defineProperty(this, BRAND, { value: true });
    this.code = code;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.actionIndex = options.actionIndex;
    this.tableName = options.tableName;
    this.record = options.record;
    this.statusCode = code === 'INVALID_KEY' ? undefined : HTTP_STATUS[code];
    this.expose = this.statusCode !== undefined && this.statusCode < 500;
    this.headers =
      this.statusCode === undefined || this.retryAfterSeconds === undefined
        ? undefined
        : { 'Retry-After': String(Math.min(this.retryAfterSeconds, MAX_RETRY_AFTER_SECONDS)) };
  }
}

/**
 * True when `error` is an {@link IdempotencyError}, optionally with the given code: narrowed to one
 * with that `code`, so that where it is false, an `IdempotencyError` of another code may still be.
 * A second argument that is no string is no code: as the callback of `errors.filter(isIdempotencyError)`
 * (or `find`, `some`, `every`), which passes each item's index, it tests for any `IdempotencyError`.
 * Never throws, whatever the value.
 */
export function isIdempotencyError(error: unknown): error is IdempotencyError;
// The code stays optional: `Parameters<typeof isIdempotencyError>` (a wrapper, a mock) reads this last overload.
export function isIdempotencyError<TCode extends IdempotencyErrorCode>(
  error: unknown,
  code?: TCode | undefined,
): error is IdempotencyError & { readonly code: TCode };
export function isIdempotencyError(error: unknown, code?: IdempotencyErrorCode): error is IdempotencyError {
  // Never throws: `instanceof` does on a value whose prototype cannot be read (a revoked Proxy),
  // which would replace the error a caller is handling with a TypeError.
  try {
    return error instanceof IdempotencyError && (typeof code !== 'string' || error.code === code);
  } catch {
    return false;
  }
}

/** Marks an error a write of `transaction()` (or `transition()`) threw as it was added, in any copy of the package. */
const CODE_FAULT = Symbol.for('lambda-idempotency.faultOfCode');

/**
 * `error`, marked as a fault of the code that added a write (a `Key` holding `undefined`, a `Date`
 * in an item, a missing expression): never a call's outcome, whatever `isFinalError` says, as
 * DynamoDB's refusal of such a write at the commit is not, so the corrected code runs. @internal
 */
export function faultOfCode(error: unknown): unknown {
  try {
    if (typeof error === 'object' && error !== null) Object.defineProperty(error, CODE_FAULT, { value: true });
  } catch {
    // an error that cannot be marked (frozen) is stored as `isFinalError` says
  }
  return error;
}

/** Whether `error` is a fault of the code that added a write (see {@link faultOfCode}). Never throws. @internal */
export function isFaultOfCode(error: unknown): boolean {
  try {
    return typeof error === 'object' && error !== null && Object.hasOwn(error, CODE_FAULT);
  } catch {
    return false; // a proxy whose trap throws
  }
}

/**
 * Whether `value` is an Error, also of another realm (a vm context; jest's sandbox meeting an
 * error Node made), which `instanceof` does not know. Never throws: `instanceof` does on a value
 * whose prototype cannot be read (a revoked Proxy), which is then no Error. @internal
 */
export function isAnyError(value: unknown): value is Error {
  if (types.isNativeError(value)) return true;
  try {
    return value instanceof Error;
  } catch {
    return false;
  }
}

/** An error name or system error code: letters, digits and `_ . -`, never free text that could hold a key or payload. */
const NAME = /^[A-Za-z][\w.-]{0,99}$/;
const GENERIC = new Set(['Error', 'AggregateError']);
const SYSTEM_CODE = /^E[A-Z0-9_]{1,40}$/;

/**
 * What a thrown value is, for a log line: an Error's name when it is a name (letters, digits and
 * `_ . -`), else `Error`; anything else, its type (`object`, `string`, `null`). A thrown value's
 * `name`, or an Error's name set to free text, may be data. Reads nothing more of a value whose
 * name or prototype cannot be read (a getter or a proxy trap that throws), and never throws. @internal
 */
export function errorTypeOf(error: unknown): string {
  const read = <T>(get: () => T): T | undefined => {
    try {
      return get();
    } catch {
      return undefined;
    }
  };
  if (!isAnyError(error)) return error === null ? 'null' : typeof error;
  const name = read(() => (error as Error).name);
  return typeof name === 'string' && NAME.test(name) ? name : 'Error';
}

/**
 * Names what made a store fail, for messages and log lines: the error's name (a DynamoDB
 * `ResourceNotFoundException` for a wrong table name, `AccessDeniedException` for a missing
 * grant, `ProvisionedThroughputExceededException`, `TimeoutError`), the system error code of a
 * network failure (`ECONNREFUSED`, which an SDK-wrapped network error keeps only in its message),
 * the code that begins a Redis error reply (`READONLY`, `MISCONF`, `OOM`: its first word, which
 * `RedisStore` reads), `Region is missing` for a client with no Region, `Region not accepted` for
 * one whose Region is no hostname label (a stray space or line end), or `Resolved credential object
 * is not valid` for one whose `credentials` lack their keys.
 * Never free text from a message, which may quote a key or a payload. Never throws: an error
 * whose members cannot be read is `Error`.
 *
 * @example
 * ```ts
 * describeStoreFailure(error.cause); // 'ResourceNotFoundException'
 * ```
 */
export function describeStoreFailure(error: unknown): string {
  // An error whose name, code or message cannot be read (a getter or a proxy trap that throws) is
  // named `Error`: naming a failure must never become the outcome of the call that met it.
  try {
    return storeFailureName(error);
  } catch {
    return 'Error';
  }
}

/**
 * Names a store gave the errors it met (a Redis error reply's code: `READONLY`, `MISCONF`, `OOM`),
 * read before the error's own name, which says only which client carried it (ioredis's
 * `ReplyError`, node-redis's plain `Error`). The error itself is left as it is.
 */
const givenNames = new WeakMap<object, string>();

/** Names `error` by `name` (letters, digits and `_ . -`) in messages and log lines, from now on. @internal */
export function nameStoreFailure(error: unknown, name: string): void {
  if (error !== null && typeof error === 'object' && NAME.test(name)) givenNames.set(error, name);
}

function storeFailureName(error: unknown): string {
  const { name, code, message } = (error !== null && typeof error === 'object' ? error : {}) as { name?: unknown; code?: unknown; message?: unknown };
  if (error instanceof IdempotencyError) return error.code;
  const given = error !== null && typeof error === 'object' ? givenNames.get(error) : undefined;
  if (given !== undefined) return given;
  const named = typeof name === 'string' && NAME.test(name) ? name : undefined;
  if (named !== undefined && !GENERIC.has(named)) return named;
  if (typeof code === 'string' && SYSTEM_CODE.test(code)) return code;
  // The SDK wraps a network error in a plain Error whose message alone keeps the system code.
  const wrapped =
    typeof message === 'string' && message.startsWith('AWS SDK error wrapper for ') ? /\b(E[A-Z][A-Z0-9_]{2,40})\b/.exec(message)?.[1] : undefined;
  if (wrapped !== undefined) return wrapped;
  // The SDK's plain Errors of configuration: no Region, met off Lambda (which always sets AWS_REGION),
  // credentials without their keys (read from variables that are not set), and a Region that is no
  // hostname label (a stray space or line end from a file): their fixed words name them.
  if (typeof message === 'string' && SDK_CONFIGURATION_FAULTS.has(message)) return message;
  if (typeof message === 'string' && message.startsWith(REGION_NOT_ACCEPTED)) return REGION_NOT_ACCEPTED;
  return named ?? 'Error';
}

/**
 * What messages say of a store's failures whose whole sentence this library wrote (RedisStore's
 * eviction-policy check: the policy found and the way out; a client not connected or never ready),
 * which quote no key or payload: a STORE_FAILURE that wraps one would otherwise say only
 * `(STORE_FAILURE)` or `(Error)`, and the sentence would reach no log that shows the message alone
 * (Lambda's log of an uncaught error: a `cause` is not in it). The error itself is left as it is.
 */
const givenDetails = new WeakMap<object, string>();

/** Names `error` by `detail`, a sentence without key or payload, in the messages of the errors that wrap it. @internal */
export function detailStoreFailure(error: object, detail: string): void {
  givenDetails.set(error, detail);
}

/** The whole messages of the SDK's plain Errors of configuration, met at each request. */
const SDK_CONFIGURATION_FAULTS: ReadonlySet<string> = new Set(['Region is missing', 'Resolved credential object is not valid']);

/** How the SDK's refusal of a Region that is no hostname label begins; the Region it quotes follows. */
const REGION_NOT_ACCEPTED = 'Region not accepted';
const REFUSED_REGION = /^Region not accepted: region="(.{0,64})" is not a valid hostname component\.$/s;

/**
 * DynamoDB's refusals of a record's key that its table is keyed otherwise (another name or type, a
 * sort key besides): in AWS (`Missing the key pk in the item`, `The provided key element does not
 * match the schema`, `Type mismatch for key`) and in DynamoDB Local (`One of the required keys was not given a value`).
 */
const KEY_SCHEMA_REFUSAL = /\bMissing the key |provided key element does not match the schema|Type mismatch for key|required keys was not given a value/;

/** The action and the table in DynamoDB's refusal for a missing grant: ARN characters only, never the role or the reason. */
const MISSING_GRANT =
  /not authorized to perform: (dynamodb:[A-Za-z]{1,40}) on resource: (arn:aws[a-z-]{0,20}:dynamodb:[a-z0-9-]{1,30}:\d{12}:table\/[\w.-]{3,255})/;

/**
 * {@link describeStoreFailure}, and the fix of the mistakes a new deployment meets first: for a
 * missing grant, the action and the table DynamoDB names (`AccessDeniedException:
 * dynamodb:UpdateItem on arn:…:table/idem`), the grant to add; for a table that does not exist,
 * the store's `table` (DynamoDB names neither it nor the Region it looked in) and where to set it;
 * for a Region the SDK refused, that Region, quoted; for a table keyed otherwise than the store's
 * records, the table and the option that names their key. @internal
 */
export function storeFailureDetail(error: unknown, table?: string): string {
  const given = error !== null && typeof error === 'object' ? givenDetails.get(error) : undefined;
  if (given !== undefined) return given;
  const name = describeStoreFailure(error);
  if (name === 'ResourceNotFoundException' && table) {
    return `${name}: no table ${table} in this account and Region; create it, or fix tableName or IDEMPOTENCY_TABLE`;
  }
  if (name !== 'AccessDeniedException' && name !== REGION_NOT_ACCEPTED && name !== 'ValidationException') return name;
  let message: unknown;
  try {
    message = (error as { message?: unknown }).message;
  } catch {
    return name;
  }
  if (name === REGION_NOT_ACCEPTED) {
    // The Region quoted, so that what the SDK refused in it (a space, a line end) shows.
    const region = REFUSED_REGION.exec(String(message));
    return region === null ? name : `${name}: ${JSON.stringify(region[1])} is no Region name; fix AWS_REGION or the client's region`;
  }
  if (name === 'ValidationException') {
    return table && typeof message === 'string' && KEY_SCHEMA_REFUSAL.test(message)
      ? `${name}: table ${table} is not keyed by attributes.key (default "id", a string) alone; set attributes.key to its partition key, or use a table keyed so`
      : name;
  }
  const grant = typeof message === 'string' ? MISSING_GRANT.exec(message) : null;
  return grant === null ? name : `${name}: ${grant[1]} on ${grant[2]}`;
}
