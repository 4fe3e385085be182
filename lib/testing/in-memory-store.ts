import { encryptionModule, type OutcomeEncryption } from '../encryption.js';
import { checkOptions, wholeNumber } from '../options.js';
import { hashOf, outcomeFields, type RecordHash, recordOf, refusalRecord, summaryOf } from '../record-hash.js';
import { ResponseCodec } from '../response-codec.js';
import {
  adoptedRetention,
  type ClaimRequest,
  type ClaimResult,
  type CompleteRequest,
  type CompleteResult,
  type IdempotencyRecord,
  type IdempotencyStore,
  type RecordStatus,
  type RecordSummary,
  type ReleaseRequest,
  type ReleaseResult,
} from '../store.js';
import { DEFAULT_COMPRESS_ABOVE_BYTES, OUTCOME_OPTION_CHECKS } from '../stored-outcome.js';

const WHERE = 'InMemoryStore';

/** Live, as DynamoDB's claim condition sees it: not past its retention, and not INPROGRESS past its lease. */
function isLive(record: RecordHash, now: number): boolean {
  if (Number(record.expiresAt) < Math.floor(now / 1000)) return false;
  return !(record.status === 'INPROGRESS' && record.leaseUntil !== undefined && Number(record.leaseUntil) < now);
}

const fromPairs = (pairs: readonly string[]): Record<string, string> => hashOf(pairs) ?? {};

/** DynamoDB refuses a request whose number is NaN or infinite: so does this store, rather than keep a record it cannot read back. */
function checkNumbers(request: object, names: readonly string[]): void {
  for (const name of names) {
    const value = (request as Record<string, unknown>)[name];
    if (!Number.isFinite(value)) throw new TypeError(`${WHERE}: \`${name}\` must be a finite number, as DynamoDB requires (got ${String(value)}).`);
  }
}

/** Options of {@link InMemoryStore}. */
export interface InMemoryStoreOptions {
  /**
   * Retention of records in seconds, for calls whose own `expiresAfterSeconds` is not set: what
   * `DynamoDBStore` takes as its option or from `IDEMPOTENCY_EXPIRES_AFTER_SECONDS`, so a unit test
   * keeps records as long as the deployment does. @default the calls' default, 24 hours
   */
  readonly expiresAfterSeconds?: number | undefined;
  /**
   * Responses whose JSON is larger than this many bytes (0 to 409600) are stored gzip-compressed: the deployment's
   * `DynamoDBStore` option, so a response near the 400 KB item limit is kept, or omitted, as there.
   * @default 32768
   */
  readonly compressAboveBytes?: number | undefined;
  /**
   * Encrypt stored responses and final errors, as the deployment's `DynamoDBStore` does:
   * `aesGcmEncryption(provider)` from `lambda-idempotency`. A test then runs your key provider, and
   * meets the encryption's bytes at the item limit. @default none
   */
  readonly encryption?: OutcomeEncryption | undefined;
}

/**
 * The record protocol in this process's memory, for unit tests of idempotent functions: the same
 * conditions, fencing, leases, retention (judged by the caller's `now`, never by a timer) and
 * response encoding as `DynamoDBStore` and `RedisStore`, proven by the same contract
 * (`storeContract`). Not for production: records live and die with the process. No transactions,
 * as `RedisStore`: `atomic: true` and writes added to `transaction()` are `TypeError`s (test those on
 * DynamoDB Local).
 *
 * @example
 * ```ts
 * import { makeIdempotent } from 'lambda-idempotency';
 * import { InMemoryStore } from 'lambda-idempotency/testing';
 *
 * const store = new InMemoryStore(); // or { expiresAfterSeconds: 600, compressAboveBytes, encryption }, as the deployment's DynamoDBStore
 * const charge = makeIdempotent(chargeCard, { store, name: 'charge', key: (order) => order.id });
 * ```
 */
export class InMemoryStore implements IdempotencyStore {
  private readonly records = new Map<string, RecordHash>();
  private readonly codec: ResponseCodec;
  readonly expiresAfterSeconds: number | undefined;

  constructor(options: InMemoryStoreOptions = {}) {
    checkOptions(WHERE, options, { expiresAfterSeconds: wholeNumber(1, 'seconds'), ...OUTCOME_OPTION_CHECKS });
    this.expiresAfterSeconds = options.expiresAfterSeconds;
    this.codec = new ResponseCodec(options.compressAboveBytes ?? DEFAULT_COMPRESS_ABOVE_BYTES, encryptionModule(options.encryption));
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    checkNumbers(request, ['now', 'leaseUntil', 'expiresAt']);
    const current = this.adopted(request);
    if (current !== undefined && isLive(current, request.now)) return { claimed: false, record: await recordOf(request.key, current, this.codec, WHERE) };
    const fields = ['status', 'INPROGRESS', 'owner', request.owner, 'leaseUntil', String(request.leaseUntil), 'expiresAt', String(request.expiresAt)];
    if (request.fingerprint !== undefined) fields.push('fingerprint', request.fingerprint);
    this.records.set(request.key, fromPairs(fields));
    // A replaced record that was not one (written by hand, say) is replaced like any other, as the other stores do.
    const previous = current === undefined ? undefined : await recordOf(request.key, current, this.codec, WHERE, false).catch(() => undefined);
    return previous === undefined ? { claimed: true } : { claimed: true, previous };
  }

  async complete(request: CompleteRequest): Promise<CompleteResult> {
    checkNumbers(request, ['expiresAt']);
    const outcome = await outcomeFields(this.codec, request);
    const current = this.records.get(request.key);
    if (!this.heldBy(current, request.owner)) return { completed: false, record: await this.refusedBy(request.key, current, request.owner) };
    const { leaseUntil: _lease, ...kept } = current!;
    this.records.set(request.key, { ...kept, status: 'COMPLETED', expiresAt: String(request.expiresAt), ...fromPairs(outcome.fields) });
    return outcome.result;
  }

  async release(request: ReleaseRequest): Promise<ReleaseResult> {
    const current = this.records.get(request.key);
    if (!this.heldBy(current, request.owner)) return { released: false, record: await this.refusedBy(request.key, current) };
    this.records.delete(request.key);
    return { released: true };
  }

  async inspect(key: string): Promise<RecordSummary | undefined> {
    const current = this.records.get(key);
    return current === undefined ? undefined : summaryOf(key, current, WHERE);
  }

  /** `forget` honours `leaseUntil`. */
  readonly forgetChecksLease = true;

  async forget(key: string, onlyIf?: RecordStatus, leaseUntil?: number): Promise<boolean> {
    const current = this.records.get(key);
    if (current === undefined || (onlyIf !== undefined && current.status !== onlyIf)) return false;
    if (leaseUntil !== undefined && (current.status !== 'INPROGRESS' || Number(current.leaseUntil) !== leaseUntil)) return false;
    return this.records.delete(key);
  }

  /** Forgets every record (between tests). A function built with `cacheSize` still replays from its own cache: build it anew too. */
  clear(): void {
    this.records.clear();
  }

  /**
   * The record of the claim's key; one without a retention (written by hand, or by an older
   * version) first gets the claim's, or its lease's end if later, as the other stores give it.
   */
  private adopted(request: ClaimRequest): RecordHash | undefined {
    const current = this.records.get(request.key);
    if (current === undefined || current.expiresAt !== undefined) return current;
    const adopted = { ...current, expiresAt: String(adoptedRetention(request.expiresAt, Number(current.leaseUntil))) };
    this.records.set(request.key, adopted);
    return adopted;
  }

  private heldBy(record: RecordHash | undefined, owner: string): boolean {
    return record?.owner === owner && record.status === 'INPROGRESS';
  }

  private async refusedBy(key: string, record: RecordHash | undefined, owner?: string): Promise<IdempotencyRecord | undefined> {
    return record === undefined ? undefined : refusalRecord(key, record, this.codec, WHERE, owner);
  }
}
