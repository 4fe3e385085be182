import { IdempotencyEngine, type IdempotencyOptions, type LambdaContextLike, runCall } from './engine.js';
import { observeAny } from './observability.js';

/**
 * Whether the second argument is a Lambda context, or a durable execution's context (which carries
 * the Lambda context as `lambdaContext`): one has a method of theirs. Data
 * parsed from a request has no function, so a request naming a durable execution
 * (`executionContext`) cannot make its call the execution's, which would hold the record of a
 * concurrent duplicate as its own and run with it.
 */
const isContext = (value: unknown): value is LambdaContextLike => {
  const context = value as (LambdaContextLike & { lambdaContext?: LambdaContextLike; step?: unknown }) | null | undefined;
  try {
    return (
      typeof context?.getRemainingTimeInMillis === 'function' ||
      typeof context?.lambdaContext?.getRemainingTimeInMillis === 'function' ||
      typeof context?.step === 'function'
    );
  } catch {
    return false; // an argument that cannot be read (a revoked proxy, a throwing getter) is no context
  }
};

/**
 * The parameters of a wrapped function: the function's own (a first parameter with a default, or
 * optional, stays so), or, for a function of none, the one its key is selected from (typed as its
 * `key` or `fingerprint` selector's parameter is annotated, else `unknown`). Not
 * distributive (`[TArgs]`): so the parameter list of a caller's own generic (`...args: A`, a first
 * parameter required) still passes as it is, being either branch.
 */
type KeyedArgs<TArgs extends unknown[], TInput> = [TArgs] extends [[]] ? [input: TInput, ...rest: unknown[]] : TArgs;

/**
 * What `key` and `fingerprint` are given: the first argument, or for a function of none, the input
 * they are written for. Distributive, so that for a caller's own generic (`...args: A`) it is the
 * first parameter of `A`'s constraint.
 */
type KeyedInput<TArgs extends unknown[], TInput> = TArgs extends [] ? TInput : TArgs[0];

/** The wrapper's result: the result type given explicitly, else what the function returns, awaited. */
type WrappedResult<TResult, TReturn> = [TResult] extends [never] ? Awaited<TReturn> : TResult;

/**
 * Wraps any async function so that calls with the same key run it once and replay its result
 * (its parameters, its `this` and its result type are kept). The key is selected from the first
 * argument; when the second argument is a Lambda context, the attempt's lease ends at the Lambda
 * deadline; given none inside another idempotent call, at that call's deadline; otherwise after
 * `leaseSeconds`. Replays return the stored JSON form of the result (a `Date` comes back as its
 * ISO string), and so does a call given a durable context, whose execution replays it.
 *
 * `name` is required: a function's own name is not stable across builds (a minifier renames it)
 * and not unique across functions sharing a table, and records must outlive both.
 *
 * @example
 * ```ts
 * const chargeOnce = makeIdempotent(charge, { store, name: 'charge', key: (input) => input.paymentId });
 * await chargeOnce({ paymentId: 'p-1', amount: 100 });
 * ```
 */
export function makeIdempotent<
  TArgs extends [unknown?, ...unknown[]],
  // Given explicitly, the result (awaited); inferred, none: the result is then what `fn` returns, awaited,
  // so a function returning a value for some calls and a promise of another type for others (or a
  // handler typed `Handler<E, R>`, whose result is `void | Promise<R>`) wraps as it is.
  TResult = never,
  TThis = unknown,
  TReturn extends [TResult] extends [never] ? unknown : PromiseLike<TResult> | TResult = PromiseLike<TResult> | TResult,
  // For a function of no parameters only: the input its selectors are written for (inferred from their annotation).
  TInput = unknown,
>(
  fn: (this: TThis, ...args: TArgs) => TReturn,
  options: IdempotencyOptions<KeyedInput<TArgs, TInput>, LambdaContextLike> & { readonly name: string },
): (this: TThis, ...args: KeyedArgs<TArgs, TInput>) => Promise<WrappedResult<TResult, TReturn>> {
  if (typeof fn !== 'function') throw new TypeError('makeIdempotent: the first argument must be the function to wrap.');
  if (options === null || typeof options !== 'object') throw new TypeError('makeIdempotent: options must be an object.');
  if (options.name === undefined) {
    throw new TypeError(
      "makeIdempotent: `name` is required: it keeps the records of this function apart from others, across deploys (a function's own name changes when minified).",
    );
  }
  const engine = new IdempotencyEngine<KeyedInput<TArgs, TInput>, LambdaContextLike>('makeIdempotent', options, observeAny);
  return function idempotent(this: TThis, ...args: KeyedArgs<TArgs, TInput>): Promise<WrappedResult<TResult, TReturn>> {
    const context = isContext(args[1]) ? args[1] : undefined;
    // runCall awaits what `fn` returns (a thenable too): its promise settles to the awaited value.
    return runCall(engine, args[0] as KeyedInput<TArgs, TInput>, context, () => fn.apply(this, args as TArgs)) as Promise<WrappedResult<TResult, TReturn>>;
  };
}
