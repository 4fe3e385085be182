/**
 * Edges of canonical JSON that the properties in `key-properties.test.ts` rarely reach: objects with
 * many members, member names the engine enumerates first (array indices), typed arrays longer than
 * one chunk of text, the nesting limit (toJSON chains included), objects JSON would write by their
 * own members only (a Map, a Set, an Error), lone surrogates in member names, undefined array
 * elements where members are written one by one, and undefined inside a selected key's parts.
 * Each expected text is written out.
 */
import { runInNewContext } from 'node:vm';
import { canonicalJson, hashKey } from '../../lib/index.js';
import { canonicalKey } from '../../lib/key.js';
import { invalidKey } from '../support/invalid-key.js';

/** `count` members named m00, m01, …, inserted in a scrambled order (every 7th, `count` not a multiple of 7). */
const scrambledMembers = (count: number): Record<string, number> =>
  Object.fromEntries(Array.from({ length: count }, (_, i) => (i * 7) % count).map((n) => [`m${String(n).padStart(2, '0')}`, n]));

test('an object of more than 16 members is sorted as one of a few members is', () => {
  for (const count of [16, 17, 40]) {
    const expected = `{${Array.from({ length: count }, (_, i) => `"m${String(i).padStart(2, '0')}":${i}`).join(',')}}`;
    expect(canonicalJson(scrambledMembers(count))).toBe(expected);
    expect(canonicalJson({ nested: [scrambledMembers(count)] })).toBe(`{"nested":[${expected}]}`);
  }
});

test('every member name the engine enumerates first (array indices 0 to 4294967294) takes its code-point place among the others', () => {
  expect(canonicalJson({ '!': 1, '0': 2 })).toBe('{"!":1,"0":2}');
  expect(canonicalJson({ '!': 1, '4294967294': 2, '1000000000': 3 })).toBe('{"!":1,"1000000000":3,"4294967294":2}');
  // The greatest index, alone: nothing else makes the object one whose members are written one by one.
  expect(canonicalJson({ '!': 1, '4294967294': 2 })).toBe('{"!":1,"4294967294":2}');
  // Not indices, so already in insertion order: written in code-point order all the same.
  expect(canonicalJson({ b: 1, '4294967295': 2, '01': 3, '!': 4 })).toBe('{"!":4,"01":3,"4294967295":2,"b":1}');
});

test('members written one by one (an object with an array-index member) are in code-point order too: astral names after U+E000–FFFF', () => {
  expect(canonicalJson({ '\u{1F600}': 1, '\uFFFD': 2, '1': 3 })).toBe('{"1":3,"\uFFFD":2,"\u{1F600}":1}');
  // An own `__proto__` member (as JSON.parse makes) is written one by one as well.
  expect(canonicalJson(JSON.parse('{"\\ud83d\\ude00":1,"\\ue000":2,"__proto__":3}'))).toBe('{"__proto__":3,"\uE000":2,"\u{1F600}":1}');
});

test('a typed array whose text spans many chunks, with numbers of 24 characters, is written as its plain-object copy is', () => {
  const samples = new Float64Array(5_000).map((_, i) => -1.2345678901234567e-100 * (i + 1));
  expect(canonicalJson(samples)).toBe(canonicalJson({ ...samples }));
  expect(canonicalJson(samples)!.length).toBeGreaterThan(2 * 65_536);
});

test('nesting: 200 levels are a key, 201 are INVALID_KEY', () => {
  const nested = (levels: number): unknown => {
    let value: unknown = 1;
    for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { a: value };
    return value;
  };
  expect(() => canonicalJson(nested(200))).not.toThrow();
  expect(invalidKey(nested(201)).message).toMatch(/nesting deeper than 200 levels/);
});

test('a value JSON writes as a string or a number (a Date, a boxed number, a toJSON) is no level of nesting: at 200 levels it is the key its JSON is', () => {
  const nested = (levels: number, leaf: unknown): unknown => {
    let value: unknown = leaf;
    for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { a: value };
    return value;
  };
  const at = new Date(0);
  expect(canonicalJson(nested(200, at))).toBe(canonicalJson(nested(200, at.toISOString())));
  expect(canonicalJson(nested(200, Object(7)))).toBe(canonicalJson(nested(200, 7)));
  expect(canonicalJson(nested(200, { toJSON: () => 'x' }))).toBe(canonicalJson(nested(200, 'x')));
  // Written as an object, it is one level more.
  expect(invalidKey(nested(200, { toJSON: () => ({ id: 1 }) })).message).toMatch(/nesting deeper than 200 levels/);
  expect(invalidKey(nested(200, new Uint8Array([1]))).message).toMatch(/nesting deeper than 200 levels/);
});

test('a Map or an Error is INVALID_KEY even with members of its own, which JSON would write without its entries or message', () => {
  // JSON writes both as `{"tag":"x"}`: every Map so tagged, whatever its entries, would be one key.
  expect(invalidKey(Object.assign(new Map([['order', 1]]), { tag: 'x' })).message).toMatch(/holds a Map at \$/);
  expect(invalidKey({ m: new Map() }).message).toMatch(/holds a Map at \$\.m/);
  expect(invalidKey(Object.assign(new Error('card declined'), { code: 'DECLINED' })).message).toMatch(/holds an Error at \$/);
  expect(invalidKey([Object.assign(new TypeError('bad'), { code: 'E' })]).message).toMatch(/holds a TypeError at \$\[0\]/);
  // A Set, a WeakMap and a WeakSet as well: JSON writes each as its own members only.
  expect(invalidKey(Object.assign(new Set(['order-1']), { tag: 'x' })).message).toMatch(/holds a Set at \$/);
  expect(invalidKey({ w: Object.assign(new WeakMap(), { tag: 'x' }) }).message).toMatch(/holds a WeakMap at \$\.w/);
  expect(invalidKey([Object.assign(new WeakSet(), { tag: 'x' })]).message).toMatch(/holds a WeakSet at \$\[0\]/);
});

test('undefined inside a part of a selected key is written as JSON writes it: only top-level parts are judged missing', () => {
  expect(canonicalKey({ ids: [1, undefined] }, true)).toBe('{"ids":[1,null]}');
  expect(canonicalKey([['c', undefined], 'r'], true)).toBe('[["c",null],"r"]');
  expect(canonicalKey([{ id: 'o', note: undefined }], true)).toBe('[{"id":"o"}]');
});

test('lone surrogates in member names sort after U+E000–FFFF, as the halves of astral characters do, U+DFFF included, whatever the insertion order', () => {
  const names = ['\uD7FF', '\uE000', '\uFFFF', '\uD800', '\uDFFF'];
  const expected = '{"\uD7FF":0,"\uE000":1,"\uFFFF":2,"\\ud800":3,"\\udfff":4}';
  const forward = Object.fromEntries(names.map((name, i) => [name, i]));
  const backward = Object.fromEntries(names.map((name, i) => [name, i]).reverse());
  expect(canonicalJson(forward)).toBe(expected);
  expect(canonicalJson(backward)).toBe(expected);
  // Written one by one (with an array-index member), in the same order.
  expect(canonicalJson({ ...backward, '7': 5 })).toBe(`{"7":5,${expected.slice(1)}`);
});

test('a toJSON that returns itself, or toJSON methods chained deeper than the limit, is nesting deeper than 200 levels, not a stack overflow', () => {
  const selfish = {
    toJSON(): unknown {
      return this;
    },
  };
  expect(invalidKey(selfish).message).toMatch(/nesting deeper than 200 levels at \$/);
  let chained: unknown = 'leaf';
  for (let i = 0; i < 300; i++) {
    const inner = chained;
    chained = { toJSON: () => inner };
  }
  expect(invalidKey(chained).message).toMatch(/nesting deeper than 200 levels at \$/);
});

test('an undefined array element is null where members are written one by one too: [undefined] is never []', () => {
  expect(canonicalJson({ '0': 'o-1', items: [undefined] })).toBe('{"0":"o-1","items":[null]}');
  expect(canonicalJson([undefined, { '1': 2 }])).toBe('[null,{"1":2}]');
  expect(canonicalJson({ '0': 'o-1', items: [] })).toBe('{"0":"o-1","items":[]}');
});

test('a toJSON is given the member name or index it is written under, as JSON.stringify gives it: one that reads it is never another value', () => {
  const labelled = { toJSON: (key: string) => `under "${key}"` };
  const value = { a: labelled, list: [labelled, { '1': labelled }] };
  expect(canonicalJson(value)).toBe(JSON.stringify(value));
  expect(canonicalJson(value)).toBe('{"a":"under \\"a\\"","list":["under \\"0\\"",{"1":"under \\"1\\""}]}');
  expect(canonicalJson(labelled)).toBe('"under \\"\\""');
  // Given '' wherever it sits, it would be written as the literal text it returns for the top level.
  expect(hashKey({ a: labelled })).not.toBe(hashKey({ a: 'under ""' }));
});

test('an empty array of a subclass of Array or of another realm is [], as JSON writes it, not an object without members', () => {
  class Ids extends Array<string> {}
  expect(canonicalJson({ ids: new Ids() })).toBe('{"ids":[]}');
  expect(canonicalJson({ ids: runInNewContext('[]') })).toBe('{"ids":[]}');
  expect(canonicalJson(runInNewContext('[[], ["a"]]'))).toBe('[[],["a"]]');
});
