/**
 * `idempotency()` in an HTTP handler behind `@middy/http-error-handler`, the usual middy stack: its
 * rejections carry the status `httpIdempotency` answers them with, so a duplicate still in progress
 * is a 409 with `Retry-After`, not a 500. Real middy (6 and 7), real error handler, DynamoDB Local.
 */
import { randomUUID } from 'node:crypto';
import middy from '@middy/core';
import httpCors from '@middy/http-cors';
import httpErrorHandler from '@middy/http-error-handler';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, SQSEvent } from 'aws-lambda';
import { DynamoDBStore } from '../../lib/dynamodb-store.js';
import { httpIdempotency, IdempotencyError, idempotency, makeIdempotent, transaction } from '../../lib/index.js';
import { testClient, unreachableClient, useFreshTable } from '../support/dynamodb.js';
import { Turnstile } from '../support/gate.js';
import { httpEvent } from '../support/identity-events.js';
import { lambdaContext } from '../support/lambda.js';
import { rejection } from '../support/rejections.js';

const { tableName, store } = useFreshTable({ prefix: 'error-handler' });

type Response = APIGatewayProxyStructuredResultV2;
interface Order {
  readonly id: string;
  readonly amount: number;
}
const order = (event: APIGatewayProxyEventV2): Order => JSON.parse(event.body ?? '{}') as Order;
const request = (body: Order) => httpEvent('url', {}, { body: JSON.stringify(body) }) as APIGatewayProxyEventV2;

/** A handler waiting at its turnstile, made idempotent by order id (amount fingerprinted), behind http-error-handler. */
function orders(options: { readonly store?: DynamoDBStore; readonly errorHandlerFirst?: boolean } = {}) {
  const turnstile = new Turnstile<Response>();
  const handler = middy<APIGatewayProxyEventV2, Response>(async () => turnstile.enter());
  const idempotent = idempotency<APIGatewayProxyEventV2>({
    store: options.store ?? store,
    singleFlight: false,
    key: (event) => order(event).id,
    fingerprint: (event) => order(event).amount,
  });
  if (options.errorHandlerFirst) handler.use(httpErrorHandler({ logger: false })).use(idempotent);
  else handler.use(idempotent).use(httpErrorHandler({ logger: false }));
  return { turnstile, call: (event: APIGatewayProxyEventV2, name: string) => handler(event, lambdaContext(name)) as Promise<Response> };
}

test.each([
  ['idempotency() first', false],
  ['http-error-handler first', true],
])(
  '%s: a duplicate still in progress is a 409 with Retry-After, whose body names neither the key, the record nor the function',
  async (_, errorHandlerFirst) => {
    const { turnstile, call } = orders({ errorHandlerFirst });
    const id = randomUUID();
    const name = `orders-${randomUUID()}`;
    const first = call(request({ id, amount: 10 }), name);
    const running = await turnstile.next();
    const duplicate = await call(request({ id, amount: 10 }), name);
    expect(duplicate.statusCode).toBe(409);
    const retryAfter = Number(duplicate.headers?.['Retry-After']);
    expect(retryAfter >= 1 && retryAfter <= 10).toBe(true); // the holder's lease: 10 s left of its invocation
    expect(duplicate.body).toMatch(/^IN_PROGRESS: /);
    expect([id, name, tableName, '#'].filter((internal) => String(duplicate.body).includes(internal))).toEqual([]);
    running.open({ statusCode: 201, body: 'created' });
    expect(await first).toMatchObject({ statusCode: 201 });
    expect(turnstile.count).toBe(1);
  },
);

test("with http-cors, a browser on another origin can read the 409's Retry-After once it is listed in exposeHeaders", async () => {
  const turnstile = new Turnstile<Response>();
  const origin = 'https://shop.example';
  const handler = middy<APIGatewayProxyEventV2, Response>(async () => turnstile.enter())
    .use(idempotency<APIGatewayProxyEventV2>({ store, singleFlight: false, key: (event) => order(event).id }))
    .use(httpCors({ origins: [origin], exposeHeaders: 'Retry-After' }))
    .use(httpErrorHandler({ logger: false }));
  const sent = request({ id: randomUUID(), amount: 1 });
  const event = { ...sent, headers: { ...sent.headers, origin } };
  const first = handler(event, lambdaContext('cors-orders'));
  const running = await turnstile.next();
  const duplicate = (await handler(event, lambdaContext('cors-orders'))) as Response;
  expect(duplicate).toMatchObject({
    statusCode: 409,
    headers: { 'Access-Control-Allow-Origin': origin, 'Access-Control-Expose-Headers': 'Retry-After', 'Retry-After': expect.any(String) },
  });
  running.open({ statusCode: 201 });
  await first;
});

test('the same key with another payload is a 422; a missing key a 400', async () => {
  const { turnstile, call } = orders();
  const id = randomUUID();
  const name = `orders-${randomUUID()}`;
  const first = call(request({ id, amount: 31_415 }), name);
  (await turnstile.next()).open({ statusCode: 201, body: 'created' });
  await first;
  const mismatch = await call(request({ id, amount: 27_182 }), name);
  expect([mismatch.statusCode, mismatch.headers?.['Retry-After']]).toEqual([422, undefined]);
  expect(mismatch.body).toMatch(/^PAYLOAD_MISMATCH: /);
  // Neither payload, nor the key, the record, the table or the function.
  const internals = [id, name, tableName, '#', '31415', '27182'];
  expect(internals.filter((internal) => String(mismatch.body).includes(internal))).toEqual([]);
  const missing = await call(httpEvent('url', {}, { body: JSON.stringify({ amount: 31_415 }) }) as APIGatewayProxyEventV2, name);
  expect(missing.statusCode).toBe(400);
  expect(missing.body).toMatch(/^KEY_MISSING: /);
  expect(internals.filter((internal) => String(missing.body).includes(internal))).toEqual([]);
  expect(turnstile.count).toBe(1);
});

test("a store failure is the error handler's own 500, as before: the store's message stays private", async () => {
  const unreachable = await unreachableClient();
  try {
    const { turnstile, call } = orders({ store: new DynamoDBStore({ tableName, client: unreachable }) });
    const answer = await call(request({ id: randomUUID(), amount: 10 }), 'orders');
    expect(answer.statusCode).toBe(500);
    expect(answer.body ?? '').toBe('');
    expect(answer.headers?.['Retry-After']).toBeUndefined();
    expect(turnstile.count).toBe(0);
  } finally {
    unreachable.destroy();
  }
});

test("a commit that never reaches DynamoDB is the error handler's own 500 too: COMMIT_FAILED's message stays private, and a retry runs", async () => {
  // A client of the run's DynamoDB Local whose first transaction is lost on the way, as a reset connection loses it.
  const client = testClient();
  let lost = 0;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'TransactWriteItemsCommand' && lost++ === 0) throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      return next(args);
    },
    { step: 'initialize', name: 'lostCommit' },
  );
  try {
    const id = randomUUID();
    let runs = 0;
    const handler = middy<APIGatewayProxyEventV2, Response>(async (event: APIGatewayProxyEventV2) => {
      runs++;
      // The records' table stands in for a business table.
      transaction().put({ TableName: tableName, Item: { id: `order-${order(event).id}` } });
      return { statusCode: 201 };
    })
      .use(idempotency<APIGatewayProxyEventV2>({ store: new DynamoDBStore({ tableName, client }), key: (event) => order(event).id }))
      .use(httpErrorHandler({ logger: false }));
    const failed = await handler(request({ id, amount: 10 }), lambdaContext('orders'));
    expect(lost).toBe(1);
    expect(failed).toEqual({ statusCode: 500, headers: {} });
    // The commit was lost before DynamoDB saw it, and the record released: the retry runs and commits.
    expect(await handler(request({ id, amount: 10 }), lambdaContext('orders'))).toEqual({ statusCode: 201 });
    expect(runs).toBe(2);
  } finally {
    client.destroy();
  }
});

test('an SQS handler with idempotency() and no error handler still fails with the IdempotencyError itself', async () => {
  const turnstile = new Turnstile<string>();
  const handler = middy<SQSEvent, string>(async () => turnstile.enter()).use(
    idempotency<SQSEvent>({ store, singleFlight: false, key: (event) => event.Records[0]!.messageId }),
  );
  const event = { Records: [{ messageId: randomUUID(), body: '{}' }] } as unknown as SQSEvent;
  const first = handler(event, lambdaContext('sqs-orders'));
  const running = await turnstile.next();
  const duplicate = await rejection(handler(event, lambdaContext('sqs-orders')));
  expect(duplicate).toBeInstanceOf(IdempotencyError);
  expect(duplicate.code).toBe('IN_PROGRESS');
  running.open('done');
  expect(await first).toBe('done');
});

describe('with httpIdempotency, in either order', () => {
  const stacks = [
    ['httpIdempotency first', true],
    ['http-error-handler first', false],
  ] as const;

  /** The handler `run` made idempotent by Idempotency-Key, with http-error-handler in the given order. */
  function httpStack<T>(first: boolean, run: () => Promise<T>) {
    const handler = middy<APIGatewayProxyEventV2, T>(run);
    const idempotent = httpIdempotency({ store, singleFlight: false, maxRetryAfterSeconds: 5 });
    if (first) handler.use(idempotent).use(httpErrorHandler({ logger: false }));
    else handler.use(httpErrorHandler({ logger: false })).use(idempotent);
    return (event: APIGatewayProxyEventV2) => handler(event, lambdaContext('http-orders')) as Promise<Response>;
  }

  test.each(stacks)("%s: httpIdempotency's own 409 is unchanged: problem+json, Retry-After capped by maxRetryAfterSeconds", async (_, first) => {
    const turnstile = new Turnstile<Response>();
    const call = httpStack(first, () => turnstile.enter());
    const event = httpEvent('url', {}, { key: randomUUID() }) as APIGatewayProxyEventV2;
    const original = call(event);
    const running = await turnstile.next();
    const duplicate = await call(event);
    expect(duplicate).toMatchObject({ statusCode: 409, headers: { 'Content-Type': 'application/problem+json', 'Retry-After': '5' } });
    expect(JSON.parse(String(duplicate.body))).toMatchObject({ status: 409, title: 'A request with this Idempotency-Key is being processed' });
    running.open({ statusCode: 201, body: 'created' });
    await original;
  });

  test.each(stacks)(
    '%s: an IN_PROGRESS the handler throws (a nested idempotent call) is a 409, and the key is released, as for any thrown error',
    async (_, first) => {
      const turnstile = new Turnstile<string>();
      const reserve = makeIdempotent(async (_id: string) => turnstile.enter(), { store, name: `reserve-${randomUUID()}`, singleFlight: false });
      const held = reserve('stock-1');
      const running = await turnstile.next();
      let calls = 0;
      const call = httpStack(first, async () => ({ statusCode: 201, body: `${++calls}: ${await reserve('stock-1')}` }));
      const event = httpEvent('url', {}, { key: randomUUID() }) as APIGatewayProxyEventV2;
      const refused = await call(event);
      expect([refused.statusCode, Number(refused.headers?.['Retry-After']) > 0, refused.body]).toEqual([409, true, expect.stringMatching(/^IN_PROGRESS: /)]);
      running.open('reserved');
      await held;
      expect(await call(event)).toMatchObject({ statusCode: 201, body: '2: reserved' });
    },
  );
});
