import { randomBytes } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterEach } from '@jest/globals';
import { DynamoDBStore, type EncryptionKey, type ResponseEncryption } from '../../lib/index.js';

/** How a key provider fails: as a throttled KMS (throws), rejecting with no error at all, or handing out a key of the wrong size. */
export type KeyFault = 'throws' | 'rejects with nothing' | 'short key';

/** A fresh random AES-256 key with the given id. */
export const aesKey = (id: string): EncryptionKey => ({ id, key: randomBytes(32) });

/** The error a throttled KMS call rejects with. */
export const kmsThrottled = (): Error => Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });

/**
 * A key provider over a fixed set of keys, the first one current. `rotate` changes the current key;
 * `failCurrent` / `failById` make `currentKey()` / `keyById()` fail until set back to `undefined`.
 */
export interface Keyring {
  failCurrent: KeyFault | undefined;
  failById: KeyFault | undefined;
  rotate(to: EncryptionKey): void;
  readonly encryption: ResponseEncryption;
}

export function keyring(...keys: EncryptionKey[]): Keyring {
  let current = keys[0]!;
  const ring: Keyring = {
    failCurrent: undefined,
    failById: undefined,
    rotate: (to: EncryptionKey) => void (current = to),
    encryption: {
      currentKey: () => {
        if (ring.failCurrent === 'throws') throw kmsThrottled();
        if (ring.failCurrent === 'rejects with nothing') return Promise.reject();
        return ring.failCurrent === 'short key' ? { id: current.id, key: current.key.subarray(0, 16) } : current;
      },
      keyById: (id: string) => {
        if (ring.failById === 'throws') throw kmsThrottled();
        if (ring.failById === 'rejects with nothing') return Promise.reject();
        const found = keys.find((k) => k.id === id);
        if (!found) throw new Error(`no key ${id}`);
        return ring.failById === 'short key' ? found.key.subarray(0, 16) : found.key;
      },
    },
  };
  return ring;
}

/**
 * A keyring of one key for the tests of a `describe`, its faults cleared after each test, and a
 * `DynamoDBStore` on `tableName` through `client` that encrypts with it.
 */
export function useFaultyKeyring(tableName: string, client: DynamoDBClient): { readonly ring: Keyring; readonly encrypted: DynamoDBStore } {
  const ring = keyring(aesKey('k1'));
  afterEach(() => {
    ring.failById = undefined;
    ring.failCurrent = undefined;
  });
  return { ring, encrypted: new DynamoDBStore({ tableName, client, encryption: ring.encryption }) };
}
