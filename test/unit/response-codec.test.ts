/** The stored form of responses and errors: what is written, and what is refused on read. */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { aesGcmEncryption } from '../../lib/encryption.js';
import { ResponseCodec, UnreadableRecordError } from '../../lib/response-codec.js';
import { ITEM_LIMIT_BYTES } from '../../lib/stored-outcome.js';
import { gzipBomb } from '../support/gzip-bomb.js';

const KEY = 'charge#abc';
const k1 = { id: 'k1', key: randomBytes(32) };
const sealing = new ResponseCodec(1024, aesGcmEncryption({ currentKey: () => k1, keyById: () => k1.key }));
const plain = new ResponseCodec(1024, undefined);

describe('keys', () => {
  test.each([
    ['a 16-byte key', { id: 'k', key: randomBytes(16) }, 'The key `k` from ResponseEncryption.currentKey() must be a 32-byte AES-256 key (got 16 bytes).'],
    ['a key that is a string', { id: 'k', key: 'secret' }, 'The key `k` from ResponseEncryption.currentKey() must be a 32-byte AES-256 key (got string).'],
    [
      'no id',
      { id: '', key: randomBytes(32) },
      'ResponseEncryption.currentKey() must return { id, key } with a non-empty id of well-formed text (no lone surrogates).',
    ],
    [
      'an id with a lone surrogate',
      { id: 'k\uDC00', key: randomBytes(32) },
      'ResponseEncryption.currentKey() must return { id, key } with a non-empty id of well-formed text (no lone surrogates).',
    ],
    ['an id with a surrogate pair and other odd characters', { id: 'kms/2026-05 #😀\n', key: randomBytes(32) }, undefined],
  ])('currentKey() returning %s is a TypeError that says so (or is taken)', async (_what, current, message) => {
    const codec = new ResponseCodec(1024, aesGcmEncryption({ currentKey: () => current as never, keyById: () => randomBytes(32) }));
    if (message === undefined) await expect(codec.currentKey()).resolves.toBe(current);
    else await expect(codec.currentKey()).rejects.toThrow(new TypeError(message));
  });

  test('keyById() returning a key of the wrong size is a TypeError naming the key id', async () => {
    const sealed = sealing.encode('1', 'response', KEY, k1);
    const codec = new ResponseCodec(1024, aesGcmEncryption({ currentKey: () => k1, keyById: () => randomBytes(31) }));
    await expect(codec.decode(sealed, 'response', 'k1', KEY)).rejects.toThrow(
      new TypeError(`The key \`k1\` from ResponseEncryption.keyById(), for the idempotency record ${KEY}, must be a 32-byte AES-256 key (got 31 bytes).`),
    );
  });
  test.each([undefined, null])('keyById() answering %s is a TypeError that says the key was retired too early', async (answer) => {
    const sealed = sealing.encode('1', 'response', KEY, k1);
    const codec = new ResponseCodec(1024, aesGcmEncryption({ currentKey: () => k1, keyById: () => answer as never }));
    await expect(codec.decode(sealed, 'response', 'k1', KEY)).rejects.toThrow(
      new TypeError(
        `ResponseEncryption.keyById() has no key \`k1\` (it answered ${answer}), which sealed the idempotency record ${KEY}: keep each key in keyById() until the records it sealed have expired.`,
      ),
    );
  });
  test('keyById() that rejects with nothing (`Promise.reject()`) is an error that says the key provider failed', async () => {
    const sealed = sealing.encode('1', 'response', KEY, k1);
    const codec = new ResponseCodec(1024, aesGcmEncryption({ currentKey: () => k1, keyById: () => Promise.reject() }));
    await expect(codec.decode(sealed, 'response', 'k1', KEY)).rejects.toThrow(
      new Error('The key provider failed without an error (it threw or rejected with `undefined`).'),
    );
  });
});

describe('round trips', () => {
  test.each([
    ['a small response', '{"ok":true}', 'response'],
    ['a large response (compressed, then sealed)', JSON.stringify('x'.repeat(5000)), 'response'],
    ['a final error', '{"name":"Error","message":"declined"}', 'error'],
    ['a large final error (never compressed)', JSON.stringify({ name: 'Error', message: 'y'.repeat(5000) }), 'error'],
  ] as const)('%s', async (_what, json, kind) => {
    const sealed = sealing.encode(json, kind, KEY, k1);
    expect(sealed.B).toBeDefined();
    expect(await sealing.decode(sealed, kind, 'k1', KEY)).toBe(json);
    const stored = plain.encode(json, kind, KEY, undefined);
    expect(stored.S === undefined).toBe(kind === 'response' && json.length > 1024);
    expect(await plain.decode(stored, kind, undefined, KEY)).toBe(json);
  });
});

describe('the compression threshold', () => {
  test.each([
    ['of exactly compressAboveBytes bytes is stored as text', JSON.stringify('x'.repeat(1022)), 'S'],
    ['one byte longer is compressed', JSON.stringify('x'.repeat(1023)), 'B'],
    // 342 three-byte characters: 1,028 bytes of UTF-8 in 344 UTF-16 units, so bytes are counted, not units.
    ['past it in UTF-8 bytes but not in characters is compressed', JSON.stringify('€'.repeat(342)), 'B'],
  ])('a response %s', async (_what, json, type) => {
    const stored = plain.encode(json, 'response', KEY, undefined);
    expect(Object.keys(stored)).toEqual([type]);
    expect(await plain.decode(stored, 'response', undefined, KEY)).toBe(json);
  });
});

describe('with encryption, only authenticated ciphertext is read', () => {
  /** A codec whose provider answers any id with the key, and records the ids it is asked for. */
  const askingForKeys = () => {
    const asked: unknown[] = [];
    const keyById = (id: string) => {
      asked.push(id);
      return k1.key;
    };
    return { asked, codec: new ResponseCodec(1024, aesGcmEncryption({ currentKey: () => k1, keyById })) };
  };
  const reject = (value: Parameters<ResponseCodec['decode']>[0], kind: 'response' | 'error', keyId: string | undefined) =>
    expect(sealing.decode(value, kind, keyId, KEY)).rejects.toBeInstanceOf(UnreadableRecordError);

  test('plaintext S, gzip B, a short or unknown-format B, with or without a key id', async () => {
    for (const kind of ['response', 'error'] as const) {
      for (const keyId of [undefined, 'k1']) {
        await reject({ S: '{"forged":1}' }, kind, keyId);
        await reject({ B: gzipSync('{"forged":1}') }, kind, keyId);
        await reject({ B: Uint8Array.of(1, 2, 3) }, kind, keyId);
        await reject({ N: '1' }, kind, keyId);
      }
    }
  });

  test('every byte counts: a flipped bit in the IV, the tag or the ciphertext, a cut, an empty value or another format byte is refused', async () => {
    const sealed = Buffer.from(sealing.encode('{"refunded":10}', 'response', KEY, k1).B!);
    const flipped = (at: number) => Buffer.from(sealed).fill(sealed[at]! ^ 1, at, at + 1);
    for (const altered of [flipped(1), flipped(12), flipped(13), flipped(28), flipped(sealed.length - 1)]) await reject({ B: altered }, 'response', 'k1');
    for (const cut of [sealed.length - 1, 29, 28, 0]) await reject({ B: sealed.subarray(0, cut) }, 'response', 'k1');
    for (const format of [0, 3, 255]) await reject({ B: Buffer.concat([Buffer.of(format), sealed.subarray(1)]) }, 'response', 'k1');
  });

  test('a value shorter than the format byte, IV and tag is refused as not sealed, before a key is asked for', async () => {
    const { asked, codec } = askingForKeys();
    const sealed = codec.encode('{"refunded":10}', 'response', KEY, k1).B!;
    for (const cut of [28, 13]) {
      await expect(codec.decode({ B: sealed.subarray(0, cut) }, 'response', 'k1', KEY)).rejects.toThrow(
        new UnreadableRecordError(`The stored response of the idempotency record ${KEY} is not in the sealed format.`),
      );
    }
    expect(asked).toEqual([]);
  });

  test('each seal draws its own IV: the same value sealed twice for the same record differs', () => {
    const ivs = new Set(Array.from({ length: 100 }, () => Buffer.from(sealing.encode('1', 'response', KEY, k1).B!.subarray(1, 13)).toString('hex')));
    expect(ivs.size).toBe(100);
  });

  test('a response sealed for another record, or read as an error (and the reverse)', async () => {
    await reject(sealing.encode('1', 'response', 'other#record', k1), 'response', 'k1');
    await reject(sealing.encode('1', 'response', KEY, k1), 'error', 'k1');
    await reject(sealing.encode('{"name":"E","message":"m"}', 'error', KEY, k1), 'response', 'k1');
  });

  test('an authentic sealed value stored without its key id is refused unopened, even by a provider that answers any id with the key', async () => {
    const { asked, codec } = askingForKeys();
    await expect(codec.decode(sealing.encode('{"refunded":10}', 'response', KEY, k1), 'response', undefined, KEY)).rejects.toThrow(
      new UnreadableRecordError(`The stored response of the idempotency record ${KEY} is not encrypted, and this store reads only encrypted ones.`),
    );
    expect(asked).toEqual([]);
  });

  test('absent stays absent', async () => {
    expect(await sealing.decode(undefined, 'response', undefined, KEY)).toBeUndefined();
  });
});

test('a stored outcome this store cannot read is refused naming its record, which an operator inspects or forgets by it', async () => {
  const sealed = sealing.encode('{"refunded":10}', 'response', KEY, k1);
  const relabelled = { B: Buffer.concat([Buffer.of(2), sealed.B!.subarray(1)]) };
  const wrongSize = new ResponseCodec(1024, aesGcmEncryption({ currentKey: () => k1, keyById: () => randomBytes(31) }));
  for (const refused of [
    () => sealing.decode({ S: '{"forged":1}' }, 'response', 'k1', KEY),
    () => sealing.decode({ B: Uint8Array.of(1, 2, 3) }, 'response', 'k1', KEY),
    () => sealing.decode(sealing.encode('1', 'response', 'other#record', k1), 'response', 'k1', KEY),
    () => sealing.decode(relabelled, 'response', 'k1', KEY),
    () => sealing.decode({ B: gzipSync('{"forged":1}') }, 'error', 'k1', KEY),
    () => wrongSize.decode(sealed, 'response', 'k1', KEY),
    () => plain.decode(sealed, 'response', 'k1', KEY),
    () => plain.decode({ B: Uint8Array.of(1, 2, 3) }, 'response', undefined, KEY),
    () => plain.decode({ N: '1' }, 'error', undefined, KEY),
  ]) {
    const error = await refused().then(
      () => undefined,
      (caught: unknown) => caught as Error,
    );
    expect(error?.message).toContain(`idempotency record ${KEY}`);
  }
});

describe('without encryption', () => {
  test('a sealed value is refused with a sentence; a non-gzip B or an unknown type fails closed', async () => {
    await expect(plain.decode(sealing.encode('1', 'response', KEY, k1), 'response', 'k1', KEY)).rejects.toThrow(
      `The stored response of the idempotency record ${KEY} is encrypted; configure \`encryption\` on the store to read it.`,
    );
    await expect(plain.decode({ B: Uint8Array.of(1, 2, 3) }, 'response', undefined, KEY)).rejects.toBeInstanceOf(UnreadableRecordError);
    await expect(plain.decode({ N: '1' }, 'error', undefined, KEY)).rejects.toBeInstanceOf(UnreadableRecordError);
  });

  test('gzip that decompresses one byte past what any stored value holds (a bomb planted where values are not size-limited, Redis) fails closed, the inflation stopped at the bound', async () => {
    // The bound: 1,032 bytes (gzip's most) for each byte of a DynamoDB item. A decoded value is
    // reported by its length, so a bound raised or removed fails here with a number, not with a
    // diff of hundreds of MiB.
    const refusal = await plain.decode({ B: await gzipBomb() }, 'response', undefined, KEY).then(
      (text) => ({ decodedLength: text?.length }),
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(UnreadableRecordError);
    expect((refusal as Error).message).toBe(
      `The stored response of the idempotency record ${KEY} decompresses to more than ${1032 * ITEM_LIMIT_BYTES} bytes, more than any stored value holds.`,
    );
    // Node stopped inflating at maxOutputLength: the refusal is its, not a failure further on.
    expect(((refusal as Error).cause as { code?: unknown }).code).toBe('ERR_BUFFER_TOO_LARGE');
  });
});

test('with encryption, a decompression bomb inside an authentic ciphertext (sealed with the key) fails closed as a planted one does', async () => {
  const module = aesGcmEncryption({ currentKey: () => k1, keyById: () => k1.key });
  const sealed = module.seal(await gzipBomb(), true, k1, { recordKey: KEY, kind: 'response' });
  const refusal = await sealing.decode({ B: sealed }, 'response', 'k1', KEY).catch((error: unknown) => error);
  expect(refusal).toBeInstanceOf(UnreadableRecordError);
  expect((refusal as Error).message).toBe(
    `The stored response of the idempotency record ${KEY} decompresses to more than 422707200 bytes, more than any stored value holds.`,
  );
});

describe('an encryption module written by hand', () => {
  const module = aesGcmEncryption({ currentKey: () => k1, keyById: () => k1.key });

  test.each([
    ['undefined', undefined, 'undefined'],
    ['a key without an id', { key: k1.key }, 'an id of type undefined'],
    ['a key with an empty id', { id: '', key: k1.key }, 'an empty id'],
    ['a key whose id has a lone surrogate', { id: 'k\uD800', key: k1.key }, 'an id with a lone surrogate'],
  ])('whose currentKey() resolves to %s is refused with a TypeError that says so', async (_what, answer, got) => {
    const codec = new ResponseCodec(1024, { ...module, currentKey: async () => answer } as never);
    await expect(codec.currentKey()).rejects.toThrow(
      new TypeError(
        `OutcomeEncryption.currentKey() must resolve to { id, key } with a non-empty id of well-formed text, without lone surrogates (got ${got}).`,
      ),
    );
  });

  test('a store with encryption never encodes a value in the clear, even when asked to without a key', () => {
    expect(() => sealing.encode('{"pan":"4111"}', 'response', KEY, undefined)).toThrow(
      new TypeError('A store with `encryption` stores no value without the key to seal it with.'),
    );
  });

  test('whose seal() returns a Promise (a KMS call) is refused with a sentence, never stored as the bytes of a Promise', () => {
    const asyncSeal = new ResponseCodec(1024, { ...module, seal: async (...args: Parameters<typeof module.seal>) => module.seal(...args) } as never);
    expect(() => asyncSeal.encode('{"ok":true}', 'response', KEY, k1)).toThrow(
      new TypeError('OutcomeEncryption.seal() must return the sealed bytes, a Uint8Array, synchronously (got a Promise).'),
    );
  });
});
