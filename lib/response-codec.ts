import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';

/** A 256-bit key and the id stored with each record it encrypts. */
export interface EncryptionKey {
  readonly id: string;
  /** 32 bytes. */
  readonly key: Uint8Array;
}

/**
 * Encryption of stored responses and final errors at rest with AES-256-GCM. Keys come from your
 * provider (for example a KMS data key, decrypted once per cold start and cached). Each record
 * stores the id of its key, so keys can rotate: new records use `currentKey()`, old ones are read
 * with `keyById()`. With encryption configured, only authenticated ciphertext is ever replayed.
 *
 * @example
 * ```ts
 * const key = { id: 'k1', key: dataKeyBytes };
 * new DynamoDBStore({ tableName, encryption: { currentKey: () => key, keyById: () => key.key } });
 * ```
 */
export interface ResponseEncryption {
  currentKey(): EncryptionKey | Promise<EncryptionKey>;
  keyById(id: string): Uint8Array | Promise<Uint8Array>;
}

/** What a stored value holds: each kind is sealed with its own associated data, so one cannot pass for the other. @internal */
export type StoredKind = 'response' | 'error';

/**
 * A stored response or error this store cannot read as one it would have written: not
 * authenticated under encryption, encrypted without encryption configured, or corrupt. The record
 * fails closed. @internal
 */
export class UnreadableRecordError extends Error {
  override readonly name = 'UnreadableRecordError';
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

/**
 * The stored form of a response or error: JSON text (S), a response gzip-compressed when large
 * (B), sealed when encryption is configured (B: format byte, 12-byte IV, 16-byte tag, ciphertext;
 * the record key and the kind are the associated data, so a ciphertext cannot be moved to another
 * record or from the error to the response). @internal
 */
export class ResponseCodec {
  constructor(
    private readonly compressAboveBytes: number,
    private readonly encryption: ResponseEncryption | undefined,
  ) {}

  get encrypts(): boolean {
    return this.encryption !== undefined;
  }

  /** The key new values are sealed with, checked (a non-empty id, 32 bytes). */
  async currentKey(): Promise<EncryptionKey> {
    const current = await this.encryption!.currentKey();
    if (typeof current?.id !== 'string' || current.id.length === 0)
      throw new TypeError('ResponseEncryption.currentKey() must return { id, key } with a non-empty id.');
    checkKey(current.key, `The key \`${current.id}\` from ResponseEncryption.currentKey()`);
    return current;
  }

  /** `key` is required when encryption is configured (see {@link currentKey}). */
  encode(json: string, kind: StoredKind, recordKey: string, key: EncryptionKey | undefined): AttributeValue {
    // Errors stay uncompressed JSON text when not encrypted: readers before compression read them as S.
    // UTF-8 takes at most 3 bytes per UTF-16 unit; skip the exact count for small texts.
    const large = kind === 'response' && json.length * 3 > this.compressAboveBytes && Buffer.byteLength(json) > this.compressAboveBytes;
    if (key === undefined) return large ? { B: gzipSync(json) } : { S: json };
    const plain = large ? gzipSync(json) : Buffer.from(json, 'utf8');
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key.key, iv);
    cipher.setAAD(associatedData(recordKey, kind));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return { B: Buffer.concat([Buffer.of(large ? GZIP : PLAIN), iv, cipher.getAuthTag(), body]) };
  }

  /** Size of a sealed value of `plainBytes` bytes. */
  static sealedSize(plainBytes: number): number {
    return plainBytes + SEAL_OVERHEAD;
  }

  /** The JSON text of a stored value; throws {@link UnreadableRecordError} on anything this store would not have written. */
  async decode(stored: AttributeValue | undefined, kind: StoredKind, keyId: string | undefined, recordKey: string): Promise<string | undefined> {
    if (stored === undefined) return undefined;
    if (this.encryption !== undefined) {
      // Fail closed on a downgrade: whoever can write the item must not choose what is replayed.
      if (stored.B === undefined || keyId === undefined)
        throw new UnreadableRecordError(`The stored ${kind} is not encrypted, and this store reads only encrypted ones.`);
      return this.open(stored.B, kind, keyId, recordKey);
    }
    if (stored.B !== undefined && keyId !== undefined) {
      throw new UnreadableRecordError(`The stored ${kind} is encrypted; configure \`encryption\` on the DynamoDBStore to read it.`);
    }
    if (stored.S !== undefined) return stored.S;
    if (stored.B !== undefined) return unzip(stored.B, kind);
    throw new UnreadableRecordError(`The stored ${kind} has an attribute type this store never writes.`);
  }

  private async open(sealed: Uint8Array, kind: StoredKind, keyId: string, recordKey: string): Promise<string> {
    const format = sealed[0];
    if (sealed.byteLength < SEAL_OVERHEAD || (format !== PLAIN && format !== GZIP))
      throw new UnreadableRecordError(`The stored ${kind} is not in the sealed format.`);
    const key = checkKey(await this.encryption!.keyById(keyId), `The key \`${keyId}\` from ResponseEncryption.keyById()`);
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(1, 13));
      decipher.setAAD(associatedData(recordKey, kind));
      decipher.setAuthTag(sealed.subarray(13, SEAL_OVERHEAD));
      plain = Buffer.concat([decipher.update(sealed.subarray(SEAL_OVERHEAD)), decipher.final()]);
    } catch (error) {
      throw new UnreadableRecordError(`The stored ${kind} failed authentication with key \`${keyId}\`.`, { cause: error });
    }
    // The format byte is outside the authenticated data: the authenticated bytes must agree with it
    // (JSON text never starts with gzip's magic bytes).
    if ((format === GZIP) !== isGzip(plain)) throw new UnreadableRecordError(`The stored ${kind} does not match its format byte.`);
    return format === GZIP ? unzip(plain, kind) : plain.toString('utf8');
  }
}

/** Responses are bound to their record key alone (as they always were); errors to the key and their kind. */
const associatedData = (recordKey: string, kind: StoredKind): Buffer => Buffer.from(kind === 'response' ? recordKey : `${recordKey}\u0000${kind}`, 'utf8');

function unzip(bytes: Uint8Array, kind: StoredKind): string {
  try {
    return gunzipSync(bytes).toString('utf8');
  } catch (error) {
    throw new UnreadableRecordError(`The stored ${kind} is not valid gzip.`, { cause: error });
  }
}
