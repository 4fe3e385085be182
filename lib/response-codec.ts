import { gunzipSync, gzipSync } from 'node:zlib';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { EncryptionKey, OutcomeEncryption } from './encryption.js';
import { ITEM_LIMIT_BYTES, isKeyId, reported } from './stored-outcome.js';

export type { EncryptionKey, ResponseEncryption } from './encryption.js';

/** What a stored value holds: each kind is sealed with its own associated data, so one cannot pass for the other. @internal */
export type StoredKind = 'response' | 'error';

/**
 * A stored response or error this store cannot read as one it would have written: not
 * authenticated under encryption, encrypted without encryption configured, or corrupt; or an item
 * that is not a record at all (malformed). The record fails closed. @internal
 */
export class UnreadableRecordError extends Error {
  override readonly name = 'UnreadableRecordError';
}

/**
 * The subject of the errors of a stored value that cannot be read: it names the record, as the
 * errors of a malformed one do, for an operator to inspect or forget it by. @internal
 */
export const storedValueOf = ({ recordKey, kind }: { readonly recordKey: string; readonly kind: StoredKind }): string =>
  `The stored ${kind} of the idempotency record ${recordKey}`;

/**
 * The error for an item a store cannot read as a record: it fails closed until removed (or
 * expired), so the message names what is wrong and `removal`, how to remove it. @internal
 */
export function malformedRecord(key: string, where: string, problem: string, removal: string): UnreadableRecordError {
  return new UnreadableRecordError(
    `The idempotency record ${key} in ${where} is malformed (${problem}): it was not written by this store${removal}; the next call with its key then runs.`,
  );
}

/**
 * The stored form of a response or error: JSON text (S), a response gzip-compressed when large
 * (B), sealed by the `encryption` module when one is configured (B). Without the module, a sealed
 * value is refused, never replayed; the codec itself holds no cipher code. @internal
 */
export class ResponseCodec {
  readonly #compressAboveBytes: number;
  readonly #encryption: OutcomeEncryption | undefined;

  constructor(compressAboveBytes: number, encryption: OutcomeEncryption | undefined) {
    this.#compressAboveBytes = compressAboveBytes;
    this.#encryption = encryption;
  }

  get encrypts(): boolean {
    return this.#encryption !== undefined;
  }

  /** Bytes that sealing adds to a value (0 without encryption). */
  get sealOverhead(): number {
    return this.#encryption?.overheadBytes ?? 0;
  }

  /**
   * The key new values are sealed with, checked by the encryption module. Its id is checked here
   * too, for a module written by hand: without one, a value would be stored in the clear, or sealed
   * under an id no read can name, and its record would fail closed for its retention.
   */
  async currentKey(): Promise<EncryptionKey> {
    const key: unknown = await this.#encryption!.currentKey();
    if (!isKeyId((key as { id?: unknown } | null | undefined)?.id)) {
      throw new TypeError(
        `OutcomeEncryption.currentKey() must resolve to { id, key } with a non-empty id of well-formed text, without lone surrogates (got ${describeKey(key)}).`,
      );
    }
    return key as EncryptionKey;
  }

  /** `key` is required when encryption is configured (see {@link currentKey}). */
  encode(json: string, kind: StoredKind, recordKey: string, key: EncryptionKey | undefined): AttributeValue {
    // Errors stay uncompressed JSON text when not encrypted: readers before compression read them as S.
    // UTF-8 takes at most 3 bytes per UTF-16 unit; skip the exact count for small texts.
    const large = kind === 'response' && json.length * 3 > this.#compressAboveBytes && Buffer.byteLength(json) > this.#compressAboveBytes;
    if (key === undefined) {
      // Encryption configured, a value is never stored in the clear.
      if (this.#encryption !== undefined) throw new TypeError('A store with `encryption` stores no value without the key to seal it with.');
      return large ? { B: gzipSync(json) } : { S: json };
    }
    const plain = large ? gzipSync(json) : Buffer.from(json, 'utf8');
    const sealed: unknown = this.#encryption!.seal(plain, large, key, { recordKey, kind });
    // A module written by hand whose seal() is async (a KMS call) would store a Promise's empty bytes:
    // refused here, it fails as a cipher that refuses the key does, and the record completes without the outcome.
    if (!(sealed instanceof Uint8Array)) {
      throw new TypeError(`OutcomeEncryption.seal() must return the sealed bytes, a Uint8Array, synchronously (got ${describe(sealed)}).`);
    }
    return { B: sealed };
  }

  /** The JSON text of a stored value; throws {@link UnreadableRecordError} on anything this store would not have written. */
  async decode(stored: AttributeValue | undefined, kind: StoredKind, keyId: string | undefined, recordKey: string): Promise<string | undefined> {
    if (stored === undefined) return undefined;
    const what = storedValueOf({ recordKey, kind });
    if (this.#encryption !== undefined) {
      // Fail closed on a downgrade: whoever can write the item must not choose what is replayed.
      if (stored.B === undefined || keyId === undefined) throw new UnreadableRecordError(`${what} is not encrypted, and this store reads only encrypted ones.`);
      let opened: { readonly plain: Uint8Array; readonly compressed: boolean };
      try {
        opened = await this.#encryption.open(stored.B, keyId, { recordKey, kind });
      } catch (failure) {
        throw reported(failure);
      }
      const { plain, compressed } = opened;
      return compressed ? unzip(plain, what) : Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength).toString('utf8');
    }
    if (stored.B !== undefined && keyId !== undefined) {
      throw new UnreadableRecordError(`${what} is encrypted; configure \`encryption\` on the store to read it.`);
    }
    if (stored.S !== undefined) return stored.S;
    if (stored.B !== undefined) return unzip(stored.B, what);
    throw new UnreadableRecordError(`${what} has an attribute type this store never writes.`);
  }
}

const describe = (value: unknown): string =>
  value === null ? 'null' : typeof (value as { then?: unknown } | undefined)?.then === 'function' ? 'a Promise' : typeof value;

const describeKey = (key: unknown): string => {
  if (key === null || typeof key !== 'object') return describe(key);
  const { id } = key as { id?: unknown };
  return typeof id !== 'string' ? `an id of type ${typeof id}` : id === '' ? 'an empty id' : 'an id with a lone surrogate';
};

/**
 * More than any stored value decompresses to: gzip makes at most 1,032 bytes of each byte, and every
 * store keeps a value within DynamoDB's item limit. A value that decompresses further was not
 * written by a store (a decompression bomb planted in Redis, whose values have no such limit): it
 * fails closed before it fills the function's memory.
 */
const MAX_UNZIPPED_BYTES = 1032 * ITEM_LIMIT_BYTES;

function unzip(bytes: Uint8Array, what: string): string {
  try {
    return gunzipSync(bytes, { maxOutputLength: MAX_UNZIPPED_BYTES }).toString('utf8');
  } catch (error) {
    const tooLarge = (error as { code?: unknown } | null)?.code === 'ERR_BUFFER_TOO_LARGE';
    const problem = tooLarge ? `decompresses to more than ${MAX_UNZIPPED_BYTES} bytes, more than any stored value holds` : 'is not valid gzip';
    throw new UnreadableRecordError(`${what} ${problem}.`, { cause: error });
  }
}
