/**
 * For the local servers of the tests, the demo and the benchmarks: a child process that never
 * outlives the process that started it.
 * Development tooling.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

/** Ctrl-C, `kill PID`, a closed terminal: the signals that end a process unless it handles them. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Runs `cleanUp` when this process ends, whatever ends it (exit, Ctrl-C, a kill, a closed
 * terminal): on a signal, then ends as the signal would have, unless the program handles the signal
 * itself (the demo's --serve does). Returns the function that takes `cleanUp` off again.
 */
function onProcessEnd(cleanUp: () => void): () => void {
  const onSignal = (signal: NodeJS.Signals): void => {
    cleanUp();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  process.once('exit', cleanUp);
  for (const signal of STOP_SIGNALS) process.once(signal, onSignal);
  return () => {
    process.removeListener('exit', cleanUp);
    for (const signal of STOP_SIGNALS) process.removeListener(signal, onSignal);
  };
}

/**
 * Ties `child` to this process: whatever ends it (exit, Ctrl-C, a kill), the child is killed too,
 * and `release` (which removes what the child leaves on disk) runs. Returns the child's stop
 * function, which kills it, waits for its exit, then runs `release`.
 */
export function tieToProcess(child: ChildProcess, release: () => void = () => {}): () => Promise<void> {
  const untie = onProcessEnd(() => {
    child.kill('SIGKILL');
    release();
  });
  child.once('exit', untie);
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    release();
  };
}

/**
 * Removes `dir` when this process ends, by a signal too (Ctrl-C, `npm test` stopping Jest at a type
 * error), when no teardown runs.
 */
export function removeWithProcess(dir: string): void {
  onProcessEnd(() => rmSync(dir, { recursive: true, force: true }));
}
