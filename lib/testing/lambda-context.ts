/**
 * Lambda contexts for unit tests of idempotent handlers. The library reads `functionName` (the
 * default namespace of records) and `getRemainingTimeInMillis()` (the lease of an attempt ends at
 * the invocation's deadline); a context without them fails with "No namespace for idempotency
 * records", or takes a lease unrelated to the test's clock.
 */

import { randomBytes, randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';
import { checkOptions, isNonEmptyString } from '../options.js';
import { DATE_RANGE_MILLIS } from './manual-clock.js';

/** Options of {@link lambdaContext}. */
export interface LambdaContextOptions {
  /** The function's name, which namespaces its records: 1 to 64 letters, digits, '-' or '_', as Lambda's. @default 'test-function' */
  readonly functionName?: string | undefined;
  /** Time left before the invocation's deadline, measured when the context is made. @default 30000 */
  readonly remainingMillis?: number | undefined;
  /** The clock the deadline follows, epoch milliseconds (e.g. `manualClock().now`). @default Date.now */
  readonly now?: (() => number) | undefined;
  /**
   * The tenant of an invocation of a function in Lambda's tenant isolation mode, as
   * `context.tenantId`: each tenant's records are its own. @default none
   */
  readonly tenantId?: string | undefined;
}

function unsupported(name: string): () => never {
  return () => {
    throw new Error(`context.${name}() belongs to callback-style handlers: an async handler returns or throws instead.`);
  };
}

/**
 * A name Lambda gives a function (CreateFunction's rule for a name given alone). Another, with a
 * '#' say, would namespace records as no deployed function does: the `name` option refuses '#'.
 */
const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const CHECKS = {
  functionName: (value: unknown) =>
    typeof value !== 'string' || value.length === 0
      ? 'must be a non-empty string'
      : FUNCTION_NAME.test(value)
        ? undefined
        : `must be a name Lambda gives a function: 1 to 64 letters, digits, '-' or '_' (got ${JSON.stringify(value)})`,
  remainingMillis: (value: unknown) =>
    typeof value === 'number' && Number.isFinite(value) && value >= 0 ? undefined : `must be a finite number, 0 or more (got ${String(value)})`,
  now: (value: unknown) => (typeof value === 'function' ? undefined : 'must be a function returning epoch milliseconds'),
  tenantId: isNonEmptyString,
} satisfies { readonly [K in keyof LambdaContextOptions]-?: unknown };

function validate(options: LambdaContextOptions): void {
  checkOptions('lambdaContext', options, CHECKS);
}

/**
 * A complete `aws-lambda` `Context` for one invocation: a fresh `awsRequestId`, and a deadline
 * `remainingMillis` after the moment it is made, read on the `now` clock, so
 * `getRemainingTimeInMillis()` shrinks as that clock moves (and stops at 0). Make one per
 * invocation, as Lambda does: a retry is a new invocation with a new context.
 *
 * @example
 * ```ts
 * import { lambdaContext, manualClock } from 'lambda-idempotency/testing';
 *
 * const clock = manualClock();
 * const context = lambdaContext({ functionName: 'payments', remainingMillis: 10_000, now: clock.now });
 * await handler(event, context);
 * clock.advance(10_001); // past the first invocation's deadline, well inside the retention
 * await handler(event, lambdaContext({ functionName: 'payments', now: clock.now })); // replays the first outcome
 * ```
 */
export function lambdaContext(options: LambdaContextOptions = {}): Context {
  validate(options);
  // The default reads the global `Date.now` at each call, as the library does: fake timers installed later move both.
  const { functionName = 'test-function', remainingMillis = 30_000, now = () => Date.now(), tenantId } = options;
  const start = now();
  if (typeof start !== 'number' || !(Math.abs(start) <= DATE_RANGE_MILLIS)) {
    throw new TypeError(`lambdaContext: \`now\` must return epoch milliseconds, a finite number within the range of a Date (±8.64e15) (got ${String(start)}).`);
  }
  const deadline = start + remainingMillis;
  // Lambda names a log stream after the day its execution environment started.
  const day = new Date(start).toISOString().slice(0, 10).replaceAll('-', '/');
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '128',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `${day}/[$LATEST]${randomBytes(16).toString('hex')}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - now()),
    done: unsupported('done'),
    fail: unsupported('fail'),
    succeed: unsupported('succeed'),
    ...(tenantId === undefined ? {} : { tenantId }),
  };
}
