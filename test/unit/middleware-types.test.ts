/**
 * The types of `idempotency` in middy's chains, checked by `tsc --noEmit` (part of `npm test`):
 * `.use([...])` takes middlewares of any event, and a middleware whose event type was inferred from
 * that as `any` would make the key selector's event and the handler's `any`. It is `unknown`
 * instead, as in `.use(idempotency(…))`: the key selector's event is annotated or given as the type
 * argument. A line that stops compiling, or an `@ts-expect-error` that stops erring, fails the type-check.
 */
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { type IdempotencyOptions, idempotency } from '../../lib/index.js';
import { type IdempotencyOptions as LeanIdempotencyOptions, idempotency as leanIdempotency } from '../../lib/middy/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { lambdaContext } from '../support/lambda.js';

interface Order {
  readonly orderId: string;
}
const store = new InMemoryStore();
let runs = 0;

const inArray = middy<Order, string>()
  .use([
    idempotency({
      store,
      name: 'in-array',
      // @ts-expect-error The selector's event is not `any`: a misspelt field does not compile.
      key: (event) => event.orderID,
    }),
  ])
  .handler(async (event) => {
    // @ts-expect-error Nor is the handler's event after the middleware.
    void event.orderID;
    return event.orderId;
  });
const annotated = middy<Order, string>()
  .use([idempotency({ store, name: 'annotated', key: (event: Order) => event.orderId })])
  .handler(async (event) => `${event.orderId}:${++runs}`);
const leanInArray = middy<Order, string>()
  .use([leanIdempotency({ store, name: 'lean' })])
  .handler(async (event) => {
    // @ts-expect-error The lean middleware's event after it is the chain's too.
    void event.orderID;
    return `${event.orderId}:${++runs}`;
  });

// A helper generic in the event, as callers wrote before `.use([...])` kept the chain typed: its
// options pass on as they are, and the middleware fits a chain of that event.
const withIdempotency = <TEvent>(options: IdempotencyOptions<TEvent, Context>) => middy<TEvent, string>().use(idempotency<TEvent>(options));
const withLeanIdempotency = <TEvent>(options: LeanIdempotencyOptions<TEvent>) => middy<TEvent, string>().use(leanIdempotency<TEvent>(options));
const wrapped = withIdempotency<Order>({ store, name: 'wrapped', key: (event) => event.orderId }).handler(async (event) => `${event.orderId}:${++runs}`);
const leanWrapped = withLeanIdempotency<Order>({ store, name: 'lean-wrapped', key: (event) => event.orderId }).handler(
  async (event) => `${event.orderId}:${++runs}`,
);

test('middlewares given to `.use([...])` keep the chain typed, and run', async () => {
  const context = lambdaContext('orders');
  await expect(inArray({ orderId: 'o-1' }, context)).rejects.toMatchObject({ code: 'KEY_MISSING' });
  expect(await annotated({ orderId: 'o-1' }, context)).toBe('o-1:1');
  expect(await annotated({ orderId: 'o-1' }, context)).toBe('o-1:1');
  expect(await leanInArray({ orderId: 'o-2' }, context)).toBe('o-2:2');
  expect(await leanInArray({ orderId: 'o-2' }, context)).toBe('o-2:2');
});

test('a helper generic in the event passes its options to `idempotency<TEvent>`, and runs', async () => {
  const context = lambdaContext('orders');
  const first = await wrapped({ orderId: 'o-3' }, context);
  expect(await wrapped({ orderId: 'o-3' }, context)).toBe(first);
  const lean = await leanWrapped({ orderId: 'o-4' }, context);
  expect(await leanWrapped({ orderId: 'o-4' }, context)).toBe(lean);
  expect(lean).not.toBe(first);
});
