/**
 * The first idempotent call of a process, invoked from its top level and still running, must not
 * be taken for the call around the invocations that come after it: on Node 20 and 22, an async
 * context first tracked inside that call would otherwise be the top level's too. Each case runs in
 * a child process of its own (the test runner has tracked async contexts long before).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../support/first-call-scope.ts', import.meta.url));

function run(entry: 'middleware' | 'wrapper'): Promise<unknown> {
  const env = { ...process.env, ENTRY: entry, NODE_OPTIONS: '' };
  return new Promise((resolve, reject) =>
    execFile(process.execPath, ['--import', 'tsx', script], { env }, (error, stdout, stderr) =>
      error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout.trim())),
    ),
  );
}

test.each(['middleware', 'wrapper'] as const)(
  'a duplicate of the first call of a process (%s), arriving while it runs, shares its outcome instead of being refused as nested in it',
  async (entry) => {
    expect(await run(entry)).toEqual({ first: 'paid', duplicate: 'paid', other: 'run 2 of b', runs: 2 });
  },
);
