import v8 from 'node:v8';
import vm from 'node:vm';
import { jest } from '@jest/globals';
import {
  type ClaimRequest,
  type ClaimResult,
  type CompleteRequest,
  type CompleteResult,
  hashKey,
  type IdempotencyRecord,
  type IdempotencyStore,
  idempotency,
  makeIdempotent,
  type ReleaseRequest,
  type ReleaseResult,
} from '../../lib/index.js';
import { idempotency as leanIdempotency } from '../../lib/middy/index.js';
import { lambdaContext } from '../../lib/testing/index.js';
import { gate } from '../support/gate.js';
import { rejection } from '../support/rejections.js';
import { collectingLogger, omittedMessage } from '../support/warnings.js';

/** The record protocol in memory, with every request recorded. */
class MemoryStore implements IdempotencyStore {
  readonly records = new Map<string, IdempotencyRecord>();
  readonly claims: ClaimRequest[] = [];
  readonly completions: CompleteRequest[] = [];
  readonly releases: ReleaseRequest[] = [];

  get calls(): number {
    return this.claims.length + this.completions.length + this.releases.length;
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    this.claims.push(request);
    const old = this.records.get(request.key);
    const free = old === undefined || old.expiresAt < Math.floor(request.now / 1000) || (old.status === 'INPROGRESS' && (old.leaseUntil ?? 0) < request.now);
    if (!free) return { claimed: false, record: old };
    const { now: _now, ...rest } = request;
    this.records.set(request.key, { ...rest, status: 'INPROGRESS' });
    return { claimed: true };
  }

  async complete(request: CompleteRequest): Promise<CompleteResult> {
    this.completions.push(request);
    const old = this.records.get(request.key);
    if (old?.owner !== request.owner || old.status !== 'INPROGRESS') return { completed: false, record: old };
    const { leaseUntil: _lease, response: _response, ...kept } = old;
    this.records.set(request.key, {
      ...kept,
      status: 'COMPLETED',
      expiresAt: request.expiresAt,
      ...(request.response === undefined || request.responseOmitted ? {} : { response: request.response }),
      ...(request.responseOmitted ? { responseOmitted: true } : {}),
      ...(request.error === undefined ? {} : { error: request.error }),
    });
    return { completed: true, responseStored: !request.responseOmitted };
  }

  async release(request: ReleaseRequest): Promise<ReleaseResult> {
    this.releases.push(request);
    const old = this.records.get(request.key);
    if (old?.owner !== request.owner || old.status !== 'INPROGRESS') return { released: false, record: old };
    this.records.delete(request.key);
    return { released: true };
  }
}

const T0 = 1_700_000_000_000;
const quietLogger = () => ({ warn: jest.fn<(message: string) => void>() });

describe('options', () => {
  const store = new MemoryStore();
  const wrap = (options: unknown) => () => makeIdempotent(async (x: unknown) => x, { name: 'f', ...(options as object) } as never);
  const middleware = (options: unknown) => () => idempotency(options as never);

  test.each([
    ['an unknown option', { store, keys: () => 1 }, /makeIdempotent: unknown option `keys`/],
    ['no store', {}, /`store` is required/],
    ['a store without its methods', { store: { claim() {} } }, /`store` is required/],
    ['a key that is not a function', { store, key: 'id' }, /`key` must be a function/],
    ['a fingerprint that is not a function', { store, fingerprint: {} }, /`fingerprint` must be a function/],
    ['a now that is not a function', { store, now: 5 }, /`now` must be a function/],
    ['an empty name', { store, name: '' }, /`name` must be a non-empty string/],
    ['a name with #', { store, name: 'a#b' }, /`name` must be a non-empty string without '#'/],
    // DynamoDB writes a lone surrogate as '?' (UTF-8 has no form for it): two names would share records.
    ['a name with a lone surrogate', { store, name: 'a\ud800' }, /`name` must be .*, without lone surrogates/],
    // 'é' is 2 bytes: 1,003 of them are 2,006 bytes, too long for a record key with its hash.
    [
      'a name longer than a record key allows',
      { store, name: 'é'.repeat(1003) },
      /`name` must be a non-empty string without '#', at most 2,004 bytes of UTF-8/,
    ],
    ['a zero retention', { store, expiresAfterSeconds: 0 }, /`expiresAfterSeconds` must be a whole number, 1 or more \(got 0\)/],
    ['a fractional retention', { store, expiresAfterSeconds: 1.5 }, /`expiresAfterSeconds`/],
    ['a retention given as text', { store, expiresAfterSeconds: '60' }, /`expiresAfterSeconds` must be a whole number, 1 or more \(got "60"\)/],
    ['an unknown onMissingKey', { store, onMissingKey: 'ignore' }, /`onMissingKey` must be 'throw' or 'skip'/],
    ['a negative cacheSize', { store, cacheSize: -1 }, /`cacheSize` must be a whole number, 0 or more/],
    ['a zero lease', { store, leaseSeconds: 0 }, /`leaseSeconds`/],
    ['a logger without warn', { store, logger: {} }, /`logger` must have a `warn\(message\)` method/],
    // Poison batch records are logged through `error` when it is there: one that is no function would lose each line.
    [
      'a logger whose error is not a function',
      { store, logger: { warn() {}, error: 'stderr' } },
      /`logger` must have a `warn\(message\)` method, and `error`, if it has one, must be a method too/,
    ],
  ])('%s is a TypeError that names it', (_what, options, message) => {
    expect(wrap(options)).toThrow(TypeError);
    expect(wrap(options)).toThrow(message);
  });

  test.each([
    ['a Date', () => new Date(T0)],
    ['NaN', () => Number.NaN],
    ['text', () => String(T0)],
  ])('a now returning %s is a TypeError that names it, before any store call: not a STORE_FAILURE on every call', async (_what, now) => {
    const store = new MemoryStore();
    const fn = jest.fn(async (x: unknown) => x);
    const call = makeIdempotent(fn, { store, name: 'f', now: now as () => number })(1);
    await expect(call).rejects.toBeInstanceOf(TypeError);
    await expect(call).rejects.toThrow(new TypeError(`makeIdempotent: \`now\` must return epoch milliseconds, a finite number (got ${String(now())}).`));
    expect([fn.mock.calls.length, store.calls]).toEqual([0, 0]);
  });

  test('the middleware validates at construction too, naming itself', () => {
    expect(middleware({ store, cache: 3 })).toThrow(TypeError);
    expect(middleware({ store, cache: 3 })).toThrow(/^idempotency: unknown option `cache`\. Known options: store, key, fingerprint, name, .*cacheSize/);
    expect(middleware(undefined)).toThrow(new TypeError('idempotency: options must be an object.'));
    expect(middleware(null)).toThrow(new TypeError('idempotency: options must be an object.'));
    expect(() => leanIdempotency(undefined as never)).toThrow(new TypeError('idempotency: options must be an object.'));
    expect(middleware({ store })).not.toThrow();
  });

  test('makeIdempotent needs a function, and a name even for a named one (a minifier renames functions)', () => {
    expect(() => makeIdempotent('f' as never, { store, name: 'f' })).toThrow(/first argument must be the function/);
    // Without `name` it does not compile; JavaScript callers get a TypeError at once.
    expect(() =>
      // @ts-expect-error `name` is required by the type as well
      makeIdempotent(async (x: unknown) => x, { store }),
    ).toThrow(/`name` is required/);
    expect(() =>
      makeIdempotent(
        (
          () => async (x: unknown) =>
            x
        )(),
        { store } as never,
      ),
    ).toThrow(/`name` is required/);
    async function charge(x: unknown) {
      return x;
    }
    expect(() => makeIdempotent(charge, { store } as never)).toThrow(/`name` is required/);
    expect(() => makeIdempotent(charge, { store, name: 'charge' })).not.toThrow();
  });

  test('a final error whose code or message JSON cannot hold is still stored, and the caller gets its own error', async () => {
    const memory = new MemoryStore();
    const odd = Object.assign(new Error('declined'), { code: 10n });
    const once = makeIdempotent(
      async (_: number) => {
        throw odd;
      },
      { store: memory, name: 'odd', isFinalError: () => true },
    );
    await expect(once(1)).rejects.toBe(odd);
    const replayed = await once(1).catch((error: unknown) => error);
    expect(replayed).toMatchObject({ name: 'Error', message: 'declined', code: '10' });
    const bare = Object.create(null) as object;
    const twice = makeIdempotent(
      async (_: number) => {
        throw bare;
      },
      { store: memory, name: 'bare', isFinalError: () => true },
    );
    await expect(twice(1)).rejects.toBe(bare);
    expect([...memory.records.values()].filter((r) => r.status === 'COMPLETED')).toHaveLength(2);
  });
});

describe('keys', () => {
  test.each([
    ['undefined', undefined],
    ['null', null],
    ['an empty string', ''],
  ])('%s is a missing key: KEY_MISSING, nothing runs, nothing is stored', async (_what, value) => {
    const store = new MemoryStore();
    const fn = jest.fn(async (_input: { id: unknown }) => 'ran');
    const once = makeIdempotent(fn, { store, name: 'f', key: (input) => input.id });
    expect((await rejection(once({ id: value }))).code).toBe('KEY_MISSING');
    expect(fn).not.toHaveBeenCalled();
    expect(store.calls).toBe(0);
  });

  test.each([
    ['an object whose members are all undefined', { tenant: undefined, id: undefined }],
    ['an object whose members are all null or empty', { tenant: null, id: '' }],
    ['an array whose elements are all missing', [undefined, null, '']],
    ['an empty object (a spread of a member that is absent)', {}],
    ['an empty array (a map over a list that is absent)', []],
    ['an object without a prototype whose members are all missing', Object.assign(Object.create(null), { tenant: undefined, id: null })],
    // Parts are judged by what JSON writes of them, as the whole key is.
    ['an array of invalid Dates (written as null)', [new Date(Number.NaN)]],
    ['an object of a boxed empty string and an invalid Date', { id: new String(''), at: new Date('no date') }],
    ['an object whose part has a toJSON yielding undefined', { id: { toJSON: () => undefined } }],
    [
      'a class instance whose members are all undefined',
      new (class OrderKey {
        constructor(
          readonly tenant?: string,
          readonly id?: string,
        ) {}
      })(),
    ],
  ])('a composite key none of whose parts was found (%s) is missing: no key shared by every such call', async (_what, selected) => {
    const store = new MemoryStore();
    const fn = jest.fn(async (_input: string) => 'ran');
    const once = makeIdempotent(fn, { store, name: 'f', key: () => selected });
    expect((await rejection(once('a'))).code).toBe('KEY_MISSING');
    expect(fn).not.toHaveBeenCalled();
    expect(store.calls).toBe(0);
  });

  test('an empty object or array, and a composite with one part found, are keys', async () => {
    const store = new MemoryStore();
    const once = makeIdempotent(async (input: unknown) => input, { store, name: 'f' });
    expect(await once({})).toEqual({});
    expect(await once([])).toEqual([]);
    expect(await once({ tenant: 't', id: undefined })).toEqual({ tenant: 't' });
    expect(store.claims.map((claim) => claim.key)).toEqual([`f#${hashKey({})}`, `f#${hashKey([])}`, `f#${hashKey({ tenant: 't' })}`]);
  });

  test('a selected composite key with any one part found, the first or another, and the rest explicitly null, is a key', async () => {
    const store = new MemoryStore();
    const once = makeIdempotent(async (parts: unknown) => parts, { store, name: 'f', key: (parts) => parts });
    for (const parts of [['t', null], [null, 't'], { tenant: 't', id: null }]) expect(await once(parts)).toEqual(parts);
    expect(store.claims.map((claim) => claim.key)).toEqual([['t', null], [null, 't'], { tenant: 't', id: null }].map((parts) => `f#${hashKey(parts)}`));
  });

  test.each([
    ['an undefined member', { tenant: 't', id: undefined }, 'member `id`'],
    ['an undefined element', ['t', undefined], 'index 1'],
    ['a hole', Object.assign(new Array(3), { 0: 't', 2: 'x' }), 'index 1'],
    ['a member whose toJSON yields undefined', { tenant: 't', id: { toJSON: () => undefined } }, 'member `id`'],
  ])('a selected composite key with %s is missing, whatever else it holds; with onMissingKey: skip the call runs unkeyed', async (_what, selected, part) => {
    const store = new MemoryStore();
    const fn = jest.fn(async (_input: string) => 'ran');
    const once = makeIdempotent(fn, { store, name: 'f', key: () => selected });
    const error = await rejection(once('a'));
    expect(error.code).toBe('KEY_MISSING');
    expect(error.message).toContain(part);
    expect(fn).not.toHaveBeenCalled();
    expect(store.calls).toBe(0);
    expect(await makeIdempotent(fn, { store, name: 'f', key: () => selected, onMissingKey: 'skip' })('a')).toBe('ran');
    expect(store.calls).toBe(0);
  });

  test('a whole payload of missing parts is a request like any other: keyed by it when no selector is given', async () => {
    const store = new MemoryStore();
    const fn = jest.fn(async (_input: unknown) => 'page');
    const once = makeIdempotent(fn, { store, name: 'f' });
    expect(await once({ cursor: undefined })).toBe('page');
    expect(await once({ cursor: null })).toBe('page');
    expect(await once([null, ''])).toBe('page');
    expect(await once({ cursor: undefined })).toBe('page');
    expect(fn).toHaveBeenCalledTimes(3);
    // The fourth call meets the first one's record and replays it.
    const keys = [hashKey({}), hashKey({ cursor: null }), hashKey([null, '']), hashKey({})].map((hash) => `f#${hash}`);
    expect(store.claims.map((claim) => claim.key)).toEqual(keys);
  });

  test("onMissingKey: 'skip' runs the function without idempotency", async () => {
    const store = new MemoryStore();
    const fn = jest.fn(async (_input: { id?: string }) => 'ran');
    const once = makeIdempotent(fn, { store, name: 'f', key: (input) => input.id, onMissingKey: 'skip' });
    expect(await once({})).toBe('ran');
    expect(await once({})).toBe('ran');
    expect(fn).toHaveBeenCalledTimes(2);
    expect(store.calls).toBe(0);
  });

  test('0 and false are valid keys, with records of their own', async () => {
    const store = new MemoryStore();
    const fn = jest.fn(async (input: { id: unknown }) => input.id);
    const once = makeIdempotent(fn, { store, name: 'f', key: (input) => input.id });
    expect(await once({ id: 0 })).toBe(0);
    expect(await once({ id: false })).toBe(false);
    expect(await once({ id: 0 })).toBe(0);
    expect(fn).toHaveBeenCalledTimes(2);
    expect([...store.records.keys()]).toEqual([`f#${hashKey(0)}`, `f#${hashKey(false)}`]);
  });

  test('the default key is the whole input, in any member order', async () => {
    const store = new MemoryStore();
    const fn = jest.fn(async (input: object) => input);
    const once = makeIdempotent(fn, { store, name: 'f' });
    await once({ a: 1, b: { c: 2, d: 3 } });
    await once({ b: { d: 3, c: 2 }, a: 1 });
    expect(fn).toHaveBeenCalledTimes(1);
    expect(store.claims[0]!.key).toBe(`f#${hashKey({ a: 1, b: { c: 2, d: 3 } })}`);
  });

  test('a key the selector cannot produce or JSON cannot hold is INVALID_KEY, before any store call', async () => {
    const store = new MemoryStore();
    const failure = new Error('no id');
    const throwing = makeIdempotent(async (x: unknown) => x, {
      store,
      name: 'f',
      key: () => {
        throw failure;
      },
    });
    const error = await rejection(throwing(1));
    expect(error.code).toBe('INVALID_KEY');
    expect(error.cause).toBe(failure);
    const mapKey = makeIdempotent(async (x: unknown) => x, { store, name: 'f', key: () => new Map() });
    expect((await rejection(mapKey(1))).code).toBe('INVALID_KEY');
    const bigintKey = makeIdempotent(async (x: unknown) => x, { store, name: 'f', key: () => ({ id: 1n }) });
    expect((await rejection(bigintKey(1))).code).toBe('INVALID_KEY');
    expect(store.calls).toBe(0);
  });

  test('a fingerprint JSON cannot hold is INVALID_KEY naming the fingerprint, not the key, before any store call', async () => {
    const store = new MemoryStore();
    const once = makeIdempotent(async (x: { id: string; amount: bigint }) => x.id, { store, name: 'f', key: (x) => x.id, fingerprint: (x) => x });
    const error = await rejection(once({ id: 'a', amount: 1n }));
    expect(error.code).toBe('INVALID_KEY');
    // The key ('a') is sound: a message that blamed it would send the reader to the wrong selector.
    expect(error.message).toMatch(/^INVALID_KEY: The fingerprint holds a BigInt at \$\.amount/);
    expect(store.calls).toBe(0);
  });

  test('a key whose toJSON yields undefined is missing, not a crash', async () => {
    const store = new MemoryStore();
    const once = makeIdempotent(async (x: unknown) => x, { store, name: 'f', key: () => ({ toJSON: () => undefined }) });
    expect((await rejection(once(1))).code).toBe('KEY_MISSING');
  });

  test('the key is computed once, before the function runs: mutating the input does not move the record', async () => {
    const store = new MemoryStore();
    const key = jest.fn((input: { id: string }) => input.id);
    const once = makeIdempotent(
      async (input: { id: string }) => {
        input.id = 'changed';
        return 'done';
      },
      { store, name: 'f', key },
    );
    expect(await once({ id: 'original' })).toBe('done');
    expect(key).toHaveBeenCalledTimes(1);
    const expected = `f#${hashKey('original')}`;
    expect(store.completions.map((c) => c.key)).toEqual([expected]);
    expect(store.records.get(expected)).toMatchObject({ status: 'COMPLETED', response: '"done"' });
    expect(store.records.size).toBe(1);
  });
});

describe('store failures', () => {
  test('a store written in JavaScript whose requests answer with thenables, not promises, works with a Lambda deadline', async () => {
    const memory = new MemoryStore();
    const thenable = <T>(answer: Promise<T>) => ({
      // biome-ignore lint/suspicious/noThenProperty: a store's answer that is a thenable, not a Promise, is under test
      then: (resolve: (value: T) => void, reject: (error: unknown) => void) => void answer.then(resolve, reject),
    });
    const store = {
      claim: (request: ClaimRequest) => thenable(memory.claim(request)),
      complete: (request: CompleteRequest) => thenable(memory.complete(request)),
      release: (request: ReleaseRequest) => thenable(memory.release(request)),
    } as unknown as IdempotencyStore;
    let runs = 0;
    const once = makeIdempotent(async (_id: string, _context?: { getRemainingTimeInMillis(): number }) => ++runs, { store, name: 'thenables' });
    const context = { getRemainingTimeInMillis: () => 5_000 };
    expect(await once('k', context)).toBe(1);
    expect(await once('k', context)).toBe(1);
    expect(memory.records.get(memory.claims[0]!.key)?.status).toBe('COMPLETED');
  });

  test('fail closed: a claim that cannot reach the store is STORE_FAILURE with its cause, and nothing runs', async () => {
    const store = new MemoryStore();
    const network = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    store.claim = async () => {
      throw network;
    };
    const fn = jest.fn(async () => 'ran');
    const once = makeIdempotent(fn, { store, name: 'f' });
    const error = await rejection(once(1));
    expect(error.code).toBe('STORE_FAILURE');
    expect(error.cause).toBe(network);
    expect(fn).not.toHaveBeenCalled();
  });

  test('a claim applied although its every answer was lost is released by its owner, so the key is not held until the lease', async () => {
    const store = new MemoryStore();
    const applyThenFail = store.claim.bind(store);
    store.claim = async (request) => {
      await applyThenFail(request);
      throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    };
    const fn = jest.fn(async () => 'ran');
    const once = makeIdempotent(fn, { store, name: 'lost', now: () => T0 });
    expect((await rejection(once(1))).code).toBe('STORE_FAILURE');
    expect(fn).not.toHaveBeenCalled();
    expect(store.releases).toHaveLength(1);
    expect(store.releases[0]!.owner).toBe(store.claims[0]!.owner);
    expect(store.records.size).toBe(0);
  });

  test.each([
    ['rejects', () => Promise.reject(new Error('still down'))],
    [
      'throws at once (a client closed)',
      () => {
        throw new Error('client is closed');
      },
    ],
  ])('a best-effort release after STORE_FAILURE that %s changes nothing for the caller', async (_, release) => {
    const store = new MemoryStore();
    const network = new Error('down');
    store.claim = async () => {
      throw network;
    };
    store.release = release;
    let runs = 0;
    const error = await rejection(makeIdempotent(async () => ++runs, { store, name: 'down' })(1));
    expect(error.code).toBe('STORE_FAILURE');
    expect(error.cause).toBe(network);
    expect(runs).toBe(0);
  });

  test('a failed completion request still returns the result, and warns with the record id, without key or payload', async () => {
    const store = new MemoryStore();
    const logger = quietLogger();
    store.complete = async () => {
      throw Object.assign(new Error('timeout'), { name: 'TimeoutError' });
    };
    const once = makeIdempotent(async (input: { card: string }) => ({ charged: input.card }), {
      store,
      name: 'charge',
      key: (input) => input.card,
      logger,
    });
    expect(await once({ card: 'secret-4242' })).toEqual({ charged: 'secret-4242' });
    expect(logger.warn).toHaveBeenCalledTimes(1);
    const line = logger.warn.mock.calls[0]![0];
    // The record id (a hash) lets an operator find the record; the key itself never appears.
    expect(JSON.parse(line)).toMatchObject({ level: 'WARN', namespace: 'charge', recordId: `charge#${hashKey('secret-4242')}`, error: 'TimeoutError' });
    expect(line).not.toContain('secret-4242');
  });

  test('a failed release request leaves the function’s own error unchanged', async () => {
    const store = new MemoryStore();
    const logger = quietLogger();
    store.release = async () => {
      throw new Error('store down');
    };
    const own = new Error('card declined');
    const once = makeIdempotent(
      async () => {
        throw own;
      },
      { store, name: 'f', logger },
    );
    await expect(once(1)).rejects.toBe(own);
    expect(logger.warn).toHaveBeenCalledTimes(1);
  });

  test('a function error releases this attempt’s record, so the next call runs again', async () => {
    const store = new MemoryStore();
    let calls = 0;
    const once = makeIdempotent(
      async () => {
        if (++calls === 1) throw new Error('first fails');
        return 'second';
      },
      { store, name: 'f' },
    );
    await expect(once(1)).rejects.toThrow('first fails');
    expect(store.releases).toEqual([{ key: store.claims[0]!.key, owner: store.claims[0]!.owner }]);
    expect(store.records.size).toBe(0);
    expect(await once(1)).toBe('second');
  });
});

describe('ambiguous writes (a retried request meets its own applied write)', () => {
  test('a claim refused by a record with our own owner holds it: the function runs', async () => {
    const store = new MemoryStore();
    const claim = store.claim.bind(store);
    store.claim = async (request) => {
      await claim(request); // applied, but the response was "lost"
      return { claimed: false, record: store.records.get(request.key)! };
    };
    const fn = jest.fn(async () => 'ran');
    const once = makeIdempotent(fn, { store, name: 'f' });
    expect(await once(1)).toBe('ran');
    expect(fn).toHaveBeenCalledTimes(1);
    expect([...store.records.values()][0]).toMatchObject({ status: 'COMPLETED', response: '"ran"' });
  });

  test('a completion refused, but finding our own COMPLETED record, has completed', async () => {
    const store = new MemoryStore();
    const complete = store.complete.bind(store);
    store.complete = async (request) => {
      await complete(request);
      return { completed: false, record: store.records.get(request.key) };
    };
    const logger = quietLogger();
    const once = makeIdempotent(async () => 'ok', { store, name: 'f', logger });
    expect(await once(1)).toBe('ok');
    expect(logger.warn).not.toHaveBeenCalled();
  });

  test('a release refused with no item has released: the function’s error surfaces, nothing is logged', async () => {
    const store = new MemoryStore();
    store.release = async () => ({ released: false, record: undefined });
    const logger = quietLogger();
    const own = new Error('own');
    const once = makeIdempotent(
      async () => {
        throw own;
      },
      { store, name: 'f', logger },
    );
    await expect(once(1)).rejects.toBe(own);
    expect(logger.warn).not.toHaveBeenCalled();
  });

  test('a completion refused by another owner’s record is SUPERSEDED, and that record is not touched', async () => {
    const store = new MemoryStore();
    const theirs: IdempotencyRecord = { key: 'x', status: 'INPROGRESS', owner: 'someone-else', expiresAt: 1, leaseUntil: 2 };
    store.complete = jest.fn(async () => ({ completed: false, record: theirs }) as const);
    const once = makeIdempotent(async () => 'late', { store, name: 'f' });
    expect((await rejection(once(1))).code).toBe('SUPERSEDED');
  });

  test('a completion that finds no record (deleted, or lost by the store) answers the function’s outcome, with a warning that it was not stored', async () => {
    const store = new MemoryStore();
    store.complete = async () => ({ completed: false, record: undefined });
    const logger = quietLogger();
    const once = makeIdempotent(async () => 'ran', { store, name: 'f', logger });
    expect(await once(2)).toBe('ran');
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(String(logger.warn.mock.calls[0]![0])).toContain('the record was deleted while the call ran');
  });
});

describe('rejections hold nothing', () => {
  test('IN_PROGRESS carries retry-after from the holder’s lease and writes nothing', async () => {
    const store = new MemoryStore();
    const key = `f#${hashKey(1)}`;
    const held: IdempotencyRecord = { key, status: 'INPROGRESS', owner: 'other', expiresAt: T0 / 1000 + 100, leaseUntil: T0 + 2_500 };
    store.records.set(key, held);
    const fn = jest.fn(async () => 'ran');
    const once = makeIdempotent(fn, { store, name: 'f', now: () => T0 });
    const error = await rejection(once(1));
    expect(error.code).toBe('IN_PROGRESS');
    expect(error.retryAfterSeconds).toBe(3);
    expect(fn).not.toHaveBeenCalled();
    expect(store.completions).toHaveLength(0);
    expect(store.releases).toHaveLength(0);
    expect(store.records.get(key)).toBe(held);
  });

  test('IN_PROGRESS at the very millisecond the lease ends still asks for a retry after 1 s, never 0', async () => {
    const store = new MemoryStore();
    const key = `f#${hashKey(1)}`;
    store.records.set(key, { key, status: 'INPROGRESS', owner: 'other', expiresAt: T0 / 1000 + 100, leaseUntil: T0 });
    const once = makeIdempotent(async () => 'ran', { store, name: 'f', now: () => T0 });
    const error = await rejection(once(1));
    expect([error.code, error.retryAfterSeconds]).toEqual(['IN_PROGRESS', 1]);
  });

  test('PAYLOAD_MISMATCH when the fingerprint differs, for COMPLETED and INPROGRESS records alike', async () => {
    const store = new MemoryStore();
    const fn = jest.fn(async (input: { id: string; amount: number }) => input.amount);
    const once = makeIdempotent(fn, { store, name: 'f', key: (i) => i.id, fingerprint: (i) => i.amount });
    expect(await once({ id: 'p', amount: 1 })).toBe(1);
    expect((await rejection(once({ id: 'p', amount: 2 }))).code).toBe('PAYLOAD_MISMATCH');
    expect(await once({ id: 'p', amount: 1 })).toBe(1);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(store.releases).toHaveLength(0);
    expect(store.completions).toHaveLength(1);
  });
});

describe('local cache', () => {
  test('replays from memory with no store call, and returns a fresh copy each time', async () => {
    const store = new MemoryStore();
    const fn = jest.fn(async () => ({ items: [1, 2] }));
    const once = makeIdempotent(fn, { store, name: 'f', cacheSize: 10 });
    const first = await once(1);
    const calls = store.calls;
    expect(calls).toBe(2);
    const replay = await once(1);
    expect(replay).toEqual({ items: [1, 2] });
    expect(replay).not.toBe(first);
    replay.items.push(3);
    expect(await once(1)).toEqual({ items: [1, 2] });
    expect(store.calls).toBe(calls);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  test('a record learnt from a refused claim is cached too', async () => {
    const store = new MemoryStore();
    const runner = makeIdempotent(async () => 'v', { store, name: 'f' });
    await runner(1);
    const reader = makeIdempotent(async () => 'never', { store, name: 'f', cacheSize: 1 });
    expect(await reader(1)).toBe('v');
    const calls = store.calls;
    expect(await reader(1)).toBe('v');
    expect(store.calls).toBe(calls);
  });

  test('with a fingerprint, a cached replay still passes (and still enforces) the payload check', async () => {
    const store = new MemoryStore();
    const once = makeIdempotent(async (input: { id: string; amount: number }) => input.amount, {
      store,
      name: 'f',
      key: (i) => i.id,
      fingerprint: (i) => i.amount,
      cacheSize: 5,
    });
    expect(await once({ id: 'p', amount: 7 })).toBe(7);
    const calls = store.calls;
    expect(await once({ id: 'p', amount: 7 })).toBe(7);
    expect((await rejection(once({ id: 'p', amount: 8 }))).code).toBe('PAYLOAD_MISMATCH');
    expect(store.calls).toBe(calls);
  });

  test('evicts the least recently used record', async () => {
    const store = new MemoryStore();
    const once = makeIdempotent(async (x: string) => x, { store, name: 'f', cacheSize: 2 });
    await once('a');
    await once('b');
    await once('a'); // a is now the most recent
    await once('c'); // evicts b
    const calls = store.calls;
    await once('a');
    await once('c');
    expect(store.calls).toBe(calls);
    await once('b');
    expect(store.claims.at(-1)!.key).toBe(`f#${hashKey('b')}`);
    expect(store.calls).toBe(calls + 1);
  });

  test('forgets a record once it expires by the injected clock', async () => {
    const store = new MemoryStore();
    let now = T0;
    const fn = jest.fn(async () => 'v');
    const once = makeIdempotent(fn, { store, name: 'f', cacheSize: 5, expiresAfterSeconds: 60, now: () => now });
    await once(1);
    now = T0 + 59_000;
    const calls = store.calls;
    await once(1);
    expect(store.calls).toBe(calls);
    now = T0 + 61_000;
    expect(await once(1)).toBe('v');
    expect(fn).toHaveBeenCalledTimes(2); // the store's record had expired as well: reclaimed and run
    expect(store.calls).toBe(calls + 2);
  });
});

describe('lease and retention', () => {
  test('the lease ends at the Lambda deadline when there is a context', async () => {
    const store = new MemoryStore();
    const once = makeIdempotent(async (_x: unknown, _context: unknown) => 1, { store, name: 'f', now: () => T0 });
    await once(1, { functionName: 'fn', getRemainingTimeInMillis: () => 5_000 });
    expect(store.claims[0]).toMatchObject({ leaseUntil: T0 + 5_000, now: T0, expiresAt: T0 / 1000 + 86_400 });
  });

  test('without a context the lease is leaseSeconds, 60 by default', async () => {
    const store = new MemoryStore();
    await makeIdempotent(async (x: unknown) => x, { store, name: 'f', now: () => T0 })(1);
    await makeIdempotent(async (x: unknown) => x, { store, name: 'g', now: () => T0, leaseSeconds: 5 })(1);
    expect(store.claims.map((c) => c.leaseUntil)).toEqual([T0 + 60_000, T0 + 5_000]);
  });

  test.each([
    ['not a finite number (a stub reading Infinity)', Number.POSITIVE_INFINITY],
    ['0 ms (a stub, or a deadline already passed)', 0],
  ])('a context whose time left is %s sets no deadline: the lease is leaseSeconds', async (_what, left) => {
    const store = new MemoryStore();
    const once = makeIdempotent(async (_x: unknown, _context: unknown) => 1, { store, name: 'f', now: () => T0, leaseSeconds: 5 });
    expect(await once(1, { getRemainingTimeInMillis: () => left })).toBe(1);
    expect(store.claims[0]).toMatchObject({ leaseUntil: T0 + 5_000, expiresAt: T0 / 1000 + 86_400 });
  });

  test('retention is never shorter than the lease', async () => {
    const store = new MemoryStore();
    const now = T0 + 400; // not on a second boundary
    const once = makeIdempotent(async (_x: unknown, _context: unknown) => 1, { store, name: 'f', now: () => now, expiresAfterSeconds: 1 });
    await once(1, { getRemainingTimeInMillis: () => 900_000 });
    const claim = store.claims[0]!;
    expect(claim.leaseUntil).toBe(now + 900_000);
    expect(claim.expiresAt).toBe(Math.ceil((now + 900_000) / 1000));
    expect(claim.expiresAt * 1000).toBeGreaterThanOrEqual(claim.leaseUntil);
    expect(store.completions[0]!.expiresAt).toBe(Math.floor(now / 1000) + 1);
  });
});

describe('responses', () => {
  test('Dates and undefined fields replay as their JSON form; the first caller gets the original', async () => {
    const store = new MemoryStore();
    const at = new Date('2024-05-06T07:08:09.000Z');
    const fn = jest.fn(async () => ({ at, gone: undefined, n: 1 }));
    const once = makeIdempotent(fn, { store, name: 'f' });
    expect(await once(1)).toStrictEqual({ at, gone: undefined, n: 1 });
    const replay = await once(1);
    expect(replay).toStrictEqual({ at: '2024-05-06T07:08:09.000Z', n: 1 });
    expect(Object.keys(replay)).not.toContain('gone');
    expect(fn).toHaveBeenCalledTimes(1);
  });

  test('an undefined result is stored as such and replayed without running again', async () => {
    const store = new MemoryStore();
    const fn = jest.fn(async () => undefined);
    const once = makeIdempotent(fn, { store, name: 'f' });
    expect(await once(1)).toBeUndefined();
    expect(await once(1)).toBeUndefined();
    expect(fn).toHaveBeenCalledTimes(1);
    expect(store.completions[0]!.response).toBeUndefined();
  });

  test('a result JSON cannot hold (BigInt) reaches the first caller; the record completes; duplicates get RESPONSE_NOT_STORED', async () => {
    const store = new MemoryStore();
    const fn = jest.fn(async () => ({ total: 10n }));
    const { logger, omitted } = collectingLogger();
    const once = makeIdempotent(fn, { store, name: 'f', cacheSize: 2, logger });
    expect(await once(1)).toEqual({ total: 10n });
    expect(omitted()).toEqual([{ level: 'WARN', message: omittedMessage('json'), namespace: 'f', recordId: `f#${hashKey(1)}` }]);
    const record = [...store.records.values()][0]!;
    expect(record).toMatchObject({ status: 'COMPLETED', responseOmitted: true });
    expect(record.response).toBeUndefined();
    expect(store.completions[0]).toMatchObject({ response: undefined, responseOmitted: true });
    expect((await rejection(once(1))).code).toBe('RESPONSE_NOT_STORED'); // from the cache
    const fresh = makeIdempotent(fn, { store, name: 'f', logger });
    expect((await rejection(fresh(1))).code).toBe('RESPONSE_NOT_STORED'); // from the store
    expect(fn).toHaveBeenCalledTimes(1);
    expect(omitted()).toHaveLength(1); // duplicates complete nothing
  });

  test('a result JSON cannot hold, whose completion the store fails: one warning, that the record could not be marked COMPLETED, none that it completed', async () => {
    const store = new MemoryStore();
    store.complete = async () => {
      throw Object.assign(new Error('connection reset'), { name: 'TimeoutError' });
    };
    const { logger, lines } = collectingLogger();
    const once = makeIdempotent(async () => ({ total: 10n }), { store, name: 'f', logger });
    expect(await once(1)).toEqual({ total: 10n });
    expect(lines.map((line) => JSON.parse(line).message)).toEqual([
      'lambda-idempotency: could not mark the record COMPLETED; unless the write applied all the same or was refused (see `error`), it stays INPROGRESS until its lease ends',
    ]);
  });
});

describe('single-flight followers', () => {
  test('a follower keeps nothing on its leader once each of its waits ends (a second or less each): the leader may run for minutes', async () => {
    v8.setFlagsFromString('--expose-gc');
    const collect = vm.runInNewContext('gc') as () => void;
    let clock = T0;
    const leaderRuns = gate();
    const leaderEnds = gate();
    const charge = makeIdempotent(
      async (caller: string, _context: unknown) => {
        if (caller !== 'leader') return caller;
        leaderRuns.open();
        await leaderEnds.promise;
        return caller;
      },
      { store: new MemoryStore(), name: 'charge', key: () => 'order-1', now: () => clock },
    );
    const leader = charge('leader', { functionName: 'f', getRemainingTimeInMillis: () => 10_000 });
    await leaderRuns.promise;
    // The leader's lease ends now, to the millisecond: its followers look at it again every millisecond.
    clock = T0 + 10_000;
    const follow = () =>
      Promise.all(Array.from({ length: 20 }, () => rejection(charge('follower', lambdaContext({ functionName: 'f', remainingMillis: 300 })))));
    await follow();
    collect();
    const before = process.memoryUsage().heapUsed;
    const refused = await follow();
    collect();
    // A reaction to the leader's outcome left by every wait (each about 600 bytes) grew it by 2 MB and more here.
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(500_000);
    expect(refused.map((error) => error.code)).toEqual(Array(20).fill('IN_PROGRESS'));
    leaderEnds.open();
    expect(await leader).toBe('leader');
  });
});

describe('durable calls left behind by invocations that suspended', () => {
  /** The Lambda context of each invocation: one object per invocation, as the runtime makes it. */
  const invocations = new Map<string, { awsRequestId: string }>();
  /** A durable context of `execution`'s invocation `invocation`, as the durable SDK passes one. */
  const durableContext = (execution: string, invocation: string) => {
    if (!invocations.has(invocation)) invocations.set(invocation, { awsRequestId: invocation });
    return {
      executionContext: { durableExecutionArn: `arn:aws:lambda:eu-west-1:123456789012:function:f/durable-execution/${execution}` },
      lambdaContext: invocations.get(invocation)!,
      step: async (): Promise<void> => undefined,
    };
  };
  const settled = () => new Promise((resolve) => setImmediate(resolve));

  /** A call that waits for ever, as a call does whose invocation suspended; `runs` counts its runs. */
  const suspendedCall = () => {
    const counter = { runs: 0 };
    const call = makeIdempotent(
      async (_key: string, _ctx: unknown) => {
        counter.runs++;
        await new Promise(() => undefined);
      },
      { store: new MemoryStore(), name: 'suspended' },
    );
    return { call, counter };
  };

  test('a duplicate in a live invocation follows its call however many flights came since, those of other invocations or its own', async () => {
    const { call, counter } = suspendedCall();
    void call('first', durableContext('e-first', 'i-first'));
    for (let i = 0; i < 1000; i++) void call(`other-${i}`, durableContext(`e-${i}`, `i-${i}`));
    for (let i = 0; i < 1000; i++) void call(`own-${i}`, durableContext('e-first', 'i-first'));
    await settled();
    void call('first', durableContext('e-first', 'i-first'));
    await settled();
    expect(counter.runs).toBe(2001); // the duplicate waits for the first: it never runs
  });

  test('the flights of invocations that suspended go with their Lambda contexts: an engine keeps none of theirs alive', async () => {
    // The collector, on demand: the flag set at run time exposes `gc` to contexts made after it.
    v8.setFlagsFromString('--expose-gc');
    const collect = vm.runInNewContext('gc') as () => void;
    const { call, counter } = suspendedCall();
    const lambdas: WeakRef<object>[] = [];
    // In a function of its own: a local of this async function may stay alive in its suspended frame.
    const invoke = (i: number): void => {
      const lambdaContext = { awsRequestId: `i-${i}` };
      lambdas.push(new WeakRef(lambdaContext));
      void call(`key-${i}`, { executionContext: { durableExecutionArn: `arn:e-${i}` }, lambdaContext, step: async (): Promise<void> => undefined });
    };
    for (let i = 0; i < 100; i++) invoke(i);
    await settled();
    expect(counter.runs).toBe(100);
    collect();
    await settled();
    expect(lambdas.filter((lambda) => lambda.deref() !== undefined)).toHaveLength(0);
  });
});

describe('a durable context built by hand (a unit test of a durable handler)', () => {
  const arn = 'arn:aws:lambda:eu-west-1:123456789012:function:f/durable-execution/by-hand';
  test.each([
    // A stand-in for the SDK's context has its methods (a `step`), as a mock of its type does.
    ['with no Lambda context', { executionContext: { durableExecutionArn: arn }, step: async (): Promise<void> => undefined }],
    [
      'with a Lambda context that has no awsRequestId',
      { executionContext: { durableExecutionArn: arn }, lambdaContext: { functionName: 'f' }, step: async (): Promise<void> => undefined },
    ],
  ])('%s: two calls with one key given it at once run the function once, as the execution', async (_how, ctx) => {
    const store = new MemoryStore();
    let runs = 0;
    const release = gate();
    const charge = makeIdempotent(
      async (orderId: string, _ctx: unknown) => {
        runs++;
        await release.promise;
        return `charged ${orderId}`;
      },
      { store, name: 'charge' },
    );
    const both = Promise.all([charge('o-1', ctx), charge('o-1', ctx)]);
    release.open();
    expect(await both).toEqual(['charged o-1', 'charged o-1']);
    expect(runs).toBe(1);
    expect(store.claims).toHaveLength(1);
  });
});
