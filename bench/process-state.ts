/**
 * Puts the process in the state each subject leaves a Lambda container in. Our middleware enters
 * an AsyncLocalStorage on every call (so that `transaction()` finds its call) and never disables it:
 * once it has run, the storage stays enabled, and on Node 20 that keeps promise hooks on for every
 * promise in the process. A bare handler and Powertools (in its default single-concurrency mode)
 * leave them off. Switching the state before each subject charges the hooks to ours, and only to
 * ours, whichever subject ran just before.
 */
import { Call, inCall, leaveCallScopes } from './library.js';

export type ProcessState = 'ours' | 'other';

export function enterProcessState(state: ProcessState): void {
  if (state === 'ours')
    void inCall(new Call('bench', 'bench', undefined, 'unkeyed', 0, false), () => undefined); // the storage is enabled, as after any earlier call
  else leaveCallScopes(); // Node turns the hooks off again once no storage is enabled
}
