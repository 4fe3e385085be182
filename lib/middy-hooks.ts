import type { Request } from '@middy/core';
import type { Context } from 'aws-lambda';
import type { Call } from './call.js';
import { isResumable } from './call-errors.js';
import type { Ending, IdempotencyEngine, Outcome, Start } from './engine.js';
import { type IdempotencyErrorCode, isIdempotencyError } from './errors.js';
import { durableExecutionOf, durableInvocationEnded, remainingMillisOf } from './invocation.js';
import { readStreams, reviveStreams } from './streamed-response.js';
import { enclosingCall, enterFunction, holderAround, outerSlot } from './transaction.js';

/** The middy package an error names as its origin (`cause.package`), if any; a getter that throws names none. */
function packageOf(error: unknown): { readonly name: unknown; readonly package: unknown } {
  try {
    const { name, cause } = (error ?? {}) as { name?: unknown; cause?: { package?: unknown } };
    return { name, package: cause?.package };
  } catch {
    return { name: undefined, package: undefined };
  }
}

/** Middy's own early timeout, not a TimeoutError the handler threw (the SDK's, AbortSignal.timeout's). */
const isMiddyTimeout = (error: unknown): boolean => {
  const origin = packageOf(error);
  return origin.name === 'TimeoutError' && origin.package === '@middy/core';
};

/**
 * The rejections an atomic call whose run failed answers from the record it met (another payload's,
 * one whose outcome was not stored) rather than with the handler's error, as `makeIdempotent` does.
 */
const MET_AFTER_FAILURE: ReadonlySet<IdempotencyErrorCode> = new Set(['PAYLOAD_MISMATCH', 'RESPONSE_NOT_STORED', 'ERROR_NOT_STORED']);

/** An error a middy middleware raised (@middy/validator refusing the event, say), which no handler threw. */
const isMiddlewareError = (error: unknown): boolean => {
  const origin = packageOf(error).package;
  return typeof origin === 'string' && origin.startsWith('@middy/') && origin !== '@middy/core';
};

/**
 * The record keys of the calls the idempotency middlewares on a request started, by request:
 * a second middleware that selects the same record on one request would meet the first one's claim,
 * nested in its call, and answer every request `IN_PROGRESS`. Registered like `unkept`.
 */
const HELD = Symbol.for('lambda-idempotency.middy.held.v1');
const heldKeys = ((globalThis as { [HELD]?: WeakMap<object, Set<string>> })[HELD] ??= new WeakMap<object, Set<string>>());

/**
 * The `.use()` of an idempotency middleware that started each call, on any request: another one
 * nested in a middy handler that one holds the same record for (on a route behind
 * `@middy/http-router` and on the router, both in the function's namespace; or one middleware
 * `.use()`d on both) is the same misuse as two on one handler. The same `.use()` is a handler
 * invoking itself with its own key: `IN_PROGRESS`. Registered like `unkept`.
 */
const STARTERS = Symbol.for('lambda-idempotency.middy.starters.v1');
const starters = ((globalThis as { [STARTERS]?: WeakMap<Call, object> })[STARTERS] ??= new WeakMap<Call, object>());

/** How an entry point's world differs from the plain middleware's. @internal */
export interface Translation {
  /**
   * The answer sent to the request's `event` for another attempt's stored outcome; `own` when the
   * outcome is the durable execution's own, stored by an invocation of it whose answer was lost: no
   * duplicate's, so not marked as one.
   */
  readonly replay: (value: unknown, event: unknown, own: boolean) => unknown;
  /** How the handler's response ends the call; `returned` is the response before any stream in it was read. @default stored */
  readonly ending?: (response: unknown, returned: unknown) => Ending;
  /** The answer sent for a rejection of the request's `event` instead of throwing it, if any. */
  readonly reject?: (error: unknown, event: unknown) => { readonly response: unknown } | undefined;
  /**
   * The answer sent instead of running the handler, if any, for a request whose call the engine
   * started (no record answered it): the call ends released, as if the handler never ran. The
   * answer is built once it has: building it may run the user's code, which may throw.
   */
  readonly refuse?: (event: unknown) => (() => unknown) | undefined;
}

type AnyRequest = Request<unknown, unknown, Error, Context>;

/**
 * The cleanups Powertools' Tracer, Metrics and Logger middlewares leave in `request.internal` for a
 * middleware that answers early: middy then runs no `after`, theirs included, so the handler's
 * trace subsegment would stay open, the invocation's metrics unflushed and its log keys kept for
 * the next invocation. Powertools' idempotency middleware's is not run: it would store this
 * middleware's answer (a 409, a 422) as its own record's response.
 */
const CLEANUPS = ['tracer', 'metrics', 'logger'].map((name) => `powertools-for-aws.${name}`);

/**
 * Answers `request` early with `response`, once the cleanups other middlewares left for that have
 * run. A cleanup that throws (Powertools' Metrics set to throw on empty metrics, on a replay, where
 * the handler added none) is `warn`ed of: the answer is sent all the same, as without the cleanup.
 */
async function answerEarly(request: AnyRequest, response: unknown, warn: (message: string) => void): Promise<void> {
  const internal = request.internal as Record<string, unknown> | undefined;
  for (const name of CLEANUPS) {
    const cleanup = internal !== undefined && Object.hasOwn(internal, name) ? internal[name] : undefined;
    if (typeof cleanup !== 'function') continue;
    try {
      await cleanup(request);
    } catch (error) {
      warn(
        `the cleanup \`${name}\` left for an early answer threw (${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}); the answer was sent all the same`,
      );
    }
  }
  request.earlyResponse = response;
}

/**
 * The error an idempotency middleware threw for a request without an outcome of the handler: the
 * rejection (`KEY_MISSING`…) its `before` threw (the handler never ran), or what its `after` threw
 * because its call did not keep the handler's response (a commit of the handler's writes that
 * failed, another attempt's outcome). An outer idempotency middleware on the same handler keeps
 * none either. By request: the same error rethrown by a handler that met it in a nested request is
 * that handler's own. Kept under a registered symbol, so that two copies of this library on one
 * handler (two versions installed, one in a dependency) share it.
 */
const UNKEPT = Symbol.for('lambda-idempotency.middy.unkept.v1');
const unkept = ((globalThis as { [UNKEPT]?: WeakMap<object, unknown> })[UNKEPT] ??= new WeakMap<object, unknown>());

/**
 * The end of a failed request's call, by the last idempotency middleware that started one: each
 * starts it as middy records the error, the inner one first, and an outer one reads the inner's
 * verdict (`unkept`) only once that end has settled (a commit of the handler's writes that fails,
 * after a middleware inside both threw, keeps no outcome). Registered like `unkept`.
 */
const FAILURES = Symbol.for('lambda-idempotency.middy.failures.v1');
const failureEnds = ((globalThis as { [FAILURES]?: WeakMap<object, Promise<unknown>> })[FAILURES] ??= new WeakMap<object, Promise<unknown>>());

/**
 * The promises an idempotency middleware put in `request.response` for an early answer to an error:
 * an outer one on the same handler sees middy's assignment of that answer through the inner one's
 * accessor, with the inner one's promise as its value, and ends its own call on it too (the caller
 * gets the answer once both calls have ended). Registered like `unkept`.
 */
const EARLY_ANSWERS = Symbol.for('lambda-idempotency.middy.early-answers.v1');
const earlyAnswers = ((globalThis as { [EARLY_ANSWERS]?: WeakSet<object> })[EARLY_ANSWERS] ??= new WeakSet<object>());

/** What one middleware holds of one request, from its `before` to the hook that ends the request's call. */
interface RequestState {
  /** Which request this middleware started it as: which came after which. */
  readonly number: number;
  /** The request's call, until a hook takes it to end it. */
  call?: Call;
  /** The handler's response as it stood when a later middleware threw, for requests whose handler returned. */
  returned?: { readonly value: unknown };
  /**
   * The error middy caught, which an `onError` before this one may replace (http-error-handler
   * turns every unexposed error, middy's early timeout included, into a plain 500 error): the
   * call's outcome is what the handler threw, for `isFinalError` and the early timeout alike.
   */
  caught?: { readonly error: unknown; readonly ran: boolean };
  /**
   * The end of a failed request's call, started as soon as middy records the error: middy skips
   * the `onError` hooks after one that throws, this one's included, and the call must end anyway.
   */
  failure?: Promise<Outcome>;
  /** The error of a claim or commit the store failed that ends a durable invocation, which a later `onError` may replace. */
  invocationEnd?: { readonly error: unknown };
}

/**
 * The hooks of a middy idempotency middleware: `before` starts the call, `after` and `onError`
 * end it. A request's state lives in a WeakMap rather than `request.internal`, which middy
 * shares between requests when a `plugin.internal` object is configured. @internal
 */
export function idempotencyHooks<TEvent, TContext>(engine: IdempotencyEngine<TEvent, TContext>, translation: Translation) {
  const requests = new WeakMap<object, RequestState>();
  /** The request's call, taken to be ended: no other hook ends it. */
  const take = (request: object): Call | undefined => {
    const state = requests.get(request);
    const call = state?.call;
    if (state !== undefined) state.call = undefined;
    return call;
  };
  /** Another attempt's stored outcome as this request's answer; stored stream bytes become a stream again. */
  const replay = (value: unknown, request: AnyRequest, own = false): unknown => reviveStreams(translation.replay(value, request.event, own));
  const warn = (message: string): void => engine.warn(`${engine.where}(): ${message}`);
  /** What the caller gets for an outcome: a value, a problem answer, or a thrown error. */
  const answerOf = (outcome: Outcome, request: AnyRequest): unknown => {
    if (outcome.kind === 'value') return outcome.replayed ? replay(outcome.value, request) : reviveStreams(outcome.value);
    const rejected = translation.reject?.(outcome.error, request.event);
    if (rejected === undefined) throw outcome.error;
    return rejected.response;
  };
  const endingOf = (response: unknown, returned: unknown): Ending => {
    try {
      return translation.ending ? translation.ending(response, returned) : { kind: 'return', value: response };
    } catch (error) {
      // A response that cannot be sent (a BigInt, a cycle): released like a thrown error.
      return { kind: 'throw', error };
    }
  };
  /** How the handler's response ends the call, once any stream in it is read (a stream that fails is the handler failing). */
  const endingOfResponse = (response: unknown): Promise<Ending> =>
    readStreams(response).then(
      (read) => endingOf(read, response),
      (error: unknown): Ending => ({ kind: 'throw', error }),
    );

  /**
   * How a response set once the handler ran ends the call: released when an inner idempotency
   * middleware kept no outcome of the handler (a commit of its writes that failed, answered 503 by
   * httpIdempotency; a 5xx it released its key for): a retry meets the inner record, which holds
   * the truth. Read once the response settles: an inner middleware's early answer settles once its
   * call has ended.
   */
  const endingOfAnswer = async (request: AnyRequest, response: unknown): Promise<Ending> => {
    const ending = await endingOfResponse(response);
    if (!unkept.has(request) || ending.kind === 'abandon') return ending;
    // The inner record holds the truth: nothing of this call's is kept, or read.
    return ending.kind === 'return' ? { kind: 'return', value: ending.value, final: false } : { ...ending, final: false };
  };
  /** Ends the call of a request whose handler ran; marks the request when the call kept no outcome, for outer idempotency middlewares. */
  const endAnswered = async (request: AnyRequest, call: Call, ending: Ending): Promise<Outcome> => {
    const outcome = await engine.end(call, ending);
    if (outcome.kind === 'error') unkept.set(request, outcome.error);
    else if (ending.kind !== 'abandon' && ending.final === false) unkept.set(request, undefined);
    return outcome;
  };

  /** How many requests this middleware has started. */
  let requestsStarted = 0;
  /**
   * Whether middy's early timeout of `request` fired after its invocation ended: a durable
   * invocation that suspends never settles its handler, so middy's timer stays armed and fires
   * later, while the execution goes on. The durable SDK's own state says so where it can be read:
   * under Lambda Managed Instances, invocations run side by side in one process, so one started
   * after this one says nothing of whether this one has ended, and one that suspended fires its
   * timer before its deadline. Else, one invocation at a time: it fired in a later invocation of
   * the process, or on a thaw past the invocation's deadline (its context, which read time left at
   * the start, reads none now).
   */
  const timedOutLate = (request: AnyRequest, call: Call): boolean =>
    durableInvocationEnded(request.context) ??
    (requests.get(request)?.number !== requestsStarted || (call.answerBy !== undefined && remainingMillisOf(request.context) === undefined));

  /** How a failed request ends its call. Middy's early timeout: the handler may still be running, so nothing is written; the lease ends at the deadline. */
  const errorEnding = async (request: AnyRequest, call: Call): Promise<Ending> => {
    // The call ends as the error middy caught, whatever an inner `onError` made of it since.
    const { error, ran } = requests.get(request)?.caught ?? { error: request.error, ran: true };
    // A call without a key keeps nothing: no response to read (a stream stays unread), nothing to
    // release. Past middy's early timeout its handler may still run: calls it starts end by the deadline.
    if (call.mode === 'unkeyed') return isMiddyTimeout(error) ? { kind: 'abandon' } : { kind: 'throw', error, final: false };
    // An inner idempotency middleware refused the request (the handler never ran) or kept no outcome
    // of the handler (its writes did not commit, say), whether it threw that or answered it and a
    // later middleware threw: nor does this one, so a retry meets the inner record, which holds the truth.
    if (unkept.has(request)) return { kind: 'throw', error, final: false };
    // The handler returned and a later middleware threw: the function ran, so its response is the
    // call's outcome (a retry must not run it again); this caller still gets the error or its answer.
    const response = requests.get(request)?.returned;
    if (response !== undefined) return endingOfResponse(response.value);
    // A durable execution fails for good on it, with no invocation left to end its call: it ends as
    // its error. Unless the invocation had suspended: its execution holds the record still.
    if (isMiddyTimeout(error)) {
      return durableExecutionOf(request.context) === undefined || timedOutLate(request, call) ? { kind: 'abandon' } : { kind: 'throw', error };
    }
    // An inner `before` threw (a validator refused the event): the handler never ran, so its error is no outcome to keep.
    return ran && !isMiddlewareError(error) ? { kind: 'throw', error } : { kind: 'throw', error, final: false };
  };

  /** Ends a failed request's call, once; `undefined` when it holds none (or its end was answered already). */
  const endFailure = (request: AnyRequest): Promise<Outcome> | undefined => {
    const state = requests.get(request);
    if (state?.failure !== undefined) return state.failure;
    const call = take(request);
    if (state === undefined || call === undefined) return undefined;
    const end = async (ending: Ending): Promise<Outcome> => {
      // The handler's response, which a middleware inside this one threw after: kept only if this call kept it.
      const outcome = await (ending.kind === 'return' ? endAnswered(request, call, ending) : engine.end(call, ending));
      // Another attempt's outcome answers the request (an atomic commit met it): the handler's response
      // or error, which an outer middleware would keep, is no outcome of this call.
      if (outcome.replayed) unkept.set(request, outcome.kind === 'error' ? outcome.error : undefined);
      return outcome;
    };
    // An inner idempotency middleware's end decides what this one's may keep: it is awaited first.
    // Without one, the call ends at once (its writes refused from now on).
    const inner = failureEnds.get(request);
    const outcome = inner === undefined ? errorEnding(request, call).then(end) : inner.then(() => errorEnding(request, call)).then(end);
    // Awaited by this `onError`, unless another one's throw skips it; by an outer idempotency middleware's end in any case.
    failureEnds.set(
      request,
      outcome.catch(() => undefined),
    );
    state.failure = outcome;
    return outcome;
  };
  /** The end of a failed request's call, for the one hook that answers it. */
  const answerFailure = (request: AnyRequest): Promise<Outcome> | undefined => {
    const outcome = endFailure(request);
    const state = requests.get(request);
    if (state !== undefined) state.failure = undefined;
    return outcome;
  };

  /**
   * Another middleware may answer early (a `before` or `after` that sets `request.earlyResponse`
   * or returns a value): middy then skips the handler and the hooks after it, including this
   * one's, but it assigns the answer to `request.response` and returns what it reads there. An
   * accessor sees that assignment: the call ends (released when the handler never ran, completed
   * with the answer when it did), and middy returns a promise of the answer that settles once the
   * call has ended. A second idempotency middleware on the handler watches through the accessors
   * of the first, so both see every assignment. `resumed`: the call is a durable execution's,
   * resuming on its record, whose handler ran in an earlier invocation (its steps may have run).
   */
  const watchEarlyAnswers = (request: AnyRequest, state: RequestState, call: Call, enterHandler: () => void, resumed: boolean): void => {
    const storeOf = (name: 'event' | 'context' | 'response' | 'error') => {
      const prior = Object.getOwnPropertyDescriptor(request, name);
      if (prior?.get !== undefined && prior.set !== undefined) return { get: prior.get.bind(request), set: prior.set.bind(request) };
      let value: unknown = request[name];
      return { get: () => value, set: (next: unknown) => void (value = next) };
    };
    // The response as last assigned, and the one before it.
    let current: unknown = request.response;
    let previous: unknown;
    // Responses set since the handler's own: any at all means the handler ran.
    let sets = 0;
    // An early answer not yet taken as one: middy's catch sets the response to `undefined` with
    // the early answer of the hook that threw still in place, and then records the error.
    let early: { reset: boolean } | undefined;
    // Middy invokes the handler with `request.event, request.context`, read in that order, from the
    // request's own async context (see `isWithin`), and then assigns its response. A middleware
    // that reads them too (to log them, say) reads something more before it sets a response
    // (http-cors reads the event, then answers a preflight with the response it prepared), and the
    // handler cannot reach the request: only a response assigned right after that pair (middy 6
    // reads the context again, for its early timeout) is the handler's.
    let afterEvent = false;
    let invoked = false;
    let ran = false;
    const read = (name: 'event' | 'context' | 'response'): void => {
      if (name === 'context') invoked ||= afterEvent;
      else invoked = false;
      afterEvent = name === 'event';
    };
    for (const name of ['event', 'context'] as const) {
      const store = storeOf(name);
      Object.defineProperty(request, name, {
        configurable: true,
        enumerable: true,
        get() {
          // Through the first middleware's accessor first: the innermost call is the handler's.
          // The context too: a later `before` that reads only the context and then writes writes in
          // this call, not in the call of a function that invoked the handler.
          const value = store.get();
          enterHandler();
          read(name);
          return value;
        },
        set: store.set,
      });
    }
    const response = storeOf('response');
    Object.defineProperty(request, 'response', {
      configurable: true,
      enumerable: true,
      get() {
        read('response');
        return response.get();
      },
      set(value: unknown) {
        // Set while the `onError` hooks run: an answer to an error ends the call as that error would.
        // Only middy's own `request.response = request.earlyResponse` is that answer: middy 6 keeps
        // the early answer of a hook that threw through the `onError` hooks, whose own responses
        // (http-error-handler's, which it then writes its status on) are responses, not promises. An
        // inner idempotency middleware passes that answer on as its own promise of it.
        const answering = value === request.earlyResponse || earlyAnswers.has(value as object);
        const failure = 'earlyResponse' in request && request.error !== undefined && answering ? answerFailure(request) : undefined;
        if (failure !== undefined) {
          // An answer of `undefined` answers nothing: middy rethrows the error then, and so does the
          // promise middy returns in its place, once the call has ended.
          const answer = failure.then((outcome) => {
            if (outcome.replayed) return answerOf(outcome, request);
            if (value === undefined) throw request.error;
            return value;
          });
          answer.catch(() => undefined); // a hook that assigns again leaves this one unreturned: no unhandled rejection
          earlyAnswers.add(answer);
          current = answer;
          response.set(current);
          return;
        }
        if (!('earlyResponse' in request) || state.call !== call) {
          assign(value);
          return;
        }
        // An answer once no error follows it in the same turn; `current` stays the response before it.
        const pending = { reset: false };
        early = pending;
        const answer = Promise.resolve().then(() => {
          early = undefined;
          if (pending.reset) return undefined; // middy's reset, replaced by `undefined` below
          take(request);
          // A durable execution's replay answered early (a token that expired while it was suspended)
          // ends the execution with that answer after its steps ran: released, its key would run them again.
          if (!ran && !resumed) return engine.end(call, { kind: 'return', value, final: false }).then(() => value);
          return endingOfAnswer(request, value)
            .then((end) => endAnswered(request, call, end))
            .then((outcome) => answerOf(outcome, request));
        });
        response.set(answer);
      },
    });
    /** A response assigned by the handler or a middleware, not as an early answer. */
    const assign = (value: unknown): void => {
      if (invoked) {
        ran = true;
        if (typeof (value as PromiseLike<unknown> | null)?.then === 'function') {
          // A thenable that is not a Promise (a query builder, a Bluebird promise), which middy does
          // not await: its work is the handler's until it settles, as a wrapped function's is.
          // Adopted once, here, in the call (its `then` is not called again); never an unhandled rejection.
          const settled = Promise.resolve(value as PromiseLike<unknown>).finally(() => call.functionReturned());
          settled.catch(() => undefined);
          value = settled;
        } else {
          // The handler's own response: its writes are done; work it left running adds none now.
          call.functionReturned();
        }
      }
      invoked = afterEvent = false;
      if (ran) sets++;
      previous = current;
      current = value;
      response.set(value);
    };
    // On an error, middy resets the response and then records the error: a response set before that
    // reset was the handler's (or what later middlewares made of it), so the handler returned.
    const error = storeOf('error');
    Object.defineProperty(request, 'error', {
      configurable: true,
      enumerable: true,
      get: error.get,
      set(value: unknown) {
        if (error.get() === undefined && state.call === call) {
          if (early !== undefined) {
            // The early answer just set was middy resetting the response for this error.
            early.reset = true;
            early = undefined;
            assign(undefined);
          }
          state.caught = { error: value, ran };
          if (sets >= 2) state.returned = { value: previous };
          // Before the outer middlewares' setters: their ends wait for this one's.
          void endFailure(request); // its rejection is caught where it starts
          error.set(value);
          return;
        }
        error.set(value);
      },
    });
  };

  /**
   * A misuse that would refuse every request as a duplicate in progress, turned into a TypeError
   * that names it: this middleware `.use()`d twice, or another one on the request, or on a middy
   * handler this one is nested in, holding the same record. Read only once a claim met a holder on
   * the request or a call around it, so the key selector runs again only then.
   */
  const misuseOf = (request: AnyRequest, error: unknown, use: object): TypeError | undefined => {
    const held = heldKeys.get(request);
    // Neither another middleware's record on this request nor a call around this one: a duplicate of another attempt.
    if (!isIdempotencyError(error, 'IN_PROGRESS') || (held === undefined && enclosingCall() === undefined)) return undefined;
    let key: string | undefined;
    try {
      key = engine.keyOf(request.event as TEvent, request.context as TContext);
    } catch {
      return undefined;
    }
    if (key === undefined) return undefined;
    if (held?.has(key) === true) {
      return new TypeError(
        `${engine.where}(): another idempotency middleware on this handler holds the same record (same name and key): give each its own \`name\`, or use one.`,
      );
    }
    const holder = holderAround(key);
    const starter = holder === undefined ? undefined : starters.get(holder);
    if (starter === undefined || starter === use) return undefined;
    return new TypeError(
      `${engine.where}(): an idempotency middleware of a middy handler this one is nested in holds the same record (same name and key): give each its own \`name\`, or use one.`,
    );
  };

  const before = async (request: AnyRequest, use: object): Promise<void> => {
    // Synchronously, before any await: the call that invoked the handler, which this one is nested in.
    const outer = outerSlot();
    if (requests.has(request)) {
      const error = new TypeError(`${engine.where}(): this middleware is used twice on one handler (\`.use()\` it once).`);
      unkept.set(request, error);
      throw error;
    }
    const state: RequestState = { number: ++requestsStarted };
    requests.set(request, state);
    let start: Start;
    try {
      start = await engine.start(request.event as TEvent, request.context as TContext);
    } catch (thrown) {
      const error = misuseOf(request, thrown, use) ?? thrown;
      if (isResumable(error)) state.invocationEnd = { error };
      const rejected = translation.reject?.(error, request.event);
      if (rejected === undefined) {
        unkept.set(request, error);
        throw error;
      }
      await answerEarly(request, rejected.response, warn);
      return;
    }
    if (start.kind === 'replay') {
      // The execution's own outcome, met again after its answer was lost, is answered as the
      // handler's response was, not as a duplicate's (no `Idempotent-Replayed`).
      await answerEarly(request, replay(start.value, request, start.own === true), warn);
      return;
    }
    // A durable execution resuming on its record was accepted when it claimed it: refused now, it
    // would release that record after its steps ran, and its client, told to ask for a new key, pay twice.
    const refusal = start.resumed === true ? undefined : translation.refuse?.(request.event);
    if (refusal !== undefined) {
      await engine.end(start.call, { kind: 'return', value: undefined, final: false });
      await answerEarly(request, refusal(), warn);
      return;
    }
    state.call = start.call;
    starters.set(start.call, use);
    if (start.call.mode !== 'unkeyed') {
      const held = heldKeys.get(request);
      if (held === undefined) heldKeys.set(request, new Set([start.call.key]));
      else held.add(start.call.key);
    }
    watchEarlyAnswers(request, state, start.call, () => enterFunction(start.call, outer), start.resumed === true);
  };

  const after = async (request: AnyRequest): Promise<void> => {
    const state = requests.get(request);
    const call = take(request);
    if (state === undefined || call === undefined) return;
    // A call without a key (a safe HTTP method, `onMissingKey: 'skip'`) keeps nothing: its response
    // goes out as the handler made it, a stream unread, no `isFinalResponse` asked.
    if (call.mode === 'unkeyed') {
      await engine.end(call, { kind: 'return', value: undefined, final: false });
      return;
    }
    // A durable invocation that has ended (suspended) never settles its handler: a response that
    // comes after is middy's `timeoutEarlyResponse` answer, its timer fired late, and the SDK has
    // answered for the invocation already. No outcome of the execution, which holds its record
    // still: stored, its replay would answer it; released (a 408 httpIdempotency takes as not
    // final), another execution with the key would run the steps again. Read only from the SDK's
    // own state: a response is no early timeout's by the other signs `timedOutLate` reads.
    if (durableInvocationEnded(request.context) === true) {
      await engine.end(call, { kind: 'abandon' });
      return;
    }
    const outcome = await endAnswered(request, call, await endingOfAnswer(request, request.response));
    if (outcome.kind === 'error' && isResumable(outcome.error)) state.invocationEnd = { error: outcome.error };
    request.response = answerOf(outcome, request);
  };

  const onError = async (request: AnyRequest): Promise<void> => {
    const failure = answerFailure(request);
    const outcome = failure === undefined ? undefined : await failure;
    // An error that ends a durable execution's invocation (a claim or commit the store failed) must
    // reach the durable SDK: an answer to it (@middy/http-error-handler's 500) would end the
    // execution with its record still held. Thrown here, it skips the onError hooks after this one.
    const state = requests.get(request);
    const error = state?.invocationEnd?.error ?? state?.caught?.error ?? request.error;
    if (isResumable(error) && durableExecutionOf(request.context) !== undefined) throw error;
    if (outcome === undefined) return;
    if (outcome.replayed) {
      if (outcome.kind === 'value') request.response = replay(outcome.value, request);
      else request.error = outcome.error as Error;
      return;
    }
    // An atomic call whose run failed met another payload's record under its key (PAYLOAD_MISMATCH), or
    // the record of a call whose outcome was not stored (RESPONSE_NOT_STORED, ERROR_NOT_STORED): answered
    // as after a run that returned (httpIdempotency's 422, 409), and as makeIdempotent answers it.
    if (outcome.kind === 'error' && outcome.error !== error && isIdempotencyError(outcome.error) && MET_AFTER_FAILURE.has(outcome.error.code)) {
      const rejected = translation.reject?.(outcome.error, request.event);
      if (rejected === undefined) request.error = outcome.error as Error;
      else request.response = rejected.response;
    }
  };

  return {
    /**
     * Read once by each `.use()` (middy reads the hooks as it adds them): each handler the middleware
     * is used on gets its own `before`, so that one used on a router and on its route is told from a
     * handler invoking itself.
     */
    get before(): (request: AnyRequest) => Promise<void> {
      const use = {};
      // Named as middy's `beforeMiddleware` plugin hook reports it.
      return { before: (request: AnyRequest) => before(request, use) }.before;
    },
    after,
    onError,
  };
}
