/**
 * The testing helpers drive the library as a user's test would: the lease of an attempt ends at
 * the deadline of the `lambdaContext` it ran with, on the `manualClock` the test moves.
 */
import middy from '@middy/core';
import { idempotency } from '../../lib/index.js';
import { lambdaContext, manualClock } from '../../lib/testing/index.js';
import { useFreshTable } from '../support/dynamodb.js';
import { Turnstile } from '../support/gate.js';
import { rejection } from '../support/rejections.js';

const { store } = useFreshTable();

test('a duplicate is refused while the first attempt has time left, and takes over once its deadline has passed on the clock', async () => {
  const clock = manualClock(Date.parse('2030-01-01T00:00:00Z'));
  const turnstile = new Turnstile<string>();
  const handler = middy(async (event: { id: string }) => `${event.id}: ${await turnstile.enter()}`).use(
    // Each invocation stands for another execution environment: no in-process single-flight.
    idempotency({ store, key: (event: { id: string }) => event.id, now: clock.now, singleFlight: false }),
  );
  const first = handler({ id: 'p-1' }, lambdaContext({ functionName: 'charge', remainingMillis: 10_000, now: clock.now }));
  const stuck = await turnstile.next();

  clock.advance(9_999);
  const refused = await rejection(handler({ id: 'p-1' }, lambdaContext({ functionName: 'charge', now: clock.now })));
  expect(refused.code).toBe('IN_PROGRESS');

  clock.advance(2);
  const retry = handler({ id: 'p-1' }, lambdaContext({ functionName: 'charge', now: clock.now }));
  (await turnstile.next()).open('retried');
  expect(await retry).toBe('p-1: retried');

  // The first attempt finishes late: its record was taken over, and its result is not the one stored.
  stuck.open('late');
  expect((await rejection(first)).code).toBe('SUPERSEDED');
  expect(await handler({ id: 'p-1' }, lambdaContext({ functionName: 'charge', now: clock.now }))).toBe('p-1: retried');
  expect(turnstile.count).toBe(2);
});
