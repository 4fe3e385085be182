/**
 * Properties of canonical JSON and key hashing (fast-check): member order never matters, distinct
 * JSON values never share a canonical form (so never a hash), the canonical form is the value's
 * faithful JSON with members in code-point order, and hashes are pinned so that a record written
 * by one version is found by the next.
 */

import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { canonicalJson, hashKey } from '../../lib/index.js';
import { prng } from '../support/faults.js';

/** Pinned, so every run checks the same values; FC_SEED explores others. */
const SEED = Number(process.env.FC_SEED ?? 20_240_607);
const RUNS = { numRuns: 300, seed: SEED };

/** What a value means as JSON: `-0` is `0`, and so on. */
const asJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

/** Compares by Unicode code point, decoding the strings (an independent reference for the library's ordering). */
function byCodePoint(a: string, b: string): number {
  const x = Array.from(a, (c) => c.codePointAt(0)!);
  const y = Array.from(b, (c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** The expected canonical form, written independently of the library. */
function reference(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.keys(value)
      .sort(byCodePoint)
      .map((key) => `${JSON.stringify(key)}:${reference((value as Record<string, unknown>)[key])}`);
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A deep copy whose object members are inserted in a shuffled order. */
function shuffled(value: unknown, random: () => number): unknown {
  if (Array.isArray(value)) return value.map((v) => shuffled(v, random));
  if (value === null || typeof value !== 'object') return value;
  const keys = Object.keys(value);
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [keys[i], keys[j]] = [keys[j]!, keys[i]!];
  }
  const copy: Record<string, unknown> = {};
  for (const key of keys)
    Object.defineProperty(copy, key, {
      value: shuffled((value as Record<string, unknown>)[key], random),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  return copy;
}

/** One small change somewhere in the value: a leaf altered, a type changed, a member added or dropped. */
function mutated(value: unknown, random: () => number): unknown {
  const pick = random();
  if (Array.isArray(value) && value.length > 0 && pick < 0.6) {
    const i = Math.floor(random() * value.length);
    return value.map((v, j) => (i === j ? mutated(v, random) : v));
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const copy = { ...(value as Record<string, unknown>) };
    if (keys.length > 0 && pick < 0.6) {
      const key = keys[Math.floor(random() * keys.length)]!;
      return Object.assign(copy, { [key]: mutated(copy[key], random) });
    }
    if (keys.length > 0 && pick < 0.8) {
      delete copy[keys[0]!];
      return copy;
    }
    return Object.assign(copy, { [`k${keys.length}`]: null });
  }
  switch (typeof value) {
    case 'number':
      return pick < 0.5 ? value + 1 : String(value); // 1 and "1" must differ
    case 'string':
      return pick < 0.5 ? `${value}\u0000` : value.length > 0 ? value.slice(1) : null;
    case 'boolean':
      return pick < 0.5 ? !value : String(value);
    default:
      return pick < 0.5 ? [value] : { v: value };
  }
}

describe('canonicalJson and hashKey (property-based)', () => {
  test('member order never matters: a shuffled copy has the same canonical form and hash', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer(), (value, seed) => {
        const copy = shuffled(value, prng(seed));
        expect(canonicalJson(copy)).toBe(canonicalJson(value));
        expect(hashKey(copy)).toBe(hashKey(value));
      }),
      RUNS,
    );
  });

  test('the canonical form is the JSON of the value, members in code-point order, and parses back to it', () => {
    fc.assert(
      fc.property(fc.jsonValue({ stringUnit: 'grapheme' }), (value) => {
        const canonical = canonicalJson(value)!;
        expect(canonical).toBe(reference(value));
        expect(isDeepStrictEqual(JSON.parse(canonical), asJson(value))).toBe(true);
      }),
      RUNS,
    );
  });

  test('distinct JSON values never share a canonical form or a hash; equal ones always do', () => {
    const pair = fc.oneof(
      fc.tuple(fc.jsonValue(), fc.jsonValue()),
      fc.tuple(fc.jsonValue(), fc.integer()).map(([value, seed]) => [value, mutated(value, prng(seed))] as const),
      fc.tuple(fc.jsonValue(), fc.integer()).map(([value, seed]) => [value, shuffled(value, prng(seed))] as const),
    );
    fc.assert(
      fc.property(pair, ([a, b]) => {
        const same = isDeepStrictEqual(asJson(a), asJson(b));
        expect(canonicalJson(a) === canonicalJson(b)).toBe(same);
        expect(hashKey(a) === hashKey(b)).toBe(same);
      }),
      { numRuns: 500, seed: SEED },
    );
  });

  test('undefined members and toJSON values are read as JSON.stringify reads them', () => {
    const withExtras = fc.dictionary(
      fc.string(),
      fc.oneof(fc.jsonValue(), fc.constant(undefined), fc.date({ noInvalidDate: true }), fc.constant({ toJSON: () => 'from toJSON' })),
    );
    fc.assert(
      fc.property(withExtras, (value) => {
        expect(canonicalJson(value)).toBe(canonicalJson(asJson(value)));
      }),
      RUNS,
    );
  });

  test('hashes are stable across runs and versions (pinned)', () => {
    // SHA-256 of the canonical JSON, base64url; changing any of these orphans every stored record.
    expect(hashKey('order-1')).toBe('SwgkJZjomBj5i5z37A2O6QM74sVuV5hHsNYLbbUW90Y');
    expect(hashKey(0)).toBe('X-zrZv_IbzjZUnhsbWlsecLbwjndTpG0ZynXOif7V-k');
    expect(hashKey(-1.5e-7)).toBe('XRUjw8fsLLAXrm1N452txxqFehCgX6iXruG7cSE6kWg');
    expect(hashKey(true)).toBe('tb6kG2xiP3wJ8b8k3K5Y66s8DN2QrZZrxDpFtEhn4Ss');
    expect(hashKey([1, 'a', null])).toBe('b5xUZY_bwvFV5xBeCtYzyMA-g7Z3pril37dUEmS4NiI');
    expect(hashKey({ b: 2, a: [true, null, 'x'] })).toBe('q5sC237C2Ucz8Ro5koGj0oaU82shyogxHsT-J2ec79U');
    expect(hashKey({ '\u{1F600}': 'smile', '\uFFFD': 'replacement', é: 'e-acute' })).toBe('fsDV72zB1aBDdPmuVkR-b058Htw6nMMaxmbyB6N5RS8');
    expect(hashKey({ paymentId: 'p-42', amount: 1000, currency: 'EUR' })).toBe('x9wl_BCx5qmmHtIvSdtB4LzJz-wCfi2gW_pweBXmz3Y');
  });
});
