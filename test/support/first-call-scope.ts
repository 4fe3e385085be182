/**
 * A process whose first idempotent call is still running when a duplicate of it arrives, invoked
 * the way a runtime loop or a script invokes handlers: from the process's top level, the first
 * invocation not awaited. Prints what each caller got, as JSON. Run by
 * `test/integration/first-call-scope.test.ts` in a child process of its own, where no async
 * context has been tracked before the library is loaded.
 */
import middy from '@middy/core';
import { idempotency, makeIdempotent } from '../../lib/index.js';
import { InMemoryStore, lambdaContext } from '../../lib/testing/index.js';

const store = new InMemoryStore();
let runs = 0;
let release!: (value: string) => void;
const held = new Promise<string>((resolve) => (release = resolve));
const charge = async (event: { id: string }) => {
  runs++;
  return runs === 1 ? held : `run ${runs} of ${event.id}`;
};
const outcome = (promise: Promise<unknown>) => promise.then(String, (error: { code?: string }) => `error ${error.code}`);

const handler =
  process.env.ENTRY === 'wrapper'
    ? makeIdempotent(charge, { store, name: 'charge', key: (event) => event.id })
    : middy(charge).use(idempotency({ store, key: (event: { id: string }) => event.id }));
const first = outcome(handler({ id: 'a' }, lambdaContext({ functionName: 'charge' })));
while (runs < 1) await new Promise((resolve) => setTimeout(resolve, 1));
const duplicate = outcome(handler({ id: 'a' }, lambdaContext({ functionName: 'charge' })));
const other = outcome(handler({ id: 'b' }, lambdaContext({ functionName: 'charge' })));
release('paid');
console.log(JSON.stringify({ first: await first, duplicate: await duplicate, other: await other, runs }));
