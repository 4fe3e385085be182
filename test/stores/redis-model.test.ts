/**
 * RedisStore against a model of the record protocol: seeded random claims, completions, releases
 * and keys made persistent by hand (PERSIST), on a clock that moves across second and lease
 * boundaries, fractions of a millisecond included. After every step the record in Redis is the
 * model's (owner, status, fingerprint), a claim succeeds exactly when the model's record is absent,
 * past its retention or past its lease, a completion or release applies only to its owner's
 * INPROGRESS record, and no key the store wrote (a record written again included), or a claim met,
 * is left without a TTL. Every TTL is a minute or more, so no key expires in real time while a
 * round runs, however slow the host.
 */
import { RedisStore } from '../../lib/redis/index.js';
import { type ModelRecord as Model, random } from '../support/protocol-model.js';
import { CLIENT_KINDS, inspector } from '../support/redis.js';

const raw = inspector();
afterAll(() => raw.disconnect());

for (const kind of CLIENT_KINDS) {
  test(`${kind.name}: every step keeps the model's record, its fencing and a TTL on the key`, async () => {
    const { client, close } = await kind.open();
    const keyPrefix = `model-${kind.name}:`;
    const store = new RedisStore({ client, keyPrefix });
    const pick = random(42);
    try {
      for (let round = 0; round < 60; round++) {
        const key = `model#${round}`;
        const stored = keyPrefix + key;
        await raw.del(stored);
        let model: Model | undefined;
        let now = 1_700_000_000_000 + pick([0, 0.25, 999, 999.5]);
        for (let step = 0; step < 30; step++) {
          now += pick([0, 0.5, 1, 999, 1000, 1001, 59_000, 60_000, 61_000, 300_000]);
          const owner = pick(['a', 'b', 'c']);
          const operation = pick(['claim', 'claim', 'complete', 'release', 'persist'] as const);
          const before = model;
          const at = { round, step, operation };
          // A completion by the owner of a COMPLETED record (sent again) writes that record again.
          const rewritten = operation === 'complete' && before?.owner === owner && before.status === 'COMPLETED';
          if (operation === 'persist') {
            await raw.persist(stored);
            continue;
          }
          if (operation === 'claim') {
            const expiresAt = Math.floor(now / 1000) + pick([60, 61, 300, 3600]);
            const leaseUntil = now + pick([1, 500, 60_000, 120_000, 600_000]);
            const fingerprint = pick([undefined, 'f1', 'f2']);
            const result = await store.claim({ key, owner, now, leaseUntil, expiresAt, ...(fingerprint === undefined ? {} : { fingerprint }) });
            const claimable = before === undefined || before.expiresAt < Math.floor(now / 1000) || (before.status === 'INPROGRESS' && before.leaseUntil! < now);
            expect({ ...at, claimed: result.claimed }).toEqual({ ...at, claimed: claimable });
            if (result.claimed) model = { owner, status: 'INPROGRESS', expiresAt, leaseUntil, ...(fingerprint === undefined ? {} : { fingerprint }) };
            // A claim gives back the TTL of a record it meets, made persistent or not.
            expect({ ...at, ttl: (await raw.pttl(stored)) > 0 }).toEqual({ ...at, ttl: true });
          } else if (operation === 'complete') {
            const expiresAt = Math.floor(now / 1000) + pick([60, 61, 3600]);
            const result = await store.complete({ key, owner, now, expiresAt, response: `"${owner}"` });
            const applies = before?.owner === owner && before.status === 'INPROGRESS';
            expect({ ...at, completed: result.completed }).toEqual({ ...at, completed: applies });
            if (applies) model = { owner, status: 'COMPLETED', expiresAt, ...(before.fingerprint === undefined ? {} : { fingerprint: before.fingerprint }) };
          } else {
            const result = await store.release({ key, owner });
            const applies = before?.owner === owner && before.status === 'INPROGRESS';
            expect({ ...at, released: result.released }).toEqual({ ...at, released: applies });
            if (applies) model = undefined;
          }
          const hash = await raw.hgetall(stored);
          const found = Object.keys(hash).length === 0 ? undefined : { owner: hash.owner, status: hash.status, fingerprint: hash.fingerprint };
          const expected = model === undefined ? undefined : { owner: model.owner, status: model.status, fingerprint: model.fingerprint };
          expect({ ...at, found }).toEqual({ ...at, found: expected });
          // A write leaves a TTL; only a key made persistent by hand that the step left unchanged has none.
          if (model !== before || rewritten) expect({ ...at, ttl: (await raw.pttl(stored)) > 0 || found === undefined }).toEqual({ ...at, ttl: true });
        }
        await raw.del(stored);
      }
    } finally {
      await close();
    }
  }, 60_000);
}
