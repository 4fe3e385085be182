/**
 * What a call reads of the Lambda invocation it runs in, from a context the library does not own:
 * its time left, the durable execution it belongs to, its tenant.
 */
import type { LambdaContextLike } from './options.js';

/** The identity of a Lambda durable execution, stable across its replays. @internal */
export const durableExecutionOf = (context: unknown): string | undefined => {
  const arn = (context as { executionContext?: { durableExecutionArn?: unknown } } | null | undefined)?.executionContext?.durableExecutionArn;
  return typeof arn === 'string' && arn.length > 0 ? arn : undefined;
};

/**
 * Whether the invocation of a durable `context` has ended (suspended, or ended by the SDK): the
 * durable execution SDK's termination state, which it keeps on the context it gives the handler
 * (2.x: `_executionContext.terminationManager.isTerminated`). `undefined` when it cannot be read
 * (another SDK, a context built by hand). @internal
 */
export const durableInvocationEnded = (context: unknown): boolean | undefined => {
  try {
    const ended = (context as { _executionContext?: { terminationManager?: { isTerminated?: unknown } } } | null | undefined)?._executionContext
      ?.terminationManager?.isTerminated;
    return typeof ended === 'boolean' ? ended : undefined;
  } catch {
    return undefined;
  }
};

/**
 * Whether `input` is what the durable service invokes a durable function with (the execution's
 * ARN and a checkpoint token, which change per execution and per invocation), which only
 * `withDurableExecution` reads: keyed on it, no two executions, nor two invocations of one, share
 * a record. One that cannot be read is not. @internal
 */
export function isDurableInvocationInput(input: unknown): boolean {
  try {
    const event = input as { readonly DurableExecutionArn?: unknown; readonly CheckpointToken?: unknown } | null | undefined;
    return typeof event?.DurableExecutionArn === 'string' && typeof event.CheckpointToken === 'string';
  } catch {
    return false;
  }
}

/**
 * The tenant of an invocation in Lambda's tenant isolation mode: its context's `tenantId` (a
 * durable context's `lambdaContext`), else the runtime's invocation store's, for a call given no
 * context (`makeIdempotent` inside a handler). @internal
 */
export function tenantOf(context: unknown): string | undefined {
  let tenant: unknown;
  try {
    const holder = context as { readonly tenantId?: unknown; readonly lambdaContext?: { readonly tenantId?: unknown } } | undefined;
    tenant =
      holder?.tenantId ??
      holder?.lambdaContext?.tenantId ??
      (globalThis as { awslambda?: { InvokeStore?: { getTenantId?(): unknown } } }).awslambda?.InvokeStore?.getTenantId?.();
  } catch {
    return undefined;
  }
  return typeof tenant === 'string' && tenant.length > 0 ? tenant : undefined;
}

/**
 * A time left that is still ahead, else none: a Lambda context reading 0 ms left sets no deadline,
 * nor does a stub reading `NaN`, `Infinity` or `Number.MAX_VALUE`: a deadline later than any
 * `Date` (8.64e15 ms) is a lease without end, which DynamoDB refuses as a number out of range.
 */
const positive = (millis: number | undefined): number | undefined => (millis !== undefined && millis > 0 && millis <= 8.64e15 ? millis : undefined);

/**
 * The Lambda deadline, also from a durable context (which carries the Lambda context as
 * `lambdaContext`); one that cannot be read counts as absent. @internal
 */
export const remainingMillisOf = (context: unknown): number | undefined => {
  const remaining = readRemainingMillis(context);
  return remaining === undefined ? undefined : positive(remaining);
};

/** What `context` reads as its time left, a number of any sign, or `undefined` when it reads none or cannot be read. @internal */
export const readRemainingMillis = (context: unknown): number | undefined => {
  const holder = context as (LambdaContextLike & { lambdaContext?: LambdaContextLike }) | null | undefined;
  let remaining: unknown;
  try {
    remaining = holder?.getRemainingTimeInMillis?.() ?? holder?.lambdaContext?.getRemainingTimeInMillis?.();
  } catch {
    return undefined;
  }
  return typeof remaining === 'number' ? remaining : undefined;
};
