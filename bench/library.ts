/**
 * The library under measurement, loaded as its users run it: JavaScript compiled from `lib/` with
 * the package's compiler options (tsconfig.build.json). Powertools is measured from its published
 * JavaScript; loading our TypeScript through the bench's runner (tsx) instead would charge its
 * transpiled form and source-map support to our side only.
 *
 * Compiled afresh on every run (never stale), file by file: the build's `isolatedModules` makes each
 * file's JavaScript the same as `tsc -p tsconfig.build.json` emits, in a second instead of a full
 * type-checked build. Without source maps, as Powertools' JavaScript ships none. The folder lies
 * under `node_modules/.cache` so that the compiled files resolve the project's dependencies, and is
 * removed when the process exits. A child process (bench/node-child.ts) inherits
 * `BENCH_LIB_BUILD` and loads its parent's build. Every bench file takes the library from here,
 * so one copy of its module state (the call scope) exists per process.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import type * as CallState from '../lib/call.js';
import type * as Main from '../lib/index.js';
import type * as Redis from '../lib/redis/index.js';
import type * as CallScope from '../lib/transaction.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Compiles `lib/` into a new folder; returns that folder. */
function build(): string {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(root, 'tsconfig.build.json'),
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined },
  );
  if (!config) throw new Error('tsconfig.build.json could not be read.');
  // Every file is ESM (the package's "type"); transpileModule cannot look that up, so say so.
  const compilerOptions = {
    ...config.options,
    module: ts.ModuleKind.ES2022,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    sourceMap: false,
    inlineSources: false,
    declaration: false,
  };
  const cache = join(root, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const out = mkdtempSync(join(cache, 'bench-lib-'));
  process.once('exit', () => rmSync(out, { recursive: true, force: true }));
  // The package is ESM; node_modules ends the search for a package.json, so say it here.
  writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n');
  for (const fileName of config.fileNames) {
    const { outputText } = ts.transpileModule(readFileSync(fileName, 'utf8'), { compilerOptions, fileName });
    const target = join(out, relative(root, fileName)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, outputText);
  }
  return out;
}

process.env.BENCH_LIB_BUILD ??= build();
const load = (path: string): Promise<unknown> => import(pathToFileURL(join(process.env.BENCH_LIB_BUILD!, path)).href);

const main = (await load('lib/index.js')) as typeof Main;
const redis = (await load('lib/redis/index.js')) as typeof Redis;
const callScope = (await load('lib/transaction.js')) as typeof CallScope;
const callState = (await load('lib/call.js')) as typeof CallState;

export const { DynamoDBStore, hashKey, idempotency, idempotencyTableSchema, transaction } = main;
export const { RedisStore } = redis;
export const { inCall, leaveCallScopes } = callScope;
export const { Call } = callState;
