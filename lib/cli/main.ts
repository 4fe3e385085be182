#!/usr/bin/env node
/**
 * `lambda-idempotency`: inspect and forget idempotency records, and list stuck ones, from the
 * command line. `lambda-idempotency --help` lists the commands and options.
 */
import { createRequire } from 'node:module';
import { runCli } from './run.js';

/** The version of the package this command is in (found as the package finds itself), if it is in one. */
function packageVersion(): string | undefined {
  try {
    const { version } = createRequire(import.meta.url)('lambda-idempotency/package.json') as { version?: unknown };
    return typeof version === 'string' ? version : undefined;
  } catch {
    return undefined;
  }
}

process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  // A reader that stops early (`stuck | head`) closes the pipe: stop there quietly, as other command-line tools do.
  if (error.code === 'EPIPE') process.exit();
  // Output that cannot be written (a full disk) is a failure to report in a line, not a crash.
  process.stderr.write(`lambda-idempotency: the output could not be written: ${error.message}.\n`);
  process.exit(1);
});

// A message that cannot be shown (a reader of stderr gone, `2>&1 | head`) is dropped: the command goes
// on, and its exit code still says how it ended.
process.stderr.on('error', () => {});

process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  now: Date.now,
  version: packageVersion(),
});
