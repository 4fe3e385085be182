/**
 * Two copies of the package in one application (a dependency that brings its own, or a bundle of
 * two versions): an `IdempotencyError` thrown by one copy is still one for the other's
 * `instanceof` and `isIdempotencyError`, so code that branches on `code` (the retry of an
 * `IN_PROGRESS`, the status `@middy/http-error-handler` answers) works whichever copy threw.
 */
import { jest } from '@jest/globals';
import { IdempotencyError, isIdempotencyError } from '../../lib/index.js';

type Package = typeof import('../../lib/index.js');

let other: Package;
beforeAll(async () => {
  await jest.isolateModulesAsync(async () => {
    other = await import('../../lib/index.js');
  });
});

test('the other copy is another module instance (the premise of this file)', () => {
  expect(other.IdempotencyError).not.toBe(IdempotencyError);
});

test("an IdempotencyError of another copy is an IdempotencyError, with its code, for this copy's instanceof and isIdempotencyError", () => {
  const error: unknown = new other.IdempotencyError('IN_PROGRESS', 'another attempt holds the record', { retryAfterSeconds: 5 });
  expect(error instanceof IdempotencyError).toBe(true);
  expect(isIdempotencyError(error, 'IN_PROGRESS')).toBe(true);
  expect(isIdempotencyError(error, 'PAYLOAD_MISMATCH')).toBe(false);
  // And the other way round.
  expect(other.isIdempotencyError(new IdempotencyError('KEY_MISSING', 'x'), 'KEY_MISSING')).toBe(true);
});

test('what merely looks like one is not: an Error with the same name and a code', () => {
  const lookalike = Object.assign(new Error('IN_PROGRESS: x'), { name: 'IdempotencyError', code: 'IN_PROGRESS' });
  expect(lookalike instanceof IdempotencyError).toBe(false);
  expect(isIdempotencyError(lookalike)).toBe(false);
  expect(isIdempotencyError(null)).toBe(false);
  expect(isIdempotencyError(Object.create(null))).toBe(false);
});

test("a subclass's instanceof stays its own", () => {
  class Throttled extends IdempotencyError {}
  expect(new Throttled('IN_PROGRESS', 'x') instanceof IdempotencyError).toBe(true);
  expect(new IdempotencyError('IN_PROGRESS', 'x') instanceof Throttled).toBe(false);
  expect(new other.IdempotencyError('IN_PROGRESS', 'x') instanceof Throttled).toBe(false);
});
