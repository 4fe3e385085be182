import { expect } from '@jest/globals';
import { canonicalJson, IdempotencyError } from '../../lib/index.js';

/** The `INVALID_KEY` error canonical JSON refuses `value` with; fails the test when it accepts it. */
export function invalidKey(value: unknown): IdempotencyError {
  try {
    canonicalJson(value);
  } catch (error) {
    expect(error).toBeInstanceOf(IdempotencyError);
    expect((error as IdempotencyError).code).toBe('INVALID_KEY');
    return error as IdempotencyError;
  }
  throw new Error(`canonicalJson accepted ${String(value)}`);
}
