import { randomUUID } from 'node:crypto';
import type { ClaimRequest, ClaimResult, CompleteRequest, CompleteResult, IdempotencyRecord, IdempotencyStore } from '../store.js';

/** How long the checks' leases and retentions are. @internal */
export const LEASE_MILLIS = 10_000;
/** @internal */
export const RETENTION_SECONDS = 3_600;

/** Options of one claim made by a check. */
export interface ClaimOptions {
  /** The caller's clock. @default the check's start */
  readonly now?: number;
  readonly fingerprint?: string;
  /** @default now + LEASE_MILLIS */
  readonly leaseUntil?: number;
  /** @default the check's start in seconds + RETENTION_SECONDS */
  readonly expiresAt?: number;
}

/**
 * What one check works with: the store, keys of its own, and a clock that starts at the real time
 * (stores whose keys expire by the server's clock must not see retentions in the past) and moves
 * only when a check says so.
 */
export class Fixture {
  /** The check's start, epoch ms: the caller's clock of every request unless a check moves it. */
  readonly t0 = Date.now();
  /** The retention every claim gets unless told otherwise, epoch seconds. */
  readonly expiresAt = Math.floor(this.t0 / 1000) + RETENTION_SECONDS;
  private readonly prefix = `contract-${randomUUID().slice(0, 8)}`;

  /**
   * @param another makes another store as the contract's caller does: one that shares the records
   * of `store` (the same database) when the store is meant to serve several processes.
   */
  constructor(
    readonly store: IdempotencyStore,
    readonly another: () => IdempotencyStore | Promise<IdempotencyStore> = () => store,
    /** Whether the stores `another` makes share the records of `store`: `undefined`, when they do, as found. */
    readonly sharedRecords?: boolean,
  ) {}

  /** A record key of this check: `<namespace>#<label>`. */
  key(label = 'k'): string {
    return `${this.prefix}#${label}`;
  }

  claimRequest(key: string, owner: string, options: ClaimOptions = {}): ClaimRequest {
    const now = options.now ?? this.t0;
    return {
      key,
      owner,
      now,
      leaseUntil: options.leaseUntil ?? now + LEASE_MILLIS,
      expiresAt: options.expiresAt ?? this.expiresAt,
      ...(options.fingerprint === undefined ? {} : { fingerprint: options.fingerprint }),
    };
  }

  claim(key: string, owner: string, options: ClaimOptions = {}): Promise<ClaimResult> {
    return this.store.claim(this.claimRequest(key, owner, options));
  }

  complete(key: string, owner: string, response: string | undefined, extra: Partial<CompleteRequest> = {}): Promise<CompleteResult> {
    return this.store.complete({ key, owner, expiresAt: this.expiresAt + 60, response, ...extra });
  }

  /**
   * The live record of `key`, read the only way the protocol reads: a claim by a stranger that must
   * be refused. `undefined` when the claim went through (nothing live was there: the stranger's
   * record is then released again).
   */
  async live(key: string, now = this.t0): Promise<IdempotencyRecord | undefined> {
    const stranger = `stranger-${randomUUID()}`;
    const result = await this.claim(key, stranger, { now });
    if (!result.claimed) return refused(result, 'a claim of a live record');
    await this.store.release({ key, owner: stranger });
    return undefined;
  }
}

/** The claim was refused; its record. @internal */
export function refused(result: ClaimResult, what: string): IdempotencyRecord {
  if (result.claimed) throw new Error(`${what}: the claim went through, but a live record should have refused it.`);
  // Checks read the record's fields: without it, they would fail on a TypeError that names no rule.
  if (typeof result.record !== 'object' || result.record === null) {
    throw new Error(
      `${what} answered ${JSON.stringify(result)}: a refused claim must return the live record that refused it (\`claimed: false, record\`), which the caller reads to replay it, wait for it or take it over.`,
    );
  }
  return result.record;
}
