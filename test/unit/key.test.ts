import { createHash } from 'node:crypto';
import { canonicalJson, hashKey, makeIdempotent } from '../../lib/index.js';
import { canonicalKey, keyHash, sha256 } from '../../lib/key.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { invalidKey } from '../support/invalid-key.js';
import { rejection } from '../support/rejections.js';

describe('canonicalJson', () => {
  test('object member order never matters, at any depth', () => {
    const a = { b: 1, a: { y: [1, { q: 1, p: 2 }], x: null } };
    const b = { a: { x: null, y: [1, { p: 2, q: 1 }] }, b: 1 };
    expect(canonicalJson(a)).toBe('{"a":{"x":null,"y":[1,{"p":2,"q":1}]},"b":1}');
    expect(canonicalJson(b)).toBe(canonicalJson(a));
    expect(hashKey(b)).toBe(hashKey(a));
  });

  test('members are sorted by code point, so astral characters come after U+E000–U+FFFF', () => {
    const astral = '\u{1F600}'; // UTF-16: D83D DE00, which `<` would sort before U+FFFD
    const bmpHigh = '\uFFFD';
    const value = { [astral]: 1, [bmpHigh]: 2, a: 3, '\uE000': 4 };
    expect(canonicalJson(value)).toBe(`{"a":3,"\uE000":4,"${bmpHigh}":2,"${astral}":1}`);
    // The naive UTF-16 sort disagrees, which is exactly the case this ordering is for.
    expect([astral, bmpHigh].sort()).toEqual([astral, bmpHigh]);
  });

  test('arrays keep their order', () => {
    expect(canonicalJson([2, 1])).toBe('[2,1]');
    expect(hashKey([1, 2])).not.toBe(hashKey([2, 1]));
  });

  test('undefined members are dropped and undefined array elements become null, as JSON does', () => {
    expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
    expect(hashKey({ a: 1, b: undefined })).toBe(hashKey({ a: 1 }));
    expect(canonicalJson([1, undefined])).toBe('[1,null]');
    expect(canonicalJson(undefined)).toBeUndefined();
  });

  test('toJSON and Date are honoured', () => {
    const date = new Date('2024-01-02T03:04:05.006Z');
    expect(canonicalJson({ at: date })).toBe('{"at":"2024-01-02T03:04:05.006Z"}');
    expect(canonicalJson({ v: { toJSON: () => ({ z: 1, y: 2 }) } })).toBe('{"v":{"y":2,"z":1}}');
    expect(hashKey(date)).toBe(hashKey('2024-01-02T03:04:05.006Z'));
  });

  test('boxed primitives are written as their values, as JSON does (new Number(1) must not collide with new Number(2))', () => {
    expect(canonicalJson([new Number(1), new String('ab'), new Boolean(false)])).toBe('[1,"ab",false]');
    expect(hashKey(new Number(1))).not.toBe(hashKey(new Number(2)));
    invalidKey(Object(1n));
  });

  test('strings and numbers are written as JSON.stringify writes them', () => {
    expect(canonicalJson('a"\n\u2028')).toBe(JSON.stringify('a"\n\u2028'));
    expect(canonicalJson(1e21)).toBe('1e+21');
    expect(canonicalJson(-0)).toBe('0');
  });

  test.each([
    ['a BigInt', 1n],
    ['a nested BigInt', { a: [1n] }],
    ['a function', () => 1],
    ['a function member', { f() {} }],
    ['a symbol', Symbol('s')],
    ['NaN', Number.NaN],
    ['Infinity', { n: Number.POSITIVE_INFINITY }],
    ['-Infinity', [Number.NEGATIVE_INFINITY]],
    ['a Map', new Map([['a', 1]])],
    ['a Set', { s: new Set([1]) }],
  ])('rejects %s with INVALID_KEY instead of collapsing it into another value', (_what, value) => {
    invalidKey(value);
  });

  // JSON writes each of these as `{}`: every ArrayBuffer (or WeakRef, iterator, boxed symbol, object
  // holding only private fields) would share one key with every other, whatever it holds.
  class PrivateId {
    readonly #id: string;
    constructor(id: string) {
      this.#id = id;
    }
    get id(): string {
      return this.#id;
    }
  }
  test.each([
    ['an ArrayBuffer', new Uint8Array([1, 2]).buffer],
    ['a DataView', { id: new DataView(new ArrayBuffer(4)) }],
    ['a boxed symbol', Object(Symbol('s'))],
    ['a WeakRef', new WeakRef({})],
    ['an iterator', [1, 2].values()],
    ['an object with only private fields', new PrivateId('p-1')],
  ])('rejects %s, which JSON writes as {} whatever it holds, with INVALID_KEY', (_what, value) => {
    expect(invalidKey(value).message).toMatch(/no JSON members/);
  });

  test('still accepts a literal {} and class instances with members of their own', () => {
    class Order {
      constructor(readonly id: string) {}
    }
    expect(canonicalJson({})).toBe('{}');
    expect(canonicalJson({ a: Object.create(null) })).toBe('{"a":{}}');
    expect(canonicalJson(new Order('o-1'))).toBe('{"id":"o-1"}');
    expect(canonicalJson(new Uint8Array([1, 2]))).toBe('{"0":1,"1":2}');
  });

  test('rejects cycles with INVALID_KEY, but accepts a shared (acyclic) reference', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(invalidKey(cyclic).message).toMatch(/circular/);
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: [shared] })).toBe('{"a":{"x":1},"b":[{"x":1}]}');
  });

  test('rejects too-deep nesting with INVALID_KEY', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 500; i++) deep = [deep];
    expect(invalidKey(deep).message).toMatch(/deeper/);
    let fine: unknown = 1;
    for (let i = 0; i < 50; i++) fine = { a: fine };
    expect(() => canonicalJson(fine)).not.toThrow();
  });

  test('an array of more than 10 million elements (holes cost nothing to make) fails cleanly, not by exhausting the heap', () => {
    const holes: unknown[] = [];
    holes.length = 2 ** 32 - 1;
    expect(invalidKey({ ids: holes }).message).toMatch(/array longer than 10,000,000 elements at \$\.ids/);
    const sparse: unknown[] = [];
    sparse.length = 3;
    expect(canonicalJson(sparse)).toBe('[null,null,null]');
  });

  test('a typed array or Buffer of more than 10 million elements fails as a longer array does; its NaN or BigInt elements are named by index', () => {
    expect(invalidKey({ bytes: new Uint8Array(10_000_001) }).message).toMatch(/typed array longer than 10,000,000 elements at \$\.bytes/);
    expect(invalidKey([Buffer.alloc(10_000_001)]).message).toMatch(/typed array longer than 10,000,000 elements at \$\[0\]/);
    expect(invalidKey({ samples: new Float64Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, NaN]) }).message).toMatch(/the number NaN at \$\.samples\.10/);
    expect(invalidKey(new BigInt64Array([1n])).message).toMatch(/a BigInt at \$\.0/);
    expect(canonicalJson(new Int16Array(12).fill(-7, 10))).toBe('{"0":0,"1":0,"10":-7,"11":-7,"2":0,"3":0,"4":0,"5":0,"6":0,"7":0,"8":0,"9":0}');
  });

  test('a toJSON that returns its own object fails cleanly, not with a stack overflow', () => {
    const selfish = {
      toJSON(): unknown {
        return this;
      },
    };
    invalidKey(selfish);
  });
});

describe('hashKey', () => {
  test('is SHA-256 (base64url) of the canonical JSON, and stable', () => {
    const literal = '{"a":[1,"x"],"b":{"c":true}}';
    const expected = 'e8HUx3MFw7emybr065jqGlxhPfrTnFTScGCL5PR8aT0';
    expect(createHash('sha256').update(literal).digest('base64url')).toBe(expected);
    expect(hashKey({ b: { c: true }, a: [1, 'x'] })).toBe(expected);
    expect(hashKey('p-1')).toBe('rOjYNkQcwH28IrvhhmTTKo0aZ-fAP2e4UYHfqwINRYM');
  });

  test('0 and false are valid keys, distinct from each other and from their string forms', () => {
    const hashes = [hashKey(0), hashKey(false), hashKey('0'), hashKey('false'), hashKey(null)];
    expect(new Set(hashes).size).toBe(hashes.length);
  });

  test('values that look alike never share a hash: JSON texts and their values, numbers and strings, NFC and NFD, lone surrogates and U+FFFD', () => {
    const pairs: ReadonlyArray<readonly [unknown, unknown]> = [
      [{ a: 1 }, '{"a":1}'],
      [[1], '[1]'],
      [1, '1'],
      [true, 'true'],
      ['caf\u00e9', 'cafe\u0301'], // one character, or an e and a combining accent
      ['\ud800', '\ufffd'], // UTF-8 would write a lone surrogate as U+FFFD: the JSON text escapes it first
      ['\ud800', '\udc00'],
      [{ a: null }, {}],
      [[null], []],
    ];
    for (const [a, b] of pairs) expect([a, hashKey(a)]).not.toEqual([a, hashKey(b)]);
  });

  test('undefined has no hash: KEY_MISSING', () => {
    expect(() => hashKey(undefined)).toThrow(expect.objectContaining({ code: 'KEY_MISSING' }));
  });
});

describe('canonicalKey', () => {
  const missing = (value: unknown) => {
    const key = canonicalKey(value, true);
    return typeof key === 'string' ? undefined : key.missing;
  };

  test('a selected key with a top-level part undefined is missing, naming the part and telling to select null', () => {
    expect(missing({ tenant: 't', orderId: undefined })).toBe(
      'The idempotency key selector returned a key whose member `orderId` is undefined: every call without it would share one record. Select null explicitly for a part that may be absent.',
    );
    expect(missing(['c', undefined])).toMatch(/a key whose index 1 is undefined: .* Select null explicitly/);
    // The first such part, in the order members are written.
    expect(missing({ b: undefined, a: undefined, c: 1 })).toMatch(/member `a`/);
    // Judged by what JSON writes, as the whole key is: a toJSON yielding undefined, a hole.
    expect(missing({ id: 1, at: { toJSON: () => undefined } })).toMatch(/member `at`/);
    expect(missing(Object.assign(new Array(3), { 0: 1, 2: 2 }))).toMatch(/index 1/);
    // A class instance's own members, and the value its toJSON returns, are the key's parts.
    expect(
      missing(
        new (class Key {
          constructor(
            readonly id = 'x',
            readonly tenant?: string,
          ) {}
        })(),
      ),
    ).toMatch(/member `tenant`/);
    expect(missing({ toJSON: () => ({ id: 'x', tenant: undefined }) })).toMatch(/member `tenant`/);
  });

  test('null is a value; undefined deeper than the top level, and in a whole payload, is dropped as JSON drops it', () => {
    expect(canonicalKey({ tenant: 't', orderId: null }, true)).toBe('{"orderId":null,"tenant":"t"}');
    expect(canonicalKey(['c', null], true)).toBe('["c",null]');
    expect(canonicalKey({ tenant: 't', order: { id: 'o', note: undefined } }, true)).toBe('{"order":{"id":"o"},"tenant":"t"}');
    expect(canonicalKey({ tenant: 't', orderId: undefined })).toBe('{"tenant":"t"}');
    expect(canonicalKey(['c', undefined])).toBe('["c",null]');
  });

  test('a selected number, boolean or string is a key, as its JSON is: never missing for having no parts', async () => {
    expect([0, 42, false, true, 'o-1', new Number(7)].map((value) => canonicalKey(value, true))).toEqual(['0', '42', 'false', 'true', '"o-1"', '7']);
    let runs = 0;
    const charge = makeIdempotent(async (_input: { readonly orderNumber: number }) => ++runs, {
      store: new InMemoryStore(),
      name: 'charge',
      key: (input) => input.orderNumber,
    });
    expect(await charge({ orderNumber: 42 })).toBe(1);
    expect(await charge({ orderNumber: 42 })).toBe(1);
    expect(await charge({ orderNumber: 43 })).toBe(2);
  });

  test('a key none of whose parts was found keeps its sentence: no value', () => {
    for (const value of [undefined, null, '', {}, [], { a: undefined }, [null, ''], { a: undefined, b: null }]) {
      expect(missing(value)).toBe('The idempotency key selector found no value (undefined, null or empty string).');
    }
  });

  test('a whole payload (no `key` selector) that is undefined, null or empty says so, not that a selector found nothing', async () => {
    for (const value of [undefined, null, '', new Date(Number.NaN)]) {
      const key = canonicalKey(value);
      expect(typeof key === 'string' ? key : key.missing).toBe(
        'The payload, the idempotency key when no `key` selects one, is undefined, null or empty (as JSON writes it).',
      );
    }
    let runs = 0;
    const charge = makeIdempotent(async (_input?: unknown) => ++runs, { store: new InMemoryStore(), name: 'charge' });
    const error = await rejection(charge());
    expect(error.code).toBe('KEY_MISSING');
    expect(error.message).toBe('KEY_MISSING: The payload, the idempotency key when no `key` selects one, is undefined, null or empty (as JSON writes it).');
    expect(runs).toBe(0);
  });
});

describe('lone surrogates', () => {
  test('in a key, member names and values are escaped by the JSON text, also where members are written one by one: no key is one with U+FFFD', () => {
    const pairs: ReadonlyArray<readonly [unknown, unknown]> = [
      [{ '\ud800': 1 }, { '\ufffd': 1 }],
      [{ a: ['x\udc00'] }, { a: ['x\ufffd'] }],
      // An array-index member makes the object's members written one by one, not by JSON.stringify.
      [
        { '1': 'a', '\ud800': 1 },
        { '1': 'a', '\ufffd': 1 },
      ],
      [{ '1': '\ud800' }, { '1': '\ufffd' }],
    ];
    for (const [a, b] of pairs) {
      expect(canonicalJson(a)).toMatch(/\\ud800|\\udc00/);
      expect([a, hashKey(a)]).not.toEqual([a, hashKey(b)]);
    }
  });

  test('a tenant id with one would hash as the id with U+FFFD there: INVALID_KEY; well-formed ids hash as before', () => {
    // What UTF-8 makes of the two texts the hash would be taken of: one and the same.
    expect(sha256('\u0000tenant:2:a\ud800\u0000"k"')).toBe(sha256('\u0000tenant:2:a\ufffd\u0000"k"'));
    for (const tenant of ['a\ud800', '\udc00a', 'a\ud800\ud800']) {
      expect(() => keyHash('"k"', tenant)).toThrow(expect.objectContaining({ code: 'INVALID_KEY' }));
    }
    expect(keyHash('"k"', 'a\ufffd')).toBe(sha256('\u0000tenant:2:a\ufffd\u0000"k"'));
    expect(keyHash('"k"', '\u{1F600}')).toBe(sha256('\u0000tenant:2:\u{1F600}\u0000"k"'));
  });
});

describe('member order the engine would not keep', () => {
  test('array-index keys sort by code point with the others, not first in numeric order as objects enumerate them', () => {
    expect(canonicalJson({ '10': 1, '9': 2, b: 3, '!': 4 })).toBe('{"!":4,"10":1,"9":2,"b":3}');
    expect(canonicalJson({ nested: [{ '2': 'x', '1': 'y', a: 'z' }] })).toBe('{"nested":[{"1":"y","2":"x","a":"z"}]}');
  });

  test('an own __proto__ member (as JSON.parse makes) is kept as a member', () => {
    expect(canonicalJson(JSON.parse('{"b":1,"__proto__":{"x":1},"a":2}'))).toBe('{"__proto__":{"x":1},"a":2,"b":1}');
  });

  test('keys with astral characters and U+E000–FFFF sort by code point', () => {
    expect(canonicalJson({ '\u{1F600}': 1, '\uFF01': 2, a: 3 })).toBe('{"a":3,"\uFF01":2,"\u{1F600}":1}');
  });
});
