/**
 * Puts the process in the state each subject leaves a Lambda container in. With `transactions:
 * true` (or `atomic`) our middleware enters an AsyncLocalStorage on every request, and on Node 20 an
 * enabled AsyncLocalStorage keeps promise hooks on for every promise in the process. The benchmark
 * measures the default (no transactions), which, like Powertools in its default single-concurrency
 * mode and a bare handler, leaves them off; section 2 reports the hooks' cost separately. Turning
 * every storage off before each subject keeps one subject's hooks from being charged to another.
 */
import { leaveCallScopes } from '../lib/transaction.js';

export type ProcessState = 'ours' | 'other';

export function enterProcessState(_state: ProcessState): void {
  leaveCallScopes(); // Node turns the hooks off again once no storage is enabled
}
