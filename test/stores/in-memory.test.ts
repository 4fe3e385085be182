/**
 * InMemoryStore as users meet it: in unit tests of idempotent functions, with an injected clock,
 * and behaving as the real stores do (the contract proves the rest).
 */
import { makeIdempotent } from '../../lib/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { flush, gate } from '../support/gate.js';
import { rejection } from '../support/rejections.js';

test('a duplicate replays, one within the lease is IN_PROGRESS, one after it takes over, one after the retention runs again', async () => {
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const store = new InMemoryStore();
  const held = gate();
  let runs = 0;
  const charge = makeIdempotent(
    async (order: { id: string; hold?: boolean }) => {
      runs++;
      if (order.hold) await held.promise;
      return { charged: order.id, run: runs };
    },
    // Each call stands for another execution environment: no in-process single-flight.
    { store, name: 'charge', key: (order) => order.id, leaseSeconds: 10, expiresAfterSeconds: 3600, now: () => clock, singleFlight: false },
  );
  expect(await charge({ id: 'a' })).toEqual({ charged: 'a', run: 1 });
  expect(await charge({ id: 'a' })).toEqual({ charged: 'a', run: 1 });

  const stuck = charge({ id: 'b', hold: true });
  while (runs < 2) await flush(); // the first attempt holds the record and runs
  expect((await rejection(charge({ id: 'b' }))).code).toBe('IN_PROGRESS');
  clock += 11_000;
  expect(await charge({ id: 'b' })).toEqual({ charged: 'b', run: 3 });
  held.open();
  expect((await rejection(stuck)).code).toBe('SUPERSEDED');

  clock += 3600_000;
  expect(await charge({ id: 'a' })).toEqual({ charged: 'a', run: 4 });
});

test('clear() forgets every record', async () => {
  const store = new InMemoryStore();
  let runs = 0;
  const once = makeIdempotent(async (_id: string) => ++runs, { store, name: 'once', key: (id) => id });
  await once('x');
  store.clear();
  expect(await once('x')).toBe(2);
});
