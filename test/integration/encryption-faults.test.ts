/**
 * Encryption at rest when the key provider fails, on DynamoDB Local: at completion (the store is
 * reachable, only the outcome cannot be sealed: the record completes without it and the function
 * never runs twice), at claim (fail closed: nothing runs) and at commit (a record that cannot be
 * read never turns a known outcome into an unknown one).
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBStore, describeStoreFailure, IdempotencyError, makeIdempotent, transaction } from '../../lib/index.js';
import { LEASE_SECONDS, type Mode, T0, useCountingTables } from '../support/counting-function.js';
import { endpoint, recordId } from '../support/dynamodb.js';
import { faultyClient } from '../support/faults.js';
import { aesKey, type KeyFault, type Keyring, keyring } from '../support/keyring.js';
import { rejection, thrown } from '../support/rejections.js';

const { client, tableName, bizTable, applied, countingFunction } = useCountingTables('enc-faults');

/** A function made idempotent on an encrypted store; in the transaction modes it increments a counter with its record. */
function fixture(mode: Mode, options: { finalError?: boolean; pad?: number } = {}) {
  const ring = keyring(aesKey('k1'));
  const store = new DynamoDBStore({ tableName, client, encryption: ring.encryption });
  const warnings: string[] = [];
  const logger = { warn: (message: string) => void warnings.push(message) };
  const f = countingFunction(
    mode,
    store,
    (input) => {
      if (options.finalError) throw Object.assign(new Error('card declined'), { code: 'DECLINED' });
      return { card: '4111-1111-1111-1111', id: input.id, ...(options.pad ? { pad: 'p'.repeat(options.pad) } : {}) };
    },
    { logger },
  );
  return { ...f, ring, store, warnings };
}

describe.each(['plain', 'transactions', 'atomic'] as const)('%s: the key provider fails at completion', (mode) => {
  test.each([
    ['throws', 'small'],
    ['short key', 'small'],
    ['throws', 'large (compressed before sealing)'],
  ] as const)(
    'currentKey() %s, %s response: the record completes without it; duplicates get RESPONSE_NOT_STORED, even past the lease; the function ran once',
    async (fault: KeyFault, size) => {
      const f = fixture(mode, { pad: size === 'small' ? 0 : 100_000 });
      f.ring.failCurrent = fault;
      expect(await f.fn({ id: 'a' })).toMatchObject({ card: '4111-1111-1111-1111', id: 'a' });
      const item = await f.record('a');
      expect(item?.status?.S).toBe('COMPLETED');
      expect(item?.responseOmitted?.BOOL).toBe(true);
      expect(item?.response).toBeUndefined();
      expect(item?.keyId).toBeUndefined();
      f.ring.failCurrent = undefined;
      f.clock.t += (LEASE_SECONDS + 1) * 1000; // past the lease: an INPROGRESS record would be taken over and run again
      expect((await rejection(f.fn({ id: 'a' }))).code).toBe('RESPONSE_NOT_STORED');
      expect(f.runs()).toBe(mode === 'atomic' ? 2 : 1); // an atomic duplicate runs its pure handler, whose writes are cancelled
      if (mode !== 'plain') expect(await f.counter('a')).toBe(1);
    },
  );

  test('a final error that cannot be sealed: the record completes without it, marked as an error; duplicates get ERROR_NOT_STORED', async () => {
    const f = fixture(mode, { finalError: true });
    f.ring.failCurrent = 'throws';
    expect((await thrown(f.fn({ id: 'e' }))).message).toBe('card declined');
    const item = await f.record('e');
    expect(item?.status?.S).toBe('COMPLETED');
    expect(item?.responseOmitted?.BOOL).toBe(true);
    expect(item?.errorOmitted?.BOOL).toBe(true);
    expect(item?.error).toBeUndefined();
    expect(await f.store.inspect(recordId(f.name, 'e'))).toMatchObject({ status: 'COMPLETED', responseOmitted: true, errorOmitted: true });
    f.ring.failCurrent = undefined;
    f.clock.t += (LEASE_SECONDS + 1) * 1000;
    if (mode === 'atomic') {
      // An atomic duplicate runs its pure handler again; meeting a record without a stored outcome, it keeps its own error.
      expect((await thrown(f.fn({ id: 'e' }))).message).toBe('card declined');
    } else {
      expect((await rejection(f.fn({ id: 'e' }))).code).toBe('ERROR_NOT_STORED');
      expect(f.runs()).toBe(1);
    }
    if (mode !== 'plain') expect(await f.counter('e')).toBe(0); // a final error's writes are discarded
  });

  test.each([
    ['throws', 'ThrottlingException', {}],
    ['short key', 'TypeError', {}],
    ['throws', 'ThrottlingException', { finalError: true }],
    ['rejects with nothing', 'Error', {}],
    ['rejects with nothing', 'Error', { finalError: true }],
  ] as const)(
    'currentKey() %s: one warning names the provider error (%s) and the record, so that no outcome is lost silently',
    async (fault, cause, options) => {
      const f = fixture(mode, options);
      f.ring.failCurrent = fault;
      await f.fn({ id: 'w' }).catch(() => undefined);
      expect(f.warnings.map((line) => JSON.parse(line))).toEqual([
        {
          level: 'WARN',
          message: `lambda-idempotency: could not encrypt the call's outcome; the record completed without it, and duplicates get ${'finalError' in options ? 'ERROR' : 'RESPONSE'}_NOT_STORED`,
          namespace: f.name,
          recordId: recordId(f.name, 'w'),
          error: cause,
        },
      ]);
      f.ring.failCurrent = undefined;
      await f.fn({ id: 'ok' }).catch(() => undefined);
      expect(f.warnings).toHaveLength(1); // a call whose outcome is sealed says nothing
    },
  );

  test('once the provider recovers, new records are sealed again and replay', async () => {
    const f = fixture(mode);
    f.ring.failCurrent = 'throws';
    await f.fn({ id: 'before' });
    f.ring.failCurrent = undefined;
    await f.fn({ id: 'after' });
    expect((await f.record('after'))?.keyId?.S).toBe('k1');
    expect(await f.fn({ id: 'after' })).toEqual({ card: '4111-1111-1111-1111', id: 'after' });
  });
});

test('a final error that cannot be sealed: duplicates in the same process (its local cache) get ERROR_NOT_STORED too, as every other process does', async () => {
  const ring = keyring(aesKey('k1'));
  const store = new DynamoDBStore({ tableName, client, encryption: ring.encryption });
  let runs = 0;
  const fn = makeIdempotent(
    async (_: string) => {
      runs++;
      throw Object.assign(new Error('card declined'), { code: 'DECLINED' });
    },
    { store, name: `cached${randomUUID().slice(0, 8)}`, isFinalError: () => true, cacheSize: 10, logger: { warn: () => undefined } },
  );
  ring.failCurrent = 'throws';
  expect((await thrown(fn('x'))).message).toBe('card declined');
  ring.failCurrent = undefined;
  expect((await rejection(fn('x'))).code).toBe('ERROR_NOT_STORED');
  expect(runs).toBe(1);
});

describe('the key provider fails at claim (decrypting a stored outcome): fail closed', () => {
  test.each([
    ['throws (KMS throttled)', 'throws', 'ThrottlingException'],
    ['returns a 16-byte key', 'short key', 'TypeError'],
    ['rejects with nothing', 'rejects with nothing', 'Error'],
  ] as const)('keyById() %s: STORE_FAILURE naming the cause, and the function does not run', async (_what, fault, cause) => {
    const f = fixture('plain');
    await f.fn({ id: 'c' });
    f.ring.failById = fault;
    const error = await rejection(f.fn({ id: 'c' }));
    expect(error.code).toBe('STORE_FAILURE');
    expect(describeStoreFailure(error.cause)).toBe(cause);
    expect(error.message).toContain(`(${cause})`);
    if (fault === 'short key') expect(String((error.cause as Error).message)).toMatch(/must be a 32-byte AES-256 key \(got 16 bytes\)/);
    if (fault === 'rejects with nothing') {
      expect(String((error.cause as Error).message)).toBe('The key provider failed without an error (it threw or rejected with `undefined`).');
    }
    expect(f.runs()).toBe(1);
    f.ring.failById = undefined;
    expect(await f.fn({ id: 'c' })).toEqual({ card: '4111-1111-1111-1111', id: 'c' });
    expect(f.runs()).toBe(1);
  });
});

describe('a record that cannot be read at commit', () => {
  test.each(['complete', 'completeWithWrites', 'release'] as const)(
    '%s refused by a takeover sealed with a key this store lacks returns the record by its state (SUPERSEDED): nothing decoded, nothing written',
    async (operation) => {
      const mine = new DynamoDBStore({ tableName, client, encryption: keyring(aesKey('mine')).encryption });
      const theirs = new DynamoDBStore({ tableName, client, encryption: keyring(aesKey('theirs')).encryption });
      const key = `commit#${randomUUID()}`;
      const counter = `commit-${randomUUID()}`;
      const expiresAt = T0 / 1000 + 86_400;
      await mine.claim({ key, owner: 'me', leaseUntil: T0 + 1000, expiresAt, now: T0 });
      await theirs.claim({ key, owner: 'them', leaseUntil: T0 + 60_000, expiresAt, now: T0 + 2000 });
      await theirs.complete({ key, owner: 'them', expiresAt, response: '{"theirs":true}' });
      const increment = {
        Update: { TableName: bizTable, Key: { id: { S: counter } }, UpdateExpression: 'ADD n :one', ExpressionAttributeValues: { ':one': { N: '1' } } },
      };
      const request = { key, owner: 'me', expiresAt, response: '{"mine":true}' };
      const current = { key, status: 'COMPLETED', owner: 'them', expiresAt };
      if (operation === 'release') expect(await mine.release({ key, owner: 'me' })).toStrictEqual({ released: false, record: current });
      else if (operation === 'complete') expect(await mine.complete(request)).toStrictEqual({ completed: false, record: current });
      else expect(await mine.completeWithWrites(request, [increment])).toStrictEqual({ completed: false, record: current });
      expect(await applied(counter)).toBe(0);
      expect(await theirs.claim({ key, owner: 'x', leaseUntil: T0, expiresAt, now: T0 + 3000 })).toMatchObject({
        claimed: false,
        record: { response: '{"theirs":true}' },
      });
    },
  );

  test("a completion DynamoDB applied but whose response was lost, retried while keyById() fails, meets the call's own COMPLETED record: it is returned by its state, not as a failure", async () => {
    const { client: lossy, faults } = faultyClient(endpoint());
    const ring = keyring(aesKey('k1'));
    const store = new DynamoDBStore({ tableName, client: lossy, encryption: ring.encryption });
    const key = `lost#${randomUUID()}`;
    const expiresAt = T0 / 1000 + 86_400;
    try {
      await store.claim({ key, owner: 'me', leaseUntil: T0 + 60_000, expiresAt, now: T0 });
      faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'drop-response' } });
      ring.failById = 'throws';
      expect(await store.complete({ key, owner: 'me', expiresAt, response: '{"mine":true}' })).toStrictEqual({
        completed: false,
        record: { key, status: 'COMPLETED', owner: 'me', expiresAt },
      });
      expect(faults.injected).toEqual([{ operation: 'UpdateItem', attempt: 1, kind: 'drop-response' }]);
    } finally {
      lossy.destroy();
    }
  });

  test('atomic: a duplicate meeting a record it cannot decrypt fails closed with STORE_FAILURE (not COMMIT_FAILED); its writes are not applied', async () => {
    const name = `atomic${randomUUID().slice(0, 8)}`;
    const counter = `${name}-n`;
    const make = (ring: Keyring) =>
      makeIdempotent(
        async (_: { id: string }) => {
          transaction().update({ TableName: bizTable, Key: { id: counter }, UpdateExpression: 'ADD n :one', ExpressionAttributeValues: { ':one': 1 } });
          return 'done';
        },
        { store: new DynamoDBStore({ tableName, client, encryption: ring.encryption }), name, key: (input) => input.id, atomic: true },
      );
    expect(await make(keyring(aesKey('theirs')))({ id: 'x' })).toBe('done');
    const error = await rejection(make(keyring(aesKey('mine')))({ id: 'x' }));
    expect(error.code).toBe('STORE_FAILURE');
    expect(error).toBeInstanceOf(IdempotencyError);
    expect((error.cause as Error).message).toBe('no key theirs'); // the provider's own error
    expect(await applied(counter)).toBe(1);
  });
});
