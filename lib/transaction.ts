import { AsyncLocalStorage } from 'node:async_hooks';
import type { NativeAttributeValue } from '@aws-sdk/util-dynamodb';
import type { Call } from './call.js';
import { CallTransaction } from './call-transaction.js';
import type { RecordItem } from './store.js';

type Values = Record<string, NativeAttributeValue>;

interface Expressions {
  readonly ConditionExpression?: string | undefined;
  readonly ExpressionAttributeNames?: Record<string, string> | undefined;
  readonly ExpressionAttributeValues?: Values | undefined;
  /** `'ALL_OLD'`: a failed condition's `TRANSACTION_CONDITION_FAILED` has the item it met in its cause's `CancellationReasons[actionIndex + 1].Item` (AttributeValues). */
  readonly ReturnValuesOnConditionCheckFailure?: 'ALL_OLD' | 'NONE' | undefined;
}
// Typed as lib-dynamodb types its command inputs, so that one passes as it is: a member a write
// needs may still be `undefined` (or, an `UpdateExpression`, left out), and the write then throws a
// `TypeError` as it is added.
/** A Put in lib-dynamodb style: native JavaScript values (a `PutCommandInput` is one). */
export interface TransactionPut extends Expressions {
  readonly TableName: string | undefined;
  readonly Item: Values | undefined;
}
/** An Update in lib-dynamodb style (an `UpdateCommandInput` is one). */
export interface TransactionUpdate extends Expressions {
  readonly TableName: string | undefined;
  readonly Key: Values | undefined;
  readonly UpdateExpression?: string | undefined;
}
/** A Delete in lib-dynamodb style (a `DeleteCommandInput` is one). */
export interface TransactionDelete extends Expressions {
  readonly TableName: string | undefined;
  readonly Key: Values | undefined;
}
/** A ConditionCheck in lib-dynamodb style (the action of a `TransactWriteCommandInput` is one). */
export interface TransactionConditionCheck extends Expressions {
  readonly TableName: string | undefined;
  readonly Key: Values | undefined;
  readonly ConditionExpression: string | undefined;
}

/**
 * The writes of the current idempotent call, committed in one DynamoDB transaction together with
 * the call's COMPLETED record, so the effects and the record exist together or not at all. A call
 * commits at most 99 writes (its record is the 100th action), one per item: the 100th write, a
 * write on an item another write of the call names, one on the call's own record, one that would
 * change the record of a call it is nested in, and one whose expression uses an
 * `ExpressionAttributeValues` value or an `ExpressionAttributeNames` name that is `undefined`, throw `TRANSACTION_INVALID` (`actionIndex`,
 * `tableName`) as they are added.
 */
export interface Transaction {
  put(params: TransactionPut): Transaction;
  update(params: TransactionUpdate): Transaction;
  delete(params: TransactionDelete): Transaction;
  conditionCheck(params: TransactionConditionCheck): Transaction;
  /** The record key of this logical call: the same on every retry and takeover. */
  readonly key: string;
  /** This attempt's owner token (the fence its record is conditioned on); changes on takeover. */
  readonly owner: string;
  /** @deprecated The same token as `owner`: read `owner` instead. */
  readonly fence: string;
  /**
   * A stable key for an external call made by this logical request (e.g. a payment provider's
   * idempotency key): identical across retries and takeovers, different for each `label`.
   */
  downstreamKey(label?: string): string;
}

/**
 * The call whose function is running in this async context, and the slot of the call it is nested
 * in. Only the function's own context holds it: code that starts a call without awaiting it, and
 * writes meanwhile, writes in its own call, never in the one it started. @internal
 */
interface CallSlot {
  readonly call: Call;
  readonly outer: CallSlot | undefined;
}

const currentCall = new AsyncLocalStorage<CallSlot>();
// Tracked from the start. Node 20 and 22 track async contexts only once a store is first used:
// promises made before then (a runtime loop's, middy's for the first invocation) have none of
// their own, and `enterFunction` in the first call would then set the process's top-level context,
// in which every later invocation would seem nested in that call while it runs.
currentCall.enterWith(undefined as unknown as CallSlot);

/** The innermost slot whose call's function is still running here: the one a new call is nested in. */
function enclosing(slot: CallSlot | undefined): CallSlot | undefined {
  while (slot?.call.isEnded) slot = slot.outer;
  return slot;
}

/**
 * Runs `fn` as the function of `call`, and settles what it returns there: `transaction()` inside it
 * (and only there) is this call's. A thenable that does its work only once awaited (a query
 * builder) is awaited in the call, so that work is the call's too, not its caller's. @internal
 */
export function inCall<R>(call: Call, fn: () => PromiseLike<R> | R): Promise<R> {
  return currentCall.run({ call, outer: enclosing(currentCall.getStore()) }, async () => {
    try {
      return await fn();
    } finally {
      call.functionReturned();
    }
  });
}

/** The call whose function is running here, and in which a call starting now is nested. @internal */
export function enclosingCall(): Call | undefined {
  return enclosing(currentCall.getStore())?.call;
}

/**
 * The call whose invocation's deadline a call starting now ends by: the one it is nested in, or one
 * abandoned while its function may still run (middy's early timeout ends the call, not the handler,
 * which Managed Instances leave running past the deadline). @internal
 */
export function deadlineCallAround(): Call | undefined {
  return callAround((call) => !call.isEnded || call.isAbandoned);
}

/**
 * Whether the code running now is part of `call`'s function, directly or through calls nested in
 * it. Not the code that invoked a middy handler: a runtime loop that dispatches the next
 * invocation from there dispatches a sibling, not a nested call. @internal
 */
export function isWithin(call: Call): boolean {
  return callAround((running) => running === call) !== undefined;
}

/** The calls whose functions the code running now is part of and has not returned from, innermost first. @internal */
export function callsAround(): Call[] {
  const calls: Call[] = [];
  for (let slot = currentCall.getStore(); slot !== undefined; slot = slot.outer) if (!slot.call.hasReturned) calls.push(slot.call);
  return calls;
}

/** The innermost call that passes `test` whose function the code running now is part of, directly or through calls nested in it. */
function callAround(test: (call: Call) => boolean): Call | undefined {
  for (let slot = currentCall.getStore(); slot !== undefined; slot = slot.outer) if (test(slot.call)) return slot.call;
  return undefined;
}

/**
 * The tenant of the innermost call the code running now is part of, also one whose function has
 * returned: the tenant is the invocation's, and work a tenant's call left running (a timer, a
 * promise not awaited) is still that tenant's, never one without a tenant, whose records another
 * tenant's work would share. @internal
 */
export function tenantAround(): string | undefined {
  return callAround((call) => call.tenant !== undefined)?.tenant;
}

/**
 * The call holding record `key` (a claim of it, not yet ended) whose function the code running now
 * is part of, directly or through calls nested in it, if any. A durable execution's calls all hold
 * their records as the execution, so only this tells a call nested in another on the same record
 * from a replay of that call. @internal
 */
export function holderAround(key: string): Call | undefined {
  // A call whose function has returned holds nothing for work it left running: that work is a duplicate.
  return callAround((call) => !call.isEnded && !call.hasReturned && call.mode === 'claimed' && call.key === key);
}

/** Leaves every call scope of this process (benchmarks: promise hooks off between subjects). @internal */
export function leaveCallScopes(): void {
  currentCall.disable();
}

/**
 * The slot a middy request's call will be nested in: read at the start of its `before` hook, in
 * the context that invoked the handler. Not entered there: that context goes on running its own
 * code (an idempotent function that invoked the handler without awaiting it yet), whose writes are
 * its own call's. @internal
 */
export function outerSlot(): CallSlot | undefined {
  return enclosing(currentCall.getStore());
}

/**
 * Enters `call` as the function running in the current async context, for the rest of it, nested
 * in `outer`: called where middy reads the event to invoke the handler, in the request's own
 * context (middy awaited the `before` hooks there, so the context that invoked the handler is
 * left as it was), so that the handler's `transaction()` is this call's and a call nested in the
 * handler knows it is nested. @internal
 */
export function enterFunction(call: Call, outer: CallSlot | undefined): void {
  if (call.isEnded || currentCall.getStore()?.call === call) return;
  currentCall.enterWith({ call, outer });
}

/** The one `Transaction` of each call, so `transaction()` returns the same object throughout a call. */
const views = new WeakMap<Call, Transaction>();

/**
 * The write collector of the idempotent call in progress (middleware, `makeIdempotent`, HTTP or
 * batch). Writes added to it are committed atomically with the call's COMPLETED record. Once the
 * call's function has returned, writes are refused: work it left running adds none.
 *
 * In a Lambda durable execution, add writes in the handler body, from the values the steps return:
 * the body runs again on every replay and its writes commit once, when the execution returns. A
 * write added inside `ctx.step` or `runInChildContext` (whose functions are not run again on replay)
 * is lost if the execution suspends after it; a step that must write can call an idempotent
 * function of its own, whose writes commit with that function's record.
 *
 * @example
 * ```ts
 * const pay = makeIdempotent(async (input: Payment) => {
 *   transaction().put({ TableName: 'payments', Item: { id: input.id, amount: input.amount, status: 'PAID' } });
 *   return { id: input.id };
 * }, { store, name: 'pay', key: (input) => input.id });
 * ```
 */
export function transaction(): Transaction {
  const call = currentCall.getStore()?.call;
  if (call === undefined) {
    throw new TypeError(
      'transaction() was called outside an idempotent call: call it in a function wrapped by makeIdempotent, in a middy handler that uses idempotency() or httpIdempotency(), or in an idempotentBatch record handler, before that call returns.',
    );
  }
  if (call.isEnded) throw new TypeError('transaction(): this idempotent call has already ended; its transaction is committed or discarded.');
  let view = views.get(call);
  if (view === undefined) {
    const outerRecords: RecordItem[] = [];
    for (let slot = currentCall.getStore()?.outer; slot !== undefined; slot = slot.outer) {
      const item = slot.call.recordItem;
      if (item) outerRecords.push(item);
    }
    views.set(call, (view = new CallTransaction(call, call.recordItem, outerRecords)));
  }
  return view;
}
