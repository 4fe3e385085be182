/**
 * The global setup's scratch directory (`TMPDIR` of the run, where the CDK apps synthesize) when the
 * run is stopped by a signal, as `npm test` stops Jest at a type error, or Ctrl-C: the global
 * teardown does not run then. Runs the real global setup (DynamoDB Local, redis-server) in a child.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('a run stopped by SIGTERM after its global setup leaves no scratch directory behind, and ends by the signal', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'test-run-scratch-'));
  try {
    const setup = join(import.meta.dirname, '../support/global-setup.ts');
    const script = `const { default: setup } = await import(${JSON.stringify(setup)}); await setup(); console.log(process.env.TMPDIR); process.kill(process.pid, 'SIGTERM'); setTimeout(() => {}, 30000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, TMPDIR: parent },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (...ended) => resolve(ended)));
    expect(stdout.trim().startsWith(join(parent, 'lambda-idempotency-test-'))).toBe(true);
    expect([code, signal]).toEqual([null, 'SIGTERM']);
    expect(readdirSync(parent).filter((name) => name.startsWith('lambda-idempotency-test-'))).toEqual([]);
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
}, 60_000);
