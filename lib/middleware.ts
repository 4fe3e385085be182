import type { MiddlewareObj, Request } from '@middy/core';
import type { Context } from 'aws-lambda';
import { IdempotencyEngine, type IdempotencyOptions } from './engine.js';
import { RequestAttempts } from './request-attempts.js';

/**
 * Middy middleware that makes a handler idempotent. `before` claims the record (a duplicate is
 * answered from the stored response without running the handler, even when that response is
 * `undefined`), `after` stores the response, `onError` releases the record this request holds.
 * Rejections (`IN_PROGRESS`, `PAYLOAD_MISMATCH`, …) hold nothing and release nothing; middy's early
 * `TimeoutError` releases nothing either: the record's lease ends at the Lambda deadline.
 *
 * The namespace defaults to `context.functionName`, then `AWS_LAMBDA_FUNCTION_NAME`.
 *
 * @example
 * ```ts
 * const store = new DynamoDBStore({ tableName: 'idempotency' });
 * export const handler = middy(charge).use(idempotency<ChargeEvent>({ store, key: (event) => event.paymentId }));
 * ```
 */
export function idempotency<TEvent = unknown, TResult = unknown>(
  options: IdempotencyOptions<TEvent, Context>,
): MiddlewareObj<TEvent, TResult, Error, Context> {
  const engine = new IdempotencyEngine<TEvent, Context>('idempotency', options);
  const attempts = new RequestAttempts();

  const idempotencyBefore = async (request: Request<TEvent, TResult, Error, Context>): Promise<void> => {
    const writes = attempts.open(engine.transactional);
    const begin = await engine.begin(request.event, request.context, writes);
    if (begin.kind === 'replay') request.earlyResponse = begin.response as TResult;
    else if (begin.kind === 'run') attempts.hold(request, begin.attempt);
  };

  const idempotencyAfter = (request: Request<TEvent, TResult, Error, Context>): Promise<void> => attempts.complete(request);
  const idempotencyOnError = (request: Request<TEvent, TResult, Error, Context>): Promise<void> => attempts.fail(request);

  return { before: idempotencyBefore, after: idempotencyAfter, onError: idempotencyOnError };
}
