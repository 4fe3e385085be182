/**
 * A record without a retention (written by hand, or by an older version) gets the retention of the
 * first claim that meets it, by one update conditioned on the record still being there without
 * one. Between the claim that meets it and that update, another attempt may change the record:
 * the update must then write nothing, and the claim is sent again to meet the record as it is now.
 * Each race is set up against DynamoDB Local by holding the update until the other write is done.
 */
import { type AttributeValue, DeleteItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBStore, makeIdempotent } from '../../lib/index.js';
import { endpoint, readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { faultyClient } from '../support/faults.js';
import { gate } from '../support/gate.js';

const T0 = 1_700_000_000_000;
const { client: inspect, tableName } = useFreshTable({ prefix: 'adoption' });
const { client, faults } = faultyClient(endpoint());
const store = new DynamoDBStore({ tableName, client });

afterEach(() => faults.clear());
afterAll(() => client.destroy());

/** Holds the store's next UpdateItem (the retention's adoption) until `interfere` has written. */
function beforeAdoption(interfere: () => Promise<unknown>): void {
  const written = gate();
  let held = false;
  faults.schedule({
    operations: ['UpdateItem'],
    fault: { kind: 'latency', until: written.promise },
    where: () => {
      if (!held) void interfere().then(() => written.open());
      held = true;
      return true;
    },
  });
}

let seq = 0;

/**
 * A function made idempotent under a fresh namespace, whose record for key 'k' is `item`, without a
 * retention. `fails`: the function throws an error that is not final, so an atomic call reads the record.
 */
async function withRecordWithoutRetention(item: Record<string, AttributeValue>, atomic = false, fails = false) {
  const name = `adoption${++seq}`;
  const id = recordId(name, 'k');
  await inspect.send(new PutItemCommand({ TableName: tableName, Item: { id: { S: id }, ...item } }));
  let runs = 0;
  const once = makeIdempotent(
    async (_key: string) => {
      runs++;
      if (fails) throw new Error(`run ${runs} failed`);
      return `run ${runs}`;
    },
    { store, name, atomic, now: () => T0 },
  );
  return { id, once, runs: () => runs };
}

// In atomic mode the function runs first, and its commit (the claim) meets the record.
/** Another attempt's COMPLETED record of `id`, with a retention of its own, that takes the place of the one without. */
const completedByAnother = (id: string) => ({
  id: { S: id },
  status: { S: 'COMPLETED' },
  owner: { S: 'other' },
  expiration: { N: String(T0 / 1000 + 60) },
  response: { S: '"new"' },
});

const modes = [
  ['', false],
  ['atomic: ', true],
] as const;

test.each(modes)(
  '%sa record without a retention, forgotten before the claim gives it one: the update writes nothing, and the call claims the key and runs',
  async (_mode, atomic) => {
    const f = await withRecordWithoutRetention({ status: { S: 'COMPLETED' }, owner: { S: 'o' }, response: { S: '"old"' } }, atomic);
    beforeAdoption(() => inspect.send(new DeleteItemCommand({ TableName: tableName, Key: { id: { S: f.id } } })));
    expect(await f.once('k')).toBe('run 1');
    expect(await readItem(inspect, tableName, f.id)).toMatchObject({ status: { S: 'COMPLETED' }, expiration: { N: String(T0 / 1000 + 86_400) } });
  },
);

test.each(modes)(
  "%sa record without a retention, replaced by another attempt's record before the claim gives it one: that record keeps its own retention",
  async (_mode, atomic) => {
    const f = await withRecordWithoutRetention({ status: { S: 'COMPLETED' }, owner: { S: 'o' }, response: { S: '"old"' } }, atomic);
    const replacement = completedByAnother(f.id);
    beforeAdoption(() => inspect.send(new PutItemCommand({ TableName: tableName, Item: replacement })));
    expect(await f.once('k')).toBe('new');
    expect(f.runs()).toBe(atomic ? 1 : 0);
    expect(await readItem(inspect, tableName, f.id)).toEqual(replacement);
  },
);

// An atomic call whose function throws commits nothing and reads the record: the read gives it the retention.
test("atomic: a function that throws, whose read meets a record without a retention forgotten before it gives it one: the update writes nothing, and the caller gets its function's error", async () => {
  const f = await withRecordWithoutRetention({ status: { S: 'COMPLETED' }, owner: { S: 'o' }, response: { S: '"old"' } }, true, true);
  beforeAdoption(() => inspect.send(new DeleteItemCommand({ TableName: tableName, Key: { id: { S: f.id } } })));
  await expect(f.once('k')).rejects.toThrow(new Error('run 1 failed'));
  expect(await readItem(inspect, tableName, f.id)).toBeUndefined();
});

test("atomic: a function that throws, whose read meets a record without a retention replaced by another attempt's record before it gives it one: that record keeps its own retention, and replays", async () => {
  const f = await withRecordWithoutRetention({ status: { S: 'COMPLETED' }, owner: { S: 'o' }, response: { S: '"old"' } }, true, true);
  const replacement = completedByAnother(f.id);
  beforeAdoption(() => inspect.send(new PutItemCommand({ TableName: tableName, Item: replacement })));
  expect(await f.once('k')).toBe('new');
  expect(f.runs()).toBe(1);
  expect(await readItem(inspect, tableName, f.id)).toEqual(replacement);
});
