/*
 * Single flight: in-process duplicates of a call wait on its leader rather than each claim the
 * record, and no wait closes a loop of calls waiting on each other.
 */
import type { Call } from './call.js';
import type { IdempotencyError } from './errors.js';
import type { IdempotencyRecord } from './store.js';
import { callsAround, isWithin } from './transaction.js';

/** The longest a follower waits on one timer before it looks at its leader's lease again. @internal */
export const FLIGHT_RECHECK_MILLIS = 1000;

/**
 * The in-process leaders each call waits on through a follower nested in it (a wait blocks every
 * call the follower is part of), counted. Process-wide, as flights are per engine: two calls that
 * each call the other's function with the other's key would wait on each other until their bound
 * (without a deadline, until a lease ends, when each would take the other's record over and run
 * it again).
 */
const waitsOf = new Map<Call, Map<Call, number>>();

/** Whether `leader`, or a leader it waits on, waits through its nested calls on a call the code running now is part of. @internal */
export function waitsOnCaller(leader: Call): boolean {
  const seen = new Set<Call>();
  const next = [leader];
  for (let call = next.pop(); call !== undefined; call = next.pop()) {
    if (seen.has(call)) continue;
    seen.add(call);
    for (const waited of waitsOf.get(call)?.keys() ?? []) {
      if (!waited.hasReturned && isWithin(waited)) return true;
      next.push(waited);
    }
  }
  return false;
}

/** Records that the calls the code running now is part of wait on `leader`; the function returned forgets it. @internal */
export function waitOn(leader: Call): () => void {
  const blocked = callsAround();
  for (const call of blocked) {
    const waits = waitsOf.get(call) ?? new Map<Call, number>();
    waitsOf.set(call, waits.set(leader, (waits.get(leader) ?? 0) + 1));
  }
  return () => {
    for (const call of blocked) {
      const waits = waitsOf.get(call)!;
      const count = waits.get(leader)! - 1;
      if (count > 0) waits.set(leader, count);
      else if (waits.delete(leader) && waits.size === 0) waitsOf.delete(call);
    }
  };
}

/** A leader's outcome for the in-process duplicates waiting on it: a record to answer from, or none (try again). @internal */
export interface Flight {
  /** Set once the leader holds the record. */
  leaseUntil?: number;
  /** The leader's call, once it holds the record. */
  call?: Call;
  /**
   * Calls `wake` once, at the leader's next news: it holds the record (a follower that came while
   * the claim was in flight, with no lease to wait for yet, then waits only until the leader's lease
   * ends, as later ones do), or it landed. The function returned forgets `wake`: a follower's wait
   * that ends on its timer leaves nothing on the flight. A reaction to `done` would stay until the
   * leader ends, one for each wait (a second, or less) of each follower.
   */
  readonly watch: (wake: () => void) => () => void;
  /** Records the leader's call and lease, and wakes the followers watching. */
  readonly hold: (call: Call, leaseUntil: number | undefined) => void;
  /** The leader's record once it landed (none: try again). Durable followers, which wait on no timer, await it. */
  readonly done: Promise<IdempotencyRecord | undefined>;
  /** Set once the flight landed, with what `done` settles with. */
  landed?: { readonly record: IdempotencyRecord | undefined };
  readonly settle: (record: IdempotencyRecord | undefined) => void;
  /**
   * The error that ended a durable leader's invocation (`isUnrecoverableInvocation`), with no
   * record: its followers of that invocation end with it rather than lead and run their functions.
   */
  invocationEnded?: unknown;
  /** The store's failure of the leader's claim, which its followers fail with (each with an error of its own). */
  claimFailed?: IdempotencyError;
  /**
   * Another process's INPROGRESS record, which the leader was out of time to wait for: its
   * followers out of time too answer from it; those with time of their own wait for it themselves.
   */
  outOfTime?: IdempotencyRecord;
  /**
   * The durable leader met its execution's own outcome, stored in an earlier invocation: its
   * followers, made again on this replay, were counted then, and count no replay now.
   */
  ownOutcome?: true;
}
