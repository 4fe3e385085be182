/**
 * RedisStore at the edges of what a user gives it: key prefixes and names with any characters
 * (spaces, `{hash tags}`, Unicode, line breaks, glob characters, a prefix of 1 KB), the largest
 * outcome the stores keep, and a fingerprint and a TTL through a takeover and a completion sent
 * again. Each record is the one hash `<keyPrefix><name>#<hash>` with a TTL, whatever the characters:
 * Redis keys and script arguments are bytes, and nothing in the store parses them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { jest } from '@jest/globals';
import { DEFAULT_ATTRIBUTE_NAMES, forgetRecord, inspectRecord, makeIdempotent, recordIdOf } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { outcomeBudget } from '../../lib/stored-outcome.js';
import { manualClock } from '../../lib/testing/index.js';
import { CLIENT_KINDS, inspector } from '../support/redis.js';
import { rejection } from '../support/rejections.js';

const raw = inspector();
afterAll(() => raw.disconnect());

const PREFIXES = ['with space:', 'tag{x}:', '}{', 'ünïcödé 😀:', 'line\nbreak\r\n:', 'glob*?[a]\\:', `${'p'.repeat(1024)}:`];
const NAMES = ['pay ment', 'pay{tag}', 'ünïcödé 😀', 'new\nline', 'glob*?[]'];

for (const kind of CLIENT_KINDS) {
  describe(kind.name, () => {
    let opened: Awaited<ReturnType<(typeof kind)['open']>>;
    beforeAll(async () => {
      opened = await kind.open();
    });
    afterAll(() => opened.close());

    test.each(PREFIXES.flatMap((prefix) => NAMES.map((name) => [JSON.stringify(prefix.slice(0, 24)), JSON.stringify(name), prefix, name] as const)))(
      'keyPrefix %s, name %s: one hash with a TTL; replay, payload check, inspect and forget find it',
      async (_prefix, _name, prefix, name) => {
        const keyPrefix = `limits-${kind.name}-${prefix}`;
        const store = new RedisStore({ client: opened.client, keyPrefix });
        let runs = 0;
        const charge = makeIdempotent(async (event: { id: string; amount: number }) => ({ run: ++runs, id: event.id }), {
          store,
          name,
          key: (event) => event.id,
          fingerprint: (event) => event.amount,
        });
        const id = 'order {1}\n ✓';
        expect(await charge({ id, amount: 1 })).toEqual({ run: 1, id });
        expect(await charge({ id, amount: 1 })).toEqual({ run: 1, id });
        expect((await rejection(charge({ id, amount: 2 }))).code).toBe('PAYLOAD_MISMATCH');
        const stored = keyPrefix + recordIdOf({ name, key: id });
        expect(await raw.type(stored)).toBe('hash');
        expect(await raw.pttl(stored)).toBeGreaterThan(0);
        expect(await inspectRecord({ store, name, key: id })).toMatchObject({ status: 'COMPLETED', hasFingerprint: true });
        expect(await forgetRecord({ store, name, key: id })).toBe(true);
        expect(await raw.exists(stored)).toBe(0);
        expect(await charge({ id, amount: 2 })).toEqual({ run: 2, id });
        await raw.del(stored);
      },
    );

    test('the largest response the stores keep, under a keyPrefix of 1 KB, is stored as text and replayed byte for byte; one byte more of room completes without it', async () => {
      const keyPrefix = `limits-${kind.name}-${'p'.repeat(1024)}:`;
      // Stored as text, so its size is its JSON's: a random string does not shrink.
      const store = new RedisStore({ client: opened.client, keyPrefix, compressAboveBytes: 409_600 });
      let runs = 0;
      const warn = jest.fn();
      const echo = makeIdempotent(async (text: string) => (++runs, text), { store, name: 'echo', key: () => `k-${runs}`, logger: { warn } });
      const room = async (size: number) => {
        const text = randomBytes(size).toString('base64url').slice(0, size);
        expect(await echo(text)).toBe(text);
        const seen = await inspectRecord({ store, name: 'echo', key: `k-${runs - 1}` });
        return { text, seen };
      };
      // The room a DynamoDB item leaves a response (409,600 bytes less the record's other attributes
      // and the attribute's name), here less the two quotes of its JSON: a 1 KB keyPrefix takes none of it.
      const expiresAt = Math.floor(Date.now() / 1000) + 86_400;
      const largest =
        outcomeBudget(DEFAULT_ATTRIBUTE_NAMES, { key: recordIdOf({ name: 'echo', key: 'k-0' }), owner: randomUUID(), expiresAt }) - 'response'.length - 2;
      const { text, seen } = await room(largest);
      expect(seen).toMatchObject({ responseBytes: largest + 2, responseOmitted: false });
      expect(await raw.hget(`${keyPrefix}${seen!.key}`, 'response')).toBe(JSON.stringify(text));
      expect(await makeIdempotent(async (_: string) => 'ran again', { store, name: 'echo', key: () => 'k-0' })('')).toBe(text);
      expect(warn).not.toHaveBeenCalled();
      const { seen: over } = await room(largest + 1);
      expect(over).toMatchObject({ responseOmitted: true });
      expect(warn).toHaveBeenCalledTimes(1);
    });

    test('a takeover of a lapsed attempt keeps its claim’s fingerprint and a TTL; a completion sent again leaves both', async () => {
      const keyPrefix = `limits-takeover-${kind.name}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix });
      const clock = manualClock(Date.now());
      let runs = 0;
      const charge = makeIdempotent(async (_event: { id: string; amount: number }) => ++runs, {
        store,
        name: 'charge',
        key: (event) => event.id,
        fingerprint: (event) => event.amount,
        now: clock.now,
        leaseSeconds: 10,
      });
      const key = recordIdOf({ name: 'charge', key: 'o-1' });
      const now = clock.now();
      // An attempt that never ended: its lease lapses.
      await store.claim({ key, owner: 'crashed', now, leaseUntil: now + 10_000, expiresAt: Math.floor(now / 1000) + 3600, fingerprint: 'theirs' });
      clock.advance(10_001);
      expect(await charge({ id: 'o-1', amount: 1 })).toBe(1);
      const taken = await raw.hgetall(keyPrefix + key);
      expect(taken).toMatchObject({ status: 'COMPLETED', fingerprint: expect.not.stringMatching(/^theirs$/) });
      expect(await raw.pttl(keyPrefix + key)).toBeGreaterThan(3_500_000);
      expect((await rejection(charge({ id: 'o-1', amount: 2 }))).code).toBe('PAYLOAD_MISMATCH');
      // The completion sent again (its answer lost) meets its own record and writes it again unchanged.
      const again = await store.complete({ key, owner: taken.owner!, now: clock.now(), expiresAt: Number(taken.expiresAt), response: '1' });
      expect(again).toEqual({ completed: false, record: expect.objectContaining({ owner: taken.owner, status: 'COMPLETED', fingerprint: taken.fingerprint }) });
      expect(await raw.hgetall(keyPrefix + key)).toEqual(taken);
      expect(await raw.pttl(keyPrefix + key)).toBeGreaterThan(3_500_000);
      expect(await charge({ id: 'o-1', amount: 1 })).toBe(1);
      expect(runs).toBe(1);
      await raw.del(keyPrefix + key);
    });
  });
}
