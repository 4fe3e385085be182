/**
 * Without a `key`, the whole event is the key. An HTTP request event or an SQS batch differs on
 * every delivery (request id, time, trace header; receipt handle, receive count), so its retries
 * never match: the library says so once, in the log, instead of letting every duplicate run unseen.
 */
import { jest } from '@jest/globals';
import middy from '@middy/core';
import { httpIdempotency, idempotency, idempotentBatch, makeIdempotent } from '../../lib/index.js';
import { InMemoryStore, lambdaContext } from '../../lib/testing/index.js';
import { ANONYMOUS, type Api, httpEvent } from '../support/identity-events.js';
import { rejection } from '../support/rejections.js';

const logger = () => ({ warn: jest.fn<(message: string) => void>() });
const context = lambdaContext({ functionName: 'orders' });
const messagesOf = (log: ReturnType<typeof logger>) => log.warn.mock.calls.map(([line]) => JSON.parse(line) as { level: string; message: string });

const sqsEvent = (receiptHandle: string) => ({
  Records: [
    {
      messageId: 'm-1',
      receiptHandle,
      body: '{"orderId":"o-1"}',
      attributes: { ApproximateReceiveCount: receiptHandle === 'r-1' ? '1' : '2', SentTimestamp: '1764633600000' },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:orders',
      awsRegion: 'eu-west-1',
    },
  ],
});

const requestContext = (api: Api) => ANONYMOUS.find(([, candidate]) => candidate === api)?.[2] ?? {};

describe('a call without `key` whose event differs on every delivery', () => {
  test.each(['rest', 'http', 'url', 'alb'] as const)(
    '%s: the middleware warns once that duplicates are not detected, and names httpIdempotency',
    async (api) => {
      const log = logger();
      const handler = middy(async () => ({ statusCode: 201, body: '{}' })).use(idempotency({ store: new InMemoryStore(), logger: log }));
      const event = httpEvent(api, requestContext(api), { key: 'k-1' });
      await handler(event, context);
      await handler(event, context);
      await handler(httpEvent(api, requestContext(api), { key: 'k-2' }), context);
      const messages = messagesOf(log);
      expect(messages).toHaveLength(1);
      expect(messages[0]!.level).toBe('WARN');
      expect(messages[0]!.message).toMatch(
        /^lambda-idempotency: idempotency has no `key`, so the whole event is the key, and it is an HTTP request, .*use httpIdempotency.*Duplicates are not detected\.$/,
      );
    },
  );

  test('an SQS batch given to the middleware: two deliveries of one message both run, and the log says to use idempotentBatch', async () => {
    const log = logger();
    const run = jest.fn(async () => undefined);
    const handler = middy(run).use(idempotency({ store: new InMemoryStore(), logger: log }));
    await handler(sqsEvent('r-1'), context);
    await handler(sqsEvent('r-2'), context);
    expect(run).toHaveBeenCalledTimes(2);
    expect(messagesOf(log)).toEqual([
      {
        level: 'WARN',
        message: expect.stringContaining('an SQS batch, whose receipt handles differ on every delivery: use idempotentBatch'),
      },
    ]);
  });

  test.each([
    [
      'ActiveMQ',
      (redelivered: boolean) => ({
        eventSource: 'aws:mq',
        eventSourceArn: 'arn:aws:mq:eu-west-1:123456789012:broker:orders:b-1',
        messages: [{ messageID: 'ID:m-1', data: 'e30=', redelivered }],
      }),
    ],
    [
      'RabbitMQ',
      (redelivered: boolean) => ({
        eventSource: 'aws:rmq',
        eventSourceArn: 'arn:aws:mq:eu-west-1:123456789012:broker:orders:b-1',
        rmqMessagesByQueue: { 'orders::/': [{ basicProperties: { messageId: 'm-1' }, redelivered, data: 'e30=' }] },
      }),
    ],
  ])('an Amazon MQ (%s) batch given to the middleware: its redelivery runs again, and the log says to key the work of each message', async (_, mqEvent) => {
    const log = logger();
    const run = jest.fn(async () => undefined);
    const handler = middy(run).use(idempotency({ store: new InMemoryStore(), logger: log }));
    await handler(mqEvent(false), context);
    await handler(mqEvent(true), context);
    expect(run).toHaveBeenCalledTimes(2);
    expect(messagesOf(log)).toEqual([
      {
        level: 'WARN',
        message: expect.stringContaining('an Amazon MQ batch, whose messages are marked redelivered on every retry: make the work of each message idempotent'),
      },
    ]);
  });

  test('an SQS batch an EventBridge pipe delivers (a bare array of messages), given to the middleware: two deliveries both run, and the log says to use idempotentBatch', async () => {
    const log = logger();
    const run = jest.fn(async () => undefined);
    const handler = middy(run).use(idempotency({ store: new InMemoryStore(), logger: log }));
    await handler(sqsEvent('r-1').Records, context);
    await handler(sqsEvent('r-2').Records, context);
    expect(run).toHaveBeenCalledTimes(2);
    expect(messagesOf(log)).toEqual([
      {
        level: 'WARN',
        message: expect.stringContaining('an SQS batch, whose receipt handles differ on every delivery: use idempotentBatch'),
      },
    ]);
  });

  test('an API Gateway WebSocket message or a VPC Lattice request: the warning says to select a key, never httpIdempotency, which refuses such an event', async () => {
    const websocket = {
      requestContext: {
        routeKey: 'placeOrder',
        eventType: 'MESSAGE',
        messageId: 'Wm9vMQ=',
        connectionId: 'Zm9vMQ=',
        requestId: 'r-1',
        requestTimeEpoch: 1_764_633_600_000,
        apiId: 'a1b2c3',
        stage: 'prod',
      },
      body: '{"orderId":"o-1"}',
      isBase64Encoded: false,
    };
    const lattice = {
      version: '2.0',
      path: '/orders',
      method: 'POST',
      headers: { 'idempotency-key': ['k-1'] },
      body: '{"orderId":"o-1"}',
      isBase64Encoded: false,
      requestContext: {
        serviceNetworkArn: 'arn:aws:vpc-lattice:eu-west-1:123456789012:servicenetwork/sn-1',
        region: 'eu-west-1',
        timeEpoch: '1764633600000000',
      },
    };
    for (const event of [websocket, lattice]) {
      const log = logger();
      await makeIdempotent(async (_event: unknown) => 'ok', { store: new InMemoryStore(), name: 'orders', logger: log })(event);
      const [warning] = messagesOf(log);
      expect(warning!.message).toMatch(/^lambda-idempotency: makeIdempotent has no `key`, .*select a key.*Duplicates are not detected\.$/);
      expect(warning!.message).not.toMatch(/httpIdempotency/);
      const http = middy(async () => ({ statusCode: 200 })).use(httpIdempotency({ store: new InMemoryStore(), name: 'orders' }));
      await expect(http(event as never, context)).rejects.toThrow(TypeError);
    }
  });

  test('makeIdempotent given an HTTP event warns the same way, naming itself', async () => {
    const log = logger();
    const once = makeIdempotent(async (_event: unknown) => 'ok', { store: new InMemoryStore(), name: 'orders', logger: log });
    await once(httpEvent('http', requestContext('http')));
    expect(messagesOf(log)).toEqual([{ level: 'WARN', message: expect.stringMatching(/^lambda-idempotency: makeIdempotent has no `key`/) }]);
  });

  test('one SQS message of a batch, given to makeIdempotent: its two deliveries both run, and the log says to select a key', async () => {
    const log = logger();
    const run = jest.fn(async (_message: unknown) => undefined);
    const once = makeIdempotent(run, { store: new InMemoryStore(), name: 'orders', logger: log });
    await once(sqsEvent('r-1').Records[0]);
    await once(sqsEvent('r-2').Records[0]);
    expect(run).toHaveBeenCalledTimes(2);
    expect(messagesOf(log)).toEqual([
      {
        level: 'WARN',
        message: expect.stringContaining('an SQS message, whose receipt handle and receive count differ on every delivery: select a key'),
      },
    ]);
  });

  test('an EventBridge event replayed from an archive runs again, and the log says to select a key from its detail', async () => {
    const log = logger();
    const run = jest.fn(async () => undefined);
    const handler = middy(run).use(idempotency({ store: new InMemoryStore(), logger: log }));
    const event = { version: '0', id: 'e-1', 'detail-type': 'OrderPlaced', source: 'shop', time: '2026-12-01T00:00:00Z', detail: { orderId: 'o-1' } };
    await handler(event, context);
    await handler({ ...event, 'replay-name': 'recover-orders' }, context);
    expect(run).toHaveBeenCalledTimes(2);
    expect(messagesOf(log)).toEqual([
      {
        level: 'WARN',
        message: expect.stringMatching(
          /an EventBridge event replayed from an archive, .*`replay-name`.*select a key from its `detail`.*Duplicates are not detected\.$/,
        ),
      },
    ]);
  });

  test('the warning comes with the first such event, after other events', async () => {
    const log = logger();
    const handler = middy(async () => 'ok').use(idempotency({ store: new InMemoryStore(), logger: log }));
    await handler({ warmup: true }, context);
    expect(log.warn).not.toHaveBeenCalled();
    await handler(sqsEvent('r-1'), context);
    expect(log.warn).toHaveBeenCalledTimes(1);
  });

  test('an event hashed whole that throws when read (a getter, a proxy trap) is INVALID_KEY with the error as its cause, not that error raw', async () => {
    const failure = new Error('getter failed');
    const throwing = {
      get requestContext(): unknown {
        throw failure;
      },
    };
    const once = makeIdempotent(async (_event: unknown) => 'ran', { store: new InMemoryStore(), name: 'orders', logger: logger() });
    const error = await rejection(once(throwing));
    expect(error.code).toBe('INVALID_KEY');
    expect(error.message).toMatch(/Reading the idempotency key threw/);
    expect(error.cause).toBe(failure);
  });

  test('a logger that throws does not fail the call', async () => {
    const handler = middy(async () => 'ran').use(
      idempotency({
        store: new InMemoryStore(),
        logger: {
          warn: () => {
            throw new Error('log sink down');
          },
        },
      }),
    );
    expect(await handler(sqsEvent('r-1'), context)).toBe('ran');
  });
});

describe('no warning where the key is not the whole changing event', () => {
  const unchanged: ReadonlyArray<readonly [string, unknown]> = [
    [
      'an EventBridge event',
      { version: '0', id: 'e-1', 'detail-type': 'OrderPlaced', source: 'shop', time: '2026-12-01T00:00:00Z', detail: { orderId: 'o-1' } },
    ],
    ['an SNS event', { Records: [{ EventSource: 'aws:sns', Sns: { MessageId: 'n-1', Message: '{}' } }] }],
    ['an S3 event', { Records: [{ eventSource: 'aws:s3', s3: { object: { key: 'a.txt', sequencer: '0A' } } }] }],
    ['a Kinesis batch', { Records: [{ eventSource: 'aws:kinesis', kinesis: { sequenceNumber: '1', data: 'e30=' } }] }],
    ['a direct invocation', { paymentId: 'p-1', amount: 100 }],
    [
      "an asynchronous invocation's record sent to a Lambda destination (its requestContext names the function, not an HTTP request)",
      {
        version: '1.0',
        timestamp: '2026-12-01T00:00:00.000Z',
        requestContext: {
          requestId: 'r-1',
          functionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:orders:$LATEST',
          condition: 'RetriesExhausted',
          approximateInvokeCount: 3,
        },
        requestPayload: { orderId: 'o-1' },
        responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
        responsePayload: { errorMessage: 'failed' },
      },
    ],
    ['an empty Records list', { Records: [] }],
    ['an event whose requestContext is null', { requestContext: null, orderId: 'o-1' }],
    ['a string', 'p-1'],
  ];

  test.each(unchanged)('%s, hashed whole', async (_name, event) => {
    const log = logger();
    await middy(async () => 'ok').use(idempotency({ store: new InMemoryStore(), logger: log }))(event, context);
    expect(log.warn).not.toHaveBeenCalled();
  });

  test('records a Lambda destination gets for two deliveries of one request differ (timestamp, request id): hashed whole both run, keyed on the requestPayload once', async () => {
    const record = (requestId: string, timestamp: string) => ({
      version: '1.0',
      timestamp,
      requestContext: {
        requestId,
        functionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:orders:$LATEST',
        condition: 'Success',
        approximateInvokeCount: 1,
      },
      requestPayload: { orderId: 'o-1' },
      responseContext: { statusCode: 200, executedVersion: '$LATEST' },
      responsePayload: { shipped: true },
    });
    const first = record('r-1', '2026-12-01T00:00:00.000Z');
    const second = record('r-2', '2026-12-01T00:00:03.000Z');
    for (const [key, runs] of [
      [undefined, 2],
      [(input: typeof first) => input.requestPayload, 1],
    ] as const) {
      const run = jest.fn(async () => 'notified');
      const handler = middy(run).use(idempotency({ store: new InMemoryStore(), logger: logger(), ...(key && { key }) }));
      await handler(first, context);
      await handler(first, context);
      await handler(second, context);
      expect(run).toHaveBeenCalledTimes(runs);
    }
  });

  test('an HTTP event with a `key` selector, httpIdempotency, and idempotentBatch on an SQS batch', async () => {
    const log = logger();
    const store = new InMemoryStore();
    const event = httpEvent('http', requestContext('http'), { key: 'k-1' });
    await middy(async () => 'ok').use(idempotency({ store, logger: log, key: (input: typeof event) => input.body }))(event, context);
    await middy(async () => ({ statusCode: 201, body: '{}' })).use(httpIdempotency({ store, logger: log }))(event, context);
    await idempotentBatch(async () => 'ok', { store, logger: log })(sqsEvent('r-1') as never, context);
    expect(log.warn).not.toHaveBeenCalled();
  });
});
