/**
 * The contract fails the flaws real stores have: each store below is InMemoryStore with one flaw,
 * and the contract must reject it with a check (and a message) that names the rule it breaks.
 */
import { gzipSync } from 'node:zlib';
import type {
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  CompleteResult,
  IdempotencyRecord,
  IdempotencyStore,
  ReleaseRequest,
  ReleaseResult,
} from '../../lib/index.js';
import type { ClaimCompletedRequest } from '../../lib/store.js';
import { InMemoryStore, storeContract } from '../../lib/testing/index.js';

type Hash = Record<string, string>;

/** InMemoryStore with its record map opened up, so a flaw can read and write records as a careless store would. */
class Flawed extends InMemoryStore {
  protected get map(): Map<string, Hash> {
    return (this as unknown as { records: Map<string, Hash> }).records;
  }

  /** Yields to every other pending operation: the gap between a read and a write that a non-atomic store leaves open. */
  protected gap(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }

  /** The record of `key` as a refused claim by a stranger reads it. */
  protected async inspectRecord(key: string): Promise<IdempotencyRecord | undefined> {
    const result = await super.claim({ key, owner: 'stranger', now: Number.MIN_SAFE_INTEGER, leaseUntil: 0, expiresAt: 0 });
    if (result.claimed) this.map.delete(key);
    return result.claimed ? undefined : result.record;
  }

  /** The refusal a correct claim would give, read without writing; `undefined` when the claim may go through. */
  protected async blocker(request: ClaimRequest): Promise<ClaimResult | undefined> {
    const current = this.map.get(request.key);
    if (current === undefined || Number(current.expiresAt) < Math.floor(request.now / 1000)) return undefined;
    if (current.status === 'INPROGRESS' && Number(current.leaseUntil) < request.now) return undefined;
    return super.claim(request);
  }
}

/** A Flawed store with the transactional methods, correct for calls without writes of their own: claim, then complete. */
class Transactional extends Flawed {
  async completeWithWrites(request: CompleteRequest, writes: readonly unknown[]): Promise<CompleteResult> {
    if (writes.length > 0) throw new Error('no writes in these checks');
    return this.complete(request);
  }

  async claimCompleted(request: ClaimCompletedRequest, writes: readonly unknown[]): Promise<ClaimResult> {
    if (writes.length > 0) throw new Error('no writes in these checks');
    const { response, responseOmitted, error, ...claim } = request;
    const claimed = await this.claim({ ...claim, leaseUntil: request.now });
    if (!claimed.claimed) return claimed;
    const completed = await this.complete({ key: request.key, owner: request.owner, expiresAt: request.expiresAt, response, responseOmitted, error });
    return completed.completed ? { ...claimed, responseStored: completed.responseStored } : { claimed: false, record: completed.record! };
  }
}

/** A Flawed store with atomic mode's `read`, correct: the record as a refused claim reads it, and nothing changed. */
class Readable extends Flawed {
  async read(key: string): Promise<IdempotencyRecord | undefined> {
    return this.inspectRecord(key);
  }
}

/** A Flawed store on a database shared with other instances, which serialises its requests with a lock of its own: one process's lock. */
class InstanceLocked extends Flawed {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(database: Map<string, Hash>) {
    super();
    Object.assign(this, { records: database });
  }

  protected serial<T>(run: () => Promise<T>): Promise<T> {
    const result = this.queue.then(run);
    this.queue = result.catch(() => undefined);
    return result;
  }
}

/** Stores from `make` on one database, as the processes of a deployment share it. */
function onOneDatabase(make: (database: Map<string, Hash>) => IdempotencyStore): () => IdempotencyStore {
  const database = new Map<string, Hash>();
  return () => make(database);
}

/** A record map that stores each record under `storedKey(key)`, as a database with a narrower idea of a key does. */
class NarrowKeys extends Map<string, Hash> {
  constructor(private readonly storedKey: (key: string) => string) {
    super();
  }
  override get(key: string): Hash | undefined {
    return super.get(this.storedKey(key));
  }
  override set(key: string, value: Hash): this {
    return super.set(this.storedKey(key), value);
  }
  override delete(key: string): boolean {
    return super.delete(this.storedKey(key));
  }
}

function withKeys(storedKey: (key: string) => string): IdempotencyStore {
  return Object.assign(new Flawed(), { records: new NarrowKeys(storedKey) });
}

/** Each failed check of the contract on stores from `make`, with its message. */
async function rejections(make: () => IdempotencyStore): Promise<Record<string, string>> {
  const failed: Record<string, string> = {};
  for (const check of storeContract(make)) {
    await check.run().catch((error: unknown) => {
      failed[check.name] = error instanceof Error ? error.message : String(error);
    });
  }
  return failed;
}

// The checks that name the rule each flaw breaks.
const FENCED_COMPLETION = "complete is fenced: another owner's completion changes nothing and returns the record";
const FENCED_RELEASE = "release is fenced by owner and status: never another's record, never a COMPLETED one";
const AFTER_RETENTION = 'after its retention a record is claimed anew; the claim returns the old record without its response';
const WITHIN_RETENTION = 'a COMPLETED record is never taken over within its retention, whatever its old lease';
const AFTER_LEASE = 'after its lease an INPROGRESS record is taken over, and its old owner can neither complete nor release it';
const CLAIM_WRITES = 'claim creates an INPROGRESS record with the owner, lease, retention and fingerprint given';
const COMPLETE_WRITES = 'complete stores the response and the new retention, keeps the fingerprint and ends the lease';
const RESPONSES = 'responses come back exactly: undefined, empty, Unicode, escapes';
const CLAIM_RACE = 'concurrent claims of one key: exactly one wins, the others get its record';
// The checks that caught none of these flaws before.
const COMPLETION_RACE = "a late completion racing a takeover: exactly one of them wins, and the record is the winner's";
const RELEASE_RACE = 'a late release racing a takeover never deletes the record the takeover wrote';
const CLAIMED_ANEW =
  'a record claimed anew (after a retention or a lease) carries only what its claim sets: no fingerprint, response or error of the record it replaced';
const EXACT_KEYS = 'keys are compared exactly: keys that differ only in case, or only in their last character after 1000 others, are different records';
const LATE_COMPLETION = 'an attempt that outlives its lease still completes its record while no other attempt has taken it over';
const SHARED_CLAIM_RACE = 'concurrent claims through two stores that share their records (two processes on one database): exactly one wins';
const TRANSACTIONS =
  'completeWithWrites and claimCompleted (when the store has them) are fenced and conditional as complete and claim are, and keep the fingerprint';
const TRANSACTION_OUTCOMES =
  'completeWithWrites and claimCompleted (when the store has them) store the outcome they are given: a final error, a response that could not be stored';
const READ = 'read (when the store has it) returns the record as stored, its outcome decoded, and changes nothing';
const NEW_CHECKS = [SHARED_CLAIM_RACE, COMPLETION_RACE, RELEASE_RACE, CLAIMED_ANEW, EXACT_KEYS, LATE_COMPLETION];

const flaws: readonly [flaw: string, check: string, make: () => IdempotencyStore][] = [
  [
    "an unconditional completion: a late attempt overwrites another owner's record",
    FENCED_COMPLETION,
    () =>
      new (class extends Flawed {
        override async complete(request: CompleteRequest): Promise<CompleteResult> {
          const current = this.map.get(request.key);
          if (current !== undefined) current.owner = request.owner;
          return super.complete(request);
        }
      })(),
  ],
  [
    'an unconditional release: it deletes a record it does not hold',
    FENCED_RELEASE,
    () =>
      new (class extends Flawed {
        override async release(request: ReleaseRequest): Promise<ReleaseResult> {
          return this.map.delete(request.key) ? { released: true } : { released: false, record: undefined };
        }
      })(),
  ],
  [
    'a claim that does not replace a record past its retention',
    AFTER_RETENTION,
    () =>
      new (class extends Flawed {
        override async claim(request: ClaimRequest): Promise<ClaimResult> {
          const current = this.map.get(request.key);
          const lapsedLease = current?.status === 'INPROGRESS' && Number(current.leaseUntil) < request.now;
          // Judges retention against the start of time: nothing ever expires, leases still end.
          return super.claim(lapsedLease ? request : { ...request, now: -8.64e15 });
        }
      })(),
  ],
  [
    'a claim that replaces a live COMPLETED record once the lease of its attempt has ended',
    WITHIN_RETENTION,
    () =>
      new (class extends Flawed {
        private readonly leases = new Map<string, number>();
        override async claim(request: ClaimRequest): Promise<ClaimResult> {
          const lease = this.leases.get(request.key);
          if (lease !== undefined && lease < request.now) this.map.delete(request.key);
          const result = await super.claim(request);
          if (result.claimed) this.leases.set(request.key, request.leaseUntil);
          return result;
        }
      })(),
  ],
  [
    'a lease ignored: an INPROGRESS record past its lease is not taken over',
    AFTER_LEASE,
    () =>
      new (class extends Flawed {
        override async claim(request: ClaimRequest): Promise<ClaimResult> {
          const current = this.map.get(request.key);
          // An INPROGRESS record is judged as if the clock stood at its lease: it never lapses.
          if (current?.status !== 'INPROGRESS') return super.claim(request);
          return super.claim({ ...request, now: Math.min(request.now, Number(current.leaseUntil)) });
        }
      })(),
  ],
  [
    'records expire at their lease instead of their retention',
    CLAIM_WRITES,
    () =>
      new (class extends Flawed {
        override async claim(request: ClaimRequest): Promise<ClaimResult> {
          return super.claim({ ...request, expiresAt: Math.floor(request.leaseUntil / 1000) });
        }
      })(),
  ],
  [
    'a fingerprint dropped on completion',
    COMPLETE_WRITES,
    () =>
      new (class extends Flawed {
        override async complete(request: CompleteRequest): Promise<CompleteResult> {
          const result = await super.complete(request);
          delete this.map.get(request.key)?.fingerprint;
          return result;
        }
      })(),
  ],
  [
    'a response stored but not returned to a refused claim',
    COMPLETE_WRITES,
    () =>
      new (class extends Flawed {
        override async claim(request: ClaimRequest): Promise<ClaimResult> {
          const result = await super.claim(request);
          if (result.claimed) return result;
          const { response: _dropped, ...record } = result.record;
          return { claimed: false, record };
        }
      })(),
  ],
  [
    'an undefined response returned as a present `response: undefined`',
    RESPONSES,
    () =>
      new (class extends Flawed {
        override async claim(request: ClaimRequest): Promise<ClaimResult> {
          const result = await super.claim(request);
          return result.claimed ? result : { claimed: false, record: { response: undefined, ...result.record } };
        }
      })(),
  ],
  [
    'a claim that reads, then writes: two concurrent claims both win',
    CLAIM_RACE,
    () =>
      new (class extends Flawed {
        override async claim(request: ClaimRequest): Promise<ClaimResult> {
          const blocked = await this.blocker(request);
          if (blocked !== undefined) return blocked;
          await this.gap();
          this.map.delete(request.key); // writes as if it were alone
          return super.claim(request);
        }
      })(),
  ],
  [
    'a claim that reads, then writes, under a lock held in the store instance: two processes on one database both win',
    SHARED_CLAIM_RACE,
    onOneDatabase(
      (database) =>
        new (class extends InstanceLocked {
          override claim(request: ClaimRequest): Promise<ClaimResult> {
            return this.serial(async () => {
              const read = this.map.get(request.key);
              const blocked = await this.blocker(request);
              if (blocked !== undefined) return blocked;
              await this.gap();
              // Writes as if the record were still the one it read.
              if (read === undefined) this.map.delete(request.key);
              else this.map.set(request.key, read);
              return super.claim(request);
            });
          }
        })(database),
    ),
  ],
  [
    'a completion that reads, then writes, under a lock held in the store instance: a takeover from another process lands in between',
    COMPLETION_RACE,
    onOneDatabase(
      (database) =>
        new (class extends InstanceLocked {
          override complete(request: CompleteRequest): Promise<CompleteResult> {
            return this.serial(async () => {
              const read = this.map.get(request.key);
              if (read?.owner !== request.owner || read.status !== 'INPROGRESS') return super.complete(request);
              await this.gap();
              this.map.set(request.key, read); // writes over whatever the other process wrote meanwhile
              return super.complete(request);
            });
          }
        })(database),
    ),
  ],
  [
    'a completion that reads, then writes: a late completion lands on the record another attempt has just taken over',
    COMPLETION_RACE,
    () =>
      new (class extends Flawed {
        override async complete(request: CompleteRequest): Promise<CompleteResult> {
          const current = this.map.get(request.key);
          if (current?.owner !== request.owner || current.status !== 'INPROGRESS') return super.complete(request);
          await this.gap();
          const now = this.map.get(request.key);
          if (now !== undefined) now.owner = request.owner; // the write is not conditional: it applies to whatever is there
          return super.complete(request);
        }
      })(),
  ],
  [
    'a release that reads, then deletes: a late release deletes the record another attempt has just taken over',
    RELEASE_RACE,
    () =>
      new (class extends Flawed {
        override async release(request: ReleaseRequest): Promise<ReleaseResult> {
          const current = this.map.get(request.key);
          if (current?.owner !== request.owner || current.status !== 'INPROGRESS') return super.release(request);
          await this.gap();
          this.map.delete(request.key);
          return { released: true };
        }
      })(),
  ],
  [
    'a takeover that updates the old record in place: the fields the new claim does not set (fingerprint, response, error) survive it',
    CLAIMED_ANEW,
    () =>
      new (class extends Flawed {
        override async claim(request: ClaimRequest): Promise<ClaimResult> {
          const old = this.map.get(request.key);
          const result = await super.claim(request);
          const written = this.map.get(request.key);
          if (result.claimed && old !== undefined && written !== undefined) this.map.set(request.key, { ...old, ...written });
          return result;
        }
      })(),
  ],
  ['keys cut to 250 characters (the limit of memcached and some caches)', EXACT_KEYS, () => withKeys((key) => key.slice(0, 250))],
  ['keys compared without case (a case-insensitive SQL collation)', EXACT_KEYS, () => withKeys((key) => key.toLowerCase())],
  [
    'a completion fenced by the lease too: an attempt past its lease cannot complete even when no other attempt took the record over',
    LATE_COMPLETION,
    () =>
      new (class extends Flawed {
        override async complete(request: CompleteRequest): Promise<CompleteResult> {
          const current = this.map.get(request.key);
          if (current?.leaseUntil !== undefined && Number(current.leaseUntil) < (request.now ?? Date.now()))
            return { completed: false, record: await this.inspectRecord(request.key) };
          return super.complete(request);
        }
      })(),
  ],
  [
    'absent fields read back as SQL NULLs (`fingerprint: null`, `response: null`)',
    RESPONSES,
    () =>
      new (class extends Flawed {
        override async claim(request: ClaimRequest): Promise<ClaimResult> {
          const result = await super.claim(request);
          return result.claimed ? result : { claimed: false, record: { fingerprint: null, response: null, ...result.record } as unknown as IdempotencyRecord };
        }
      })(),
  ],
  [
    'an unfenced completeWithWrites: it completes the record of another owner',
    TRANSACTIONS,
    () =>
      new (class extends Transactional {
        override async completeWithWrites(request: CompleteRequest, writes: readonly unknown[]): Promise<CompleteResult> {
          const current = this.map.get(request.key);
          if (current !== undefined) current.owner = request.owner;
          return super.completeWithWrites(request, writes);
        }
      })(),
  ],
  [
    'a claimCompleted that overwrites a live COMPLETED record',
    TRANSACTIONS,
    () =>
      new (class extends Transactional {
        override async claimCompleted(request: ClaimCompletedRequest, writes: readonly unknown[]): Promise<ClaimResult> {
          this.map.delete(request.key);
          return super.claimCompleted(request, writes);
        }
      })(),
  ],
  [
    'a claimCompleted that overwrites a live INPROGRESS record (an attempt that claimed without writes, within its lease)',
    TRANSACTIONS,
    () =>
      new (class extends Transactional {
        override async claimCompleted(request: ClaimCompletedRequest, writes: readonly unknown[]): Promise<ClaimResult> {
          if (this.map.get(request.key)?.status === 'INPROGRESS') this.map.delete(request.key);
          return super.claimCompleted(request, writes);
        }
      })(),
  ],
  [
    'a claimCompleted that leaves out the fingerprint',
    TRANSACTIONS,
    () =>
      new (class extends Transactional {
        override async claimCompleted(request: ClaimCompletedRequest, writes: readonly unknown[]): Promise<ClaimResult> {
          const { fingerprint: _left, ...rest } = request;
          return super.claimCompleted(rest, writes);
        }
      })(),
  ],
  [
    "a completeWithWrites that drops the record's fingerprint",
    TRANSACTIONS,
    () =>
      new (class extends Transactional {
        override async completeWithWrites(request: CompleteRequest, writes: readonly unknown[]): Promise<CompleteResult> {
          const result = await super.completeWithWrites(request, writes);
          if (result.completed) delete this.map.get(request.key)?.fingerprint;
          return result;
        }
      })(),
  ],
  [
    'a claimCompleted that drops the final error: a duplicate of a call that failed replays a success',
    TRANSACTION_OUTCOMES,
    () =>
      new (class extends Transactional {
        override async claimCompleted(request: ClaimCompletedRequest, writes: readonly unknown[]): Promise<ClaimResult> {
          const { error: _dropped, ...rest } = request;
          return super.claimCompleted(rest, writes);
        }
      })(),
  ],
  [
    'a claimCompleted that drops `responseOmitted`: a duplicate replays `undefined` for a result that was not stored',
    TRANSACTION_OUTCOMES,
    () =>
      new (class extends Transactional {
        override async claimCompleted(request: ClaimCompletedRequest, writes: readonly unknown[]): Promise<ClaimResult> {
          const { responseOmitted: _dropped, ...rest } = request;
          return super.claimCompleted(rest, writes);
        }
      })(),
  ],
  [
    'a completeWithWrites that drops `responseOmitted`: a duplicate replays `undefined` for a result that was not stored',
    TRANSACTION_OUTCOMES,
    () =>
      new (class extends Transactional {
        override async completeWithWrites(request: CompleteRequest, writes: readonly unknown[]): Promise<CompleteResult> {
          const { responseOmitted: _dropped, ...rest } = request;
          return super.completeWithWrites(rest, writes);
        }
      })(),
  ],
  [
    'a read that drops `responseOmitted`: a duplicate whose run fails replays `undefined` for a result that was not stored',
    READ,
    () =>
      new (class extends Readable {
        override async read(key: string): Promise<IdempotencyRecord | undefined> {
          const record = await super.read(key);
          if (record === undefined) return record;
          const { responseOmitted: _dropped, ...rest } = record;
          return rest;
        }
      })(),
  ],
  [
    'a completion that returns `completed: true` when it did not write',
    AFTER_LEASE,
    () =>
      new (class extends Flawed {
        override async complete(request: CompleteRequest): Promise<CompleteResult> {
          await super.complete(request);
          return { completed: true, responseStored: true };
        }
      })(),
  ],
  [
    "time judged by the server's clock instead of the request's `now`",
    AFTER_LEASE,
    () =>
      new (class extends Flawed {
        override async claim(request: ClaimRequest): Promise<ClaimResult> {
          return super.claim({ ...request, now: Date.now() });
        }
      })(),
  ],
];

test.each(flaws)('the contract rejects %s, in the check %j', async (_, check, make) => {
  expect(Object.keys(await rejections(make))).toContain(check);
});

/** Flaws each caught by one assertion of its check alone: without that assertion, the check passes the flaw. */
const narrowFlaws: readonly [flaw: string, check: string, make: () => IdempotencyStore][] = [
  [
    'a takeover after the retention that returns the replaced record with its response as `previous`',
    AFTER_RETENTION,
    () =>
      new (class extends Flawed {
        override async claim(request: ClaimRequest): Promise<ClaimResult> {
          const before = await this.inspectRecord(request.key);
          const result = await super.claim(request);
          return result.claimed && result.previous !== undefined && before?.response !== undefined
            ? { ...result, previous: { ...result.previous, response: before.response } }
            : result;
        }
      })(),
  ],
  [
    "a retention judged to its second's first millisecond (a COMPLETED record taken over within the last second it is kept)",
    WITHIN_RETENTION,
    () =>
      new (class extends Flawed {
        override async claim(request: ClaimRequest): Promise<ClaimResult> {
          const current = this.map.get(request.key);
          if (current?.status === 'COMPLETED' && Number(current.expiresAt) * 1000 < request.now) this.map.delete(request.key);
          return super.claim(request);
        }
      })(),
  ],
  [
    'a retention whose value loses its sign (a record claimed before 1970 is held by a lease in the future)',
    "a caller's clock before 1970 (a test's manualClock) writes records that read back: negative leases and retentions",
    () =>
      new (class extends Flawed {
        override async claim(request: ClaimRequest): Promise<ClaimResult> {
          return super.claim({ ...request, leaseUntil: Math.abs(request.leaseUntil) });
        }
      })(),
  ],
  [
    'a completion that marks a stored response omitted as well',
    RESPONSES,
    () =>
      new (class extends Flawed {
        override async complete(request: CompleteRequest): Promise<CompleteResult> {
          const result = await super.complete(request);
          const current = this.map.get(request.key);
          if (result.completed && current !== undefined) current.responseOmitted = '1';
          return result;
        }
      })(),
  ],
  [
    'a response too large to store once compressed (400 KB, as a DynamoDB item) left out without a word: completed, not marked omitted',
    'large responses: 1 MB of JSON is stored and comes back intact; one too large to store is marked omitted',
    () =>
      new (class extends Flawed {
        override async complete(request: CompleteRequest): Promise<CompleteResult> {
          if (gzipSync(request.response ?? '').length <= 400 * 1024) return super.complete(request);
          const result = await super.complete({ ...request, response: undefined });
          return result.completed ? { completed: true, responseStored: false } : result;
        }
      })(),
  ],
  [
    "a refused completion that still writes its retention on the holder's record",
    FENCED_COMPLETION,
    () =>
      new (class extends Flawed {
        override async complete(request: CompleteRequest): Promise<CompleteResult> {
          const result = await super.complete(request);
          const current = this.map.get(request.key);
          if (!result.completed && current?.status === 'INPROGRESS') current.expiresAt = String(request.expiresAt);
          return result;
        }
      })(),
  ],
  [
    'a release by its owner that deletes its COMPLETED record, yet answers that it was refused',
    FENCED_RELEASE,
    () =>
      new (class extends Flawed {
        override async release(request: ReleaseRequest): Promise<ReleaseResult> {
          const result = await super.release(request);
          if (!result.released && result.record?.owner === request.owner) this.map.delete(request.key);
          return result;
        }
      })(),
  ],
  [
    'a completion sent again by its owner that overwrites the stored response, yet answers that it was refused',
    'ambiguous writes: a retried claim, completion or release meets its own result',
    () =>
      new (class extends Flawed {
        override async complete(request: CompleteRequest): Promise<CompleteResult> {
          const result = await super.complete(request);
          const current = this.map.get(request.key);
          if (result.completed || current?.owner !== request.owner || current.status !== 'COMPLETED') return result;
          current.status = 'INPROGRESS';
          await super.complete(request);
          return result;
        }
      })(),
  ],
  [
    'a completion that drops a final error (its duplicates replay a success)',
    'a response that could not be stored and a final error are recorded',
    () =>
      new (class extends Flawed {
        override async complete(request: CompleteRequest): Promise<CompleteResult> {
          return super.complete({ ...request, error: undefined });
        }
      })(),
  ],
  [
    'a release that answers `released: true` when another owner holds the record (it deletes nothing)',
    RELEASE_RACE,
    () =>
      new (class extends Flawed {
        override async release(request: ReleaseRequest): Promise<ReleaseResult> {
          const result = await super.release(request);
          return !result.released && result.record?.status === 'INPROGRESS' ? { released: true } : result;
        }
      })(),
  ],
  [
    'a completion without a response that keeps the lease on the record',
    CLAIMED_ANEW,
    () =>
      new (class extends Flawed {
        override async complete(request: CompleteRequest): Promise<CompleteResult> {
          const lease = this.map.get(request.key)?.leaseUntil;
          const result = await super.complete(request);
          const current = this.map.get(request.key);
          if (result.completed && request.response === undefined && lease !== undefined && current !== undefined) current.leaseUntil = lease;
          return result;
        }
      })(),
  ],
];

test.each(narrowFlaws)('the contract rejects %s, in the check %j', async (_, check, make) => {
  expect(Object.keys(await rejections(make))).toContain(check);
});

test('the messages of the checks that catch non-atomic writes, in-place claims and narrowed keys say what the store did and what it must do', async () => {
  const messages = await Promise.all(flaws.filter(([, check]) => NEW_CHECKS.includes(check)).map(async ([, check, make]) => (await rejections(make))[check]));
  expect(messages).toEqual([
    expect.stringMatching(
      /2 of 16 claims through two stores won: the store serialises claims within one instance.*one conditional write that the database decides/s,
    ),
    expect.stringMatching(/both won.*A completion must be one conditional write/s),
    expect.stringMatching(/both won.*A completion must be one conditional write/s),
    expect.stringMatching(/deleted the record the takeover had just written.*A release must be one conditional delete/s),
    expect.stringMatching(/kept its fields: a claim must write the whole record/),
    expect.stringMatching(/<…#1000 × y then 2> met the record of <…#1000 × y then 1>: the store cuts or case-folds keys/),
    expect.stringMatching(/<…#payments> met the record of <…#Payments>: the store cuts or case-folds keys/),
    expect.stringMatching(/past its lease, which no other attempt had taken over, was refused.*never by the lease/s),
  ]);
});

test('a claim refused without its record (`{ claimed: false }` alone) fails the checks with a message that names the rule it breaks, never a TypeError from inside a check', async () => {
  const failed = await rejections(
    () =>
      new (class extends Flawed {
        override async claim(request: ClaimRequest): Promise<ClaimResult> {
          const result = await super.claim(request);
          return result.claimed ? result : ({ claimed: false } as unknown as ClaimResult);
        }
      })(),
  );
  expect(Object.keys(failed)).toContain(CLAIM_WRITES);
  for (const message of Object.values(failed))
    expect(message).toMatch(/answered \{"claimed":false\}: a refused claim must return the live record that refused it/);
});

test('the contract passes InMemoryStore, and the bases of the flawed stores without a flaw', async () => {
  expect(await rejections(() => new InMemoryStore())).toEqual({});
  expect(await rejections(() => new Flawed())).toEqual({});
  expect(await rejections(() => new Transactional())).toEqual({});
  expect(await rejections(() => new Readable())).toEqual({});
});
