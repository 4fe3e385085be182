/**
 * A store of one's own that answers what the protocol has no reading of (a refusal without its
 * record, no answer at all, a status the protocol does not have): the call fails closed with a typed
 * error that names the store's mistake, never a `TypeError` from deep inside the engine, and never
 * runs twice.
 */
import { type ClaimResult, type IdempotencyEvent, type IdempotencyStore, makeIdempotent, transaction } from '../../lib/index.js';
import { InMemoryStore, manualClock } from '../../lib/testing/index.js';
import { rejection } from '../support/rejections.js';
import { collectingLogger } from '../support/warnings.js';

const NOW = 1_700_000_000_000;

/** InMemoryStore whose claim applies, then answers `answer` instead of its own answer. */
function misclaiming(answer: unknown): InMemoryStore & { releases: number; claimed: string[] } {
  const store = Object.assign(new InMemoryStore(), { releases: 0, claimed: [] as string[] });
  const claim = store.claim.bind(store);
  const release = store.release.bind(store);
  store.claim = async (request) => {
    store.claimed.push(request.key);
    await claim(request);
    return answer as ClaimResult;
  };
  store.release = async (request) => {
    store.releases++;
    return release(request);
  };
  return store;
}

describe("a claim's answer the protocol has no reading of", () => {
  test.each([
    ['`claimed: false` without its record', { claimed: false }],
    ['`claimed: false` with a record that is not one', { claimed: false, record: null }],
    ['nothing', undefined],
    ['null', null],
    ['a record of an unknown status', { claimed: false, record: { key: 'k', owner: 'other', status: 'DONE', expiresAt: 2_000_000_000 } }],
    ['a truthy `claimed` that is not `true`', { claimed: 'yes' }],
  ])('%s is STORE_FAILURE naming the mistake: the function does not run, and the record the claim may have written is released', async (_, answer) => {
    const store = misclaiming(answer);
    let runs = 0;
    const once = makeIdempotent(async (_id: number) => ++runs, { store, name: 'misclaim', now: () => NOW });
    const error = await rejection(once(1));
    expect(error.code).toBe('STORE_FAILURE');
    expect(error.message).toContain('its claim answered neither `claimed: true` nor the record, INPROGRESS or COMPLETED, that refused it');
    expect(error.cause).toBeInstanceOf(TypeError);
    expect(runs).toBe(0);
    expect(store.releases).toBe(1);
    expect(store.claimed).toHaveLength(1);
    expect(await store.inspect(store.claimed[0]!)).toBeUndefined();
  });

  test('an atomic commit answered `claimed: false` without its record is COMMIT_FAILED (its writes may or may not be applied), with the mistake as its cause', async () => {
    const memory = new InMemoryStore();
    const store: IdempotencyStore = {
      claim: (request) => memory.claim(request),
      complete: (request) => memory.complete(request),
      release: (request) => memory.release(request),
      claimCompleted: async () => ({ claimed: false }) as unknown as ClaimResult,
    };
    const once = makeIdempotent(async (_id: number) => 'ran', { store, name: 'misclaim-atomic', atomic: true, now: () => NOW });
    const error = await rejection(once(1));
    expect(error.code).toBe('COMMIT_FAILED');
    expect((error.cause as Error).message).toContain('claim answered neither `claimed: true` nor the record');
  });
});

describe("a completion's answer the protocol has no reading of", () => {
  test.each([
    ['nothing', undefined],
    ['null', null],
    ['an object without `completed`', { ok: true }],
  ])('%s is a completion that could not be confirmed: the caller gets its result, with a warning that names the mistake', async (_, answer) => {
    const store = new InMemoryStore();
    store.complete = async () => answer as never;
    const { logger, lines } = collectingLogger();
    let runs = 0;
    const once = makeIdempotent(async (_id: number) => ++runs, { store, name: 'miscomplete', now: () => NOW, logger });
    expect(await once(1)).toBe(1);
    expect(runs).toBe(1);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      message: expect.stringContaining('could not mark the record COMPLETED'),
      error: 'its completion answered neither `completed: true` nor `completed: false`',
    });
    // The record is not taken for completed: a duplicate meets it INPROGRESS, never runs the function again.
    expect((await rejection(once(1))).code).toBe('IN_PROGRESS');
    expect(runs).toBe(1);
  });
});

test('a completion answered `completed: true` without `responseStored` stored the response, as a `claimCompleted` answer without it did: no warning, and an in-process duplicate replays it from the cache', async () => {
  const store = new InMemoryStore();
  const complete = store.complete.bind(store);
  store.complete = async (request) => {
    await complete(request);
    return { completed: true } as never;
  };
  const { logger, lines } = collectingLogger();
  let runs = 0;
  const once = makeIdempotent(async (_id: number) => ++runs, { store, name: 'completed-alone', cacheSize: 1, now: () => NOW, logger });
  expect(await once(1)).toBe(1);
  expect(await once(1)).toBe(1);
  expect(runs).toBe(1);
  expect(lines).toEqual([]);
});

test('a completion answered `completed: false` with `record: null` found no record, as one with `record: undefined` does: the caller gets its result, with the warning that the record was gone, and no takeover is counted', async () => {
  const store = new InMemoryStore();
  store.complete = async () => ({ completed: false, record: null }) as never;
  const { logger, lines } = collectingLogger();
  const events: IdempotencyEvent[] = [];
  const once = makeIdempotent(async (_id: number) => 'ran', {
    store,
    name: 'nulled',
    now: () => NOW,
    logger,
    observability: (event) => void events.push(event),
  });
  expect(await once(1)).toBe('ran');
  expect(events).toEqual(['miss', 'bookkeepingFailure']);
  expect(lines.map((line) => JSON.parse(line).message)).toEqual([expect.stringContaining('the record was deleted while the call ran')]);
});

describe("a release's answer of `record: null` (a store of one's own that says no record so)", () => {
  test('after a function that threw past its lease: the caller gets its own error, and no takeover is counted', async () => {
    const store = new InMemoryStore();
    const release = store.release.bind(store);
    store.release = async (request) => {
      await release(request);
      return { released: false, record: null } as never;
    };
    const clock = manualClock(NOW);
    const events: IdempotencyEvent[] = [];
    const failure = new Error('declined');
    const once = makeIdempotent(
      async (_id: number) => {
        clock.advance(61_000);
        throw failure;
      },
      { store, name: 'misrelease', now: clock.now, observability: (event) => void events.push(event) },
    );
    await expect(once(1)).rejects.toBe(failure);
    expect(events).toEqual(['miss']);
  });

  test('after a commit that got no answer: COMMIT_FAILED, counted as a bookkeeping failure, not as a takeover', async () => {
    const memory = new InMemoryStore();
    const lost = new Error('socket hang up');
    const store: IdempotencyStore = {
      claim: (request) => memory.claim(request),
      complete: (request) => memory.complete(request),
      release: async (request) => {
        await memory.release(request);
        return { released: false, record: null } as never;
      },
      completeWithWrites: async () => {
        throw lost;
      },
    };
    const events: IdempotencyEvent[] = [];
    const pay = makeIdempotent(
      async (id: string) => {
        transaction().put({ TableName: 'payments', Item: { id } });
        return 'paid';
      },
      { store, name: 'misrelease-commit', transactions: true, now: () => NOW, observability: (event) => void events.push(event) },
    );
    const error = await rejection(pay('p1'));
    expect(error.code).toBe('COMMIT_FAILED');
    expect(error.cause).toBe(lost);
    expect(error.record).toBeUndefined();
    expect(events).toEqual(['miss', 'bookkeepingFailure']);
  });
});
