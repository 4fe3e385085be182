import { randomUUID } from 'node:crypto';
import { IdempotencyError } from './errors.js';
import { canonicalJson, isMissingKey, sha256 } from './key.js';
import { assertOptions } from './options.js';
import type { IdempotencyRecord, IdempotencyStore } from './store.js';

/** The part of a Lambda context the library reads. */
export interface LambdaContextLike {
  readonly functionName?: string;
  getRemainingTimeInMillis?(): number;
}

/** Receives bookkeeping failures that must not replace the caller's outcome. */
export interface IdempotencyLogger {
  warn(message: string): void;
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
}

const OPTION_NAMES = ['store', 'key', 'fingerprint', 'name', 'expiresAfterSeconds', 'onMissingKey', 'cacheSize', 'leaseSeconds', 'now', 'logger'];

/** What to do with one call. @internal */
export type Begin =
  | { readonly kind: 'skip' }
  | { readonly kind: 'replay'; readonly response: unknown }
  | { readonly kind: 'run'; readonly attempt: Attempt };

function optionalFunction(where: string, options: object, name: string): void {
  const value = (options as Record<string, unknown>)[name];
  if (value !== undefined && typeof value !== 'function') throw new TypeError(`${where}: \`${name}\` must be a function.`);
}

function positiveInteger(where: string, name: string, value: unknown, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new TypeError(`${where}: \`${name}\` must be a whole number, ${min} or more (got ${String(value)}).`);
  }
  return value;
}

/** A small LRU of completed records. */
class RecordCache {
  private readonly records = new Map<string, IdempotencyRecord>();
  constructor(private readonly size: number) {}

  get(key: string, now: number): IdempotencyRecord | undefined {
    const record = this.records.get(key);
    if (record === undefined) return undefined;
    this.records.delete(key);
    if (record.expiresAt * 1000 <= now) return undefined;
    this.records.set(key, record);
    return record;
  }

  set(record: IdempotencyRecord): void {
    this.records.delete(record.key);
    this.records.set(record.key, record);
    if (this.records.size > this.size) this.records.delete(this.records.keys().next().value!);
  }
}

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

  constructor(where: string, options: IdempotencyOptions<TInput, TContext>, extraOptionNames: readonly string[] = []) {
    assertOptions(where, options, [...OPTION_NAMES, ...extraOptionNames]);
    const store = options.store as Partial<IdempotencyStore> | undefined;
    if (!store || typeof store.claim !== 'function' || typeof store.complete !== 'function' || typeof store.release !== 'function') {
      throw new TypeError(`${where}: \`store\` is required: a DynamoDBStore or another IdempotencyStore.`);
    }
    for (const name of ['key', 'fingerprint', 'now']) optionalFunction(where, options, name);
    if (options.name !== undefined && (typeof options.name !== 'string' || options.name.length === 0 || options.name.includes('#'))) {
      throw new TypeError(`${where}: \`name\` must be a non-empty string without '#'.`);
    }
    if (options.onMissingKey !== undefined && options.onMissingKey !== 'throw' && options.onMissingKey !== 'skip') {
      throw new TypeError(`${where}: \`onMissingKey\` must be 'throw' or 'skip'.`);
    }
    if (options.logger !== undefined && typeof options.logger?.warn !== 'function') {
      throw new TypeError(`${where}: \`logger\` must have a \`warn(message)\` method.`);
    }
    this.store = options.store;
    this.name = options.name;
    this.selectKey = options.key;
    this.selectFingerprint = options.fingerprint;
    this.retentionSeconds = positiveInteger(where, 'expiresAfterSeconds', options.expiresAfterSeconds, 86_400);
    this.skipMissingKey = options.onMissingKey === 'skip';
    const cacheSize = positiveInteger(where, 'cacheSize', options.cacheSize, 0, 0);
    this.cache = cacheSize > 0 ? new RecordCache(cacheSize) : undefined;
    this.defaultLeaseMillis = positiveInteger(where, 'leaseSeconds', options.leaseSeconds, 60) * 1000;
    this.now = options.now ?? Date.now;
    this.logger = options.logger ?? console;
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
    if (isMissingKey(selected)) {
      if (this.skipMissingKey) return undefined;
      throw new IdempotencyError('KEY_MISSING', 'The idempotency key selector found no value (undefined, null or empty string).');
    }
    const namespace = this.name ?? context?.functionName ?? process.env.AWS_LAMBDA_FUNCTION_NAME;
    if (!namespace) {
      throw new TypeError('No namespace for idempotency records: set the `name` option (no Lambda context or AWS_LAMBDA_FUNCTION_NAME).');
    }
    return `${namespace}#${sha256(canonicalJson(selected)!)}`;
  }

  /**
   * Claims the record of a call: the answer says whether to run the function, replay a stored
   * response, or run without idempotency (`key` undefined: missing key with `onMissingKey: 'skip'`).
   */
  async begin(input: TInput, context: TContext | undefined, key: string | undefined = this.keyOf(input, context)): Promise<Begin> {
    if (key === undefined) return { kind: 'skip' };
    const fingerprint = this.fingerprintOf(input);
    const now = this.now();

    const cached = this.cache?.get(key, now);
    if (cached) return { kind: 'replay', response: this.replay(cached, fingerprint) };

    const remaining = context?.getRemainingTimeInMillis?.();
    const leaseUntil = now + (typeof remaining === 'number' && remaining > 0 ? remaining : this.defaultLeaseMillis);
    const owner = randomUUID();
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
      throw new IdempotencyError('STORE_FAILURE', 'The idempotency store could not be reached; the function did not run.', { cause: error });
    }
    // An owner equal to ours is our own claim, applied by a request whose response was lost and retried.
    if (claim.claimed || claim.record.owner === owner) return { kind: 'run', attempt: new Attempt(this, key, owner) };
    const record = claim.record;
    if (this.selectFingerprint && record.fingerprint !== fingerprint) {
      throw new IdempotencyError('PAYLOAD_MISMATCH', 'This idempotency key was already used with a different payload.');
    }
    if (record.status === 'COMPLETED') {
      this.cache?.set(record);
      return { kind: 'replay', response: this.replay(record, fingerprint) };
    }
    const retryAfterSeconds = Math.max(1, Math.ceil(((record.leaseUntil ?? now) - now) / 1000));
    throw new IdempotencyError('IN_PROGRESS', `Another attempt with this idempotency key is in progress; retry in ${retryAfterSeconds} s.`, {
      retryAfterSeconds,
    });
  }

  /** Runs `fn` under the protocol: claim, then complete with its result or release on its error. */
  async execute<R>(input: TInput, context: TContext | undefined, fn: () => Promise<R> | R, key = this.keyOf(input, context)): Promise<R> {
    const begin = await this.begin(input, context, key);
    if (begin.kind === 'skip') return fn();
    if (begin.kind === 'replay') return begin.response as R;
    let result: R;
    try {
      result = await fn();
    } catch (error) {
      await begin.attempt.release();
      throw error;
    }
    await begin.attempt.complete(result);
    return result;
  }

  /** @internal */
  retentionFrom(now: number): number {
    return Math.floor(now / 1000) + this.retentionSeconds;
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
    if (record.responseOmitted) {
      throw new IdempotencyError('RESPONSE_NOT_STORED', 'This call already completed, but its response could not be stored, so it cannot be replayed.');
    }
    return record.response === undefined ? undefined : JSON.parse(record.response);
  }
}

/** What an attempt needs of its engine. @internal */
interface AttemptHost {
  readonly store: IdempotencyStore;
  readonly now: () => number;
  readonly logger: IdempotencyLogger;
  retentionFrom(now: number): number;
  remember(record: IdempotencyRecord): void;
}

/** One attempt that holds a record; it ends exactly once, by completing or releasing. @internal */
export class Attempt {
  private ended = false;

  constructor(
    private readonly engine: AttemptHost,
    readonly key: string,
    readonly owner: string,
  ) {}

  /**
   * Marks the record COMPLETED with `result`. A store error is logged, not thrown: the caller keeps
   * the function's result. A record taken over by another attempt is never overwritten: `SUPERSEDED`.
   */
  async complete(result: unknown): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    let response: string | undefined;
    let responseOmitted = false;
    try {
      response = JSON.stringify(result);
    } catch {
      responseOmitted = true; // BigInt, cycles: the result reaches this caller but cannot be replayed
    }
    const now = this.engine.now();
    const expiresAt = this.engine.retentionFrom(now);
    let outcome;
    try {
      outcome = await this.engine.store.complete({ key: this.key, owner: this.owner, expiresAt, response, responseOmitted });
    } catch (error) {
      this.warn('could not mark the record COMPLETED; it stays INPROGRESS until its lease ends', error);
      return;
    }
    if (outcome.completed) {
      const record = { key: this.key, status: 'COMPLETED', owner: this.owner, expiresAt } as const;
      this.engine.remember(outcome.responseStored ? { ...record, ...(response === undefined ? {} : { response }) } : { ...record, responseOmitted: true });
      return;
    }
    // A refused write that finds our own COMPLETED record is our retried request, already applied.
    if (outcome.record?.owner === this.owner && outcome.record.status === 'COMPLETED') return;
    throw new IdempotencyError('SUPERSEDED', 'This attempt outlived its lease and its record was taken over by another attempt; nothing was overwritten.');
  }

  /** Deletes the record if this attempt still holds it; store errors are logged, never thrown. */
  async release(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    try {
      await this.engine.store.release({ key: this.key, owner: this.owner });
    } catch (error) {
      this.warn('could not release the record; it stays INPROGRESS until its lease ends', error);
    }
  }

  /** Ends the attempt without writing: the record lapses at its lease (e.g. after a timeout). */
  abandon(): void {
    this.ended = true;
  }

  private warn(what: string, error: unknown): void {
    const namespace = this.key.slice(0, this.key.indexOf('#'));
    const name = (error as { name?: unknown } | null)?.name;
    this.engine.logger.warn(JSON.stringify({ level: 'WARN', message: `lambda-idempotency: ${what}`, namespace, error: typeof name === 'string' ? name : 'Error' }));
  }
}
