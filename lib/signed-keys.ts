import { createHmac, createSecretKey, type KeyObject, randomBytes, timingSafeEqual } from 'node:crypto';
import { anyValue, checkOptions, isFunction, type OptionCheck, wholeNumber } from './options.js';

/**
 * Server-issued idempotency keys: a random part, the issue time and their HMAC-SHA-256 under a
 * secret, so an API can accept only keys it issued. No token store is needed: the record protocol
 * consumes a key on first use, replays it afterwards and frees it again when the call fails, for as
 * long as its record is kept. So a key expires before its record can: a record written on first use
 * (at most the clock-skew allowance before the issue time) lives until at least issue time +
 * retention − allowance, which is the most a key's age may be.
 *
 * Format: `<22 base64url characters of randomness>.<issue time, epoch seconds, base 36>.<43 base64url
 * characters of MAC>` (at most 75 characters: a bare-token `Idempotency-Key`, no commas or quotes).
 * Keys of the earlier format, `<random>.<MAC>` without a time, still verify and never expire:
 * rotating the secret retires them. Keys are compared as text, so no two spellings of one key can
 * both verify.
 */

/** An HMAC secret: at least 32 bytes, as a string (its UTF-8 bytes) or bytes. */
export type SigningSecret = string | Uint8Array;

/** Options of {@link issueIdempotencyKey}. */
export interface IssueIdempotencyKeyOptions {
  /** The current secret (the first of the list `signedKeys` verifies with). */
  readonly secret: SigningSecret;
  /** Clock, epoch milliseconds: the issue time the key carries (from 0 to the year 91,000 or so; else a `TypeError`). @default Date.now */
  readonly now?: (() => number) | undefined;
}

/** Options of {@link verifyIdempotencyKey}. */
export interface VerifyIdempotencyKeyOptions {
  /**
   * Refuse keys issued this many seconds ago or earlier, and keys issued more than 5 minutes in the
   * future (clock skew). Keep it at most the records' retention less those 5 minutes.
   * @default no age limit
   */
  readonly maxAgeSeconds?: number | undefined;
  /** Clock, epoch milliseconds; needs `maxAgeSeconds`. A reading that is not a time (NaN, say) is a `TypeError`, never an accepted key. @default Date.now */
  readonly now?: (() => number) | undefined;
}

/** The check of a `maxAgeSeconds` option. @internal */
export const MAX_AGE = wholeNumber(1, 'seconds');

/** The options of `issueIdempotencyKey` (its secret is checked where it is read). */
const ISSUE_CHECKS: Readonly<Record<keyof IssueIdempotencyKeyOptions, OptionCheck>> = { secret: anyValue, now: isFunction };

/** The options of `verifyIdempotencyKey`. */
const VERIFY_CHECKS: Readonly<Record<keyof VerifyIdempotencyKeyOptions, OptionCheck>> = { maxAgeSeconds: MAX_AGE, now: isFunction };

/** How far a key's issue time may be ahead of the verifier's clock: servers' clocks differ. */
const CLOCK_SKEW_SECONDS = 300;
const MIN_SECRET_BYTES = 32;
/** The first millisecond whose second needs more than the 8 base-36 digits a key carries (year 91,000 or so). */
const END_OF_TIMES = 36 ** 8 * 1000;
// The MAC covers a label as well as the key's parts, so these MACs mean nothing in another protocol
// using the same secret, and a key of one version cannot pass for the other.
const LABEL_V1 = 'lambda-idempotency key v1.';
const LABEL_V2 = 'lambda-idempotency key v2.';
// One spelling per time: base 36, lower case, no leading zero, at most 8 digits (a safe integer).
const SHAPE = /^([A-Za-z0-9_-]{22})(?:\.(0|[1-9a-z][0-9a-z]{0,7}))?\.([A-Za-z0-9_-]{43})$/;

/** Which keys are accepted by age: from `skewSeconds` before their issue time until `maxAgeSeconds` after it. @internal */
export interface KeyAgeLimit {
  readonly maxAgeSeconds: number;
  readonly skewSeconds: number;
  readonly now: () => number;
}

/** What a check makes of a key: issued (and not expired), not issued with these secrets, too old, or issued in the future. @internal */
export type KeyVerdict = 'issued' | 'forged' | 'expired' | 'early';

function secretKey(where: string, secret: unknown): KeyObject {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret instanceof Uint8Array ? secret : undefined;
  if (bytes === undefined) throw new TypeError(`${where}: a secret must be a string or a Uint8Array.`);
  if (bytes.byteLength < MIN_SECRET_BYTES) {
    throw new TypeError(`${where}: a secret must be at least ${MIN_SECRET_BYTES} bytes long (got ${bytes.byteLength}); use e.g. randomBytes(32).`);
  }
  return createSecretKey(bytes);
}

/**
 * The clock's reading, checked: NaN compares false both ways, so a clock that reads no time would
 * make every key neither expired nor early, accepted whatever its age.
 */
function clockReading(where: string, millis: number, before = Number.POSITIVE_INFINITY): number {
  if (Number.isSafeInteger(Math.floor(millis)) && millis >= 0 && millis < before) return millis;
  const range = Number.isFinite(before) && typeof millis === 'number' && millis >= before ? `0 or more, before ${before}` : '0 or more';
  throw new TypeError(`${where}: the clock must return epoch milliseconds, ${range} (got ${String(millis)}).`);
}

const mac = (key: KeyObject, random: string, time: string | undefined): string =>
  (time === undefined
    ? createHmac('sha256', key).update(LABEL_V1).update(random)
    : createHmac('sha256', key).update(LABEL_V2).update(`${random}.${time}`)
  ).digest('base64url');

/**
 * The age limit of keys for records kept `retentionSeconds`: every key it accepts finds the record
 * its first use wrote. `maxAgeSeconds` (already checked to be a whole number) may lower it. @internal
 */
export function retentionKeyLimit(where: string, retentionSeconds: number, maxAgeSeconds: number | undefined, now: () => number): KeyAgeLimit {
  const skewSeconds = Math.min(CLOCK_SKEW_SECONDS, Math.floor(retentionSeconds / 2));
  const bound = retentionSeconds - skewSeconds;
  if (maxAgeSeconds !== undefined && maxAgeSeconds > bound) {
    throw new TypeError(
      `${where}: \`maxAgeSeconds\` must be at most ${bound} (the retention, ${retentionSeconds} s, less ${skewSeconds} s allowed for clock skew), got ${maxAgeSeconds}: a key that outlives its record would run again.`,
    );
  }
  return { maxAgeSeconds: maxAgeSeconds ?? bound, skewSeconds, now };
}

/**
 * A check of keys against `secrets` (the current one, then earlier ones still accepted), with the
 * secrets validated once; without `limit`, keys never expire. @internal
 */
export function keyVerifier(where: string, secrets: unknown, limit?: KeyAgeLimit): (key: string) => KeyVerdict {
  if (!Array.isArray(secrets) || secrets.length === 0) {
    throw new TypeError(`${where}: \`secrets\` must be a non-empty array: the current secret first, then those still accepted.`);
  }
  // Array.from visits holes too: `[, secret]` is refused here, not by the first request it verifies.
  const keys = Array.from(secrets as unknown[], (secret) => secretKey(where, secret));
  return (key) => {
    const parts = typeof key === 'string' ? SHAPE.exec(key) : null;
    if (parts === null) return 'forged';
    const [, random, time, tag] = parts as unknown as [string, string, string | undefined, string];
    const given = Buffer.from(tag, 'ascii');
    let valid = false;
    // Every secret is tried, and compared in constant time: the time taken says nothing of the MAC.
    for (const secret of keys) valid = timingSafeEqual(Buffer.from(mac(secret, random, time), 'ascii'), given) || valid;
    if (!valid) return 'forged';
    if (time === undefined || limit === undefined) return 'issued';
    const issuedMillis = Number.parseInt(time, 36) * 1000;
    const now = clockReading(where, limit.now());
    if (now >= issuedMillis + limit.maxAgeSeconds * 1000) return 'expired';
    return now < issuedMillis - limit.skewSeconds * 1000 ? 'early' : 'issued';
  };
}

/**
 * A fresh idempotency key signed with `secret` (HMAC-SHA-256), carrying its issue time, for an API
 * that accepts only keys it issued (`httpIdempotency({ signedKeys })`), until they expire. At most
 * 75 characters, a valid `Idempotency-Key` value.
 *
 * @example
 * ```ts
 * // POST /idempotency-keys
 * return { statusCode: 201, body: JSON.stringify({ key: issueIdempotencyKey({ secret: process.env.KEY_SECRET! }) }) };
 * ```
 */
export function issueIdempotencyKey(options: IssueIdempotencyKeyOptions): string {
  if (options === null || typeof options !== 'object') throw new TypeError('issueIdempotencyKey: options must be an object with a `secret`.');
  checkOptions('issueIdempotencyKey', options, ISSUE_CHECKS);
  const key = secretKey('issueIdempotencyKey', options.secret);
  // A later second would not fit the key's 8 digits: a key that never verifies.
  const millis = clockReading('issueIdempotencyKey', (options.now ?? Date.now)(), END_OF_TIMES);
  const random = randomBytes(16).toString('base64url');
  const time = Math.floor(millis / 1000).toString(36);
  return `${random}.${time}.${mac(key, random, time)}`;
}

/**
 * True when `key` was issued by {@link issueIdempotencyKey} with one of `secrets`. Pass the current
 * secret first and the previous ones after it, so keys issued before a rotation stay valid until
 * the previous secret is removed. With `maxAgeSeconds`, a key issued that long ago (or more than 5
 * minutes in the future) is refused; keys of the earlier format, which carry no issue time, are not.
 *
 * @example
 * ```ts
 * verifyIdempotencyKey(key, [currentSecret, previousSecret]); // true or false
 * verifyIdempotencyKey(key, [currentSecret], { maxAgeSeconds: 3600 }); // false once an hour old
 * ```
 */
export function verifyIdempotencyKey(key: string, secrets: readonly SigningSecret[], options?: VerifyIdempotencyKeyOptions): boolean {
  const where = 'verifyIdempotencyKey';
  if (options !== undefined) checkOptions(where, options, VERIFY_CHECKS);
  const { maxAgeSeconds, now } = options ?? {};
  if (now !== undefined && maxAgeSeconds === undefined) throw new TypeError(`${where}: \`now\` needs \`maxAgeSeconds\`: without it keys never expire.`);
  const limit = maxAgeSeconds === undefined ? undefined : { maxAgeSeconds, skewSeconds: CLOCK_SKEW_SECONDS, now: now ?? (() => Date.now()) };
  return keyVerifier(where, secrets, limit)(key) === 'issued';
}
