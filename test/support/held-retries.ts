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
