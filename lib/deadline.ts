/**
 * The bounds that make every call answer before its Lambda deadline: how long it may wait for
 * another attempt, and how long each store request may take.
 */
import { setImmediate } from 'node:timers';
import type { AnswerBy } from './call.js';
import { readRemainingMillis, remainingMillisOf } from './invocation.js';

/** A call's Lambda deadline by the engine's clock, and when its store requests must have answered. @internal */
export interface Deadline {
  readonly at: number;
  readonly answerBy: AnswerBy | undefined;
}

/**
 * How long a duplicate may wait for another attempt: until a tenth of its time left (at most 1 s)
 * before its own Lambda deadline, so that it still answers `IN_PROGRESS` rather than time out. @internal
 */
export const waitableMillis = (remaining: number | undefined): number =>
  remaining === undefined ? Number.POSITIVE_INFINITY : remaining - Math.min(remaining / 10, 1_000);

/**
 * The first time left each context was seen to read, and when: whether it runs down with real time
 * is judged over all the time it has been seen, not only since the call at hand began. A record
 * that a batch starts late in its invocation is then known to run under a live context, and its
 * requests get no more than half the time left, instead of a whole second past the deadline.
 */
const firstReadings = new WeakMap<object, { readonly given: number; readonly started: number }>();

/**
 * The time left (ms, 0 or less) of a context that reads none now, past its deadline, when it read
 * time left before: a Lambda Managed Instance leaves an invocation that timed out running, and a
 * call that starts in it then has a deadline behind it, not none (which would hold its record for
 * `leaseSeconds` past it). A context never seen with time left (a stub reading 0) sets none. @internal
 */
export function overrunOf(context: unknown): number | undefined {
  if (typeof context !== 'object' || context === null || !firstReadings.has(context)) return undefined;
  const left = readRemainingMillis(context);
  return left !== undefined && left <= 0 && left >= -8.64e15 ? left : undefined;
}

/**
 * Of `left` ms before a deadline, the time until a call must answer: a tenth of it, at most 100 ms,
 * is kept for answering (building the answer, the runtime sending it, middy's early timeout). @internal
 */
export const untilAnswer = (left: number): number => left - Math.min(left / 10, 100);

/** The {@link AnswerBy} of a call whose `context` read `given` ms left, read just after `started` (`performance.now()`). @internal */
export function answerByOf(context: unknown, given: number, started: number): AnswerBy {
  let first = { given, started };
  if (typeof context === 'object' && context !== null) {
    first = firstReadings.get(context) ?? first;
    firstReadings.set(context, first);
  }
  return {
    at: started + untilAnswer(given),
    deadline: started + given,
    live: () => runsInRealTime(context, first.given, first.started),
  };
}

/**
 * Real time a context must be seen running down over, and how far its time left may stray from
 * the real time passed, before it counts as live: Lambda's reads its deadline against the wall
 * clock, while a stub's (a unit test's) reads the same time left throughout and one on a manual
 * clock jumps as the test moves it.
 */
const LIVE_AFTER_MILLIS = 100;
const LIVE_SLACK_MILLIS = 25;

/**
 * Whether `context`, which read `given` ms left at `started`, has run down with real time since:
 * seen over {@link LIVE_AFTER_MILLIS} at least, within {@link LIVE_SLACK_MILLIS}. A context that
 * reads no time left (past its deadline) proves nothing.
 */
function runsInRealTime(context: unknown, given: number, started: number): boolean {
  const passed = performance.now() - started;
  if (passed < LIVE_AFTER_MILLIS) return false;
  const left = remainingMillisOf(context);
  return left !== undefined && Math.abs(given - left - passed) <= LIVE_SLACK_MILLIS;
}

/** The time left (ms) to wait until `until` by the engine's clock, and never past the call's `answerBy`. @internal */
export const waitLeft = (until: number, now: number, deadline: Deadline | undefined): number =>
  Math.min(until - now, deadline?.answerBy === undefined ? Number.POSITIVE_INFINITY : deadline.answerBy.at - performance.now());

/** A store request given up on at its call's deadline: no time is left to wait for another one. @internal */
export class DeadlineTimeout extends Error {
  override readonly name = 'TimeoutError';
}

/**
 * The least time a store request is given, however close `answerBy.at`: the bound is for requests
 * that are never answered, not slow ones (and a stub context in a unit test may read 1 ms left).
 * Under a live context it is at most half the time left until the deadline, so that the call still
 * answers before it.
 */
const REQUEST_MILLIS = 1_000;

/**
 * A store request that must answer by `answerBy.at`, or within {@link REQUEST_MILLIS}: one still
 * unanswered then is a `TimeoutError` for the call, and is left to settle unheeded. Its writes are
 * fenced on the call's owner, so one that applies late changes only the call's own record. @internal
 */
export function answered<T>(sent: Promise<T>, answerBy: AnswerBy | undefined): Promise<T> {
  // A store written in JavaScript may answer with a plain value or a thenable.
  const request = Promise.resolve(sent);
  if (answerBy === undefined) return request;
  request.catch(() => undefined);
  return timeLimit(
    request,
    requestMillis(answerBy),
    () => new DeadlineTimeout('The store did not answer in time for the call to answer before its Lambda deadline.'),
  );
}

/** The time (ms) a store request sent now is given (see {@link answered}). */
function requestMillis(answerBy: AnswerBy): number {
  const now = performance.now();
  const least = answerBy.live() ? Math.min(REQUEST_MILLIS, (answerBy.deadline - now) / 2) : REQUEST_MILLIS;
  return Math.max(answerBy.at - now, least);
}

/**
 * When (`performance.now()`) the key that encrypts a call's outcome must have been had: the time its
 * completion is given, less a second (or half of it, when shorter) kept for the store's write. A
 * key provider that never answers (a KMS call that hangs) then leaves that time for the record to
 * complete without the outcome, instead of staying INPROGRESS until its lease and letting a
 * duplicate run the function again; a slow one still has all the rest. @internal
 */
export function sealByOf(answerBy: AnswerBy | undefined): number | undefined {
  if (answerBy === undefined) return undefined;
  const millis = requestMillis(answerBy);
  return performance.now() + millis - Math.min(millis / 2, REQUEST_MILLIS);
}

/** `work`, or `failure()` thrown once `millis` have passed without it settling ({@link delay}); the timer is cleared as soon as it does. @internal */
export function timeLimit<T>(work: Promise<T>, millis: number, failure: () => Error): Promise<T> {
  const expiry = delay(millis);
  const expired = expiry.elapsed.then((): never => {
    throw failure();
  });
  return Promise.race([work, expired]).finally(expiry.cancel);
}

/**
 * A wait that holds the event loop open: the Lambda Node.js runtime answers an invocation `null` as
 * soon as its event loop is empty, so a call waiting on an unref'd timer would end without its
 * answer. `cancel` clears the timer once the wait is moot. Node fires longer timers at once: capped.
 *
 * Node runs expired timers before it reads its sockets. A timer that fires late means the loop was
 * held past it (a long synchronous task, a throttled CPU), and what the wait is raced against (a
 * store's answer, a leader's outcome) may have arrived meanwhile, unread: such a wait ends one turn
 * of the loop later (`setImmediate` from `node:timers`, a real turn even under fake timers), after
 * that is read, so that the call takes the answer instead of giving up on it. @internal
 */
export function delay(millis: number): { readonly elapsed: Promise<undefined>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const due = performance.now() + millis;
  const elapsed = new Promise<undefined>((resolve) => {
    // Late by a millisecond or more (timers count whole milliseconds); a turn more costs nothing where none was needed.
    const end = () => (performance.now() - due >= 1 ? setImmediate(resolve, undefined) : resolve(undefined));
    timer = setTimeout(end, Math.min(millis, 2_147_483_647));
  });
  return { elapsed, cancel: () => clearTimeout(timer) };
}
