/**
 * InMemoryStore answers as DynamoDBStore does: the same seeded sequence of claims, completions,
 * releases, inspections and deletions, with clocks, leases and retentions on and around each
 * other's boundaries (the exact millisecond, the second of a retention, a fraction of a
 * millisecond), gets the same answers from both, so a unit test that passes on the one passes on
 * DynamoDB.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { aesGcmEncryption, DynamoDBStore, forgetRecord, type IdempotencyRecord, type IdempotencyStore, inspectRecord } from '../../lib/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { useFreshTable } from '../support/dynamodb.js';
import { aesKey, keyring } from '../support/keyring.js';

const { store: dynamodb, client, tableName } = useFreshTable({ prefix: 'parity' });

/** A small deterministic generator (a linear congruential one): the same sequence on every run. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x80000000;
  };
}

/** A refusal's record without the stored outcome, which a store may leave out there (the engine never reads it). */
function withoutOutcome(result: object): object {
  if (!('record' in result) || result.record === undefined) return result;
  const { response: _response, error: _error, responseOmitted: _omitted, ...state } = result.record as IdempotencyRecord;
  return { ...result, record: state };
}

test('the same operations at every boundary get the same answers from InMemoryStore and DynamoDBStore', async () => {
  const memory = new InMemoryStore();
  const next = random(20_260_101);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)]!;
  const t0 = Date.parse('2030-01-01T00:00:00Z');
  const seconds = t0 / 1000;
  const keys = ['a', 'b'].map((label) => `parity-${Date.now()}#${label}`);
  const differences: string[] = [];
  for (let step = 0; step < 300; step++) {
    const key = pick(keys);
    const owner = pick(['owner-1', 'owner-2', 'owner-3']);
    const operations: Record<string, () => [string, (store: IdempotencyStore) => Promise<object | boolean | undefined>]> = {
      claim: () => {
        const request = {
          key,
          owner,
          now: t0 + pick([-1, 0, 0.5, 1, 999, 1000, 1001]),
          leaseUntil: t0 + pick([0, 1, 1000]),
          expiresAt: seconds + pick([-1, 0, 1, 3600]),
          ...(next() < 0.5 ? { fingerprint: 'fp' } : {}),
        };
        return [`claim ${JSON.stringify(request)}`, (store) => store.claim(request)];
      },
      complete: () => {
        const request = {
          key,
          owner,
          expiresAt: seconds + pick([0, 1, 3600]),
          response: pick([undefined, '"x"', 'null']),
          ...(next() < 0.2 ? { error: '{"name":"Declined"}' } : {}),
          ...(next() < 0.1 ? { responseOmitted: true } : {}),
        };
        return [`complete ${JSON.stringify(request)}`, async (store) => withoutOutcome(await store.complete(request))];
      },
      release: () => [`release ${key} by ${owner}`, async (store) => withoutOutcome(await store.release({ key, owner }))],
      inspect: () => [`inspect ${key}`, (store) => store.inspect!(key)],
      forget: () => {
        const onlyIf = pick([undefined, 'COMPLETED', 'INPROGRESS'] as const);
        const leaseUntil = pick([undefined, undefined, t0, t0 + 1, t0 + 1000]);
        return [`forget ${key} ${onlyIf} ${leaseUntil}`, (store) => store.forget!(key, onlyIf, leaseUntil)];
      },
    };
    const [what, run] = operations[pick(['claim', 'claim', 'complete', 'release', 'inspect', 'forget'])]!();
    const [inMemory, onDynamoDB] = [JSON.stringify(await run(memory)), JSON.stringify(await run(dynamodb))];
    if (inMemory !== onDynamoDB) differences.push(`${step}: ${what}\n  InMemoryStore: ${inMemory}\n  DynamoDBStore: ${onDynamoDB}`);
  }
  expect(differences).toEqual([]);
});

// Hashes as base64: the same text on every run, which gzip shrinks by only about a quarter.
const edgeText = Array.from({ length: 14_000 }, (_, i) => createHash('sha256').update(String(i)).digest('base64')).join('');

const zippedLengths = new Map<number, number>();

/** The length of the longest prefix of the edge text whose JSON's gzip (how both stores keep a large response) takes at most `bytes`. */
function lengthZippedTo(bytes: number): number {
  const known = zippedLengths.get(bytes);
  if (known !== undefined) return known;
  const zipped = (length: number) => gzipSync(JSON.stringify(edgeText.slice(0, length))).byteLength;
  let [low, high] = [0, edgeText.length];
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (zipped(middle) <= bytes) low = middle;
    else high = middle - 1;
  }
  zippedLengths.set(bytes, low);
  return low;
}

/** Whether `store` keeps `response` (a duplicate's claim meets it), checking that the completion said so. */
async function keeps(store: IdempotencyStore, key: string, response: string, now: number): Promise<boolean> {
  await store.claim({ key, owner: 'owner-1', now, leaseUntil: now + 60_000, expiresAt: now / 1000 + 3600 });
  const result = await store.complete({ key, owner: 'owner-1', expiresAt: now / 1000 + 3600, response });
  const { record } = (await store.claim({ key, owner: 'owner-2', now, leaseUntil: now + 60_000, expiresAt: now / 1000 + 3600 })) as {
    record: IdempotencyRecord;
  };
  expect(result).toEqual({ completed: true, responseStored: record.response === response });
  return record.response === response;
}

test('a response at the edge of the item limit: InMemoryStore keeps it exactly when DynamoDBStore does', async () => {
  const memory = new InMemoryStore();
  const now = Date.parse('2030-01-01T00:00:00Z');
  const kept: Record<number, boolean[]> = {};
  // Below the edge, just below it, past it (the edge is the 400 KB item less the record's other attributes).
  for (const size of [408_500, 409_300, 409_600]) {
    const response = JSON.stringify(edgeText.slice(0, lengthZippedTo(size)));
    const key = `parity-edge-${now}#${size}`;
    kept[size] = [await keeps(memory, key, response, now), await keeps(dynamodb, key, response, now)];
  }
  expect(kept).toEqual({ 408500: [true, true], 409300: [true, true], 409600: [false, false] });
});

test('at the exact edge: the longest response InMemoryStore keeps DynamoDBStore keeps too, and one character more neither keeps', async () => {
  const memory = new InMemoryStore();
  const now = Date.parse('2030-01-02T00:00:00Z');
  // The record key counts towards the item: every length gets a key of the same size (all have six digits).
  const keepsLength = (store: IdempotencyStore, length: number) =>
    keeps(store, `parity-exact-${now}#${length}`, JSON.stringify(edgeText.slice(0, length)), now);
  // Kept at `low`, not at `high`: halve the gap on InMemoryStore until they are one character apart.
  let [low, high] = [lengthZippedTo(409_300), lengthZippedTo(409_600)];
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (await keepsLength(memory, middle)) low = middle;
    else high = middle;
  }
  expect([String(low).length, String(high).length]).toEqual([6, 6]);
  expect([await keepsLength(dynamodb, low), await keepsLength(dynamodb, high)]).toEqual([true, false]);
});

test('a final error too large for the item: both stores cut it short alike and report it as they stored it', async () => {
  const memory = new InMemoryStore();
  const now = Date.parse('2030-01-03T00:00:00Z');
  const error = JSON.stringify({ name: 'Declined', message: 'd'.repeat(450_000), code: 'DECLINED' });
  const reported: object[] = [];
  for (const store of [memory, dynamodb]) {
    const key = `parity-error-${now}`;
    await store.claim({ key, owner: 'owner-1', now, leaseUntil: now + 60_000, expiresAt: now / 1000 + 3600 });
    const result = await store.complete({ key, owner: 'owner-1', expiresAt: now / 1000 + 3600, response: undefined, error });
    const { record } = (await store.claim({ key, owner: 'owner-2', now, leaseUntil: now + 60_000, expiresAt: now / 1000 + 3600 })) as {
      record: IdempotencyRecord;
    };
    const storedError = (result as { storedError?: string }).storedError;
    // Compared by length and ending: a failure would print the whole 450 KB message.
    expect(storedError === record.error).toBe(true);
    reported.push({ completed: result.completed, length: storedError?.length, cut: storedError?.endsWith('d…","code":"DECLINED"}') });
  }
  expect(reported[0]).toEqual(reported[1]);
  expect(reported[0]).toMatchObject({ completed: true, cut: true });
});

test("configured as the deployment's DynamoDBStore (compressAboveBytes, encryption), InMemoryStore keeps a response exactly when it does", async () => {
  const now = Date.parse('2030-01-04T00:00:00Z');
  const encryption = aesGcmEncryption(keyring(aesKey('k1')).encryption);
  const kept: Record<string, boolean[]> = {};
  for (const options of [{ compressAboveBytes: 409_600 }, { encryption }, { compressAboveBytes: 0, encryption }]) {
    const memory = new InMemoryStore(options);
    const configured = new DynamoDBStore({ tableName, client, ...options });
    const label = Object.keys(options).join('+');
    // Near the item limit: compressed or not, with or without the encryption's own bytes, these sit on either side of it.
    for (const size of [300_000, 404_000, 409_400]) {
      const response = JSON.stringify(edgeText.slice(0, lengthZippedTo(size)));
      const key = `parity-options-${now}-${label}#${size}`;
      kept[`${label} ${size}`] = [await keeps(memory, key, response, now), await keeps(configured, key, response, now)];
    }
  }
  const disagreements = Object.entries(kept).filter(([, [inMemory, onDynamoDB]]) => inMemory !== onDynamoDB);
  expect(disagreements).toEqual([]);
  // Both sides of the limit are met, so the comparison can fail.
  expect(new Set(Object.values(kept).map(([inMemory]) => inMemory))).toEqual(new Set([true, false]));
});

test('a response is measured in UTF-8 bytes, as DynamoDB counts it: text of two-byte characters that fits an item in characters but not in bytes is kept by neither store', async () => {
  const now = Date.parse('2030-01-05T00:00:00Z');
  const options = { compressAboveBytes: 409_600 }; // never compressed: the text is stored as it is, or not at all
  const [memory, configured] = [new InMemoryStore(options), new DynamoDBStore({ tableName, client, ...options })];
  const kept: Record<number, boolean[]> = {};
  // 190,000 'é' are 380,002 bytes of JSON; 204,790 are 409,582 bytes (not compressed, past the outcome's room), yet half as many characters.
  for (const count of [190_000, 204_790]) {
    const response = JSON.stringify('é'.repeat(count));
    const key = `parity-utf8-${now}#${count}`;
    kept[count] = [await keeps(memory, key, response, now), await keeps(configured, key, response, now)];
  }
  expect(kept).toEqual({ 190000: [true, true], 204790: [false, false] });
});

test('without `compressAboveBytes`, both stores keep a response of 32,768 bytes of JSON as text and compress one byte more (the documented default)', async () => {
  const now = Date.parse('2030-01-06T00:00:00Z');
  const [memory, configured] = [new InMemoryStore(), new DynamoDBStore({ tableName, client })];
  const stored: Record<string, Array<number | undefined>> = {};
  for (const bytes of [32_768, 32_769]) {
    const response = JSON.stringify('x'.repeat(bytes - 2));
    const key = `parity-default-compression-${now}#${bytes}`;
    expect([await keeps(memory, key, response, now), await keeps(configured, key, response, now)]).toEqual([true, true]);
    stored[bytes] = [(await memory.inspect(key))?.responseBytes, (await configured.inspect(key))?.responseBytes];
  }
  const gzipped = gzipSync(JSON.stringify('x'.repeat(32_767))).byteLength;
  expect(stored).toEqual({ 32768: [32_768, 32_768], 32769: [gzipped, gzipped] });
});

test('inspectRecord and forgetRecord refuse, on either store, an address no record can have: a name past 2,004 bytes, an id past 2,048 (DynamoDB keys at most 2,048)', async () => {
  const addresses = [{ name: 'n'.repeat(2_005), key: 'order-1' }, { name: 'é'.repeat(1_003), key: 'order-1' }, { id: `n#${'h'.repeat(2_047)}` }];
  const answers: Record<string, string[]> = {};
  for (const [label, store] of [
    ['InMemoryStore', new InMemoryStore()],
    ['DynamoDBStore', dynamodb],
  ] as const) {
    answers[label] = [];
    for (const address of addresses) {
      for (const operation of [() => inspectRecord({ store, ...address }), () => forgetRecord({ store, ...address })]) {
        const error = await operation().then(
          (answer) => new Error(`answered ${String(answer)}`),
          (rejection: unknown) => rejection as Error,
        );
        answers[label].push(`${error.name}: ${error.message}`);
      }
    }
  }
  const name =
    "TypeError: `name` must be the records' namespace (the function name or the `name` option), a non-empty string without '#', at most 2,004 bytes of UTF-8, without lone surrogates.";
  const id = 'TypeError: A record id takes at most 2,048 bytes of UTF-8, as the library makes them (this one has 2,049).';
  const expected = [name, name, name, name, id, id];
  expect(answers).toEqual({ InMemoryStore: expected, DynamoDBStore: expected });
});
