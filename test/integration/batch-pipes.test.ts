/**
 * `idempotentBatch` behind an EventBridge pipe (Lambda target, no input transformer): the same
 * records as an event source mapping's, sent as a bare array, a Kinesis record flattened, a stream
 * record's failure named by its `eventID` (fixtures and the AWS pages they follow:
 * test/support/batch-events.ts). Against DynamoDB Local.
 */
import middy from '@middy/core';
import type { KinesisStreamRecord, SQSRecord } from 'aws-lambda';
import {
  type BatchEvent,
  type BatchRecord,
  type BatchResponse,
  type DynamoDBStore,
  type IdempotentBatchOptions,
  idempotentBatch,
  type PipesBatchEvent,
  type RecordHandler,
  type StreamChange,
} from '../../lib/index.js';
import {
  kinesisRecord,
  type Order,
  PIPES_DYNAMODB_EXAMPLE,
  PIPES_KINESIS_EXAMPLE,
  PIPES_SQS_FIFO_EXAMPLE,
  type PipedRecord,
  piped,
  redelivered,
  SENT,
  sqsRecord,
  streamRecord,
} from '../support/batch-events.js';
import { scanItems, testClient, useTablePerTest } from '../support/dynamodb.js';
import { lambdaContext } from '../support/lambda.js';

const client = testClient();
let tableName: string;
let store: DynamoDBStore;

useTablePerTest(client, 'pipes', (fresh) => ({ tableName, store } = fresh));
afterAll(() => client.destroy());

/** A batch handler whose record function is `fn`, with the messages it ran (in call order) and its log lines. */
function consumer<T>(fn: RecordHandler<T, unknown> = () => undefined, options: Partial<IdempotentBatchOptions<T>> = {}) {
  const ran: T[] = [];
  const lines: string[] = [];
  const log = (line: string) => void lines.push(line);
  const handler = idempotentBatch<T>(
    (message, record, context) => {
      ran.push(message);
      return fn(message, record, context);
    },
    { store, now: () => SENT + 60_000, logger: { warn: log, error: log }, ...options },
  );
  const invoke = (event: BatchEvent | PipesBatchEvent) => handler(event, lambdaContext('order-consumer', 120_000));
  return { handler, invoke, ran, lines };
}

const failuresOf = (response: BatchResponse) => response.batchItemFailures.map((failure) => failure.itemIdentifier);
const eventIds = (...records: Array<{ eventID?: string }>) => records.map((record) => record.eventID);
const orderIds = (orders: Order[]) => orders.map((order) => order.orderId);
const fail = (orderId: string) => (order: Order) => {
  if (order.orderId === orderId) throw new Error(`${orderId} declined`);
};

test('the fixtures have the members the AWS pages show: a Kinesis record flat, SQS and DynamoDB Streams records as Lambda delivers them', () => {
  const members = (record: object) => Object.keys(record).sort();
  expect(members(piped(kinesisRecord({ orderId: 'o-1' }, 1)))).toEqual(members(PIPES_KINESIS_EXAMPLE));
  expect(members(piped(sqsRecord({ orderId: 'o-1' }, { groupId: 'g' })))).toEqual(members(PIPES_SQS_FIFO_EXAMPLE));
  expect(members(piped(sqsRecord({ orderId: 'o-1' }, { groupId: 'g' })).attributes)).toEqual(members(PIPES_SQS_FIFO_EXAMPLE.attributes));
  expect(members(piped(streamRecord(1, 'o-1', 'PAID', 'INSERT')))).toEqual(members(PIPES_DYNAMODB_EXAMPLE));
});

test("the AWS pages' example records run: a flat Kinesis record reaches `parse` in the event source mapping's shape; failures are named by messageId and eventID", async () => {
  const text = consumer<string>(
    (message) => {
      if (message.startsWith('Hello')) throw new Error('declined');
    },
    {
      parse: (record) => (record as SQSRecord).body ?? Buffer.from((record as KinesisStreamRecord).kinesis.data, 'base64').toString('utf8'),
      throwOnFullBatchFailure: false,
    },
  );
  expect(failuresOf(await text.invoke([PIPES_KINESIS_EXAMPLE]))).toEqual([PIPES_KINESIS_EXAMPLE.eventID]);
  expect(failuresOf(await text.invoke([PIPES_SQS_FIFO_EXAMPLE]))).toEqual([]);
  expect(text.ran).toEqual(['Hello, this is a test.', 'Test message.']);

  const changes = consumer<StreamChange>(() => undefined);
  expect(failuresOf(await changes.invoke([PIPES_DYNAMODB_EXAMPLE]))).toEqual([]);
  expect(changes.ran).toEqual([{ eventName: 'INSERT', keys: { Id: 101 }, newImage: { Message: 'New item!', Id: 101 }, oldImage: undefined }]);
});

describe.each([
  ['SQS', () => sqsRecord({ orderId: 'o-1', amount: 5 }), (record: BatchRecord) => redelivered(record as SQSRecord)],
  ['Kinesis', () => kinesisRecord({ orderId: 'o-1', amount: 5 }, 1), (record: BatchRecord) => record],
  ['DynamoDB Streams', () => streamRecord(1, 'o-1', 'PAID'), (record: BatchRecord) => record],
] as const)('%s: a message delivered by an event source mapping and by a pipe', (_, recordOf, again) => {
  test.each([
    ['mapping, then pipe', 'mapping'],
    ['pipe, then mapping', 'pipe'],
  ] as const)('%s: has one record key and runs once, with the default key and with a key read from the record', async (__, first) => {
    const record = recordOf();
    const deliveries = [(r: BatchRecord) => ({ Records: [r] }) as BatchEvent, (r: BatchRecord) => [piped(r)]];
    const [one, two] = first === 'mapping' ? deliveries : deliveries.reverse();
    const byDefault = consumer();
    // A key the record function's own code reads from the record: the shape it reads is one on both paths.
    const byRecord = consumer(undefined, {
      name: 'by-record',
      key: (_message, r) => ('kinesis' in r ? r.kinesis.partitionKey : 'messageId' in r ? JSON.parse(r.body).orderId : r.dynamodb?.Keys),
      fingerprint: (message) => message,
    });
    for (const { invoke } of [byDefault, byRecord]) {
      expect(failuresOf(await invoke(one!(record)))).toEqual([]);
      expect(failuresOf(await invoke(two!(again(record))))).toEqual([]);
    }
    expect(byDefault.ran).toHaveLength(1);
    expect(byRecord.ran).toHaveLength(1);
    expect(await scanItems(client, tableName)).toHaveLength(2);
  });
});

describe('partial failure, reported as a pipe reads it', () => {
  test('SQS: the failed messages by messageId; the next delivery replays the rest and runs the failed one', async () => {
    const batch = ['o-1', 'o-2', 'o-3'].map((orderId) => sqsRecord({ orderId }));
    let declining = true;
    const { invoke, ran } = consumer<Order>((order) => {
      if (declining) fail('o-2')(order);
    });
    expect(failuresOf(await invoke(batch))).toEqual([batch[1]!.messageId]);
    expect(orderIds(ran).sort()).toEqual(['o-1', 'o-2', 'o-3']);
    declining = false;
    expect(failuresOf(await invoke(batch.map(redelivered)))).toEqual([]);
    expect(orderIds(ran.slice(3))).toEqual(['o-2']);
  });

  test.each([
    ['Kinesis', (orderId: string, n: number) => piped(kinesisRecord({ orderId }, n))],
    ['DynamoDB Streams', (orderId: string, n: number) => piped(streamRecord(n, orderId, 'PAID'))],
  ] as const)(
    '%s: in order, stops at the first failure and names it and every record after it by eventID; the retry runs from there',
    async (source, recordOf) => {
      const batch = ['o-1', 'o-2', 'o-3', 'o-4'].map((orderId, n) => recordOf(orderId, n + 1));
      let declining = true;
      const orderOf = (message: unknown) => (source === 'Kinesis' ? (message as Order) : { orderId: String((message as StreamChange).newImage?.orderId) });
      const { invoke, ran } = consumer((message) => {
        if (declining) fail('o-2')(orderOf(message));
      });
      expect(failuresOf(await invoke(batch as PipesBatchEvent))).toEqual(eventIds(...batch.slice(1)));
      expect(orderIds(ran.map(orderOf))).toEqual(['o-1', 'o-2']);
      declining = false;
      expect(failuresOf(await invoke(batch.slice(1) as PipesBatchEvent))).toEqual([]);
      expect(orderIds(ran.map(orderOf))).toEqual(['o-1', 'o-2', 'o-2', 'o-3', 'o-4']);
    },
  );

  test('a batch in which no record succeeded is thrown back whole (an AggregateError), as for an event source mapping', async () => {
    const { invoke } = consumer<Order>(fail('o-1'));
    await expect(invoke([sqsRecord({ orderId: 'o-1' })])).rejects.toThrow(AggregateError);
    await expect(invoke([piped(kinesisRecord({ orderId: 'o-1' }, 1))])).rejects.toThrow(AggregateError);
  });
});

describe('poison records', () => {
  test('SQS: reported by messageId with a log line, never run; the rest run', async () => {
    const poison = sqsRecord('{"orderId":');
    const good = sqsRecord({ orderId: 'o-1' });
    const { invoke, ran, lines } = consumer<Order>();
    expect(failuresOf(await invoke([poison, good]))).toEqual([poison.messageId]);
    expect(orderIds(ran)).toEqual(['o-1']);
    expect(lines.map((line) => JSON.parse(line))).toEqual([expect.objectContaining({ itemIdentifier: poison.messageId, reason: 'unparseable payload' })]);
  });

  test('Kinesis: the failure the shard stops at, named with what follows by eventID', async () => {
    const batch = [piped(kinesisRecord({ orderId: 'o-1' }, 1)), piped(kinesisRecord('not json', 2)), piped(kinesisRecord({ orderId: 'o-3' }, 3))];
    const { invoke, ran } = consumer<Order>();
    expect(failuresOf(await invoke(batch))).toEqual(eventIds(batch[1]!, batch[2]!));
    expect(orderIds(ran)).toEqual(['o-1']);
  });
});

test('SQS FIFO, whose order a pipe keeps per message group: in order per group; after a failure, the rest of its group is reported unprocessed', async () => {
  const a = ['a-1', 'a-2', 'a-3'].map((orderId) => sqsRecord({ orderId }, { groupId: 'a' }));
  const b = ['b-1', 'b-2'].map((orderId) => sqsRecord({ orderId }, { groupId: 'b' }));
  const { invoke, ran } = consumer<Order>(fail('a-2'), { concurrency: 1 });
  expect(failuresOf(await invoke([a[0]!, b[0]!, a[1]!, b[1]!, a[2]!]))).toEqual([a[1]!.messageId, a[2]!.messageId]);
  expect(orderIds(ran)).toEqual(['a-1', 'a-2', 'b-1', 'b-2']);
});

test("Kinesis records in the event source mapping's shape passed on as an array (`event.Records`, from code the types do not check) run as they are, failures named by eventID", async () => {
  const batch = [kinesisRecord({ orderId: 'o-1' }, 1), kinesisRecord('not json', 2), kinesisRecord({ orderId: 'o-3' }, 3)];
  const { invoke, ran } = consumer<Order>();
  expect(failuresOf(await invoke(batch as unknown as PipesBatchEvent))).toEqual(eventIds(batch[1]!, batch[2]!));
  expect(orderIds(ran)).toEqual(['o-1']);
});

test('an empty array (no record to lose) is answered with no failures, nothing run', async () => {
  const { invoke, ran } = consumer();
  expect(await invoke([])).toEqual({ batchItemFailures: [] });
  expect(ran).toEqual([]);
});

test('an array event runs inside middy as well', async () => {
  const { handler, ran } = consumer<Order>();
  const record = sqsRecord({ orderId: 'o-1' });
  expect(await middy(handler)([record], lambdaContext('order-consumer', 120_000))).toEqual({ batchItemFailures: [] });
  expect(orderIds(ran)).toEqual(['o-1']);
});

describe('arrays a handler cannot take, refused with a TypeError before any record runs or is claimed', () => {
  const reshaped =
    'idempotentBatch: item 0 of the EventBridge Pipes array is not an SQS, Kinesis or DynamoDB Streams record (it has no `eventSource`): ' +
    "a target input transformer or an enrichment reshaped it, and the id that reports the record's failure went with it. " +
    'Deliver the records as the source gives them (no target input transformer) and select the key with `key`, or read the payload with `parse`.';
  const parsed = (field: string) =>
    `idempotentBatch: record 0's \`${field}\` is already parsed, not as an EventBridge pipe delivers it: the pipe's target input transformer (such as \`<aws.pipes.event.json>\`) or a middleware (such as @middy/event-normalizer) decoded it. ` +
    'idempotentBatch parses each record itself, keeping 64-bit numbers exact: remove that transformer or middleware.';
  const missing = (field: string) =>
    `idempotentBatch: record 1 has no \`${field}\`, the identifier a batch item failure reports: expected the records an EventBridge pipe delivers.`;
  const sqs = sqsRecord({ orderId: 'o-1' });
  const kinesis = piped(kinesisRecord({ orderId: 'o-1' }, 1));
  const change = streamRecord(1, 'o-1', 'PAID');
  test.each([
    ['payloads an input transformer made (`<$.body>`)', [{ orderId: 'o-1' }, { orderId: 'o-2' }], reshaped],
    ['text an input transformer made', ['Hello, sender'], reshaped],
    [
      'records of another source (Amazon MQ)',
      [{ eventSource: 'aws:mq', messageID: 'ID:1', data: 'e30=' }],
      'idempotentBatch: unsupported event source "aws:mq": expected SQS, Kinesis or DynamoDB Streams records.',
    ],
    [
      'a mix of sources',
      [sqs, kinesis],
      'idempotentBatch: the batch mixes records of aws:sqs and aws:kinesis; an event source mapping or a pipe delivers records of one source.',
    ],
    ['an SQS record without its messageId', [sqs, { ...sqsRecord({ orderId: 'o-2' }), messageId: undefined }], missing('messageId')],
    ['a Kinesis record without its eventID', [kinesis, { ...piped(kinesisRecord({ orderId: 'o-2' }, 2)), eventID: '' }], missing('eventID')],
    ['a DynamoDB Streams record without its eventID', [change, { ...streamRecord(2, 'o-2', 'PAID'), eventID: undefined }], missing('eventID')],
    ['SQS bodies decoded by `<aws.pipes.event.json>`', [{ ...sqs, body: { orderId: 'o-1' } }], parsed('body')],
    ['Kinesis data decoded by `<aws.pipes.event.json>`', [{ ...kinesis, data: { orderId: 'o-1' } }], parsed('kinesis.data')],
    [
      'Kinesis data decoded to text (a JSON string holding JSON)',
      [{ ...kinesis, data: JSON.stringify({ orderId: 'o-1' }) }],
      "idempotentBatch: record 0's `kinesis.data` is text, not the base64 an EventBridge pipe delivers: the pipe's target input transformer (such as `<aws.pipes.event.json>`) or a middleware (such as @middy/event-normalizer) decoded it. " +
        'idempotentBatch parses each record itself, keeping 64-bit numbers exact: remove that transformer or middleware.',
    ],
    [
      'a Kinesis record without its data',
      [{ ...kinesis, data: undefined }],
      'idempotentBatch: record 0 has no `kinesis.data`, the payload it carries: expected the records an EventBridge pipe delivers.',
    ],
  ] as Array<[string, unknown[], string]>)('%s', async (_, event, message) => {
    const { invoke, ran } = consumer();
    await expect(invoke(event as PipesBatchEvent)).rejects.toThrow(new TypeError(message));
    expect(ran).toEqual([]);
    expect(await scanItems(client, tableName)).toEqual([]);
  });
});

test('a pipe stream record the handler reads is the one Lambda would deliver: `record.kinesis` and the other members, none lost', async () => {
  const seen: BatchRecord[] = [];
  const { invoke } = consumer((_, record) => void seen.push(record));
  const record = kinesisRecord({ orderId: 'o-1' }, 1);
  await invoke([piped(record)]);
  expect(seen).toEqual([record as PipedRecord]);
});
