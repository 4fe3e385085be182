/**
 * The `lambda-idempotency` command run in this process through `runCli`, with the environment a
 * child process would be given. The command's io carries that environment, but its SDK client
 * reads `process.env` itself (region, credentials, AWS_ENDPOINT_URL_DYNAMODB, AWS_PROFILE,
 * AWS_MAX_ATTEMPTS...): for the length of the run, every AWS_ and IDEMPOTENCY_ variable of this
 * process is replaced by the given environment's, as a shell would start the command with them.
 * Runs with the same environment share it and may overlap; a run with another one waits until they
 * have ended, so no run ever reads another's environment.
 */
import { runCli } from '../../lib/cli/run.js';
import { endpoint } from './dynamodb.js';

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The variables the command's SDK and store read from `process.env`, which a run replaces. */
const READ = /^(AWS_|IDEMPOTENCY_)/;

let current: { key: string; runs: number; saved: NodeJS.ProcessEnv; ended: Promise<void>; end: () => void } | undefined;

async function enter(env: NodeJS.ProcessEnv): Promise<void> {
  const key = JSON.stringify(Object.entries(env).sort(([a], [b]) => a.localeCompare(b)));
  while (current !== undefined && current.key !== key) await current.ended;
  if (current === undefined) {
    const saved = { ...process.env };
    for (const name of Object.keys(process.env)) if (READ.test(name)) delete process.env[name];
    for (const [name, value] of Object.entries(env)) if (READ.test(name) && value !== undefined) process.env[name] = value;
    let end = () => {};
    const ended = new Promise<void>((resolve) => {
      end = resolve;
    });
    current = { key, runs: 0, saved, ended, end };
  }
  current.runs++;
}

function leave(): void {
  if (current === undefined || --current.runs > 0) return;
  const { saved, end } = current;
  for (const name of Object.keys(process.env)) if (READ.test(name)) delete process.env[name];
  Object.assign(process.env, saved);
  current = undefined;
  end();
}

/** Runs one command line in this process at the instant `now` (its clock), as a shell with `env` would run it. */
export async function runInProcess(env: NodeJS.ProcessEnv, now: (() => number) | undefined, argv: readonly string[]): Promise<Run> {
  await enter(env);
  let stdout = '';
  let stderr = '';
  try {
    const code = await runCli(argv, {
      env,
      now: now ?? Date.now,
      stdout: (text) => void (stdout += text),
      stderr: (text) => void (stderr += text),
    });
    return { code, stdout, stderr };
  } finally {
    leave();
  }
}

/**
 * The environment a shell would start the command with against this test run's DynamoDB Local,
 * with `changes` made to it (`undefined` removes a variable).
 */
export function localCliEnvironment(changes: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    AWS_ENDPOINT_URL_DYNAMODB: endpoint(),
    AWS_REGION: 'local',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  return Object.fromEntries(Object.entries({ ...base, ...changes }).filter(([, value]) => value !== undefined));
}
