/**
 * The Lambda Node.js runtime answers an invocation `null` once the process's event loop is empty,
 * even while an async handler is pending. A call that waits (for another process's record, or for
 * an in-process leader) must hold the loop open until it has its answer. Each case runs in a child
 * process that does nothing else, against DynamoDB Local (whose idle sockets hold nothing open).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { endpoint, useFreshTable } from '../support/dynamodb.js';

const { tableName } = useFreshTable({ prefix: 'event-loop' });
const script = fileURLToPath(new URL('../support/lambda-event-loop.ts', import.meta.url));

/** The outcome the child reports. */
function waitIn(wait: 'process' | 'flight'): Promise<unknown> {
  const env = { ...process.env, DYNAMODB_ENDPOINT: endpoint(), TABLE_NAME: tableName, WAIT: wait, NODE_OPTIONS: '' };
  return new Promise((resolve, reject) =>
    execFile(process.execPath, ['--import', 'tsx', script], { env }, (error, stdout, stderr) =>
      error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve((JSON.parse(stdout.trim()) as { outcome: unknown }).outcome),
    ),
  );
}

test('a duplicate waiting for another process (waitForInProgressMillis) gets its answer, IN_PROGRESS at the bound', async () => {
  expect(await waitIn('process')).toBe('IN_PROGRESS');
});

test('an in-process duplicate waiting for a leader that never ends takes over at its lease and runs', async () => {
  expect(await waitIn('flight')).toBe('ran');
});
