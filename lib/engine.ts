import { randomUUID } from 'node:crypto';
import { IdempotencyError, describeStoreFailure } from './errors.js';
import { canonicalJson, isMissingKey, namespaceOf, recordKey, sha256 } from './key.js';
import { type IdempotencyLogger, type IdempotencyOptions, type LambdaContextLike, validateOptions } from './options.js';
import { RecordCache } from './record-cache.js';
import { Attempt, type Outcome, reviveError } from './attempt.js';
import { type Emit, type IdempotencyEvent, createEmitter } from './observability.js';
import type { IdempotencyRecord, IdempotencyStore } from './store.js';

export type { IdempotencyLogger, IdempotencyOptions, LambdaContextLike } from './options.js';
import { WriteCollector, currentCall } from './transaction.js';

/** A key computed ahead of the call (`undefined`: run without idempotency). @internal */
export interface Keyed {
  readonly key: string | undefined;
}

/** What to do with one call (`run`: this attempt holds the record, or in atomic mode may create it). @internal */
export type Begin =
  | { readonly kind: 'skip' }
  | { readonly kind: 'replay'; readonly response: unknown }
  | { readonly kind: 'run'; readonly attempt: Attempt };

/**
 * The one implementation of claim → run → complete | release, shared by every entry point.
 * @internal
 */
export class IdempotencyEngine<TInput, TContext extends LambdaContextLike = LambdaContextLike> {
  readonly store: IdempotencyStore;
  private readonly name: string | undefined;
  private readonly selectKey: ((input: TInput, context: TContext | undefined) => unknown) | undefined;
  private readonly selectFingerprint: ((input: TInput) => unknown) | undefined;
  private readonly retentionSeconds: number;
  private readonly skipMissingKey: boolean;
  private readonly cache: RecordCache | undefined;
  private readonly defaultLeaseMillis: number;
  readonly now: () => number;
  readonly logger: IdempotencyLogger;
  readonly isFinalError: (error: unknown) => boolean;
  readonly errorFields: readonly string[];
  readonly atomic: boolean;
  /** Calls run in the AsyncLocalStorage behind `transaction()`. */
  readonly transactional: boolean;
  private readonly emitEvent: Emit;

  constructor(where: string, options: IdempotencyOptions<TInput, TContext>, extraOptionNames: readonly string[] = []) {
    validateOptions(where, options, extraOptionNames);
    this.store = options.store;
    this.name = options.name;
    this.selectKey = options.key;
    this.selectFingerprint = options.fingerprint;
    this.retentionSeconds = options.expiresAfterSeconds ?? 86_400;
    this.skipMissingKey = options.onMissingKey === 'skip';
    this.cache = options.cacheSize ? new RecordCache(options.cacheSize) : undefined;
    this.defaultLeaseMillis = (options.leaseSeconds ?? 60) * 1000;
    this.now = options.now ?? Date.now;
    this.logger = options.logger ?? console;
    this.isFinalError = options.isFinalError ?? (() => false);
    this.errorFields = options.errorFields ?? [];
    this.atomic = options.atomic === true;
    this.transactional = this.atomic || options.transactions === true;
    this.emitEvent = createEmitter(where, options.observability, this.now);
  }

  /**
   * The record key of a call: `<namespace>#<hash of the selected value>`, or `undefined` when the
   * selector finds no value and `onMissingKey` is 'skip'. Computed once per call, before it runs.
   */
  keyOf(input: TInput, context: TContext | undefined): string | undefined {
    let selected: unknown;
    try {
      selected = this.selectKey ? this.selectKey(input, context) : input;
    } catch (error) {
      throw new IdempotencyError('INVALID_KEY', 'The idempotency key selector threw.', { cause: error });
    }
    // A value whose toJSON yields undefined has no JSON form: it is as missing as `undefined`.
    const canonical = isMissingKey(selected) ? undefined : canonicalJson(selected);
    if (canonical === undefined) {
      if (this.skipMissingKey) return undefined;
      throw new IdempotencyError('KEY_MISSING', 'The idempotency key selector found no value (undefined, null or empty string).');
    }
    const namespace = this.name ?? (context?.functionName || process.env.AWS_LAMBDA_FUNCTION_NAME);
    if (!namespace) {
      throw new TypeError('No namespace for idempotency records: set the `name` option (no Lambda context or AWS_LAMBDA_FUNCTION_NAME).');
    }
    return recordKey(namespace, sha256(canonical));
  }

  /**
   * Claims the record of a call: the answer says whether to run the function, replay a stored
   * response, or run without idempotency (`key` undefined: missing key with `onMissingKey: 'skip'`).
   */
  async begin(input: TInput, context: TContext | undefined, writes: WriteCollector = new WriteCollector(), keyed?: Keyed): Promise<Begin> {
    try {
      return await this.claimFor(input, context, writes, keyed ? keyed.key : this.keyOf(input, context));
    } catch (error) {
      writes.close(); // a rejected call holds nothing: no transaction to join
      throw error;
    }
  }

  private async claimFor(input: TInput, context: TContext | undefined, writes: WriteCollector, key: string | undefined): Promise<Begin> {
    if (key === undefined) {
      writes.deactivate();
      return { kind: 'skip' };
    }
    const fingerprint = this.fingerprintOf(input);
    const now = this.now();

    const cached = this.cache?.get(key, now);
    if (cached) {
      writes.close();
      this.emit('cacheReplay', key);
      return { kind: 'replay', response: this.replay(cached, fingerprint) };
    }
    const owner = randomUUID();
    // Atomic mode commits the writes through `claimCompleted` (checked at construction), not `completeWithWrites`.
    if (this.transactional) writes.bind(key, owner);
    if (this.atomic) return { kind: 'run', attempt: new Attempt(this, { key, owner, fingerprint, writes, atomicSince: now }) };

    const remaining = context?.getRemainingTimeInMillis?.();
    const leaseUntil = now + (typeof remaining === 'number' && remaining > 0 ? remaining : this.defaultLeaseMillis);
    let claim;
    try {
      claim = await this.store.claim({
        key,
        owner,
        leaseUntil,
        // Retention is never shorter than the lease.
        expiresAt: Math.max(Math.floor(now / 1000) + this.retentionSeconds, Math.ceil(leaseUntil / 1000)),
        now,
        ...(fingerprint === undefined ? {} : { fingerprint }),
      });
    } catch (error) {
      this.emit('storeFailure', key);
      // The claim may have been applied although every answer was lost: free the key if it is ours,
      // rather than leave it held until the lease with nothing running. Best effort: the store is failing.
      await this.store.release({ key, owner }).catch(() => undefined);
      throw new IdempotencyError('STORE_FAILURE', `The idempotency store failed (${describeStoreFailure(error)}); the function did not run.`, { cause: error });
    }
    // An owner equal to ours is our own claim, applied by a request whose response was lost and retried.
    if (claim.claimed || claim.record.owner === owner) {
      this.emit(claim.claimed && claim.previous?.status === 'INPROGRESS' ? 'takeover' : 'miss', key);
      return { kind: 'run', attempt: new Attempt(this, { key, owner, fingerprint, writes }) };
    }
    writes.close();
    return { kind: 'replay', response: this.settle(claim.record, fingerprint, now) };
  }

  /**
   * The answer for a call that met another attempt's record: the stored outcome of a COMPLETED
   * record, or a rejection (`PAYLOAD_MISMATCH`, `IN_PROGRESS`) that leaves the record as it is.
   * @internal
   */
  settle(record: IdempotencyRecord, fingerprint: string | undefined, now: number): unknown {
    if (this.selectFingerprint && record.fingerprint !== fingerprint) {
      this.emit('payloadMismatch', record.key);
      throw new IdempotencyError('PAYLOAD_MISMATCH', 'This idempotency key was already used with a different payload.');
    }
    if (record.status === 'COMPLETED') {
      this.cache?.set(record);
      this.emit('replay', record.key);
      return this.replay(record, fingerprint);
    }
    this.emit('inProgress', record.key);
    const retryAfterSeconds = Math.max(1, Math.ceil(((record.leaseUntil ?? now) - now) / 1000));
    throw new IdempotencyError('IN_PROGRESS', `Another attempt with this idempotency key is in progress; retry in ${retryAfterSeconds} s.`, {
      retryAfterSeconds,
    });
  }

  /** Runs `fn` under the protocol: claim, then complete with its result or release on its error. */
  async execute<R>(input: TInput, context: TContext | undefined, fn: () => Promise<R> | R, keyed?: Keyed): Promise<R> {
    const writes = new WriteCollector();
    const begin = await this.begin(input, context, writes, keyed);
    if (begin.kind === 'replay') return begin.response as R;
    const run = this.transactional ? () => currentCall.run(writes, fn) : fn;
    if (begin.kind === 'skip') return run();
    let outcome: Outcome;
    try {
      outcome = await begin.attempt.complete(await run());
    } catch (error) {
      outcome = await begin.attempt.fail(error);
    }
    if (outcome.kind === 'error') throw outcome.error;
    return outcome.value as R;
  }

  /** @internal */
  expiresAtFrom(now: number): number {
    return Math.floor(now / 1000) + this.retentionSeconds;
  }

  /** @internal */
  emit(event: IdempotencyEvent, key: string): void {
    this.emitEvent(event, namespaceOf(key));
  }

  /** @internal */
  remember(record: IdempotencyRecord): void {
    this.cache?.set(record);
  }

  private fingerprintOf(input: TInput): string | undefined {
    if (!this.selectFingerprint) return undefined;
    let selected: unknown;
    try {
      selected = this.selectFingerprint(input);
    } catch (error) {
      throw new IdempotencyError('INVALID_KEY', 'The fingerprint selector threw.', { cause: error });
    }
    return sha256(canonicalJson(selected) ?? '');
  }

  private replay(record: IdempotencyRecord, fingerprint: string | undefined): unknown {
    if (this.selectFingerprint && record.fingerprint !== fingerprint) {
      throw new IdempotencyError('PAYLOAD_MISMATCH', 'This idempotency key was already used with a different payload.');
    }
    if (record.error !== undefined) throw reviveError(record.error);
    if (record.responseOmitted) {
      throw new IdempotencyError('RESPONSE_NOT_STORED', 'This call already completed, but its response could not be stored, so it cannot be replayed.');
    }
    return record.response === undefined ? undefined : JSON.parse(record.response);
  }
}

