/**
 * The types of `makeIdempotent`, checked by `tsc --noEmit` (part of `npm test`): the wrapper keeps
 * the wrapped function's parameters, its `this` and its result (unwrapped from a promise or any
 * other thenable). A line that stops compiling, or an `@ts-expect-error` that stops erring, fails
 * the type-check.
 */
import type { Handler } from 'aws-lambda';
import { makeIdempotent } from '../../lib/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { lambdaContext } from '../support/lambda.js';

const store = new InMemoryStore();

const charge = makeIdempotent(async (order: { id: string }, note: string) => ({ charged: order.id, note }), { store, name: 'charge', key: (o) => o.id });
const charged: Promise<{ charged: string; note: string }> = charge({ id: 'o-1' }, 'first');
// @ts-expect-error The parameters are the wrapped function's.
void charge({ id: 1 }, 'first');

const length = makeIdempotent((text: string) => text.length, { store, name: 'length' });
const counted: Promise<number> = length('abc');

const thenable = makeIdempotent((id: string): PromiseLike<number> => Promise.resolve(id.length), { store, name: 'thenable' });
const settled: Promise<number> = thenable('abc');

// A function that answers some calls at once and others with a promise of another type: the wrapper's result is either, awaited.
declare function countRemote(id: string): Promise<number>;
const sometimesAsync = makeIdempotent((id: string) => (id === 'none' ? 'none' : countRemote(id)), { store, name: 'sometimes-async' });
const eitherResult: Promise<string | number> = sometimesAsync('none');

// Type arguments given explicitly, as before the form above existed: the result type is the awaited result.
const explicit = makeIdempotent<[{ id: string }], { ok: boolean }>(async (order) => ({ ok: order.id !== '' }), { store, name: 'explicit' });
const explicitResult: Promise<{ ok: boolean }> = explicit({ id: 'e-1' });

// A handler typed by @types/aws-lambda (`Handler<E, R>` returns `void | Promise<R>`, a callback's `void` included) wraps as it is.
const typedHandler: Handler<{ readonly id: string }, string> = async (event) => event.id;
const handlerOnce = makeIdempotent(typedHandler, { store, name: 'typed-handler', key: (event) => event.id });
const handled = handlerOnce({ id: 'h-1' }, lambdaContext('typed-handler'), () => undefined);

// A method's `this` is passed on at run time, and kept by the type.
class Ledger {
  readonly base = 100;
  readonly balance = makeIdempotent(
    function (this: Ledger, id: string) {
      return this.base + id.length;
    },
    { store, name: 'balance' },
  );
}
const ledger = new Ledger();
const balance: Promise<number> = ledger.balance('abc');
const { balance: detached } = ledger;
// @ts-expect-error Called without its `this`, a method that needs one does not compile.
void detached('abc').catch(() => undefined);

test('the declarations above are idempotent functions (their types are what this file checks)', async () => {
  expect(await Promise.all([charged, counted, settled, balance, eitherResult, handled, explicitResult])).toEqual([
    { charged: 'o-1', note: 'first' },
    3,
    3,
    103,
    'none',
    'h-1',
    { ok: true },
  ]);
});

// A first parameter with a default, or optional, is kept as it is (with `onMissingKey: 'skip'`, a call without it runs unkeyed).
interface Filter {
  readonly status?: string;
}
const listed = makeIdempotent(async (filter: Filter = {}) => [filter.status], { store, name: 'listed', onMissingKey: 'skip', key: (filter) => filter?.status });
const searched = makeIdempotent(async (filter?: Filter) => [filter?.status], { store, name: 'searched', onMissingKey: 'skip' });
const optionalResults: Promise<Array<string | undefined>>[] = [listed({ status: 'open' }), listed(), searched()];

// A function of no parameters still takes the argument its key is selected from.
const constant = makeIdempotent(async () => 'same', { store, name: 'constant' });
const constantResult: Promise<string> = constant('k');
// @ts-expect-error Without an argument there is no key.
void constant().catch(() => undefined);

// A function of no parameters whose key selector names its input (a scheduled job keyed by its day): the wrapper takes that input.
const report = makeIdempotent(async () => 'sent', { store, name: 'report', key: (input: { readonly day: string }) => input.day });
const reported: Promise<string> = report({ day: '2026-01-01' });
// @ts-expect-error An input its key selector is not written for does not compile.
void report({ date: '2026-01-01' }).catch(() => undefined);
const audited = makeIdempotent(async () => 'audited', { store, name: 'audited', fingerprint: (input: { readonly day: string }) => input.day });
const auditedResult: Promise<string> = audited({ day: '2026-01-01' });

// A generic function stays generic.
const echo = makeIdempotent(async <T>(value: T) => value, { store, name: 'echo' });
const echoed: Promise<string> = echo('abc');

test('optional first parameters, no parameters and generic functions keep their types', async () => {
  expect(await Promise.all([...optionalResults, constantResult, echoed, reported, auditedResult])).toEqual([
    ['open'],
    [undefined],
    [undefined],
    'same',
    'abc',
    'sent',
    'audited',
  ]);
});

// A helper generic in the parameters it wraps (a first one required) gets them back as they are: its own callers' types hold.
function withIdempotency<A extends [unknown, ...unknown[]], R>(fn: (...args: A) => Promise<R>, name: string): (...args: A) => Promise<R> {
  return makeIdempotent(fn, { store, name });
}
function calledThrough<A extends [{ readonly id: string }, ...unknown[]], R>(fn: (...args: A) => Promise<R>, name: string): (...args: A) => Promise<R> {
  const idempotent = makeIdempotent(fn, { store, name, key: (input) => input.id });
  return (...args: A) => idempotent(...args);
}
const wrapped = withIdempotency(async (id: string, count: number) => id.repeat(count), 'wrapped');
const wrappedById = calledThrough(async (order: { readonly id: string }) => order.id, 'wrapped-by-id');
// @ts-expect-error The helper's callers get the wrapped function's parameters (a `count` is required).
const tooFew: (id: string) => Promise<string> = wrapped;

test('a helper generic in the parameters it wraps keeps them', async () => {
  expect(tooFew).toBe(wrapped);
  expect(await Promise.all([wrapped('ab', 2), wrappedById({ id: 'o-1' })])).toEqual(['abab', 'o-1']);
});
