/** Responses and final errors encrypted at rest (AES-256-GCM) on DynamoDB Local, with key rotation by key id. */
import { randomBytes } from 'node:crypto';
import type { Context } from 'aws-lambda';
import { aesGcmEncryption, DynamoDBStore, type EncryptionKey, IdempotencyError, makeIdempotent } from '../../lib/index.js';
import { lambdaContext } from '../../lib/testing/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { aesKey, keyring } from '../support/keyring.js';
import { rejection, thrown } from '../support/rejections.js';

// Each test makes its own store, with its keyring.
const { client, tableName } = useFreshTable();

test('the stored response is ciphertext with its key id; duplicates decrypt and replay it', async () => {
  const k1 = { id: 'k1', key: randomBytes(32) };
  const { encryption } = keyring(k1);
  const store = new DynamoDBStore({ tableName, client, encryption });
  let runs = 0;
  const card = makeIdempotent(async (input: { id: string }) => ({ runs: ++runs, pan: '4111-1111-1111-1111', id: input.id }), {
    store,
    name: 'enc',
    key: (i) => i.id,
  });
  expect(await card({ id: 'a' })).toEqual({ runs: 1, pan: '4111-1111-1111-1111', id: 'a' });
  const item = await readItem(client, tableName, recordId('enc', 'a'));
  expect(item?.keyId?.S).toBe('k1');
  expect(item?.response?.S).toBeUndefined();
  expect(Buffer.from(item!.response!.B!).toString('latin1')).not.toContain('4111-1111-1111-1111');
  expect(await card({ id: 'a' })).toEqual({ runs: 1, pan: '4111-1111-1111-1111', id: 'a' });
  expect(runs).toBe(1);
});

test('after a key rotation, old records still replay and new ones use the new key; large responses are compressed first', async () => {
  const k1 = { id: 'k1', key: randomBytes(32) };
  const k2 = { id: 'k2', key: randomBytes(32) };
  const ring = keyring(k1, k2);
  const store = new DynamoDBStore({ tableName, client, encryption: ring.encryption });
  let runs = 0;
  const big = 'x'.repeat(200_000);
  const fn = makeIdempotent(async (_input: { id: string }) => ({ runs: ++runs, big }), { store, name: 'rot', key: (i) => i.id });
  await fn({ id: 'old' });
  ring.rotate(k2);
  await fn({ id: 'new' });
  expect((await readItem(client, tableName, recordId('rot', 'old')))?.keyId?.S).toBe('k1');
  const fresh = await readItem(client, tableName, recordId('rot', 'new'));
  expect(fresh?.keyId?.S).toBe('k2');
  expect(fresh!.response!.B!.byteLength).toBeLessThan(5_000); // gzip before encryption
  expect(await fn({ id: 'old' })).toEqual({ runs: 1, big });
  expect(await fn({ id: 'new' })).toEqual({ runs: 2, big });
  expect(runs).toBe(2);
});

test('a record that cannot be decrypted (another key given the same id) fails closed: STORE_FAILURE naming what to check, the function does not run again', async () => {
  const writer = new DynamoDBStore({ tableName, client, encryption: keyring({ id: 'k1', key: randomBytes(32) }).encryption });
  const reader = new DynamoDBStore({ tableName, client, encryption: keyring({ id: 'k1', key: randomBytes(32) }).encryption });
  let runs = 0;
  const options = { name: 'wrongkey', key: (i: { id: string }) => i.id };
  await makeIdempotent(async (_: { id: string }) => ++runs, { ...options, store: writer })({ id: 'z' });
  const error = await makeIdempotent(async (_: { id: string }) => ++runs, { ...options, store: reader })({ id: 'z' }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(IdempotencyError);
  expect((error as IdempotencyError).code).toBe('STORE_FAILURE');
  expect(((error as IdempotencyError).cause as Error).message).toBe(
    `The stored response of the idempotency record ${recordId('wrongkey', 'z')} failed authentication with key \`k1\`: it was altered, moved from another record, or sealed with another key of the same id.`,
  );
  expect(runs).toBe(1);
});

test('encryption options are validated', () => {
  expect(() => new DynamoDBStore({ tableName, encryption: {} as never })).toThrow(
    new TypeError('DynamoDBStore: `encryption` must have `currentKey()` and `keyById(id)` functions, or be made by `aesGcmEncryption(provider)`.'),
  );
});

test('an expired record encrypted with a retired key is taken over without decrypting it', async () => {
  let now = 1_700_000_000_000;
  const old = { id: 'retired', key: randomBytes(32) };
  const current = { id: 'current', key: randomBytes(32) };
  const writer = new DynamoDBStore({ tableName, client, encryption: keyring(old).encryption });
  const reader = new DynamoDBStore({ tableName, client, encryption: keyring(current).encryption }); // `retired` is gone
  let runs = 0;
  const options = { name: 'retired-key', key: (i: { id: string }) => i.id, expiresAfterSeconds: 60, now: () => now };
  await makeIdempotent(async (_: { id: string }) => ++runs, { ...options, store: writer })({ id: 'r' });
  now += 61_000; // past the retention: the next claim replaces the record
  expect(await makeIdempotent(async (_: { id: string }) => ++runs, { ...options, store: reader })({ id: 'r' })).toBe(2);
});

test('a key retired from keyById() before its records expire: their duplicates fail closed with STORE_FAILURE naming the provider error, nothing runs; past the retention the call runs', async () => {
  let now = 1_700_000_000_000;
  const k1 = aesKey('k1');
  const k2 = aesKey('k2');
  let known = [k1, k2];
  const encryption = { currentKey: () => k2, keyById: (id: string) => known.find((k) => k.id === id)?.key ?? Promise.reject(new Error(`no key ${id}`)) };
  const store = new DynamoDBStore({ tableName, client, encryption: { ...encryption, currentKey: () => k1 } });
  const rotated = new DynamoDBStore({ tableName, client, encryption });
  let runs = 0;
  const options = { name: 'retire', key: (i: { id: string }) => i.id, expiresAfterSeconds: 60, now: () => now };
  await makeIdempotent(async (_: { id: string }) => ++runs, { ...options, store })({ id: 'r' });
  const fn = makeIdempotent(async (_: { id: string }) => ++runs, { ...options, store: rotated });
  expect(await fn({ id: 'r' })).toBe(1); // rotated: k1 still known
  known = [k2]; // k1 retired too early
  const error = await rejection(fn({ id: 'r' }));
  expect([error.code, (error.cause as Error).message]).toEqual(['STORE_FAILURE', 'no key k1']);
  // A provider that answers an unknown id with nothing (a lookup in a plain object of keys) fails closed the same way.
  const byLookup = new DynamoDBStore({
    tableName,
    client,
    encryption: { currentKey: () => k2, keyById: (id) => (({ k2: k2.key }) as Record<string, Uint8Array>)[id]! },
  });
  const missing = await rejection(makeIdempotent(async (_: { id: string }) => ++runs, { ...options, store: byLookup })({ id: 'r' }));
  expect([missing.code, (missing.cause as Error).message]).toEqual([
    'STORE_FAILURE',
    `ResponseEncryption.keyById() has no key \`k1\` (it answered undefined), which sealed the idempotency record ${recordId('retire', 'r')}: keep each key in keyById() until the records it sealed have expired.`,
  ]);
  expect(runs).toBe(1);
  now += 61_000;
  expect(await fn({ id: 'r' })).toBe(2);
});

test('a key retired from keyById() before its records expire: an instance that holds a record in its cacheSize memory replays it from there until the retention ends, as after forget', async () => {
  let now = 1_700_000_000_000;
  const k1 = aesKey('k1');
  let known = [k1];
  const store = new DynamoDBStore({
    tableName,
    client,
    encryption: { currentKey: () => k1, keyById: (id: string) => known.find((k) => k.id === id)?.key ?? Promise.reject(new Error(`no key ${id}`)) },
  });
  let runs = 0;
  const options = { store, name: 'retire-cached', key: (i: { id: string }) => i.id, expiresAfterSeconds: 60, now: () => now };
  const cached = makeIdempotent(async (_: { id: string }) => ++runs, { ...options, cacheSize: 10 });
  expect(await cached({ id: 'r' })).toBe(1);
  known = []; // k1 retired too early
  expect((await rejection(makeIdempotent(async (_: { id: string }) => ++runs, options)({ id: 'r' }))).code).toBe('STORE_FAILURE');
  expect(await cached({ id: 'r' })).toBe(1);
  now += 61_000;
  expect(await cached({ id: 'r' })).toBe(2);
});

test('the provider is asked at each use, never cached by the store: currentKey() at each completion that stores an outcome, keyById() at each replay', async () => {
  const k1 = aesKey('k1');
  const asked = { current: 0, byId: 0 };
  const encryption = aesGcmEncryption({
    currentKey: () => (asked.current++, k1),
    keyById: () => (asked.byId++, k1.key),
  });
  const fn = makeIdempotent(async (input: { id: string; none?: boolean }) => (input.none ? undefined : input.id), {
    store: new DynamoDBStore({ tableName, client, encryption }),
    name: 'asked',
    key: (i) => i.id,
  });
  await fn({ id: 'a' });
  await fn({ id: 'b' });
  await fn({ id: 'nothing', none: true }); // nothing to seal
  expect(asked).toEqual({ current: 2, byId: 0 });
  await fn({ id: 'a' });
  await fn({ id: 'a' });
  await fn({ id: 'nothing', none: true });
  expect(asked).toEqual({ current: 2, byId: 2 });
});

test('a stored final error is sealed too (message, code and fields unreadable at rest), replayed to duplicates, and still read after a rotation', async () => {
  const ring = keyring(aesKey('k1'), aesKey('k2'));
  const store = new DynamoDBStore({ tableName, client, encryption: ring.encryption });
  let runs = 0;
  const declined = makeIdempotent(
    async (_: { id: string }) => {
      runs++;
      throw Object.assign(new Error('card 4111-1111-1111-1111 declined'), { code: 'DECLINED', pan: '4111-1111-1111-1111' });
    },
    { store, name: 'enc-error', key: (i) => i.id, isFinalError: () => true, errorFields: ['pan'] },
  );
  await thrown(declined({ id: 'e' }));
  const item = await readItem(client, tableName, recordId('enc-error', 'e'));
  expect(item?.error?.S).toBeUndefined();
  expect(item?.keyId?.S).toBe('k1');
  expect(Buffer.from(item!.error!.B!).toString('latin1')).not.toMatch(/4111-1111-1111-1111|DECLINED|declined/);
  ring.rotate(aesKey('k3'));
  const replayed = await thrown(declined({ id: 'e' }));
  expect(replayed).toMatchObject({ name: 'Error', message: 'card 4111-1111-1111-1111 declined', code: 'DECLINED', pan: '4111-1111-1111-1111' });
  expect(runs).toBe(1);
});

test('a key made current before every running version knows it: a version whose keyById() lacks it fails closed on the records sealed with it (STORE_FAILURE, nothing runs), and replays them once it knows the key', async () => {
  const k1 = aesKey('k1');
  const k2 = aesKey('k2');
  const byId = (keys: EncryptionKey[]) => (id: string) => keys.find((k) => k.id === id)?.key ?? Promise.reject(new Error(`no key ${id}`));
  // The new version seals with k2; the old one, still running, knows k1 only; then it learns k2 (still sealing with k1).
  const newVersion = new DynamoDBStore({ tableName, client, encryption: aesGcmEncryption({ currentKey: () => k2, keyById: byId([k1, k2]) }) });
  const oldVersion = new DynamoDBStore({ tableName, client, encryption: aesGcmEncryption({ currentKey: () => k1, keyById: byId([k1]) }) });
  const prepared = new DynamoDBStore({ tableName, client, encryption: aesGcmEncryption({ currentKey: () => k1, keyById: byId([k1, k2]) }) });
  let runs = 0;
  const on = (store: DynamoDBStore) =>
    makeIdempotent(async (input: { id: string }) => ({ id: input.id, run: ++runs }), { store, name: 'rollout', key: (i) => i.id });
  expect(await on(newVersion)({ id: 'r' })).toEqual({ id: 'r', run: 1 });
  const error = await rejection(on(oldVersion)({ id: 'r' }));
  expect([error.code, (error.cause as Error).message]).toEqual(['STORE_FAILURE', 'no key k2']);
  expect(await on(prepared)({ id: 'r' })).toEqual({ id: 'r', run: 1 });
  expect(runs).toBe(1);
});

test("an async provider that decrypts each data key once (the docs' KMS cache): records replay, and a failed decrypt is tried again by the next call, not cached", async () => {
  const dataKeys = { k1: randomBytes(32), k2: randomBytes(32) } as Record<string, Buffer>;
  const decrypts: string[] = [];
  let throttled = false;
  // Stands in for a KMS Decrypt of the data key stored for `id`: asynchronous, and throttled on demand.
  const decryptDataKey = async (id: string): Promise<Uint8Array> => {
    decrypts.push(id);
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (throttled) throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    return dataKeys[id]!;
  };
  // The provider of docs/encryption.md.
  const cache = new Map<string, Promise<Uint8Array>>();
  const keyById = (id: string): Promise<Uint8Array> => {
    let key = cache.get(id);
    if (key === undefined) {
      key = decryptDataKey(id);
      key.catch(() => cache.delete(id));
      cache.set(id, key);
    }
    return key;
  };
  let currentId = 'k1';
  const encryption = aesGcmEncryption({ currentKey: async () => ({ id: currentId, key: await keyById(currentId) }), keyById });
  let runs = 0;
  const warnings: string[] = [];
  const fn = makeIdempotent(async (input: { id: string }) => ({ id: input.id, run: ++runs }), {
    store: new DynamoDBStore({ tableName, client, encryption }),
    name: 'async-provider',
    key: (i) => i.id,
    logger: { warn: (line) => void warnings.push(line) },
  });
  expect(await fn({ id: 'a' })).toEqual({ id: 'a', run: 1 });
  expect(await fn({ id: 'a' })).toEqual({ id: 'a', run: 1 });
  expect(decrypts).toEqual(['k1']);
  // A throttled decrypt of a new current key: the record completes without its outcome, and nothing is cached.
  currentId = 'k2';
  throttled = true;
  expect(await fn({ id: 'b' })).toEqual({ id: 'b', run: 2 });
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain('could not encrypt');
  expect(warnings[0]).toContain('ThrottlingException');
  expect((await rejection(fn({ id: 'b' }))).code).toBe('RESPONSE_NOT_STORED');
  throttled = false;
  expect(await fn({ id: 'c' })).toEqual({ id: 'c', run: 3 });
  expect((await readItem(client, tableName, recordId('async-provider', 'c')))?.keyId?.S).toBe('k2');
  expect(await fn({ id: 'c' })).toEqual({ id: 'c', run: 3 });
  expect(await fn({ id: 'a' })).toEqual({ id: 'a', run: 1 });
  expect(decrypts).toEqual(['k1', 'k2', 'k2']);
  expect(runs).toBe(3);
  expect(warnings).toHaveLength(1);
});

test('no key material reaches the caller or the logs: the errors and warnings of a wrong-size key, a key of the wrong type and a failed authentication name the key id only', async () => {
  const k1 = aesKey('k1');
  const wrong = randomBytes(31);
  const other = randomBytes(32);
  const texts: string[] = [];
  const warn = (line: string) => void texts.push(line);
  const seen = (error: unknown) => {
    for (let e = error as { message?: string; cause?: unknown } | undefined; e !== undefined; e = e.cause as typeof e) texts.push(String(e.message), String(e));
  };
  const run = (currentKey: () => EncryptionKey, keyById: () => unknown) =>
    makeIdempotent(async (input: { id: string }) => input.id, {
      store: new DynamoDBStore({ tableName, client, encryption: aesGcmEncryption({ currentKey, keyById: keyById as () => Uint8Array }) }),
      name: 'no-key-material',
      key: (i) => i.id,
      logger: { warn },
    });
  await run(
    () => ({ id: 'k1', key: wrong }),
    () => k1.key,
  )({ id: 'short-at-completion' }); // completes without its outcome, with a warning
  await run(
    () => ({ id: 'k1', key: wrong.toString('base64') as never }),
    () => k1.key,
  )({ id: 'string-at-completion' });
  await run(
    () => k1,
    () => k1.key,
  )({ id: 'sealed' });
  // Reading it back with a wrong-size key, a key of the wrong type and another key.
  for (const keyById of [() => wrong, () => wrong.toString('base64'), () => other]) seen(await thrown(run(() => k1, keyById)({ id: 'sealed' })));
  expect(texts.filter((text) => text.includes('could not encrypt'))).toHaveLength(2);
  expect(texts.filter((text) => text.startsWith('STORE_FAILURE'))).toHaveLength(3);
  for (const key of [wrong, other, k1.key]) {
    for (const form of [key.toString('hex'), key.toString('base64'), key.toString('base64url')]) {
      for (const text of texts) expect(text).not.toContain(form);
    }
  }
});

test("a final error whose current key meets a throttled decrypt (the docs' KMS cache): the record completes without it, its duplicates get ERROR_NOT_STORED and never run, even once the decrypt succeeds", async () => {
  const dataKey = randomBytes(32);
  let throttled = true;
  const cache = new Map<string, Promise<Uint8Array>>();
  const keyById = (id: string): Promise<Uint8Array> => {
    let key = cache.get(id);
    if (key === undefined) {
      key = (async () => {
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (throttled) throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
        return dataKey;
      })();
      key.catch(() => cache.delete(id));
      cache.set(id, key);
    }
    return key;
  };
  const encryption = aesGcmEncryption({ currentKey: async () => ({ id: 'k1', key: await keyById('k1') }), keyById });
  let runs = 0;
  const warnings: string[] = [];
  const declined = makeIdempotent(
    async (_: { id: string }) => {
      runs++;
      throw Object.assign(new Error('card 4111-1111-1111-1111 declined'), { code: 'DECLINED' });
    },
    {
      store: new DynamoDBStore({ tableName, client, encryption }),
      name: 'async-provider-error',
      key: (i) => i.id,
      isFinalError: () => true,
      logger: { warn: (line) => void warnings.push(line) },
    },
  );
  expect((await thrown(declined({ id: 'e' }))).message).toBe('card 4111-1111-1111-1111 declined');
  const item = await readItem(client, tableName, recordId('async-provider-error', 'e'));
  expect([item?.status?.S, item?.errorOmitted?.BOOL, item?.error, item?.keyId]).toEqual(['COMPLETED', true, undefined, undefined]);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain('ERROR_NOT_STORED');
  expect(warnings[0]).toContain('ThrottlingException');
  throttled = false;
  expect((await rejection(declined({ id: 'e' }))).code).toBe('ERROR_NOT_STORED');
  expect(runs).toBe(1);
});

test.each([
  ['an empty key id', 'response', () => ({ id: '', key: randomBytes(32) })],
  ['an empty key id', 'final error', () => ({ id: '', key: randomBytes(32) })],
  ['a key id with a lone surrogate', 'response', () => ({ id: 'k\uD800', key: randomBytes(32) })],
  ['a key id with a lone surrogate', 'final error', () => ({ id: 'k\uD800', key: randomBytes(32) })],
  ['a base64 string for its key', 'final error', () => ({ id: 'k1', key: randomBytes(32).toString('base64') as never })],
] as const)(
  'aesGcmEncryption refuses a currentKey() with %s (TypeError): the record completes without its %s, nothing in the clear, duplicates never run',
  async (_what, outcome, currentKey) => {
    const name = `bad-current-${randomBytes(4).toString('hex')}`;
    let runs = 0;
    const warnings: string[] = [];
    const fn = makeIdempotent(
      async (_: { id: string }) => {
        runs++;
        if (outcome === 'final error') throw new Error('card 4111-1111-1111-1111 declined');
        return { pan: '4111-1111-1111-1111' };
      },
      {
        store: new DynamoDBStore({ tableName, client, encryption: aesGcmEncryption({ currentKey, keyById: () => randomBytes(32) }) }),
        name,
        key: (i) => i.id,
        isFinalError: () => true,
        logger: { warn: (line) => void warnings.push(line) },
      },
    );
    if (outcome === 'response') expect(await fn({ id: 's' })).toEqual({ pan: '4111-1111-1111-1111' });
    else expect((await thrown(fn({ id: 's' }))).message).toBe('card 4111-1111-1111-1111 declined');
    const item = await readItem(client, tableName, recordId(name, 's'));
    // The id and the owner are random text, and the retention a time in seconds, which may hold any four digits.
    const { id: _id, owner: _owner, expiration, ...stored } = item ?? {};
    expect(expiration?.N).toMatch(/^\d+$/);
    expect(JSON.stringify(stored)).not.toContain('4111');
    expect([item?.status?.S, item?.responseOmitted?.BOOL, item?.errorOmitted?.BOOL, item?.keyId]).toEqual([
      'COMPLETED',
      true,
      outcome === 'response' ? undefined : true,
      undefined,
    ]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('TypeError');
    expect((await rejection(fn({ id: 's' }))).code).toBe(outcome === 'response' ? 'RESPONSE_NOT_STORED' : 'ERROR_NOT_STORED');
    expect(runs).toBe(1);
  },
);

test("a data key decrypt that hangs (the docs' KMS cache, its decrypt bounded by an abort signal): that call completes without its outcome, and the next call decrypts again and stores its own, rather than wait on the hung one", async () => {
  const dataKey = randomBytes(32);
  let stuck = true;
  const decrypts: string[] = [];
  // Stands in for `kms.send(new DecryptCommand(…), { abortSignal })`: a stuck request settles only when aborted.
  const decryptDataKey = (id: string, abortSignal: AbortSignal): Promise<Uint8Array> => {
    decrypts.push(id);
    if (!stuck) return Promise.resolve(dataKey);
    return new Promise((_, reject) => abortSignal.addEventListener('abort', () => reject(abortSignal.reason)));
  };
  // The provider of docs/encryption.md, its decrypt bounded at 200 ms here (2 s there).
  const dataKeys = new Map<string, Promise<Uint8Array>>();
  const keyById = (id: string): Promise<Uint8Array> => {
    let key = dataKeys.get(id);
    if (key === undefined) {
      key = decryptDataKey(id, AbortSignal.timeout(200));
      key.catch(() => dataKeys.delete(id));
      dataKeys.set(id, key);
    }
    return key;
  };
  const encryption = aesGcmEncryption({ currentKey: async () => ({ id: 'k1', key: await keyById('k1') }), keyById });
  let runs = 0;
  const warnings: string[] = [];
  const fn = makeIdempotent(async (input: { id: string }, _context: Context) => ({ id: input.id, run: ++runs }), {
    store: new DynamoDBStore({ tableName, client, encryption }),
    name: 'hung-decrypt',
    key: (i) => i.id,
    logger: { warn: (line) => void warnings.push(line) },
  });
  const context = () => lambdaContext({ functionName: 'hung-decrypt', remainingMillis: 2_000 });
  // KMS hangs: the call still answers before its deadline, its outcome not stored.
  expect(await fn({ id: 'a' }, context())).toEqual({ id: 'a', run: 1 });
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain('could not encrypt');
  stuck = false;
  // KMS answers again: the next call is not held by the hung request, its outcome is sealed and replayed.
  expect(await fn({ id: 'b' }, context())).toEqual({ id: 'b', run: 2 });
  expect((await readItem(client, tableName, recordId('hung-decrypt', 'b')))?.keyId?.S).toBe('k1');
  expect(await fn({ id: 'b' }, context())).toEqual({ id: 'b', run: 2 });
  expect((await rejection(fn({ id: 'a' }, context()))).code).toBe('RESPONSE_NOT_STORED');
  expect([decrypts, runs, warnings.length]).toEqual([['k1', 'k1'], 2, 1]);
});
