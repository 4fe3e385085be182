/**
 * The DynamoDB record protocol against a model: seeded random claims, completions, releases and,
 * where the store has them, atomic claims (`claimCompleted`) and completions with the call's own
 * writes (`completeWithWrites`), on three keys and three owners, with a clock that moves across
 * second and lease boundaries and lands on them (the lease's exact millisecond, the last
 * millisecond of a retention second, fractions of one). After every step the store's answer (claimed
 * or not, completed or released or not, the record it reports) is the model's, the item read back
 * is the model's record (owner, status, fingerprint, retention, lease, response), and a business
 * write exists exactly when the record write it came with applied. Runs on the `DynamoDBStore` of
 * `lambda-idempotency`, the lean one of `lambda-idempotency/dynamodb` (DynamoDB Local) and
 * `InMemoryStore`. The table keeps expired items (TTL off), so the model is the item, live or not.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import { DynamoDBStore, type IdempotencyRecord, type IdempotencyStore } from '../../lib/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { readItem, useBusinessTable, useFreshTable } from '../support/dynamodb.js';
import { type ModelRecord as Model, random } from '../support/protocol-model.js';

const { client, tableName } = useFreshTable({ prefix: 'model' });
const businessTable = useBusinessTable(client);

/** The record's state, as every store reports it; `withOutcome` adds the stored response. */
function stateOf(record: Partial<IdempotencyRecord> | Model | undefined, withOutcome = false): object | undefined {
  if (record === undefined) return undefined;
  const { owner, status, expiresAt, leaseUntil, fingerprint, response } = record;
  return { owner, status, expiresAt, leaseUntil, fingerprint, ...(withOutcome ? { response } : {}) };
}

/** A raw item of the table as a record's state, numbers as DynamoDB gives them back. */
function itemState(item: Record<string, AttributeValue> | undefined): object | undefined {
  if (item === undefined) return undefined;
  const number = (name: string) => (item[name]?.N === undefined ? undefined : Number(item[name].N));
  return {
    owner: item.owner?.S,
    status: item.status?.S,
    expiresAt: number('expiration'),
    leaseUntil: number('leaseUntil'),
    fingerprint: item.fingerprint?.S,
    response: item.response?.S,
  };
}

interface Subject {
  readonly name: string;
  readonly store: IdempotencyStore;
  /** The record of `key` as the store keeps it. */
  readonly stored: (key: string) => Promise<object | undefined>;
}

const memory = new InMemoryStore();
const SUBJECTS: readonly Subject[] = [
  { name: 'DynamoDBStore', store: new DynamoDBStore({ tableName, client }), stored: async (key) => itemState(await readItem(client, tableName, key)) },
  { name: 'lean DynamoDBStore', store: new LeanDynamoDBStore({ tableName, client }), stored: async (key) => itemState(await readItem(client, tableName, key)) },
  {
    name: 'InMemoryStore',
    store: memory,
    // Its map is its table: read as the item is, every field a string.
    stored: async (key) => {
      const hash = (memory as unknown as { records: Map<string, Record<string, string>> }).records.get(key);
      if (hash === undefined) return undefined;
      const number = (value: string | undefined) => (value === undefined ? undefined : Number(value));
      const { owner, status, expiresAt, leaseUntil, fingerprint, response } = hash;
      return { owner, status, expiresAt: number(expiresAt), leaseUntil: number(leaseUntil), fingerprint, response };
    },
  },
];

const STEPS = 150;

for (const { name, store, stored } of SUBJECTS) {
  test(`${name}: every step answers and stores what the model says`, async () => {
    const pick = random(7);
    const keys = [0, 1, 2].map((index) => `${name}#k${index}`);
    const models = new Map<string, Model>();
    const operations = [
      'claim',
      'claim',
      'complete',
      'release',
      ...(store.claimCompleted ? (['claimCompleted'] as const) : []),
      ...(store.completeWithWrites ? (['completeWithWrites'] as const) : []),
    ] as const;
    const seen = {
      claimAtLease: 0,
      claimPastLease: 0,
      claimAtRetentionEnd: 0,
      claimPastRetention: 0,
      refusedToOwner: 0,
      fencedFromOther: 0,
      fencedFromCompleted: 0,
      written: 0,
      notWritten: 0,
    };
    let now = Date.parse('2030-01-01T00:00:00Z') + 999;
    for (let step = 0; step < STEPS; step++) {
      const key = pick(keys);
      const before = models.get(key);
      // Half the time onto a boundary of the record at hand, else forward across seconds and leases.
      const target = pick([true, false]) && before !== undefined ? before : undefined;
      now =
        target === undefined
          ? now + pick([0, 0.5, 1, 999, 1000, 1001, 60_000, 61_000])
          : pick([
              ...(target.leaseUntil === undefined ? [] : [target.leaseUntil - 1, target.leaseUntil, target.leaseUntil + 0.5, target.leaseUntil + 1]),
              target.expiresAt * 1000 + 999,
              target.expiresAt * 1000 + 999.5,
              (target.expiresAt + 1) * 1000,
            ]);
      // Often the record's own owner: its retried writes, and writes after it completed.
      const owner = before !== undefined && pick([true, false]) ? before.owner : pick(['a', 'b', 'c']);
      const operation = pick(operations);
      const at = { step, operation, key, owner, now };
      const live = before !== undefined && before.expiresAt >= Math.floor(now / 1000);
      const claimable = before === undefined || !live || (before.status === 'INPROGRESS' && before.leaseUntil! < now);
      const held = before?.owner === owner && before.status === 'INPROGRESS';
      const fingerprint = pick([undefined, 'f1', 'f2']);
      const response = pick([undefined, `"${owner}${step}"`]);
      const businessId = `${name}#w${step}`;
      const writes = [{ Put: { TableName: businessTable, Item: { id: { S: businessId } } } }];
      if (!operation.startsWith('claim') && before !== undefined) {
        if (before.owner !== owner && before.status === 'INPROGRESS') seen.fencedFromOther++;
        if (before.owner === owner && before.status === 'COMPLETED') seen.fencedFromCompleted++;
      }
      let applied: boolean;
      if (operation === 'claim' || operation === 'claimCompleted') {
        const leaseUntil = now + pick([0, 1, 999, 1000, 60_000]);
        const expiresAt = Math.ceil(leaseUntil / 1000) + pick([-1, 0, 1, 60]);
        const common = { key, owner, now, expiresAt, ...(fingerprint === undefined ? {} : { fingerprint }) };
        const result = operation === 'claim' ? await store.claim({ ...common, leaseUntil }) : await store.claimCompleted!({ ...common, response }, writes);
        applied = result.claimed;
        if (live && before.status === 'INPROGRESS' && before.leaseUntil === now) seen.claimAtLease++;
        if (live && before.status === 'INPROGRESS' && before.leaseUntil! < now && now <= before.leaseUntil! + 1) seen.claimPastLease++;
        if (live && now % 1000 >= 999) seen.claimAtRetentionEnd++;
        if (before !== undefined && now === (before.expiresAt + 1) * 1000) seen.claimPastRetention++;
        expect({ ...at, claimed: result.claimed }).toEqual({ ...at, claimed: claimable });
        if (result.claimed) {
          if (operation === 'claim') expect({ ...at, previous: stateOf(result.previous) }).toEqual({ ...at, previous: stateOf(before) });
          const record = operation === 'claim' ? { status: 'INPROGRESS' as const, leaseUntil } : { status: 'COMPLETED' as const, response };
          models.set(key, { owner, expiresAt, ...record, ...(fingerprint === undefined ? {} : { fingerprint }) });
        } else {
          if (before!.owner === owner) seen.refusedToOwner++;
          expect({ ...at, record: stateOf(result.record, true) }).toEqual({ ...at, record: stateOf(before, true) });
        }
      } else if (operation === 'complete' || operation === 'completeWithWrites') {
        const expiresAt = Math.floor(now / 1000) + pick([0, 1, 60]);
        const request = { key, owner, now, expiresAt, response };
        const result = operation === 'complete' ? await store.complete(request) : await store.completeWithWrites!(request, writes);
        applied = result.completed;
        expect({ ...at, completed: result.completed }).toEqual({ ...at, completed: held });
        if (result.completed) {
          const { leaseUntil: _lease, ...kept } = before!;
          models.set(key, { ...kept, status: 'COMPLETED', expiresAt, response });
        } else {
          expect({ ...at, record: stateOf(result.record) }).toEqual({ ...at, record: stateOf(before) });
        }
      } else {
        const result = await store.release({ key, owner });
        applied = result.released;
        expect({ ...at, released: result.released }).toEqual({ ...at, released: held });
        if (result.released) models.delete(key);
        else expect({ ...at, record: stateOf(result.record) }).toEqual({ ...at, record: stateOf(before) });
      }
      // The item, the store's own read and the business write, read back together.
      const withWrites = operation === 'claimCompleted' || operation === 'completeWithWrites';
      const [found, read, business] = await Promise.all([stored(key), store.read?.(key), withWrites ? readItem(client, businessTable, businessId) : undefined]);
      const model = stateOf(models.get(key), true);
      expect({ ...at, stored: found }).toEqual({ ...at, stored: model });
      if (store.read) expect({ ...at, read: stateOf(read, true) }).toEqual({ ...at, read: model });
      if (withWrites) {
        expect({ ...at, written: business !== undefined }).toEqual({ ...at, written: applied });
        seen[business !== undefined ? 'written' : 'notWritten']++;
      }
    }
    // The boundaries and branches the model is about were met, not only drawn.
    const hasWrites = store.claimCompleted !== undefined;
    for (const [branch, count] of Object.entries(seen)) {
      if (hasWrites || (branch !== 'written' && branch !== 'notWritten')) expect({ branch, met: count > 0 }).toEqual({ branch, met: true });
    }
  }, 60_000);
}
