/**
 * `npm run demo -- --serve`, run as a user runs it: whichever way it is stopped (Ctrl-C, `kill` of
 * the PID it prints), its DynamoDB Local (a separate JVM, which a signal to the demo alone does not
 * reach) stops with it, and leaves nothing in the temporary directory.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

interface Demo {
  readonly npm: ChildProcess;
  /** The PID the demo prints as its own. */
  readonly pid: number;
  readonly apiPort: number;
  readonly dynamoPort: number;
  /** Whether npm (and so the demo under it) has exited. */
  readonly hasExited: () => boolean;
  /** The temporary directory of the demo and the processes it starts, JVM included; empty when it starts. */
  readonly tmp: string;
}

/** Every demo started and not yet cleaned up, whether a test took it or not. */
const started = new Set<Demo>();

/** PIDs of the JVMs running DynamoDB Local on `port` (Linux: read from /proc). */
function dynamoProcesses(port: number): number[] {
  if (!existsSync('/proc/self/cmdline')) return [];
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // it ended while we looked
    }
    const at = args.indexOf('-port');
    if (args.some((a) => a.includes('DynamoDBLocal')) && at >= 0 && args[at + 1] === String(port)) pids.push(Number(entry));
  }
  return pids;
}

const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

/** Waits, a bounded time, until `check` holds. */
async function eventually(check: () => Promise<boolean> | boolean, what: string, timeoutMillis = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`still not true after ${timeoutMillis} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Starts `npm run demo -- --serve --port P` in a process group of its own, as a terminal would.
 * `-XX:TieredStopAtLevel=1` only makes the JVM start sooner (its JIT compiles less): nothing here
 * depends on how fast DynamoDB Local runs.
 */
async function startDemo(): Promise<Demo> {
  const tmp = mkdtempSync(join(tmpdir(), 'demo-serve-'));
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name) && name !== 'NODE_OPTIONS'));
  env.TMPDIR = tmp;
  // Java ignores TMPDIR: the JVM is pointed at the same directory, so that what it leaves shows too.
  env.JAVA_TOOL_OPTIONS = `-Djava.io.tmpdir=${tmp} -XX:TieredStopAtLevel=1`;
  const npm = spawn('npm', ['run', 'demo', '--', '--serve', '--port', '0'], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let ended = false;
  npm.once('exit', () => (ended = true));
  const hasExited = (): boolean => ended;
  let output = '';
  npm.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  npm.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const demo = { npm, hasExited, tmp, pid: 0, apiPort: 0, dynamoPort: 0 };
  started.add(demo);
  const banner =
    /DynamoDB Local on http:\/\/127\.0\.0\.1:(\d+)[\s\S]*Payment API on http:\/\/127\.0\.0\.1:(\d+) \(process (\d+): Ctrl-C or `kill \3` stops it and DynamoDB Local\)/;
  await eventually(() => banner.test(output) || ended, 'the demo printed its banner', 90_000);
  const match = banner.exec(output);
  if (!match) throw new Error(`the demo ended before serving:\n${output}`);
  demo.dynamoPort = Number(match[1]);
  demo.apiPort = Number(match[2]);
  demo.pid = Number(match[3]);
  return demo;
}

/** Kills what is left of `demo` (its process group, then its JVM) and removes its directory. */
function cleanUp(demo: Demo): void {
  started.delete(demo);
  if (demo.npm.exitCode === null && demo.npm.signalCode === null) {
    try {
      process.kill(-demo.npm.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (demo.dynamoPort) for (const pid of dynamoProcesses(demo.dynamoPort)) process.kill(pid, 'SIGKILL');
  rmSync(demo.tmp, { recursive: true, force: true });
}

/**
 * Each test stops a demo of its own. Starting one (npm, tsx, a JVM) is nearly all of a test's time,
 * so the next test's demo starts while this one's starts and runs: two at a time, never more than
 * the tests take. Each has its own process group, ports and temporary directory; the checks below
 * find a demo's JVM by its port.
 */
let demosToStart = 0; // set below, once the tests are known

const startingAhead: Array<Promise<Demo>> = [];
let current: Promise<Demo> | undefined;

function startAhead(): void {
  if (demosToStart === 0) return;
  demosToStart--;
  const demo = startDemo();
  demo.catch(() => undefined); // a failed start fails the test that takes it
  startingAhead.push(demo);
}

/** This test's demo, started ahead if it could be. */
function takeDemo(): Promise<Demo> {
  if (startingAhead.length === 0) startAhead();
  current = startingAhead.shift() ?? startDemo(); // started here only for a test the count missed
  startAhead();
  return current;
}

afterEach(async () => {
  // A failed test must not leave its processes behind.
  const demo = await current?.catch(() => undefined);
  current = undefined;
  if (demo) cleanUp(demo);
});

afterAll(async () => {
  // Demos no test took, after a failure: their process groups, JVM included, end at once.
  for (const demo of [...started]) cleanUp(demo);
  await Promise.allSettled(startingAhead);
});

const STOPS: Array<[string, (demo: Demo) => unknown]> = [
  ['Ctrl-C (SIGINT to the whole process group)', (demo: Demo) => process.kill(-demo.npm.pid!, 'SIGINT')],
  ['`kill` of the PID it prints (SIGTERM)', (demo: Demo) => process.kill(demo.pid, 'SIGTERM')],
  // A closed terminal hangs up the whole group, JVM included; a hang-up sent to the demo alone is the harder case.
  ['`kill -HUP` of the PID it prints', (demo: Demo) => process.kill(demo.pid, 'SIGHUP')],
  // A loaded machine may not run the demo for a while after Ctrl-C: no process between npm and the
  // demo may kill it meanwhile (a relay that gives it a few milliseconds to take the signal), or
  // it ends before stopping what it started. Stopped, it takes the signal only when continued; the
  // pause is what such a relay's timeout would need to pass, nothing waits on it.
  [
    'Ctrl-C that the demo takes only a while later (a loaded machine)',
    async (demo: Demo) => {
      process.kill(demo.pid, 'SIGSTOP');
      process.kill(-demo.npm.pid!, 'SIGINT');
      await new Promise((resolve) => setTimeout(resolve, 500));
      try {
        process.kill(demo.pid, 'SIGCONT');
      } catch {
        // Killed meanwhile: what it left behind is what the checks below find.
      }
    },
  ],
];
// A demo for each way to stop it, and one for the stalled client.
demosToStart = STOPS.length + 1;

test.each(STOPS)(
  '%s stops the server and its DynamoDB Local, which leaves no file behind',
  async (_how, stop) => {
    const demo = await takeDemo();
    expect(await accepts(demo.apiPort)).toBe(true);
    expect(await accepts(demo.dynamoPort)).toBe(true);
    if (existsSync('/proc/self/cmdline')) expect(dynamoProcesses(demo.dynamoPort)).toHaveLength(1);

    await stop(demo);
    await eventually(demo.hasExited, 'npm run demo exited');
    await eventually(() => dynamoProcesses(demo.dynamoPort).length === 0, 'DynamoDB Local ended');
    await eventually(async () => !(await accepts(demo.dynamoPort)), 'the DynamoDB Local port is closed');
    expect(await accepts(demo.apiPort)).toBe(false);
    // DynamoDB Local unpacks its native SQLite library into the JVM's temporary directory at each
    // start, which the demo's tooling makes a directory of its own. (Node's and tsx's compile
    // caches are meant to stay.)
    expect(readdirSync(demo.tmp).filter((name) => /sqlite|dynamodb/i.test(name))).toEqual([]);
  },
  150_000,
);

test('a stop signal ends the demo while a client still holds a request open', async () => {
  const demo = await takeDemo();
  // A client that sent its headers and part of its body, then stalled: its request never ends by itself.
  const stalled = connect(demo.apiPort, '127.0.0.1');
  stalled.on('error', () => undefined);
  await new Promise<void>((resolve) => stalled.once('connect', () => resolve()));
  stalled.write('POST /payments HTTP/1.1\r\nHost: 127.0.0.1\r\nIdempotency-Key: stalled\r\nContent-Length: 100\r\n\r\n{"amo');
  try {
    process.kill(demo.pid, 'SIGTERM');
    await eventually(demo.hasExited, 'npm run demo exited');
    await eventually(() => dynamoProcesses(demo.dynamoPort).length === 0, 'DynamoDB Local ended');
  } finally {
    stalled.destroy();
  }
}, 150_000);
