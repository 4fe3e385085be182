/**
 * `idempotentBatch` inside middy: wrapped as a plain handler, and behind `@middy/event-normalizer`
 * (see `batch.test.ts` for everything the handler does on its own): apart, so that only these tests
 * run again on middy 6.
 */
import middy from '@middy/core';
import eventNormalizer from '@middy/event-normalizer';
import { type BatchEvent, type DynamoDBStore, idempotentBatch, type StreamChange } from '../../lib/index.js';
import { consumerClock, consumerContext, failuresOf, ids, quiet, useConsumerTables } from '../support/batch-consumer.js';
import { kinesisRecord, type Order, redelivered, sqsEvent, sqsRecord, streamRecord } from '../support/batch-events.js';
import { scanItems } from '../support/dynamodb.js';

let tableName: string;
let store: DynamoDBStore;
const client = useConsumerTables('batch-middy', (fresh) => ({ tableName, store } = fresh));
const clock = consumerClock;

const records = () => scanItems(client, tableName);

describe('SQS standard queue', () => {
  test('works wrapped in middy', async () => {
    const effects: string[] = [];
    const failing = new Set(['o-2']);
    const logger = quiet();
    const handler = middy(
      idempotentBatch<Order>(
        (order) => {
          if (failing.delete(order.orderId)) throw new Error('downstream unavailable');
          effects.push(order.orderId);
        },
        { store, now: clock, logger },
      ),
    );
    const batch = [sqsRecord({ orderId: 'o-1' }), sqsRecord({ orderId: 'o-2' }), sqsRecord({ orderId: 'o-1' })];
    expect(failuresOf(await handler(sqsEvent(batch), consumerContext()))).toEqual(ids(batch[1]!));
    expect(logger.lines.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({ itemIdentifier: batch[1]!.messageId, reason: 'the record function threw (Error)' }),
    ]);
    expect(failuresOf(await handler(sqsEvent(batch.map(redelivered)), consumerContext()))).toEqual([]);
    expect(effects).toEqual(['o-1', 'o-2']);
  });
});

describe('records another middleware has already parsed (@middy/event-normalizer before the handler)', () => {
  const normalized = (handler: ReturnType<typeof idempotentBatch<Order>>) => middy(handler).use(eventNormalizer());
  test.each([
    ['SQS', () => sqsEvent([sqsRecord({ orderId: 'o-1' }), sqsRecord({ orderId: 'o-2' })]), 'body'],
    ['Kinesis', () => ({ Records: [kinesisRecord({ orderId: 'o-1' }, 1), kinesisRecord({ orderId: 'o-2' }, 2)] }), 'kinesis.data'],
    ['DynamoDB Streams', () => ({ Records: [streamRecord(1, 'o-1', 'PAID'), streamRecord(2, 'o-2', 'PAID')] }), 'dynamodb.Keys'],
  ] as const)('%s: the batch is refused with a TypeError naming the parsed field, before any record runs or is claimed', async (_, eventOf, field) => {
    const calls: unknown[] = [];
    const handler = normalized(idempotentBatch<Order>((order) => void calls.push(order), { store, now: clock, logger: quiet() }));
    await expect(handler(eventOf() as BatchEvent, consumerContext())).rejects.toThrow(
      new TypeError(
        `idempotentBatch: record 0's \`${field}\` is already parsed, not as Lambda delivers it: a middleware (such as @middy/event-normalizer) ran first. ` +
          'idempotentBatch parses each record itself, keeping 64-bit numbers exact: remove that middleware from this handler.',
      ),
    );
    expect(calls).toEqual([]);
    expect(await records()).toEqual([]);
  });

  test('without it, the same events run (the check reads what the normalizer changes, nothing else)', async () => {
    const calls: unknown[] = [];
    const handler = middy(idempotentBatch<Order>((order) => void calls.push(order), { store, now: clock, logger: quiet() }));
    expect(failuresOf(await handler(sqsEvent([sqsRecord({ orderId: 'o-1' })]), consumerContext()))).toEqual([]);
    expect(failuresOf(await handler({ Records: [kinesisRecord({ orderId: 'o-2' }, 1)] } as BatchEvent, consumerContext()))).toEqual([]);
    expect(failuresOf(await handler({ Records: [streamRecord(1, 'o-3', 'PAID')] } as BatchEvent, consumerContext()))).toEqual([]);
    expect(calls).toHaveLength(3);
  });

  test('a stream record whose images hold a map attribute (`{ M: … }`) and an empty image is still read as delivered', async () => {
    const record = streamRecord(1, 'o-4', 'PAID');
    const withMap = {
      ...record,
      dynamodb: { ...record.dynamodb, NewImage: { ...record.dynamodb!.NewImage, address: { M: { city: { S: 'Lyon' } } } }, OldImage: {} },
    };
    const seen: unknown[] = [];
    const handler = idempotentBatch<StreamChange>((change) => void seen.push(change.newImage?.address), { store, now: clock, logger: quiet() });
    expect(failuresOf(await handler({ Records: [withMap] } as BatchEvent, consumerContext()))).toEqual([]);
    expect(seen).toEqual([{ city: 'Lyon' }]);
  });
});

describe('the `parse` option: what it returns and throws', () => {
  /** A batch handler behind @middy/event-normalizer whose `parse` takes the body it parsed. */
  const afterNormalizer = <T>(recordHandler: (message: T) => void, concurrency?: number) =>
    middy(
      idempotentBatch<T>(recordHandler, {
        store,
        now: clock,
        logger: quiet(),
        parse: (record) => (record as unknown as { body: T }).body,
        ...(concurrency === undefined ? {} : { concurrency }),
      }),
    ).use(eventNormalizer());

  test('after @middy/event-normalizer it reads the parsed body, where the built-in parsing refuses the batch', async () => {
    const orders: Order[] = [];
    const handler = afterNormalizer<Order>((order) => void orders.push(order));
    const event = sqsEvent([sqsRecord({ orderId: 'o-1' }), sqsRecord({ orderId: 'o-1' }), sqsRecord({ orderId: 'o-2' })]);
    expect(failuresOf(await handler(event, consumerContext()))).toEqual([]);
    // A standard queue runs its records concurrently: the order of the calls is not the batch's.
    expect(orders.map((order) => order.orderId).sort()).toEqual(['o-1', 'o-2']);
  });

  test('after @middy/event-normalizer, numbers past 2^53 arrive rounded (two accounts that differ there run once) and JSON it cannot parse as its text', async () => {
    const seen: unknown[] = [];
    const handler = afterNormalizer<unknown>((message) => void seen.push(message), 1);
    const bodies = ['{"account":12345678901234567891}', '{"account":12345678901234567892}', '{"orderId":'];
    expect(failuresOf(await handler(sqsEvent(bodies.map((body) => sqsRecord(body))), consumerContext()))).toEqual([]);
    expect(seen).toEqual([{ account: 12345678901234567000 }, '{"orderId":']);
  });
});
