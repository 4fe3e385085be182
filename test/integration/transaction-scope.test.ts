/**
 * Which call a `transaction()` write joins when middy handlers with `idempotency()` run nested in
 * an idempotent function without being awaited at once, and when work a handler left running
 * writes after it returned: every write commits with the record of the call whose code made it,
 * or is refused, never committed with another call's record.
 */

import { AsyncResource } from 'node:async_hooks';
import { EventEmitter } from 'node:events';
import { promisify } from 'node:util';
import middy from '@middy/core';
import { idempotency, makeIdempotent, transaction } from '../../lib/index.js';
import { readItem, recordId, useBusinessTable, useFreshTable } from '../support/dynamodb.js';
import { flush, gate } from '../support/gate.js';
import { lambdaContext } from '../support/lambda.js';
import { rejection } from '../support/rejections.js';

const { client, tableName, store } = useFreshTable({ prefix: 'txscope' });
const bizTable = useBusinessTable(client);

const bizItem = async (id: string) => (await readItem(client, bizTable, id))?.by?.S;
const recordOf = (name: string, key: unknown) => readItem(client, tableName, recordId(name, key));
const put = (id: string) => transaction().put({ TableName: bizTable, Item: { id, by: transaction().key } });

/**
 * A middy handler with `idempotency()` (with `twice`, an inner one too, under another name: its
 * writes are the inner one's) that opens `claimed` once it runs, then waits for `go` before its write.
 */
function nestedHandler(name: string, twice = false) {
  const claimed = gate();
  const go = gate();
  const key = (event: { id: string }) => event.id;
  const handler = middy(async (event: { id: string }) => {
    claimed.open();
    await go.promise;
    put(`${name}-${event.id}`);
    return transaction().key;
  }).use(idempotency({ store, key }));
  if (twice) handler.use(idempotency({ store, key, name: `${name}-inner` }));
  return { handler, claimed, go, context: lambdaContext(name) };
}

describe('a nested middy call that the function did not await yet', () => {
  test("the function's writes made while it runs commit with the function's record, the nested call's with its own", async () => {
    const nested = nestedHandler('scope-nested');
    let outerKey = '';
    const outer = makeIdempotent(
      async (id: string) => {
        outerKey = transaction().key;
        const running = nested.handler({ id }, nested.context);
        await nested.claimed.promise;
        put(`outer-during-${id}`);
        nested.go.open();
        await running;
        put(`outer-after-${id}`);
        throw new Error('the outer call fails: its writes are discarded');
      },
      { store, name: 'scope-outer' },
    );
    await expect(outer('n-1')).rejects.toThrow('the outer call fails');
    expect(await bizItem('outer-during-n-1')).toBeUndefined();
    expect(await bizItem('outer-after-n-1')).toBeUndefined();
    expect(await recordOf('scope-outer', 'n-1')).toBeUndefined();
    const innerKey = (await recordOf('scope-nested', 'n-1'))?.id?.S;
    expect(innerKey).toBeDefined();
    expect(await bizItem('scope-nested-n-1')).toBe(innerKey);
    expect(outerKey).not.toBe(innerKey);
  });

  test("two under Promise.all: writes between and after them are the function's", async () => {
    const first = nestedHandler('scope-first');
    const second = nestedHandler('scope-second');
    const outer = makeIdempotent(
      async (id: string) => {
        const both = Promise.all([first.handler({ id }, first.context), second.handler({ id }, second.context)]);
        await Promise.all([first.claimed.promise, second.claimed.promise]);
        put(`outer-between-${id}`);
        first.go.open();
        second.go.open();
        await both;
        put(`outer-after-${id}`);
        return 'done';
      },
      { store, name: 'scope-all' },
    );
    expect(await outer('p-1')).toBe('done');
    const outerKey = (await recordOf('scope-all', 'p-1'))?.id?.S;
    expect(await bizItem('outer-between-p-1')).toBe(outerKey);
    expect(await bizItem('outer-after-p-1')).toBe(outerKey);
    expect(await bizItem('scope-first-p-1')).toBe((await recordOf('scope-first', 'p-1'))?.id?.S);
    expect(await bizItem('scope-second-p-1')).toBe((await recordOf('scope-second', 'p-1'))?.id?.S);
  });

  test("with two idempotency() middlewares on the nested handler, its writes are the inner one's and the function's its own", async () => {
    const nested = nestedHandler('scope-twice', true);
    const outer = makeIdempotent(
      async (id: string) => {
        const running = nested.handler({ id }, nested.context);
        await nested.claimed.promise;
        put(`outer-twice-${id}`);
        nested.go.open();
        return await running;
      },
      { store, name: 'scope-twice-outer' },
    );
    expect(await outer('d-1')).toBe((await recordOf('scope-twice-inner', 'd-1'))?.id?.S);
    expect(await bizItem('outer-twice-d-1')).toBe((await recordOf('scope-twice-outer', 'd-1'))?.id?.S);
    expect(await bizItem('scope-twice-d-1')).toBe((await recordOf('scope-twice-inner', 'd-1'))?.id?.S);
    expect((await recordOf('scope-twice', 'd-1'))?.status?.S).toBe('COMPLETED');
  });

  test("a `before` used after idempotency() that reads the context and writes, in a nested request, writes in the request's call", async () => {
    const inner = middy(async () => 'inner')
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({
        before: (request) => {
          put(`before-${request.context.awsRequestId}`);
        },
      });
    const context = lambdaContext('scope-before');
    const outer = makeIdempotent(async (id: string) => inner({ id }, context), { store, name: 'scope-before-outer' });
    expect(await outer('b-1')).toBe('inner');
    expect(await bizItem(`before-${context.awsRequestId}`)).toBe((await recordOf('scope-before', 'b-1'))?.id?.S);
  });

  test('the outer function a middy handler too', async () => {
    const nested = nestedHandler('scope-nested-m');
    const outer = middy(async (event: { id: string }) => {
      const running = nested.handler(event, nested.context);
      await nested.claimed.promise;
      put(`outer-m-during-${event.id}`);
      nested.go.open();
      await running;
      return 'done';
    }).use(idempotency({ store, key: (event: { id: string }) => event.id }));
    expect(await outer({ id: 'm-1' }, lambdaContext('scope-outer-m'))).toBe('done');
    const outerKey = (await recordOf('scope-outer-m', 'm-1'))?.id?.S;
    expect(await bizItem('outer-m-during-m-1')).toBe(outerKey);
  });
});

describe('work a function left running', () => {
  test("a call it starts after the calls around it (two nested, and the outer one) have all ended is nested in none: it does not inherit their invocation's deadline", async () => {
    const clock = { now: 1_700_000_000_000 };
    const now = () => clock.now;
    const go = gate();
    let later: Promise<unknown> | undefined;
    const hold = gate();
    const running = gate();
    const afterwards = makeIdempotent(
      async (id: string) => {
        running.open();
        await hold.promise;
        return `ran-${id}`;
      },
      { store, name: 'scope-left-after', now },
    );
    // Another process with the same function: it must meet the running call's lease, not one already past.
    const elsewhere = makeIdempotent(async (id: string) => `ran-elsewhere-${id}`, { store, name: 'scope-left-after', now });
    const inner = makeIdempotent(
      async (id: string) => {
        later = go.promise.then(() => afterwards(id));
        return 'inner';
      },
      { store, name: 'scope-left-inner', now },
    );
    const middle = makeIdempotent(async (id: string) => inner(id), { store, name: 'scope-left-middle', now });
    const outer = makeIdempotent(async (id: string, _context: unknown) => middle(id), { store, name: 'scope-left-outer', now });
    expect(await outer('l-1', lambdaContext('scope-left', 5_000))).toBe('inner');
    // The invocation that ran them is long over: its deadline bounds nothing that starts now.
    clock.now += 600_000;
    go.open();
    await running.promise;
    expect((await rejection(elsewhere('l-1'))).code).toBe('IN_PROGRESS');
    hold.open();
    expect(await later).toBe('ran-l-1');
    expect((await recordOf('scope-left-after', 'l-1'))?.status?.S).toBe('COMPLETED');
  });

  test("a write it adds after makeIdempotent's function returned, before the call ends, is refused", async () => {
    let lateWrite: Promise<unknown> | undefined;
    const fn = makeIdempotent(
      async (id: string) => {
        put(`own-${id}`);
        // Runs after the function's promise settled, before the wrapper ends the call.
        lateWrite = Promise.resolve()
          .then(() => undefined)
          .then(() => put(`late-${id}`));
        return 'done';
      },
      { store, name: 'scope-late-fn' },
    );
    expect(await fn('f-1')).toBe('done');
    await expect(lateWrite).rejects.toThrow(/function has already returned/);
    expect(await bizItem('own-f-1')).toBeDefined();
    expect(await bizItem('late-f-1')).toBeUndefined();
  });

  test('a write it adds after the middy handler returned, while an inner `after` runs, is refused', async () => {
    const late = gate();
    let lateWrite: Promise<unknown> | undefined;
    const handler = middy(async (event: { id: string }) => {
      put(`own-${event.id}`);
      lateWrite = late.promise.then(() => put(`late-${event.id}`));
      return 'done';
    })
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({
        after: async () => {
          late.open();
          await flush();
        },
      });
    expect(await handler({ id: 't-1' }, lambdaContext('scope-late'))).toBe('done');
    await expect(lateWrite).rejects.toThrow(/function has already returned/);
    expect(await bizItem('own-t-1')).toBeDefined();
    expect(await bizItem('late-t-1')).toBeUndefined();
  });

  test('a write it adds after the middy handler threw, while an inner `onError` runs, is refused, not dropped without a word', async () => {
    const late = gate();
    let lateWrite: Promise<unknown> | undefined;
    const handler = middy(async (event: { id: string }) => {
      lateWrite = late.promise.then(() => put(`late-error-${event.id}`));
      throw new Error('handler failed');
    })
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({
        onError: async () => {
          late.open();
          await flush();
        },
      });
    await expect(handler({ id: 'e-1' }, lambdaContext('scope-late-error'))).rejects.toThrow('handler failed');
    // The call ends as soon as middy records the error.
    await expect(lateWrite).rejects.toThrow(/already ended/);
    expect(await bizItem('late-error-e-1')).toBeUndefined();
    expect(await recordOf('scope-late-error', 'e-1')).toBeUndefined();
  });
});

describe("middy's early timeout while the handler is between its writes", () => {
  test('the default TimeoutError commits none of them and holds the key; a custom timeoutEarlyResponse that returns a value commits those added before it fired with that value, and refuses the rest', async () => {
    const run = async (id: string, plugin: { timeoutEarlyInMillis: number; timeoutEarlyResponse?: () => unknown }) => {
      const go = gate();
      let second: Promise<unknown> | undefined;
      const handler = middy(async (event: { id: string }) => {
        put(`first-${event.id}`);
        await go.promise;
        second = Promise.resolve().then(() => put(`second-${event.id}`));
        return 'done';
      }, plugin).use(idempotency({ store, key: (event: { id: string }) => event.id }));
      const answer = await handler({ id }, lambdaContext('scope-timeout', 2_000)).catch((error: Error) => error.name);
      go.open();
      await flush();
      await expect(second).rejects.toThrow(/already ended|already returned/);
      return { answer, first: await bizItem(`first-${id}`), second: await bizItem(`second-${id}`), record: (await recordOf('scope-timeout', id))?.status?.S };
    };
    expect(await run('default', { timeoutEarlyInMillis: 1_900 })).toEqual({
      answer: 'TimeoutError',
      first: undefined,
      second: undefined,
      record: 'INPROGRESS',
    });
    expect(await run('custom', { timeoutEarlyInMillis: 1_900, timeoutEarlyResponse: () => ({ statusCode: 408 }) })).toEqual({
      answer: { statusCode: 408 },
      first: expect.any(String),
      second: undefined,
      record: 'COMPLETED',
    });
  });
});

describe('a middleware used after idempotency()', () => {
  test('its `after` cannot add a write to the handler’s call: a TypeError, nothing written, the record completed with the handler’s response', async () => {
    let refused: unknown;
    const handler = middy(async (event: { id: string }) => {
      put(`own-${event.id}`);
      return 'done';
    })
      .use(idempotency({ store, key: (event: { id: string }) => event.id }))
      .use({
        after: (request) => {
          try {
            put(`after-${(request.event as { id: string }).id}`);
          } catch (error) {
            refused = error;
          }
        },
      });
    expect(await handler({ id: 'a-1' }, lambdaContext('scope-after'))).toBe('done');
    expect(refused).toBeInstanceOf(TypeError);
    expect(await bizItem('after-a-1')).toBeUndefined();
    expect(await bizItem('own-a-1')).toBe((await recordOf('scope-after', 'a-1'))?.id?.S);
    expect((await recordOf('scope-after', 'a-1'))?.status?.S).toBe('COMPLETED');
  });
});

describe('work a call schedules keeps the call that scheduled it', () => {
  /** Waits for `work` run by `schedule`, as a call's code awaits a callback it handed on. */
  const scheduled = (schedule: (work: () => void) => void) => (work: () => void) => new Promise<void>((resolve) => schedule(() => (work(), resolve())));
  const tick = promisify((done: (error: null) => void) => void setImmediate(() => done(null)));
  test.each([
    ['a timer', scheduled((work) => setTimeout(work, 1))],
    ['nextTick', scheduled((work) => process.nextTick(work))],
    ['a microtask', scheduled((work) => queueMicrotask(work))],
    ['a promise callback', (work: () => void) => Promise.resolve().then(work)],
    ['util.promisify', (work: () => void) => tick().then(work)],
  ] as const)('%s: two calls running at once each write in their own call', async (kind, later) => {
    const name = `scope-scheduled-${kind.replace(/\W+/g, '-')}`;
    const started = { a: gate(), b: gate() };
    const writeLater = makeIdempotent(
      async (id: 'a' | 'b') => {
        started[id].open();
        // Both calls run before either schedules its write.
        await started[id === 'a' ? 'b' : 'a'].promise;
        await later(() => put(`${name}-${id}`));
        return id;
      },
      { store, name },
    );
    await Promise.all([writeLater('a'), writeLater('b')]);
    const keyOf = async (id: string) => (await recordOf(name, id))?.id?.S;
    expect(await bizItem(`${name}-a`)).toBe(await keyOf('a'));
    expect(await bizItem(`${name}-b`)).toBe(await keyOf('b'));
  });
});

describe('a listener on an emitter that another call emits', () => {
  /**
   * Two concurrent calls share a dispatcher (one connection's responses, say): each registers a
   * listener for its own answer, and the other call's code emits it. A listener runs where it is
   * emitted, as Node runs every listener: with `AsyncResource.bind` it runs in the call that
   * registered it, on Node 20 and 24 alike.
   */
  async function sharedDispatcher(name: string, bind: boolean) {
    const bus = new EventEmitter();
    const registered = { a: gate(), b: gate() };
    const fn = makeIdempotent(
      async (id: 'a' | 'b') => {
        const answered = new Promise<void>((resolve) => {
          const listener = () => {
            put(`${name}-${id}`);
            resolve();
          };
          bus.once(`answer-${id}`, bind ? AsyncResource.bind(listener) : listener);
        });
        registered[id].open();
        // Each call emits the other's answer: a dispatcher serves whichever call reads next.
        await registered[id === 'a' ? 'b' : 'a'].promise;
        bus.emit(`answer-${id === 'a' ? 'b' : 'a'}`);
        await answered;
        return id;
      },
      { store, name },
    );
    await Promise.all([fn('a'), fn('b')]);
    const keyOf = async (id: string) => (await recordOf(name, id))?.id?.S;
    return { a: await bizItem(`${name}-a`), b: await bizItem(`${name}-b`), keyA: await keyOf('a'), keyB: await keyOf('b') };
  }

  test("unbound, it writes in the call that emits: each call's write commits with the other's record", async () => {
    const { a, b, keyA, keyB } = await sharedDispatcher('scope-emit-unbound', false);
    expect(a).toBe(keyB);
    expect(b).toBe(keyA);
  });

  test('bound with AsyncResource.bind where it is registered, it writes in its own call', async () => {
    const { a, b, keyA, keyB } = await sharedDispatcher('scope-emit-bound', true);
    expect(a).toBe(keyA);
    expect(b).toBe(keyB);
  });
});

describe('a middy handler that returns a thenable that is not a Promise', () => {
  /** Like a query builder: nothing happens until it is awaited, then `work` runs. */
  const lazy = <T>(work: () => T): PromiseLike<T> => ({
    // biome-ignore lint/suspicious/noThenProperty: a lazy thenable is the result under test
    then: (resolve, reject) => Promise.resolve().then(work).then(resolve, reject),
  });
  /** Like a Bluebird promise: not `instanceof Promise` (so middy does not await it), its work already under way. */
  const eager = <T>(work: () => T): PromiseLike<T> => {
    const running = Promise.resolve().then(flush).then(work);
    // biome-ignore lint/suspicious/noThenProperty: a promise of another library is the result under test
    return { then: (resolve, reject) => running.then(resolve, reject) };
  };

  test.each([
    ['a query builder', 'lazy', lazy],
    ['a Bluebird-like promise', 'eager', eager],
  ] as const)("%s: its work is the handler's, its writes commit with the record, as makeIdempotent's do", async (_, kind, make) => {
    let runs = 0;
    const handler = middy(
      (event: { id: string }) =>
        make(() => {
          runs++;
          put(`thenable-${kind}-${event.id}`);
          return 'done';
        }) as Promise<string>, // middy's types know only Promise; it takes any value
    ).use(idempotency({ store, key: (event: { id: string }) => event.id }));
    const context = lambdaContext(`scope-thenable-${kind}`);
    expect(await handler({ id: 't-1' }, context)).toBe('done');
    expect(await bizItem(`thenable-${kind}-t-1`)).toBe((await recordOf(`scope-thenable-${kind}`, 't-1'))?.id?.S);
    expect((await recordOf(`scope-thenable-${kind}`, 't-1'))?.status?.S).toBe('COMPLETED');
    // A duplicate replays: the work ran once.
    expect(await handler({ id: 't-1' }, context)).toBe('done');
    expect(runs).toBe(1);
  });

  test('one that rejects is the handler failing: the caller gets its error, nothing is written, the key is released', async () => {
    let runs = 0;
    const handler = middy(
      (event: { id: string }) =>
        lazy(() => {
          runs++;
          put(`thenable-failed-${event.id}`);
          throw new Error('the query failed');
        }) as Promise<never>,
    ).use(idempotency({ store, key: (event: { id: string }) => event.id }));
    const context = lambdaContext('scope-thenable-failed');
    await expect(handler({ id: 'r-1' }, context)).rejects.toThrow('the query failed');
    expect(await bizItem('thenable-failed-r-1')).toBeUndefined();
    expect(await recordOf('scope-thenable-failed', 'r-1')).toBeUndefined();
    await expect(handler({ id: 'r-1' }, context)).rejects.toThrow('the query failed');
    expect(runs).toBe(2);
  });
});
