/**
 * Lambda's nodejs24.x runtime (and nodejs22.x on Managed Instances) refuses to load a handler that
 * declares three or more parameters (`length`), unless it streams its response: it takes it for a
 * callback-style handler and fails every invocation with `Runtime.CallbackHandlerDeprecated`. Every
 * handler the library makes, used as the docs show, is exported as the Lambda handler itself.
 */
import middy from '@middy/core';
import { httpIdempotency, idempotency, idempotentBatch, makeIdempotent } from '../../lib/index.js';
import { idempotency as leanIdempotency } from '../../lib/middy/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';

/** The runtime's rule: a handler it refuses unless it streams. */
const refusedByNodejs24 = (handler: { readonly length: number }): boolean => handler.length >= 3;

const store = new InMemoryStore();

test.each([
  ['idempotentBatch', () => idempotentBatch(async (message: unknown) => message, { store, name: 'batch' })],
  ['makeIdempotent', () => makeIdempotent(async (event: { id: string }, _context: unknown) => event.id, { store, name: 'wrapped' })],
  ['middy with idempotency', () => middy(async () => 'ok').use(idempotency({ store, name: 'middy' }))],
  ['middy with the lean idempotency', () => middy(async () => 'ok').use(leanIdempotency({ store, name: 'lean' }))],
  ['middy with httpIdempotency', () => middy(async () => ({ statusCode: 200 })).use(httpIdempotency({ store, name: 'http' }))],
])('%s: the handler declares at most two parameters, so that nodejs24.x loads it', (_, make) => {
  const handler = make();
  expect(handler.length).toBeLessThanOrEqual(2);
  expect(refusedByNodejs24(handler)).toBe(false);
});
