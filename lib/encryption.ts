import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { checkOptions, type OptionCheck } from './options.js';
import { storedValueOf, UnreadableRecordError } from './response-codec.js';
import { isKeyId, isKeyProvider, isModuleShaped, isOutcomeEncryption, overheadProblem } from './stored-outcome.js';

/**
 * A 256-bit key and the id stored with each record it encrypts.
 *
 * @example
 * ```ts
 * const key: EncryptionKey = { id: 'data-key-2026-05', key: dataKeyBytes }; // 32 bytes
 * ```
 */
export interface EncryptionKey {
  /** Stored with each record it seals: non-empty text without lone surrogates. */
  readonly id: string;
  /** 32 bytes. */
  readonly key: Uint8Array;
}

/**
 * Your key provider for encryption at rest (for example a KMS data key, decrypted once per cold
 * start and cached). Each record stores the id of its key, so keys can rotate: new records use
 * `currentKey()`, old ones are read with `keyById()`. Pass it to {@link aesGcmEncryption}.
 *
 * @example
 * ```ts
 * const key = { id: 'k1', key: dataKeyBytes };
 * new DynamoDBStore({ tableName, encryption: aesGcmEncryption({ currentKey: () => key, keyById: () => key.key }) });
 * ```
 */
export interface ResponseEncryption {
  currentKey(): EncryptionKey | Promise<EncryptionKey>;
  keyById(id: string): Uint8Array | Promise<Uint8Array>;
}

/**
 * What a sealed value is bound to (its associated data): its record, and whether it holds the
 * response or a final error.
 *
 * @example
 * ```ts
 * const sealedFor: SealedFor = { recordKey: 'charge#3f2a…', kind: 'response' };
 * ```
 */
export interface SealedFor {
  readonly recordKey: string;
  readonly kind: 'response' | 'error';
}

/**
 * Encryption of stored responses and final errors at rest, as the `encryption` option of a store
 * takes it: made by {@link aesGcmEncryption}. Stores call its members; applications pass it whole.
 * A store without it carries no cipher code, and refuses to replay a record that was sealed.
 *
 * @example
 * ```ts
 * const encryption: OutcomeEncryption = aesGcmEncryption({ currentKey, keyById });
 * new DynamoDBStore({ tableName, encryption });
 * ```
 */
export interface OutcomeEncryption {
  /**
   * The key new values are sealed with, checked; rejects when none can be had (the record then
   * completes without its outcome, as it does when the answer has no id a store can write).
   */
  currentKey(): Promise<EncryptionKey>;
  /**
   * `plain` (gzip when `compressed`) sealed with `key`, bound to `sealedFor`, returned at once: a
   * result that is not a `Uint8Array` (a Promise) is refused as a seal that throws is.
   */
  seal(plain: Uint8Array, compressed: boolean, key: EncryptionKey, sealedFor: SealedFor): Uint8Array;
  /** The plaintext of a sealed value and whether it is gzip; rejects when it is not authentic under the key `keyId`. */
  open(sealed: Uint8Array, keyId: string, sealedFor: SealedFor): Promise<{ readonly plain: Uint8Array; readonly compressed: boolean }>;
  /** Bytes that sealing adds to a value: a whole number, 0 or more (a store refuses another at construction: it counts toward every record's size). */
  readonly overheadBytes: number;
}

const PLAIN = 1;
const GZIP = 2;
/** Format byte, 12-byte IV, 16-byte tag. */
const SEAL_OVERHEAD = 29;
const isGzip = (bytes: Uint8Array): boolean => bytes[0] === 0x1f && bytes[1] === 0x8b;

function checkKey(key: unknown, what: string): Uint8Array {
  if (!(key instanceof Uint8Array) || key.byteLength !== 32) {
    const got = key instanceof Uint8Array ? `${key.byteLength} bytes` : typeof key;
    throw new TypeError(`${what} must be a 32-byte AES-256 key (got ${got}).`);
  }
  return key;
}

/** Responses are bound to their record key alone (as they always were); errors to the key and their kind. */
const associatedData = ({ recordKey, kind }: SealedFor): Buffer => Buffer.from(kind === 'response' ? recordKey : `${recordKey}\u0000${kind}`, 'utf8');

/**
 * AES-256-GCM encryption of stored responses and final errors, with keys from your provider. A
 * sealed value is a format byte, a 12-byte IV, the 16-byte tag and the ciphertext; the record key
 * and what the value holds are the associated data, so a ciphertext cannot be moved to another
 * record, nor from the error to the response. The table or key prefix is not: stores that serve
 * different tenants need a data key each. With it, a store replays only authenticated ciphertext.
 *
 * @example
 * ```ts
 * import { aesGcmEncryption, DynamoDBStore } from 'lambda-idempotency';
 *
 * const key = { id: 'k1', key: dataKeyBytes }; // 32 bytes, e.g. a KMS data key
 * const store = new DynamoDBStore({ tableName, encryption: aesGcmEncryption({ currentKey: () => key, keyById: () => key.key }) });
 * ```
 */
export function aesGcmEncryption(provider: ResponseEncryption): OutcomeEncryption {
  if (!isKeyProvider(provider)) {
    throw new TypeError(
      isModuleShaped(provider)
        ? 'aesGcmEncryption: the key provider is an encryption module already (it has `seal` and `open`): pass it as `encryption` itself.'
        : 'aesGcmEncryption: the key provider must have `currentKey()` and `keyById(id)` functions.',
    );
  }
  return Object.freeze({
    overheadBytes: SEAL_OVERHEAD,
    async currentKey(): Promise<EncryptionKey> {
      const current = await provider.currentKey();
      if (!isKeyId(current?.id))
        throw new TypeError('ResponseEncryption.currentKey() must return { id, key } with a non-empty id of well-formed text (no lone surrogates).');
      checkKey(current.key, `The key \`${current.id}\` from ResponseEncryption.currentKey()`);
      return current;
    },
    seal(plain: Uint8Array, compressed: boolean, key: EncryptionKey, sealedFor: SealedFor): Uint8Array {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key.key, iv);
      cipher.setAAD(associatedData(sealedFor));
      const body = Buffer.concat([cipher.update(plain), cipher.final()]);
      return Buffer.concat([Buffer.of(compressed ? GZIP : PLAIN), iv, cipher.getAuthTag(), body]);
    },
    async open(sealed: Uint8Array, keyId: string, sealedFor: SealedFor) {
      const what = storedValueOf(sealedFor);
      const format = sealed[0];
      if (sealed.byteLength < SEAL_OVERHEAD || (format !== PLAIN && format !== GZIP)) throw new UnreadableRecordError(`${what} is not in the sealed format.`);
      const found = await provider.keyById(keyId);
      // A provider that looks keys up in a plain object answers an id it no longer has with nothing: a key retired too early, not a malformed one.
      if (found === undefined || found === null) {
        throw new TypeError(
          `ResponseEncryption.keyById() has no key \`${keyId}\` (it answered ${found}), which sealed the idempotency record ${sealedFor.recordKey}: keep each key in keyById() until the records it sealed have expired.`,
        );
      }
      const key = checkKey(found, `The key \`${keyId}\` from ResponseEncryption.keyById(), for the idempotency record ${sealedFor.recordKey},`);
      let plain: Buffer;
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(1, 13));
        decipher.setAAD(associatedData(sealedFor));
        decipher.setAuthTag(sealed.subarray(13, SEAL_OVERHEAD));
        plain = Buffer.concat([decipher.update(sealed.subarray(SEAL_OVERHEAD)), decipher.final()]);
      } catch (error) {
        // Named for what an operator can check: the same id given to a new key fails here too, as tampering does.
        throw new UnreadableRecordError(
          `${what} failed authentication with key \`${keyId}\`: it was altered, moved from another record, or sealed with another key of the same id.`,
          { cause: error },
        );
      }
      // The format byte is outside the authenticated data: the authenticated bytes must agree with it
      // (JSON text never starts with gzip's magic bytes).
      if ((format === GZIP) !== isGzip(plain)) throw new UnreadableRecordError(`${what} does not match its format byte.`);
      return { plain, compressed: format === GZIP };
    },
  });
}

/** The `encryption` check of the stores that still take a key provider itself (the older shape). @internal */
export const encryptionOrKeyProvider: OptionCheck = (value) =>
  isOutcomeEncryption(value) || isKeyProvider(value)
    ? undefined
    : (overheadProblem(value) ?? 'must have `currentKey()` and `keyById(id)` functions, or be made by `aesGcmEncryption(provider)`');

/** The module for an `encryption` option that passed {@link encryptionOrKeyProvider}. @internal */
export const encryptionModule = (value: OutcomeEncryption | ResponseEncryption | undefined): OutcomeEncryption | undefined =>
  value === undefined || isOutcomeEncryption(value) ? value : aesGcmEncryption(value);

/**
 * `options` with a key provider given as `encryption` replaced by `aesGcmEncryption(provider)`,
 * for a store that takes the older shape; a value of neither shape throws a `TypeError` naming
 * `where`. The store's own checks see everything else. @internal
 */
export function withEncryptionModule<T extends { readonly encryption?: OutcomeEncryption | ResponseEncryption }>(
  where: string,
  options: T,
): Omit<T, 'encryption'> & { readonly encryption?: OutcomeEncryption } {
  // Options that are not an object are the store's own checks to refuse.
  const encryption = (options as Partial<T> | null)?.encryption;
  if (encryption === undefined) return options as Omit<T, 'encryption'>;
  checkOptions(where, { encryption }, { encryption: encryptionOrKeyProvider });
  return { ...options, encryption: encryptionModule(encryption) };
}
