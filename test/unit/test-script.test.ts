/**
 * `tools/test.mjs`, the script `npm test` runs after the lint: `tsc --noEmit` beside Jest. Run on a
 * copy next to stand-in `tsc` and `jest` scripts, which do what each test says, so that no real
 * type-check or test run is started.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'test-script-'));
  mkdirSync(join(root, 'tools'));
  copyFileSync(join(import.meta.dirname, '../../tools/test.mjs'), join(root, 'tools/test.mjs'));
  const bin = (pkg: string, file: string, source: string) => {
    mkdirSync(join(root, 'node_modules', pkg, 'bin'), { recursive: true });
    writeFileSync(join(root, 'node_modules', pkg, 'bin', file), source);
  };
  // FAKE_TSC: `clean`, `errors` (prints one, exits 2) or `killed` (ended by SIGKILL, as the OOM killer ends it).
  bin(
    'typescript',
    'tsc',
    `const mode = process.env.FAKE_TSC;
if (mode === 'killed') process.kill(process.pid, 'SIGKILL');
if (mode === 'errors') { console.log('lib/a.ts(1,7): error TS2322: Type "string" is not assignable to type "number".'); process.exitCode = 2; }`,
  );
  // Prints its arguments and exits with FAKE_JEST_CODE.
  bin('jest', 'jest', `console.log('jest ' + JSON.stringify(process.argv.slice(2))); process.exitCode = Number(process.env.FAKE_JEST_CODE ?? 0);`);
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

function runScript(args: string[], env: { FAKE_TSC: string; FAKE_JEST_CODE?: string }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(root, 'tools/test.mjs'), ...args], { cwd: root, env: { ...process.env, ...env } });
  let [stdout, stderr] = ['', ''];
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

test("Jest gets the script's arguments as given, and its exit code is the run's once the types check", async () => {
  const run = await runScript(['--testPathPatterns', 'http faults', '--selectProjects', 'middy 7'], { FAKE_TSC: 'clean', FAKE_JEST_CODE: '3' });
  expect(run.stdout).toBe('jest ["--testPathPatterns","http faults","--selectProjects","middy 7"]\n');
  expect(run.code).toBe(3);
});

test("a type error fails the run with tsc's exit code and its report, although the tests passed", async () => {
  const run = await runScript([], { FAKE_TSC: 'errors' });
  expect(run.code).toBe(2);
  expect(run.stderr).toContain('tsc --noEmit found type errors; stopping the tests.');
  expect(run.stderr).toContain('error TS2322');
});

test('a type-check ended by a signal that left the tests running (the OOM killer) fails the run: the types were never checked', async () => {
  const run = await runScript([], { FAKE_TSC: 'killed' });
  expect(run.stderr).toContain('tsc --noEmit was ended by SIGKILL before it finished: the types were not checked.');
  expect(run.code).toBe(128 + 9);
});
