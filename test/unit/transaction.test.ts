/**
 * transaction(), atomic mode, final errors and transition() against a mocked DynamoDB client: the
 * exact `TransactWriteItems` inputs, and the faults a real server cannot produce on demand
 * (conflicts that do not clear, cancellation reasons, server errors after a commit was sent).
 */

import { randomBytes } from 'node:crypto';
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  PutItemCommand,
  TransactionCanceledException,
  type TransactWriteItem,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { DeleteCommand, NumberValue, PutCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { sendTransaction } from '../../lib/dynamodb-transaction.js';
import {
  type ClaimRequest,
  type ClaimResult,
  DynamoDBStore,
  hashKey,
  httpIdempotency,
  type IdempotencyError,
  type IdempotencyEvent,
  type IdempotencyOptions,
  type IdempotencyStore,
  idempotency,
  type LambdaContextLike,
  makeIdempotent,
  type Transaction,
  transaction,
  transition,
} from '../../lib/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { outerSlot } from '../../lib/transaction.js';
import { lambdaContext } from '../support/lambda.js';
import { serviceError, useMockedDynamoDB } from '../support/mocked-dynamodb.js';
import { rejection } from '../support/rejections.js';
import { collectingLogger, omittedMessage } from '../support/warnings.js';

const { ddb, client, store } = useMockedDynamoDB();

const NOW = 1_700_000_000_500;
const EXPIRES = String(Math.floor(NOW / 1000) + 86_400);
const KEY = `pay#${hashKey('p1')}`;

type Reason = { Code: string; Item?: Record<string, AttributeValue> };

const cancelled = (...reasons: Reason[]): TransactionCanceledException =>
  new TransactionCanceledException({ message: 'Transaction cancelled', $metadata: {}, CancellationReasons: reasons });

const NONE: Reason = { Code: 'None' };

/** The fence of the attempt, as sent in the record action of a commit. */
function fenceOf(items: readonly TransactWriteItem[]): string {
  const record = items[0]!;
  return (record.Update?.ExpressionAttributeValues?.[':owner'] ?? record.Put?.Item?.owner)!.S!;
}

/** A store of the three required methods alone, which cannot commit writes with its record. */
const plainStore = (): IdempotencyStore => ({
  claim: async () => ({ claimed: true }),
  complete: async () => ({ completed: true, responseStored: true }),
  release: async () => ({ released: true }),
});

const commits = () => ddb.commandCalls(TransactWriteItemsCommand).map((call) => call.args[0].input.TransactItems!);
const commandNames = () => ddb.calls().map((call) => call.args[0].constructor.name);

/** A payment function whose writes touch three tables; `fences` collects the fence of each run. */
function payFixture(options: Partial<IdempotencyOptions<{ id: string }, LambdaContextLike>> = {}, body?: () => void) {
  const fences: string[] = [];
  const pay = makeIdempotent(
    async (input: { id: string }) => {
      const tx = transaction();
      fences.push(tx.fence);
      tx.put({
        TableName: 'payments',
        Item: { id: input.id, amount: 100, tags: new Set(['card']), meta: { retried: false }, note: undefined },
        ConditionExpression: 'attribute_not_exists(#id)',
        ExpressionAttributeNames: { '#id': 'id' },
      })
        .update({
          TableName: 'accounts',
          Key: { id: 'acc-1' },
          UpdateExpression: 'ADD #balance :delta',
          ExpressionAttributeNames: { '#balance': 'balance' },
          ExpressionAttributeValues: { ':delta': -100 },
        })
        .delete({ TableName: 'holds', Key: { id: `hold-${input.id}` } })
        .conditionCheck({ TableName: 'accounts', Key: { id: 'acc-2' }, ConditionExpression: 'attribute_exists(id)' });
      body?.();
      return { ok: true };
    },
    { store, transactions: true, name: 'pay', key: (input) => input.id, now: () => NOW, ...options },
  );
  return { pay, fences };
}

const BUSINESS_WRITES: TransactWriteItem[] = [
  {
    Put: {
      TableName: 'payments',
      Item: { id: { S: 'p1' }, amount: { N: '100' }, tags: { SS: ['card'] }, meta: { M: { retried: { BOOL: false } } } },
      ConditionExpression: 'attribute_not_exists(#id)',
      ExpressionAttributeNames: { '#id': 'id' },
    },
  },
  {
    Update: {
      TableName: 'accounts',
      Key: { id: { S: 'acc-1' } },
      UpdateExpression: 'ADD #balance :delta',
      ExpressionAttributeNames: { '#balance': 'balance' },
      ExpressionAttributeValues: { ':delta': { N: '-100' } },
    },
  },
  { Delete: { TableName: 'holds', Key: { id: { S: 'hold-p1' } } } },
  { ConditionCheck: { TableName: 'accounts', Key: { id: { S: 'acc-2' } }, ConditionExpression: 'attribute_exists(id)' } },
];

describe('the commit', () => {
  test('claim, then one TransactWriteItems: the fenced COMPLETED update first, then the writes, marshalled', async () => {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(TransactWriteItemsCommand).resolves({});
    const { pay, fences } = payFixture();
    expect(await pay({ id: 'p1' })).toEqual({ ok: true });
    expect(commandNames()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand']);
    expect(ddb.commandCalls(TransactWriteItemsCommand)[0]!.args[0].input).toStrictEqual({
      TransactItems: [
        {
          Update: {
            TableName: 'idem',
            Key: { id: { S: KEY } },
            UpdateExpression: 'SET #status = :completed, #exp = :exp, #response = :response REMOVE #lease',
            ConditionExpression: '#owner = :owner AND #status = :inprogress',
            ExpressionAttributeNames: { '#status': 'status', '#exp': 'expiration', '#lease': 'leaseUntil', '#owner': 'owner', '#response': 'response' },
            ExpressionAttributeValues: {
              ':completed': { S: 'COMPLETED' },
              ':inprogress': { S: 'INPROGRESS' },
              ':owner': { S: fences[0] },
              ':exp': { N: EXPIRES },
              ':response': { S: '{"ok":true}' },
            },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          },
        },
        ...BUSINESS_WRITES,
      ],
    });
    // The fence the handler read is the owner its claim wrote.
    expect(ddb.commandCalls(PutItemCommand)[0]!.args[0].input.Item!.owner).toEqual({ S: fences[0] });
  });

  test("the inputs of lib-dynamodb's commands (which type TableName, Item, Key and the expressions as possibly undefined) are writes as they are: the same actions commit", async () => {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(TransactWriteItemsCommand).resolves({});
    const put = new PutCommand({
      TableName: 'payments',
      Item: { id: 'p1', amount: 100, tags: new Set(['card']), meta: { retried: false } },
      ConditionExpression: 'attribute_not_exists(#id)',
      ExpressionAttributeNames: { '#id': 'id' },
    });
    const update = new UpdateCommand({
      TableName: 'accounts',
      Key: { id: 'acc-1' },
      UpdateExpression: 'ADD #balance :delta',
      ExpressionAttributeNames: { '#balance': 'balance' },
      ExpressionAttributeValues: { ':delta': -100 },
    });
    const remove = new DeleteCommand({ TableName: 'holds', Key: { id: 'hold-p1' } });
    const { TransactItems: [check] = [] } = new TransactWriteCommand({
      TransactItems: [{ ConditionCheck: { TableName: 'accounts', Key: { id: 'acc-2' }, ConditionExpression: 'attribute_exists(id)' } }],
    }).input;
    const pay = makeIdempotent(
      async (_id: string) => {
        transaction().put(put.input).update(update.input).delete(remove.input).conditionCheck(check!.ConditionCheck!);
        return { ok: true };
      },
      { store, name: 'pay', now: () => NOW },
    );
    expect(await pay('p1')).toEqual({ ok: true });
    expect(commits()[0]!.slice(1)).toStrictEqual(BUSINESS_WRITES);
  });

  test("a parameter a write does not take, left undefined (a helper's `Key: undefined` on a put), means nothing: the write commits without it", async () => {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(TransactWriteItemsCommand).resolves({});
    const pay = makeIdempotent(
      async (_id: string) => {
        transaction()
          .put({ TableName: 'payments', Item: { id: 'p1' }, Key: undefined } as never)
          .delete({ TableName: 'holds', Key: { id: 'hold-p1' }, UpdateExpression: undefined } as never);
        return { ok: true };
      },
      { store, name: 'pay', now: () => NOW },
    );
    expect(await pay('p1')).toEqual({ ok: true });
    expect(commits()[0]!.slice(1)).toStrictEqual([
      { Put: { TableName: 'payments', Item: { id: { S: 'p1' } } } },
      { Delete: { TableName: 'holds', Key: { id: { S: 'hold-p1' } } } },
    ]);
  });

  test('keys of one table that hold other attributes (a partition key alone, and with a sort key) are not taken for one item: DynamoDB judges them at the commit', async () => {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(TransactWriteItemsCommand).resolves({});
    const pay = makeIdempotent(
      async (_id: string) => {
        transaction()
          .delete({ TableName: 'holds', Key: { id: 'hold-p1' } })
          .delete({ TableName: 'holds', Key: { id: 'hold-p1', at: 1 } })
          .conditionCheck({ TableName: 'holds', Key: { id: 'hold-p1', at: 2 }, ConditionExpression: 'attribute_exists(id)' });
        return { ok: true };
      },
      { store, name: 'pay', now: () => NOW },
    );
    expect(await pay('p1')).toEqual({ ok: true });
    expect(
      commits()[0]!
        .slice(1)
        .map((action) => (action.Delete ?? action.ConditionCheck)!.Key),
    ).toStrictEqual([{ id: { S: 'hold-p1' } }, { id: { S: 'hold-p1' }, at: { N: '1' } }, { id: { S: 'hold-p1' }, at: { N: '2' } }]);
  });

  test('without writes, completion stays a plain UpdateItem', async () => {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(UpdateItemCommand).resolves({});
    const fn = makeIdempotent(async (id: string) => id, { store, transactions: true, name: 'plain', now: () => NOW });
    await fn('x');
    expect(commandNames()).toEqual(['PutItemCommand', 'UpdateItemCommand']);
  });

  test('atomic: one TransactWriteItems whose first action creates the record COMPLETED, conditioned on no live record', async () => {
    ddb.on(TransactWriteItemsCommand).resolves({});
    const { pay, fences } = payFixture({ atomic: true, fingerprint: (input) => input.id });
    expect(await pay({ id: 'p1' })).toEqual({ ok: true });
    expect(commandNames()).toEqual(['TransactWriteItemsCommand']);
    expect(ddb.commandCalls(TransactWriteItemsCommand)[0]!.args[0].input).toStrictEqual({
      TransactItems: [
        {
          Put: {
            TableName: 'idem',
            Item: {
              id: { S: KEY },
              expiration: { N: EXPIRES },
              owner: { S: fences[0] },
              fingerprint: { S: hashKey('p1') },
              status: { S: 'COMPLETED' },
              response: { S: '{"ok":true}' },
            },
            ConditionExpression: 'attribute_not_exists(#id) OR #exp < :nowSeconds OR (#status = :inprogress AND #lease < :nowMillis)',
            ExpressionAttributeNames: { '#id': 'id', '#exp': 'expiration', '#status': 'status', '#lease': 'leaseUntil' },
            ExpressionAttributeValues: {
              ':nowSeconds': { N: String(Math.floor(NOW / 1000)) },
              ':nowMillis': { N: String(NOW) },
              ':inprogress': { S: 'INPROGRESS' },
            },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          },
        },
        ...BUSINESS_WRITES,
      ],
    });
  });
});

describe('cancellations and faults', () => {
  beforeEach(() => {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(DeleteItemCommand).resolves({});
  });

  test('a conflict that clears is retried: the call succeeds on the second commit', async () => {
    ddb
      .on(TransactWriteItemsCommand)
      .rejectsOnce(cancelled(NONE, { Code: 'TransactionConflict' }))
      .resolves({});
    const { pay } = payFixture();
    expect(await pay({ id: 'p1' })).toEqual({ ok: true });
    expect(commandNames()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand', 'TransactWriteItemsCommand']);
    expect(commits()[1]).toStrictEqual(commits()[0]);
  });

  test('a conflict that lasts: three commits, then TRANSACTION_CONFLICT with a retry-after, and the record released', async () => {
    ddb.on(TransactWriteItemsCommand).rejects(cancelled(NONE, NONE, { Code: 'TransactionConflict' }, NONE, NONE));
    const { pay, fences } = payFixture();
    const error = await rejection(pay({ id: 'p1' }));
    expect(error.code).toBe('TRANSACTION_CONFLICT');
    expect(error.retryAfterSeconds).toBe(1);
    expect(commandNames()).toEqual([
      'PutItemCommand',
      'TransactWriteItemsCommand',
      'TransactWriteItemsCommand',
      'TransactWriteItemsCommand',
      'DeleteItemCommand',
    ]);
    expect(ddb.commandCalls(DeleteItemCommand)[0]!.args[0].input.ExpressionAttributeValues![':owner']).toEqual({ S: fences[0] });
  });

  test('atomic: a lasting conflict is TRANSACTION_CONFLICT, with nothing to release', async () => {
    ddb.on(TransactWriteItemsCommand).rejects(cancelled({ Code: 'TransactionConflict' }, NONE, NONE, NONE, NONE));
    const { pay } = payFixture({ atomic: true });
    expect((await rejection(pay({ id: 'p1' }))).code).toBe('TRANSACTION_CONFLICT');
    expect(commandNames()).toEqual(['TransactWriteItemsCommand', 'TransactWriteItemsCommand', 'TransactWriteItemsCommand']);
  });

  test("a failed business condition names the write (index among the call's own writes) and its table; the record is released", async () => {
    ddb.on(TransactWriteItemsCommand).rejects(cancelled(NONE, NONE, NONE, { Code: 'ConditionalCheckFailed' }, NONE));
    const { pay } = payFixture();
    const error = await rejection(pay({ id: 'p1' }));
    expect(error.code).toBe('TRANSACTION_CONDITION_FAILED');
    expect(error.actionIndex).toBe(2);
    expect(error.tableName).toBe('holds');
    expect(error.cause).toBeInstanceOf(TransactionCanceledException);
    expect(commandNames()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand', 'DeleteItemCommand']);
  });

  test.each([
    ['a ValidationError cancellation reason', cancelled(NONE, { Code: 'ValidationError' }, NONE, NONE, NONE)],
    ['an ItemCollectionSizeLimitExceeded reason', cancelled(NONE, { Code: 'ItemCollectionSizeLimitExceeded' }, NONE, NONE, NONE)],
    ['a write to a table that does not exist', serviceError('ResourceNotFoundException', 'Requested resource not found')],
    [
      'a write the function has no grant for',
      serviceError('AccessDeniedException', 'User: arn:aws:sts::1:assumed-role/fn is not authorized to perform: dynamodb:PutItem on resource: payments'),
    ],
  ])('%s is TRANSACTION_INVALID; the record is released', async (_, fault) => {
    ddb.on(TransactWriteItemsCommand).rejects(fault);
    const { pay } = payFixture();
    const error = await rejection(pay({ id: 'p1' }));
    expect(error.code).toBe('TRANSACTION_INVALID');
    expect(error.cause).toBe(fault);
    expect(commandNames()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand', 'DeleteItemCommand']);
  });

  test("a missing table: TRANSACTION_INVALID names the tables of the writes (the claim found the record's), and the fix", async () => {
    ddb.on(TransactWriteItemsCommand).rejects(serviceError('ResourceNotFoundException', 'Requested resource not found'));
    const { pay } = payFixture();
    expect((await rejection(pay({ id: 'p1' }))).message).toBe(
      'TRANSACTION_INVALID: DynamoDB refused the transaction: ResourceNotFoundException: one of the tables payments, accounts, holds is not in this account and Region; create it, or fix its name.',
    );
  });

  test("a missing table, the store's table given by its ARN: the message names the account and Region the transaction ran in, the idempotency table's, not the function's", async () => {
    ddb.on(TransactWriteItemsCommand).rejects(serviceError('ResourceNotFoundException', 'Requested resource not found'));
    const { pay } = payFixture({ store: new DynamoDBStore({ tableName: 'arn:aws:dynamodb:eu-west-3:210987654321:table/idem', client }) });
    expect((await rejection(pay({ id: 'p1' }))).message).toBe(
      "TRANSACTION_INVALID: DynamoDB refused the transaction: ResourceNotFoundException: one of the tables payments, accounts, holds is not in account 210987654321, Region eu-west-3, the idempotency table's (a transaction spans neither accounts nor Regions); create it, or fix its name.",
    );
  });

  test('a missing grant: TRANSACTION_INVALID names the action and the table, as a STORE_FAILURE does, never the role', async () => {
    const table = 'arn:aws:dynamodb:eu-west-1:123456789012:table/payments';
    ddb
      .on(TransactWriteItemsCommand)
      .rejects(
        serviceError(
          'AccessDeniedException',
          `User: arn:aws:sts::123456789012:assumed-role/payments-role/fn is not authorized to perform: dynamodb:PutItem on resource: ${table} because no identity-based policy allows the dynamodb:PutItem action`,
        ),
      );
    const { pay } = payFixture();
    expect((await rejection(pay({ id: 'p1' }))).message).toBe(
      `TRANSACTION_INVALID: DynamoDB refused the transaction: AccessDeniedException: dynamodb:PutItem on ${table}.`,
    );
  });

  test.each([
    'Transaction payload size cannot exceed 4MB. Payload Size: 4290056',
    'Transaction request cannot be larger than 4 MB',
    'Transaction request size has exceeded the limit',
  ])(
    'a transaction refused for its size (%s) is sent once more without the response; refused again, TRANSACTION_INVALID, the record released',
    async (message) => {
      const fault = serviceError('ValidationException', message);
      ddb.on(TransactWriteItemsCommand).rejects(fault);
      const { pay } = payFixture();
      const error = await rejection(pay({ id: 'p1' }));
      expect(error.code).toBe('TRANSACTION_INVALID');
      expect(error.cause).toBe(fault);
      expect(commandNames()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand', 'TransactWriteItemsCommand', 'DeleteItemCommand']);
      expect(commits()[1]![0]!.Update!.ExpressionAttributeValues).not.toHaveProperty(':response');
    },
  );

  test.each([false, true])(
    'atomic: %s; a request too large for DynamoDB to read (HTTP 413, the SDK names no error) is TRANSACTION_INVALID, not an unknown outcome',
    async (atomic) => {
      // DynamoDB Local answers so past about 16 MB (its socket then also fails the rest of the upload, an error a test cannot contain).
      const fault = Object.assign(serviceError('Unknown', 'UnknownError'), { $metadata: { httpStatusCode: 413 } });
      ddb.on(TransactWriteItemsCommand).rejects(fault);
      const { pay } = payFixture({ atomic });
      const error = await rejection(pay({ id: 'p1' }));
      expect(error.code).toBe('TRANSACTION_INVALID');
      expect(error.message).toMatch(/413/);
      expect(commandNames()).toEqual(atomic ? ['TransactWriteItemsCommand'] : ['PutItemCommand', 'TransactWriteItemsCommand', 'DeleteItemCommand']);
    },
  );

  describe('the 4 MB check before sending: the puts counted at their least bytes (names, strings as UTF-8, binaries, nested), the record not', () => {
    const LIMIT = 4 * 1024 * 1024;
    /** `n` bytes of UTF-8 in two-byte characters (one ASCII at the end when `n` is odd). */
    const text = (n: number) => 'é'.repeat(Math.floor(n / 2)) + 'a'.repeat(n % 2);
    /** A value of each kind that DynamoDB counts at `n` bytes at least (nested names included). */
    const kinds: [string, (n: number) => AttributeValue][] = [
      ['S, multi-byte', (n) => ({ S: text(n) })],
      ['B', (n) => ({ B: new Uint8Array(n) })],
      ['SS', (n) => ({ SS: [text(10), text(n - 10)] })],
      ['BS', (n) => ({ BS: [new Uint8Array(10), new Uint8Array(n - 10)] })],
      ['L', (n) => ({ L: [{ S: text(10) }, { B: new Uint8Array(n - 10) }, { N: '1' }] })],
      ['M', (n) => ({ M: { ab: { S: text(10) }, cd: { M: { e: { B: new Uint8Array(n - 15) } } } } })],
    ];
    /** The record's action (never counted: the store keeps it under 400 KB), then puts of `bytes` in all on three tables, and a condition check. */
    const writes = (value: (n: number) => AttributeValue, bytes: number): TransactWriteItem[] => [
      { Put: { TableName: 'idem', Item: { id: { S: text(300_000) } } } },
      { Put: { TableName: 'a', Item: { k: { S: '' } } } },
      { ConditionCheck: { TableName: 'a', Key: { k: { S: 'x' } }, ConditionExpression: 'attribute_exists(k)' } },
      // Names count: `k` (1 byte) twice, `value` (5 bytes).
      { Put: { TableName: 'b', Item: { k: { S: text(Math.floor(bytes / 2)) } } } },
      { Put: { TableName: 'c', Item: { value: value(bytes - Math.floor(bytes / 2) - 7) } } },
    ];

    test.each(kinds)('%s: writes of exactly 4 MB are sent, one byte more is TRANSACTION_INVALID without a request', async (_, value) => {
      ddb.on(TransactWriteItemsCommand).resolves({});
      expect(await sendTransaction(client, writes(value, LIMIT))).toBeNull();
      expect(commandNames()).toEqual(['TransactWriteItemsCommand']);
      ddb.resetHistory();
      const error = await rejection(sendTransaction(client, writes(value, LIMIT + 1)));
      expect([error.code, error.message]).toEqual(['TRANSACTION_INVALID', expect.stringContaining(`at least ${LIMIT + 1} bytes`)]);
      expect(commandNames()).toEqual([]);
    });
  });

  test.each([
    ['refused as a whole', serviceError('ValidationException', 'Item size has exceeded the maximum allowed size')],
    ["cancelled at the record's own action (a ValidationError reason)", cancelled({ Code: 'ValidationError' }, NONE, NONE, NONE, NONE)],
  ])('a record DynamoDB finds too large, %s, commits again without its response, with the same writes', async (_, refusal) => {
    ddb.on(TransactWriteItemsCommand).rejectsOnce(refusal).resolves({});
    const { logger, omitted } = collectingLogger();
    const { pay } = payFixture({ logger });
    expect(await pay({ id: 'p1' })).toEqual({ ok: true });
    expect(omitted()).toEqual([{ level: 'WARN', message: omittedMessage('size'), namespace: 'pay', recordId: KEY }]); // one completion, one line
    const [first, second] = commits();
    expect(first!.slice(1)).toEqual(second!.slice(1));
    expect(second![0]!.Update!.UpdateExpression).toContain('#omitted = :omitted');
    expect(second![0]!.Update!.ExpressionAttributeValues).not.toHaveProperty(':response');
  });

  test('atomic mode with a local cache: a response the table could not keep is not replayed from memory either', async () => {
    ddb.on(TransactWriteItemsCommand).resolves({});
    const huge = randomBytes(450_000).toString('base64'); // incompressible: over the item limit even gzipped
    const { logger, omitted } = collectingLogger();
    const fn = makeIdempotent(async (_: string) => huge, { store, name: 'atomic-cache', atomic: true, cacheSize: 10, now: () => NOW, logger });
    expect(await fn('k')).toBe(huge);
    expect(commits()[0]![0]!.Put!.Item).toHaveProperty('responseOmitted', { BOOL: true });
    expect((await rejection(fn('k'))).code).toBe('RESPONSE_NOT_STORED');
    expect(commandNames()).toEqual(['TransactWriteItemsCommand']);
    expect(omitted()).toEqual([{ level: 'WARN', message: omittedMessage('size'), namespace: 'atomic-cache', recordId: `atomic-cache#${hashKey('k')}` }]);
  });

  test("the ValidationException's own message is kept, so the limit that was hit is named", async () => {
    ddb.on(TransactWriteItemsCommand).rejects(serviceError('ValidationException', 'Transaction request cannot include multiple operations on one item'));
    const { pay } = payFixture();
    expect((await rejection(pay({ id: 'p1' }))).message).toMatch(/multiple operations on one item/);
  });

  test.each([
    ['a network error', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
    ['an internal server error', serviceError('InternalServerError', 'Internal server error', 'server')],
    ["throttling that outlasted the SDK's retries", serviceError('ThrottlingException', 'Rate exceeded')],
  ])('%s leaves the outcome unknown until the fenced release settles it: COMMIT_FAILED with the cause, nothing written', async (_, fault) => {
    ddb.on(TransactWriteItemsCommand).rejects(fault);
    const events: IdempotencyEvent[] = [];
    const { pay } = payFixture({ observability: (event) => void events.push(event) });
    const error = await rejection(pay({ id: 'p1' }));
    expect(error.code).toBe('COMMIT_FAILED');
    expect(events).toEqual(['miss', 'bookkeepingFailure']); // the function ran; its completion failed
    expect(error.message).toMatch(/nothing was written, and this call holds the key no more/);
    expect(error.cause).toBe(fault);
    expect(commandNames()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand', 'DeleteItemCommand']);
  });

  test('an unknown outcome whose release fails too is one bookkeeping failure, not two', async () => {
    ddb.on(TransactWriteItemsCommand).rejects(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    ddb.on(DeleteItemCommand).rejects(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    const events: IdempotencyEvent[] = [];
    const { pay } = payFixture({ observability: (event) => void events.push(event), logger: { warn: () => undefined } });
    expect((await rejection(pay({ id: 'p1' }))).code).toBe('COMMIT_FAILED');
    expect(events).toEqual(['miss', 'bookkeepingFailure']);
  });

  test('atomic: an unknown outcome is COMMIT_FAILED too', async () => {
    ddb.on(TransactWriteItemsCommand).rejects(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    const { pay } = payFixture({ atomic: true });
    expect((await rejection(pay({ id: 'p1' }))).code).toBe('COMMIT_FAILED');
    expect(commandNames()).toEqual(['TransactWriteItemsCommand']);
  });
});

describe('our record refused the commit', () => {
  const recordItem = (owner: string, status: 'INPROGRESS' | 'COMPLETED', extra: Record<string, AttributeValue> = {}) => ({
    id: { S: KEY },
    status: { S: status },
    owner: { S: owner },
    expiration: { N: EXPIRES },
    ...extra,
  });

  beforeEach(() => {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(DeleteItemCommand).resolves({});
  });

  test("taken over by another attempt: SUPERSEDED, nothing written, and the other attempt's record is not released", async () => {
    ddb
      .on(TransactWriteItemsCommand)
      .rejects(
        cancelled(
          { Code: 'ConditionalCheckFailed', Item: recordItem('other', 'INPROGRESS', { leaseUntil: { N: String(NOW + 5000) } }) },
          NONE,
          NONE,
          NONE,
          NONE,
        ),
      );
    const { pay } = payFixture();
    expect((await rejection(pay({ id: 'p1' }))).code).toBe('SUPERSEDED');
    expect(commandNames()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand']);
  });

  test('both our record and a business condition refused: SUPERSEDED (the record is checked first)', async () => {
    ddb
      .on(TransactWriteItemsCommand)
      .rejects(cancelled({ Code: 'ConditionalCheckFailed', Item: recordItem('other', 'COMPLETED') }, { Code: 'ConditionalCheckFailed' }, NONE, NONE, NONE));
    const { pay } = payFixture();
    expect((await rejection(pay({ id: 'p1' }))).code).toBe('SUPERSEDED');
  });

  test('the record is gone (expired and deleted by TTL): SUPERSEDED, once a read finds no item', async () => {
    ddb.on(TransactWriteItemsCommand).rejects(cancelled({ Code: 'ConditionalCheckFailed' }, NONE, NONE, NONE, NONE));
    ddb.on(UpdateItemCommand).rejects(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }));
    const { pay } = payFixture();
    expect((await rejection(pay({ id: 'p1' }))).code).toBe('SUPERSEDED');
    expect(commandNames()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand', 'UpdateItemCommand']);
  });

  test('our own COMPLETED record (a resent commit that was applied before): success', async () => {
    ddb.on(TransactWriteItemsCommand).callsFake((input: { TransactItems: TransactWriteItem[] }) => {
      throw cancelled({ Code: 'ConditionalCheckFailed', Item: recordItem(fenceOf(input.TransactItems), 'COMPLETED') }, NONE, NONE, NONE, NONE);
    });
    const { pay } = payFixture();
    expect(await pay({ id: 'p1' })).toEqual({ ok: true });
  });

  test('a commit whose answer was lost but which applied: the release meets our own COMPLETED record, success, and no bookkeeping failure is counted', async () => {
    let owner = '';
    ddb.on(TransactWriteItemsCommand).callsFake((input: { TransactItems: TransactWriteItem[] }) => {
      owner = fenceOf(input.TransactItems);
      throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    });
    ddb.on(DeleteItemCommand).callsFake(() => {
      throw new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {}, Item: recordItem(owner, 'COMPLETED') });
    });
    const events: IdempotencyEvent[] = [];
    const { pay } = payFixture({ observability: (event) => void events.push(event) });
    expect(await pay({ id: 'p1' })).toEqual({ ok: true });
    expect(events).toEqual(['miss']);
  });

  test("a commit whose answer was lost, and whose release meets another attempt's record: SUPERSEDED, counted once, as Superseded alone", async () => {
    ddb.on(TransactWriteItemsCommand).rejects(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    ddb.on(DeleteItemCommand).callsFake(() => {
      throw new ConditionalCheckFailedException({
        message: 'The conditional request failed',
        $metadata: {},
        Item: recordItem('other', 'INPROGRESS', { leaseUntil: { N: String(NOW + 5000) } }),
      });
    });
    const events: IdempotencyEvent[] = [];
    const { pay } = payFixture({ observability: (event) => void events.push(event) });
    expect((await rejection(pay({ id: 'p1' }))).code).toBe('SUPERSEDED');
    expect(events).toEqual(['miss', 'superseded']);
  });

  test("atomic duplicate: the stored response from the cancellation reason's item is replayed", async () => {
    ddb
      .on(TransactWriteItemsCommand)
      .rejects(
        cancelled({ Code: 'ConditionalCheckFailed', Item: recordItem('first', 'COMPLETED', { response: { S: '{"ok":"first"}' } }) }, NONE, NONE, NONE, NONE),
      );
    const { pay } = payFixture({ atomic: true });
    expect(await pay({ id: 'p1' })).toEqual({ ok: 'first' });
    expect(commandNames()).toEqual(['TransactWriteItemsCommand']);
  });

  test('atomic duplicate: a stored final error is replayed as the error', async () => {
    const stored = JSON.stringify({ name: 'CardDeclined', message: 'declined', code: 'DECLINED', statusCode: 402 });
    ddb
      .on(TransactWriteItemsCommand)
      .rejects(cancelled({ Code: 'ConditionalCheckFailed', Item: recordItem('first', 'COMPLETED', { error: { S: stored } }) }, NONE, NONE, NONE, NONE));
    const { pay } = payFixture({ atomic: true, errorFields: ['statusCode'] });
    const error = (await pay({ id: 'p1' }).catch((e: unknown) => e)) as Error & { code?: string; statusCode?: number };
    expect([error.name, error.message, error.code, error.statusCode]).toEqual(['CardDeclined', 'declined', 'DECLINED', 402]);
  });

  test('atomic duplicate meeting an attempt in progress: IN_PROGRESS with the time left on its lease', async () => {
    ddb
      .on(TransactWriteItemsCommand)
      .rejects(
        cancelled(
          { Code: 'ConditionalCheckFailed', Item: recordItem('other', 'INPROGRESS', { leaseUntil: { N: String(NOW + 4200) } }) },
          NONE,
          NONE,
          NONE,
          NONE,
        ),
      );
    const { pay } = payFixture({ atomic: true });
    const error = await rejection(pay({ id: 'p1' }));
    expect(error.code).toBe('IN_PROGRESS');
    expect(error.retryAfterSeconds).toBe(5);
  });
});

describe('final errors', () => {
  class CardDeclined extends Error {
    override readonly name = 'CardDeclined';
    readonly code = 'DECLINED';
    readonly statusCode = 402;
    readonly cardNumber = '4111…';
  }

  test('non-atomic: stored by a plain UpdateItem with name, message, code and the selected fields; the writes are discarded', async () => {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(UpdateItemCommand).resolves({});
    const { pay } = payFixture({ isFinalError: (e) => e instanceof CardDeclined, errorFields: ['statusCode'] }, () => {
      throw new CardDeclined('declined');
    });
    await expect(pay({ id: 'p1' })).rejects.toBeInstanceOf(CardDeclined);
    expect(commandNames()).toEqual(['PutItemCommand', 'UpdateItemCommand']);
    const values = ddb.commandCalls(UpdateItemCommand)[0]!.args[0].input.ExpressionAttributeValues!;
    expect(values[':error']).toEqual({ S: '{"name":"CardDeclined","message":"declined","code":"DECLINED","statusCode":402}' });
    expect(values[':response']).toBeUndefined();
  });

  test('atomic: stored in the one TransactWriteItems, with the record as its only action', async () => {
    ddb.on(TransactWriteItemsCommand).resolves({});
    const { pay } = payFixture({ atomic: true, isFinalError: (e) => e instanceof CardDeclined }, () => {
      throw new CardDeclined('declined');
    });
    await expect(pay({ id: 'p1' })).rejects.toBeInstanceOf(CardDeclined);
    expect(commits()).toHaveLength(1);
    expect(commits()[0]).toHaveLength(1);
    expect(commits()[0]![0]!.Put!.Item!.error).toEqual({ S: '{"name":"CardDeclined","message":"declined","code":"DECLINED"}' });
  });

  test('atomic: a transient error commits nothing and reads the record once, changing nothing; none found, the caller gets its error', async () => {
    ddb.on(UpdateItemCommand).rejects(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }));
    const { pay } = payFixture({ atomic: true, isFinalError: () => false }, () => {
      throw new Error('transient');
    });
    await expect(pay({ id: 'p1' })).rejects.toThrow('transient');
    // An update that changes nothing, fenced on the item existing: DynamoDB answers with the item (refused: none here), and writes nothing.
    expect(commandNames()).toEqual(['UpdateItemCommand']);
    expect(ddb.commandCalls(UpdateItemCommand)[0]!.args[0].input).toEqual({
      TableName: 'idem',
      Key: { id: { S: KEY } },
      ConditionExpression: 'attribute_exists(#id)',
      ExpressionAttributeNames: { '#id': 'id' },
      ReturnValues: 'ALL_NEW',
    });
  });

  test('without atomic, a transient error is the claim and its release: no read', async () => {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(DeleteItemCommand).resolves({});
    const { pay } = payFixture({ isFinalError: () => false }, () => {
      throw new Error('transient');
    });
    await expect(pay({ id: 'p1' })).rejects.toThrow('transient');
    expect(commandNames()).toEqual(['PutItemCommand', 'DeleteItemCommand']);
  });

  test('an isFinalError that throws counts as "not final": the record is released, with a warning', async () => {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(DeleteItemCommand).resolves({});
    const warned: string[] = [];
    const { pay } = payFixture(
      {
        isFinalError: () => {
          throw new Error('classifier bug');
        },
        logger: { warn: (line) => void warned.push(line) },
      },
      () => {
        throw new Error('handler failed');
      },
    );
    await expect(pay({ id: 'p1' })).rejects.toThrow('handler failed');
    expect(commandNames()).toEqual(['PutItemCommand', 'DeleteItemCommand']);
    expect(warned).toHaveLength(1);
  });
});

describe('the write collector', () => {
  test('a middy request refused before its claim leaves no live call behind in its async context', async () => {
    // The middleware enters the request's scope before the key is selected; a KEY_MISSING refusal
    // leaves the scope empty, so a write added there throws instead of being lost.
    const handler = middy(async () => 'never').use(idempotency({ store: new DynamoDBStore({ tableName: 'idempotency' }), key: () => undefined }));
    await expect(handler({}, lambdaContext('refused'))).rejects.toMatchObject({ code: 'KEY_MISSING' });
    expect(() => transaction()).toThrow(/^transaction\(\) was called outside an idempotent call/);
  });

  test("a middy request leaves its caller's async context as it was: the next request is nested in nothing", async () => {
    // The Lambda runtime invokes request after request from one context: were each request's scope
    // left there, each would be nested in the last, and every ended call would stay reachable, for
    // the life of the process.
    const handler = middy(async (_event: { id: string }) => 'ok').use(idempotency<{ id: string }>({ store: new InMemoryStore(), key: (event) => event.id }));
    await handler({ id: 'a' }, lambdaContext('chain'));
    await handler({ id: 'b' }, lambdaContext('chain'));
    expect(outerSlot()).toBeUndefined(); // what the next request's call would be nested in
  });

  test('refuses a write without a TableName, with a sentence', async () => {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(DeleteItemCommand).resolves({});
    const fn = makeIdempotent(
      async () => {
        transaction().put({ Item: { id: 'x' } } as never);
      },
      { store, transactions: true, name: 'notable', now: () => NOW },
    );
    await expect(fn('k')).rejects.toThrow(new TypeError('transaction().put: `TableName` is required.'));
  });

  /** Adds each write in one call whose commit succeeds: what each addition threw, or 'added'. */
  async function tryWrites(name: string, writes: ((tx: Transaction) => unknown)[]): Promise<unknown[]> {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(DeleteItemCommand).resolves({});
    ddb.on(UpdateItemCommand).resolves({});
    ddb.on(TransactWriteItemsCommand).resolves({});
    const outcomes: unknown[] = [];
    const fn = makeIdempotent(
      async () => {
        for (const write of writes) {
          try {
            write(transaction());
            outcomes.push('added');
          } catch (error) {
            outcomes.push(error);
          }
        }
      },
      { store, name, now: () => NOW },
    );
    await fn('k');
    return outcomes;
  }

  test('refuses a value DynamoDB cannot hold (a Date, an empty set) with a sentence that names the write and its parameter', async () => {
    const errors = await tryWrites('unmarshallable', [
      (tx) => tx.put({ TableName: 'payments', Item: { id: 'p-1', paidAt: new Date(0) } }),
      (tx) => tx.update({ TableName: 'payments', Key: { id: 'p-1' }, UpdateExpression: 'ADD tags :tags', ExpressionAttributeValues: { ':tags': new Set() } }),
    ]);
    expect(errors).toEqual([expect.any(TypeError), expect.any(TypeError)]);
    expect((errors[0] as Error).message).toMatch(/^transaction\(\)\.put: `Item` holds a value DynamoDB cannot store \(a class instance such as a Date/);
    expect((errors[1] as Error).message).toMatch(/^transaction\(\)\.update: `ExpressionAttributeValues` holds a value DynamoDB cannot store .*an empty set/);
    expect((errors[0] as Error).message).not.toMatch(/options\./);
  });

  test('refuses, as it is added, a write on an item another write of the call names (DynamoDB takes one action per item), and the 100th write; the others commit', async () => {
    const bytes = (text: string) => new TextEncoder().encode(text);
    const outcomes = await tryWrites('one-item', [
      (tx) => tx.put({ TableName: 'payments', Item: { pk: 'p-1', sk: 1, amount: 5 } }),
      // Its key in the other order, the number as the put wrote it: the put's item.
      (tx) =>
        tx.update({
          TableName: 'payments',
          Key: { sk: 1, pk: 'p-1' },
          UpdateExpression: 'SET #a = :a',
          ExpressionAttributeNames: { '#a': 'a' },
          ExpressionAttributeValues: { ':a': 1 },
        }),
      (tx) => tx.conditionCheck({ TableName: 'holds', Key: { id: bytes('h-1') }, ConditionExpression: 'attribute_exists(id)' }),
      (tx) => tx.delete({ TableName: 'holds', Key: { id: bytes('h-1') } }),
      // Another item of the table, the same key in another table, another binary key: distinct items.
      (tx) => tx.delete({ TableName: 'payments', Key: { pk: 'p-1', sk: 2 } }),
      (tx) => tx.delete({ TableName: 'ledger', Key: { pk: 'p-1', sk: 1 } }),
      (tx) => tx.delete({ TableName: 'holds', Key: { id: bytes('h-2') } }),
      ...Array.from({ length: 95 }, (_, i) => (tx: Transaction) => tx.put({ TableName: 'audit', Item: { id: `a-${i}` } })),
    ]);
    const refusals = outcomes.flatMap((outcome, index) => (outcome === 'added' ? [] : [{ index, outcome }]));
    expect(
      refusals.map(({ index, outcome }) => [
        index,
        (outcome as IdempotencyError).code,
        (outcome as IdempotencyError).actionIndex,
        (outcome as IdempotencyError).tableName,
      ]),
    ).toEqual([
      [1, 'TRANSACTION_INVALID', 1, 'payments'],
      [3, 'TRANSACTION_INVALID', 2, 'holds'],
      [101, 'TRANSACTION_INVALID', 99, 'audit'],
    ]);
    expect((refusals[0]!.outcome as Error).message).toBe(
      'TRANSACTION_INVALID: transaction(): write 1 is on the item of write 0, and DynamoDB takes one action per item in a transaction: make them one write.',
    );
    expect((refusals[1]!.outcome as Error).message).toMatch(/^TRANSACTION_INVALID: transaction\(\): write 2 is on the item of write 1,/);
    expect((refusals[2]!.outcome as Error).message).toBe(
      'TRANSACTION_INVALID: transaction(): a call commits at most 99 writes (its record is the 100th action DynamoDB takes in one transaction); write 99 is one too many.',
    );
    // The 99 writes that were added commit with the record.
    expect(commits()).toHaveLength(1);
    expect(commits()[0]!).toHaveLength(100);
  });

  test("refuses, as it is added, a write on the item the store keeps the call's record in (its recordItem), by the key's values; the others commit", async () => {
    const committed: (readonly TransactWriteItem[])[] = [];
    // A store whose records are items of `records` keyed by a string and a number: the item is the store's to name.
    const compositeStore: IdempotencyStore = {
      ...plainStore(),
      completeWithWrites: async (_request, writes) => {
        committed.push(writes);
        return { completed: true, responseStored: true };
      },
      recordItem: (key) => ({ TableName: 'records', Key: { pk: { S: key }, sk: { N: '0' } } }),
    };
    const outcomes: unknown[] = [];
    const writes: ((tx: Transaction) => unknown)[] = [
      (tx) => tx.put({ TableName: 'records', Item: { pk: tx.key, sk: 0, note: 'mine' } }),
      (tx) =>
        tx.update({
          TableName: 'records',
          Key: { sk: 0, pk: tx.key },
          UpdateExpression: 'SET #n = :n',
          ExpressionAttributeNames: { '#n': 'n' },
          ExpressionAttributeValues: { ':n': 1 },
        }),
      (tx) => tx.delete({ TableName: 'records', Key: { pk: tx.key, sk: 0n } }),
      (tx) => tx.conditionCheck({ TableName: 'records', Key: { pk: tx.key, sk: NumberValue.from('0.0') }, ConditionExpression: 'attribute_exists(pk)' }),
      // Another item of the table, a string where the record's key holds a number, the key in another table: not the record's item.
      (tx) => tx.conditionCheck({ TableName: 'records', Key: { pk: tx.key, sk: 1 }, ConditionExpression: 'attribute_exists(pk)' }),
      (tx) => tx.conditionCheck({ TableName: 'other', Key: { pk: tx.key, sk: '0' }, ConditionExpression: 'attribute_exists(pk)' }),
      (tx) => tx.put({ TableName: 'other', Item: { pk: tx.key, sk: 0 } }),
    ];
    const fn = makeIdempotent(
      async () => {
        for (const write of writes) {
          try {
            write(transaction());
            outcomes.push('added');
          } catch (error) {
            outcomes.push(error);
          }
        }
        return 'ok';
      },
      { store: compositeStore, name: 'record-item', now: () => NOW },
    );
    expect(await fn('k')).toBe('ok');
    expect(
      outcomes.map((outcome) =>
        outcome === 'added'
          ? outcome
          : [(outcome as IdempotencyError).code, (outcome as IdempotencyError).actionIndex, (outcome as IdempotencyError).tableName],
      ),
    ).toEqual([
      ['TRANSACTION_INVALID', 0, 'records'],
      ['TRANSACTION_INVALID', 0, 'records'],
      ['TRANSACTION_INVALID', 0, 'records'],
      ['TRANSACTION_INVALID', 0, 'records'],
      'added',
      'added',
      'added',
    ]);
    expect((outcomes[0] as Error).message).toBe(
      "TRANSACTION_INVALID: transaction(): write 0 is on the item of this call's idempotency record, which its commit writes (DynamoDB takes one action per item in a transaction): keep the call's data in another item.",
    );
    expect(committed.map((items) => items.map((item) => Object.keys(item)[0]))).toEqual([['ConditionCheck', 'ConditionCheck', 'Put']]);
  });

  test("refuses writes given in DynamoDB's AttributeValue form ({ S: … }) with a sentence, instead of storing each value as a nested map", async () => {
    const outcomes = await tryWrites('attribute-values', [
      (tx) => tx.put({ TableName: 'payments', Item: { id: { S: 'p-1' }, amount: { N: '5' }, paid: { BOOL: true } } }),
      (tx) => tx.delete({ TableName: 'holds', Key: { id: { S: 'hold-1' } } }),
      (tx) =>
        tx.update({
          TableName: 'payments',
          Key: { id: 'p-1' },
          UpdateExpression: 'SET #s = :s, #n = :n',
          ExpressionAttributeNames: { '#s': 'status', '#n': 'tags' },
          ExpressionAttributeValues: { ':s': { S: 'PAID' }, ':n': { SS: ['card'] } },
        }),
      // Native values whose maps merely look like one: an item with its key as a plain value is
      // native, and so is every expression value (a native map may have any shape).
      (tx) => tx.put({ TableName: 'payments', Item: { id: 'p-2', size: { S: 'small' } } }),
    ]);
    expect(outcomes.map((outcome) => (outcome instanceof TypeError ? 'TypeError' : outcome))).toEqual(['TypeError', 'TypeError', 'added', 'added']);
    expect((outcomes[0] as Error).message).toMatch(/^transaction\(\)\.put: `Item` is in DynamoDB's AttributeValue form .*native values/);
    expect((outcomes[1] as Error).message).toMatch(/^transaction\(\)\.delete: `Key` is in DynamoDB's AttributeValue form/);
    expect(commits()).toHaveLength(1);
    expect(commits()[0]!.slice(1)).toEqual([
      { Update: expect.objectContaining({ ExpressionAttributeValues: { ':s': { M: { S: { S: 'PAID' } } }, ':n': { M: { SS: { L: [{ S: 'card' }] } } } } }) },
      { Put: { TableName: 'payments', Item: { id: { S: 'p-2' }, size: { M: { S: { S: 'small' } } } } } },
    ]);
  });

  test.each([
    ['put', 'Item', (tx: Transaction) => tx.put({ TableName: 'payments' } as never)],
    ['update', 'Key', (tx: Transaction) => tx.update({ TableName: 'payments', UpdateExpression: 'SET a = :a' } as never)],
    ['update', 'UpdateExpression', (tx: Transaction) => tx.update({ TableName: 'payments', Key: { id: 'p-1' } } as never)],
    ['delete', 'Key', (tx: Transaction) => tx.delete({ TableName: 'payments' } as never)],
    ['conditionCheck', 'ConditionExpression', (tx: Transaction) => tx.conditionCheck({ TableName: 'payments', Key: { id: 'p-1' } } as never)],
  ])('refuses a %s without its %s, with a sentence, when it is added', async (action, parameter, write) => {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(DeleteItemCommand).resolves({});
    const fn = makeIdempotent(
      async () => {
        write(transaction());
      },
      { store, name: `missing-${action}-${parameter}`, now: () => NOW },
    );
    await expect(fn('k')).rejects.toThrow(new TypeError(`transaction().${action}: \`${parameter}\` is required.`));
    expect(commits()).toHaveLength(0);
  });

  /** A call adds a write `first` accepts, then one `write` refuses with `error` as it is added: nothing after it runs, nothing is committed. */
  async function expectRefusedAsAdded(
    name: string,
    first: (tx: Transaction) => void,
    write: (tx: Transaction) => void,
    error: Error,
    fields: object = { constructor: error.constructor },
  ): Promise<void> {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(DeleteItemCommand).resolves({});
    let added = false;
    const fn = makeIdempotent(
      async () => {
        const tx = transaction();
        first(tx);
        write(tx);
        added = true;
      },
      { store, name, now: () => NOW },
    );
    const thrown = await fn('k').then(
      () => undefined,
      (rejection: unknown) => rejection,
    );
    expect((thrown as Error | undefined)?.message).toBe(error.message);
    expect(thrown).toMatchObject(fields);
    expect(added).toBe(false);
    expect(commits()).toHaveLength(0);
  }

  test.each([
    ['update', 'holds undefined for `id`', (tx: Transaction) => tx.update({ TableName: 'payments', Key: { id: undefined }, UpdateExpression: 'SET a = :a' })],
    ['delete', 'holds undefined for `sk`', (tx: Transaction) => tx.delete({ TableName: 'payments', Key: { id: 'p-1', sk: undefined } })],
    ['conditionCheck', 'is empty', (tx: Transaction) => tx.conditionCheck({ TableName: 'payments', Key: {}, ConditionExpression: 'attribute_exists(id)' })],
  ])(
    'refuses a %s whose Key %s, with a sentence, when it is added (a dropped key attribute would pass for another write on the table)',
    async (action, which, write) => {
      await expectRefusedAsAdded(
        `undefined-key-${action}`,
        (tx) => tx.put({ TableName: 'payments', Item: { id: 'p-2' } }),
        write,
        new TypeError(`transaction().${action}: \`Key\` ${which}: give each key attribute of the item its value.`),
      );
    },
  );

  test.each([
    [
      'update',
      '`:b`',
      (tx: Transaction) =>
        tx.update({
          TableName: 'payments',
          Key: { id: 'p-1' },
          UpdateExpression: 'SET a = :a, b = :b',
          ExpressionAttributeValues: { ':a': 1, ':b': undefined },
        }),
    ],
    [
      'delete',
      '`:v`',
      (tx: Transaction) =>
        tx.delete({ TableName: 'payments', Key: { id: 'p-1' }, ConditionExpression: 'v = :v', ExpressionAttributeValues: { ':v': undefined } }),
    ],
    [
      'update',
      '`:amount`',
      (tx: Transaction) =>
        tx.update(
          transition({
            TableName: 'payments',
            Key: { id: 'p-1' },
            from: 'PAID',
            to: 'REFUNDED',
            condition: { expression: 'amount = :amount', values: { ':amount': undefined } },
          }),
        ),
    ],
  ])(
    'refuses a %s whose ExpressionAttributeValues hold undefined for %s, which its expression uses, when it is added, TRANSACTION_INVALID (left out, DynamoDB would refuse the commit once the function returned)',
    async (action, placeholder, write) => {
      await expectRefusedAsAdded(
        `undefined-value-${action}-${placeholder}`,
        // A value the expressions do not use is left out, as lib-dynamodb's removeUndefinedValues leaves it.
        (tx) =>
          tx.update({ TableName: 'payments', Key: { id: 'p-2' }, UpdateExpression: 'SET a = :a', ExpressionAttributeValues: { ':a': 1, ':ab': undefined } }),
        write,
        new Error(
          `TRANSACTION_INVALID: transaction().${action}: \`ExpressionAttributeValues\` holds undefined for ${placeholder}, which the expression uses: give it a value.`,
        ),
        // As DynamoDB's refusal of the commit would be: a fault of the code, never stored as a final error.
        { code: 'TRANSACTION_INVALID', actionIndex: 1, tableName: 'payments' },
      );
    },
  );

  test('refuses a write whose ExpressionAttributeNames hold undefined for a placeholder its expressions use, when it is added, TRANSACTION_INVALID (the SDK leaves it out, and DynamoDB would refuse the commit once the function returned)', async () => {
    const field = undefined as unknown as string;
    await expectRefusedAsAdded(
      'undefined-name',
      // A name the expressions do not use is left out, as the SDK leaves it out.
      (tx) =>
        tx.update({
          TableName: 'payments',
          Key: { id: 'p-2' },
          UpdateExpression: 'SET #a = :a',
          ExpressionAttributeNames: { '#a': 'a', '#ab': field },
          ExpressionAttributeValues: { ':a': 1 },
        }),
      (tx) =>
        tx.conditionCheck({
          TableName: 'payments',
          Key: { id: 'p-1' },
          ConditionExpression: 'attribute_exists(#f)',
          ExpressionAttributeNames: { '#f': field },
        }),
      new Error(
        'TRANSACTION_INVALID: transaction().conditionCheck: `ExpressionAttributeNames` holds undefined for `#f`, which the expression uses: give it a value.',
      ),
      { code: 'TRANSACTION_INVALID', actionIndex: 1, tableName: 'payments' },
    );
  });

  test('transactions: true is refused at construction for a store that cannot commit writes', () => {
    const memory: IdempotencyStore = {
      claim: async (_: ClaimRequest): Promise<ClaimResult> => ({ claimed: true }),
      complete: async () => ({ completed: true, responseStored: true }),
      release: async () => ({ released: true }),
    };
    expect(() => makeIdempotent(async (_: string) => undefined, { store: memory, name: 'memory', transactions: true })).toThrow(
      /`transactions: true` needs a store with transactions/,
    );
  });

  test('without any flag, transaction() joins the call: its writes commit with the record', async () => {
    const fn = makeIdempotent(
      async (_: string) => {
        transaction().put({ TableName: 'payments', Item: { id: 'p-1' } });
      },
      { store: new DynamoDBStore({ tableName: 'idem', client: new DynamoDBClient({ region: 'local' }) }), name: 'off', now: () => NOW },
    );
    ddb.on(PutItemCommand).resolves({});
    ddb.on(TransactWriteItemsCommand).resolves({});
    await fn('k');
    expect(commandNames()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand']);
  });

  test('a store that cannot commit writes makes transaction() writes throw, with a sentence', async () => {
    const plain = plainStore();
    const fn = makeIdempotent(
      async (_: string) => {
        transaction().put({ TableName: 'payments', Item: { id: 'p-1' } });
      },
      { store: plain, name: 'plain' },
    );
    await expect(fn('k')).rejects.toThrow(/cannot commit writes with its record/);
  });

  test("on a store that cannot commit writes, the call's key, owner and downstreamKey still answer", async () => {
    const plain = plainStore();
    const fn = makeIdempotent(
      async (_: string) => {
        const tx = transaction();
        return [tx.key, tx.owner, tx.downstreamKey('refund')];
      },
      { store: plain, name: 'plain-keys' },
    );
    const [key, owner, downstream] = await fn('k');
    expect(key).toMatch(/^plain-keys#/);
    expect(owner).toMatch(/./);
    expect(downstream).toMatch(/^[\w-]{43}$/);
  });

  test("atomic: a store of one's own without `read` gives a run that fails on a duplicate its function's error", async () => {
    let runs = 0;
    const atomicOnly: IdempotencyStore = {
      ...plainStore(),
      claimCompleted: async () => {
        throw new Error('never committed: the run fails');
      },
    };
    const failure = new Error('payment is REFUNDED already');
    const fn = makeIdempotent(
      async (_: string) => {
        runs++;
        transaction().put({ TableName: 'payments', Item: { id: 'x' } });
        throw failure;
      },
      { store: atomicOnly, name: 'atomic-no-read', atomic: true },
    );
    await expect(fn('k')).rejects.toBe(failure);
    expect(runs).toBe(1);
  });

  test('atomic mode commits the writes through claimCompleted, even for a store without completeWithWrites', async () => {
    const received: (readonly TransactWriteItem[])[] = [];
    const atomicOnly: IdempotencyStore = {
      ...plainStore(),
      claimCompleted: async (_request, writes) => {
        received.push(writes);
        return { claimed: true };
      },
    };
    const fn = makeIdempotent(
      async () => {
        transaction().put({ TableName: 'payments', Item: { id: 'x' } });
        return 'ok';
      },
      { store: atomicOnly, name: 'atomic-only', atomic: true },
    );
    expect(await fn('k')).toBe('ok');
    expect(received).toEqual([[{ Put: { TableName: 'payments', Item: { id: { S: 'x' } } } }]]);
  });

  test('a call run without idempotency (missing key, onMissingKey: skip) has no transaction to join', async () => {
    const fn = makeIdempotent(
      async (_input: { id?: string }) => {
        transaction().put({ TableName: 'payments', Item: { id: 'x' } });
      },
      { store, transactions: true, name: 'skip', key: (input) => input.id, onMissingKey: 'skip' },
    );
    await expect(fn({})).rejects.toThrow(/runs without idempotency/);
    expect(commandNames()).toEqual([]);
  });

  test("httpIdempotency's requests run without idempotency (no key under `required: false`, a GET) say why, naming no option they never set", async () => {
    const messages: string[] = [];
    const handler = middy()
      .use(httpIdempotency({ store, name: 'optional-key', required: false }))
      .handler(async () => {
        try {
          transaction().downstreamKey('psp');
        } catch (error) {
          messages.push((error as Error).message);
        }
        return { statusCode: 201 };
      });
    const request = (method: string, headers: Record<string, string>) =>
      ({
        version: '2.0',
        routeKey: `${method} /payments`,
        rawPath: '/payments',
        rawQueryString: '',
        headers,
        requestContext: { http: { method, path: '/payments' }, routeKey: `${method} /payments` },
        body: '{"amount":1200}',
        isBase64Encoded: false,
      }) as unknown as APIGatewayProxyEventV2;
    await handler(request('POST', {}), lambdaContext('payments'));
    await handler(request('GET', { 'idempotency-key': 'k-1' }), lambdaContext('payments'));
    expect(messages).toHaveLength(2);
    for (const message of messages) {
      expect(message).toMatch(/runs without idempotency/);
      expect(message).toMatch(/under httpIdempotency, the request has no Idempotency-Key and `required` is false, or its method is GET/);
    }
    expect(commandNames()).toEqual([]);
  });

  test('a call run without idempotency has no record key or owner either: reading them throws, never an empty string', async () => {
    const read = (member: (tx: Transaction) => unknown) => () => {
      try {
        return String(member(transaction()));
      } catch (error) {
        return (error as Error).message;
      }
    };
    const members = [read((tx) => tx.key), read((tx) => tx.owner), read((tx) => tx.fence), read((tx) => tx.downstreamKey('psp'))];
    const fn = makeIdempotent(async (_input: { id?: string }) => members.map((member) => member()), {
      store,
      name: 'skip-key',
      key: (input) => input.id,
      onMissingKey: 'skip',
    });
    expect((await fn({})).map((answer) => /runs without idempotency/.test(answer))).toEqual([true, true, true, true]);
    expect(commandNames()).toEqual([]);
  });

  test('downstreamKey depends on the record key and the label only', async () => {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(UpdateItemCommand).resolves({});
    const keys: string[][] = [];
    const fn = makeIdempotent(
      async (_id: string) => {
        const tx = transaction();
        keys.push([tx.key, tx.fence, tx.downstreamKey('psp'), tx.downstreamKey('psp'), tx.downstreamKey('ledger')]);
      },
      { store, transactions: true, name: 'ds', now: () => NOW },
    );
    await fn('a');
    await fn('a');
    await fn('b');
    const [a1, a2, b] = keys as [string[], string[], string[]];
    expect(a1[0]).toBe(`ds#${hashKey('a')}`);
    expect(a2[1]).not.toBe(a1[1]); // each attempt has its own fence…
    expect(a2.slice(2)).toEqual(a1.slice(2)); // …and the same downstream keys
    expect(a1[2]).toBe(a1[3]);
    expect(a1[2]).not.toBe(a1[4]);
    expect(b[2]).not.toBe(a1[2]);
  });
});

describe('transition()', () => {
  test('builds a guarded update: state IN from-states, optional version, set, add and an extra condition', () => {
    expect(
      transition({
        TableName: 'payments',
        Key: { id: 'p1' },
        from: ['PAID', 'PARTIALLY_REFUNDED'],
        to: 'PARTIALLY_REFUNDED',
        version: { expected: 3 },
        set: { refundedAt: 1700 },
        add: { refunded: 25 },
        condition: { expression: '#refunded <= :limit', names: { '#refunded': 'refunded' }, values: { ':limit': 75 } },
      }),
    ).toStrictEqual({
      TableName: 'payments',
      Key: { id: 'p1' },
      UpdateExpression: 'SET #tState = :tTo, #tVersion = :tNext, #tSet0 = :tSet0 ADD #tAdd0 :tAdd0',
      ConditionExpression: '#tState IN (:tFrom0, :tFrom1) AND #tVersion = :tVersion AND (#refunded <= :limit)',
      ExpressionAttributeNames: { '#tState': 'status', '#tVersion': 'version', '#tSet0': 'refundedAt', '#tAdd0': 'refunded', '#refunded': 'refunded' },
      ExpressionAttributeValues: {
        ':tTo': 'PARTIALLY_REFUNDED',
        ':tFrom0': 'PAID',
        ':tFrom1': 'PARTIALLY_REFUNDED',
        ':tVersion': 3,
        ':tNext': 4,
        ':tSet0': 1700,
        ':tAdd0': 25,
        ':limit': 75,
      },
    });
  });

  test("a condition's placeholder that holds undefined is no placeholder: left out, as transaction() leaves an undefined value out, it is neither refused as unused nor taken as defined", () => {
    // A condition built with optional values: the ones its expression does not use are left out when sent.
    const condition = { expression: '#r <= :limit', names: { '#r': 'refunded', '#p': undefined }, values: { ':limit': 60, ':min': undefined } };
    expect(transition({ TableName: 't', Key: { id: 1 }, from: 'PAID', to: 'REFUNDED', condition } as never)).toMatchObject({
      ConditionExpression: '#tState IN (:tFrom0) AND (#r <= :limit)',
    });
    // Sent without `#r`, the condition would be refused by DynamoDB once the function had returned.
    const unnamed = { expression: '#r <= :limit', names: { '#r': undefined }, values: { ':limit': 60 } };
    expect(() => transition({ TableName: 't', Key: { id: 1 }, from: 'PAID', to: 'REFUNDED', condition: unnamed } as never)).toThrow(
      /^transition: the condition uses `#r`, which its `names` do not define\.$/,
    );
  });

  test('a single from-state and a custom state attribute', () => {
    expect(
      transition({ TableName: 't', Key: { id: 1 }, from: 'PAID', to: 'REFUNDED', attribute: 'state', version: { attribute: 'rev', expected: 0 } }),
    ).toMatchObject({
      UpdateExpression: 'SET #tState = :tTo, #tVersion = :tNext',
      ConditionExpression: '#tState IN (:tFrom0) AND #tVersion = :tVersion',
      ExpressionAttributeNames: { '#tState': 'state', '#tVersion': 'rev' },
      ExpressionAttributeValues: { ':tTo': 'REFUNDED', ':tFrom0': 'PAID', ':tVersion': 0, ':tNext': 1 },
    });
  });

  test.each([
    ['no from-state', { from: [] }, /`from` must name at least one state/],
    ['a missing from', { from: undefined }, /`from` must name at least one state/],
    ['an empty from-state', { from: ['PAID', ''] }, /`from` must name at least one state/],
    ['an empty to-state', { to: '' }, /`to` must be a state name/],
    ['a version that is not a whole number', { version: { expected: '3' } }, /`version.expected` must be a whole number/],
    // Past 2^53 a double has no next whole number: the update would write the version it expects, a guard that never moves.
    [
      'a version whose next is not exact (Number.MAX_SAFE_INTEGER)',
      { version: { expected: Number.MAX_SAFE_INTEGER } },
      /`version.expected` must be a whole number from/,
    ],
    ["a version past a double's whole numbers (2^60)", { version: { expected: 2 ** 60 } }, /`version.expected` must be a whole number from/],
    ['a version below them (-(2^60))', { version: { expected: -(2 ** 60) } }, /`version.expected` must be a whole number from/],
    ['an undefined value to set', { set: { refundedAt: 1700, note: undefined } }, /^transition: `set.note` is undefined/],
    ['an undefined amount to add', { add: { refunded: undefined } }, /^transition: `add.refunded` is undefined/],
    // DynamoDB adds only a number or a non-empty set, and would refuse these only at the commit; the marshaller refuses an empty set without naming `add`.
    ['an amount to add that is no finite number (NaN)', { add: { refunded: Number.NaN } }, /^transition: `add.refunded` must be a finite number/],
    ['an infinite amount to add', { add: { refunded: Number.POSITIVE_INFINITY } }, /^transition: `add.refunded` must be a finite number/],
    ['an empty set to add to', { add: { tags: new Set<string>() } }, /^transition: `add.tags` must be .* or a non-empty set to add to a set attribute/],
    // DynamoDB refuses each of these only when the transaction is sent, once the function has returned.
    ['more than 100 from-states (the operands DynamoDB compares with IN)', { from: Array.from({ length: 101 }, (_, i) => `S${i}`) }, /`from` names 101 states/],
    ['an empty state attribute', { attribute: '' }, /`attribute` must be an attribute name/],
    ['an empty version attribute', { version: { attribute: '', expected: 1 } }, /`version.attribute` must be an attribute name/],
    ['the state attribute set again', { set: { status: 'X' } }, /^transition: `status` is the state attribute and in `set` too/],
    ['the version attribute added to', { version: { expected: 1 }, add: { version: 1 } }, /`version` is the version attribute and in `add` too/],
    ['one attribute both set and added to', { set: { refunded: 0 }, add: { refunded: 5 } }, /`refunded` is in `set` and in `add` too/],
    ['a key attribute as the state attribute', { attribute: 'id' }, /`id` is a key attribute and the state attribute too/],
    ['a key attribute set', { set: { id: 2 } }, /`id` is a key attribute and in `set` too/],
    ['an empty attribute name to set', { set: { '': 1 } }, /`set` names an attribute with an empty name/],
    [
      "a condition placeholder clashing with the guard's own",
      { condition: { expression: '#tState = :x', names: { '#tState': 'other' }, values: { ':x': 1 } } },
      /`#tState`/,
    ],
    ["a condition value clashing with the guard's own", { condition: { expression: 'a = :tTo', values: { ':tTo': 'X' } } }, /`:tTo`/],
    // Left unread, a misspelt `version` would drop the optimistic-concurrency guard without a word.
    ['a misspelt option (`versoin`)', { versoin: { expected: 3 } }, /^transition: unknown option `versoin`\. Known options: TableName, Key, from, to, /],
    // DynamoDB refuses each of these only when the transaction is sent, once the function has returned.
    [
      'a condition value placeholder not defined',
      { condition: { expression: '#r <= :limit', names: { '#r': 'refunded' } } },
      /uses `:limit`, which its `values` do not define/,
    ],
    [
      'a condition name placeholder not defined',
      { condition: { expression: '#r <= :limit', values: { ':limit': 1 } } },
      /uses `#r`, which its `names` do not define/,
    ],
    [
      'a condition value left unused',
      { condition: { expression: 'attribute_exists(paidAt)', values: { ':limit': 1 } } },
      /`values` define `:limit`, which its expression does not use/,
    ],
    [
      'a condition name left unused',
      { condition: { expression: 'attribute_exists(paidAt)', names: { '#r': 'refunded' } } },
      /`names` define `#r`, which its expression does not use/,
    ],
    // Left unread, a misspelt `version.attribute` would guard (and increment) the attribute named `version` instead.
    [
      'a misspelt version attribute (`version.atribute`)',
      { version: { expected: 3, atribute: 'rev' } },
      /^transition: unknown option `version\.atribute`\. Known options of `version`: attribute, expected\./,
    ],
    [
      'misspelt condition values (`condition.value`)',
      { condition: { expression: '#r <= :limit', names: { '#r': 'refunded' }, value: { ':limit': 60 } } },
      /^transition: unknown option `condition\.value`\. Known options of `condition`: expression, names, values\./,
    ],
    // Read as it is, it would send `… AND (undefined)`, which DynamoDB refuses once the function has returned.
    ['a condition given as its expression alone', { condition: 'attribute_exists(paidAt)' }, /^transition: `condition` must be an object with an `expression`/],
    ['a condition without an expression', { condition: { names: { '#p': 'paidAt' } } }, /^transition: `condition` must be an object with an `expression`/],
    // Sent as `… AND ()`, which DynamoDB refuses once the function has returned.
    ['a condition with an empty expression', { condition: { expression: ' ' } }, /^transition: `condition` must be an object with an `expression`/],
  ])('rejects %s with a TypeError', (_, override, message) => {
    const params = { TableName: 't', Key: { id: 1 }, from: 'PAID', to: 'REFUNDED', ...override } as never;
    expect(() => transition(params)).toThrow(TypeError);
    expect(() => transition(params)).toThrow(message);
  });
});
