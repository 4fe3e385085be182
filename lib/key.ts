import { createHash } from 'node:crypto';
import { IdempotencyError } from './errors.js';

const MAX_DEPTH = 200;

/**
 * Compares strings by Unicode code point. JavaScript's `<` compares UTF-16 code units, which puts
 * astral characters (surrogate pairs, U+D800–DFFF) before U+E000–FFFF; shifting the code units
 * restores code-point order without decoding.
 */
function codePointCompare(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800) x = x <= 0xdfff ? x + 0x2000 : x - 0x800;
    if (y >= 0xd800) y = y <= 0xdfff ? y + 0x2000 : y - 0x800;
    return x - y;
  }
  return a.length - b.length;
}

function invalid(path: string, what: string): IdempotencyError {
  return new IdempotencyError('INVALID_KEY', `The idempotency key holds ${what} at ${path}, which JSON cannot represent faithfully.`);
}

function write(value: unknown, path: string, depth: number, seen: Set<object>): string | undefined {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw invalid(path, `the number ${value}`);
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'undefined':
      return undefined;
    case 'bigint':
      throw invalid(path, 'a BigInt');
    case 'function':
      throw invalid(path, 'a function');
    case 'symbol':
      throw invalid(path, 'a symbol');
  }
  if (value === null) return 'null';
  const object = value as object;
  // Checked before toJSON too: a toJSON that returns an object with a toJSON must not recurse forever.
  if (depth >= MAX_DEPTH) throw invalid(path, `nesting deeper than ${MAX_DEPTH} levels`);
  if (typeof (object as { toJSON?: unknown }).toJSON === 'function') {
    return write((object as { toJSON(key: string): unknown }).toJSON(''), path, depth + 1, seen);
  }
  // As in JSON, boxed primitives are written as their value (not as `{}`, where every Number would collide).
  if (object instanceof Number || object instanceof String || object instanceof Boolean || object instanceof BigInt) {
    return write(object.valueOf(), path, depth + 1, seen);
  }
  if (object instanceof Map || object instanceof Set || object instanceof WeakMap || object instanceof WeakSet) {
    throw invalid(path, `a ${object.constructor.name}`);
  }
  if (object instanceof RegExp || object instanceof Error || object instanceof Promise) {
    throw invalid(path, `a ${object.constructor.name}`);
  }
  if (seen.has(object)) throw invalid(path, 'a circular reference');
  seen.add(object);
  let out: string;
  if (Array.isArray(object)) {
    out = '[';
    for (let i = 0; i < object.length; i++) {
      if (i > 0) out += ',';
      // As in JSON, an undefined array element is written as null.
      out += write(object[i], `${path}[${i}]`, depth + 1, seen) ?? 'null';
    }
    out += ']';
  } else {
    const keys = Object.keys(object).sort(codePointCompare);
    out = '{';
    let first = true;
    for (const key of keys) {
      const member = write((object as Record<string, unknown>)[key], `${path}.${key}`, depth + 1, seen);
      if (member === undefined) continue;
      out += `${first ? '' : ','}${JSON.stringify(key)}:${member}`;
      first = false;
    }
    out += '}';
  }
  seen.delete(object);
  return out;
}

/**
 * Canonical JSON: object members sorted by code point, arrays in order, `undefined` members
 * dropped, numbers and strings as `JSON.stringify` writes them. Values JSON cannot represent
 * faithfully (BigInt, functions, symbols, NaN/Infinity, cycles, Map/Set, RegExp, Error) throw an
 * `INVALID_KEY` {@link IdempotencyError} instead of collapsing into another value's text.
 *
 * @example
 * ```ts
 * canonicalJson({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 * ```
 */
export function canonicalJson(value: unknown): string | undefined {
  try {
    return write(value, '$', 0, new Set());
  } catch (error) {
    if (error instanceof IdempotencyError) throw error;
    // A toJSON, a getter or a proxy trap of the value threw: the value has no JSON form to hash.
    throw new IdempotencyError('INVALID_KEY', 'Reading the idempotency key threw (a toJSON method, a getter or a proxy trap).', { cause: error });
  }
}

/** SHA-256 of a string, base64url (43 characters). @internal */
export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

/** True for the values that mean "no key": `undefined`, `null` and `''`. @internal */
export function isMissingKey(value: unknown): boolean {
  return value === undefined || value === null || value === '';
}

/**
 * Hash of the canonical JSON of `value`: equal for values that differ only in member order.
 *
 * @example
 * ```ts
 * hashKey({ a: 1, b: 2 }) === hashKey({ b: 2, a: 1 }); // true
 * ```
 */
export function hashKey(value: unknown): string {
  const json = canonicalJson(value);
  if (json === undefined) throw new IdempotencyError('KEY_MISSING', 'The idempotency key selector returned no value.');
  return sha256(json);
}
