/**
 * One call, one scope, against DynamoDB Local: nested and concurrent calls each commit only their
 * own writes (no flag needed), middlewares that answer early never leave a key held, in-process
 * duplicates share one claim (single-flight), and a duplicate may wait for another process.
 */

import { DeleteTableCommand, type DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { jest } from '@jest/globals';
import middy from '@middy/core';
import httpCors from '@middy/http-cors';
import httpErrorHandler from '@middy/http-error-handler';
import inputOutputLogger from '@middy/input-output-logger';
import type { Context, SQSRecord } from 'aws-lambda';
import {
  DynamoDBStore,
  type HttpEvent,
  httpIdempotency,
  type IdempotencyError,
  type IdempotencyStore,
  idempotency,
  idempotentBatch,
  makeIdempotent,
  type Transaction,
  transaction,
} from '../../lib/index.js';
import { InMemoryStore, manualClock, lambdaContext as testingContext } from '../../lib/testing/index.js';
import { freshTable, readItem, recordId, scanItems, testClient, useFreshTable } from '../support/dynamodb.js';
import { flush, type Gate, gate, Turnstile } from '../support/gate.js';
import { lambdaContext } from '../support/lambda.js';
import { middyMajor, responseLogger } from '../support/middy.js';
import { paymentRequest } from '../support/payment-request.js';
import { rejection, thrown } from '../support/rejections.js';

const { client, tableName, store } = useFreshTable({ prefix: 'calls' });
let bizTable: string;
const admin: DynamoDBClient = testClient();
beforeAll(async () => {
  bizTable = await freshTable(admin, 'biz');
});
afterAll(async () => {
  await admin.send(new DeleteTableCommand({ TableName: bizTable }));
  admin.destroy();
});

/** An SQS record, but for its `messageId` and `body`. */
const sqsMessage: SQSRecord = {
  messageId: '',
  receiptHandle: 'AQEB',
  body: '',
  attributes: { ApproximateReceiveCount: '1', SentTimestamp: '0', SenderId: 'AROA', ApproximateFirstReceiveTimestamp: '0' },
  messageAttributes: {},
  md5OfBody: '',
  eventSource: 'aws:sqs',
  eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:orders',
  awsRegion: 'eu-west-1',
};

const bizItem = async (id: string) => (await readItem(admin, bizTable, id))?.id?.S;
const recordOf = (name: string, key: unknown) => readItem(client, tableName, recordId(name, key));

/** Counts the requests a store sends. */
function countingStore(): { store: DynamoDBStore; requests: string[] } {
  const counted = testClient();
  const requests: string[] = [];
  counted.middlewareStack.add(
    (next, context) => (args) => {
      requests.push(context.commandName!);
      return next(args);
    },
    { step: 'initialize', name: 'count' },
  );
  return { store: new DynamoDBStore({ tableName, client: counted }), requests };
}

describe('nested and concurrent calls', () => {
  test("a nested call's writes commit with its own record; the outer call's failure discards only its own", async () => {
    let outerRuns = 0;
    let innerRuns = 0;
    const reserve = makeIdempotent(
      async (order: string) => {
        innerRuns++;
        transaction().put({ TableName: bizTable, Item: { id: `reservation-${order}` } });
        return `reserved ${order}`;
      },
      { store, name: 'reserve' },
    );
    const checkout = makeIdempotent(
      async (order: string) => {
        outerRuns++;
        transaction().put({ TableName: bizTable, Item: { id: `checkout-${order}` } });
        const reserved = await reserve(order);
        // The outer scope is back after the nested call: this write is the outer call's.
        transaction().put({ TableName: bizTable, Item: { id: `after-${order}` } });
        if (outerRuns === 1) throw new Error('payment provider timed out');
        return reserved;
      },
      { store, name: 'checkout' },
    );

    await expect(checkout('o-1')).rejects.toThrow('payment provider timed out');
    // The inner call completed with its write; the outer call's writes were discarded with its record.
    expect(await bizItem('reservation-o-1')).toBe('reservation-o-1');
    expect(await bizItem('checkout-o-1')).toBeUndefined();
    expect(await bizItem('after-o-1')).toBeUndefined();
    expect(await recordOf('checkout', 'o-1')).toBeUndefined();

    // The retry replays the inner call (its write exists, it does not run again) and commits its own.
    expect(await checkout('o-1')).toBe('reserved o-1');
    expect(innerRuns).toBe(1);
    expect(outerRuns).toBe(2);
    expect(await bizItem('checkout-o-1')).toBe('checkout-o-1');
    expect(await bizItem('after-o-1')).toBe('after-o-1');
  });

  test("a function returning a thenable that does its work when awaited (a query builder) runs that work in its own call: its writes commit with its own record, not its caller's", async () => {
    /** Like a query builder: nothing happens until it is awaited, then `work` runs. */
    const lazy = <T>(work: () => T): PromiseLike<T> => ({
      // biome-ignore lint/suspicious/noThenProperty: a lazy thenable is the result under test
      then: (resolve, reject) => Promise.resolve().then(work).then(resolve, reject),
    });
    const reserve = makeIdempotent(
      (order: string) =>
        lazy(() => {
          transaction().put({ TableName: bizTable, Item: { id: `lazy-reservation-${order}` } });
          return `reserved ${order}`;
        }),
      { store, name: 'lazy-reserve' },
    );
    const checkout = makeIdempotent(
      async (order: string) => {
        const reserved = await reserve(order);
        throw new Error(`payment provider timed out after ${reserved}`);
      },
      { store, name: 'lazy-checkout' },
    );

    await expect(checkout('o-1')).rejects.toThrow('payment provider timed out after reserved o-1');
    // The reservation is the inner call's effect: it committed with the inner record, and the outer failure did not discard it.
    expect(await bizItem('lazy-reservation-o-1')).toBe('lazy-reservation-o-1');
    expect((await recordOf('lazy-reserve', 'o-1'))?.status?.S).toBe('COMPLETED');
    // Not nested, the same: the work of the thenable is the call's.
    expect(await reserve('o-2')).toBe('reserved o-2');
    expect(await bizItem('lazy-reservation-o-2')).toBe('lazy-reservation-o-2');
  });

  test("after a middy handler called from an idempotent function ends, the function's transaction() is its own again", async () => {
    const inner = middy(async (event: { id: string }) => {
      transaction().put({ TableName: bizTable, Item: { id: `inner-${event.id}` } });
      return 'inner';
    }).use(idempotency({ store, key: (event: { id: string }) => event.id }));
    const outer = makeIdempotent(
      async (id: string) => {
        const answer = await inner({ id }, lambdaContext('nested-middy'));
        transaction().put({ TableName: bizTable, Item: { id: `outer-${id}` } });
        return answer;
      },
      { store, name: 'nested-middy-outer' },
    );
    expect(await outer('m-1')).toBe('inner');
    expect(await bizItem('inner-m-1')).toBe('inner-m-1');
    expect(await bizItem('outer-m-1')).toBe('outer-m-1');
  });

  test("work a nested call left running after it ended cannot add writes to its caller's transaction", async () => {
    const late = gate();
    let background: Promise<unknown> | undefined;
    const inner = makeIdempotent(
      async (_: string) => {
        // Not awaited: it outlives the call.
        background = late.promise.then(() => transaction().put({ TableName: bizTable, Item: { id: 'leaked' } }));
        return 'inner';
      },
      { store, name: 'late-inner' },
    );
    const outer = makeIdempotent(
      async (id: string) => {
        await inner(id);
        late.open();
        return (await background!.then(
          () => 'joined',
          (error: Error) => error.message,
        )) as string;
      },
      { store, name: 'late-outer' },
    );
    expect(await outer('l-1')).toMatch(/already ended/);
    expect(await bizItem('leaked')).toBeUndefined();
  });

  test('a nested call without a key (onMissingKey: skip) refuses writes instead of joining its caller', async () => {
    const inner = makeIdempotent(
      async (_: { id?: string }) => {
        transaction().put({ TableName: bizTable, Item: { id: 'leaked' } });
      },
      { store, name: 'unkeyed', key: (input) => input.id, onMissingKey: 'skip' },
    );
    const outer = makeIdempotent(async (_: string) => inner({}), { store, name: 'outer-of-unkeyed' });
    await expect(outer('k')).rejects.toThrow(/runs without idempotency/);
    expect(await bizItem('leaked')).toBeUndefined();
    expect(await recordOf('outer-of-unkeyed', 'k')).toBeUndefined();
  });

  test("transaction() is one object per call, a nested call's is its own, and a kept one refuses writes once its call ended", async () => {
    let kept: Transaction | undefined;
    let nested: Transaction | undefined;
    const inner = makeIdempotent(
      async (_: string) => {
        nested = transaction();
        expect(transaction()).toBe(nested);
        return 'inner';
      },
      { store, name: 'view-inner' },
    );
    const outer = makeIdempotent(
      async (order: string) => {
        const tx = transaction();
        kept = tx;
        await inner(`${order}-inner`);
        expect(nested).not.toBe(tx);
        expect(nested!.key).not.toBe(tx.key);
        expect(transaction()).toBe(tx);
        tx.put({ TableName: bizTable, Item: { id: `view-${order}` } });
        return 'done';
      },
      { store, name: 'view-outer' },
    );
    await expect(outer('o-1')).resolves.toBe('done');
    expect(await bizItem('view-o-1')).toBe('view-o-1');
    expect(() => kept!.put({ TableName: bizTable, Item: { id: 'late' } })).toThrow(/already ended/);
    expect(() => kept!.downstreamKey('psp')).toThrow(/already ended/);
    expect(await bizItem('late')).toBeUndefined();
  });

  test("httpIdempotency and idempotentBatch: the function's writes commit with its record, and a failed condition (409, a failed record) writes nothing and releases the key", async () => {
    const onlyOnce = (id: string) => ({ TableName: bizTable, Item: { id }, ConditionExpression: 'attribute_not_exists(id)' });
    const pay = middy(async (event: HttpEvent) => {
      transaction().put(onlyOnce(`http-payment-${event.body === null ? 'none' : 'one'}`));
      transaction().put({ TableName: bizTable, Item: { id: `http-receipt-${transaction().key}` } });
      return { statusCode: 201, body: 'paid' };
    }).use(httpIdempotency({ store, name: 'http-writes' }));
    const paid = await pay(paymentRequest('k-1'), lambdaContext('http-writes'));
    expect(paid.statusCode).toBe(201);
    expect(await bizItem('http-payment-one')).toBe('http-payment-one');
    // A second key meets the payment: its condition fails, nothing of it is written, its key is free.
    const refused = await pay(paymentRequest('k-2'), lambdaContext('http-writes'));
    expect(refused.statusCode).toBe(409);
    expect(await scanItems(client, tableName, 'http-writes#')).toHaveLength(1);
    expect((await scanItems(admin, bizTable, 'http-receipt-')).length).toBe(1);

    const sqs = (body: string): SQSRecord => ({ ...sqsMessage, messageId: body, body });
    const ship = idempotentBatch(
      async (order: { id: string }) => {
        transaction().put(onlyOnce(`shipment-${order.id.split('/')[0]}`));
        return { shipped: order.id };
      },
      {
        store,
        name: 'batch-writes',
        key: (order) => order.id,
        logger: { warn: (line: string) => void lines.push(line), error: (line: string) => void lines.push(line) },
      },
    );
    const lines: string[] = [];
    const batch = { Records: [sqs('{"id":"o-1/a"}'), sqs('{"id":"o-2/a"}'), sqs('{"id":"o-1/b"}')] };
    const response = await ship(batch, lambdaContext('batch-writes'));
    // o-1/b meets o-1/a's shipment (the batch runs its records concurrently: either may be first).
    expect(response.batchItemFailures).toHaveLength(1);
    // The failed record is logged with the code that says why.
    expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
      expect.objectContaining({
        itemIdentifier: response.batchItemFailures[0]!.itemIdentifier,
        reason: expect.stringMatching(/^TRANSACTION_CONDITION_FAILED: /),
      }),
    ]);
    expect(await bizItem('shipment-o-1')).toBe('shipment-o-1');
    expect(await bizItem('shipment-o-2')).toBe('shipment-o-2');
    expect(await scanItems(client, tableName, 'batch-writes#')).toHaveLength(2);
  });

  test('concurrent middy invocations with different keys each commit exactly their own writes, without any flag', async () => {
    const turnstile = new Turnstile();
    const failing = (id: string) => Number(id.slice(2)) % 2 === 1;
    const handler = middy(async (event: { id: string }) => {
      transaction().put({ TableName: bizTable, Item: { id: `own-${event.id}-before`, by: event.id } });
      await turnstile.enter();
      transaction().put({ TableName: bizTable, Item: { id: `own-${event.id}`, by: event.id } });
      if (failing(event.id)) throw new Error(`${event.id} failed`);
      return { id: event.id, owner: transaction().owner };
    }).use(idempotency({ store, key: (event: { id: string }) => event.id }));
    const ids = Array.from({ length: 12 }, (_, i) => `c-${i}`);
    const calls = ids.map((id) =>
      handler({ id }, lambdaContext('concurrent')).then(
        (value) => value,
        (error: Error) => error.message,
      ),
    );
    // Every invocation is inside its handler at once; they end in the reverse order of their start, every other one failing.
    const running: Gate[] = [];
    for (const _ of ids) running.push(await turnstile.next());
    for (const held of running.reverse()) held.open();
    const results = await Promise.all(calls);
    for (const [i, id] of ids.entries()) {
      const written = [await readItem(admin, bizTable, `own-${id}-before`), await readItem(admin, bizTable, `own-${id}`)];
      if (!failing(id)) {
        // Both its writes, before and after the others started, committed with its own record; none of theirs.
        expect(results[i]).toEqual({ id, owner: expect.any(String) });
        expect(written.map((item) => item?.by?.S)).toEqual([id, id]);
        expect((await recordOf('concurrent', id))?.owner?.S).toBe((results[i] as { owner: string }).owner);
      } else {
        // A call that fails discards its own writes only.
        expect(results[i]).toBe(`${id} failed`);
        expect(written).toEqual([undefined, undefined]);
        expect(await recordOf('concurrent', id)).toBeUndefined();
      }
    }
  });
});

describe('middlewares that answer early', () => {
  const authorize = (allowed: () => boolean) => ({
    before: async (_request: { event: { id: string } }) => (allowed() ? undefined : { statusCode: 403 }),
  });

  test("an inner middleware's early answer from `before` releases the key at once: the retry runs", async () => {
    let allowed = false;
    let runs = 0;
    const handler = middy(async (event: { id: string }) => ({ statusCode: 201, id: event.id, run: ++runs }))
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use(authorize(() => allowed));
    expect(await handler({ id: 'e-1' }, lambdaContext('early-before'))).toEqual({ statusCode: 403 });
    expect(runs).toBe(0);
    expect(await recordOf('early-before', 'e-1')).toBeUndefined();
    allowed = true;
    expect(await handler({ id: 'e-1' }, lambdaContext('early-before'))).toEqual({ statusCode: 201, id: 'e-1', run: 1 });
    expect(await handler({ id: 'e-1' }, lambdaContext('early-before'))).toEqual({ statusCode: 201, id: 'e-1', run: 1 });
  });

  test('an inner middleware that sets `request.earlyResponse` in `before` (an undefined answer) releases the key', async () => {
    const handler = middy(async () => 'ran')
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({
        before: (request: { earlyResponse?: unknown }) => {
          request.earlyResponse = undefined;
        },
      });
    expect(await handler({ id: 'w-1' }, lambdaContext('early-undefined'))).toBeUndefined();
    expect(await recordOf('early-undefined', 'w-1')).toBeUndefined();
  });

  test('an inner `before` that sets the response, then answers with it (http-cors answering a preflight), releases the key: the handler never ran', async () => {
    let runs = 0;
    interface Request {
      readonly version: '2.0';
      readonly requestContext: { readonly http: { readonly method: string } };
      readonly pathParameters: { readonly id: string };
      readonly headers: Record<string, string>;
    }
    const request = (method: string): Request => ({ version: '2.0', requestContext: { http: { method } }, pathParameters: { id: 'c-1' }, headers: {} });
    const handler = middy(async () => ({ statusCode: 201, body: `run ${++runs}` }))
      .use(idempotency({ store, key: (event: Request) => event.pathParameters.id }))
      .use(httpCors({ origin: '*', disableBeforePreflightResponse: false }));
    expect(await handler(request('OPTIONS'), lambdaContext('early-cors'))).toMatchObject({ statusCode: 204 });
    expect(await recordOf('early-cors', 'c-1')).toBeUndefined();
    expect(await handler(request('POST'), lambdaContext('early-cors'))).toMatchObject({ statusCode: 201, body: 'run 1' });
    expect(runs).toBe(1);
  });

  test('an inner `before` that reads the event and context, before http-cors answers a preflight, leaves the key to the handler', async () => {
    let runs = 0;
    const request = (method: string) => ({ version: '2.0', requestContext: { http: { method } }, pathParameters: { id: 'c-2' }, headers: {} });
    // Reads the event, then the context, as middy does to invoke the handler.
    const logger = { before: ({ event, context }: { event: unknown; context: unknown }) => void [event, context] };
    const handler = middy(async () => ({ statusCode: 201, body: `run ${++runs}` }))
      .use(idempotency({ store, key: (event: ReturnType<typeof request>) => event.pathParameters.id }))
      .use(logger)
      .use(httpCors({ origin: '*', disableBeforePreflightResponse: false }));
    expect(await handler(request('OPTIONS'), lambdaContext('early-cors-read'))).toMatchObject({ statusCode: 204 });
    expect(await recordOf('early-cors-read', 'c-2')).toBeUndefined();
    expect(await handler(request('POST'), lambdaContext('early-cors-read'))).toMatchObject({ statusCode: 201, body: 'run 1' });
  });

  test('an error an inner `before` throws releases the key even when `isFinalError` would keep it: the handler never ran', async () => {
    let runs = 0;
    let valid = false;
    const handler = middy(async () => ({ run: ++runs }))
      .use(idempotency({ store, key: (event: { id: string }) => event.id, isFinalError: (error) => (error as { statusCode?: number }).statusCode === 422 }))
      .use({ before: ({ event, context }: { event: unknown; context: unknown }) => void [event, context] })
      .use({
        before: (request: { event: { id: string } }) => {
          if (request.event.id === '' || !valid) throw Object.assign(new Error('invalid body'), { statusCode: 422 });
        },
      });
    await expect(handler({ id: 'f-1' }, lambdaContext('inner-final'))).rejects.toThrow('invalid body');
    expect(await recordOf('inner-final', 'f-1')).toBeUndefined();
    valid = true;
    expect(await handler({ id: 'f-1' }, lambdaContext('inner-final'))).toEqual({ run: 1 });
  });

  test('an error an inner `before` throws after reading only the context (its request id, say) releases the key: the handler never ran', async () => {
    let runs = 0;
    let valid = false;
    const handler = middy(async () => ({ run: ++runs }))
      .use(idempotency({ store, key: (event: { id: string }) => event.id, isFinalError: (error) => (error as { statusCode?: number }).statusCode === 422 }))
      .use({
        before: (request: { context: Context }) => {
          if (!valid) throw Object.assign(new Error(`invalid request ${request.context.awsRequestId}`), { statusCode: 422 });
        },
      });
    await expect(handler({ id: 'c-1' }, lambdaContext('inner-context-final'))).rejects.toThrow('invalid request');
    expect(await recordOf('inner-context-final', 'c-1')).toBeUndefined();
    valid = true;
    expect(await handler({ id: 'c-1' }, lambdaContext('inner-context-final'))).toEqual({ run: 1 });
  });

  // middy skips the `onError` hooks after one that throws, this one's included: the call still ends.
  const rethrow = { onError: (request: { error?: unknown }) => Promise.reject(new Error(`mapped: ${(request.error as Error).message}`)) };

  test('an inner `onError` that throws, after an inner `after` threw once the handler returned, still completes the record: a duplicate replays the response', async () => {
    let runs = 0;
    const handler = middy(async () => ({ charged: ++runs }))
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use(rethrow)
      .use({ after: () => Promise.reject(new Error('serializer failed')) });
    await expect(handler({ id: 'r-1' }, lambdaContext('rethrow-after', 2_000))).rejects.toThrow('mapped: serializer failed');
    // In process, the duplicate follows the first call until its record is written.
    expect(await handler({ id: 'r-1' }, lambdaContext('rethrow-after', 2_000))).toEqual({ charged: 1 });
    expect((await recordOf('rethrow-after', 'r-1'))?.status?.S).toBe('COMPLETED');
    expect(runs).toBe(1);
  });

  test("an inner `onError` that throws on the handler's error still releases the key: a duplicate runs", async () => {
    let runs = 0;
    const handler = middy(async () => {
      if (++runs === 1) throw new Error('card network down');
      return { charged: runs };
    })
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use(rethrow);
    await expect(handler({ id: 'r-2' }, lambdaContext('rethrow-error', 2_000))).rejects.toThrow('mapped: card network down');
    expect(await handler({ id: 'r-2' }, lambdaContext('rethrow-error', 2_000))).toEqual({ charged: 2 });
  });

  describe('with two idempotency() middlewares', () => {
    const twice = <R>(handler: middy.MiddyfiedHandler<{ id: string }, R>, name: string) =>
      handler
        .use(idempotency({ store, name: `${name}-outer`, key: (event: { id: string }) => event.id }))
        .use(idempotency({ store, name: `${name}-inner`, key: (event: { id: string }) => event.id }));

    test("an inner middleware's early answer from `before` releases both keys", async () => {
      const handler = twice(
        middy(async () => 'ran'),
        'twice-before',
      ).use({ before: async () => ({ statusCode: 403 }) });
      expect(await handler({ id: 'd-1' }, lambdaContext('twice'))).toEqual({ statusCode: 403 });
      expect(await recordOf('twice-before-outer', 'd-1')).toBeUndefined();
      expect(await recordOf('twice-before-inner', 'd-1')).toBeUndefined();
    });

    test("an inner `onError`'s early answer to the handler's error is sent once both keys are released: the caller's retry runs", async () => {
      // The outer key's release, held until the test lets it go.
      const releasing = gate();
      const releaseSent = gate();
      const outerStore: IdempotencyStore = {
        claim: (request) => store.claim(request),
        complete: (request) => store.complete(request),
        release: async (request) => {
          releaseSent.open();
          await releasing.promise;
          return store.release(request);
        },
      };
      let runs = 0;
      const handler = middy(async () => {
        if (++runs === 1) throw new Error('card network down');
        return { run: runs };
      })
        .use(idempotency({ store: outerStore, name: 'twice-on-error-outer', key: (event: { id: string }) => event.id }))
        .use(idempotency({ store, name: 'twice-on-error-inner', key: (event: { id: string }) => event.id }))
        .use({ onError: (request: { error?: unknown }) => ({ statusCode: 400, error: (request.error as Error).message }) });
      let answered = false;
      const answer = handler({ id: 'd-2' }, lambdaContext('twice')).finally(() => (answered = true));
      await releaseSent.promise;
      await flush();
      // Lambda freezes the function once it answers: a release still pending then leaves the key held until its lease.
      expect(answered).toBe(false);
      releasing.open();
      expect(await answer).toEqual({ statusCode: 400, error: 'card network down' });
      expect(await recordOf('twice-on-error-outer', 'd-2')).toBeUndefined();
      expect(await recordOf('twice-on-error-inner', 'd-2')).toBeUndefined();
      expect(await handler({ id: 'd-2' }, lambdaContext('twice'))).toEqual({ run: 2 });
    });

    test("the handler's transaction() is the inner middleware's call, whose record its writes commit with", async () => {
      const inner = new DynamoDBStore({ tableName, client });
      const commits = jest.spyOn(inner, 'completeWithWrites');
      const handler = middy(async (event: { id: string }) => {
        transaction().put({ TableName: bizTable, Item: { id: `twice-${event.id}` } });
        return 'ran';
      })
        .use(idempotency({ store, name: 'twice-tx-outer', key: (event: { id: string }) => event.id }))
        .use(idempotency({ store: inner, name: 'twice-tx-inner', key: (event: { id: string }) => event.id }));
      expect(await handler({ id: 'd-3' }, lambdaContext('twice'))).toBe('ran');
      expect(commits).toHaveBeenCalledTimes(1);
      expect(commits.mock.calls[0]![0].key).toBe(recordId('twice-tx-inner', 'd-3'));
      expect(await readItem(admin, bizTable, 'twice-d-3')).toBeDefined();
    });

    test("an inner middleware's failed commit of the handler's writes releases the outer key too: the retry runs and commits them", async () => {
      const inner = new DynamoDBStore({ tableName, client });
      jest.spyOn(inner, 'completeWithWrites').mockRejectedValueOnce(Object.assign(new Error('socket hang up'), { name: 'NetworkingError' }));
      let runs = 0;
      const handler = middy(async (event: { id: string }) => {
        transaction().put({ TableName: bizTable, Item: { id: `twice-${event.id}` } });
        return { run: ++runs };
      })
        .use(idempotency({ store, name: 'twice-fail-outer', key: (event: { id: string }) => event.id }))
        .use(idempotency({ store: inner, name: 'twice-fail-inner', key: (event: { id: string }) => event.id }));
      await expect(handler({ id: 'd-4' }, lambdaContext('twice'))).rejects.toMatchObject({ code: 'COMMIT_FAILED' });
      expect(await bizItem('twice-d-4')).toBeUndefined();
      // Neither record claims an outcome whose writes never applied.
      expect(await recordOf('twice-fail-outer', 'd-4')).toBeUndefined();
      expect(await recordOf('twice-fail-inner', 'd-4')).toBeUndefined();
      expect(await handler({ id: 'd-4' }, lambdaContext('twice'))).toEqual({ run: 2 });
      expect(await bizItem('twice-d-4')).toBe('twice-d-4');
    });

    /** A handler whose writes the inner httpIdempotency's first commit fails to apply (no answer from the store). */
    const failingCommit = (name: string, between: middy.MiddlewareObj[] = []) => {
      const inner = new DynamoDBStore({ tableName, client });
      jest.spyOn(inner, 'completeWithWrites').mockRejectedValueOnce(Object.assign(new Error('socket hang up'), { name: 'NetworkingError' }));
      const runs = { count: 0 };
      const handler = middy(async (event: HttpEvent) => {
        transaction().put({ TableName: bizTable, Item: { id: `${name}-${event.headers['idempotency-key']}` } });
        return { statusCode: 201, body: JSON.stringify({ run: ++runs.count }) };
      })
        .use(idempotency({ store, name: `${name}-outer`, key: (event: HttpEvent) => event.headers['idempotency-key'] }))
        .use(between)
        .use(httpIdempotency({ store: inner, name: `${name}-inner` }));
      return { handler, runs };
    };

    test("an inner httpIdempotency's failed commit, answered 503, releases the outer key too: the retry runs and commits the writes", async () => {
      const { handler, runs } = failingCommit('twice-http');
      expect(await handler(paymentRequest('d-10'), lambdaContext('twice'))).toMatchObject({ statusCode: 503 });
      expect(await bizItem('twice-http-d-10')).toBeUndefined();
      // Neither record claims an outcome whose writes never applied.
      expect(await recordOf('twice-http-outer', 'd-10')).toBeUndefined();
      expect(await scanItems(client, tableName, 'twice-http-inner#')).toHaveLength(0);
      expect(await handler(paymentRequest('d-10'), lambdaContext('twice'))).toMatchObject({ statusCode: 201, body: '{"run":2}' });
      expect(runs.count).toBe(2);
      expect(await bizItem('twice-http-d-10')).toBe('twice-http-d-10');
    });

    test("an inner httpIdempotency's failed commit, then a later `after` that throws, releases the outer key too: the retry runs and commits the writes", async () => {
      const logger = responseLogger();
      const { handler, runs } = failingCommit('twice-http-thrown', [logger.middleware]);
      await expect(handler(paymentRequest('d-11'), lambdaContext('twice'))).rejects.toThrow('response logger down');
      expect(await bizItem('twice-http-thrown-d-11')).toBeUndefined();
      expect(await recordOf('twice-http-thrown-outer', 'd-11')).toBeUndefined();
      expect(await scanItems(client, tableName, 'twice-http-thrown-inner#')).toHaveLength(0);
      logger.down = false;
      expect(await handler(paymentRequest('d-11'), lambdaContext('twice'))).toMatchObject({ statusCode: 201, body: '{"run":2}' });
      expect(runs.count).toBe(2);
      expect(await bizItem('twice-http-thrown-d-11')).toBe('twice-http-thrown-d-11');
    });

    test("an inner httpIdempotency's failed commit, then a later `after` that answers early, releases the outer key too", async () => {
      const wrapper: middy.MiddlewareObj = { after: async (request) => ({ wrapped: request.response }) };
      const { handler, runs } = failingCommit('twice-http-wrapped', [wrapper]);
      expect(await handler(paymentRequest('d-12'), lambdaContext('twice'))).toMatchObject({ wrapped: { statusCode: 503 } });
      expect(await recordOf('twice-http-wrapped-outer', 'd-12')).toBeUndefined();
      expect(await handler(paymentRequest('d-12'), lambdaContext('twice'))).toMatchObject({ wrapped: { statusCode: 201, body: '{"run":2}' } });
      expect(runs.count).toBe(2);
      expect(await bizItem('twice-http-wrapped-d-12')).toBe('twice-http-wrapped-d-12');
    });

    test("an inner httpIdempotency that releases its key for the handler's 503 releases the outer key too: the retry runs", async () => {
      let runs = 0;
      const handler = middy(async () => (++runs === 1 ? { statusCode: 503, body: 'bank unavailable' } : { statusCode: 201, body: 'paid' }))
        .use(idempotency({ store, name: 'twice-http-503-outer', key: (event: HttpEvent) => event.headers['idempotency-key'] }))
        .use(httpIdempotency({ store, name: 'twice-http-503-inner' }));
      expect(await handler(paymentRequest('d-13'), lambdaContext('twice'))).toMatchObject({ statusCode: 503 });
      expect(await recordOf('twice-http-503-outer', 'd-13')).toBeUndefined();
      expect(await handler(paymentRequest('d-13'), lambdaContext('twice'))).toMatchObject({ statusCode: 201, body: 'paid' });
      expect(runs).toBe(2);
    });

    test("an inner middleware's early answer from `after`, for writes that fail their condition, is stored by neither, whatever the outer isFinalError says", async () => {
      let runs = 0;
      const final = (error: unknown) => ((error as { statusCode?: number }).statusCode ?? 500) < 500;
      const handler = middy(async (event: { id: string }) => {
        runs++;
        transaction().put({ TableName: bizTable, Item: { id: `twice-paid-${event.id}` }, ConditionExpression: 'attribute_not_exists(id)' });
        return { paid: event.id };
      })
        .use(idempotency({ store, name: 'twice-paid-outer', key: (event: { id: string }) => event.id, isFinalError: final }))
        .use(idempotency({ store, name: 'twice-paid-inner', key: (event: { id: string }) => event.id, isFinalError: final }))
        .use({ after: async (request: { response: unknown }) => ({ wrapped: request.response }) });
      await admin.send(new PutItemCommand({ TableName: bizTable, Item: { id: { S: 'twice-paid-d-14' } } }));
      await expect(handler({ id: 'd-14' }, lambdaContext('twice'))).rejects.toMatchObject({ code: 'TRANSACTION_CONDITION_FAILED' });
      expect(await recordOf('twice-paid-outer', 'd-14')).toBeUndefined();
      expect(await recordOf('twice-paid-inner', 'd-14')).toBeUndefined();
      await expect(handler({ id: 'd-14' }, lambdaContext('twice'))).rejects.toMatchObject({ code: 'TRANSACTION_CONDITION_FAILED' });
      expect(runs).toBe(2);
    });

    test.each([
      ['directly', 'twice-reject', []],
      // Reads the event and then the context, as middy does to invoke the handler.
      ['behind input-output-logger with lambdaContext', 'twice-logged', [inputOutputLogger({ logger: () => undefined, lambdaContext: true })]],
    ])(
      "an inner middleware's rejection (KEY_MISSING), %s, is never stored by the outer one, whatever its isFinalError says: the handler never ran",
      async (_label, name, between) => {
        interface Event {
          readonly id: string;
          readonly tenant?: string;
        }
        let runs = 0;
        const final = (error: unknown) => ((error as { statusCode?: number }).statusCode ?? 500) < 500;
        const handler = middy(async () => ({ run: ++runs }))
          .use(idempotency({ store, name: `${name}-outer`, key: (event: Event) => event.id, isFinalError: final }))
          .use(between)
          .use(idempotency({ store, name: `${name}-inner`, key: (event: Event) => event.tenant }));
        await expect(handler({ id: 'd-5' }, lambdaContext('twice'))).rejects.toMatchObject({ code: 'KEY_MISSING' });
        expect(await recordOf(`${name}-outer`, 'd-5')).toBeUndefined();
        // The client adds the missing key and retries under the same outer key: the handler runs.
        expect(await handler({ id: 'd-5', tenant: 't-1' }, lambdaContext('twice'))).toEqual({ run: 1 });
      },
    );

    test('a handler that rethrows the rejection a nested middy request met keeps it as its own error: stored as isFinalError says, and not run again', async () => {
      let charges = 0;
      const final = (error: unknown) => ((error as { statusCode?: number }).statusCode ?? 500) < 500;
      const nested = middy(async () => 'nested').use(idempotency({ store, name: 'rethrown-nested', key: (event: { tenant?: string }) => event.tenant }));
      const handler = middy(async (_event: { id: string }, context: Context) => {
        charges++;
        return nested({}, context);
      }).use(idempotency({ store, name: 'rethrown-outer', key: (event: { id: string }) => event.id, isFinalError: final }));
      await expect(handler({ id: 'd-8' }, lambdaContext('twice'))).rejects.toMatchObject({ code: 'KEY_MISSING' });
      expect((await recordOf('rethrown-outer', 'd-8'))?.status?.S).toBe('COMPLETED');
      await expect(handler({ id: 'd-8' }, lambdaContext('twice'))).rejects.toThrow('KEY_MISSING');
      expect(charges).toBe(1);
    });

    test("a handler that rethrows another attempt's outcome a nested request's commit met keeps it as its own error: stored, and not run again", async () => {
      let charges = 0;
      const held = gate();
      // Atomic: the nested request's record is written with its outcome, so another attempt can end first.
      const nested = middy(async (event: { hold: boolean }) => {
        if (event.hold) {
          await held.promise;
          return 'nested';
        }
        throw new Error('card declined');
      }).use(idempotency({ store, name: 'met-nested', key: () => 'n-1', atomic: true, singleFlight: false, isFinalError: () => true }));
      // The replayed error has the stored name and message (no `statusCode`: not among `errorFields`).
      const final = (error: unknown) => (error as Error).message === 'card declined';
      const handler = middy(async (_event: { id: string }, context: Context) => {
        charges++;
        return nested({ hold: true }, context);
      }).use(idempotency({ store, name: 'met-outer', key: (event: { id: string }) => event.id, isFinalError: final }));
      const first = thrown(handler({ id: 'd-9' }, lambdaContext('twice')));
      await flush();
      // Another attempt of the nested request ends first, with a final error, while the first one runs.
      await expect(nested({ hold: false }, lambdaContext('twice'))).rejects.toThrow('card declined');
      held.open();
      expect((await first).message).toBe('card declined');
      expect((await recordOf('met-outer', 'd-9'))?.status?.S).toBe('COMPLETED');
      await expect(handler({ id: 'd-9' }, lambdaContext('twice'))).rejects.toThrow('card declined');
      expect(charges).toBe(1);
    });

    test('an error a later `before` throws without reading the event is stored by neither, whatever isFinalError says: the handler never ran', async () => {
      let runs = 0;
      let allowed = false;
      const final = (error: unknown) => ((error as { statusCode?: number }).statusCode ?? 500) < 500;
      const handler = middy(async () => ({ run: ++runs }))
        .use(idempotency({ store, name: 'twice-denied-outer', key: (event: { id: string }) => event.id, isFinalError: final }))
        .use(idempotency({ store, name: 'twice-denied-inner', key: (event: { id: string }) => event.id, isFinalError: final }))
        .use({
          before: () => {
            if (!allowed) throw Object.assign(new Error('rate limited'), { statusCode: 429 });
          },
        });
      await expect(handler({ id: 'd-7' }, lambdaContext('twice'))).rejects.toThrow('rate limited');
      expect(await recordOf('twice-denied-outer', 'd-7')).toBeUndefined();
      expect(await recordOf('twice-denied-inner', 'd-7')).toBeUndefined();
      allowed = true;
      expect(await handler({ id: 'd-7' }, lambdaContext('twice'))).toEqual({ run: 1 });
    });

    test("an inner middleware's early answer from `after` completes both records with that answer", async () => {
      let runs = 0;
      const handler = twice(
        middy(async () => ({ run: ++runs })),
        'twice-after',
      ).use({ after: async (request: { response: unknown }) => ({ wrapped: request.response }) });
      expect(await handler({ id: 'd-2' }, lambdaContext('twice'))).toEqual({ wrapped: { run: 1 } });
      expect((await recordOf('twice-after-outer', 'd-2'))?.status?.S).toBe('COMPLETED');
      expect((await recordOf('twice-after-inner', 'd-2'))?.status?.S).toBe('COMPLETED');
      expect(await handler({ id: 'd-2' }, lambdaContext('twice'))).toEqual({ wrapped: { run: 1 } });
    });
  });

  test("an inner middleware's early answer from `after` completes the record with that answer", async () => {
    let runs = 0;
    const handler = middy(async () => ({ run: ++runs }))
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({ after: async (request: { response: unknown }) => ({ wrapped: request.response }) });
    expect(await handler({ id: 'a-1' }, lambdaContext('early-after'))).toEqual({ wrapped: { run: 1 } });
    expect((await recordOf('early-after', 'a-1'))?.status?.S).toBe('COMPLETED');
    expect(await handler({ id: 'a-1' }, lambdaContext('early-after'))).toEqual({ wrapped: { run: 1 } });
    expect(runs).toBe(1);
  });

  test("an inner middleware's early answer from `after`, for a handler whose writes fail their condition, is not sent: the caller gets the failure, nothing is written, the key is free", async () => {
    let runs = 0;
    const handler = middy(async (event: { id: string }) => {
      runs++;
      transaction().put({ TableName: bizTable, Item: { id: `early-after-paid-${event.id}` }, ConditionExpression: 'attribute_not_exists(id)' });
      return { paid: event.id };
    })
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({ after: async (request: { response: unknown }) => ({ wrapped: request.response }) });
    // The payment exists already: the handler's write fails its condition when the record completes.
    await admin.send(new PutItemCommand({ TableName: bizTable, Item: { id: { S: 'early-after-paid-a-2' } } }));
    await expect(handler({ id: 'a-2' }, lambdaContext('early-after-failed'))).rejects.toMatchObject({ code: 'TRANSACTION_CONDITION_FAILED' });
    expect(await recordOf('early-after-failed', 'a-2')).toBeUndefined();
    await expect(handler({ id: 'a-2' }, lambdaContext('early-after-failed'))).rejects.toMatchObject({ code: 'TRANSACTION_CONDITION_FAILED' });
    expect(runs).toBe(2);
  });

  test('a handler error, after an inner `before` prepared a response (headers for the handler to fill in), releases the key: the prepared response is no outcome', async () => {
    let runs = 0;
    const handler = middy(async () => {
      if (++runs === 1) throw new Error('card network down');
      return { statusCode: 201, run: runs };
    })
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({
        before: (request: { response: unknown }) => {
          request.response = { headers: { 'X-Request-Start': '1' } };
        },
      });
    await expect(handler({ id: 'p-1' }, lambdaContext('prepared-response'))).rejects.toThrow('card network down');
    expect(await recordOf('prepared-response', 'p-1')).toBeUndefined();
    expect(await handler({ id: 'p-1' }, lambdaContext('prepared-response'))).toEqual({ statusCode: 201, run: 2 });
  });

  test("an inner middleware's early answer from `onError` releases the key like the error it answers: the retry runs", async () => {
    let runs = 0;
    const handler = middy(async () => {
      if (++runs === 1) throw new Error('card network down');
      return { statusCode: 201, run: runs };
    })
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({ onError: (request: { error?: unknown }) => ({ statusCode: 400, error: (request.error as Error).message }) });
    expect(await handler({ id: 'o-1' }, lambdaContext('early-on-error'))).toEqual({ statusCode: 400, error: 'card network down' });
    expect(await recordOf('early-on-error', 'o-1')).toBeUndefined();
    expect(await handler({ id: 'o-1' }, lambdaContext('early-on-error'))).toEqual({ statusCode: 201, run: 2 });
  });

  test("an inner `onError` that sets an early answer of `undefined` answers nothing, as middy then rethrows: the caller gets the handler's error, and the key is released", async () => {
    let runs = 0;
    const down = new Error('card network down');
    const handler = middy(async () => {
      if (++runs === 1) throw down;
      return { statusCode: 201, run: runs };
    })
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({ onError: (request: { earlyResponse?: unknown }) => void (request.earlyResponse = undefined) });
    await expect(handler({ id: 'o-4' }, lambdaContext('early-on-error-undefined'))).rejects.toBe(down);
    expect(await recordOf('early-on-error-undefined', 'o-4')).toBeUndefined();
    expect(await handler({ id: 'o-4' }, lambdaContext('early-on-error-undefined'))).toEqual({ statusCode: 201, run: 2 });
  });

  test("atomic: a failure an inner `onError` answers, whose record another attempt completed meanwhile, gets that attempt's stored outcome, as every later duplicate does", async () => {
    const held = gate();
    let runs = 0;
    const handler = middy(async () => {
      const run = ++runs;
      if (run > 1) return { paid: run };
      await held.promise;
      throw new Error('card declined');
    })
      .use(idempotency({ store, key: (event: { id: string }) => event.id, atomic: true, singleFlight: false, isFinalError: () => true }))
      .use({ onError: (request: { error?: unknown }) => ({ statusCode: 402, error: (request.error as Error).message }) });
    const first = handler({ id: 'o-2' }, lambdaContext('early-on-error-atomic'));
    await flush();
    // Another attempt ends first, while the first one's handler still runs.
    expect(await handler({ id: 'o-2' }, lambdaContext('early-on-error-atomic'))).toEqual({ paid: 2 });
    held.open();
    expect(await first).toEqual({ paid: 2 });
    expect(await handler({ id: 'o-2' }, lambdaContext('early-on-error-atomic'))).toEqual({ paid: 2 });
  });

  test("atomic: another attempt's outcome that this middleware answers a failure with is replaced by the answer of an `onError` used before it, as middy lets a later onError answer; duplicates get that outcome", async () => {
    const held = gate();
    const entered = gate();
    let runs = 0;
    const handler = middy(async () => {
      const run = ++runs;
      if (run > 1) return { paid: run };
      entered.open();
      await held.promise;
      throw new Error('card declined');
    })
      // Answers every error it sees, without reading `request.response` (http-error-handler does read it, and answers nothing then).
      .use({ onError: () => ({ statusCode: 500, mapped: true }) })
      .use(idempotency({ store, key: (event: { id: string }) => event.id, atomic: true, singleFlight: false, isFinalError: () => true }));
    const first = handler({ id: 'o-3' }, lambdaContext('outer-on-error-atomic'));
    await entered.promise;
    expect(await handler({ id: 'o-3' }, lambdaContext('outer-on-error-atomic'))).toEqual({ paid: 2 });
    held.open();
    expect(await first).toEqual({ statusCode: 500, mapped: true });
    expect(await handler({ id: 'o-3' }, lambdaContext('outer-on-error-atomic'))).toEqual({ paid: 2 });
  });

  test("middy's early timeout answered by an inner `onError` releases nothing: the handler may still run, so a duplicate never runs it again", async () => {
    const running = gate();
    let runs = 0;
    const handler = middy(
      async () => {
        runs++;
        await running.promise;
        return 'late';
      },
      { timeoutEarlyInMillis: 29_990 },
    )
      .use(idempotency({ store, key: (event: { id: string }) => event.id, singleFlight: false }))
      .use({ onError: (request: { error?: unknown }) => ({ statusCode: 504, error: (request.error as Error).name }) });
    expect(await handler({ id: 't-1' }, lambdaContext('early-timeout', 30_000))).toEqual({ statusCode: 504, error: 'TimeoutError' });
    expect((await recordOf('early-timeout', 't-1'))?.status?.S).toBe('INPROGRESS');
    // The duplicate meets the held record (IN_PROGRESS, which the inner onError answers too).
    expect(await handler({ id: 't-1' }, lambdaContext('early-timeout', 30_000))).toEqual({ statusCode: 504, error: 'IdempotencyError' });
    expect(runs).toBe(1);
    running.open();
  });

  test('a thrown error in an inner `before` releases the key', async () => {
    let fail = true;
    const handler = middy(async () => 'ran')
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({
        before: () => {
          if (fail) throw new Error('validation failed');
        },
      });
    await expect(handler({ id: 'v-1' }, lambdaContext('inner-throws'))).rejects.toThrow('validation failed');
    expect(await recordOf('inner-throws', 'v-1')).toBeUndefined();
    fail = false;
    expect(await handler({ id: 'v-1' }, lambdaContext('inner-throws'))).toBe('ran');
  });

  test("an inner `after` that sets an early answer and then throws completes the record with the handler's response, and its caller gets the error", async () => {
    let runs = 0;
    let fail = true;
    const handler = middy(async () => ({ charged: ++runs }))
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({
        after: (request: { response: unknown; earlyResponse?: unknown }) => {
          request.earlyResponse = { statusCode: 200, body: request.response };
          if (fail) throw new Error('serializer failed');
        },
      });
    const first = handler({ id: 'e-1' }, lambdaContext('early-then-throw'));
    // Middy 6 keeps the early answer of a hook that threw, and sends it once an `onError` has run.
    if (middyMajor === 7) await expect(first).rejects.toThrow('serializer failed');
    else expect(await first).toEqual({ statusCode: 200, body: { charged: 1 } });
    const record = await recordOf('early-then-throw', 'e-1');
    expect(record?.status?.S).toBe('COMPLETED');
    expect(record?.response?.S).toBe('{"charged":1}');
    fail = false;
    // The duplicate replays the stored response before any inner hook runs.
    expect(await handler({ id: 'e-1' }, lambdaContext('early-then-throw'))).toEqual({ charged: 1 });
    expect(runs).toBe(1);
  });

  test("an inner `after` that sets an early answer of `undefined` and then throws still completes the record with the handler's response", async () => {
    let runs = 0;
    const handler = middy(async () => ({ charged: ++runs }))
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({
        after: (request: { earlyResponse?: unknown }) => {
          request.earlyResponse = undefined;
          throw new Error('serializer failed');
        },
      });
    await expect(handler({ id: 'e-2' }, lambdaContext('early-undefined-throw'))).rejects.toThrow('serializer failed');
    expect((await recordOf('early-undefined-throw', 'e-2'))?.response?.S).toBe('{"charged":1}');
    expect(runs).toBe(1);
  });

  test('an inner `before` that sets an early answer and then throws releases the key: the handler never ran', async () => {
    let fail = true;
    const handler = middy(async () => 'ran')
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({
        before: (request: { earlyResponse?: unknown }) => {
          request.earlyResponse = { statusCode: 403 };
          if (fail) throw new Error('authorizer failed');
          delete request.earlyResponse;
        },
      });
    const first = handler({ id: 'e-3' }, lambdaContext('early-before-throw'));
    if (middyMajor === 7) await expect(first).rejects.toThrow('authorizer failed');
    else expect(await first).toEqual({ statusCode: 403 });
    expect(await recordOf('early-before-throw', 'e-3')).toBeUndefined();
    fail = false;
    expect(await handler({ id: 'e-3' }, lambdaContext('early-before-throw'))).toBe('ran');
  });

  test.each([
    ['before', undefined],
    ['after', '{"statusCode":201,"run":1}'],
  ] as const)(
    'an inner `%s` that sets an early answer and then throws, behind http-error-handler: the caller gets the answer middy gives without this middleware, and the record ends as the error does',
    async (hook, stored) => {
      let runs = 0;
      let fail = true;
      const name = `early-${hook}-throw-http`;
      const failing = {
        [hook]: (request: { earlyResponse?: unknown }) => {
          request.earlyResponse = { statusCode: 403 };
          if (fail) throw new Error('audit log down');
          delete request.earlyResponse;
        },
      };
      const route = () => middy(async () => ({ statusCode: 201, run: ++runs }));
      const plain = route()
        .use(httpErrorHandler({ logger: false }))
        .use(failing);
      const handler = route()
        .use(idempotency({ store, key: (event: { id: string }) => event.id }))
        .use(httpErrorHandler({ logger: false }))
        .use(failing);
      // Middy 6 keeps the early answer of a hook that threw, and sends it once an `onError` has run.
      const expected = middyMajor === 7 ? { statusCode: 500, headers: {} } : { statusCode: 403 };
      expect(await plain({ id: 'plain' }, lambdaContext(name))).toEqual(expected);
      runs = 0;
      expect(await handler({ id: 'e-4' }, lambdaContext(name))).toEqual(expected);
      expect((await recordOf(name, 'e-4'))?.response?.S).toBe(stored);
      fail = false;
      expect(await handler({ id: 'e-4' }, lambdaContext(name))).toEqual({ statusCode: 201, run: 1 });
    },
  );

  test("a thrown error in an inner `after`, once the handler returned, completes the record with the handler's response: the retry does not run it again", async () => {
    let runs = 0;
    let fail = true;
    const handler = middy(async () => ({ charged: ++runs }))
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({
        after: (request: { response: unknown }) => {
          request.response = { statusCode: 200, body: request.response };
          if (fail) throw new Error('serializer failed');
        },
      })
      .use({ onError: (request: { response: unknown }) => void (request.response = undefined) });
    await expect(handler({ id: 's-1' }, lambdaContext('after-throws'))).rejects.toThrow('serializer failed');
    expect((await recordOf('after-throws', 's-1'))?.status?.S).toBe('COMPLETED');
    fail = false;
    expect(await handler({ id: 's-1' }, lambdaContext('after-throws'))).toEqual({ statusCode: 200, body: { charged: 1 } });
    expect(runs).toBe(1);
  });

  test("an outer `after` that throws once this middleware completed the record leaves it COMPLETED: this middleware's `onError`, run after it ended the call, deletes nothing", async () => {
    let runs = 0;
    let fail = true;
    const ends: string[] = [];
    const complete = jest.spyOn(store, 'complete');
    const release = jest.spyOn(store, 'release');
    const handler = middy(async () => ({ charged: ++runs }))
      .use({
        after: () => {
          ends.push('outer after');
          if (fail) throw new Error('outer serializer failed');
        },
        onError: () => void ends.push('outer onError'),
      })
      .use(idempotency({ store, key: (event: { id: string }) => event.id }));
    try {
      await expect(handler({ id: 's-2' }, lambdaContext('outer-after-throws'))).rejects.toThrow('outer serializer failed');
      // middy ran this middleware's `after` (which completed the record), then every `onError`, this one's first.
      expect(ends).toEqual(['outer after', 'outer onError']);
      expect((await recordOf('outer-after-throws', 's-2'))?.status?.S).toBe('COMPLETED');
      // The call ended once, in `after`: nothing is sent for it again.
      expect(complete).toHaveBeenCalledTimes(1);
      expect(release).not.toHaveBeenCalled();
      fail = false;
      expect(await handler({ id: 's-2' }, lambdaContext('outer-after-throws'))).toEqual({ charged: 1 });
      expect(runs).toBe(1);
    } finally {
      complete.mockRestore();
      release.mockRestore();
    }
  });
});

describe('single-flight: in-process duplicates share one claim', () => {
  test('20 concurrent duplicates: one execution, every caller gets the value, two requests', async () => {
    const { store: counted, requests } = countingStore();
    const turnstile = new Turnstile<string>();
    const once = makeIdempotent(async (_: string) => ({ charged: await turnstile.enter() }), { store: counted, name: 'flight' });
    const calls = Array.from({ length: 20 }, () => once('f-1'));
    (await turnstile.next()).open('once');
    const results = await Promise.all(calls);
    expect(results).toEqual(Array.from({ length: 20 }, () => ({ charged: 'once' })));
    expect(turnstile.count).toBe(1);
    expect(requests).toEqual(['PutItemCommand', 'UpdateItemCommand']);
  });

  test('round trips: a first call makes 2 requests, a replay 1, a replay from the local cache (`cacheSize`) none', async () => {
    const { store: counted, requests } = countingStore();
    let runs = 0;
    const fn = async (id: string) => ({ charged: id, run: ++runs });
    const once = makeIdempotent(fn, { store: counted, name: 'round-trips' });
    expect(await once('r-1')).toEqual({ charged: 'r-1', run: 1 });
    expect(requests.splice(0)).toEqual(['PutItemCommand', 'UpdateItemCommand']);
    expect(await once('r-1')).toEqual({ charged: 'r-1', run: 1 });
    expect(requests.splice(0)).toEqual(['PutItemCommand']);
    const cached = makeIdempotent(fn, { store: counted, name: 'round-trips', cacheSize: 10 });
    expect(await cached('r-1')).toEqual({ charged: 'r-1', run: 1 });
    expect(requests.splice(0)).toEqual(['PutItemCommand']); // learnt from the refused claim, then kept
    expect(await cached('r-1')).toEqual({ charged: 'r-1', run: 1 });
    expect(requests).toEqual([]);
    expect(runs).toBe(1);
  });

  test('a duplicate with another payload gets PAYLOAD_MISMATCH, the others the value', async () => {
    const turnstile = new Turnstile<number>();
    const once = makeIdempotent(async (input: { id: string; amount: number }) => ({ paid: await turnstile.enter(), amount: input.amount }), {
      store,
      name: 'flight-fingerprint',
      key: (input) => input.id,
      fingerprint: (input) => input.amount,
    });
    const same = once({ id: 'p-1', amount: 5 });
    const twin = once({ id: 'p-1', amount: 5 });
    const other = once({ id: 'p-1', amount: 7 });
    (await turnstile.next()).open(1);
    expect(await same).toEqual({ paid: 1, amount: 5 });
    expect(await twin).toEqual({ paid: 1, amount: 5 });
    expect((await rejection(other)).code).toBe('PAYLOAD_MISMATCH');
    expect(turnstile.count).toBe(1);
  });

  test('when the leader fails, one duplicate runs next and the others follow it', async () => {
    const turnstile = new Turnstile<'fail' | 'ok'>();
    const once = makeIdempotent(
      async (_: string) => {
        if ((await turnstile.enter()) === 'fail') throw new Error('provider timed out');
        return 'charged';
      },
      { store, name: 'flight-failure' },
    );
    const calls = Array.from({ length: 5 }, () =>
      once('x-1').then(
        (value) => ({ value }),
        (error: Error) => ({ error: error.message }),
      ),
    );
    (await turnstile.next()).open('fail');
    (await turnstile.next()).open('ok');
    const results = await Promise.all(calls);
    expect(results).toEqual([{ error: 'provider timed out' }, ...Array.from({ length: 4 }, () => ({ value: 'charged' }))]);
    expect(turnstile.count).toBe(2);
  });

  test('a stored final error reaches every waiting duplicate', async () => {
    const turnstile = new Turnstile();
    const once = makeIdempotent(
      async (_: string) => {
        await turnstile.enter();
        throw Object.assign(new Error('card declined'), { code: 'DECLINED' });
      },
      { store, name: 'flight-final', isFinalError: (error) => (error as { code?: string }).code === 'DECLINED' },
    );
    const calls = Array.from({ length: 3 }, () =>
      once('d-1').then(
        () => undefined,
        (error: unknown) => error,
      ),
    );
    (await turnstile.next()).open();
    for (const error of await Promise.all(calls)) expect(error).toMatchObject({ message: 'card declined', code: 'DECLINED' });
    expect(turnstile.count).toBe(1);
  });

  test('a call nested in the function of a call with its key, directly or through another call, is IN_PROGRESS at once', async () => {
    const runs: string[] = [];
    const once: (id: string) => Promise<string> = makeIdempotent(
      async (id: string) => {
        runs.push(id);
        const code = (error: IdempotencyError) => error.code;
        if (id.endsWith('/via')) return once(id.slice(0, -'/via'.length)).catch(code);
        return `${await once(id).catch(code)} ${await once(`${id}/via`)}`;
      },
      // Waiting on itself, a nested call would take the record over at the lease and run a second time.
      { store, name: 'flight-nested', leaseSeconds: 2 },
    );
    expect(await once('r-1')).toBe('IN_PROGRESS IN_PROGRESS');
    expect(runs).toEqual(['r-1', 'r-1/via']);
    expect((await recordOf('flight-nested', 'r-1'))?.status?.S).toBe('COMPLETED');
  }, 10_000);

  test('a call nested in the call that holds its key, with another payload, gets PAYLOAD_MISMATCH, as on meeting the record', async () => {
    const once: (input: { id: string; amount: number }) => Promise<string> = makeIdempotent(
      async (input: { id: string; amount: number }) => {
        if (input.amount !== 5) return 'ran';
        return once({ id: input.id, amount: 7 }).catch((error: IdempotencyError) => error.code);
      },
      { store, name: 'flight-nested-mismatch', key: (input) => input.id, fingerprint: (input) => input.amount },
    );
    // A retry after the holder has ended gets PAYLOAD_MISMATCH too: IN_PROGRESS would ask for a retry that never passes.
    expect(await once({ id: 'nm-1', amount: 5 })).toBe('PAYLOAD_MISMATCH');
    expect((await rejection(once({ id: 'nm-1', amount: 7 }))).code).toBe('PAYLOAD_MISMATCH');
  });

  test.each([
    ['single-flight', true],
    ['singleFlight: false', false],
  ])(
    "%s: a call nested in the call that holds its key, once that call's lease has passed, is IN_PROGRESS: it never takes the record over from its own caller and runs again",
    async (_, singleFlight) => {
      const clock = manualClock();
      let runs = 0;
      const once: (id: string) => Promise<string> = makeIdempotent(
        async (id: string) => {
          if (++runs > 1) return 'ran again';
          clock.advance(2_000); // the function outlives its lease, still running
          return `outer (${await once(id).catch((error: IdempotencyError) => error.code)})`;
        },
        { store: new InMemoryStore(), name: 'nested-past-lease', leaseSeconds: 1, now: clock.now, singleFlight },
      );
      expect(await once('l-1')).toBe('outer (IN_PROGRESS)');
      expect(runs).toBe(1);
    },
  );

  test("an atomic call nested in the claimed call that holds its key (another wrapper of its name) is IN_PROGRESS at once, also past that call's lease: its function does not run, and it never commits over its own caller's record", async () => {
    const clock = manualClock();
    const name = 'nested-atomic-in-claimed';
    const requests: string[] = [];
    const counted = testClient();
    counted.middlewareStack.add((next, context) => async (args) => (requests.push(context.commandName!), next(args)), { step: 'initialize', name: 'count' });
    const atomicStore = new DynamoDBStore({ tableName, client: counted });
    let innerRuns = 0;
    const inner = makeIdempotent(async (id: string) => `inner ${id} (${++innerRuns})`, { store: atomicStore, name, atomic: true, now: clock.now });
    const outer = makeIdempotent(
      async (id: string) => {
        clock.advance(2_000); // the function outlives its lease, still running
        return `outer (${await inner(id).catch((error: IdempotencyError) => error.code)})`;
      },
      { store, name, leaseSeconds: 1, now: clock.now },
    );
    expect(await outer('na-1')).toBe('outer (IN_PROGRESS)');
    expect(innerRuns).toBe(0);
    expect(requests).toEqual([]);
    expect((await recordOf(name, 'na-1'))?.response?.S).toBe(JSON.stringify('outer (IN_PROGRESS)'));
  });

  test.each([
    ['claimed', false],
    ['atomic', true],
  ])(
    "%s: a call that work left running by a returned call starts with its key while that call's outcome is being stored follows that outcome: no IN_PROGRESS, no second run",
    async (_, atomic) => {
      // The call's first store request after its function returned (its completion; an atomic call's only one) waits for the test.
      const held = testClient();
      const storing = gate();
      const proceed = gate();
      let first = true;
      held.middlewareStack.add(
        (next, context) => async (args) => {
          if (first && (atomic || context.commandName === 'UpdateItemCommand')) {
            first = false;
            storing.open();
            await proceed.promise;
          }
          return next(args);
        },
        { step: 'initialize', name: 'hold' },
      );
      let runs = 0;
      let later: Promise<string> | undefined;
      const once: (id: string) => Promise<string> = makeIdempotent(
        async (id: string) => {
          if (++runs === 1) later = storing.promise.then(() => once(id).catch((error: IdempotencyError) => error.code));
          return `run ${runs}`;
        },
        { store: new DynamoDBStore({ tableName, client: held }), name: `flight-left-running-${atomic}`, atomic },
      );
      const call = once('lr-1');
      await storing.promise;
      await flush(); // the call started by the work left running has reached its wait
      proceed.open();
      expect(await call).toBe('run 1');
      expect(await later).toBe('run 1');
      expect(runs).toBe(1);
    },
  );

  test.each([
    ['single-flight', true],
    ['singleFlight: false', false],
  ])(
    '%s: a call that work left running starts with its key as the function returns, before its call has ended, is no call nested in a holder: it follows the outcome, or meets the record as any duplicate does',
    async (_, singleFlight) => {
      let runs = 0;
      let later: Promise<string> | undefined;
      const once: (id: string) => Promise<string> = makeIdempotent(
        async (id: string) => {
          // Scheduled by the function, run once it has returned (two turns later), before its call ends.
          if (++runs === 1)
            later = Promise.resolve()
              .then()
              .then(() => once(id).catch((error: IdempotencyError) => error.message));
          return `run ${runs}`;
        },
        { store, name: `flight-left-returning-${singleFlight}`, singleFlight },
      );
      expect(await once('lr-2')).toBe('run 1');
      if (singleFlight) expect(await later).toBe('run 1');
      else expect(await later).not.toMatch(/nested/);
      expect(runs).toBe(1);
    },
  );

  test('middy: a duplicate dispatched while the first runs, from the async context that dispatched the first (a runtime loop), waits for it', async () => {
    const turnstile = new Turnstile<string>();
    const handler = middy(async (event: { id: string }) => ({ charged: await turnstile.enter(), id: event.id })).use(
      idempotency({ store, key: (event: { id: string }) => event.id }),
    );
    const first = handler({ id: 'loop-1' }, lambdaContext('flight-loop'));
    const holder = await turnstile.next();
    const duplicate = handler({ id: 'loop-1' }, lambdaContext('flight-loop'));
    holder.open('once');
    expect(await first).toEqual({ charged: 'once', id: 'loop-1' });
    expect(await duplicate).toEqual({ charged: 'once', id: 'loop-1' });
    expect(turnstile.count).toBe(1);
  });

  test('middy: a handler that invokes itself with its own key gets IN_PROGRESS at once, and its transaction() stays its own', async () => {
    const seen: string[] = [];
    const self: { handler?: (event: { id: string; inner?: boolean }, context: Context) => Promise<unknown> } = {};
    const handler = middy(async (event: { id: string; inner?: boolean }, context: Context) => {
      if (event.inner) return 'inner ran';
      const before = transaction();
      const nested = await self.handler!({ id: event.id, inner: true }, context).catch((error: IdempotencyError) => error.code);
      seen.push(String(nested), String(before === transaction()));
      return 'outer';
    }).use(idempotency({ store, key: (event: { id: string }) => event.id, leaseSeconds: 2 }));
    self.handler = (event, context) => handler(event, context);
    expect(await handler({ id: 'self-1' }, lambdaContext('flight-self'))).toBe('outer');
    expect(seen).toEqual(['IN_PROGRESS', 'true']);
    expect((await recordOf('flight-self', 'self-1'))?.status?.S).toBe('COMPLETED');
  }, 10_000);

  test("a duplicate arriving at the last millisecond of the leader's lease waits for it: no store lets a takeover in yet", async () => {
    const clock = manualClock();
    const turnstile = new Turnstile<string>();
    // InMemoryStore answers within one turn of the event loop: `flush` lets a claim finish.
    const once = makeIdempotent(async (_: string) => turnstile.enter(), {
      store: new InMemoryStore(),
      name: 'flight-boundary',
      leaseSeconds: 1,
      now: clock.now,
    });
    const first = once('b-1');
    const holder = await turnstile.next();
    clock.advance(1000);
    const duplicate = once('b-1');
    await new Promise((resolve) => setImmediate(resolve)); // the duplicate's claim, had it made one, is answered
    holder.open('first');
    expect(await first).toBe('first');
    expect(await duplicate).toBe('first');
    expect(turnstile.count).toBe(1);
  });

  test.each([
    ['with Lambda contexts, the leader timed out at its deadline', 1_000 as number | undefined, 60_000 as number | undefined],
    ['without contexts, past leaseSeconds', undefined, undefined],
  ])(
    "a duplicate that arrived while the leader's claim was in flight takes the record over once the leader's lease ends, as one arriving later does (%s)",
    async (_, leaderMillis, duplicateMillis) => {
      const clock = manualClock();
      const memory = new InMemoryStore();
      const claimAnswered = gate();
      let claims = 0;
      // The leader's claim is held in flight until the test lets it answer.
      const held: IdempotencyStore = {
        claim: async (request) => {
          if (++claims === 1) await claimAnswered.promise;
          return memory.claim(request);
        },
        complete: (request) => memory.complete(request),
        release: (request) => memory.release(request),
      };
      const turnstile = new Turnstile<string>();
      const once = makeIdempotent(async (_: string, __?: Context) => turnstile.enter(), {
        store: held,
        name: 'flight-claiming',
        leaseSeconds: 1,
        now: clock.now,
      });
      const contextOf = (remainingMillis: number | undefined) =>
        remainingMillis === undefined ? undefined : testingContext({ functionName: 'flight-claiming', remainingMillis, now: clock.now });
      const first = once('cl-1', contextOf(leaderMillis));
      await flush();
      const duplicate = once('cl-1', contextOf(duplicateMillis));
      await flush();
      // The leader's claim answers after its lease (1 s) has passed: it runs on, past its lease.
      clock.advance(1_001);
      claimAnswered.open();
      const leader = await turnstile.next();
      (await turnstile.next()).open('second');
      expect(await duplicate).toBe('second');
      leader.open('first');
      expect((await rejection(first)).code).toBe('SUPERSEDED');
      expect(turnstile.count).toBe(2);
    },
  );

  test("a duplicate waits for its leader only while it can still answer before its own Lambda deadline: then IN_PROGRESS, with the leader's lease", async () => {
    const clock = manualClock();
    const turnstile = new Turnstile<string>();
    // The leader has no Lambda context: it holds the key for `leaseSeconds`, far past the duplicate's deadline.
    const once = makeIdempotent(async (_: string, __?: Context) => turnstile.enter(), { store, name: 'flight-deadline', leaseSeconds: 60, now: clock.now });
    const first = once('dl-1');
    const holder = await turnstile.next();
    const context = testingContext({ functionName: 'flight-deadline', remainingMillis: 300, now: clock.now });
    const duplicate = rejection(once('dl-1', context));
    // A tenth of the time left before its deadline, the duplicate stops waiting (the clock stands still otherwise).
    clock.advance(270);
    const error = await duplicate;
    expect(error.code).toBe('IN_PROGRESS');
    expect(error.retryAfterSeconds).toBe(60);
    expect(context.getRemainingTimeInMillis()).toBe(30);
    holder.open('first');
    expect(await first).toBe('first');
    expect(turnstile.count).toBe(1);
  });

  test('a duplicate with another payload that runs out of time to wait gets PAYLOAD_MISMATCH, as on meeting the record', async () => {
    const clock = manualClock();
    const turnstile = new Turnstile<string>();
    const once = makeIdempotent(async (_: { id: string; amount: number }, __?: Context) => turnstile.enter(), {
      store,
      name: 'flight-deadline-mismatch',
      key: (input) => input.id,
      fingerprint: (input) => input.amount,
      now: clock.now,
    });
    const first = once({ id: 'dm-1', amount: 5 });
    const holder = await turnstile.next();
    const context = testingContext({ functionName: 'flight-deadline-mismatch', remainingMillis: 300, now: clock.now });
    const other = rejection(once({ id: 'dm-1', amount: 7 }, context));
    clock.advance(270);
    expect((await other).code).toBe('PAYLOAD_MISMATCH');
    holder.open('first');
    expect(await first).toBe('first');
  });

  test('singleFlight: false answers in-process duplicates IN_PROGRESS, as another process would be', async () => {
    const turnstile = new Turnstile();
    const once = makeIdempotent(async (_: string) => turnstile.enter(), { store, name: 'no-flight', singleFlight: false });
    const first = once('n-1');
    const holder = await turnstile.next();
    expect((await rejection(once('n-1'))).code).toBe('IN_PROGRESS');
    holder.open();
    await first;
  });
});

describe('waiting for another process (waitForInProgressMillis)', () => {
  /** Two wrappers of one function: two processes sharing the table, and nothing else. */
  function twoProcesses(waitForInProgressMillis: number) {
    const turnstile = new Turnstile<string>();
    const fn = async (_: string) => turnstile.enter();
    return {
      turnstile,
      a: makeIdempotent(fn, { store, name: `wait-${waitForInProgressMillis}` }),
      b: makeIdempotent(fn, { store, name: `wait-${waitForInProgressMillis}`, waitForInProgressMillis }),
    };
  }

  /** Process a holds the key, process b waits for it up to a minute, both on one manual clock. */
  async function holdingOnAClock(name: string, key: string) {
    const clock = manualClock();
    const turnstile = new Turnstile<string>();
    const fn = async (_: string, __?: Context) => turnstile.enter();
    const a = makeIdempotent(fn, { store, name, now: clock.now });
    const b = makeIdempotent(fn, { store, name, now: clock.now, waitForInProgressMillis: 60_000 });
    const first = a(key);
    return { clock, turnstile, b, first, holder: await turnstile.next() };
  }

  test("a duplicate that waits gets the original's value once it completes", async () => {
    const { turnstile, a } = twoProcesses(10_000);
    // Process b's client opens `met` once its claim has been answered: the original completes only
    // after b has met its record, however long that takes on a loaded machine.
    const claims = testClient();
    const met = gate();
    claims.middlewareStack.add(
      (next, context) => async (args) => {
        try {
          return await next(args);
        } finally {
          if (context.commandName === 'PutItemCommand') met.open();
        }
      },
      { step: 'initialize', name: 'met' },
    );
    const b = makeIdempotent(async (_: string) => turnstile.enter(), {
      store: new DynamoDBStore({ tableName, client: claims }),
      name: 'wait-10000',
      waitForInProgressMillis: 10_000,
    });
    const first = a('w-1');
    const holder = await turnstile.next();
    let answered = false;
    const waiting = b('w-1').finally(() => (answered = true));
    await met.promise;
    await flush();
    // b met the INPROGRESS record and goes on waiting, instead of answering IN_PROGRESS.
    expect(answered).toBe(false);
    holder.open('original');
    expect(await first).toBe('original');
    expect(await waiting).toBe('original');
    expect(turnstile.count).toBe(1);
  });

  test('a duplicate gives up at the bound with IN_PROGRESS, and holds nothing', async () => {
    const { turnstile, a, b } = twoProcesses(150);
    const first = a('w-2');
    const holder = await turnstile.next();
    const error: IdempotencyError = await rejection(b('w-2'));
    expect(error.code).toBe('IN_PROGRESS');
    expect((await recordOf('wait-150', 'w-2'))?.status?.S).toBe('INPROGRESS');
    holder.open('original');
    expect(await first).toBe('original');
    expect(turnstile.count).toBe(1);
  });

  test('a duplicate that claims the key after waiting holds it until its Lambda deadline, not a whole timeout after the claim', async () => {
    const clock = manualClock();
    const deadline = clock.now() + 20_000;
    const turnstile = new Turnstile<string | Error>();
    const fn = async (_: string, __?: unknown) => {
      const step = await turnstile.enter();
      if (step instanceof Error) throw step;
      return step;
    };
    const a = makeIdempotent(fn, { store, name: 'wait-deadline', now: clock.now });
    const b = makeIdempotent(fn, { store, name: 'wait-deadline', now: clock.now, waitForInProgressMillis: 10_000 });
    const first = a('w-4');
    const holder = await turnstile.next();
    const waiting = b('w-4', testingContext({ functionName: 'wait-deadline', remainingMillis: 20_000, now: clock.now }));
    clock.advance(5_000);
    holder.open(new Error('provider down')); // the holder fails and releases: the waiting duplicate claims
    await expect(first).rejects.toThrow('provider down');
    const running = await turnstile.next();
    expect((await recordOf('wait-deadline', 'w-4'))?.leaseUntil?.N).toBe(String(deadline));
    running.open('second');
    expect(await waiting).toBe('second');
  });

  test('an in-process duplicate with time to wait of its own waits, when the leader it followed was out of time to wait for another process', async () => {
    const { clock, turnstile, b, first, holder } = await holdingOnAClock('wait-follower', 'w-7');
    // In process b: a leader near its deadline, which cannot wait, and a follower with time to.
    const hurried = rejection(b('w-7', testingContext({ functionName: 'wait-follower', remainingMillis: 5, now: clock.now })));
    const patient = b('w-7', testingContext({ functionName: 'wait-follower', remainingMillis: 20_000, now: clock.now }));
    expect((await hurried).code).toBe('IN_PROGRESS');
    holder.open('original');
    expect(await first).toBe('original');
    expect(await patient).toBe('original');
    expect(turnstile.count).toBe(1);
  });

  test.each([
    [4_400, 'gets the value once the original completes'],
    [4_600, 'answers IN_PROGRESS, in time to answer before its deadline'],
  ])('a duplicate with 5 s left waits until half a second before its Lambda deadline: at %i ms it %s', async (elapsed) => {
    const clock = manualClock();
    const turnstile = new Turnstile<string>();
    const fn = async (_: string, __?: Context) => turnstile.enter();
    const name = `wait-tenth-${elapsed}`;
    // Open once process b's first, then its second claim has met the record process a holds.
    const claims = testClient();
    const met = [gate(), gate()];
    let answered = 0;
    claims.middlewareStack.add(
      (next, context) => async (args) => {
        try {
          return await next(args);
        } finally {
          if (context.commandName === 'PutItemCommand') met[answered++]?.open();
        }
      },
      { step: 'initialize', name: 'met' },
    );
    const a = makeIdempotent(fn, { store, name, now: clock.now });
    const b = makeIdempotent(fn, { store: new DynamoDBStore({ tableName, client: claims }), name, now: clock.now, waitForInProgressMillis: 60_000 });
    const first = a('w-10');
    const holder = await turnstile.next();
    const waiting = b('w-10', testingContext({ functionName: name, remainingMillis: 5_000, now: clock.now }));
    await met[0]!.promise;
    clock.advance(elapsed);
    // The original completes once b has looked again (or given up): a b still waiting then gets its value.
    await Promise.race([met[1]!.promise, waiting.then(flush, flush)]);
    holder.open('original');
    expect(await first).toBe('original');
    if (elapsed > 4_500) expect((await rejection(waiting)).code).toBe('IN_PROGRESS');
    else expect(await waiting).toBe('original');
    expect(turnstile.count).toBe(1);
  });

  test('a follower that leads after its leader ran out of time waits for another process only until its own waitForInProgressMillis from its start, not a fresh window', async () => {
    const clock = manualClock();
    const t0 = clock.now();
    const turnstile = new Turnstile<string>();
    const fn = async (_: string, __?: Context) => turnstile.enter();
    const name = 'wait-follower-total';
    // The clock stands still between the test's steps: each claim process b sends is stamped with its time.
    const claims = testClient();
    const claimedAt: number[] = [];
    const claimed: (() => void)[] = [];
    claims.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === 'PutItemCommand') {
          claimedAt.push(clock.now());
          for (const check of claimed) check();
        }
        return next(args);
      },
      { step: 'initialize', name: 'stamp' },
    );
    /** Resolves once process b has sent `count` claims at `at` or later. */
    const claimsFrom = (at: number, count: number) =>
      new Promise<void>((resolve) => {
        const check = () => claimedAt.filter((t) => t >= at).length >= count && resolve();
        claimed.push(check);
        check();
      });
    const a = makeIdempotent(fn, { store, name, now: clock.now });
    const b = makeIdempotent(fn, { store: new DynamoDBStore({ tableName, client: claims }), name, now: clock.now, waitForInProgressMillis: 10_000 });
    const first = a('w-9');
    const holder = await turnstile.next();
    // In process b, both at t0: a leader that can wait 4.5 s (its deadline), and a follower that may wait 10 s.
    const hurried = rejection(b('w-9', testingContext({ functionName: name, remainingMillis: 5_000, now: clock.now })));
    const patient = rejection(b('w-9', testingContext({ functionName: name, remainingMillis: 60_000, now: clock.now })));
    await claimsFrom(t0, 1);
    await flush();
    clock.advance(4_500);
    expect((await hurried).code).toBe('IN_PROGRESS');
    await claimsFrom(t0 + 4_500, 2); // the follower led and met the record itself
    clock.advance(5_500);
    // At t0 + 10 s its wait is over: a second poll from then on would be a window counted from its own claim.
    const ended = await Promise.race([patient.then((error) => error.code), claimsFrom(t0 + 10_000, 2).then(() => 'polled on')]);
    expect(ended).toBe('IN_PROGRESS');
    holder.open('original');
    expect(await first).toBe('original');
    expect(turnstile.count).toBe(1);
    claims.destroy();
  });

  test("in-process duplicates of a leader that met another process's attempt, none of them waiting for another process, answer IN_PROGRESS with it: one claim, not one each", async () => {
    const turnstile = new Turnstile<string>();
    const fn = async (_: string) => turnstile.enter();
    const a = makeIdempotent(fn, { store, name: 'wait-none' });
    const { store: counted, requests } = countingStore();
    const b = makeIdempotent(fn, { store: counted, name: 'wait-none' });
    const first = a('w-8');
    const holder = await turnstile.next();
    const duplicates = Array.from({ length: 5 }, async () => (await rejection(b('w-8'))).code);
    expect(await Promise.all(duplicates)).toEqual(Array.from({ length: 5 }, () => 'IN_PROGRESS'));
    expect(requests).toEqual(['PutItemCommand']);
    holder.open('original');
    expect(await first).toBe('original');
  });

  test('the wait ends while the caller can still answer: a tenth of its time left (at most 1 s) before its Lambda deadline', async () => {
    const { clock, b, first, holder } = await holdingOnAClock('wait-margin', 'w-5');
    const context = testingContext({ functionName: 'wait-margin', remainingMillis: 300, now: clock.now });
    const waiting = rejection(b('w-5', context));
    // The clock stands still but for this: the duplicate polls until it reads 30 ms before the deadline.
    clock.advance(270);
    expect((await waiting).code).toBe('IN_PROGRESS');
    expect(context.getRemainingTimeInMillis()).toBe(30);
    holder.open('original');
    expect(await first).toBe('original');
  });

  // Without the monotonic bound, the wait after the step lasts an hour, until Jest gives up on it.
  test.each([
    ['for an in-process leader', { singleFlight: true }],
    ['for another process', { singleFlight: false, waitForInProgressMillis: 60_000 }],
  ])('a wall clock that steps back an hour during a wait %s never stretches it past the Lambda deadline', async (_, waiting) => {
    let t = Date.now();
    const turnstile = new Turnstile<string>();
    const fn = async (_: string, __?: Context) => turnstile.enter();
    const name = `clock-step-${waiting.singleFlight}`;
    const leader = makeIdempotent(fn, { store, name, now: () => t });
    const follower = waiting.singleFlight ? leader : makeIdempotent(fn, { store, name, now: () => t, ...waiting });
    const first = leader('s-1', lambdaContext(name, 10_000));
    const holder = await turnstile.next();
    const waited = rejection(follower('s-1', lambdaContext(name, 300)));
    t -= 3_600_000;
    expect((await waited).code).toBe('IN_PROGRESS');
    holder.open('done');
    expect(await first).toBe('done');
  });

  test('the wait never outlasts the Lambda deadline', async () => {
    const { turnstile, a } = twoProcesses(0);
    const b = makeIdempotent(async (_: string, __: unknown) => turnstile.enter(), { store, name: 'wait-0', waitForInProgressMillis: 60_000 });
    const first = a('w-3');
    const holder = await turnstile.next();
    const started = Date.now();
    const error = await rejection(b('w-3', lambdaContext('wait-0', 120)));
    expect(error.code).toBe('IN_PROGRESS');
    expect(Date.now() - started).toBeLessThan(30_000);
    holder.open('original');
    await first;
  });
});

describe('retention', () => {
  const T0 = 1_800_000_000_000;

  test("a call keeps its record for the store's retention (IDEMPOTENCY_EXPIRES_AFTER_SECONDS), unless the call sets its own", async () => {
    const previous = process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS;
    process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS = '345600';
    let fourDays: DynamoDBStore;
    try {
      fourDays = new DynamoDBStore({ tableName, client });
    } finally {
      if (previous === undefined) delete process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS;
      else process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS = previous;
    }
    await makeIdempotent(async (_: string) => 'ok', { store: fourDays, name: 'retention-store', now: () => T0 })('r-1');
    expect((await recordOf('retention-store', 'r-1'))?.expiration?.N).toBe(String(T0 / 1000 + 345_600));
    await makeIdempotent(async (_: string) => 'ok', { store: fourDays, name: 'retention-call', now: () => T0, expiresAfterSeconds: 60 })('r-1');
    expect((await recordOf('retention-call', 'r-1'))?.expiration?.N).toBe(String(T0 / 1000 + 60));
    await makeIdempotent(async (_: string) => 'ok', { store, name: 'retention-default', now: () => T0 })('r-1');
    expect((await recordOf('retention-default', 'r-1'))?.expiration?.N).toBe(String(T0 / 1000 + 86_400));
    // httpIdempotency takes the same default (its record id is derived from the request).
    const http = middy(async () => ({ statusCode: 201, body: 'ok' })).use(httpIdempotency({ store, name: 'retention-http', now: () => T0 }));
    expect(await http(paymentRequest('r-1'), lambdaContext('retention-http'))).toMatchObject({ statusCode: 201 });
    expect((await scanItems(client, tableName, 'retention-http#')).map((item) => item.expiration?.N)).toEqual([String(T0 / 1000 + 86_400)]);
  });
});
