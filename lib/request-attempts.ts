import type { Attempt } from './attempt.js';
import { WriteCollector, currentCall } from './transaction.js';

/** Middy's own early timeout, not a TimeoutError the handler threw (the SDK's, AbortSignal.timeout's). */
const isMiddyTimeout = (error: unknown): boolean =>
  (error as { name?: unknown } | null)?.name === 'TimeoutError' && (error as { cause?: { package?: unknown } }).cause?.package === '@middy/core';

interface HookRequest {
  response: unknown;
  error: unknown;
}

/**
 * Per-request attempts of a Middy middleware. A WeakMap rather than `request.internal`, which
 * middy shares between requests when a `plugin.internal` object is configured. @internal
 */
export class RequestAttempts {
  private readonly attempts = new WeakMap<object, Attempt>();

  /**
   * The request's write collector, entered (with `transactions`) into the async context of the middy request. Must be
   * called synchronously at the start of `before`, so the handler (called later by middy from the
   * same context) sees it through `transaction()`.
   */
  open(transactional: boolean): WriteCollector {
    const writes = new WriteCollector();
    if (transactional) currentCall.enterWith(writes);
    return writes;
  }

  hold(request: object, attempt: Attempt): void {
    this.attempts.set(request, attempt);
  }

  /** The request's attempt, removed so that it ends once even if a later hook throws. */
  take(request: object): Attempt | undefined {
    const attempt = this.attempts.get(request);
    this.attempts.delete(request);
    return attempt;
  }

  /** `after`: stores the response; a rejection (e.g. `SUPERSEDED`) replaces it as an error. */
  async complete(request: HookRequest): Promise<void> {
    const attempt = this.take(request);
    if (attempt === undefined) return;
    const outcome = await attempt.complete(request.response);
    if (outcome.kind === 'error') throw outcome.error;
    request.response = outcome.value;
  }

  /**
   * `onError`: releases the record (or stores a final error). Middy's early `TimeoutError` releases
   * nothing: the handler may still be running, and the lease ends at the Lambda deadline by itself.
   */
  async fail(request: HookRequest): Promise<void> {
    const attempt = this.take(request);
    if (attempt === undefined) return;
    if (isMiddyTimeout(request.error)) return attempt.abandon();
    const outcome = await attempt.fail(request.error);
    if (!outcome.replayed) return;
    if (outcome.kind === 'value') request.response = outcome.value;
    else request.error = outcome.error;
  }
}
