import type { MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import { IdempotencyEngine, type IdempotencyOptions } from './engine.js';
import { idempotencyHooks } from './middy-hooks.js';
import { type Observe, observeAny } from './observability.js';

/** The middleware of an engine whose `observability` option takes the forms `observe` reads. @internal */
export function idempotencyMiddleware<TEvent, TResult>(
  options: IdempotencyOptions<TEvent, Context>,
  observe: Observe,
): MiddlewareObj<TEvent, TResult, Error, Context> {
  const engine = new IdempotencyEngine<TEvent, Context>('idempotency', options, observe);
  // The hooks object itself: its `before` is read by each `.use()`.
  return idempotencyHooks(engine, { replay: (value) => value }) as MiddlewareObj<TEvent, TResult, Error, Context>;
}

/**
 * Middy middleware that makes a handler idempotent. `before` claims the record (a duplicate is
 * answered from the stored response without running the handler, even when that response is
 * `undefined`), `after` stores the response, `onError` releases the record this request holds.
 * Rejections (`IN_PROGRESS`, `PAYLOAD_MISMATCH`, …) hold nothing and release nothing; middy's early
 * `TimeoutError` releases nothing either: the record's lease ends at the Lambda deadline (in durable
 * mode it fails the execution for good, and releases the record as an error does). A later
 * middleware that answers early (its `before` sets a response) releases the record; one that throws
 * from `after`, once the handler returned, completes it with the handler's response. An error thrown
 * before the handler ran, or raised by a middy middleware (`@middy/validator`), is never stored. The
 * record's end starts as soon as middy records an error, so an inner `onError` that throws (and makes
 * middy skip this one's) still ends it, though middy answers without waiting for that write.
 *
 * `.use()` it first. The namespace defaults to `context.functionName`, then `AWS_LAMBDA_FUNCTION_NAME`:
 * handlers in one function (the routes of `@middy/http-router`) whose keys can be equal each need a `name`.
 *
 * @example
 * ```ts
 * const store = new DynamoDBStore({ tableName: 'idempotency' });
 * export const handler = middy(charge).use(idempotency<ChargeEvent>({ store, key: (event) => event.paymentId }));
 * ```
 */
// `NoInfer`: in `.use([...])`, which takes middlewares of any event, the event is not inferred as `any`
// from the result; the options keep `TEvent` as it is, so a helper generic in the event passes them on.
export function idempotency<TEvent = unknown, TResult = unknown>(
  options: IdempotencyOptions<TEvent, Context>,
): MiddlewareObj<NoInfer<TEvent>, TResult, Error, Context> {
  return idempotencyMiddleware(options, observeAny);
}
