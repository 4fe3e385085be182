import { Buffer } from 'node:buffer';
import { hash } from 'node:crypto';
import { IdempotencyError } from './errors.js';

const MAX_DEPTH = 200;
/**
 * Holes cost nothing to create (`array.length = 2 ** 32 - 1`) but each is written as null: such an
 * array would exhaust the heap. No event Lambda delivers comes near (6 MB of JSON holds 3 million).
 */
const MAX_ARRAY_LENGTH = 10_000_000;

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

/**
 * Sorts strings by UTF-16 code unit, as `Array.prototype.sort()` does. Most objects in an event
 * have a handful of members, which an insertion sort orders several times faster than the
 * built-in sort (which converts and compares each pair through its generic path).
 */
function sortKeys(keys: string[]): void {
  if (keys.length > 16) {
    keys.sort();
    return;
  }
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i]!;
    let j = i - 1;
    for (; j >= 0 && keys[j]! > key; j--) keys[j + 1] = keys[j]!;
    keys[j + 1] = key;
  }
}

/** Canonical JSON already written, which `writeSorted` copies: the members of a typed array. */
class Written {
  constructor(readonly text: string) {}
}

/**
 * The canonical JSON of the `length` index members of a typed array, `{"0":…,"1":…,"10":…,"2":…}`:
 * indices in code-point order of their text, numbers as JSON writes them. Bytes are written to a
 * buffer: a string per member costs several times as much, and the generic path (which sorts the
 * keys as strings) twenty times. `undefined` when an element is not a number or BigInt (index members of another realm's
 * DataView), which is then written as any object.
 */
function typedArrayJson(view: ArrayLike<unknown>, length: number): string | undefined {
  const chunks: string[] = [];
  const out = Buffer.allocUnsafe(1 << 16);
  const digits = [0x30]; // the index's text, as character codes
  let at = 0;
  out[at++] = 0x7b;
  for (let n = 0, i = 0; n < length; n++) {
    // A member takes at most 38 bytes: a 10-digit index and a 24-character number.
    if (at > out.length - 64) {
      chunks.push(out.toString('latin1', 0, at));
      at = 0;
    }
    const value = view[i];
    if (!Number.isFinite(value)) {
      if (typeof value !== 'number' && typeof value !== 'bigint') return undefined;
      const fault = new KeyFault(typeof value === 'bigint' ? 'a BigInt' : `the number ${value}`);
      fault.segments.push(`.${i}`);
      throw fault;
    }
    if (n > 0) out[at++] = 0x2c;
    out[at++] = 0x22;
    for (const digit of digits) out[at++] = digit;
    out[at++] = 0x22;
    out[at++] = 0x3a;
    const text = `${value}`; // JSON's text of a finite number (-0 included, as 0)
    for (let c = 0; c < text.length; c++) out[at++] = text.charCodeAt(c);
    // The next index in code-point order: a child (i0), else the next sibling of i or of its nearest ancestor.
    if (i === 0) {
      i = 1;
      digits[0] = 0x31;
    } else if (i * 10 < length) {
      i *= 10;
      digits.push(0x30);
    } else {
      while (i % 10 === 9 || i + 1 >= length) {
        i = Math.floor(i / 10);
        digits.pop();
      }
      i++;
      digits[digits.length - 1]!++;
    }
  }
  out[at++] = 0x7d;
  chunks.push(out.toString('latin1', 0, at));
  return chunks.join('');
}

/** `a Map`, `an Error`: the class of `object` with its article. */
const named = (object: object): string => {
  const name = object.constructor.name;
  return `${/^[AEIOU]/i.test(name) ? 'an' : 'a'} ${name}`;
};

/** A value with no faithful JSON form, found at the path its frames add while it unwinds. */
class KeyFault {
  readonly segments: string[] = [];
  constructor(readonly what: string) {}
}

/** V8 enumerates array-index keys first, in numeric order, whatever the insertion order. */
const isArrayIndex = (key: string): boolean => {
  const c = key.charCodeAt(0);
  return c >= 48 && c <= 57 && /^(?:0|[1-9]\d{0,9})$/.test(key) && Number(key) < 4_294_967_295;
};

const ASTRAL_OR_HIGH = /[\ud800-\uffff]/;

/**
 * One pass that validates and rebuilds the value as JSON would see it (toJSON applied, boxed
 * primitives unwrapped, `undefined` members dropped, members inserted in code-point order), so
 * that the native `JSON.stringify` can write it. Objects whose order the engine would not keep
 * (array-index keys, `__proto__`) set `manual`, and are then written by `writeSorted`.
 */
class Normalizer {
  manual = false;
  /** The first member of the outermost object or array that JSON writes as nothing (or as null, in an array). */
  absent: string | number | undefined;
  private readonly ancestors: object[] = [];

  /**
   * `hops`: the toJSON calls and unwrapped boxes that led to `value`, which JSON writes in its place
   * (no level of nesting); `key`: the member name or index `value` is written under, which JSON gives its toJSON.
   */
  run(value: unknown, depth: number, hops = 0, key: string | number = ''): unknown {
    switch (typeof value) {
      case 'string':
      case 'boolean':
      case 'undefined':
        return value;
      case 'number':
        if (!Number.isFinite(value)) throw new KeyFault(`the number ${value}`);
        return value;
      case 'bigint':
        throw new KeyFault('a BigInt');
      case 'function':
        throw new KeyFault('a function');
      case 'symbol':
        throw new KeyFault('a symbol');
    }
    if (value === null) return null;
    const object = value as object;
    // The common shapes first: plain objects and arrays without toJSON need none of the checks below.
    const proto = Object.getPrototypeOf(object);
    if ((proto === Object.prototype || proto === null || proto === Array.prototype) && typeof (object as { toJSON?: unknown }).toJSON !== 'function') {
      if (depth >= MAX_DEPTH) throw new KeyFault(`nesting deeper than ${MAX_DEPTH} levels`);
      return this.enter(object, depth);
    }
    // A toJSON that returns an object with a toJSON (itself) must not recurse forever: a chain is bounded as nesting is.
    if (hops >= MAX_DEPTH) throw new KeyFault(`nesting deeper than ${MAX_DEPTH} levels`);
    // Bounded as an array is, before its members are listed (or a Buffer's toJSON copies them to an array).
    if (ArrayBuffer.isView(object) && (object as Uint8Array).length > MAX_ARRAY_LENGTH) {
      throw new KeyFault(`a typed array longer than ${MAX_ARRAY_LENGTH.toLocaleString('en-US')} elements`);
    }
    // JSON writes the value a toJSON returns in the object's place, at its level: a Date is its string wherever its string is a key.
    if (typeof (object as { toJSON?: unknown }).toJSON === 'function')
      return this.run((object as { toJSON(key: string): unknown }).toJSON(String(key)), depth, hops + 1, key);
    // As in JSON, boxed primitives are written as their value (not as `{}`, where every Number would collide).
    if (object instanceof Number || object instanceof String || object instanceof Boolean || object instanceof BigInt) {
      return this.run(object.valueOf(), depth, hops + 1, key);
    }
    // Written as an object from here on: a level of nesting.
    if (depth >= MAX_DEPTH) throw new KeyFault(`nesting deeper than ${MAX_DEPTH} levels`);
    if (object instanceof Map || object instanceof Set || object instanceof WeakMap || object instanceof WeakSet) {
      throw new KeyFault(named(object));
    }
    if (object instanceof Promise) {
      // From an async selector. Its rejection, unhandled, would end the process.
      object.catch(() => undefined);
      throw new KeyFault('a Promise (selectors are synchronous)');
    }
    if (object instanceof RegExp || object instanceof Error) throw new KeyFault(named(object));
    if (ArrayBuffer.isView(object) && !(object instanceof DataView)) {
      const keys = Object.keys(object);
      // Index members only (a typed array lists them first, and other members never look like one).
      if (keys.length > 0 && keys[keys.length - 1] === String(keys.length - 1)) {
        const json = typedArrayJson(object as unknown as ArrayLike<unknown>, keys.length);
        if (json !== undefined) {
          this.manual = true;
          return new Written(json);
        }
      }
    }
    // JSON writes an instance without enumerable members (an ArrayBuffer, a WeakRef, private fields
    // only) as `{}`, whatever it holds: all of them would share one key.
    if (!Array.isArray(object) && Object.keys(object).length === 0) {
      throw new KeyFault(`an object with no JSON members (${Object.prototype.toString.call(object).slice(8, -1)})`);
    }
    return this.enter(object, depth);
  }

  private enter(object: object, depth: number): unknown {
    if (this.ancestors.includes(object)) throw new KeyFault('a circular reference');
    const outermost = this.ancestors.length === 0;
    this.ancestors.push(object);
    const out = Array.isArray(object) ? this.array(object, depth, outermost) : this.object(object as Record<string, unknown>, depth, outermost);
    this.ancestors.pop(); // on a fault the whole normalization is abandoned, so no finally is needed
    return out;
  }

  private array(array: unknown[], depth: number, outermost: boolean): unknown[] {
    if (array.length > MAX_ARRAY_LENGTH) throw new KeyFault(`an array longer than ${MAX_ARRAY_LENGTH.toLocaleString('en-US')} elements`);
    const out = new Array<unknown>(array.length);
    for (let i = 0; i < array.length; i++) {
      try {
        const element = this.run(array[i], depth + 1, 0, i);
        if (element === undefined && outermost) this.absent ??= i;
        // As in JSON, an undefined array element is written as null.
        out[i] = element ?? null;
      } catch (error) {
        if (error instanceof KeyFault) error.segments.push(`[${i}]`);
        throw error;
      }
    }
    return out;
  }

  private object(object: Record<string, unknown>, depth: number, outermost: boolean): Record<string, unknown> {
    const keys = Object.keys(object);
    if (keys.length > 1) {
      sortKeys(keys);
      // The default sort compares UTF-16 units; only keys with surrogates or U+E000–FFFF need more.
      for (const key of keys) {
        if (ASTRAL_OR_HIGH.test(key)) {
          keys.sort(codePointCompare);
          break;
        }
      }
    }
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      let member: unknown;
      try {
        member = this.run(object[key], depth + 1, 0, key);
      } catch (error) {
        if (error instanceof KeyFault) error.segments.push(`.${key}`);
        throw error;
      }
      if (member === undefined) {
        if (outermost) this.absent ??= key;
        continue;
      }
      if (key === '__proto__' || isArrayIndex(key)) {
        this.manual = true;
        Object.defineProperty(out, key, { value: member, enumerable: true, writable: true, configurable: true });
      } else out[key] = member;
    }
    return out;
  }
}

/** Writes a normalized value with every object's members in code-point order. */
function writeSorted(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (value instanceof Written) return value.text;
  if (Array.isArray(value)) return `[${value.map(writeSorted).join(',')}]`;
  const keys = Object.keys(value).sort(codePointCompare);
  return `{${keys.map((key) => `${JSON.stringify(key)}:${writeSorted((value as Record<string, unknown>)[key])}`).join(',')}}`;
}

/**
 * Canonical JSON: object members sorted by code point, arrays in order, `undefined` members
 * dropped, numbers and strings as `JSON.stringify` writes them. Values JSON cannot represent
 * faithfully (BigInt, functions, symbols, NaN/Infinity, cycles, Map/Set, RegExp, Error, objects
 * JSON writes as `{}` whatever they hold, such as an ArrayBuffer) throw an
 * `INVALID_KEY` {@link IdempotencyError} instead of collapsing into another value's text.
 *
 * @example
 * ```ts
 * canonicalJson({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 * ```
 */
export function canonicalJson(value: unknown): string | undefined {
  return canonicalForm(value).json;
}

/** The canonical JSON of a `fingerprint` selection, whose `INVALID_KEY` errors name the fingerprint. @internal */
export const fingerprintJson = (value: unknown): string | undefined => canonicalForm(value, 'fingerprint').json;

/**
 * The canonical JSON of `value`, and the plain data it was written from (what JSON sees of
 * `value`); `subject` is what its errors call the value.
 */
function canonicalForm(
  value: unknown,
  subject = 'idempotency key',
): { readonly json: string | undefined; readonly data: unknown; readonly absent: string | number | undefined } {
  try {
    const normalizer = new Normalizer();
    const data = normalizer.run(value, 0);
    return { json: normalizer.manual ? writeSorted(data) : JSON.stringify(data), data, absent: normalizer.absent };
  } catch (error) {
    if (error instanceof KeyFault) {
      const path = `$${error.segments.reverse().join('')}`;
      throw new IdempotencyError('INVALID_KEY', `The ${subject} holds ${error.what} at ${path}, which JSON cannot represent faithfully.`);
    }
    // A toJSON, a getter or a proxy trap of the value threw: the value has no JSON form to hash.
    throw new IdempotencyError('INVALID_KEY', `Reading the ${subject} threw (a toJSON method, a getter or a proxy trap).`, { cause: error });
  }
}

/** SHA-256 of a string, base64url (43 characters). @internal */
export function sha256(text: string): string {
  return hash('sha256', text, 'base64url');
}

/**
 * Whether a string holds no lone surrogate. UTF-8 has no form for one: hashing writes it as U+FFFD,
 * DynamoDB as '?', so two namespaces or tenant ids that differ only there would be one. (The
 * canonical JSON of a key is safe: JSON escapes a lone surrogate as `\ud800`.) @internal
 */
export const isWellFormed = (text: string): boolean => (text as string & { isWellFormed(): boolean }).isWellFormed();

/**
 * The hash of a call's key: SHA-256 of its canonical JSON, preceded by the tenant's id for an
 * invocation of Lambda's tenant isolation mode, so that two tenants never share a record. A
 * canonical JSON never starts with NUL: no tenant's hash is another call's without one. @internal
 */
export function keyHash(canonical: string, tenant: string | undefined): string {
  if (tenant === undefined) return sha256(canonical);
  if (!isWellFormed(tenant)) {
    throw new IdempotencyError(
      'INVALID_KEY',
      "The invocation's tenant id holds a lone surrogate, which UTF-8 cannot write: hashed, it would be another tenant's id.",
    );
  }
  return sha256(`\u0000tenant:${tenant.length}:${tenant}\u0000${canonical}`);
}

/** DynamoDB's limit on a partition key, which every record key meets. @internal */
export const MAX_RECORD_KEY_BYTES = 2048;

/**
 * A namespace of records: a non-empty string without '#' or lone surrogates, short enough that with
 * '#' and the 43-character hash it makes a record key of at most {@link MAX_RECORD_KEY_BYTES}. @internal
 */
export const isNamespace = (value: unknown): value is string =>
  typeof value === 'string' && value.length > 0 && !value.includes('#') && Buffer.byteLength(value) <= MAX_RECORD_KEY_BYTES - 44 && isWellFormed(value);

/** The record key: `<namespace>#<hash>` (namespaces never contain '#'). @internal */
export const recordKey = (namespace: string, hash: string): string => `${namespace}#${hash}`;

/** The namespace a record key was built with, for logs and metrics that must not carry the hash. @internal */
export const namespaceOf = (key: string): string => key.slice(0, key.indexOf('#'));

/** A value a key selector did not find, as JSON writes it: `undefined` (no text), `null` or `''`. */
const isMissing = (part: unknown): boolean => part === undefined || part === null || part === '';

/** A missing key: why it is missing, the sentence of its `KEY_MISSING`. @internal */
export interface MissingKey {
  readonly missing: string;
}

const NO_VALUE: MissingKey = { missing: 'The idempotency key selector found no value (undefined, null or empty string).' };
/** Without a `key` selector no selector found anything: the payload itself is empty. */
const NO_PAYLOAD: MissingKey = {
  missing: 'The payload, the idempotency key when no `key` selects one, is undefined, null or empty (as JSON writes it).',
};

/**
 * The canonical JSON of a key, or why it is missing: a value JSON writes as `undefined`, `null` or
 * `''` (an invalid Date, a boxed '', a toJSON yielding `undefined` too), which would otherwise be
 * one key shared by every such call. With `selected` (the value a `key` selector returned, not the
 * whole payload), also a value JSON writes as an object or array of such parts only, or of none
 * (`{}`, `[]`): a composite key none of whose parts was found; and one with any part JSON writes as
 * nothing (`{ tenant, orderId: undefined }`, `[customerId, undefined]`): every call without that
 * part would share the record of the parts found, and a second, different request would be
 * answered with the first one's response. An explicit `null` is a value. Parts are judged by their
 * JSON form, as the whole key is: `[new Date(NaN)]` is `[null]`, missing. A payload of such parts
 * (`{ cursor: null }`, `{}`, `{ cursor: undefined }`) is a request like any other. @internal
 */
export function canonicalKey(value: unknown, selected = false): string | MissingKey {
  if (isMissing(value)) return selected ? NO_VALUE : NO_PAYLOAD;
  const { json, data, absent } = canonicalForm(value);
  if (isMissing(data)) return selected ? NO_VALUE : NO_PAYLOAD;
  if (!selected || typeof data !== 'object') return json!;
  if (Object.values(data as object).every(isMissing)) return NO_VALUE;
  if (absent === undefined) return json!;
  const part = typeof absent === 'number' ? `index ${absent}` : `member \`${absent}\``;
  return {
    missing: `The idempotency key selector returned a key whose ${part} is undefined: every call without it would share one record. Select null explicitly for a part that may be absent.`,
  };
}

/**
 * SHA-256 of the canonical JSON of `value`, base64url (43 characters): equal for values that differ
 * only in member order. `undefined` throws `KEY_MISSING`; a value {@link canonicalJson} refuses, `INVALID_KEY`.
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
