/**
 * Section 4: bundle size and cold start. A minimal middy handler, bare and made idempotent by each
 * library (ours from its lean entry points and from its main entry), and a function that uses every
 * feature of ours (see tools/lambda-bundles.ts), bundled into a temporary directory; then imported
 * in fresh Node processes.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { bundleHandler, VARIANTS, type Variant } from '../tools/lambda-bundles.js';
import { rotation, type Summary, summarize } from './stats.js';

const run = promisify(execFile);

export interface ColdStart {
  /** Output bytes, and what each input (a source file, or a whole dependency) contributes to them, largest first. */
  readonly bundle: Record<Variant, { bytes: number; gzipBytes: number; inputs: { path: string; bytes: number }[] }>;
  /** ms to import the bundle in a fresh process, the AWS SDK loaded by the import itself. */
  readonly importWithSdk: Record<Variant, Summary>;
  /** ms to import the bundle in a fresh process whose AWS SDK modules were imported just before. */
  readonly importSdkPreloaded: Record<Variant, Summary>;
  readonly esbuild: string;
}

/** Times one import in a fresh `node`; the runner script is the same for every variant. */
async function importMillis(dir: string, file: string, preloadSdk: boolean): Promise<number> {
  const script = [
    preloadSdk ? `await import('@aws-sdk/client-dynamodb'); await import('@aws-sdk/util-dynamodb');` : '',
    `const start = performance.now();`,
    `const module = await import(process.env.BENCH_BUNDLE);`,
    `if (typeof module.handler !== 'function') throw new Error('no handler');`,
    `console.log(performance.now() - start);`,
  ].join('\n');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    AWS_REGION: 'us-east-1',
    AWS_LAMBDA_FUNCTION_NAME: 'bench-fn',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    BENCH_BUNDLE: pathToFileURL(file).href,
  };
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, env });
  return Number(stdout.trim());
}

export async function measureColdStart(root: string, samples: number): Promise<ColdStart> {
  const dir = await mkdtemp(join(tmpdir(), 'lambda-idempotency-bench-'));
  try {
    // The bundles import the SDK at run time, as on Lambda: let them find it.
    await symlink(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const bundle = {} as ColdStart['bundle'];
    const files = {} as Record<Variant, string>;
    for (const variant of VARIANTS) {
      const outfile = join(dir, `${variant}.mjs`);
      const result = await bundleHandler(variant, root);
      await writeFile(outfile, result.bytes);
      // Bytes each source file contributes to the output, grouped by package for dependencies.
      const contributions = new Map<string, number>();
      for (const output of Object.values(result.metafile.outputs)) {
        for (const [path, input] of Object.entries(output.inputs)) {
          const name = path.includes('node_modules/') ? path.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, '$1') : path;
          contributions.set(name, (contributions.get(name) ?? 0) + input.bytesInOutput);
        }
      }
      const inputs = [...contributions].map(([path, bytes]) => ({ path, bytes })).sort((a, b) => b.bytes - a.bytes);
      bundle[variant] = { bytes: result.bytes.byteLength, gzipBytes: gzipSync(result.bytes).byteLength, inputs };
      files[variant] = outfile;
    }
    const times: Record<string, number[]> = {};
    for (let round = 0; round < samples; round++) {
      for (const preload of [false, true]) {
        for (const variant of rotation(VARIANTS, round)) {
          (times[`${preload}:${variant}`] ??= []).push(await importMillis(dir, files[variant], preload));
        }
      }
    }
    const pick = (preload: boolean) => Object.fromEntries(VARIANTS.map((v) => [v, summarize(times[`${preload}:${v}`]!)])) as Record<Variant, Summary>;
    const { version } = JSON.parse(await readFile(join(root, 'node_modules/esbuild/package.json'), 'utf8')) as { version: string };
    return { bundle, importWithSdk: pick(false), importSdkPreloaded: pick(true), esbuild: version };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
