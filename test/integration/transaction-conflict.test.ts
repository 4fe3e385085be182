/**
 * A transaction that keeps conflicting with concurrent writes, on DynamoDB Local: DynamoDB cancels
 * it with `TransactionConflict` reasons, which a test cannot provoke on demand, so a client
 * middleware answers the first commits with that cancellation; everything else is the real server.
 */

import { randomUUID } from 'node:crypto';
import { type DynamoDBClient, PutItemCommand, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { DynamoDBStore, makeIdempotent, transaction, transition } from '../../lib/index.js';
import { dropTable, freshTable, readItem, recordId, testClient, useFreshTable } from '../support/dynamodb.js';
import { rejection } from '../support/rejections.js';

const { client: admin, tableName } = useFreshTable({ prefix: 'conflict' });
let bizTable: string;
const clients: DynamoDBClient[] = [];
beforeAll(async () => {
  bizTable = await freshTable(admin, 'biz');
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  await dropTable(admin, bizTable);
});

/** A store whose next `conflicts` commits are cancelled by a conflict with another transaction. */
function conflicting(mode: 'transactions' | 'atomic') {
  const client = testClient();
  clients.push(client);
  const state = { conflicts: 0, commits: 0 };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== 'TransactWriteItemsCommand') return next(args);
      state.commits++;
      if (state.conflicts === 0) return next(args);
      state.conflicts--;
      const count = (args.input as { TransactItems: unknown[] }).TransactItems.length;
      throw new TransactionCanceledException({
        message: 'Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]',
        $metadata: { httpStatusCode: 400 },
        CancellationReasons: Array.from({ length: count }, (_, i) =>
          i === 1 ? { Code: 'TransactionConflict', Message: 'Transaction is ongoing for the item' } : { Code: 'None' },
        ),
      });
    },
    { step: 'initialize', name: 'conflict' },
  );
  const name = `c${randomUUID().slice(0, 8)}`;
  let runs = 0;
  const fn = makeIdempotent(
    async (id: string) => {
      runs++;
      transaction().update({ TableName: bizTable, Key: { id: `${name}-${id}` }, UpdateExpression: 'ADD n :one', ExpressionAttributeValues: { ':one': 1 } });
      return 'paid';
    },
    { store: new DynamoDBStore({ tableName, client }), name, transactions: mode === 'transactions', atomic: mode === 'atomic' },
  );
  return {
    state,
    fn,
    runs: () => runs,
    record: (id: string) => readItem(admin, tableName, recordId(name, id)),
    applied: async (id: string) => Number((await readItem(admin, bizTable, `${name}-${id}`))?.n?.N ?? 0),
  };
}

describe.each(['transactions', 'atomic'] as const)('%s', (mode) => {
  test('a conflict that outlasts the retries is TRANSACTION_CONFLICT (not IN_PROGRESS): nothing written, no record held; the same call then succeeds', async () => {
    const f = conflicting(mode);
    f.state.conflicts = 3;
    const error = await rejection(f.fn('a'));
    expect(error.code).toBe('TRANSACTION_CONFLICT');
    expect(error.retryAfterSeconds).toBe(1);
    expect(f.state.commits).toBe(3);
    expect(await f.record('a')).toBeUndefined(); // released (transactions) or never created (atomic)
    expect(await f.applied('a')).toBe(0);
    expect(await f.fn('a')).toBe('paid');
    expect(await f.applied('a')).toBe(1);
    expect(f.runs()).toBe(2);
  });

  test('a conflict that clears within the retries is invisible to the caller', async () => {
    const f = conflicting(mode);
    f.state.conflicts = 2;
    expect(await f.fn('b')).toBe('paid');
    expect(f.state.commits).toBe(3);
    expect(await f.applied('b')).toBe(1);
    expect((await f.record('b'))?.status?.S).toBe('COMPLETED');
  });
});

test.each(['TransactionConflict', 'ThrottlingError', 'ProvisionedThroughputExceeded'])(
  "atomic: a duplicate whose commit is cancelled with its record's action unjudged (%s) and its guarded write failing on the first call's effect replays the first call's result, not TRANSACTION_CONDITION_FAILED",
  async (code) => {
    const client = testClient();
    clients.push(client);
    const name = `h${randomUUID().slice(0, 8)}`;
    const payment = `${name}-payment`;
    await admin.send(new PutItemCommand({ TableName: bizTable, Item: { id: { S: payment }, status: { S: 'PAID' } } }));
    let halfApplied = false;
    // DynamoDB applies a transaction item by item: a transaction arriving meanwhile finds the first
    // call's record still held (TransactionConflict) and the payment already REFUNDED (its guard
    // fails); throttled on the record, it is not judged there either. DynamoDB Local gives neither
    // answer on demand, so the middleware does.
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'TransactWriteItemsCommand' || !halfApplied) return next(args);
        halfApplied = false;
        throw new TransactionCanceledException({
          message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${code}, ConditionalCheckFailed]`,
          $metadata: { httpStatusCode: 400 },
          CancellationReasons: [
            { Code: code, Message: 'The record was not judged' },
            { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' },
          ],
        });
      },
      { step: 'initialize', name: 'halfApplied' },
    );
    let runs = 0;
    const refund = makeIdempotent(
      async (_id: string) => {
        transaction().update(transition({ TableName: bizTable, Key: { id: payment }, from: 'PAID', to: 'REFUNDED', add: { refunds: 1 } }));
        return { run: ++runs };
      },
      { store: new DynamoDBStore({ tableName, client }), name, atomic: true, singleFlight: false },
    );
    expect(await refund('r')).toEqual({ run: 1 });
    halfApplied = true;
    expect(await refund('r')).toEqual({ run: 1 });
    expect(halfApplied).toBe(false);
    expect(await readItem(admin, bizTable, payment)).toMatchObject({ status: { S: 'REFUNDED' }, refunds: { N: '1' } });
  },
);
