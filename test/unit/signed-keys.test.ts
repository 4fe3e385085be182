import { createHmac, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { issueIdempotencyKey, verifyIdempotencyKey } from '../../lib/index.js';

const current = randomBytes(32);
const previous = 'a previous secret of at least 32 bytes';

/** The same key with one character replaced by another base64url character. */
function tamper(key: string, index: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const replacement = alphabet[(alphabet.indexOf(key[index]!) + 1) % alphabet.length]!;
  return key.slice(0, index) + replacement + key.slice(index + 1);
}

test('an issued key is a bare-token Idempotency-Key, fresh each time, verified by its secret', () => {
  const keys = Array.from({ length: 100 }, () => issueIdempotencyKey({ secret: current }));
  expect(new Set(keys).size).toBe(100);
  for (const key of keys) {
    expect(key).toMatch(/^[A-Za-z0-9_-]{22}\.[0-9a-z]{1,8}\.[A-Za-z0-9_-]{43}$/);
    expect(key.length).toBeLessThanOrEqual(255);
    expect(verifyIdempotencyKey(key, [current])).toBe(true);
  }
});

test('forged, tampered and other spellings of a key are refused', () => {
  const key = issueIdempotencyKey({ secret: current });
  // Signed with a secret the verifier does not hold.
  expect(verifyIdempotencyKey(issueIdempotencyKey({ secret: randomBytes(32) }), [current])).toBe(false);
  // Any one character changed, random part or MAC.
  for (let i = 0; i < key.length; i++) if (key[i] !== '.') expect(verifyIdempotencyKey(tamper(key, i), [current])).toBe(false);
  // The last character of each part carries bits base64 decoding ignores: changing them must still fail.
  const random = Buffer.from(key.slice(0, 22), 'base64url');
  expect(Buffer.from(tamper(key, 21).slice(0, 22), 'base64url').equals(random)).toBe(true);
  expect(verifyIdempotencyKey(tamper(key, 21), [current])).toBe(false);
  expect(verifyIdempotencyKey(tamper(key, key.length - 1), [current])).toBe(false);
  for (const shape of ['', key.replace('.', ''), `${key}=`, ` ${key}`, key.toUpperCase(), 'order-1'])
    expect(verifyIdempotencyKey(shape, [current])).toBe(false);
});

test('any string is refused unless issued', () => {
  fc.assert(fc.property(fc.string({ maxLength: 80 }), (text) => !verifyIdempotencyKey(text, [current])));
});

test('rotation: a key issued with a previous secret is accepted while that secret is listed', () => {
  const old = issueIdempotencyKey({ secret: previous });
  expect(verifyIdempotencyKey(old, [current, previous])).toBe(true);
  expect(verifyIdempotencyKey(issueIdempotencyKey({ secret: current }), [current, previous])).toBe(true);
  // Removed from the list: its keys are no longer accepted.
  expect(verifyIdempotencyKey(old, [current])).toBe(false);
});

test('secrets are validated with a sentence', () => {
  expect(() => issueIdempotencyKey({ secret: 'short' })).toThrow(
    new TypeError('issueIdempotencyKey: a secret must be at least 32 bytes long (got 5); use e.g. randomBytes(32).'),
  );
  expect(() => issueIdempotencyKey({ secret: new Uint8Array(31) })).toThrow('at least 32 bytes');
  expect(() => issueIdempotencyKey({ secret: 42 as never })).toThrow('a string or a Uint8Array');
  expect(() => issueIdempotencyKey(undefined as never)).toThrow('with a `secret`');
  expect(() => verifyIdempotencyKey('k', [])).toThrow('`secrets` must be a non-empty array');
  expect(() => verifyIdempotencyKey('k', 'a secret of at least thirty-two bytes' as never)).toThrow('non-empty array');
  expect(() => verifyIdempotencyKey('k', [current, 'short'])).toThrow('at least 32 bytes');
  // 32 bytes of UTF-8: 16 two-byte characters.
  expect(verifyIdempotencyKey(issueIdempotencyKey({ secret: 'é'.repeat(16) }), ['é'.repeat(16)])).toBe(true);
});

test('a misnamed option or a hole in the secrets is refused up front, not at the first request', () => {
  expect(() => issueIdempotencyKey({ secrets: [current] } as never)).toThrow(
    new TypeError('issueIdempotencyKey: unknown option `secrets`. Known options: secret, now.'),
  );
  // biome-ignore lint/suspicious/noSparseArray: a hole is what is refused here
  const sparse = [, current] as never;
  expect(() => verifyIdempotencyKey(issueIdempotencyKey({ secret: current }), sparse)).toThrow(
    new TypeError('verifyIdempotencyKey: a secret must be a string or a Uint8Array.'),
  );
});

test('the same bytes in standard base64, padded or not, are another spelling and are refused', () => {
  let key = issueIdempotencyKey({ secret: current });
  while (!/[-_]/.test(key)) key = issueIdempotencyKey({ secret: current });
  const [random, time, tag] = key.split('.') as [string, string, string];
  const standard = (part: string) => Buffer.from(part, 'base64url').toString('base64');
  const unpadded = (part: string) => standard(part).replace(/=+$/, '');
  for (const respelt of [`${standard(random)}.${time}.${standard(tag)}`, `${unpadded(random)}.${time}.${unpadded(tag)}`]) {
    expect(respelt).not.toBe(key);
    expect(verifyIdempotencyKey(respelt, [current])).toBe(false);
  }
  // Far longer than any key: refused by its shape, in time linear in its length.
  expect(verifyIdempotencyKey(`${key}.${'A'.repeat(100_000)}`, [current])).toBe(false);
});

describe('issue time', () => {
  const issuedAt = 1_764_000_000_500; // mid-second: the key carries 1,764,000,000 s
  const key = issueIdempotencyKey({ secret: current, now: () => issuedAt });
  const at = (millis: number) => ({ maxAgeSeconds: 3600, now: () => millis });

  test('a key is accepted until maxAgeSeconds after its issue second, and from 5 minutes before it', () => {
    expect(key.split('.')[1]).toBe((1_764_000_000).toString(36));
    expect(verifyIdempotencyKey(key, [current], at(1_764_003_600_000 - 1))).toBe(true);
    expect(verifyIdempotencyKey(key, [current], at(1_764_003_600_000))).toBe(false);
    expect(verifyIdempotencyKey(key, [current], at(1_764_000_000_000 - 300_000))).toBe(true);
    expect(verifyIdempotencyKey(key, [current], at(1_764_000_000_000 - 300_001))).toBe(false);
    // Without an age limit the signature alone counts, as before keys carried a time.
    expect(verifyIdempotencyKey(key, [current])).toBe(true);
  });

  test('a changed issue time, or another spelling of it, fails the MAC', () => {
    const [random, time, tag] = key.split('.') as [string, string, string];
    const later = (Number.parseInt(time, 36) + 86_400).toString(36);
    for (const respelt of [`${random}.${later}.${tag}`, `${random}.0${time}.${tag}`, `${random}.${time.toUpperCase()}.${tag}`, `${random}.${tag}`]) {
      expect(verifyIdempotencyKey(respelt, [current])).toBe(false);
    }
  });

  test('keys of the first format, without a time, still verify and never expire; the time cannot be grafted onto one', () => {
    const random = randomBytes(16).toString('base64url');
    const v1 = `${random}.${createHmac('sha256', current).update('lambda-idempotency key v1.').update(random).digest('base64url')}`;
    expect(verifyIdempotencyKey(v1, [current])).toBe(true);
    expect(verifyIdempotencyKey(v1, [current], at(Number.MAX_SAFE_INTEGER))).toBe(true);
    expect(verifyIdempotencyKey(v1, [randomBytes(32)])).toBe(false);
    expect(verifyIdempotencyKey(v1.replace('.', '.1.'), [current])).toBe(false);
  });

  test('keys issued by an earlier release still verify: the key format and its MAC are stable across upgrades', () => {
    const random = randomBytes(16).toString('base64url');
    const time = (1_764_000_000).toString(36);
    const tag = createHmac('sha256', current).update('lambda-idempotency key v2.').update(`${random}.${time}`).digest('base64url');
    expect(verifyIdempotencyKey(`${random}.${time}.${tag}`, [current])).toBe(true);
    expect(verifyIdempotencyKey(`${random}.${time}.${tag}`, [current], at(1_764_000_000_000 + 3_600_000 - 1))).toBe(true);
  });

  test('a clock that reads no time is a TypeError, never a key that is accepted whatever its age', () => {
    // NaN compares false both ways: read as a time, it made every key neither expired nor early.
    for (const reading of [Number.NaN, undefined, 'soon', Number.POSITIVE_INFINITY, -1, 2 ** 53]) {
      expect(() => verifyIdempotencyKey(key, [current], { maxAgeSeconds: 3600, now: () => reading as never })).toThrow(
        new TypeError(`verifyIdempotencyKey: the clock must return epoch milliseconds, 0 or more (got ${String(reading)}).`),
      );
    }
    // A forged key is refused before the clock is read: the clock's fault cannot make it pass.
    expect(verifyIdempotencyKey(tamper(key, 0), [current], { maxAgeSeconds: 3600, now: () => Number.NaN })).toBe(false);
  });

  test('a clock beyond the times a key can carry is refused at issue, not turned into a key that never verifies', () => {
    const last = 36 ** 8 * 1000 - 1; // the last millisecond of 8 base-36 digits of seconds
    expect(verifyIdempotencyKey(issueIdempotencyKey({ secret: current, now: () => last }), [current])).toBe(true);
    expect(() => issueIdempotencyKey({ secret: current, now: () => last + 1 })).toThrow(
      new TypeError(`issueIdempotencyKey: the clock must return epoch milliseconds, 0 or more, before ${last + 1} (got ${last + 1}).`),
    );
  });

  test('options are validated with a sentence', () => {
    expect(() => verifyIdempotencyKey(key, [current], { maxAge: 60 } as never)).toThrow(
      new TypeError('verifyIdempotencyKey: unknown option `maxAge`. Known options: maxAgeSeconds, now.'),
    );
    for (const bad of [0, 1.5, '60', Number.POSITIVE_INFINITY])
      expect(() => verifyIdempotencyKey(key, [current], { maxAgeSeconds: bad as never })).toThrow(
        `verifyIdempotencyKey: \`maxAgeSeconds\` must be a whole number of seconds, 1 or more (got ${typeof bad === 'string' ? '"60"' : bad}).`,
      );
    expect(() => verifyIdempotencyKey(key, [current], { maxAgeSeconds: 60, now: 5 as never })).toThrow('`now` must be a function.');
    expect(() => verifyIdempotencyKey(key, [current], { now: () => 0 })).toThrow(
      new TypeError('verifyIdempotencyKey: `now` needs `maxAgeSeconds`: without it keys never expire.'),
    );
    expect(() => verifyIdempotencyKey(key, [current], null as never)).toThrow('options must be an object');
    expect(() => issueIdempotencyKey({ secret: current, now: 5 as never })).toThrow(new TypeError('issueIdempotencyKey: `now` must be a function.'));
    expect(() => issueIdempotencyKey({ secret: current, now: () => Number.NaN })).toThrow(
      new TypeError('issueIdempotencyKey: the clock must return epoch milliseconds, 0 or more (got NaN).'),
    );
  });
});
