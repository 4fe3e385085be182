import { type IdempotencyStore, makeIdempotent } from '../../lib/index.js';
import { Turnstile } from './gate.js';

/**
 * Calls whose function waits at `turnstile` until the test lets it finish; `instance()` is another
 * instance's copy of the function (its own engine: no in-process following), on the same records.
 */
export function heldRetries(store: IdempotencyStore, name: string) {
  const turnstile = new Turnstile();
  let runs = 0;
  const handler = async (orderId: string) => {
    runs++;
    await turnstile.enter();
    return `p-${orderId}`;
  };
  const instance = () => makeIdempotent(handler, { store, name, key: (orderId: string) => orderId });
  return { instance, turnstile, runs: () => runs };
}

/**
 * Writes the COMPLETED record of `key` as an attempt that ran three minutes before `now` left it,
 * its retention ended a minute ago: a call may claim the key again.
 */
export async function completedPastRetention(store: IdempotencyStore, key: string, now: number): Promise<void> {
  const expiresAt = Math.floor(now / 1000) - 60;
  await store.claim({ key, owner: 'earlier', leaseUntil: now - 170_000, expiresAt, now: now - 180_000 });
  const completed = await store.complete({ key, owner: 'earlier', expiresAt, response: '"p-earlier"', now: now - 175_000 });
  if (!completed.completed) throw new Error(`completedPastRetention: ${key} was not completed`);
}
