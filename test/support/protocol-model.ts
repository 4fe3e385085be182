/**
 * What the model-based store tests share: a record as the protocol says it should be, and the
 * seeded choices that drive their steps. Test tooling, not part of the library.
 */

/** A key's record as the protocol says it should be after the steps so far. */
export interface ModelRecord {
  readonly owner: string;
  readonly status: 'INPROGRESS' | 'COMPLETED';
  readonly expiresAt: number;
  readonly leaseUntil?: number;
  readonly fingerprint?: string;
  readonly response?: string;
}

/** A linear congruential generator picking among choices: the same steps on every run. */
export function random(seed: number): <T>(choices: readonly T[]) => T {
  let state = seed;
  return (choices) => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return choices[Math.floor((state / 2147483648) * choices.length)]!;
  };
}
