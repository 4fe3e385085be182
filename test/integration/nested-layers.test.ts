/**
 * Two idempotency layers on one request, against DynamoDB Local: the outer layer keeps no outcome
 * the inner one did not keep, and never releases one the inner kept so that the handler runs twice.
 */

import { type DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { jest } from '@jest/globals';
import middy from '@middy/core';
import { DynamoDBStore, type HttpEvent, httpIdempotency, idempotency, makeIdempotent, transaction } from '../../lib/index.js';
import { readItem, recordId, scanItems, testClient, useBusinessTable, useFreshTable } from '../support/dynamodb.js';
import { gate } from '../support/gate.js';
import { lambdaContext } from '../support/lambda.js';
import { responseLogger } from '../support/middy.js';
import { paymentRequest } from '../support/payment-request.js';

const { client, tableName, store } = useFreshTable({ prefix: 'nested-layers' });
const admin: DynamoDBClient = testClient();
const bizTable = useBusinessTable(admin);
afterAll(() => admin.destroy());

const bizItem = async (id: string) => (await readItem(admin, bizTable, id))?.id?.S;
const recordOf = (name: string, key: unknown) => readItem(client, tableName, recordId(name, key));
const records = (name: string) => scanItems(client, tableName, `${name}#`);
const keyOf = (event: HttpEvent) => event.headers['idempotency-key'];

/** A store on the records' table whose next commit of a call's writes gets no answer (a lost response). */
function storeLosingNextCommit(): DynamoDBStore {
  const inner = new DynamoDBStore({ tableName, client });
  jest.spyOn(inner, 'completeWithWrites').mockRejectedValueOnce(Object.assign(new Error('socket hang up'), { name: 'NetworkingError' }));
  return inner;
}

/** A handler that writes the item `<prefix>-<key>` with its call and answers `201 run <n>`, the n-th time it runs. */
function writingPayment(prefix: string) {
  let runs = 0;
  return middy(async (event: HttpEvent) => {
    runs++;
    transaction().put({ TableName: bizTable, Item: { id: `${prefix}-${keyOf(event)}` } });
    return { statusCode: 201, body: `run ${runs}` };
  });
}

describe('an inner layer that ends on an error a middleware inside it threw, once the handler returned', () => {
  test.each(['idempotency', 'httpIdempotency'] as const)(
    'inner %s: writes that fail their condition are kept by neither layer: the retry does not replay a payment that never applied',
    async (kind) => {
      const name = `cond-${kind}`;
      let runs = 0;
      const logger = responseLogger();
      const handler = middy(async (event: HttpEvent) => {
        runs++;
        transaction().put({ TableName: bizTable, Item: { id: `${name}-${keyOf(event)}` }, ConditionExpression: 'attribute_not_exists(id)' });
        return { statusCode: 201, body: 'paid' };
      })
        .use(idempotency({ store, name: `${name}-outer`, key: keyOf }))
        .use(kind === 'idempotency' ? idempotency({ store, name: `${name}-inner`, key: keyOf }) : httpIdempotency({ store, name: `${name}-inner` }))
        .use(logger.middleware);
      await admin.send(new PutItemCommand({ TableName: bizTable, Item: { id: { S: `${name}-k-1` } } }));
      await expect(handler(paymentRequest('k-1'), lambdaContext('nested'))).rejects.toThrow('response logger down');
      expect(await records(`${name}-inner`)).toHaveLength(0);
      expect(await recordOf(`${name}-outer`, 'k-1')).toBeUndefined();
      logger.down = false;
      const retry = await handler(paymentRequest('k-1'), lambdaContext('nested')).catch((error: unknown) => error);
      expect(retry).not.toEqual({ statusCode: 201, body: 'paid' });
      expect(runs).toBe(2);
    },
  );

  test.each(['idempotency', 'httpIdempotency'] as const)(
    'inner %s: a commit without an answer is kept by neither layer: the retry runs and commits the writes',
    async (kind) => {
      const name = `lost-${kind}`;
      const inner = storeLosingNextCommit();
      const logger = responseLogger();
      const handler = writingPayment(name)
        .use(idempotency({ store, name: `${name}-outer`, key: keyOf }))
        .use(
          kind === 'idempotency' ? idempotency({ store: inner, name: `${name}-inner`, key: keyOf }) : httpIdempotency({ store: inner, name: `${name}-inner` }),
        )
        .use(logger.middleware);
      await expect(handler(paymentRequest('k-2'), lambdaContext('nested'))).rejects.toThrow('response logger down');
      expect(await bizItem(`${name}-k-2`)).toBeUndefined();
      expect(await records(`${name}-inner`)).toHaveLength(0);
      expect(await recordOf(`${name}-outer`, 'k-2')).toBeUndefined();
      logger.down = false;
      expect(await handler(paymentRequest('k-2'), lambdaContext('nested'))).toEqual({ statusCode: 201, body: 'run 2' });
      expect(await bizItem(`${name}-k-2`)).toBe(`${name}-k-2`);
    },
  );
});

describe('an inner layer whose verdict an outer one must follow', () => {
  test("inner httpIdempotency releases its key for the handler's 503, then a middleware inside it throws: the outer layer keeps no 503, the retry runs", async () => {
    let runs = 0;
    const logger = responseLogger();
    const handler = middy(async () => (++runs === 1 ? { statusCode: 503, body: 'bank unavailable' } : { statusCode: 201, body: 'paid' }))
      .use(idempotency({ store, name: 'p503-outer', key: keyOf }))
      .use(httpIdempotency({ store, name: 'p503-inner' }))
      .use(logger.middleware);
    await expect(handler(paymentRequest('k-3'), lambdaContext('nested'))).rejects.toThrow('response logger down');
    expect(await records('p503-inner')).toHaveLength(0);
    expect(await recordOf('p503-outer', 'k-3')).toBeUndefined();
    logger.down = false;
    expect(await handler(paymentRequest('k-3'), lambdaContext('nested'))).toEqual({ statusCode: 201, body: 'paid' });
    expect(runs).toBe(2);
  });

  test("inner httpIdempotency releases its key for the handler's 503 and answers it: the outer layer keeps no 503 either, the retry runs", async () => {
    let runs = 0;
    const handler = middy(async () => (++runs === 1 ? { statusCode: 503, body: 'bank unavailable' } : { statusCode: 201, body: 'paid' }))
      .use(idempotency({ store, name: 'a503-outer', key: keyOf }))
      .use(httpIdempotency({ store, name: 'a503-inner' }));
    expect(await handler(paymentRequest('k-8'), lambdaContext('nested'))).toEqual({ statusCode: 503, body: 'bank unavailable' });
    expect(await records('a503-inner')).toHaveLength(0);
    expect(await recordOf('a503-outer', 'k-8')).toBeUndefined();
    expect(await handler(paymentRequest('k-8'), lambdaContext('nested'))).toMatchObject({ statusCode: 201, body: 'paid' });
    expect(runs).toBe(2);
  });

  test("makeIdempotent around a handler whose inner httpIdempotency answered the handler's 503: the wrapper keeps that 503 and replays it; one that throws on a 5xx releases its key", async () => {
    let runs = 0;
    const answers = [503, 503, 201]; // the handler's status, run after run
    const handler = middy(async () => ({ statusCode: answers[runs++]!, body: `run ${runs}` })).use(httpIdempotency({ store, name: 'w503-inner' }));
    const kept = makeIdempotent(async (id: string) => handler(paymentRequest(id), lambdaContext('nested')), { store, name: 'w503-kept' });
    expect(await kept('k-20')).toEqual({ statusCode: 503, body: 'run 1' });
    expect(await records('w503-inner')).toHaveLength(0); // the inner layer kept nothing
    expect(await kept('k-20')).toEqual({ statusCode: 503, body: 'run 1' }); // the wrapper did
    expect(runs).toBe(1);

    const thrown = makeIdempotent(
      async (id: string) => {
        const response = (await handler(paymentRequest(id), lambdaContext('nested'))) as { statusCode: number; body: string };
        if (response.statusCode >= 500) throw new Error(`payment failed: ${response.statusCode}`);
        return response;
      },
      { store, name: 'w503-thrown' },
    );
    await expect(thrown('k-21')).rejects.toThrow('payment failed: 503');
    expect(await recordOf('w503-thrown', 'k-21')).toBeUndefined();
    expect(await thrown('k-21')).toEqual({ statusCode: 201, body: 'run 3' });
    expect(runs).toBe(3);
  });

  test("atomic inner: a handler error an inner onError answers with another attempt's stored outcome is not kept by the outer layer as the error", async () => {
    const held = gate();
    let runs = 0;
    interface Event {
      readonly request: string;
      readonly payment: string;
    }
    const entered = gate();
    const handler = middy(async () => {
      const run = ++runs;
      if (run > 1) return { paid: run };
      entered.open();
      await held.promise;
      throw new Error('card declined');
    })
      .use(idempotency({ store, name: 'atomic-outer', key: (event: Event) => event.request, isFinalError: () => true }))
      .use(idempotency({ store, name: 'atomic-inner', key: (event: Event) => event.payment, atomic: true, singleFlight: false, isFinalError: () => true }));
    const first = handler({ request: 'r-1', payment: 'p-1' }, lambdaContext('nested'));
    // The first request's handler runs (its outer claim answered) before the second request starts.
    await entered.promise;
    expect(await handler({ request: 'r-2', payment: 'p-1' }, lambdaContext('nested'))).toEqual({ paid: 2 });
    held.open();
    // The first caller gets the outcome the inner record keeps, not its handler's error.
    expect(await first).toEqual({ paid: 2 });
    expect(await recordOf('atomic-outer', 'r-1')).toBeUndefined();
    // Its retry gets that outcome too, not the error.
    expect(await handler({ request: 'r-1', payment: 'p-1' }, lambdaContext('nested'))).toEqual({ paid: 2 });
  });

  test("atomic inner whose commit meets another attempt's outcome, after a middleware inside it threw: the outer layer keeps no response of the handler that never committed", async () => {
    const held = gate();
    let runs = 0;
    const logger = responseLogger();
    interface Event {
      readonly request: string;
      readonly payment: string;
    }
    const entered = gate();
    const handler = middy(async () => {
      const run = ++runs;
      if (run === 1) {
        entered.open();
        await held.promise;
      }
      return { paid: run };
    })
      .use(idempotency({ store, name: 'atomic-ret-outer', key: (event: Event) => event.request }))
      .use(idempotency({ store, name: 'atomic-ret-inner', key: (event: Event) => event.payment, atomic: true, singleFlight: false }))
      .use(logger.middleware);
    const first = handler({ request: 'r-1', payment: 'p-1' }, lambdaContext('nested'));
    // The first request's handler runs (its outer claim answered) before the second request starts.
    await entered.promise;
    logger.down = false;
    expect(await handler({ request: 'r-2', payment: 'p-1' }, lambdaContext('nested'))).toEqual({ paid: 2 });
    logger.down = true;
    held.open();
    // The first caller gets the outcome the inner record keeps; the outer record keeps no response that never committed.
    expect(await first).toEqual({ paid: 2 });
    expect(await recordOf('atomic-ret-outer', 'r-1')).toBeUndefined();
    logger.down = false;
    expect(await handler({ request: 'r-1', payment: 'p-1' }, lambdaContext('nested'))).toEqual({ paid: 2 });
  });

  test('an inner `onError` that answers the error of a middleware inside both, thrown once the handler returned, waits for the inner commit: a failed one is kept by neither layer', async () => {
    const inner = storeLosingNextCommit();
    const logger = responseLogger();
    const handler = writingPayment('answered')
      .use(idempotency({ store, name: 'answered-outer', key: keyOf }))
      .use(httpIdempotency({ store: inner, name: 'answered-inner' }))
      .use({
        ...logger.middleware,
        onError: () => ({ statusCode: 500, body: 'logger down' }),
      });
    expect(await handler(paymentRequest('k-4'), lambdaContext('nested'))).toEqual({ statusCode: 500, body: 'logger down' });
    expect(await bizItem('answered-k-4')).toBeUndefined();
    expect(await records('answered-inner')).toHaveLength(0);
    expect(await recordOf('answered-outer', 'k-4')).toBeUndefined();
    logger.down = false;
    expect(await handler(paymentRequest('k-4'), lambdaContext('nested'))).toEqual({ statusCode: 201, body: 'run 2' });
    expect(await bizItem('answered-k-4')).toBe('answered-k-4');
  });

  test('outer httpIdempotency, inner idempotency whose commit fails after a middleware inside both threw: neither keeps it, the retry runs and commits', async () => {
    const inner = storeLosingNextCommit();
    const logger = responseLogger();
    const handler = writingPayment('reverse')
      .use(httpIdempotency({ store, name: 'reverse-outer' }))
      .use(idempotency({ store: inner, name: 'reverse-inner', key: keyOf }))
      .use(logger.middleware);
    await expect(handler(paymentRequest('k-5'), lambdaContext('nested'))).rejects.toThrow('response logger down');
    expect(await records('reverse-outer')).toHaveLength(0);
    expect(await recordOf('reverse-inner', 'k-5')).toBeUndefined();
    logger.down = false;
    expect(await handler(paymentRequest('k-5'), lambdaContext('nested'))).toEqual({ statusCode: 201, body: 'run 2' });
    expect(await bizItem('reverse-k-5')).toBe('reverse-k-5');
  });

  test('a final error the inner layer keeps and the outer one releases (isFinalError differs) is replayed on the retry by the inner record: the handler runs once', async () => {
    let runs = 0;
    const handler = middy(async () => {
      runs++;
      throw Object.assign(new Error('card declined'), { statusCode: 402 });
    })
      .use(idempotency({ store, name: 'final-outer', key: (event: { id: string }) => event.id }))
      .use(idempotency({ store, name: 'final-inner', key: (event: { id: string }) => event.id, isFinalError: () => true }));
    await expect(handler({ id: 'k-6' }, lambdaContext('nested'))).rejects.toThrow('card declined');
    expect(await recordOf('final-outer', 'k-6')).toBeUndefined();
    expect((await recordOf('final-inner', 'k-6'))?.status?.S).toBe('COMPLETED');
    await expect(handler({ id: 'k-6' }, lambdaContext('nested'))).rejects.toThrow('card declined');
    expect(runs).toBe(1);
    expect(await recordOf('final-outer', 'k-6')).toBeUndefined();
  });

  test("an error the inner layer releases and the outer one's isFinalError keeps is stored by the outer one: the retry gets it, the handler runs once", async () => {
    let runs = 0;
    const handler = middy(async () => {
      runs++;
      throw Object.assign(new Error('card declined'), { statusCode: 402 });
    })
      .use(idempotency({ store, name: 'judged-outer', key: (event: { id: string }) => event.id, isFinalError: () => true }))
      .use(idempotency({ store, name: 'judged-inner', key: (event: { id: string }) => event.id }));
    await expect(handler({ id: 'k-7' }, lambdaContext('nested'))).rejects.toThrow('card declined');
    expect((await recordOf('judged-outer', 'k-7'))?.status?.S).toBe('COMPLETED');
    expect(await recordOf('judged-inner', 'k-7')).toBeUndefined();
    await expect(handler({ id: 'k-7' }, lambdaContext('nested'))).rejects.toThrow('card declined');
    expect(runs).toBe(1);
  });
});

describe('one record chosen twice on one request', () => {
  test('the same idempotency() middleware used twice on one handler is a TypeError that says so, not IN_PROGRESS on every request: the handler never runs, no key is held', async () => {
    let runs = 0;
    const layer = idempotency({ store, key: (event: { id: string }) => event.id });
    const handler = middy(async () => ++runs)
      .use(layer)
      .use(layer);
    await expect(handler({ id: 'k-8' }, lambdaContext('twice'))).rejects.toThrow(
      new TypeError('idempotency(): this middleware is used twice on one handler (`.use()` it once).'),
    );
    expect(runs).toBe(0);
    expect(await records('twice')).toEqual([]);
  });

  test('the same httpIdempotency() middleware used twice on one handler is that TypeError too, not a 409 with Retry-After on every request', async () => {
    const layer = httpIdempotency({ store });
    const handler = writingPayment('http-twice').use(layer).use(layer);
    await expect(handler(paymentRequest('k-9'), lambdaContext('http-twice'))).rejects.toThrow(
      new TypeError('httpIdempotency(): this middleware is used twice on one handler (`.use()` it once).'),
    );
    expect(await records('http-twice')).toEqual([]);
    expect(await bizItem('http-twice-k-9')).toBeUndefined();
  });

  test('two idempotency() middlewares with the same name and key on one handler are a TypeError that says so, not IN_PROGRESS on every request: the handler never runs, no key is held', async () => {
    let runs = 0;
    const layer = () => idempotency({ store, key: (event: { id: string }) => event.id });
    const handler = middy(async () => ++runs)
      .use(layer())
      .use(layer());
    await expect(handler({ id: 'k-10' }, lambdaContext('same-record'))).rejects.toThrow(
      new TypeError(
        'idempotency(): another idempotency middleware on this handler holds the same record (same name and key): give each its own `name`, or use one.',
      ),
    );
    expect(runs).toBe(0);
    expect(await records('same-record')).toEqual([]);
  });

  test('a handler invoked from within its own request with its own key still gets IN_PROGRESS at once: it is no second middleware on one request', async () => {
    let runs = 0;
    const handler = middy(async (event: { id: string; nested?: boolean }): Promise<unknown> => {
      runs++;
      if (event.nested) return 'inner';
      return handler({ id: event.id, nested: true }, lambdaContext('self-invoked')).catch((error: { code?: string }) => error.code);
    }).use(idempotency({ store, key: (event: { id: string }) => event.id }));
    expect(await handler({ id: 'k-11' }, lambdaContext('self-invoked'))).toBe('IN_PROGRESS');
    expect(runs).toBe(1);
  });
});
