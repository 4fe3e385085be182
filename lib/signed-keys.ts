import { createHmac, createSecretKey, type KeyObject, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Server-issued idempotency keys: a random part and its HMAC-SHA-256 under a secret, so an API can
 * accept only keys it issued. No token store is needed: the record protocol already consumes a key
 * on first use, replays it afterwards and frees it again when the call fails.
 *
 * Format: `<22 base64url characters of randomness>.<43 base64url characters of MAC>` (66
 * characters: a bare-token `Idempotency-Key`, no commas or quotes). Keys are compared as text,
 * so no two spellings of one key can both verify.
 */

/** An HMAC secret: at least 32 bytes, as a string (its UTF-8 bytes) or bytes. */
export type SigningSecret = string | Uint8Array;

/** Options of {@link issueIdempotencyKey}. */
export interface IssueIdempotencyKeyOptions {
  /** The current secret (the first of the list `signedKeys` verifies with). */
  readonly secret: SigningSecret;
}

const MIN_SECRET_BYTES = 32;
// The MAC covers a label as well as the random part, so these MACs mean nothing in another protocol using the same secret.
const LABEL = 'lambda-idempotency key v1.';
const SHAPE = /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/;

function secretKey(where: string, secret: unknown): KeyObject {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret instanceof Uint8Array ? secret : undefined;
  if (bytes === undefined) throw new TypeError(`${where}: a secret must be a string or a Uint8Array.`);
  if (bytes.byteLength < MIN_SECRET_BYTES) {
    throw new TypeError(`${where}: a secret must be at least ${MIN_SECRET_BYTES} bytes long (got ${bytes.byteLength}); use e.g. randomBytes(32).`);
  }
  return createSecretKey(bytes);
}

const mac = (key: KeyObject, random: string): string => createHmac('sha256', key).update(LABEL).update(random).digest('base64url');

/**
 * A check of keys against `secrets` (the current one, then earlier ones still accepted), with the
 * secrets validated once. @internal
 */
export function keyVerifier(where: string, secrets: unknown): (key: string) => boolean {
  if (!Array.isArray(secrets) || secrets.length === 0) {
    throw new TypeError(`${where}: \`secrets\` must be a non-empty array: the current secret first, then those still accepted.`);
  }
  // Array.from visits holes too: `[, secret]` is refused here, not by the first request it verifies.
  const keys = Array.from(secrets as unknown[], (secret) => secretKey(where, secret));
  return (key) => {
    if (typeof key !== 'string' || !SHAPE.test(key)) return false;
    const random = key.slice(0, 22);
    const given = Buffer.from(key.slice(23), 'ascii');
    let valid = false;
    // Every secret is tried, and compared in constant time: the time taken says nothing of the MAC.
    for (const secret of keys) valid = timingSafeEqual(Buffer.from(mac(secret, random), 'ascii'), given) || valid;
    return valid;
  };
}

/**
 * A fresh idempotency key signed with `secret` (HMAC-SHA-256), for an API that accepts only keys
 * it issued (`httpIdempotency({ signedKeys })`). 66 characters, a valid `Idempotency-Key` value.
 *
 * @example
 * ```ts
 * // POST /idempotency-keys
 * return { statusCode: 201, body: JSON.stringify({ key: issueIdempotencyKey({ secret: process.env.KEY_SECRET! }) }) };
 * ```
 */
export function issueIdempotencyKey(options: IssueIdempotencyKeyOptions): string {
  if (options === null || typeof options !== 'object') throw new TypeError('issueIdempotencyKey: options must be an object with a `secret`.');
  const unknown = Object.keys(options).find((name) => name !== 'secret');
  if (unknown !== undefined) throw new TypeError(`issueIdempotencyKey: unknown option \`${unknown}\`; the only option is \`secret\`.`);
  const key = secretKey('issueIdempotencyKey', options.secret);
  const random = randomBytes(16).toString('base64url');
  return `${random}.${mac(key, random)}`;
}

/**
 * True when `key` was issued by {@link issueIdempotencyKey} with one of `secrets`. Pass the current
 * secret first and the previous ones after it, so keys issued before a rotation stay valid until
 * the previous secret is removed.
 *
 * @example
 * ```ts
 * verifyIdempotencyKey(key, [currentSecret, previousSecret]); // true or false
 * ```
 */
export function verifyIdempotencyKey(key: string, secrets: readonly SigningSecret[]): boolean {
  return keyVerifier('verifyIdempotencyKey', secrets)(key);
}
