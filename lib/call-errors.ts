/*
 * The errors of a call: a store's answers the protocol cannot read, its failures, errors that ask
 * for the same call again, and a commit that failed.
 */
import { describeStoreFailure, detailStoreFailure, IdempotencyError } from './errors.js';
import { type StoredKind, storedValueOf, UnreadableRecordError } from './response-codec.js';
import type { ClaimResult, CompleteResult } from './store.js';

/**
 * A store's claim answer (`claimCompleted`'s too) the protocol can read: `claimed: true`, or the
 * live record, INPROGRESS or COMPLETED, that refused the claim. Any other (`{ claimed: false }`
 * alone, nothing, a status the protocol does not have) cannot say whether the call may run: it
 * fails as the claim's request would, naming the store's mistake.
 * @internal
 */
export function claimAnswer(claim: ClaimResult): ClaimResult {
  const status = (claim as { record?: { status?: unknown } } | undefined)?.record?.status;
  if (claim?.claimed === true || (claim?.claimed === false && (status === 'INPROGRESS' || status === 'COMPLETED'))) return claim;
  throw misanswered('its claim answered neither `claimed: true` nor the record, INPROGRESS or COMPLETED, that refused it');
}

/**
 * A store's completion answer (`completeWithWrites`'s too) the protocol can read: `completed` true
 * or false. Any other cannot say whether the record completed: it fails as the completion's request would.
 * @internal
 */
export function completeAnswer(result: CompleteResult): CompleteResult {
  if (typeof result?.completed === 'boolean') return result;
  throw misanswered('its completion answered neither `completed: true` nor `completed: false`');
}

/** The error for a store's answer the protocol has no reading of: messages that wrap it say `detail`. */
function misanswered(detail: string): TypeError {
  const error = new TypeError(`The idempotency store broke its contract: ${detail}.`);
  detailStoreFailure(error, detail);
  return error;
}

const DURABLE_ENDS = "this invocation of the durable execution ends here, and the execution's record is kept for the invocation that resumes it";

/**
 * The rejection of a call the store failed before its function ran (`detail` names the failure):
 * it fails closed (`after` says what became of the call, when not that). In a `durable` execution, its invocation ends (`isUnrecoverableInvocation`,
 * read by the durable execution SDK) and the execution goes on in another, which replays the
 * steps that ran and resumes on the execution's record.
 * @internal
 */
export function storeFailure(detail: string, cause: unknown, durable = false, after = durable ? DURABLE_ENDS : 'the function did not run'): IdempotencyError {
  const error = new IdempotencyError('STORE_FAILURE', `The idempotency store failed (${detail}); ${after}.`, { cause });
  return durable ? resumable(error) : error;
}

/**
 * `error`, marked `isUnrecoverableInvocation`: the durable execution SDK then ends the invocation,
 * not the execution, and the durable service invokes the execution again.
 * @internal
 */
export const resumable = (error: IdempotencyError): IdempotencyError => Object.assign(error, { isUnrecoverableInvocation: true });

/**
 * Codes of an error that asks for the same call again (a nested call meeting a holder or taken over
 * by another attempt, a store outage, a commit without an answer): stored as a final error, it would
 * answer every retry until the retention ends, where the retry would find the nested call's outcome
 * or run. It is never an outcome, whatever `isFinalError` says.
 */
const RETRY_CODES: ReadonlySet<string> = new Set(['IN_PROGRESS', 'SUPERSEDED', 'STORE_FAILURE', 'COMMIT_FAILED', 'TRANSACTION_CONFLICT']);

/**
 * Names of Powertools' errors, met while a function runs behind both libraries during a cutover
 * (docs/migrating-from-powertools.md), that are no outcome of the function: its refusals of the
 * request (another invocation runs it, another payload holds the key, no key, a record it cannot
 * read), as this library's own `IN_PROGRESS` and `PAYLOAD_MISMATCH` are not. Stored, one would
 * answer every retry until the retention ends, where the retry would get Powertools' answer or run:
 * a refusal of another payload, stored with that payload's fingerprint, would refuse the original
 * request's own retry. Its cache layer (Redis) throws the last two unwrapped when another attempt
 * holds the lock to recover an orphaned record and the record it reads next is gone or unreadable.
 */
const RETRY_NAMES: ReadonlySet<string> = new Set([
  'IdempotencyAlreadyInProgressError',
  'IdempotencyValidationError',
  'IdempotencyKeyError',
  'IdempotencyInvalidStatusError',
  'IdempotencyInconsistentStateError',
  'IdempotencyItemNotFoundError',
  'IdempotencyPersistenceConsistencyError',
]);

/**
 * Powertools' failure to claim its record (its `IdempotencyPersistenceLayerError` of 2.x, told from
 * its failure to complete or delete one by its message): the function did not run, as with this
 * library's `STORE_FAILURE`. Its failure to complete one, after the function ran, is left to
 * `isFinalError`: stored, it answers the retry that would otherwise run the function again.
 */
const POWERTOOLS_CLAIM_FAILED = /^Failed to save in progress record/;

/**
 * Throws on a value whose prototype cannot be read (a revoked Proxy), which `#isFinal` takes as not
 * final; an error whose `name` cannot be read is judged by `isFinalError`, as any other.
 * @internal
 */
export const asksForRetry = (error: unknown): boolean => {
  if (error instanceof IdempotencyError) return RETRY_CODES.has(error.code);
  if (!(error instanceof Error)) return false;
  try {
    return RETRY_NAMES.has(error.name) || (error.name === 'IdempotencyPersistenceLayerError' && POWERTOOLS_CLAIM_FAILED.test(error.message));
  } catch {
    return false;
  }
};

/**
 * Whether `error` ends a durable execution's invocation only (the durable execution SDK's test,
 * without its classes). A thrown value whose prototype cannot be read (a revoked Proxy) does not:
 * `instanceof` throws on it, which would replace the caller's error and leave its followers waiting. @internal
 */
export const isResumable = (error: unknown): boolean => {
  try {
    return error instanceof Error && (error as { isUnrecoverableInvocation?: unknown }).isUnrecoverableInvocation === true;
  } catch {
    return false;
  }
};

/**
 * A stored outcome of record `key`, parsed; one that is not JSON (an item written by hand, say)
 * fails closed, as one that cannot be decrypted does, with a cause that names the record for an
 * operator to inspect or forget it by. `ran`: met by an atomic call after its function ran (at its commit, or reading the record after a failure), which the message says.
 * @internal
 */
export function parseStored<T>(key: string, kind: StoredKind, parse: () => T, ran = false): T {
  try {
    return parse();
  } catch {
    // Not chained to JSON.parse's error, whose message quotes the stored text: the function's outcome, never logged.
    const unreadable = new UnreadableRecordError(`${storedValueOf({ recordKey: key, kind })} is not ${kind === 'error' ? 'the JSON of an error' : 'JSON'}.`);
    const detail = `${describeStoreFailure(unreadable)}: a stored outcome that is not JSON`;
    throw ran ? storeFailure(detail, unreadable, false, 'the function ran, and nothing of this call was written') : storeFailure(detail, unreadable);
  }
}

/**
 * The error of a commit that failed; `settled`: its record was released since (or found taken over
 * or gone), so it never applied; `durable`: unsettled, its durable execution's next invocation settles it.
 * @internal
 */
export const commitError = (error: unknown, settled = false, durable = false): IdempotencyError =>
  error instanceof IdempotencyError
    ? error
    : settled
      ? new IdempotencyError(
          'COMMIT_FAILED',
          `The transaction with the call's writes failed (${describeStoreFailure(error)}); nothing was written, and this call holds the key no more.`,
          { cause: error, retryAfterSeconds: 1 },
        )
      : new IdempotencyError(
          'COMMIT_FAILED',
          `The transaction with the call's writes could not be confirmed; ${durable ? 'this invocation of the durable execution ends here, and the one that resumes it commits them or finds them applied' : 'they may or may not be applied'}.`,
          { cause: error },
        );
