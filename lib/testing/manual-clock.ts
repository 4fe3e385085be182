/**
 * A clock for tests: it stands still until told to move, so leases, retention and Lambda deadlines
 * are tested without sleeping.
 */

/** A clock that moves only when {@link ManualClock.advance} is called. */
export interface ManualClock {
  /**
   * The current time, epoch milliseconds. A bound function: pass `clock.now` as the `now` option of
   * the library and of {@link lambdaContext} so both read the same time.
   */
  readonly now: () => number;
  /** Moves the clock `millis` forward (never back) and returns the new time. */
  readonly advance: (millis: number) => number;
}

/** The farthest instant from the epoch a `Date` can hold, milliseconds: past it, `new Date(now())` is invalid. @internal */
export const DATE_RANGE_MILLIS = 8.64e15;

function asMillis(start: number | Date): number {
  const millis = start instanceof Date ? start.getTime() : start;
  if (typeof millis !== 'number' || !Number.isFinite(millis)) {
    throw new TypeError(`manualClock: \`start\` must be a Date or a finite number of epoch milliseconds (got ${String(start)}).`);
  }
  if (Math.abs(millis) > DATE_RANGE_MILLIS)
    throw new TypeError(`manualClock: \`start\` ${millis} is outside the range of a Date (±8.64e15 epoch milliseconds).`);
  return millis;
}

/**
 * A manual clock starting at `start` (epoch milliseconds or a `Date`; default: the real time now,
 * so records written to a real table with TTL are not swept as long expired).
 *
 * @example
 * ```ts
 * import { lambdaContext, manualClock } from 'lambda-idempotency/testing';
 *
 * const clock = manualClock(Date.parse('2030-01-01T00:00:00Z'));
 * const context = lambdaContext({ remainingMillis: 3_000, now: clock.now });
 * clock.advance(1_000);
 * context.getRemainingTimeInMillis(); // 2000
 * ```
 */
export function manualClock(start: number | Date = Date.now()): ManualClock {
  let current = asMillis(start);
  return {
    now: () => current,
    advance: (millis: number) => {
      if (typeof millis !== 'number' || !Number.isFinite(millis) || millis < 0) {
        throw new TypeError(`manualClock: advance() takes a finite number of milliseconds, 0 or more (got ${String(millis)}).`);
      }
      // Leaves the clock where it was: a time no Date can hold breaks every reader of the clock.
      if (current + millis > DATE_RANGE_MILLIS) throw new TypeError(`manualClock: advance(${millis}) would move the clock past the last time a Date can hold.`);
      current += millis;
      return current;
    },
  };
}
