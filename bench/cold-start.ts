/**
 * Section 4: bundle size and cold start. A minimal middy handler, bare and made idempotent by each
 * library, and a function that uses every feature of ours, bundled the way a Lambda function ships
 * (esbuild, minified ESM, the AWS SDK external because the Node.js runtime provides it), into a
 * temporary directory; then imported in fresh Node processes.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { rotation, type Summary, summarize } from './stats.js';

const run = promisify(execFile);

/** `full`: ours with encryption, observability, atomic mode, stored errors, HTTP, batch and `transaction()`. */
export type Variant = 'bare' | 'ours' | 'powertools' | 'full';
const VARIANTS: readonly Variant[] = ['bare', 'ours', 'powertools', 'full'];

const HANDLER = `async (event) => ({ statusCode: 201, body: JSON.stringify({ orderId: event.orderId, status: 'accepted' }) })`;

/** Each entry as a user writes it, with its library's defaults. */
function entry(variant: Variant, root: string): string {
  const lib = JSON.stringify(join(root, 'lib/index.ts'));
  switch (variant) {
    case 'bare':
      return `import middy from '@middy/core';
export const handler = middy(${HANDLER});`;
    case 'ours':
      return `import middy from '@middy/core';
import { DynamoDBStore, idempotency } from ${lib};
const store = new DynamoDBStore({ tableName: process.env.IDEMPOTENCY_TABLE ?? 'idempotency' });
export const handler = middy(${HANDLER}).use(idempotency({ store }));`;
    case 'powertools':
      return `import middy from '@middy/core';
import { makeHandlerIdempotent } from '@aws-lambda-powertools/idempotency/middleware';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
const persistenceStore = new DynamoDBPersistenceLayer({ tableName: process.env.IDEMPOTENCY_TABLE ?? 'idempotency' });
export const handler = middy(${HANDLER}).use(makeHandlerIdempotent({ persistenceStore }));`;
    case 'full':
      return `import middy from '@middy/core';
import { DynamoDBStore, httpIdempotency, idempotency, idempotentBatch, makeIdempotent, transaction } from ${lib};
const keys = { k1: new Uint8Array(32) };
const encryption = { currentKey: () => ({ id: 'k1', key: keys.k1 }), keyById: (id) => keys[id] };
const store = new DynamoDBStore({ tableName: process.env.IDEMPOTENCY_TABLE ?? 'idempotency', encryption });
const observability = { metrics: true, logs: true };
const isFinalError = (error) => error?.name === 'CardDeclined';
const accept = async (order) => {
  transaction().put({ TableName: 'orders', Item: { id: order.orderId, status: 'accepted' } });
  return { statusCode: 201, body: JSON.stringify({ orderId: order.orderId, status: 'accepted' }) };
};
export const handler = middy(accept).use(idempotency({ store, observability, isFinalError, key: (event) => event.orderId }));
export const atomicHandler = middy(accept).use(idempotency({ store, observability, atomic: true }));
export const httpHandler = middy(${HANDLER}).use(httpIdempotency({ store, observability, isFinalError }));
export const batchHandler = idempotentBatch(accept, { store, observability, isFinalError });
export const acceptOnce = makeIdempotent(accept, { store, name: 'accept', observability });`;
  }
}

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
      const result = await build({
        stdin: { contents: entry(variant, root), resolveDir: root, sourcefile: `${variant}-handler.ts`, loader: 'ts' },
        bundle: true,
        minify: true,
        format: 'esm',
        platform: 'node',
        target: 'node20',
        external: ['@aws-sdk/*'],
        outfile,
        logLevel: 'silent',
        metafile: true,
      });
      // Bytes each source file contributes to the output, grouped by package for dependencies.
      const contributions = new Map<string, number>();
      for (const output of Object.values(result.metafile.outputs)) {
        for (const [path, input] of Object.entries(output.inputs)) {
          const name = path.includes('node_modules/') ? path.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, '$1') : path;
          contributions.set(name, (contributions.get(name) ?? 0) + input.bytesInOutput);
        }
      }
      const inputs = [...contributions].map(([path, bytes]) => ({ path, bytes })).sort((a, b) => b.bytes - a.bytes);
      const bytes = await readFile(outfile);
      bundle[variant] = { bytes: bytes.byteLength, gzipBytes: gzipSync(bytes).byteLength, inputs };
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
