/**
 * The benchmark's own machinery (bench/): what it times is the call it means to time, and its
 * command line starts nothing but the run. The figures themselves are checked against the docs in
 * test/docs/performance.test.ts.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { measureCall } from '../../bench/stats.js';

const ROOT = join(import.meta.dirname, '../..');

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { JEST_WORKER_ID: _, NODE_OPTIONS: __, ...env } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/run.ts'), ...args], { cwd: ROOT, env, timeout: 30_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr }),
    );
  });
}

describe('bench', () => {
  test('a measured call that rejects stops the run instead of being timed as a fast call', async () => {
    await expect(measureCall(() => Promise.reject(new Error('store unreachable')))).rejects.toThrow(/measured call failed.*store unreachable/);
    const timed = await measureCall(() => Promise.resolve('value'));
    expect(timed.wall).toBeGreaterThanOrEqual(0);
  });

  test('npm run bench -- --help prints the usage and starts no run; an unknown argument is refused', async () => {
    const help = await runBench(['--help']);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/overwrites bench\/results\.json/);
    const unknown = await runBench(['--quick']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown argument: --quick/);
    expect(unknown.stdout).toBe('');
  }, 60_000);
});
