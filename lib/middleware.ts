import type { MiddlewareObj, Request } from '@middy/core';
import type { Context } from 'aws-lambda';
import { type Attempt, IdempotencyEngine, type IdempotencyOptions } from './engine.js';

/**
 * Attempts by request. A WeakMap rather than `request.internal`, which middy shares between
 * requests when a `plugin.internal` object is configured.
 */
type Attempts = WeakMap<object, Attempt>;

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
 * export const handler = middy(charge).use(idempotency({ store, key: (event) => event.paymentId }));
 * ```
 */
export function idempotency<TEvent = unknown, TResult = unknown>(
  options: IdempotencyOptions<TEvent, Context>,
): MiddlewareObj<TEvent, TResult, Error, Context> {
  const engine = new IdempotencyEngine<TEvent, Context>('idempotency', options);
  const attempts: Attempts = new WeakMap();

  const idempotencyBefore = async (request: Request<TEvent, TResult, Error, Context>): Promise<void> => {
    const begin = await engine.begin(request.event, request.context);
    if (begin.kind === 'replay') request.earlyResponse = begin.response as TResult;
    else if (begin.kind === 'run') attempts.set(request, begin.attempt);
  };

  const idempotencyAfter = async (request: Request<TEvent, TResult, Error, Context>): Promise<void> => {
    const attempt = attempts.get(request);
    attempts.delete(request);
    await attempt?.complete(request.response);
  };

  const idempotencyOnError = async (request: Request<TEvent, TResult, Error, Context>): Promise<void> => {
    const attempt = attempts.get(request);
    attempts.delete(request);
    if (attempt === undefined) return;
    if ((request.error as { name?: unknown } | null)?.name === 'TimeoutError') attempt.abandon();
    else await attempt.release();
  };

  return { before: idempotencyBefore, after: idempotencyAfter, onError: idempotencyOnError };
}
