import type { IdempotencyRecord } from './store.js';

/**
 * Stable codes of {@link IdempotencyError}. Branch on these, never on message text (which starts with the code).
 *
 * - `IN_PROGRESS`: another attempt holds the record; retry after `retryAfterSeconds`.
 * - `PAYLOAD_MISMATCH`: the key was used before with a different payload fingerprint.
 * - `KEY_MISSING`: the key selector found no value (`undefined`, `null`, `''`, or an object or array of only those;
 *   a whole payload of such parts, with no selector, is a key).
 * - `INVALID_KEY`: the selected key cannot be hashed faithfully (BigInt, function, cycle, Map…).
 * - `STORE_FAILURE`: the store could not be reached, or answered unexpectedly (a record that fails
 *   decryption, say): at the claim, the handler did not run; in atomic mode, nothing was written.
 *   The `cause` is the store's error ({@link describeStoreFailure} names it).
 * - `SUPERSEDED`: this attempt's lease expired and another attempt took the record over; nothing was overwritten.
 * - `RESPONSE_NOT_STORED`: the call completed, but its response could not be stored, so it cannot be replayed.
 * - `TRANSACTION_CONDITION_FAILED`: a condition of one of the call's own transaction writes failed
 *   (`actionIndex`, `tableName`); nothing was written and the record was released.
 * - `TRANSACTION_INVALID`: DynamoDB refused the call's transaction as a whole (over 100 actions or
 *   4 MB, two actions on one item, a malformed expression, a missing table or grant), or the call's
 *   puts exceed 4 MB and it was not sent; nothing was written, the record was released. (A transaction
 *   that only its stored response takes over 4 MB commits without the response instead.)
 * - `TRANSACTION_CONFLICT`: the call's transaction kept being cancelled by concurrent writes to the
 *   same items (or by throttling) after a few retries; nothing was written and the record was
 *   released, so the same call can be retried after `retryAfterSeconds`. Unlike `IN_PROGRESS`, no
 *   other attempt holds the key.
 * - `COMMIT_FAILED`: the call's transaction failed without an answer (network, throttling). The
 *   record is then released, which proves nothing was written (the message says so, and
 *   `retryAfterSeconds` is 1) and frees the key; a commit found applied is no error. Should the release fail too, the writes may or may not
 *   be applied and the record is left to its lease; a retry after it replays or re-runs.
 */
export type IdempotencyErrorCode =
  | 'IN_PROGRESS'
  | 'PAYLOAD_MISMATCH'
  | 'KEY_MISSING'
  | 'INVALID_KEY'
  | 'STORE_FAILURE'
  | 'SUPERSEDED'
  | 'RESPONSE_NOT_STORED'
  | 'TRANSACTION_CONDITION_FAILED'
  | 'TRANSACTION_INVALID'
  | 'TRANSACTION_CONFLICT'
  | 'COMMIT_FAILED';

export interface IdempotencyErrorOptions {
  readonly cause?: unknown;
  /** With `IN_PROGRESS`: seconds until the holder's lease ends; with `TRANSACTION_CONFLICT`: when to retry. */
  readonly retryAfterSeconds?: number;
  /** With `TRANSACTION_CONDITION_FAILED`: index of the failed action among the call's own writes. */
  readonly actionIndex?: number;
  /** With `TRANSACTION_CONDITION_FAILED`: the table of the failed action. */
  readonly tableName?: string;
  /** With `SUPERSEDED`: the record as the attempt that took over left it, when the store returned it. */
  readonly record?: IdempotencyRecord;
}

/**
 * The one error type the library throws for idempotency outcomes, with a stable `code`.
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
  override readonly name = 'IdempotencyError';
  readonly code: IdempotencyErrorCode;
  readonly retryAfterSeconds: number | undefined;
  readonly actionIndex: number | undefined;
  readonly tableName: string | undefined;
  readonly record: IdempotencyRecord | undefined;

  /**
   * `message` is the sentence; the error's `message` starts with the code (`IN_PROGRESS: …`), which
   * is all that reaches a caller that sees only an error's type and message, such as a durable
   * execution's result.
   */
  constructor(code: IdempotencyErrorCode, message: string, options: IdempotencyErrorOptions = {}) {
    super(message.startsWith(`${code}: `) ? message : `${code}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.actionIndex = options.actionIndex;
    this.tableName = options.tableName;
    this.record = options.record;
  }
}

/** True when `error` is an {@link IdempotencyError}, optionally with the given code. */
export function isIdempotencyError(error: unknown, code?: IdempotencyErrorCode): error is IdempotencyError {
  return error instanceof IdempotencyError && (code === undefined || error.code === code);
}

/** An error name or system error code: letters, digits and `_ . -`, never free text that could hold a key or payload. */
const NAME = /^[A-Za-z][\w.-]{0,99}$/;
const GENERIC = new Set(['Error', 'AggregateError']);
const SYSTEM_CODE = /^E[A-Z0-9_]{1,40}$/;

/**
 * Names what made a store fail, for messages and log lines: the error's name (a DynamoDB
 * `ResourceNotFoundException` for a wrong table name, `AccessDeniedException` for a missing
 * grant, `ProvisionedThroughputExceededException`, `TimeoutError`), the system error code of a
 * network failure (`ECONNREFUSED`, which an SDK-wrapped network error keeps only in its message),
 * or `Region is missing` for a client with no Region.
 * Never free text from a message, which may quote a key or a payload.
 *
 * @example
 * ```ts
 * describeStoreFailure(error.cause); // 'ResourceNotFoundException'
 * ```
 */
export function describeStoreFailure(error: unknown): string {
  const { name, code, message } = (error !== null && typeof error === 'object' ? error : {}) as { name?: unknown; code?: unknown; message?: unknown };
  if (error instanceof IdempotencyError) return error.code;
  const named = typeof name === 'string' && NAME.test(name) ? name : undefined;
  if (named !== undefined && !GENERIC.has(named)) return named;
  if (typeof code === 'string' && SYSTEM_CODE.test(code)) return code;
  // The SDK wraps a network error in a plain Error whose message alone keeps the system code.
  const wrapped =
    typeof message === 'string' && message.startsWith('AWS SDK error wrapper for ') ? /\b(E[A-Z][A-Z0-9_]{2,40})\b/.exec(message)?.[1] : undefined;
  if (wrapped !== undefined) return wrapped;
  // The SDK's one plain Error of configuration, met off Lambda (which always sets AWS_REGION): its fixed message names it.
  if (message === 'Region is missing') return message;
  return named ?? 'Error';
}

/** The action and the table in DynamoDB's refusal for a missing grant: ARN characters only, never the role or the reason. */
const MISSING_GRANT =
  /not authorized to perform: (dynamodb:[A-Za-z]{1,40}) on resource: (arn:aws[a-z-]{0,20}:dynamodb:[a-z0-9-]{1,30}:\d{12}:table\/[\w.-]{3,255})/;

/**
 * {@link describeStoreFailure}, and for a missing grant the action and the table DynamoDB names
 * (`AccessDeniedException: dynamodb:UpdateItem on arn:…:table/idem`): the grant to add. @internal
 */
export function storeFailureDetail(error: unknown): string {
  const name = describeStoreFailure(error);
  const message = (error as { message?: unknown } | null)?.message;
  const grant = name === 'AccessDeniedException' && typeof message === 'string' ? MISSING_GRANT.exec(message) : null;
  return grant === null ? name : `${name}: ${grant[1]} on ${grant[2]}`;
}
