/**
 * The event types of `idempotentBatch`, checked by `tsc --noEmit` (part of `npm test`): its handler
 * takes an event source mapping's event and an EventBridge pipe's array, and `BatchEvent` stays
 * the mapping's event, so code that reads `event.Records` keeps compiling. A line that stops
 * compiling, or an `@ts-expect-error` that stops erring, fails the type-check.
 */
import type {
  Context,
  DynamoDBStreamEvent,
  DynamoDBStreamHandler,
  KinesisStreamEvent,
  KinesisStreamHandler,
  KinesisStreamTumblingWindowEvent,
  KinesisStreamTumblingWindowHandler,
  SQSEvent,
  SQSHandler,
} from 'aws-lambda';
import { type BatchEvent, type BatchResponse, idempotentBatch, type PipesBatchEvent, type PipesKinesisRecord } from '../../lib/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { sqsEvent, sqsRecord } from '../support/batch-events.js';
import { lambdaContext } from '../support/lambda.js';

const handler = idempotentBatch(() => undefined, { store: new InMemoryStore(), name: 'orders' });

/** Never called: what its body's calls take and give is what tsc checks. */
function compileOnly(context: Context, events: [SQSEvent, KinesisStreamEvent, DynamoDBStreamEvent, PipesBatchEvent], flat: PipesKinesisRecord) {
  const [sqs, kinesis, streams, piped] = events;
  const answers: Array<Promise<BatchResponse>> = [handler(sqs, context), handler(kinesis, context), handler(streams, context), handler(piped, context)];
  void handler([flat, flat], context);
  void handler([sqs.Records[0]!], context);
  // @ts-expect-error A Kinesis record of an event source mapping is no record of a pipe's array.
  void handler([kinesis.Records[0]!], context);
  // @ts-expect-error Nor is any other array.
  void handler([{ orderId: 'o-1' }], context);
  // A wrapper written against BatchEvent (the tumbling-window example of docs/batch.md) still compiles.
  const counting = async (event: BatchEvent, ctx: Context) => ({ ...(await handler(event, ctx)), count: event.Records.length });
  // The handler itself, its answer included, is the handler of each event source mapping where one is expected.
  const asSqsHandler: SQSHandler = handler;
  const asKinesisHandler: KinesisStreamHandler = handler;
  const asStreamsHandler: DynamoDBStreamHandler = handler;
  // A tumbling window's answer always carries `state` (Lambda fails an invocation whose answer has none),
  // so the handler is a tumbling window's handler too, and its answer's state needs no check.
  const asWindowHandler: KinesisStreamTumblingWindowHandler = handler;
  const windowState = async (event: KinesisStreamTumblingWindowEvent): Promise<{ readonly [name: string]: unknown }> => (await handler(event, context)).state;
  // @ts-expect-error An event without a window gets no state.
  const noWindowState = async (event: KinesisStreamEvent): Promise<{ readonly [name: string]: unknown }> => (await handler(event, context)).state;
  return { answers, counting, asSqsHandler, asKinesisHandler, asStreamsHandler, asWindowHandler, windowState, noWindowState };
}

void compileOnly;

interface Order {
  readonly orderId: string;
  readonly cancelled?: boolean;
}
declare function ship(order: Order): Promise<{ readonly trackingId: string }>;
// A record function that returns at once for some messages and a promise of another type for others.
const shipping = idempotentBatch((order: Order) => (order.cancelled ? 'skipped' : ship(order)), { store: new InMemoryStore(), key: (order) => order.orderId });
// The result type given as a type argument is still checked.
// @ts-expect-error A record function whose result is not the one given.
idempotentBatch<Order, number>(async (order) => order.orderId, { store: new InMemoryStore() });

test('an empty array and an empty Records array are both empty batches; a record answered at once succeeds', async () => {
  const context = lambdaContext('orders');
  expect(await handler([], context)).toEqual({ batchItemFailures: [] });
  expect(await handler({ Records: [] }, context)).toEqual({ batchItemFailures: [] });
  expect(await shipping(sqsEvent([sqsRecord(JSON.stringify({ orderId: 'o-1', cancelled: true }))]), context)).toEqual({ batchItemFailures: [] });
});
