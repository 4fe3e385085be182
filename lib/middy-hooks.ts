import type { Request } from '@middy/core';
import type { Context } from 'aws-lambda';
import type { Call } from './call.js';
import { durableExecutionOf, type Ending, type IdempotencyEngine, type Outcome, type Start } from './engine.js';
import { readStreams, reviveStreams } from './streamed-response.js';
import { enterCall, enterFunction } from './transaction.js';

/** Middy's own early timeout, not a TimeoutError the handler threw (the SDK's, AbortSignal.timeout's). */
const isMiddyTimeout = (error: unknown): boolean =>
  (error as { name?: unknown } | null)?.name === 'TimeoutError' && (error as { cause?: { package?: unknown } }).cause?.package === '@middy/core';

/** How an entry point's world differs from the plain middleware's. @internal */
export interface Translation {
  /** The answer sent to the request's `event` for another attempt's stored outcome. */
  readonly replay: (value: unknown, event: unknown) => unknown;
  /** How the handler's response ends the call; `returned` is the response before any stream in it was read. @default stored */
  readonly ending?: (response: unknown, returned: unknown) => Ending;
  /** The answer sent for a rejection of the request's `event` instead of throwing it, if any. */
  readonly reject?: (error: unknown, event: unknown) => { readonly response: unknown } | undefined;
}

type AnyRequest = Request<unknown, unknown, Error, Context>;

/**
 * The hooks of a middy idempotency middleware: `before` starts the call, `after` and `onError`
 * end it. The request's call lives in a WeakMap rather than `request.internal`, which middy
 * shares between requests when a `plugin.internal` object is configured. @internal
 */
export function idempotencyHooks<TEvent, TContext>(engine: IdempotencyEngine<TEvent, TContext>, translation: Translation) {
  const calls = new WeakMap<object, Call>();
  /** The handler's response as it stood when a later middleware threw, for requests whose handler returned. */
  const returned = new WeakMap<object, { readonly value: unknown }>();
  /**
   * The error middy caught, which an `onError` before this one may replace (http-error-handler
   * turns every unexposed error, middy's early timeout included, into a plain 500 error): the
   * call's outcome is what the handler threw, for `isFinalError` and the early timeout alike.
   */
  const caught = new WeakMap<object, { readonly error: unknown }>();
  const take = (request: object): Call | undefined => {
    const call = calls.get(request);
    calls.delete(request);
    return call;
  };
  /** Another attempt's stored outcome as this request's answer; stored stream bytes become a stream again. */
  const replay = (value: unknown, request: AnyRequest): unknown => reviveStreams(translation.replay(value, request.event));
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

  /** How a failed request ends its call. Middy's early timeout: the handler may still be running, so nothing is written; the lease ends at the deadline. */
  const errorEnding = async (request: AnyRequest): Promise<Ending> => {
    // The handler returned and a later middleware threw: the function ran, so its response is the
    // call's outcome (a retry must not run it again); this caller still gets the error or its answer.
    const ran = returned.get(request);
    if (ran !== undefined) return endingOfResponse(ran.value);
    // The call ends as the error middy caught, whatever an inner `onError` made of it since.
    const { error } = caught.get(request) ?? request;
    // A durable execution fails for good on it, with no invocation left to end its call: it ends as its error.
    const abandoned = isMiddyTimeout(error) && durableExecutionOf(request.context) === undefined;
    return abandoned ? { kind: 'abandon' } : { kind: 'throw', error };
  };

  /**
   * Another middleware may answer early (a `before` or `after` that sets `request.earlyResponse`
   * or returns a value): middy then skips the handler and the hooks after it, including this
   * one's, but it assigns the answer to `request.response` and returns what it reads there. An
   * accessor sees that assignment: the call ends (released when the handler never ran, completed
   * with the answer when it did), and middy returns a promise of the answer that settles once the
   * call has ended.
   */
  const watchEarlyAnswers = (request: AnyRequest, call: Call, enterHandler: () => void): void => {
    let response: unknown;
    let previous: unknown;
    // Responses set since middy invoked the handler: any at all means the handler ran.
    let sets = 0;
    // Middy invokes the handler with `request.event, request.context`, read in that order, from the
    // request's own async context: the handler's function starts there (see `isWithin`). Responses
    // set before it (a `before` that prepares one, as http-cors does for a preflight) are not the handler's.
    let invoked = false;
    let lastRead: 'event' | 'context' | undefined;
    for (const name of ['event', 'context'] as const) {
      let value: unknown = request[name];
      Object.defineProperty(request, name, {
        configurable: true,
        enumerable: true,
        get() {
          if (name === 'event') enterHandler();
          else if (lastRead === 'event') invoked = true;
          lastRead = name;
          return value;
        },
        set(next: unknown) {
          value = next;
        },
      });
    }
    Object.defineProperty(request, 'response', {
      configurable: true,
      enumerable: true,
      get() {
        return response;
      },
      set(value: unknown) {
        if (!('earlyResponse' in request) || calls.get(request) !== call) {
          previous = response;
          response = value;
          if (invoked) sets++;
          return;
        }
        take(request);
        // Set while the `onError` hooks run: an answer to an error ends the call as that error would.
        if (request.error !== undefined) {
          response = errorEnding(request)
            .then((end) => engine.end(call, end))
            .then((outcome) => (outcome.replayed ? answerOf(outcome, request) : value));
          return;
        }
        const handled = sets > 0;
        const ending = handled ? endingOfResponse(value) : Promise.resolve<Ending>({ kind: 'return', value, final: false });
        response = ending.then((end) => engine.end(call, end)).then((outcome) => (handled ? answerOf(outcome, request) : value));
      },
    });
    // On an error, middy resets the response and then records the error: a response set before that
    // reset was the handler's (or what later middlewares made of it), so the handler returned.
    let error: unknown = request.error;
    Object.defineProperty(request, 'error', {
      configurable: true,
      enumerable: true,
      get() {
        return error;
      },
      set(value: unknown) {
        if (error === undefined && calls.get(request) === call) {
          caught.set(request, { error: value });
          if (sets >= 2) returned.set(request, { value: previous });
        }
        error = value;
      },
    });
  };

  const before = async (request: AnyRequest): Promise<void> => {
    // Synchronously, before any await: the handler runs in this async context.
    const slot = enterCall();
    let start: Start;
    try {
      start = await engine.start(request.event as TEvent, request.context as TContext);
    } catch (error) {
      const rejected = translation.reject?.(error, request.event);
      if (rejected === undefined) throw error;
      request.earlyResponse = rejected.response;
      return;
    }
    if (start.kind === 'replay') {
      request.earlyResponse = replay(start.value, request);
      return;
    }
    slot.call = start.call;
    calls.set(request, start.call);
    watchEarlyAnswers(request, start.call, () => enterFunction(slot));
  };

  const after = async (request: AnyRequest): Promise<void> => {
    const call = take(request);
    if (call === undefined) return;
    request.response = answerOf(await engine.end(call, await endingOfResponse(request.response)), request);
  };

  const onError = async (request: AnyRequest): Promise<void> => {
    const call = take(request);
    if (call === undefined) return;
    const outcome = await engine.end(call, await errorEnding(request));
    if (!outcome.replayed) return;
    if (outcome.kind === 'value') request.response = replay(outcome.value, request);
    else request.error = outcome.error as Error;
  };

  return { before, after, onError };
}
