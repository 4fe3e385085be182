/**
 * `tools/test.mjs`, the script `npm test` runs after the lint: `tsc --noEmit` beside Jest. Run on a
 * copy next to stand-in `tsc` and `jest` scripts, which do what each test says, so that no real
 * type-check or test run is started.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
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

function runScript(
  args: string[],
  env: { FAKE_TSC: string; FAKE_JEST_CODE?: string },
  cwd = root,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { JEST_WORKER_ID: _, ...outer } = process.env;
  const child = spawn(process.execPath, [join(cwd, 'tools/test.mjs'), ...args], { cwd, env: { ...outer, ...env } });
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

test("a type error stops the real Jest's workers too, not only its main process: none goes on running the test file it holds", async () => {
  const project = mkdtempSync(join(tmpdir(), 'test-script-jest-'));
  try {
    mkdirSync(join(project, 'tools'));
    copyFileSync(join(root, 'tools/test.mjs'), join(project, 'tools/test.mjs'));
    mkdirSync(join(project, 'node_modules/typescript/bin'), { recursive: true });
    symlinkSync(join(import.meta.dirname, '../../node_modules/jest'), join(project, 'node_modules/jest'));
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'stopped', private: true, jest: { testMatch: ['<rootDir>/*.test.js'] } }));
    // Two files, so that Jest runs them in workers; each says it has started (with its pid), then waits a minute.
    for (const name of ['a', 'b']) {
      writeFileSync(
        join(project, `${name}.test.js`),
        `test('waits', () => { require('node:fs').writeFileSync(__dirname + '/started-${name}', String(process.pid)); return new Promise((done) => setTimeout(done, 60000)); }, 70000);`,
      );
    }
    // The type-check fails once both workers hold a file.
    writeFileSync(
      join(project, 'node_modules/typescript/bin/tsc'),
      `const { existsSync } = require('node:fs');
const gate = setInterval(() => {
  if (['a', 'b'].every((name) => existsSync(${JSON.stringify(project)} + '/started-' + name))) { clearInterval(gate); console.log('error TS2322'); process.exitCode = 2; }
}, 20);
setTimeout(() => process.exit(9), 20000).unref();`,
    );
    const run = await runScript(['--maxWorkers=2'], { FAKE_TSC: 'gated' }, project);
    expect(run.code).toBe(2);
    const workers = ['a', 'b'].map((name) => Number(readFileSync(join(project, `started-${name}`), 'utf8')));
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    // A stopped worker is gone within moments; an orphan would wait out its minute.
    const until = Date.now() + 5000;
    while (workers.some(alive) && Date.now() < until) await new Promise((tick) => setTimeout(tick, 50));
    const left = workers.filter(alive);
    for (const pid of left) process.kill(pid, 'SIGKILL');
    expect(left).toEqual([]);
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
}, 30000);
