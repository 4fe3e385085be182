/**
 * Encryption as a module, `aesGcmEncryption(provider)`, on DynamoDB Local: it writes the same
 * records as the key provider passed itself (the older shape), so each reads what the other wrote,
 * responses (large ones compressed first) and final errors, across a key rotation; the lean store
 * of `lambda-idempotency/dynamodb` reads and writes them too.
 */
import { randomUUID } from 'node:crypto';
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import {
  aesGcmEncryption,
  DynamoDBStore,
  type EncryptionKey,
  type IdempotencyStore,
  makeIdempotent,
  type OutcomeEncryption,
  type SealedFor,
} from '../../lib/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { aesKey, type Keyring, keyring } from '../support/keyring.js';
import { rejection, thrown } from '../support/rejections.js';

const { client, tableName } = useFreshTable({ prefix: 'enc-module' });

const STORES = {
  'the key provider itself': (ring: Keyring): IdempotencyStore => new DynamoDBStore({ tableName, client, encryption: ring.encryption }),
  'aesGcmEncryption(provider)': (ring: Keyring): IdempotencyStore => new DynamoDBStore({ tableName, client, encryption: aesGcmEncryption(ring.encryption) }),
  'aesGcmEncryption(provider) on the lean store': (ring: Keyring): IdempotencyStore =>
    new LeanDynamoDBStore({ tableName, client, encryption: aesGcmEncryption(ring.encryption) }),
};
type StoreKind = keyof typeof STORES;

const PAN = '4111-1111-1111-1111';

test.each([
  ['the key provider itself', 'aesGcmEncryption(provider)'],
  ['aesGcmEncryption(provider)', 'the key provider itself'],
  ['the key provider itself', 'aesGcmEncryption(provider) on the lean store'],
  ['aesGcmEncryption(provider) on the lean store', 'the key provider itself'],
] as const)(
  'written with %s, replayed with %s: responses, compressed responses and final errors, across a rotation',
  async (writer: StoreKind, reader: StoreKind) => {
    const k1 = aesKey('k1');
    const k2 = aesKey('k2');
    const ring = keyring(k1, k2);
    const name = `cross-${Object.keys(STORES).indexOf(writer)}-${Object.keys(STORES).indexOf(reader)}`;
    let runs = 0;
    const charge = (store: IdempotencyStore) =>
      makeIdempotent(
        async (input: { id: string; big?: boolean; decline?: boolean }) => {
          runs++;
          if (input.decline) throw Object.assign(new Error(`card ${PAN} declined`), { code: 'DECLINED' });
          return { id: input.id, pan: PAN, ...(input.big ? { pad: 'p'.repeat(100_000) } : {}) };
        },
        { store, name, key: (input) => input.id, isFinalError: () => true },
      );
    const written = charge(STORES[writer](ring));
    const small = await written({ id: 'small' });
    const big = await written({ id: 'big', big: true });
    const declined = await thrown(written({ id: 'declined', decline: true }));
    ring.rotate(k2);
    const rotated = await written({ id: 'rotated' });
    expect(runs).toBe(4);

    for (const [id, keyId] of [
      ['small', 'k1'],
      ['big', 'k1'],
      ['declined', 'k1'],
      ['rotated', 'k2'],
    ]) {
      const item = await readItem(client, tableName, recordId(name, id));
      expect(item?.keyId?.S).toBe(keyId);
      const sealed = item!.response?.B ?? item!.error?.B;
      expect(Buffer.from(sealed!).toString('latin1')).not.toContain(PAN);
    }
    expect((await readItem(client, tableName, recordId(name, 'big')))!.response!.B!.byteLength).toBeLessThan(5_000); // gzip before sealing

    const read = charge(STORES[reader](ring));
    expect(await read({ id: 'small' })).toEqual(small);
    expect(await read({ id: 'big', big: true })).toEqual(big);
    expect(await thrown(read({ id: 'declined', decline: true }))).toMatchObject({ message: declined.message, code: 'DECLINED' });
    expect(await read({ id: 'rotated' })).toEqual(rotated);
    expect(runs).toBe(4);
  },
);

test('with the wrong key, the module fails closed as the key provider does: STORE_FAILURE, nothing runs again', async () => {
  let runs = 0;
  const options = { name: 'module-wrong-key', key: (input: { id: string }) => input.id };
  const writer = new DynamoDBStore({ tableName, client, encryption: aesGcmEncryption(keyring(aesKey('k1')).encryption) });
  await makeIdempotent(async (_: { id: string }) => ++runs, { ...options, store: writer })({ id: 'w' });
  for (const store of [STORES['aesGcmEncryption(provider)'], STORES['aesGcmEncryption(provider) on the lean store'], STORES['the key provider itself']]) {
    const error = await thrown(makeIdempotent(async (_: { id: string }) => ++runs, { ...options, store: store(keyring(aesKey('k1'))) })({ id: 'w' }));
    expect(error.code).toBe('STORE_FAILURE');
  }
  expect(runs).toBe(1);
});

test.each(['aesGcmEncryption(provider)', 'aesGcmEncryption(provider) on the lean store'] as const)(
  'with %s, a key provider that fails at completion leaves the record completed without its response: duplicates get RESPONSE_NOT_STORED',
  async (kind: StoreKind) => {
    const ring = keyring(aesKey('k1'));
    let runs = 0;
    const warnings: string[] = [];
    const charge = makeIdempotent(async (_: { id: string }) => ({ pan: PAN, run: ++runs }), {
      store: STORES[kind](ring),
      name: `module-fault-${Object.keys(STORES).indexOf(kind)}`,
      key: (input) => input.id,
      logger: { warn: (line) => void warnings.push(line) },
    });
    ring.failCurrent = 'throws';
    expect(await charge({ id: 'f' })).toEqual({ pan: PAN, run: 1 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('could not encrypt');
    expect(warnings[0]).toContain('ThrottlingException');
    ring.failCurrent = undefined;
    expect((await rejection(charge({ id: 'f' }))).code).toBe('RESPONSE_NOT_STORED');
    expect(runs).toBe(1);
  },
);

/** A key provider as a class with members of its own: here `open()`, which readies its KMS client. */
class KmsKeyProvider {
  opened = false;
  constructor(private readonly ring: Keyring) {}
  open(): void {
    this.opened = true;
  }
  currentKey() {
    return this.ring.encryption.currentKey();
  }
  keyById(id: string) {
    return this.ring.encryption.keyById(id);
  }
}

/** An `OutcomeEncryption` written by hand, which counts what it seals, with a `keyById` helper of its own. */
class CountingEncryption implements OutcomeEncryption {
  readonly overheadBytes: number;
  sealed = 0;
  private readonly inner: OutcomeEncryption;
  constructor(private readonly ring: Keyring) {
    this.inner = aesGcmEncryption(ring.encryption);
    this.overheadBytes = this.inner.overheadBytes;
  }
  keyById(id: string) {
    return this.ring.encryption.keyById(id);
  }
  currentKey() {
    return this.inner.currentKey();
  }
  seal(plain: Uint8Array, compressed: boolean, key: EncryptionKey, sealedFor: SealedFor) {
    this.sealed++;
    return this.inner.seal(plain, compressed, key, sealedFor);
  }
  open(sealed: Uint8Array, keyId: string, sealedFor: SealedFor) {
    return this.inner.open(sealed, keyId, sealedFor);
  }
}

test('members beyond a shape do not change it: a key provider with an open() method, and a module written by hand with a keyById helper, read each other', async () => {
  const ring = keyring(aesKey('k1'));
  const provider = new KmsKeyProvider(ring);
  const handWritten = new CountingEncryption(ring);
  let runs = 0;
  const charge = (store: IdempotencyStore) =>
    makeIdempotent(async (input: { id: string }) => ({ id: input.id, pan: PAN, run: ++runs }), { store, name: 'extra-members', key: (input) => input.id });
  const viaProvider = charge(new DynamoDBStore({ tableName, client, encryption: provider }));
  const viaModule = charge(new LeanDynamoDBStore({ tableName, client, encryption: handWritten }));
  const a = await viaProvider({ id: 'a' });
  const b = await viaModule({ id: 'b' });
  expect(handWritten.sealed).toBe(1);
  expect((await readItem(client, tableName, recordId('extra-members', 'b')))?.keyId).toEqual({ S: 'k1' });
  expect(await viaModule({ id: 'a' })).toEqual(a);
  expect(await viaProvider({ id: 'b' })).toEqual(b);
  expect(await charge(new DynamoDBStore({ tableName, client, encryption: handWritten }))({ id: 'a' })).toEqual(a);
  expect(await charge(new DynamoDBStore({ tableName, client, encryption: aesGcmEncryption(provider) }))({ id: 'b' })).toEqual(b);
  expect([runs, provider.opened]).toEqual([2, false]);
});

test('a module written by hand whose seal() throws fails as a key provider does: the record completes without its response, the function never runs twice', async () => {
  const ring = keyring(aesKey('k1'));
  const inner = aesGcmEncryption(ring.encryption);
  const refusing: OutcomeEncryption = {
    overheadBytes: inner.overheadBytes,
    currentKey: () => inner.currentKey(),
    open: (...args) => inner.open(...args),
    seal: () => {
      throw new RangeError('Invalid key length');
    },
  };
  let t = 1_700_000_000_000;
  let runs = 0;
  const warnings: string[] = [];
  const charge = makeIdempotent(async (_input: { id: string }) => ({ pan: PAN, run: ++runs }), {
    store: new LeanDynamoDBStore({ tableName, client, encryption: refusing }),
    name: 'module-seal-throws',
    key: (input) => input.id,
    now: () => t,
    leaseSeconds: 10,
    logger: { warn: (line) => void warnings.push(line) },
  });
  expect(await charge({ id: 's' })).toEqual({ pan: PAN, run: 1 });
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain('could not encrypt');
  expect(warnings[0]).toContain('RangeError');
  const item = await readItem(client, tableName, recordId('module-seal-throws', 's'));
  expect([item?.status, item?.responseOmitted, item?.response]).toEqual([{ S: 'COMPLETED' }, { BOOL: true }, undefined]);
  t += 60_000; // past the lease: a record left INPROGRESS would be taken over and the function run again
  expect((await rejection(charge({ id: 's' }))).code).toBe('RESPONSE_NOT_STORED');
  expect(runs).toBe(1);
});

/** The members of `inner`, each passed on to it: a module written by hand, to override one of them in. */
const moduleOf = (inner: OutcomeEncryption) => ({
  overheadBytes: inner.overheadBytes,
  currentKey: () => inner.currentKey(),
  open: (...args: Parameters<OutcomeEncryption['open']>) => inner.open(...args),
  seal: (...args: Parameters<OutcomeEncryption['seal']>) => inner.seal(...args),
});

/**
 * A charge made idempotent on the lean store with `encryption`, on a clock the test moves on
 * (`later`): it returns the card, or throws `declined` as a final error; its runs and warnings counted.
 */
function chargeWith(encryption: OutcomeEncryption, name: string, outcome: 'response' | 'final error', declined: string) {
  let t = 1_700_000_000_000;
  let runs = 0;
  const warnings: string[] = [];
  const charge = makeIdempotent(
    async (_input: { id: string }) => {
      runs++;
      if (outcome === 'final error') throw Object.assign(new Error(declined), { code: 'CARD_DECLINED' });
      return { pan: PAN };
    },
    {
      store: new LeanDynamoDBStore({ tableName, client, encryption }),
      name,
      key: (input) => input.id,
      now: () => t,
      leaseSeconds: 10,
      isFinalError: () => true,
      logger: { warn: (line) => void warnings.push(line) },
    },
  );
  return { charge, warnings, runs: () => runs, later: (millis: number) => void (t += millis) };
}

test.each(['response', 'final error'] as const)(
  'a module written by hand whose seal() is async (a KMS call) fails as one whose seal() throws: the record completes without its %s, a warning says why, duplicates get RESPONSE_NOT_STORED (ERROR_NOT_STORED for an error)',
  async (what) => {
    const inner = aesGcmEncryption(keyring(aesKey('k1')).encryption);
    const name = `module-seal-async-${what === 'response' ? 'response' : 'error'}`;
    const f = chargeWith(
      { ...moduleOf(inner), seal: async (...args: Parameters<OutcomeEncryption['seal']>) => inner.seal(...args) } as unknown as OutcomeEncryption,
      name,
      what,
      'declined',
    );
    if (what === 'response') expect(await f.charge({ id: 's' })).toEqual({ pan: PAN });
    else expect((await thrown(f.charge({ id: 's' }))).message).toBe('declined');
    const item = await readItem(client, tableName, recordId(name, 's'));
    expect([item?.status, item?.responseOmitted, item?.errorOmitted, item?.response, item?.error]).toEqual([
      { S: 'COMPLETED' },
      { BOOL: true },
      what === 'response' ? undefined : { BOOL: true },
      undefined,
      undefined,
    ]);
    expect(f.warnings).toHaveLength(1);
    expect(f.warnings[0]).toContain('could not encrypt');
    expect(f.warnings[0]).toContain('TypeError');
    f.later(60_000);
    expect((await rejection(f.charge({ id: 's' }))).code).toBe(what === 'response' ? 'RESPONSE_NOT_STORED' : 'ERROR_NOT_STORED');
    expect(f.runs()).toBe(1);
  },
);

test('a key provider that is a function object (a class with static methods) is taken as before, itself and through aesGcmEncryption', async () => {
  const ring = keyring(aesKey('k1'));
  // biome-ignore lint/complexity/noStaticOnlyClass: a provider written this way is the case under test
  class StaticKeys {
    static currentKey() {
      return ring.encryption.currentKey();
    }
    static keyById(id: string) {
      return ring.encryption.keyById(id);
    }
  }
  let runs = 0;
  const charge = (store: IdempotencyStore) =>
    makeIdempotent(async (input: { id: string }) => ({ id: input.id, pan: PAN, run: ++runs }), { store, name: 'static-keys', key: (input) => input.id });
  const first = await charge(new DynamoDBStore({ tableName, client, encryption: StaticKeys }))({ id: 's' });
  expect((await readItem(client, tableName, recordId('static-keys', 's')))?.keyId).toEqual({ S: 'k1' });
  expect(await charge(new LeanDynamoDBStore({ tableName, client, encryption: aesGcmEncryption(StaticKeys) }))({ id: 's' })).toEqual(first);
  expect(runs).toBe(1);
});

test.each([
  ['resolves to undefined (a key cache not loaded yet)', 'response', () => undefined],
  ['resolves to undefined (a key cache not loaded yet)', 'final error', () => undefined],
  ['resolves to a key without an id', 'response', (current: EncryptionKey) => ({ key: current.key })],
  ['resolves to a key whose id has a lone surrogate (no UTF-8 form)', 'final error', (current: EncryptionKey) => ({ id: 'k\uDC00', key: current.key })],
] as const)(
  'a module written by hand whose currentKey() %s stores nothing in the clear: the record completes without its %s, a warning says why, duplicates get RESPONSE_NOT_STORED (ERROR_NOT_STORED for an error)',
  async (_what, outcome, answer) => {
    const inner = aesGcmEncryption(keyring(aesKey('k1')).encryption);
    const name = `module-no-key-${randomUUID().slice(0, 8)}`;
    const f = chargeWith(
      { ...moduleOf(inner), currentKey: async () => answer(await inner.currentKey()) } as unknown as OutcomeEncryption,
      name,
      outcome,
      `card ${PAN} declined`,
    );
    if (outcome === 'response') expect(await f.charge({ id: 's' })).toEqual({ pan: PAN });
    else expect((await thrown(f.charge({ id: 's' }))).message).toBe(`card ${PAN} declined`);
    const item = await readItem(client, tableName, recordId(name, 's'));
    expect(JSON.stringify(item)).not.toContain(PAN);
    expect([item?.status, item?.responseOmitted, item?.errorOmitted, item?.response, item?.error, item?.keyId]).toEqual([
      { S: 'COMPLETED' },
      { BOOL: true },
      outcome === 'response' ? undefined : { BOOL: true },
      undefined,
      undefined,
      undefined,
    ]);
    expect(f.warnings).toHaveLength(1);
    expect(f.warnings[0]).toContain('could not encrypt');
    expect(f.warnings[0]).toContain('TypeError');
    f.later(60_000); // past the lease
    expect((await rejection(f.charge({ id: 's' }))).code).toBe(outcome === 'response' ? 'RESPONSE_NOT_STORED' : 'ERROR_NOT_STORED');
    expect(f.runs()).toBe(1);
  },
);
