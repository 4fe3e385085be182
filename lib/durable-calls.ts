/*
 * The calls of durable executions: one execution's calls hold its records across invocations and
 * replays, by invocation and key, for every engine of the process.
 */
import type { Call } from './call.js';
import { sha256 } from './key.js';
import { DURABLE_OWNER, type IdempotencyRecord } from './store.js';

/** The owner of a durable execution's records: every invocation of the execution holds them. @internal */
export const durableOwner = (execution: string): string => `${DURABLE_OWNER}${sha256(execution)}`;

/**
 * Whether a call of the durable `execution` met in `record` the outcome its execution stored in an
 * earlier invocation: the execution makes its body's calls again on every replay, and one meeting its
 * own outcome is no duplicate (no replay event), as one resuming on its own claim is no miss. Met in
 * the invocation that claimed `key` (`claimed`), it is a duplicate of that invocation's call.
 * @internal
 */
export const metOwnOutcome = (record: IdempotencyRecord, execution: string | undefined, claimed: Set<string> | undefined, key: string): boolean =>
  execution !== undefined && record.owner === durableOwner(execution) && claimed?.has(key) !== true;

/**
 * The invocation a durable call belongs to, by its Lambda context: the runtime makes one per
 * invocation, and the durable SDK hands it on to every child context of the invocation.
 * (`awsRequestId` will not do: AWS's local runner gives every invocation the same one, and a
 * context built by hand may have none.) A durable context built by hand, without a Lambda context,
 * stands for its own invocation. `undefined` when it cannot be read.
 * @internal
 */
export function invocationOf(context: unknown): object | undefined {
  let invocation: unknown;
  try {
    invocation = (context as { lambdaContext?: unknown }).lambdaContext ?? context;
  } catch {
    return undefined;
  }
  return typeof invocation === 'object' && invocation !== null ? invocation : undefined;
}

/**
 * The records the durable calls of each invocation hold, by invocation (its Lambda context, as for
 * flights) and record key, for every engine of the process. The calls of an execution share one owner:
 * a call of another engine with the key (a wrapper of the same function made where it is called,
 * in each `ctx.map` item) would take a record held by a running call for its own and run beside it.
 * Not by store: two store objects on one table (each wrapper made with a store of its own) share
 * its records, and a call nested in its holder meets it whatever its store, as outside them.
 * A call whose claim is still unanswered holds its key with that claim (settled once answered):
 * two such calls started at once (the items of a `ctx.map`) would otherwise both find no holder,
 * both claim, both find the execution's own record, and both run.
 */
const durableHolds = new WeakMap<object, Map<string, Hold>>();

/** A durable call's hold on its record: the call, once it holds it; before, its claim in flight, settled once answered. @internal */
export type Hold = Call | Promise<void>;

/** The records held in `invocation`, by key. @internal */
export function holdsOf(invocation: object): Map<string, Hold> {
  let holds = durableHolds.get(invocation);
  if (holds === undefined) durableHolds.set(invocation, (holds = new Map()));
  return holds;
}

/**
 * The keys durable calls of each invocation claimed, by invocation (as for holds), for every engine
 * of the process (a wrapper made where it is called is a new engine each time): a call of the same
 * invocation that meets the outcome is a duplicate, a replay as any other; one of a later
 * invocation, made again as the execution replays its body, met it then, and counts nothing. Not by
 * store, as holds are not: two store objects on one table share its records, and a call of another
 * wrapper with a store of its own meets the record claimed in this invocation as a duplicate too.
 */
const durableClaims = new WeakMap<object, Set<string>>();

/** The keys claimed in the invocation of `context`; none for a durable context that cannot be read. @internal */
export function claimedOf(context: unknown): Set<string> | undefined {
  const invocation = invocationOf(context);
  if (invocation === undefined) return undefined;
  let claimed = durableClaims.get(invocation);
  if (claimed === undefined) durableClaims.set(invocation, (claimed = new Set()));
  return claimed;
}
