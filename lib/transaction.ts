import { AsyncLocalStorage } from 'node:async_hooks';
import type { NativeAttributeValue } from '@aws-sdk/util-dynamodb';
import type { Call } from './call.js';
import { CallTransaction } from './call-transaction.js';

type Values = Record<string, NativeAttributeValue>;

interface Expressions {
  readonly ConditionExpression?: string;
  readonly ExpressionAttributeNames?: Record<string, string>;
  readonly ExpressionAttributeValues?: Values;
}
/** A Put in lib-dynamodb style: native JavaScript values. */
export interface TransactionPut extends Expressions {
  readonly TableName: string;
  readonly Item: Values;
}
export interface TransactionUpdate extends Expressions {
  readonly TableName: string;
  readonly Key: Values;
  readonly UpdateExpression: string;
}
export interface TransactionDelete extends Expressions {
  readonly TableName: string;
  readonly Key: Values;
}
export interface TransactionConditionCheck extends Expressions {
  readonly TableName: string;
  readonly Key: Values;
  readonly ConditionExpression: string;
}

/**
 * The writes of the current idempotent call, committed in one DynamoDB transaction together with
 * the call's COMPLETED record, so the effects and the record exist together or not at all.
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
  /** @deprecated The same token as `owner`. */
  readonly fence: string;
  /**
   * A stable key for an external call made by this logical request (e.g. a payment provider's
   * idempotency key): identical across retries and takeovers, different for each `label`.
   */
  downstreamKey(label?: string): string;
}

/**
 * The call whose function is running in this async context. A slot rather than the call itself:
 * a middy request enters it before its claim is made, then fills it. `outer` is the slot of the
 * call this one is nested in. `inFunction` tells a slot the call's function runs in from the one a
 * middy request enters where it starts, which also reaches the code that invoked the handler. @internal
 */
interface CallSlot {
  call: Call | undefined;
  readonly outer: CallSlot | undefined;
  readonly inFunction: boolean;
}

const currentCall = new AsyncLocalStorage<CallSlot>();

/**
 * The innermost slot whose call's function is still running here: the one a new call is nested in.
 * A middy request's first slot stays in the context that invoked the handler (see {@link enterCall}),
 * during the request and after it: a runtime loop dispatches the next invocations from there, which
 * must not be nested in it, nor keep it, and every invocation before it, reachable.
 */
function enclosing(slot: CallSlot | undefined): CallSlot | undefined {
  while (slot !== undefined && (!slot.inFunction || slot.call === undefined || slot.call.isEnded)) slot = slot.outer;
  return slot;
}

/**
 * Runs `fn` as the function of `call`, and settles what it returns there: `transaction()` inside it
 * (and only there) is this call's. A thenable that does its work only once awaited (a query
 * builder) is awaited in the call, so that work is the call's too, not its caller's. @internal
 */
export function inCall<R>(call: Call, fn: () => PromiseLike<R> | R): Promise<R> {
  return currentCall.run({ call, outer: enclosing(currentCall.getStore()), inFunction: true }, async () => await fn());
}

/** The call whose function is running here, and in which a call starting now is nested. @internal */
export function enclosingCall(): Call | undefined {
  return enclosing(currentCall.getStore())?.call;
}

/**
 * Whether the code running now is part of `call`'s function, directly or through calls nested in
 * it. Not the code that invoked a middy handler: a runtime loop that dispatches the next
 * invocation from there dispatches a sibling, not a nested call. @internal
 */
export function isWithin(call: Call): boolean {
  return callAround((running) => running === call) !== undefined;
}

/** The innermost call that passes `test` whose function the code running now is part of, directly or through calls nested in it. */
function callAround(test: (call: Call) => boolean): Call | undefined {
  for (let slot = currentCall.getStore(); slot !== undefined; slot = slot.outer)
    if (slot.inFunction && slot.call !== undefined && test(slot.call)) return slot.call;
  return undefined;
}

/**
 * The call holding record `key` (a claim of it, not yet ended) whose function the code running now
 * is part of, directly or through calls nested in it, if any. A durable execution's calls all hold
 * their records as the execution, so only this tells a call nested in another on the same record
 * from a replay of that call. @internal
 */
export function holderAround(key: string): Call | undefined {
  return callAround((call) => !call.isEnded && call.mode === 'claimed' && call.key === key);
}

/** Leaves every call scope of this process (benchmarks: promise hooks off between subjects). @internal */
export function leaveCallScopes(): void {
  currentCall.disable();
}

/**
 * Enters an empty slot into the current async context, for the rest of it, and returns it. Must
 * be called synchronously at the start of a middy `before` hook, so that the handler (called later
 * by middy from the same context) sees the call put into the slot once claimed. @internal
 */
export function enterCall(): CallSlot {
  const slot: CallSlot = { call: undefined, outer: enclosing(currentCall.getStore()), inFunction: false };
  currentCall.enterWith(slot);
  return slot;
}

/**
 * Enters the filled `slot`'s call as the function running in the current async context, for the
 * rest of it: called where middy reads the event to invoke the handler, in the request's own
 * context, so that a call nested in the handler knows it is nested. @internal
 */
export function enterFunction(slot: CallSlot): void {
  const current = currentCall.getStore();
  if (slot.call === undefined || slot.call.isEnded || (current?.inFunction === true && current.call === slot.call)) return;
  currentCall.enterWith({ call: slot.call, outer: slot, inFunction: true });
}

/** The one `Transaction` of each call, so `transaction()` returns the same object throughout a call. */
const views = new WeakMap<Call, Transaction>();

/**
 * The write collector of the idempotent call in progress (middleware, `makeIdempotent`, HTTP or
 * batch). Writes added to it are committed atomically with the call's COMPLETED record.
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
  let slot = currentCall.getStore();
  // A middy call nested in this function leaves the slot it entered where it started behind in
  // this context: once that call ended (or never held one), the call around it is this code's.
  // A function's own slot is never skipped: work it left running must not join its caller's writes.
  while (slot !== undefined && !slot.inFunction && (slot.call === undefined || slot.call.isEnded)) slot = slot.outer;
  const call = slot?.call;
  if (call === undefined) {
    throw new TypeError(
      'transaction() was called outside an idempotent call: call it in a function wrapped by makeIdempotent, in a middy handler that uses idempotency() or httpIdempotency(), or in an idempotentBatch record handler, before that call returns.',
    );
  }
  if (call.isEnded) throw new TypeError('transaction(): this idempotent call has already ended; its transaction is committed or discarded.');
  let view = views.get(call);
  if (view === undefined) views.set(call, (view = new CallTransaction(call)));
  return view;
}
