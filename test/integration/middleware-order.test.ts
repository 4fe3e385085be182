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

// The handler's scope is entered where middy reads the event to invoke it: a later `before` reaches it too, on middy 6 and 7.
test('used after another before hook, transaction() reaches the handler and its writes commit with the record', async () => {
  expect(await stack(false)({ id: `late-use-${middyMajor}` }, lambdaContext('order-late'))).toEqual({ id: `late-use-${middyMajor}` });
  expect(await readItem(client, tableName, `biz-late-use-${middyMajor}`)).toBeDefined();
  expect((await readItem(client, tableName, recordId('order-late', `late-use-${middyMajor}`)))?.status).toEqual({ S: 'COMPLETED' });
});
