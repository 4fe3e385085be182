/**
 * `idempotentBatch` inside middy: wrapped as a plain handler, and behind `@middy/event-normalizer`
 * (see `batch.test.ts` for everything the handler does on its own): apart, so that only these tests
 * run again on middy 6.
 */
import middy from '@middy/core';
import eventNormalizer from '@middy/event-normalizer';
import type { Context } from 'aws-lambda';
import { type BatchEvent, type BatchResponse, type DynamoDBStore, idempotentBatch, type StreamChange } from '../../lib/index.js';
import { manualClock, lambdaContext as timedContext } from '../../lib/testing/index.js';
import { consumerClock, consumerContext, failuresOf, ids, quiet, useConsumerTables } from '../support/batch-consumer.js';
import { kinesisRecord, kinesisSequence, type Order, redelivered, SENT, sqsEvent, sqsRecord, streamRecord } from '../support/batch-events.js';
import { scanItems } from '../support/dynamodb.js';
import { gate } from '../support/gate.js';

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

describe("middy's early timeout (`timeoutEarlyInMillis`)", () => {
  /**
   * The batch wrapped in middy, which answers the invocation with its `TimeoutError` once the time
   * left reaches `timeoutEarlyInMillis`: `o-1` runs until the test opens `first`, after that answer.
   * `settled` is what the batch itself answers, later, which no one reads.
   */
  function earlyTimeout() {
    const time = manualClock(SENT);
    const started: string[] = [];
    const first = gate();
    const batchHandler = idempotentBatch<Order>(
      async (order) => {
        started.push(order.orderId);
        if (order.orderId === 'o-1') await first.promise;
      },
      { store, now: time.now, logger: quiet(), concurrency: 1 },
    );
    // Called as middy calls it, with its `{ signal }`, which the handler's type does not name (it stays an `SQSHandler`).
    const withSignal = batchHandler as (event: BatchEvent, context: Context, options: { signal: AbortSignal }) => Promise<BatchResponse>;
    let settled: Promise<BatchResponse> | undefined;
    // The context reads 1 s left, the early timeout is 1 s: middy's timer fires at once, while o-1 runs.
    const handler = middy((event: BatchEvent, context: Context, options: { signal: AbortSignal }) => (settled = withSignal(event, context, options)), {
      timeoutEarlyInMillis: 1_000,
    });
    const invoke = (event: BatchEvent) => handler(event, timedContext({ functionName: 'order-consumer', remainingMillis: 1_000, now: time.now }));
    return { time, started, first, invoke, settled: () => settled };
  }

  test.each([
    [
      'SQS',
      () => {
        const records = [1, 2, 3].map((n) => sqsRecord({ orderId: `o-${n}` }));
        // The records left unstarted are reported failed; SQS redelivers each of them.
        return { event: sqsEvent(records), unstarted: ids(...records.slice(1)), redelivery: sqsEvent(records.map(redelivered)) };
      },
    ],
    [
      'Kinesis',
      () => {
        const event = { Records: [1, 2, 3].map((n) => kinesisRecord({ orderId: `o-${n}` }, n)) };
        // A stream resumes from the first record left unstarted: the batch reports that one.
        return { event, unstarted: [kinesisSequence(2)], redelivery: event };
      },
    ],
  ] as const)(
    '%s: once middy has answered with its TimeoutError, no further record starts (the invocation is over); the redelivery runs them, each once',
    async (_, delivery) => {
      const batch = earlyTimeout();
      const { event, unstarted, redelivery } = delivery();
      await expect(batch.invoke(event)).rejects.toMatchObject({ name: 'TimeoutError' });
      batch.first.open();
      const answer = await batch.settled();
      // Started after the invocation had answered, a record would run in an environment Lambda freezes
      // and thaws past its lease (the deadline), beside the redelivery that took its key over.
      expect(batch.started).toEqual(['o-1']);
      expect(failuresOf(answer!)).toEqual(unstarted);
      batch.time.advance(60_000);
      const again = middy(idempotentBatch<Order>((order) => void batch.started.push(order.orderId), { store, now: batch.time.now, logger: quiet() }));
      expect(failuresOf(await again(redelivery, consumerContext()))).toEqual([]);
      expect(batch.started.sort()).toEqual(['o-1', 'o-2', 'o-3']);
    },
  );
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

  test.each([
    ['a JSON string holding JSON (a producer that encoded twice)', JSON.stringify(JSON.stringify({ orderId: 'o-1' }))],
    ['a JSON number', '-12.5'],
    ['text that is not JSON', 'order o-3 paid'],
    // Every character a base64 one: its length (not a multiple of 4) is what tells it from base64.
    ['a JSON number written in digits only', '12345'],
  ])('Kinesis: data the normalizer decoded to text (%s) is refused as well, never taken for base64 and decoded again', async (_, text) => {
    const calls: unknown[] = [];
    const logger = quiet();
    const handler = middy(idempotentBatch<unknown>((message) => void calls.push(message), { store, now: clock, logger })).use(eventNormalizer());
    await expect(handler({ Records: [kinesisRecord(text, 1), kinesisRecord(text, 2)] } as BatchEvent, consumerContext())).rejects.toThrow(
      new TypeError(
        "idempotentBatch: record 0's `kinesis.data` is text, not the base64 Lambda delivers: a middleware (such as @middy/event-normalizer) ran first. " +
          'idempotentBatch parses each record itself, keeping 64-bit numbers exact: remove that middleware from this handler.',
      ),
    );
    expect(calls).toEqual([]);
    expect(logger.lines).toEqual([]);
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
