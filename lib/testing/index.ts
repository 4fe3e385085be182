/**
 * Helpers for unit tests of idempotent handlers (`lambda-idempotency/testing`): Lambda contexts
 * with a deadline, and a clock that moves only when told to.
 */
export { lambdaContext } from './lambda-context.js';
export type { LambdaContextOptions } from './lambda-context.js';
export { manualClock } from './manual-clock.js';
export type { ManualClock } from './manual-clock.js';
