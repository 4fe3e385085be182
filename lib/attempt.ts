import { IdempotencyError } from './errors.js';
import { namespaceOf } from './key.js';
import type { IdempotencyLogger } from './options.js';
import type { CompleteRequest, CompleteResult, IdempotencyRecord, IdempotencyStore } from './store.js';
import type { IdempotencyEvent } from './observability.js';
import type { WriteCollector } from './transaction.js';

/** How a call ends for its caller: a value (maybe another attempt's, replayed) or an error. @internal */
export type Outcome =
  | { readonly kind: 'value'; readonly value: unknown; readonly replayed: boolean }
  | { readonly kind: 'error'; readonly error: unknown; readonly replayed: boolean };

/** What an attempt needs of its engine. @internal */
export interface AttemptHost {
  readonly store: IdempotencyStore;
  readonly now: () => number;
  readonly logger: IdempotencyLogger;
  readonly isFinalError: (error: unknown) => boolean;
  readonly errorFields: readonly string[];
  expiresAtFrom(now: number): number;
  remember(record: IdempotencyRecord): void;
  emit(event: IdempotencyEvent, key: string): void;
  settle(record: IdempotencyRecord, fingerprint: string | undefined, now: number): unknown;
}

/** @internal */
export interface AttemptState {
  readonly key: string;
  readonly owner: string;
  /** Kept on the cached record, so that a replay from the local cache passes the payload check. */
  readonly fingerprint: string | undefined;
  readonly writes: WriteCollector;
  /** Atomic mode: no record exists yet; the completion creates it. */
  readonly atomicSince?: number;
}

type Payload = Pick<CompleteRequest, 'response' | 'responseOmitted' | 'error'>;

const value = (result: unknown, replayed = false): Outcome => ({ kind: 'value', value: result, replayed });

/** JSON of a final error: name, message, code and the selected fields. @internal */
export function serializeError(error: unknown, fields: readonly string[]): string {
  const source = (error !== null && typeof error === 'object' ? error : {}) as Record<string, unknown>;
  const text = (value: unknown): string => {
    try {
      return String(value);
    } catch {
      return ''; // an object without a prototype has no String form
    }
  };
  const data: Record<string, unknown> = {
    name: typeof source.name === 'string' ? source.name : 'Error',
    message: typeof source.message === 'string' ? source.message : text(error),
  };
  if (source.code !== undefined) data.code = typeof source.code === 'string' || typeof source.code === 'number' ? source.code : text(source.code);
  const base = JSON.stringify(data);
  for (const field of fields) if (source[field] !== undefined) data[field] = source[field];
  try {
    return JSON.stringify(data);
  } catch {
    return base; // a field JSON cannot hold is dropped, the error is still stored
  }
}

/** The replayed form of a stored final error. @internal */
export function reviveError(json: string): Error {
  const { name, message, ...fields } = JSON.parse(json) as Record<string, unknown>;
  const error = new Error(typeof message === 'string' ? message : '');
  Object.defineProperty(error, 'name', { value: typeof name === 'string' ? name : 'Error', writable: true, configurable: true });
  return Object.assign(error, fields);
}

/**
 * One attempt at a call; it holds the record (or, in atomic mode, may create it) and ends exactly
 * once, by `complete` or `fail`. @internal
 */
export class Attempt {
  private ended = false;

  constructor(
    private readonly host: AttemptHost,
    private readonly state: AttemptState,
  ) {}

  get key(): string {
    return this.state.key;
  }

  /** Stores `result` (with the call's writes, if any) and says what the caller gets. */
  async complete(result: unknown): Promise<Outcome> {
    if (this.end()) return value(result);
    let payload: Payload;
    try {
      payload = { response: JSON.stringify(result) };
    } catch {
      payload = { response: undefined, responseOmitted: true }; // BigInt, cycles: reaches this caller, cannot be replayed
    }
    return this.finish(payload, result, this.state.writes.actions);
  }

  /**
   * The function threw: a final error is stored (its writes discarded) and replayed to duplicates;
   * any other error releases the record. The caller gets the function's own error, unless an atomic
   * duplicate finds another attempt's stored outcome.
   */
  async fail(error: unknown): Promise<Outcome> {
    if (this.end()) return { kind: 'error', error, replayed: false };
    let final = false;
    try {
      final = this.host.isFinalError(error) === true;
    } catch {
      final = false;
    }
    if (!final) {
      if (this.state.atomicSince === undefined) await this.release();
      return { kind: 'error', error, replayed: false };
    }
    const outcome = await this.finish({ response: undefined, error: serializeError(error, this.host.errorFields) }, undefined, []);
    return outcome.replayed ? outcome : { kind: 'error', error, replayed: false };
  }

  /** Ends the attempt without writing: the record lapses at its lease (e.g. after a timeout). */
  abandon(): void {
    this.end();
  }

  private end(): boolean {
    const ended = this.ended;
    this.ended = true;
    this.state.writes.close();
    return ended;
  }

  private async finish(payload: Payload, result: unknown, writes: CompleteRequestWrites): Promise<Outcome> {
    const { store } = this.host;
    const { key, owner, fingerprint } = this.state;
    const now = this.host.now();
    const request = { key, owner, expiresAt: this.host.expiresAtFrom(now), ...payload };
    if (this.state.atomicSince !== undefined) {
      let claim;
      try {
        claim = await store.claimCompleted!({ ...request, now, ...(fingerprint === undefined ? {} : { fingerprint }) }, writes);
      } catch (error) {
        return { kind: 'error', error: commitError(error), replayed: false };
      }
      if (claim.claimed || claim.record.owner === owner) return this.completed(request, !claim.claimed || claim.responseStored !== false, result);
      try {
        return value(this.host.settle(claim.record, fingerprint, now), true);
      } catch (error) {
        // A stored final error is another attempt's outcome; a rejection (IN_PROGRESS…) is not.
        return { kind: 'error', error, replayed: !(error instanceof IdempotencyError) };
      }
    }
    let outcome: CompleteResult;
    if (writes.length > 0) {
      try {
        outcome = await store.completeWithWrites!(request, writes);
      } catch (error) {
        // Typed errors mean nothing was written: free the key. Otherwise the outcome is unknown:
        // the record stays until its lease, and a retry after it replays or runs again.
        if (error instanceof IdempotencyError) await this.release();
        return { kind: 'error', error: commitError(error), replayed: false };
      }
    } else {
      try {
        outcome = await store.complete(request);
      } catch (error) {
        this.warn('could not mark the record COMPLETED; it stays INPROGRESS until its lease ends', error);
        return value(result);
      }
    }
    if (outcome.completed) return this.completed(request, outcome.responseStored, result);
    // A refused write that finds our own COMPLETED record is our retried request, already applied.
    if (outcome.record?.owner === owner && outcome.record.status === 'COMPLETED') return value(result);
    this.host.emit('superseded', key);
    return {
      kind: 'error',
      error: new IdempotencyError('SUPERSEDED', 'This attempt outlived its lease and its record was taken over by another attempt; nothing was overwritten.', {
        ...(outcome.record === undefined ? {} : { record: outcome.record }),
      }),
      replayed: false,
    };
  }

  private completed(request: CompleteRequest, responseStored: boolean, result: unknown): Outcome {
    const { fingerprint } = this.state;
    this.host.remember({
      key: request.key,
      owner: request.owner,
      status: 'COMPLETED',
      expiresAt: request.expiresAt,
      ...(fingerprint === undefined ? {} : { fingerprint }),
      ...(request.error === undefined ? {} : { error: request.error }),
      ...(responseStored ? (request.response === undefined ? {} : { response: request.response }) : { responseOmitted: true }),
    });
    return value(result);
  }

  /** Deletes the record if this attempt still holds it; store errors are logged, never thrown. */
  private async release(): Promise<void> {
    try {
      await this.host.store.release({ key: this.state.key, owner: this.state.owner });
    } catch (error) {
      this.warn('could not release the record; it stays INPROGRESS until its lease ends', error);
    }
  }

  private warn(what: string, error: unknown): void {
    this.host.emit('bookkeepingFailure', this.state.key);
    const namespace = namespaceOf(this.state.key);
    const name = (error as { name?: unknown } | null)?.name;
    this.host.logger.warn(JSON.stringify({ level: 'WARN', message: `lambda-idempotency: ${what}`, namespace, error: typeof name === 'string' ? name : 'Error' }));
  }
}

type CompleteRequestWrites = WriteCollector['actions'];

const commitError = (error: unknown): IdempotencyError =>
  error instanceof IdempotencyError
    ? error
    : new IdempotencyError('COMMIT_FAILED', 'The transaction with the call\'s writes could not be confirmed; they may or may not be applied.', { cause: error });
