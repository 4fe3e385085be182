/**
 * The contract can fail: stores broken in the ways that cause double executions are caught, each
 * by the check that names the broken rule.
 */
import type { ClaimRequest, CompleteRequest, IdempotencyStore, OutcomeEncryption, RecordSummary, ReleaseRequest } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { InMemoryStore, type StoreCheck, storeContract } from '../../lib/testing/index.js';
import { inspector, ioredisClient, pttl } from '../support/redis.js';

/** The names of the checks that reject. */
async function failures(checks: readonly StoreCheck[]): Promise<string[]> {
  const failed: string[] = [];
  for (const check of checks) await check.run().catch(() => failed.push(check.name));
  return failed;
}

/** A store that passes every call to `inner`, except those `overrides` replaces. */
function broken(inner: IdempotencyStore, overrides: Partial<IdempotencyStore>): IdempotencyStore {
  return {
    claim: (request) => inner.claim(request),
    complete: (request) => inner.complete(request),
    release: (request) => inner.release(request),
    inspect: (key) => inner.inspect!(key),
    forget: (key, onlyIf, leaseUntil) => inner.forget!(key, onlyIf, leaseUntil),
    forgetChecksLease: inner.forgetChecksLease === true,
    ...overrides,
  };
}

/** The checks an InMemoryStore fails once `overrides` break it. */
function inMemoryFailures(overrides: (inner: InMemoryStore) => Partial<IdempotencyStore>): Promise<string[]> {
  return failures(
    storeContract(() => {
      const inner = new InMemoryStore();
      return broken(inner, overrides(inner));
    }),
  );
}

test('an unfenced completion (it completes whoever holds the record) fails the fencing checks', async () => {
  const failed = await inMemoryFailures((inner) => ({
    complete: async (request: CompleteRequest) => {
      const result = await inner.complete(request);
      if (result.completed || result.record?.status !== 'INPROGRESS') return result;
      return inner.complete({ ...request, owner: result.record.owner });
    },
  }));
  expect(failed).toEqual([
    'after its lease an INPROGRESS record is taken over, and its old owner can neither complete nor release it',
    "complete is fenced: another owner's completion changes nothing and returns the record",
    "a late completion racing a takeover: exactly one of them wins, and the record is the winner's",
  ]);
});

test('a release that deletes its own COMPLETED record fails the release check', async () => {
  const failed = await inMemoryFailures((inner) => ({
    release: async (request: ReleaseRequest) => {
      const result = await inner.release(request);
      if (result.released || result.record?.owner !== request.owner) return result;
      await inner.forget(request.key);
      return { released: true };
    },
  }));
  expect(failed).toContain("release is fenced by owner and status: never another's record, never a COMPLETED one");
});

test('a forget that declares it checks the lease but ignores it fails the forget-by-lease check', async () => {
  const failed = await inMemoryFailures((inner) => ({ forget: (key, onlyIf) => inner.forget(key, onlyIf) }));
  expect(failed).toEqual([
    'forget by lease (when the store declares forgetChecksLease) deletes only the attempt whose lease ends then, never one that took it over',
  ]);
});

test("a forget that honours only `onlyIf: 'COMPLETED'` (it deletes a COMPLETED record when told to delete only an INPROGRESS one: forgetRecord's stuck-attempt clean-up would run a call that succeeded again) fails the forget check", async () => {
  const failed = await inMemoryFailures((inner) => ({
    forget: (key, onlyIf, leaseUntil) => inner.forget(key, onlyIf === 'COMPLETED' ? onlyIf : undefined, leaseUntil),
  }));
  expect(failed).toEqual(['forget (when the store has it) deletes a record, only while it has the status asked for']);
});

test('a release fenced by the lease too (an attempt that failed past its lease, which no other attempt took over, cannot release its record) fails the release check', async () => {
  const failed = await inMemoryFailures((inner) => ({
    release: async (request: ReleaseRequest) => {
      const summary = await inner.inspect(request.key);
      const record = summary && {
        key: request.key,
        owner: request.owner,
        status: summary.status,
        expiresAt: summary.expiresAt!,
        leaseUntil: summary.leaseUntil!,
      };
      if (summary?.leaseUntil !== undefined && summary.leaseUntil < Date.now()) return { released: false, record };
      return inner.release(request);
    },
  }));
  expect(failed).toEqual(['an attempt that outlives its lease still releases its record while no other attempt has taken it over']);
});

test('an inspect that misreports the fingerprint, an omitted response or the retention of a COMPLETED record fails the inspect check', async () => {
  const misreports: Record<string, (summary: RecordSummary) => RecordSummary> = {
    'a fingerprint on every record': (summary) => ({ ...summary, hasFingerprint: true }),
    'no omitted response': (summary) => ({ ...summary, responseOmitted: false }),
    "a COMPLETED record's retention as its claim set it": (summary) =>
      summary.status === 'COMPLETED' ? { ...summary, expiresAt: summary.expiresAt! - 60 } : summary,
  };
  for (const [what, misreport] of Object.entries(misreports)) {
    const failed = await inMemoryFailures((inner) => ({
      inspect: async (key) => {
        const summary = await inner.inspect(key);
        return summary && misreport(summary);
      },
    }));
    expect([what, failed]).toEqual([what, ['inspect (when the store has it) shows state and sizes, never the response, error or owner']]);
  }
});

test('a claim that reads, then writes (not one conditional write) fails the race checks', async () => {
  const failed = await inMemoryFailures((inner) => ({
    claim: async (request: ClaimRequest) => {
      const current = await inner.inspect(request.key);
      const live =
        current !== undefined &&
        current.expiresAt! >= Math.floor(request.now / 1000) &&
        !(current.status === 'INPROGRESS' && current.leaseUntil! < request.now);
      if (live) return inner.claim(request);
      // Every concurrent claim has read by now, and each writes as if it were alone.
      await new Promise((resolve) => setImmediate(resolve));
      await inner.forget(request.key);
      return inner.claim(request);
    },
  }));
  expect(failed).toEqual(
    expect.arrayContaining([
      'concurrent claims of one key: exactly one wins, the others get its record',
      'concurrent takeovers of a lapsed record: exactly one wins',
    ]),
  );
});

test("a store that judges leases and retention by its own clock, not the caller's, fails the takeover and retention checks", async () => {
  const failed = await inMemoryFailures((inner) => ({ claim: (request: ClaimRequest) => inner.claim({ ...request, now: Date.now() }) }));
  expect(failed).toEqual(
    expect.arrayContaining([
      'after its lease an INPROGRESS record is taken over, and its old owner can neither complete nor release it',
      'after its retention a record is claimed anew; the claim returns the old record without its response',
    ]),
  );
});

test("a store that takes a record over at its lease's last millisecond fails the boundary check", async () => {
  const failed = await inMemoryFailures((inner) => ({ claim: (request: ClaimRequest) => inner.claim({ ...request, now: request.now + 1 }) }));
  expect(failed).toContain('a record is not taken over within its lease, even at its last millisecond');
});

test('a store that keeps an undefined response as null fails the response check', async () => {
  const failed = await inMemoryFailures((inner) => ({
    complete: (request: CompleteRequest) => inner.complete({ ...request, response: request.response ?? 'null' }),
  }));
  expect(failed).toContain('responses come back exactly: undefined, empty, Unicode, escapes');
});

test("a claim by its owner that takes its own COMPLETED record back (INPROGRESS again: a durable execution's replay would run it twice) fails the owner's check", async () => {
  const failed = await inMemoryFailures((inner) => ({
    claim: async (request: ClaimRequest) => {
      const result = await inner.claim(request);
      if (result.claimed || result.record.owner !== request.owner || result.record.status !== 'COMPLETED') return result;
      await inner.forget(request.key);
      return inner.claim(request);
    },
  }));
  expect(failed).toEqual([
    "a claim by the owner of a COMPLETED record (a durable execution's replay) is refused with that record, within its lease and after it, and leaves it COMPLETED",
  ]);
});

test("a refused completion that leaves out its owner's stored outcome (a retried completion could not tell an omitted response or a final error) fails the ambiguous-writes check", async () => {
  const failed = await inMemoryFailures((inner) => ({
    complete: async (request: CompleteRequest) => {
      const result = await inner.complete(request);
      if (result.completed || result.record === undefined) return result;
      const { response: _response, error: _error, responseOmitted: _omitted, ...state } = result.record;
      return { completed: false, record: state };
    },
  }));
  expect(failed).toEqual(['ambiguous writes: a retried claim, completion or release meets its own result']);
});

test("a refused completion that opens another owner's sealed outcome fails the sealing check, and only it", async () => {
  // Refused, it reads the record as its owner would: the outcome opened, the key provider asked.
  const opening = (inner: InMemoryStore): Partial<IdempotencyStore> => ({
    complete: async (request: CompleteRequest) => {
      const result = await inner.complete(request);
      if (result.completed || result.record === undefined || result.record.owner === request.owner) return result;
      return inner.complete({ ...request, owner: result.record.owner });
    },
  });
  const sealing = (encryption: OutcomeEncryption) => {
    const inner = new InMemoryStore({ encryption });
    return broken(inner, opening(inner));
  };
  const failed = await failures(storeContract(() => new InMemoryStore(), { sealing }));
  expect(failed).toEqual([
    "a refused completion or release returns the record's state without opening another owner's sealed outcome, whether or not the key provider answers",
  ]);
});

test('a completion that stores its outcome in the clear while the key provider fails (no key to seal with) fails the sealing check, and only it', async () => {
  // Without a key it writes through a store that does not encrypt, over the same records.
  const sealing = (encryption: OutcomeEncryption) => {
    const inner = new InMemoryStore({ encryption });
    const plain = Object.assign(new InMemoryStore(), { records: (inner as unknown as { records: unknown }).records });
    return broken(inner, {
      complete: async (request: CompleteRequest) => {
        const key = await encryption.currentKey().catch(() => undefined);
        return (key === undefined ? plain : inner).complete(request);
      },
    });
  };
  const failed = await failures(storeContract(() => new InMemoryStore(), { sealing }));
  expect(failed).toEqual([
    'a completion while the key provider fails completes the record without its outcome, never in the clear: its duplicates are told it was not stored, and the call never runs again',
  ]);
});

test('options that are not functions are refused up front with a TypeError naming the option', () => {
  const make = () => new InMemoryStore();
  expect(() => storeContract(undefined as never)).toThrow(new TypeError('storeContract: `makeStore` must be a function that returns a store.'));
  for (const option of ['ttlOf', 'writeRecord', 'sealing'])
    expect(() => storeContract(make, { [option]: 'yes' })).toThrow(new TypeError(`storeContract: \`${option}\` must be a function.`));
});

test('a misspelt option, which would leave out the checks it enables, and options that are not an object are refused up front', () => {
  const make = () => new InMemoryStore();
  // `ttlof`: "no key ever expires", which the TTL check fails; misspelt, it would be left out and the contract pass.
  expect(() => storeContract(make, { ttlof: async () => undefined } as never)).toThrow(
    new TypeError('storeContract: unknown option `ttlof`. Known options: ttlOf, writeRecord, sealing, sharedRecords.'),
  );
  expect(() => storeContract(make, null as never)).toThrow(new TypeError('storeContract: options must be an object.'));
});

test('sharedRecords: true fails stores that do not share their records (each instance its own, as a prefix drawn per instance would keep them), which the checks otherwise take for stores in memory', async () => {
  const apart = () => new InMemoryStore();
  expect(await failures(storeContract(apart))).toEqual([]);
  expect((await failures(storeContract(apart, { sharedRecords: true }))).sort()).toEqual([
    "a late completion racing a takeover: exactly one of them wins, and the record is the winner's",
    'a late release racing a takeover never deletes the record the takeover wrote',
    'concurrent claims through two stores that share their records (two processes on one database): exactly one wins',
  ]);
  expect(await failures(storeContract(apart, { sharedRecords: false }))).toEqual([]);
});

test('a forget that ignores the lease passes when the store does not declare forgetChecksLease: the contract binds what a store declares', async () => {
  const failed = await inMemoryFailures((inner) => ({ forget: (key, onlyIf) => inner.forget(key, onlyIf), forgetChecksLease: false }));
  expect(failed).toEqual([]);
});

test('a store with completeWithWrites alone (no claimCompleted) has it checked: an unfenced one fails the transactional check', async () => {
  const failed = await inMemoryFailures((inner) => ({
    // Completes whoever holds the record, as a completion without its owner condition does.
    completeWithWrites: async (request: CompleteRequest) => {
      const result = await inner.complete(request);
      if (result.completed || result.record?.status !== 'INPROGRESS') return result;
      return inner.complete({ ...request, owner: result.record.owner });
    },
  }));
  expect(failed).toEqual([
    'completeWithWrites and claimCompleted (when the store has them) are fenced and conditional as complete and claim are, and keep the fingerprint',
  ]);
});

test('keys that outlive their retention by an hour fail the expiry check: it allows a key the time the check takes, no more', async () => {
  let last = new InMemoryStore();
  const failed = await failures(
    storeContract(
      () => {
        last = new InMemoryStore();
        return last;
      },
      {
        // The key's end as the record's retention and lease set it, an hour late.
        ttlOf: async (key) => {
          const summary = await last.inspect(key);
          if (summary === undefined) return undefined;
          const end = Math.max((summary.expiresAt! + 1) * 1000 - 1, summary.leaseUntil ?? 0);
          return end + 3_600_000 - Date.now();
        },
      },
    ),
  );
  expect(failed).toEqual(['every key expires with its retention, never before its lease, also after a takeover']);
});

test('a forget that matches the lease to within a millisecond (an attempt whose lease ends a millisecond later is deleted) fails the forget-by-lease check', async () => {
  const failed = await inMemoryFailures((inner) => ({
    forget: async (key, onlyIf, leaseUntil) => {
      const current = await inner.inspect(key);
      const near = leaseUntil !== undefined && current?.leaseUntil !== undefined && Math.abs(current.leaseUntil - leaseUntil) <= 1;
      return inner.forget(key, onlyIf, near ? current.leaseUntil : leaseUntil);
    },
  }));
  expect(failed).toEqual([
    'forget by lease (when the store declares forgetChecksLease) deletes only the attempt whose lease ends then, never one that took it over',
  ]);
});

describe('on Redis', () => {
  // A store's client connects at its first call: opened as the block is collected, it would stay open when a `-t` filter skips these tests and their afterAll.
  const client = ioredisClient(undefined, { lazyConnect: true });
  const raw = inspector();
  const keyPrefix = 'catches:';
  afterAll(() => {
    client.disconnect();
    raw.disconnect();
  });

  // The key a store method wrote, left without a TTL when `applies` to the method's result.
  const persisting = (store: RedisStore, method: 'claim' | 'complete', applies: (result: object) => boolean) =>
    broken(store, {
      [method]: async (request: ClaimRequest & CompleteRequest) => {
        const result = await store[method](request);
        if (applies(result)) await raw.persist(keyPrefix + request.key);
        return result;
      },
    });

  test.each([
    ['a completion', 'complete', () => true],
    ['a takeover after a lease', 'claim', (result: object) => 'previous' in result],
  ] as const)('%s that leaves its key without a TTL (the store would keep it forever) fails the expiry check', async (_, method, applies) => {
    const store = persisting(new RedisStore({ client, keyPrefix }), method, applies);
    const failed = await failures(storeContract(() => store, { ttlOf: (key) => pttl(raw, keyPrefix + key) }));
    expect(failed).toEqual(['every key expires with its retention, never before its lease, also after a takeover']);
  });

  test.each([
    ['3 s before its lease and its retention end', 3_000],
    ["at the start of its retention's second (a record is live through its last millisecond)", 1_000],
  ])('a store whose keys expire %s fails the expiry check', async (_, early) => {
    const store = new RedisStore({ client, keyPrefix });
    // Every write that sets a TTL sets it `early` ms short: Redis forgets a record a claim still reads as held.
    const hasty = broken(store, {
      claim: async (request: ClaimRequest) => {
        const result = await store.claim(request);
        if (result.claimed) await raw.pexpire(keyPrefix + request.key, Math.max((await raw.pttl(keyPrefix + request.key)) - early, 1));
        return result;
      },
      complete: async (request: CompleteRequest) => {
        const result = await store.complete(request);
        if (result.completed) await raw.pexpire(keyPrefix + request.key, Math.max((await raw.pttl(keyPrefix + request.key)) - early, 1));
        return result;
      },
    });
    const failed = await failures(storeContract(() => hasty, { ttlOf: (key) => pttl(raw, keyPrefix + key) }));
    expect(failed).toEqual(['every key expires with its retention, never before its lease, also after a takeover']);
  });

  test('a completion that drops the fingerprint fails the completion check', async () => {
    const store = new RedisStore({ client, keyPrefix });
    const forgetful = broken(store, {
      complete: async (request: CompleteRequest) => {
        const result = await store.complete(request);
        await raw.hdel(keyPrefix + request.key, 'fingerprint');
        return result;
      },
    });
    const failed = await failures(storeContract(() => forgetful));
    expect(failed).toContain('complete stores the response and the new retention, keeps the fingerprint and ends the lease');
  });
});
