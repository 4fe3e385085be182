/**
 * The middy middleware alone, for the smallest bundle: `idempotency` as in 'lambda-idempotency',
 * whose `observability` option takes a listener (such as `cloudWatchLines()`) only. Everything else
 * (`transaction()`, errors, `cloudWatchLines`) is imported from 'lambda-idempotency' as usual.
 */
import type { MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import { idempotencyMiddleware } from '../middleware.js';
import type { IdempotencyListener } from '../observability.js';
import { observeListener } from '../observability.js';
import type { IdempotencyOptions as MainOptions } from '../options.js';

/** The options of `idempotency` from 'lambda-idempotency', with `observability` a listener only. */
export interface IdempotencyOptions<TEvent = unknown> extends Omit<MainOptions<TEvent, Context>, 'observability'> {
  /** Receives each event: `cloudWatchLines()` from 'lambda-idempotency', or a listener of your own. @default off */
  readonly observability?: IdempotencyListener | undefined;
}

/**
 * Middy middleware that makes a handler idempotent: the same middleware as `idempotency` from
 * 'lambda-idempotency', in a smaller bundle (see "Smaller bundles" in docs/performance.md).
 *
 * @example
 * ```ts
 * import { idempotency } from 'lambda-idempotency/middy';
 * import { DynamoDBStore } from 'lambda-idempotency/dynamodb';
 * export const handler = middy(charge).use(idempotency({ store: new DynamoDBStore() }));
 * ```
 */
// `NoInfer`: in `.use([...])`, which takes middlewares of any event, the event is not inferred as `any`
// from the result; the options keep `TEvent` as it is, so a helper generic in the event passes them on.
export function idempotency<TEvent = unknown, TResult = unknown>(options: IdempotencyOptions<TEvent>): MiddlewareObj<NoInfer<TEvent>, TResult, Error, Context> {
  return idempotencyMiddleware(options, observeListener);
}
