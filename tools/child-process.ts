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
 * Ties `child` to this process: whatever ends it (exit, Ctrl-C, a kill), the child is killed too,
 * and `release` (which removes what the child leaves on disk) runs. Returns the child's stop
 * function, which kills it, waits for its exit, then runs `release`.
 */
export function tieToProcess(child: ChildProcess, release: () => void = () => {}): () => Promise<void> {
  const killChild = (): void => {
    child.kill('SIGKILL');
    release();
  };
  // On Ctrl-C, a kill or a closed terminal: stop the child, then end as the signal would have,
  // unless the program handles the signal itself (the demo's --serve does).
  const onSignal = (signal: NodeJS.Signals): void => {
    killChild();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  process.once('exit', killChild);
  for (const signal of STOP_SIGNALS) process.once(signal, onSignal);
  child.once('exit', () => {
    process.removeListener('exit', killChild);
    for (const signal of STOP_SIGNALS) process.removeListener(signal, onSignal);
  });
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
 * error), when no teardown runs. As `tieToProcess`'s, the last handler of a signal ends the process by it.
 */
export function removeWithProcess(dir: string): void {
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  const onSignal = (signal: NodeJS.Signals): void => {
    remove();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  process.once('exit', remove);
  for (const signal of STOP_SIGNALS) process.once(signal, onSignal);
}
