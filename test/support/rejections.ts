import { IdempotencyError } from '../../lib/index.js';

/** What `promise` rejected with, asserted to be an `IdempotencyError`; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<IdempotencyError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(IdempotencyError);
    return error as IdempotencyError;
  }
  throw new Error('expected a rejection');
}

/** What `promise` rejected with, whatever it is; fails the test if it resolves. */
export async function thrown(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await promise;
  } catch (error) {
    return error as Error & Record<string, unknown>;
  }
  throw new Error('expected a rejection');
}

/**
 * Runs `body`, then fails if a promise rejected without a handler meanwhile (Node reports one once
 * the microtasks have run, before the next macrotask).
 */
export async function withoutUnhandledRejections(body: () => Promise<void>): Promise<void> {
  const unhandled: unknown[] = [];
  const record = (reason: unknown) => void unhandled.push(reason);
  process.on('unhandledRejection', record);
  try {
    await body();
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
  } finally {
    process.off('unhandledRejection', record);
  }
}
