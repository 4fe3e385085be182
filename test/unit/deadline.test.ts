/** When a call's store requests must have answered, by its Lambda context's time left. */
import { answerByOf, waitableMillis } from '../../lib/deadline.js';

test('store requests must answer a tenth of the time left before the deadline, at most 100 ms before it', () => {
  // Each context is new: the first time left a context reads is the one its bound counts from.
  expect(answerByOf({}, 500, 1_000)).toMatchObject({ at: 1_450, deadline: 1_500 });
  expect(answerByOf({}, 1_000, 1_000)).toMatchObject({ at: 1_900, deadline: 2_000 });
  expect(answerByOf({}, 30_000, 1_000)).toMatchObject({ at: 30_900, deadline: 31_000 });
});

test('a duplicate waits for another attempt until a tenth of its time left, at most 1 s, before its deadline', () => {
  expect(waitableMillis(undefined)).toBe(Number.POSITIVE_INFINITY);
  expect(waitableMillis(2_000)).toBe(1_800);
  expect(waitableMillis(10_000)).toBe(9_000);
  expect(waitableMillis(900_000)).toBe(899_000);
});
