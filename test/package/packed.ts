/**
 * The package as npm publishes it: `npm pack` (its `prepack` builds `dist/`), then the tarball
 * installed by npm into a fresh consumer project. Both are cached in the system's temporary
 * directory, outside the repository (a consumer inside it would resolve whatever the package forgot
 * to declare from the repository's node_modules), under a hash of what goes into the package: only
 * a change to the library, its build or its manifest pays for a new build and install.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export const root = fileURLToPath(new URL('../../', import.meta.url));
// Outside the test run's own temporary directory, which is removed when the run ends.
const cacheRoot = join(process.env.SYSTEM_TMPDIR ?? tmpdir(), `lambda-idempotency-package-${createHash('sha256').update(root).digest('hex').slice(0, 8)}`);

/** Peers a consumer installs for itself; the repository's copies stand in for them (same versions). */
/**
 * Peers linked from the repository: name in the consumer → package here. The consumer apps include
 * a CommonJS one, and middy 7 is ES modules only (no `require` export): CommonJS users run middy 6.
 */
const LINKED_PEERS: ReadonlyArray<readonly [string, string]> = [
  ['aws-cdk-lib', 'aws-cdk-lib'],
  ['constructs', 'constructs'],
  ['@middy/core', '@middy/core-v6'],
  ['@types/node', '@types/node'],
];

const peerDependencies = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string> }).peerDependencies;

/** The lowest `@types/aws-lambda` that the package's peer range accepts. */
export const OLDEST_LAMBDA_TYPES = peerDependencies['@types/aws-lambda']!.replace(/^[\^~>=]+/, '');

/** The lowest `aws-cdk-lib` that the package's peer range accepts. */
export const OLDEST_CDK = peerDependencies['aws-cdk-lib']!.replace(/^[\^~>=]+/, '');

export interface PackedFile {
  readonly path: string;
  readonly size: number;
}

export interface Packed {
  /** The tarball's file list, as `npm pack --json` reports it. */
  readonly files: readonly PackedFile[];
  /** A consumer project with the tarball installed in its node_modules. */
  readonly consumer: string;
  /** Where the installed package lives inside the consumer project. */
  readonly installed: string;
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? listFiles(path) : [path];
  });
}

/** What decides the tarball and its install: the library, its documentation, the manifests, the build config, this recipe. */
function inputsHash(): string {
  const hash = createHash('sha256');
  const inputs = [
    ...listFiles(join(root, 'lib')),
    ...listFiles(join(root, 'docs')),
    ...['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'LICENSE'].map((f) => join(root, f)),
    fileURLToPath(import.meta.url),
  ].sort();
  for (const file of inputs) hash.update(relative(root, file)).update('\0').update(readFileSync(file)).update('\0');
  return hash.digest('hex').slice(0, 16);
}

/** The environment of a fresh shell: without the npm_* variables of the `npm test` that runs us. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)));
}

async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout } = await exec('npm', args, { cwd, env: cleanEnv(), maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

async function build(dir: string): Promise<void> {
  const consumer = join(dir, 'consumer');
  mkdirSync(consumer);
  // The oldest Lambda types the peer range accepts, beside the newest npm installed: the declarations must compile against both.
  // Installed meanwhile: they need nothing of the tarball (npm leaves a folder of the consumer that is no workspace alone).
  const oldestTypes = join(consumer, 'oldest-types');
  mkdirSync(oldestTypes);
  writeFileSync(join(oldestTypes, 'package.json'), JSON.stringify({ private: true }));
  const oldest = npm(['install', '--prefer-offline', '--no-audit', '--no-fund', `@types/aws-lambda@${OLDEST_LAMBDA_TYPES}`], oldestTypes);
  oldest.catch(() => undefined); // awaited below, after the pack and install, which fail first if they fail
  // The oldest aws-cdk-lib likewise (constructs comes with it, as its peer), for the construct to run on; the package is copied beside it by the test.
  const oldestCdk = join(consumer, 'oldest-cdk');
  mkdirSync(oldestCdk);
  writeFileSync(join(oldestCdk, 'package.json'), JSON.stringify({ private: true }));
  const oldestCdkInstall = npm(['install', '--prefer-offline', '--no-audit', '--no-fund', `aws-cdk-lib@${OLDEST_CDK}`], oldestCdk);
  oldestCdkInstall.catch(() => undefined);
  const [report] = JSON.parse(await npm(['pack', '--json', '--pack-destination', dir], root)) as [{ filename: string; files: PackedFile[] }];
  writeFileSync(join(dir, 'files.json'), JSON.stringify(report.files));
  writeFileSync(
    join(consumer, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, dependencies: { 'lambda-idempotency': `file:../${report.filename}` } }, null, 2),
  );
  // The npm cache holds every package the repository installed; the registry answers for the rest.
  await npm(['install', '--prefer-offline', '--no-audit', '--no-fund'], consumer);
  await oldest;
  await oldestCdkInstall;
  for (const [name, source] of LINKED_PEERS) {
    const link = join(consumer, 'node_modules', name);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(join(root, 'node_modules', source), link, 'dir');
  }
  writeFileSync(join(dir, 'ready'), '');
}

/** Packs and installs the package, or finds both in the cache. */
export async function packed(): Promise<Packed> {
  const dir = join(cacheRoot, inputsHash());
  if (!existsSync(join(dir, 'ready'))) {
    // Earlier builds are stale: keep one package's worth of disk.
    rmSync(cacheRoot, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    await build(dir);
  }
  const consumer = join(dir, 'consumer');
  return {
    files: JSON.parse(readFileSync(join(dir, 'files.json'), 'utf8')) as PackedFile[],
    consumer,
    installed: join(consumer, 'node_modules', 'lambda-idempotency'),
  };
}
