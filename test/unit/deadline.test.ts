/** When a call's store requests must have answered, by its Lambda context's time left. */
import { answerByOf, delay, timeLimit, waitableMillis } from '../../lib/deadline.js';

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

/**
 * What `start` resolves to when the event loop is held `millis` from the moment it is called, while
 * `arrival` is queued. Both happen in the loop's check phase, so that a timer `start` sets can only
 * fire after the hold, late, however slowly a loaded machine runs the test; in the next turn the
 * loop runs that timer first, then what arrived (a socket's data; here the immediate).
 */
function heldFromStart<T>(start: () => Promise<T>, millis: number, arrival: () => void): Promise<T> {
  return new Promise((resolve) =>
    setImmediate(() => {
      const started = start();
      const held = performance.now();
      setImmediate(arrival);
      while (performance.now() - held < millis);
      resolve(started);
    }),
  );
}

describe('timeLimit', () => {
  const late = () => new Error('late');

  test('work that settles within the time wins; work that never settles fails at it', async () => {
    await expect(timeLimit(Promise.resolve('answered'), 50, late)).resolves.toBe('answered');
    await expect(timeLimit(new Promise(() => undefined), 5, late)).rejects.toThrow('late');
  });

  test('a bound that fires late, after the event loop was held past it, lets an answer already received be read first', async () => {
    // The loop is held from the moment the bound is set until past it, and meanwhile the answer arrives.
    let answer!: (value: string) => void;
    const work = new Promise<string>((resolve) => (answer = resolve));
    await expect(
      heldFromStart(
        () => timeLimit(work, 20, late),
        60,
        () => answer('answered'),
      ),
    ).resolves.toBe('answered');
  });
});

describe('delay', () => {
  test('a wait whose timer fires late, after the event loop was held past it, ends after what arrived meanwhile', async () => {
    // A follower waiting for its leader's outcome, or for a reconnection: the outcome arrives while the loop is held.
    let arrive!: (value: string) => void;
    const outcome = new Promise<string>((resolve) => (arrive = resolve));
    const first = () => {
      const wait = delay(20);
      return Promise.race([outcome, wait.elapsed.then(() => 'gave up')]).finally(wait.cancel);
    };
    await expect(heldFromStart(first, 60, () => arrive('outcome'))).resolves.toBe('outcome');
  });
});
