import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';

/** A 256-bit key and the id stored with each record it encrypts. */
export interface EncryptionKey {
  readonly id: string;
  /** 32 bytes. */
  readonly key: Uint8Array;
}

/**
 * Encryption of stored responses at rest with AES-256-GCM. Keys come from your provider (for
 * example a KMS data key, decrypted once per cold start and cached). Each record stores the id of
 * its key, so keys can rotate: new records use `currentKey()`, old ones are read with `keyById()`.
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

/** @internal */
export interface EncodedResponse {
  readonly response: AttributeValue | undefined;
  readonly keyId?: string;
  readonly omitted: boolean;
}

/** DynamoDB's item size limit, less room for the record's other attributes. */
const MAX_RESPONSE_BYTES = 400 * 1024 - 2048;
const PLAIN = 1;
const GZIP = 2;

/**
 * The stored form of a response: JSON text (S), gzip when large (B), encrypted when configured
 * (B: format byte, 12-byte IV, 16-byte tag, ciphertext; the record key is the associated data, so a
 * ciphertext cannot be moved to another record). @internal
 */
export class ResponseCodec {
  constructor(
    private readonly compressAboveBytes: number,
    private readonly encryption: ResponseEncryption | undefined,
  ) {}

  async encode(json: string | undefined, recordKey: string): Promise<EncodedResponse> {
    if (json === undefined) return { response: undefined, omitted: false };
    // UTF-8 takes at most 3 bytes per UTF-16 unit; skip the exact count for small texts.
    const large = json.length * 3 > this.compressAboveBytes && Buffer.byteLength(json) > this.compressAboveBytes;
    if (this.encryption === undefined) {
      if (!large) return { response: { S: json }, omitted: false };
      const zipped = gzipSync(json);
      return zipped.byteLength <= MAX_RESPONSE_BYTES ? { response: { B: zipped }, omitted: false } : { response: undefined, omitted: true };
    }
    const plain = large ? gzipSync(json) : Buffer.from(json, 'utf8');
    if (plain.byteLength + 29 > MAX_RESPONSE_BYTES) return { response: undefined, omitted: true };
    const { id, key } = await this.encryption.currentKey();
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(recordKey, 'utf8'));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    const sealed = Buffer.concat([Buffer.of(large ? GZIP : PLAIN), iv, cipher.getAuthTag(), body]);
    return { response: { B: sealed }, keyId: id, omitted: false };
  }

  async decode(stored: AttributeValue | undefined, keyId: string | undefined, recordKey: string): Promise<string | undefined> {
    if (stored?.S !== undefined) return stored.S;
    if (stored?.B === undefined) return undefined;
    if (keyId === undefined) return gunzipSync(stored.B).toString('utf8');
    if (this.encryption === undefined) throw new Error('This record was stored encrypted; configure `encryption` on the DynamoDBStore to read it.');
    const sealed = Buffer.from(stored.B);
    const decipher = createDecipheriv('aes-256-gcm', await this.encryption.keyById(keyId), sealed.subarray(1, 13));
    decipher.setAAD(Buffer.from(recordKey, 'utf8'));
    decipher.setAuthTag(sealed.subarray(13, 29));
    const plain = Buffer.concat([decipher.update(sealed.subarray(29)), decipher.final()]);
    return (sealed[0] === GZIP ? gunzipSync(plain) : plain).toString('utf8');
  }
}
