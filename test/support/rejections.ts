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
