/**
 * Encryption as a module: `aesGcmEncryption(provider)` opens what the stores sealed before it was
 * one, and the stores tell the module from a key provider passed itself (the older shape, which the
 * main entry's DynamoDBStore still takes and the lean one refuses).
 */

import { gzipSync } from 'node:zlib';
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import { aesGcmEncryption, DynamoDBStore, describeStoreFailure } from '../../lib/index.js';
import { ResponseCodec } from '../../lib/response-codec.js';
import { isKeyProvider, isOutcomeEncryption } from '../../lib/stored-outcome.js';
import { aesKey, keyring } from '../support/keyring.js';

const tableName = 'idempotency';

describe('the sealed format', () => {
  // Sealed by the codec before encryption was a module, with this key and record key (compressing above 64 bytes).
  const golden = { id: 'golden', key: Buffer.alloc(32, 7) };
  const codec = new ResponseCodec(64, aesGcmEncryption({ currentKey: () => golden, keyById: () => golden.key }));
  test.each([
    ['a small response', 'response', 'AXf5dussE33f+58izwhYbq0kn5LO/zxz0qNkx0fNbIa+4kcG6TEb1g==', '{"ok":true}'],
    ['a compressed response', 'response', 'AlDXc/owq7Re3X1Q+GFsdfpR0pqkV58qllo4i0RApWI5hxkWwRJmxI1jWRuwdtzxjUjEY/Cr', JSON.stringify('z'.repeat(100))],
    [
      'a final error',
      'error',
      'Acu5xMswBq81PPmUV2jS0b2QKPMn+nyO70L/yKjhggPe/8tDpCHKDb04DlDqjBHb7+bzplPJhIIZTcvlNjTrJzdb',
      '{"name":"Error","message":"declined"}',
    ],
  ] as const)('%s sealed before still opens', async (_what, kind, base64, json) => {
    expect(await codec.decode({ B: Buffer.from(base64, 'base64') }, kind, 'golden', 'charge#golden')).toBe(json);
  });

  test('a value sealed now has the same layout: the format byte, then IV, tag and ciphertext', async () => {
    const plain = codec.encode('{"ok":true}', 'response', 'charge#golden', golden);
    const compressed = codec.encode(JSON.stringify('z'.repeat(100)), 'response', 'charge#golden', golden);
    expect([plain.B![0], compressed.B![0]]).toEqual([1, 2]);
    expect(plain.B!.byteLength).toBe(Buffer.byteLength('{"ok":true}') + 29);
    expect(await codec.decode(compressed, 'response', 'golden', 'charge#golden')).toBe(JSON.stringify('z'.repeat(100)));
  });
});

test('open() refuses a sealed value whose format byte (outside the authenticated data) was relabelled, plain to gzip or back', async () => {
  const key = { id: 'k', key: Buffer.alloc(32, 9) };
  const encryption = aesGcmEncryption({ currentKey: () => key, keyById: () => key.key });
  const sealedFor = { recordKey: 'charge#1', kind: 'response' } as const;
  for (const [plain, compressed] of [
    [Buffer.from('{"ok":true}'), false],
    [gzipSync('{"ok":true}'), true],
  ] as const) {
    const sealed = Buffer.from(encryption.seal(plain, compressed, key, sealedFor));
    expect(await encryption.open(sealed, 'k', sealedFor)).toEqual({ plain, compressed });
    sealed[0] = compressed ? 1 : 2;
    const error = await encryption.open(sealed, 'k', sealedFor).catch((caught: unknown) => caught);
    expect(describeStoreFailure(error)).toBe('UnreadableRecordError');
  }
});

describe('which shape `encryption` takes', () => {
  const { encryption: provider } = keyring(aesKey('k1'));
  const both = { ...aesGcmEncryption(provider), keyById: provider.keyById };

  test('the main entry DynamoDBStore takes the module and, still, the key provider itself', () => {
    expect(() => new DynamoDBStore({ tableName, encryption: aesGcmEncryption(provider) })).not.toThrow();
    expect(() => new DynamoDBStore({ tableName, encryption: provider })).not.toThrow();
  });

  test('members a shape does not name change nothing: the module decides, so no value is both', () => {
    expect([isOutcomeEncryption(both), isKeyProvider(both)]).toEqual([true, false]);
    const withOpen = { ...provider, open: () => undefined };
    expect([isOutcomeEncryption(withOpen), isKeyProvider(withOpen)]).toEqual([false, true]);
    expect(() => new LeanDynamoDBStore({ tableName, encryption: both })).not.toThrow();
    expect(() => aesGcmEncryption(withOpen)).not.toThrow();
    expect(() => aesGcmEncryption(both)).toThrow(
      new TypeError('aesGcmEncryption: the key provider is an encryption module already (it has `seal` and `open`): pass it as `encryption` itself.'),
    );
  });

  test.each([
    ['an empty object', {}],
    ['half a key provider', { currentKey: () => aesKey('k1') }],
    ['a string', 'aes'],
  ])('the main entry DynamoDBStore refuses %s with a TypeError that names both shapes', (_what, encryption) => {
    expect(() => new DynamoDBStore({ tableName, encryption: encryption as never })).toThrow(
      new TypeError('DynamoDBStore: `encryption` must have `currentKey()` and `keyById(id)` functions, or be made by `aesGcmEncryption(provider)`.'),
    );
  });

  test('the lean DynamoDBStore takes the module only: the key provider itself is refused with what to pass instead', () => {
    expect(() => new LeanDynamoDBStore({ tableName, encryption: aesGcmEncryption(provider) })).not.toThrow();
    expect(() => new LeanDynamoDBStore({ tableName, encryption: provider as never })).toThrow(
      new TypeError("DynamoDBStore: `encryption` must be `aesGcmEncryption(provider)` from 'lambda-idempotency', not the key provider itself."),
    );
    for (const encryption of [{}, 'aes']) {
      expect(() => new LeanDynamoDBStore({ tableName, encryption: encryption as never })).toThrow(
        new TypeError("DynamoDBStore: `encryption` must be made by `aesGcmEncryption(provider)` from 'lambda-idempotency'."),
      );
    }
  });

  // Every record's size counts the overhead: one below 0 would let a sealed outcome outgrow the item.
  test.each([
    [undefined, 'undefined'],
    [-1, '-1'],
    [29.5, '29.5'],
    ['29', '"29"'],
  ])('a module written by hand whose overheadBytes is %p is refused by every store, with a sentence naming the member', (overheadBytes, got) => {
    const encryption = { ...aesGcmEncryption(provider), overheadBytes } as never;
    const problem = `\`encryption\` has \`seal\` and \`open\`, so its \`overheadBytes\` must be the bytes sealing adds, a whole number, 0 or more (got ${got}).`;
    expect([isOutcomeEncryption(encryption), isKeyProvider(encryption)]).toEqual([false, false]);
    expect(() => new DynamoDBStore({ tableName, encryption })).toThrow(new TypeError(`DynamoDBStore: ${problem}`));
    expect(() => new LeanDynamoDBStore({ tableName, encryption })).toThrow(new TypeError(`DynamoDBStore: ${problem}`));
  });

  test('a module written by hand with a `keyById` helper and a bad overheadBytes is refused too, not taken for a key provider whose `seal` is ignored', () => {
    const encryption = { ...aesGcmEncryption(provider), keyById: provider.keyById, overheadBytes: -1 } as never;
    const problem = '`encryption` has `seal` and `open`, so its `overheadBytes` must be the bytes sealing adds, a whole number, 0 or more (got -1).';
    expect([isOutcomeEncryption(encryption), isKeyProvider(encryption)]).toEqual([false, false]);
    expect(() => new DynamoDBStore({ tableName, encryption })).toThrow(new TypeError(`DynamoDBStore: ${problem}`));
    expect(() => new LeanDynamoDBStore({ tableName, encryption })).toThrow(new TypeError(`DynamoDBStore: ${problem}`));
    expect(() => aesGcmEncryption(encryption)).toThrow(
      new TypeError('aesGcmEncryption: the key provider is an encryption module already (it has `seal` and `open`): pass it as `encryption` itself.'),
    );
  });

  test('a module written by hand that adds no bytes (overheadBytes 0) is taken', () => {
    const encryption = { ...aesGcmEncryption(provider), overheadBytes: 0 };
    expect(() => new DynamoDBStore({ tableName, encryption })).not.toThrow();
    expect(() => new LeanDynamoDBStore({ tableName, encryption })).not.toThrow();
  });

  test('aesGcmEncryption refuses what is not a key provider', () => {
    for (const provider of [undefined, {}, { currentKey: () => aesKey('k1') }]) {
      expect(() => aesGcmEncryption(provider as never)).toThrow(
        new TypeError('aesGcmEncryption: the key provider must have `currentKey()` and `keyById(id)` functions.'),
      );
    }
  });
});
