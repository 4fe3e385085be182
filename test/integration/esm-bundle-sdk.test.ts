/**
 * docs/compatibility.md: an ES module bundle that includes the AWS SDK needs esbuild's
 * `mainFields: ['module', 'main']`; by default esbuild takes the SDK's CommonJS build, and the
 * handler fails at load with `Dynamic require of "node:https" is not supported`.
 */

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'esm-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Bundles a handler module that builds a DynamoDBStore, the SDK included, and loads it in a fresh Node process. */
async function load(mainFields?: string[]) {
  const source = `import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStore } from './lib/dynamodb/index.js';
export const store = new DynamoDBStore({ tableName: 'records', client: new DynamoDBClient({ region: 'eu-west-1' }) });
console.log(typeof store.claim);`;
  const result = await build({
    stdin: { contents: source, resolveDir: root, sourcefile: 'handler.ts', loader: 'ts' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'silent',
    write: false,
    ...(mainFields === undefined ? {} : { mainFields }),
  });
  const file = join(dir, `handler-${mainFields === undefined ? 'default' : 'module'}.mjs`);
  writeFileSync(file, result.outputFiles[0]!.contents);
  return run(process.execPath, [file], { cwd: dir, env: { ...process.env, NODE_OPTIONS: '' } });
}

test('with esbuild’s default main fields, the bundle fails at load with Dynamic require of "node:https"', async () => {
  await expect(load()).rejects.toMatchObject({ stderr: expect.stringContaining('Dynamic require of "node:https" is not supported') });
}, 60_000);

test('with mainFields module, main, the same bundle loads', async () => {
  expect((await load(['module', 'main'])).stdout.trim()).toBe('function');
}, 60_000);
