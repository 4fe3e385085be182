/**
 * Where the idempotency middleware stands among other middlewares. Used first, its `before` runs
 * in the request's own async context (so `transaction()` reaches the handler) and its `after` runs
 * last (so the stored response, and every replay, is what clients received after serializers).
 */
import middy from '@middy/core';
import { idempotency, transaction } from '../../lib/index.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { lambdaContext } from '../support/lambda.js';
import { middyMajor } from '../support/middy.js';
import { thrown } from '../support/rejections.js';

const { client, tableName, store } = useFreshTable({ prefix: 'order' });

interface Event {
  readonly id: string;
  parsed?: boolean;
}

/** A parser and a serializer, as middy users stack them. */
const parser = { before: async (request: { event: Event }) => void (request.event.parsed = true) };
const serializer = {
  after: async (request: { response: unknown }) => {
    request.response = { statusCode: 200, headers: { 'Access-Control-Allow-Origin': '*' }, body: JSON.stringify(request.response) };
  },
};

test('used first, with other middlewares after it: transaction() reaches the handler, and a replay is the serialized response', async () => {
  let runs = 0;
  const handler = middy(async (event: Event) => {
    runs++;
    transaction().put({ TableName: tableName, Item: { id: `biz-${event.id}`, parsed: event.parsed === true } });
    return { id: event.id };
  })
    .use(idempotency({ store, key: (event: Event) => event.id, transactions: true }))
    .use(parser)
    .use(serializer);
  const first = await handler({ id: 'first-use' }, lambdaContext('order-first'));
  const replay = await handler({ id: 'first-use' }, lambdaContext('order-first'));
  expect(first).toEqual({ statusCode: 200, headers: { 'Access-Control-Allow-Origin': '*' }, body: '{"id":"first-use"}' });
  expect(replay).toEqual(first);
  expect(runs).toBe(1);
  expect((await readItem(client, tableName, 'biz-first-use'))?.parsed).toEqual({ BOOL: true });
  expect((await readItem(client, tableName, recordId('order-first', 'first-use')))?.status).toEqual({ S: 'COMPLETED' });
});

/** A stack with the idempotency middleware first, or after the parser's `before`. */
const stack = (first: boolean) => {
  const base = middy(async (event: Event) => {
    transaction().put({ TableName: tableName, Item: { id: `biz-${event.id}` } });
    return { id: event.id };
  });
  const mw = idempotency({ store, key: (event: Event) => event.id, transactions: true });
  return first ? base.use(mw).use(parser) : base.use(parser).use(mw);
};

const onMiddy = (major: 6 | 7) => (middyMajor === major ? test : test.skip);

onMiddy(6)('middy 6: used after another before hook, transaction() says to use it first; the key is released, so a fixed stack can retry', async () => {
  const error = await thrown(stack(false)({ id: 'late-use' }, lambdaContext('order-late')));
  expect(error).toBeInstanceOf(TypeError);
  expect(error.message).toMatch(/`.use\(\)` the idempotency middleware before any other middleware/);
  expect(await readItem(client, tableName, recordId('order-late', 'late-use'))).toBeUndefined();
  expect(await stack(true)({ id: 'late-use' }, lambdaContext('order-late'))).toEqual({ id: 'late-use' });
});

// middy 7 calls every hook from the request's own async function, so a later `before` also reaches the handler.
onMiddy(7)('middy 7: used after another before hook, transaction() reaches the handler and its writes commit with the record', async () => {
  expect(await stack(false)({ id: 'late-use-7' }, lambdaContext('order-late'))).toEqual({ id: 'late-use-7' });
  expect(await readItem(client, tableName, 'biz-late-use-7')).toBeDefined();
  expect((await readItem(client, tableName, recordId('order-late', 'late-use-7')))?.status).toEqual({ S: 'COMPLETED' });
});
