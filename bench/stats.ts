/** Sample statistics and timing helpers for the benchmarks. */

export interface Summary {
  readonly n: number;
  readonly median: number;
  readonly p99: number;
  readonly mean: number;
  readonly min: number;
  readonly max: number;
}

/** Nearest-rank percentile of an ascending array. */
function rank(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((sum, x) => sum + x, 0) / Math.max(1, sorted.length);
  return { n: sorted.length, median: rank(sorted, 0.5), p99: rank(sorted, 0.99), mean, min: sorted[0] ?? Number.NaN, max: sorted.at(-1) ?? Number.NaN };
}

/** Microseconds elapsed since `start` (a `process.hrtime.bigint()` reading). */
export function microsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1000;
}

/**
 * Wall-clock and CPU time (user + system, all threads of the process) of one awaited call, µs. A
 * call that rejects stops the run: its time is that of a failure, never a sample of the call it was
 * meant to measure. Sections whose calls fail by design count them instead (contention, single-flight).
 */
export async function measureCall(call: () => Promise<unknown> | unknown): Promise<{ wall: number; cpu: number }> {
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  let failure: { readonly error: unknown } | undefined;
  try {
    await call();
  } catch (error) {
    failure = { error };
  }
  const wall = microsSince(start);
  const cpu = process.cpuUsage(cpuStart);
  if (failure !== undefined) throw new Error(`bench: a measured call failed, so its time is not a sample: ${String(failure.error)}`, { cause: failure.error });
  return { wall, cpu: cpu.user + cpu.system };
}

/** The order in which `names` run in round `round`: rotated, so no variant always goes first. */
export function rotation<T>(items: readonly T[], round: number): T[] {
  const shift = round % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

export const ratio = (ours: number, theirs: number): number => (theirs === 0 ? Number.NaN : ours / theirs);
