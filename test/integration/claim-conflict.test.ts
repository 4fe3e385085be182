/**
 * A write of the record that meets a transaction in flight on it: DynamoDB refuses the claim's put,
 * the completion's update or the release's delete with `TransactionConflictException` (another
 * attempt is completing with its `transaction()` writes, or committing in atomic mode), which the
 * SDK does not retry. Injected between the SDK and DynamoDB Local, as DynamoDB Local cannot hold a
 * transaction open on demand.
 */
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import { describeStoreFailure, makeIdempotent } from '../../lib/index.js';
import { endpoint, useFreshTable } from '../support/dynamodb.js';
import { faultyClient } from '../support/faults.js';
import { rejection, thrown } from '../support/rejections.js';

const { client, faults } = faultyClient(endpoint());
const { tableName, store } = useFreshTable({ prefix: 'conflict', storeClient: client });
const lean = new LeanDynamoDBStore({ tableName, client });
afterEach(() => faults.clear());
afterAll(() => client.destroy());

const conflict = (requests: number, operation: 'PutItem' | 'UpdateItem' | 'DeleteItem' = 'PutItem') =>
  faults.schedule({ operations: [operation], fault: { kind: 'throttle', exception: 'TransactionConflictException' }, requests });

let seq = 0;
function counted(on: typeof store | typeof lean) {
  let runs = 0;
  const once = makeIdempotent(async (_key: string) => ++runs, { store: on, name: `conflict${++seq}`, singleFlight: false });
  return { once, runs: () => runs };
}

test.each([
  ['DynamoDBStore', store],
  ['the lean DynamoDBStore', lean],
] as const)('%s: a duplicate whose claim meets the transaction completing the record is sent again and replays it', async (_name, on) => {
  const f = counted(on);
  expect(await f.once('k')).toBe(1);
  faults.clear();
  conflict(3);
  expect(await f.once('k')).toBe(1);
  expect(f.runs()).toBe(1);
  // Three refused puts, then the fourth meets the COMPLETED record.
  expect(faults.injected.map((fault) => fault.operation)).toEqual(['PutItem', 'PutItem', 'PutItem']);
  expect(faults.attempts.map((attempt) => attempt.operation)).toEqual(['PutItem', 'PutItem', 'PutItem', 'PutItem']);
});

test('a first call whose claim meets a conflict runs once when the conflict ends', async () => {
  const f = counted(store);
  conflict(1);
  expect(await f.once('k')).toBe(1);
  expect(await f.once('k')).toBe(1);
  expect(f.runs()).toBe(1);
});

test('a conflict that outlasts the retries fails closed: STORE_FAILURE naming it, nothing runs, a later call runs once', async () => {
  const f = counted(store);
  conflict(4);
  const refused = await rejection(f.once('k'));
  expect(refused.code).toBe('STORE_FAILURE');
  expect(describeStoreFailure(refused.cause)).toBe('TransactionConflictException');
  expect(f.runs()).toBe(0);
  faults.clear();
  expect(await f.once('k')).toBe(1);
  expect(f.runs()).toBe(1);
});

describe.each([
  ['DynamoDBStore', store],
  ['the lean DynamoDBStore', lean],
] as const)('%s: a completion or a release that meets a conflict is sent again', (_name, on) => {
  const T0 = 1_700_000_000_000;

  test('the completion: the record is COMPLETED, and a duplicate after the lease replays instead of running again', async () => {
    let now = T0;
    let runs = 0;
    const warnings: string[] = [];
    const once = makeIdempotent(async (_key: string) => ++runs, {
      store: on,
      name: `conflict${++seq}`,
      leaseSeconds: 10,
      now: () => now,
      logger: { warn: (line) => void warnings.push(line) },
    });
    conflict(3, 'UpdateItem');
    expect(await once('k')).toBe(1);
    expect(faults.attempts.map((attempt) => attempt.operation)).toEqual(['PutItem', 'UpdateItem', 'UpdateItem', 'UpdateItem', 'UpdateItem']);
    expect(warnings).toEqual([]);
    now += 11_000;
    expect(await once('k')).toBe(1);
    expect(runs).toBe(1);
  });

  test('the release: the key is free at once, and the next call runs instead of getting IN_PROGRESS until the lease', async () => {
    let runs = 0;
    const once = makeIdempotent(
      async (_key: string) => {
        if (++runs === 1) throw new Error('transient');
        return runs;
      },
      { store: on, name: `conflict${++seq}`, leaseSeconds: 600, logger: { warn: () => undefined } },
    );
    conflict(3, 'DeleteItem');
    expect((await thrown(once('k'))).message).toBe('transient');
    expect(faults.attempts.filter((attempt) => attempt.operation === 'DeleteItem')).toHaveLength(4);
    faults.clear();
    expect(await once('k')).toBe(2);
  });
});

test("atomic mode's read of the record after a failed run, meeting a transaction in flight, is sent again and returns the record", async () => {
  const T0 = 1_700_000_000_000;
  const key = `conflict${++seq}#k`;
  await store.claim({ key, owner: 'first', leaseUntil: T0 + 60_000, expiresAt: T0 / 1000 + 86_400, now: T0 });
  await store.complete({ key, owner: 'first', expiresAt: T0 / 1000 + 86_400, response: '"paid"' });
  faults.clear();
  conflict(3, 'UpdateItem');
  expect(await store.read(key)).toMatchObject({ key, status: 'COMPLETED', owner: 'first', response: '"paid"' });
  expect(faults.attempts.map((attempt) => attempt.operation)).toEqual(['UpdateItem', 'UpdateItem', 'UpdateItem', 'UpdateItem']);
});
