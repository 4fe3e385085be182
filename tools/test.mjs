/**
 * `npm test` after the lint: the type-check and Jest side by side. Most of Jest's time is spent
 * waiting on DynamoDB Local, redis-server and child processes, so `tsc` runs at the lowest priority
 * and takes the CPU those waits leave. A type error is printed as soon as `tsc` finds it and stops
 * the run (Jest, with its workers; the servers it started stop with it); arguments go to Jest
 * (`npm test -- --testPathPatterns http`).
 * Development tooling.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';

const require = createRequire(import.meta.url);

/** Starts `bin` (a package's script) on this Node; resolves to its exit code, or the signal that ended it. */
function run(bin, args, options) {
  const child = spawn(process.execPath, [require.resolve(bin), ...args], options);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  return { child, exited };
}

/** A signal's exit status, as a shell reports it. */
const statusOf = (ended) => (typeof ended === 'number' ? ended : 128 + (os.constants.signals[ended] ?? 0));

const typecheck = run('typescript/bin/tsc', ['--noEmit'], { stdio: ['ignore', 'pipe', 'pipe'] });
try {
  os.setPriority(typecheck.child.pid, 19);
} catch {
  // A system that refuses to lower the priority still type-checks, only sharing the CPU evenly.
}
let report = '';
for (const output of [typecheck.child.stdout, typecheck.child.stderr]) {
  output.on('data', (chunk) => {
    report += chunk;
  });
}

const args = process.argv.slice(2);
// Jest's workers outlive its main process when that alone is killed, each running on the file it
// holds: in a process group of its own, Jest is stopped whole. Not in watch mode, which reads the
// terminal, as only its foreground group may.
const ownGroup = process.platform !== 'win32' && !args.some((arg) => /^--watch(All)?(=|$)/.test(arg));
const jest = run('jest/bin/jest', args, {
  stdio: 'inherit',
  detached: ownGroup,
  env: {
    ...process.env,
    NODE_OPTIONS: [process.env.NODE_OPTIONS, '--experimental-vm-modules --no-warnings=ExperimentalWarning'].filter(Boolean).join(' '),
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  },
});

/** Sends `signal` to Jest, with its workers when it has a group of its own (gone already: nothing to stop). */
function stopTests(signal) {
  try {
    if (ownGroup) process.kill(-jest.child.pid, signal);
    else jest.child.kill(signal);
  } catch {}
}

// Ctrl-C reaches this process and tsc from the terminal (and Jest, in watch mode); it, or a kill of
// this process alone, is passed on.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    typecheck.child.kill(signal);
    stopTests(signal);
  });
}

const typeErrors = await typecheck.exited;
if (typeof typeErrors === 'number' && typeErrors !== 0) {
  process.stderr.write(`\ntsc --noEmit found type errors; stopping the tests.\n\n${report}`);
  stopTests('SIGTERM');
  await jest.exited;
  process.exit(typeErrors);
}
const tests = await jest.exited;
// Ctrl-C ends the tests too, by the same signal: that is the run's status. A signal that ended the
// type-check alone (the OOM killer, a kill of tsc) left the types unchecked: the run must not pass.
if (typeof typeErrors === 'string' && typeof tests === 'number') {
  process.stderr.write(`\ntsc --noEmit was ended by ${typeErrors} before it finished: the types were not checked.\n${report === '' ? '' : `\n${report}`}`);
  process.exit(tests === 0 ? statusOf(typeErrors) : tests);
}
process.exit(statusOf(tests));
