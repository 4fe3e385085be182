/**
 * A `transaction()` commit that fails without an answer, whose settling release meets another
 * attempt that took the record over meanwhile (this call's lease ended): the release refuses to
 * delete the other attempt's record, and the commit, fenced on this call's claim, can never apply.
 * The faults are injected between the SDK and DynamoDB Local: the commit never reaches it, and the
 * release is held while the takeover is written.
 */
import { DynamoDBStore, describeStoreFailure, makeIdempotent, transaction } from '../../lib/index.js';
import { endpoint, readItem, recordId, useBusinessTable, useFreshTable } from '../support/dynamodb.js';
import { faultyClient } from '../support/faults.js';
import { gate } from '../support/gate.js';
import { rejection } from '../support/rejections.js';

const T0 = 1_700_000_000_000;
const LEASE_MS = 10_000;

const { client, faults } = faultyClient(endpoint());
const { tableName, client: admin } = useFreshTable({ prefix: 'commit-takeover', storeClient: client });
const bizTable = useBusinessTable(admin);
afterEach(() => faults.clear());
afterAll(() => client.destroy());

test('a commit without an answer whose release finds the record taken over: SUPERSEDED with the new holder, nothing of the call written, the record left to its holder', async () => {
  const store = new DynamoDBStore({ tableName, client });
  const other = new DynamoDBStore({ tableName, client: admin });
  const name = 'commit-takeover';
  const clock = { t: T0 };
  let runs = 0;
  const charge = makeIdempotent(
    async (id: string) => {
      transaction().update({
        TableName: bizTable,
        Key: { id },
        UpdateExpression: 'ADD #n :one',
        ExpressionAttributeNames: { '#n': 'n' },
        ExpressionAttributeValues: { ':one': 1 },
      });
      return ++runs;
    },
    { store, name, transactions: true, now: () => clock.t, leaseSeconds: LEASE_MS / 1000, singleFlight: false },
  );
  const key = recordId(name, 'c1');
  const takenOver = gate();
  faults.schedule({ operations: ['TransactWriteItems'], fault: { kind: 'reset' }, attempts: 'all' });
  faults.schedule({
    operations: ['DeleteItem'],
    fault: { kind: 'latency', until: takenOver.promise },
    where: () => {
      // The release is on its way: another attempt, past this call's lease, takes the record over first.
      const later = T0 + LEASE_MS + 1;
      void other
        .claim({ key, owner: 'takeover', now: later, leaseUntil: later + LEASE_MS, expiresAt: Math.floor(later / 1000) + 3600 })
        .then(() => takenOver.open());
      return true;
    },
  });
  const error = await rejection(charge('c1'));
  expect(runs).toBe(1);
  expect({ code: error.code, holder: error.record?.owner, status: error.record?.status }).toEqual({
    code: 'SUPERSEDED',
    holder: 'takeover',
    status: 'INPROGRESS',
  });
  expect(error.message).toMatch(/nothing of this call was written/);
  // The commit's own failure stays the cause, as a COMMIT_FAILED's does: it says why the commit got no answer.
  expect(describeStoreFailure(error.cause)).toBe('ECONNRESET');
  expect(await readItem(admin, bizTable, 'c1')).toBeUndefined();
  expect(await readItem(admin, tableName, key)).toMatchObject({ status: { S: 'INPROGRESS' }, owner: { S: 'takeover' } });
});
