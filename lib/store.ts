import type { AttributeValue, TransactWriteItem } from '@aws-sdk/client-dynamodb';

/**
 * The storage contract of the record protocol (see docs/how-it-works.md). Every write is
 * conditional; a store never reads before it writes. `DynamoDBStore` and `RedisStore` are the
 * production stores; any object with the three required methods (claim, complete, release) can
 * stand in (`InMemoryStore` in tests, another database); the optional ones serve transactions,
 * atomic mode and the operations tools.
 */

export type RecordStatus = 'INPROGRESS' | 'COMPLETED';

/** The start of the owner of a durable execution's records, the same in every invocation of it. @internal */
export const DURABLE_OWNER = 'durable:';

/**
 * The retention (epoch seconds) a claim gives a record that has none (written by hand, or by an
 * older version), which would otherwise hold its key forever: the claim's `expiresAt`, or the end of
 * the record's lease (epoch milliseconds, `NaN` when it has none) if later. @internal
 */
export const adoptedRetention = (expiresAt: number, leaseUntil: number): number =>
  Number.isFinite(leaseUntil) ? Math.max(expiresAt, Math.ceil(leaseUntil / 1000)) : expiresAt;

/**
 * Where a DynamoDB store keeps one record: the item a transaction names by `TableName` and `Key`.
 *
 * @example
 * ```ts
 * const item: RecordItem = { TableName: 'idempotency', Key: { id: { S: 'pay#3f2a…' } } };
 * ```
 */
export interface RecordItem {
  readonly TableName: string;
  readonly Key: Readonly<Record<string, AttributeValue>>;
}

/** One idempotency record as the store holds it. */
export interface IdempotencyRecord {
  /** `<namespace>#<hash>`. */
  readonly key: string;
  /** INPROGRESS while an attempt holds the record; COMPLETED once its outcome is stored. */
  readonly status: RecordStatus;
  /** Epoch seconds after which the record may be forgotten (the retention). */
  readonly expiresAt: number;
  /** Epoch milliseconds; only while INPROGRESS: after it, another attempt may take over. */
  readonly leaseUntil?: number;
  /** The token of the attempt that holds (or completed) the record: random, or derived from a durable execution's identity. */
  readonly owner: string;
  /** Hash of the payload-validation selection, when the caller configured one. */
  readonly fingerprint?: string;
  /** JSON text of the stored result; absent when the result was `undefined`. */
  readonly response?: string;
  /** True when the call completed but its result could not be stored (too large, not serialisable). */
  readonly responseOmitted?: boolean;
  /**
   * True, with `responseOmitted`, when what could not be stored was a final error (the key provider
   * failed as it was sealed): the call did not succeed. A store that never writes it reads such a
   * record as a success whose response was not stored.
   */
  readonly errorOmitted?: boolean;
  /** JSON of a final error (`{ name, message, code?, … }`) replayed to duplicates instead of a response. */
  readonly error?: string;
}

/** What `claim` asks of a store: create the record of `key`, INPROGRESS and held by `owner`, unless a live one exists. */
export interface ClaimRequest {
  /** The record's key, `<namespace>#<hash>`, compared exactly. */
  readonly key: string;
  /** The token of the attempt: `complete` and `release` apply only with it. */
  readonly owner: string;
  /** Hash of the payload-validation selection, to keep on the record; absent when the caller configured none. */
  readonly fingerprint?: string;
  /** Epoch milliseconds: the end of the attempt's lease, after which another attempt may take the record over. */
  readonly leaseUntil: number;
  /** Epoch seconds: the record's retention (never earlier than the lease), as a DynamoDB TTL counts it. */
  readonly expiresAt: number;
  /** The caller's clock, epoch milliseconds: records whose lease or retention ended before it are taken over. */
  readonly now: number;
}

/**
 * `claimed: true` may carry the record the claim replaced (expired, or INPROGRESS past its lease),
 * and, for `claimCompleted`, whether the response could be stored (`sealFailure` and `storedError`
 * as in {@link CompleteResult});
 * `claimed: false` carries the live record that blocked the claim (it may be the caller's own, after
 * a retried request or a durable execution's replay: a COMPLETED one stays COMPLETED).
 */
export type ClaimResult =
  | {
      readonly claimed: true;
      readonly previous?: IdempotencyRecord;
      readonly responseStored?: boolean;
      readonly sealFailure?: unknown;
      readonly storedError?: string;
    }
  | { readonly claimed: false; readonly record: IdempotencyRecord };

/** What `complete` asks of a store: the record of `key`, while INPROGRESS and held by `owner`, becomes COMPLETED with the outcome. */
export interface CompleteRequest {
  /** The record's key, `<namespace>#<hash>`. */
  readonly key: string;
  /** The token of the attempt that claimed the record. */
  readonly owner: string;
  /** Epoch seconds: the completed record's retention. */
  readonly expiresAt: number;
  /** JSON text of the result; `undefined` for an `undefined` result. */
  readonly response: string | undefined;
  /** The result exists but cannot be stored: complete the record without it. */
  readonly responseOmitted?: boolean;
  /** JSON of a final error to store instead of a response. */
  readonly error?: string;
  /**
   * The caller's clock, epoch milliseconds, that set `expiresAt`: a store whose keys expire by
   * themselves (Redis) counts the time left from it, so the server's clock neither shortens nor
   * stretches the retention. @default the store's own clock
   */
  readonly now?: number;
  /**
   * When (`performance.now()`) a store that encrypts outcomes stops waiting for the key to seal
   * this one with: the record then completes without it, as when the key provider fails, rather
   * than not at all. @default no bound
   */
  readonly sealBy?: number;
  /**
   * When (`performance.now()`) the call must answer: a store that sends its completion again after
   * a transient failure (a throttle, a server fault, a lost connection) starts no resend after it.
   * @default the store's own bound
   */
  readonly resendBy?: number;
}

/** A claim that creates the record already COMPLETED (one-round-trip mode). */
export interface ClaimCompletedRequest extends Omit<ClaimRequest, 'leaseUntil'>, Omit<CompleteRequest, 'key' | 'owner' | 'expiresAt' | 'now' | 'resendBy'> {}

/**
 * `completed: true` when the record is now COMPLETED by this owner (`responseStored: false` when the
 * store had to omit the response; `sealFailure`, the key provider's error, when it omitted it for
 * want of a key to encrypt it with; `storedError`, the final error as stored, when the store had to
 * cut it short). Otherwise the current record, if any, which the condition refused: the caller's own
 * COMPLETED record (a retried completion) with its outcome as stored (`error`, `responseOmitted`,
 * `errorOmitted`).
 */
export type CompleteResult =
  | { readonly completed: true; readonly responseStored: boolean; readonly sealFailure?: unknown; readonly storedError?: string }
  | { readonly completed: false; readonly record: IdempotencyRecord | undefined };

/** What `release` asks of a store: delete the record of `key` while it is INPROGRESS and held by `owner` (the call failed and may run again). */
export interface ReleaseRequest {
  /** The record's key, `<namespace>#<hash>`. */
  readonly key: string;
  /** The token of the attempt that claimed the record. */
  readonly owner: string;
  /**
   * When (`performance.now()`) the call must answer: a store that sends its release again after a
   * transient failure (a throttle, a server fault, a lost connection) starts no resend after it.
   * @default the store's own bound
   */
  readonly resendBy?: number;
  /**
   * Given when the call's claim failed, with its error: the release frees what that claim may have
   * applied although its answer was lost. A store that can tell from it that the claim ran nothing
   * sends the release once (Redis refused it for now: `LOADING`, `BUSY`) or not at all (DynamoDB
   * refused its every attempt with a 4xx: throttled, a missing grant), and one whose client is
   * still away since the claim failed does not wait for it: either would only hold the call's
   * failure. @default absent: the call held its record (its function ran, or was abandoned)
   */
  readonly claimFailure?: unknown;
}

/** `released: false` carries the record that is held by someone else and was left untouched. */
export type ReleaseResult = { readonly released: true } | { readonly released: false; readonly record: IdempotencyRecord | undefined };

/**
 * A store for idempotency records. Implementations must make each operation one atomic,
 * conditional write:
 * - `claim` creates an INPROGRESS record unless a live one exists (not expired, and either
 *   COMPLETED or INPROGRESS within its lease), and otherwise returns that record; a record it
 *   replaces is replaced whole (no fingerprint, response or error of it survives);
 * - `complete` and `release` apply only while the record is INPROGRESS and held by `owner`, whatever
 *   its lease: an attempt past its lease that no other attempt took over still completes.
 * Keys are compared exactly: every character, case included (the library's keys take up to 2,048 bytes).
 *
 * @example
 * ```ts
 * const store: IdempotencyStore = new DynamoDBStore({ tableName: 'idempotency' });
 * ```
 */
export interface IdempotencyStore {
  /**
   * Optional: the retention, seconds, for calls whose options set none (e.g. from the deployment's
   * environment). `undefined` as a value too: a store given no retention says so. Any other value
   * must be a whole number, 1 or more: else building an entry point that would use it is a `TypeError`.
   */
  readonly expiresAfterSeconds?: number | undefined;
  /** Optional: the table the records are kept in, which a `STORE_FAILURE` for a table that does not exist names. */
  readonly tableName?: string | undefined;
  /** Creates the record INPROGRESS for `request.owner` unless a live one exists, which it then returns. */
  claim(request: ClaimRequest): Promise<ClaimResult>;
  /** Stores the outcome (COMPLETED), only while the record is INPROGRESS and held by `request.owner`. */
  complete(request: CompleteRequest): Promise<CompleteResult>;
  /** Deletes the record, only while it is INPROGRESS and held by `request.owner`. */
  release(request: ReleaseRequest): Promise<ReleaseResult>;
  /**
   * Optional, for `transaction()`: `complete` and the call's own writes in one atomic transaction.
   * Throws a `TRANSACTION_CONDITION_FAILED`, `TRANSACTION_INVALID` or `TRANSACTION_CONFLICT`
   * {@link IdempotencyError} when nothing was written; any other error leaves the outcome unknown.
   */
  completeWithWrites?(request: CompleteRequest, writes: readonly TransactWriteItem[]): Promise<CompleteResult>;
  /** Optional, for `atomic: true`: `claim` of a COMPLETED record and the call's writes in one transaction. */
  claimCompleted?(request: ClaimCompletedRequest, writes: readonly TransactWriteItem[]): Promise<ClaimResult>;
  /**
   * Optional, for `transaction()`: the table and the key (AttributeValues) of the item that holds
   * record `key`. A write a call adds on its own record's item, which its commit already writes, is
   * then refused as it is added; without it, DynamoDB refuses the commit.
   */
  recordItem?(key: string): RecordItem;
  /**
   * Optional, for `atomic: true`: the record of `key` as it is stored now (a strongly consistent
   * read that changes nothing, but for `expiresAt` below), its outcome decoded, whatever its retention; `undefined` when there
   * is none. Read only when an atomic call's function throws an error that is not final: a
   * duplicate whose run fails on the first call's effect gets the first call's stored outcome.
   * Without it, that caller gets its function's error.
   *
   * `expiresAt` (epoch seconds, optional): the retention the call's commit would have written. A
   * record without a retention (written by hand, or by an older version) gets it as `claimCompleted`
   * gives it (never earlier than its lease, as a claim gives it one), by one write conditioned
   * on the retention still missing, and is returned with it: it then replays, as the commit would
   * have replayed it. A store written without the parameter keeps working and reads such a record
   * as before (a read that throws leaves the caller its function's error).
   */
  read?(key: string, expiresAt?: number): Promise<IdempotencyRecord | undefined>;
  /** Optional, for operations tools (`inspectRecord`): the record's state, never its stored response. */
  inspect?(key: string): Promise<RecordSummary | undefined>;
  /**
   * Optional, for operations tools (`forgetRecord`): deletes the record, only while its status is
   * `onlyIf` when given, and with `leaseUntil` only while it is INPROGRESS with exactly that lease
   * end: the attempt an operator saw, since a takeover needs the lease to have ended and sets a
   * later one. `true` when a record was deleted.
   */
  forget?(key: string, onlyIf?: RecordStatus, leaseUntil?: number): Promise<boolean>;
  /**
   * Optional: `true` when `forget` honours `leaseUntil`. The operations tools refuse to forget by
   * lease on a store that does not declare it: a `forget` written without the parameter would
   * ignore it and delete whichever attempt holds the record.
   */
  readonly forgetChecksLease?: boolean;
}

/** What operations tools see of a record: its state and sizes, never the stored response or error. */
export interface RecordSummary {
  /** `<namespace>#<hash>`. */
  readonly key: string;
  /** INPROGRESS or COMPLETED. */
  readonly status: RecordStatus;
  /**
   * Epoch seconds: the retention. Absent for a record that has none (written by hand, or by an older
   * version): the first claim that meets it gives it one.
   */
  readonly expiresAt?: number;
  /** Epoch milliseconds, while INPROGRESS. */
  readonly leaseUntil?: number;
  /** The record keeps a payload fingerprint (its caller set `fingerprint`). */
  readonly hasFingerprint: boolean;
  /** Size in bytes of the response as stored (compressed and/or encrypted); absent when none is stored. */
  readonly responseBytes?: number;
  /** The call completed but its response could not be stored. */
  readonly responseOmitted: boolean;
  /** With `responseOmitted`: what could not be stored was a final error. */
  readonly errorOmitted?: boolean;
  /** A final error is stored; its size in bytes as stored. */
  readonly errorBytes?: number;
  /**
   * The id of the key that sealed the stored response or final error (the store's `encryption`);
   * absent when nothing stored is encrypted. After a rotation, a record still sealed with the old
   * key needs `keyById()` to know that key until the record expires.
   */
  readonly keyId?: string;
}
