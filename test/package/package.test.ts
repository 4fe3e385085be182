/**
 * The package as users get it: `npm pack` (the build runs as its `prepack`), installed by npm into a
 * fresh project outside the repository, then used from an ES module app, a CommonJS app and a
 * CommonJS CDK app, each compiled by TypeScript against the installed declarations and run by Node.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix, relative } from 'node:path';
import { promisify } from 'node:util';
import { parseMarkdown } from '../docs/markdown.js';
import { dropTable, endpoint, freshTable, testClient } from '../support/dynamodb.js';
import { ENTRY_POINTS, PROJECTS, writeConsumerApps } from './consumer-apps.js';
import { OLDEST_CDK, OLDEST_LAMBDA_TYPES, type Packed, packed, root } from './packed.js';
import { tscBuild } from './tsc-build.js';

const exec = promisify(execFile);
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, string | Record<string, string>>;
  typesVersions: Record<string, Record<string, string[]>>;
  main: string;
  types: string;
};

let pkg: Packed;
/** What TypeScript printed for each project of the consumer ('' when it compiled cleanly), as each is done. */
let compiled: Record<keyof typeof PROJECTS, Promise<string>>;

beforeAll(async () => {
  pkg = await packed();
  writeConsumerApps(
    pkg.consumer,
    pkg.installed,
    pkg.files.map((f) => f.path).filter((p) => p.endsWith('.d.ts')),
  );
  // One compiler for all the projects, started now; the tests wait for their project only.
  const outputs = tscBuild(tsc, pkg.consumer, Object.values(PROJECTS));
  compiled = Object.fromEntries(Object.entries(PROJECTS).map(([name, tsconfig]) => [name, outputs.get(join(pkg.consumer, tsconfig))!])) as typeof compiled;
}, 300_000);

/** Runs `file` in a fresh Node process from the consumer project and parses the JSON it prints. */
async function runApp(file: string, env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const { stdout, stderr } = await exec(process.execPath, [join(pkg.consumer, file)], {
    cwd: pkg.consumer,
    env: { ...process.env, NODE_OPTIONS: '', ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
  expect(stderr).toBe('');
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('what the tarball holds', () => {
  test('only the built library, README, LICENSE, package.json and the docs pages: no sources, tests, demo, infra, bench or tools', () => {
    const paths = pkg.files.map((f) => f.path);
    expect(paths).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'docs/redis.md']));
    const unexpected = paths.filter((p) => !/^(LICENSE|README\.md|package\.json|docs\/[\w-]+\.md|dist\/lib\/.+\.(js|d\.ts|js\.map))$/.test(p));
    expect(unexpected).toEqual([]);
    // Every module ships with its declarations and its map.
    for (const js of paths.filter((p) => p.endsWith('.js'))) {
      expect(paths).toEqual(expect.arrayContaining([js.replace(/\.js$/, '.d.ts'), `${js}.map`]));
    }
  });

  test('the pages the README links to, and those a message or a declaration names (`see docs/redis.md`), are in the tarball; only the demo links out of it', () => {
    const paths = new Set(pkg.files.map((f) => f.path));
    // The demo's deployment guide: the demo and its stack are the repository's, not the package's.
    // Linked only from a paragraph about the demo, and as a whole: a section of it that the package
    // needs (the CDK construct's synth checks) belongs in docs/, or the installed link leads nowhere.
    const repositoryOnly = new Set(['infra/README.md']);
    const missing: string[] = [];
    for (const doc of [...paths].filter((p) => p.endsWith('.md'))) {
      const text = readFileSync(join(pkg.installed, doc), 'utf8');
      const lines = text.split('\n');
      /** The paragraph of a 1-based line: the lines around it up to a blank one. */
      const paragraph = (line: number): string => {
        let [from, to] = [line - 1, line - 1];
        while (from > 0 && lines[from - 1]!.trim() !== '') from--;
        while (to < lines.length - 1 && lines[to + 1]!.trim() !== '') to++;
        return lines.slice(from, to + 1).join(' ');
      };
      for (const { line, target } of parseMarkdown(text).links) {
        if (/^(?:[a-z][a-z\d+.-]*:|\/\/|#)/i.test(target)) continue;
        const resolved = posix.normalize(posix.join(posix.dirname(doc), decodeURI(target.replace(/#.*$/, ''))));
        const demoGuide = repositoryOnly.has(resolved) && !target.includes('#') && /\bdemo\b/i.test(paragraph(line));
        if (!paths.has(resolved) && !demoGuide) missing.push(`${doc}:${line} ${target}`);
      }
    }
    for (const file of [...paths].filter((p) => /\.(js|d\.ts)$/.test(p))) {
      for (const [page] of readFileSync(join(pkg.installed, file), 'utf8').matchAll(/\bdocs\/[\w-]+\.md\b/g)) {
        if (!paths.has(page)) missing.push(`${file}: ${page}`);
      }
    }
    expect(missing).toEqual([]);
  });

  test('LICENSE is the MIT-0 text package.json names', () => {
    expect(JSON.parse(readFileSync(join(pkg.installed, 'package.json'), 'utf8')).license).toBe('MIT-0');
    const license = readFileSync(join(pkg.installed, 'LICENSE'), 'utf8').replace(/\s+/g, ' ');
    expect(license).toMatch(/^MIT No Attribution /);
    expect(license).toContain('to permit persons to whom the Software is furnished to do so.');
    expect(license).not.toContain('subject to the following conditions'); // the MIT clause MIT-0 drops
  });

  test('package.json is published as written: npm corrects nothing in it (`npm publish` warns of every field it corrects)', async () => {
    // `npm pkg fix` applies the corrections `npm publish` makes, to a copy of the packed manifest.
    const dir = mkdtempSync(join(tmpdir(), 'manifest-'));
    try {
      const packedManifest = readFileSync(join(pkg.installed, 'package.json'), 'utf8');
      writeFileSync(join(dir, 'package.json'), packedManifest);
      await exec('npm', ['pkg', 'fix'], { cwd: dir });
      expect(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))).toEqual(JSON.parse(packedManifest));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('every entry point resolves for import and require, with types, to files in the tarball', () => {
    const paths = new Set(pkg.files.map((f) => f.path));
    const entries = Object.entries(manifest.exports).filter(([subpath]) => subpath !== './package.json');
    expect(entries.map(([subpath]) => subpath)).toEqual(expect.arrayContaining(['.', './cdk', './testing']));
    for (const [subpath, target] of entries) {
      expect(typeof target).toBe('object');
      const conditions = target as Record<string, string>;
      // `default` serves require() (Node ≥ 20.19 loads ES modules) as well as import.
      expect(Object.keys(conditions)[0]).toBe('types');
      expect(conditions.default).toBeDefined();
      if (conditions.import !== undefined) expect(conditions.import).toBe(conditions.default);
      expect(paths.has(conditions.types!.replace(/^\.\//, ''))).toBe(true);
      expect(paths.has(conditions.default!.replace(/^\.\//, ''))).toBe(true);
      // Resolution that ignores `exports` (TypeScript's `module: commonjs`) finds the same types.
      if (subpath === '.') {
        expect([manifest.main, manifest.types]).toEqual([conditions.default, conditions.types]);
      } else {
        expect(manifest.typesVersions['*']?.[subpath.slice(2)]).toEqual([conditions.types]);
      }
    }
  });

  test('source maps carry their sources, which are not shipped', () => {
    const maps = pkg.files.map((f) => f.path).filter((p) => p.endsWith('.js.map'));
    expect(maps.length).toBeGreaterThan(10);
    for (const path of maps) {
      const map = JSON.parse(readFileSync(join(pkg.installed, path), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
      expect(map.sourcesContent).toHaveLength(map.sources.length);
      expect(map.sourcesContent!.every((source) => typeof source === 'string' && source.length > 0)).toBe(true);
    }
  });

  test('the declarations name nothing the sources mark @internal', () => {
    const internal = new Set(['WriteCollector', 'currentCall', 'IdempotencyEngine', 'AttemptHost']);
    const marked =
      /\/\*\*(?:(?!\*\/)[\s\S])*@internal(?:(?!\*\/)[\s\S])*\*\/\s*export\s+(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(?:class|interface|type|function|const|let|enum)\s+([A-Za-z_$][\w$]*)/g;
    const sources = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
      );
    for (const file of sources(join(root, 'lib'))) {
      for (const match of readFileSync(file, 'utf8').matchAll(marked)) internal.add(match[1]!);
    }
    expect(internal.size).toBeGreaterThan(10);
    const leaks: string[] = [];
    for (const path of pkg.files.map((f) => f.path).filter((p) => p.endsWith('.d.ts'))) {
      const text = readFileSync(join(pkg.installed, path), 'utf8');
      for (const name of internal) {
        const declared = new RegExp(`\\b(?:class|interface|type|function|const|let|enum)\\s+${name}\\b`);
        const reExported = new RegExp(`(?:import|export)\\s+(?:type\\s+)?\\{[^}]*\\b${name}\\b[^}]*\\}`);
        if (declared.test(text) || reExported.test(text)) leaks.push(`${path}: ${name}`);
      }
    }
    expect(leaks).toEqual([]);
  });

  test('no public declaration says `any`', () => {
    const declarations = pkg.files.map((f) => f.path).filter((p) => p.endsWith('.d.ts'));
    const offenders: string[] = [];
    for (const path of declarations) {
      // Comments and string literals may say "any" in prose; types may not.
      const code = readFileSync(join(pkg.installed, path), 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '')
        .replace(/'(?:[^'\\\n]|\\.)*'/g, "''");
      if (/\bany\b/.test(code)) offenders.push(path);
    }
    expect(declarations.length).toBeGreaterThan(40);
    expect(offenders).toEqual([]);
  });

  test('every declaration file in the tarball type-checks on its own: no type it names was stripped as internal', async () => {
    const declarations = pkg.files.map((f) => f.path).filter((p) => p.endsWith('.d.ts'));
    expect(declarations.length).toBeGreaterThan(40);
    // Each one copied to a source file of the consumer project (see `declarationsTsconfig`): a failure prints each missing name.
    const copies = readFileSync(join(pkg.consumer, PROJECTS.declarations), 'utf8');
    expect(JSON.parse(copies).files).toHaveLength(declarations.length);
    expect(await compiled.declarations).toBe('');
  }, 300_000);
});

describe('installed into a fresh project', () => {
  const client = testClient();
  let tableName: string;
  beforeAll(async () => {
    tableName = await freshTable(client, 'package');
  });
  afterAll(async () => {
    await dropTable(client, tableName);
    client.destroy();
  });

  test('npm installs @types/aws-lambda with it (a peer), so Lambda types never degrade to `any`', () => {
    expect(existsSync(join(pkg.consumer, 'node_modules', '@types', 'aws-lambda', 'package.json'))).toBe(true);
    // Nothing of the repository leaks in: the project sits outside it.
    expect(relative(root, pkg.consumer).startsWith('..')).toBe(true);
  });

  test('TypeScript compiles an ES module app and a CommonJS app (NodeNext) and a CDK app (module: commonjs) against the declarations', async () => {
    expect(await compiled.apps).toBe('');
    expect(await compiled.cdk).toBe('');
  }, 300_000);

  test.each([
    ['an ES module app imports', 'esm/app.js', 'esm-app'],
    ['a CommonJS app requires', 'cjs/app.js', 'cjs-app'],
  ])(
    '%s the library, its testing helpers and its CDK construct, and a duplicate replays',
    async (_how, file, name) => {
      expect(await compiled.apps).toBe('');
      const result = await runApp(file, { DYNAMODB_ENDPOINT: endpoint(), TABLE_NAME: tableName });
      expect(result).toEqual({
        first: { orderId: `${name}-1`, run: 1 },
        second: { orderId: `${name}-1`, run: 1 },
        runs: 1,
        typed: [false, false, false],
        cdk: 'function',
      });
    },
    60_000,
  );

  test('every entry point of `exports` loads with import and with require(), the same names either way', async () => {
    const subpaths = Object.keys(manifest.exports)
      .filter((subpath) => subpath !== './package.json')
      .map((subpath) => `lambda-idempotency${subpath.slice(1)}`);
    expect(Object.keys(ENTRY_POINTS).sort()).toEqual(subpaths.sort());
    const loaded = (await runApp('entries/load.js')) as Record<string, { import: string[]; require: string[] }>;
    for (const [entry, name] of Object.entries(ENTRY_POINTS)) {
      expect(loaded[entry]?.import).toContain(name);
      expect(loaded[entry]?.require).toEqual(loaded[entry]?.import);
    }
  });

  test('the `lambda-idempotency` command runs from node_modules/.bin: help, its version, and a lookup in DynamoDB Local', async () => {
    const bin = join(pkg.consumer, 'node_modules', '.bin', 'lambda-idempotency');
    // Executed as a shell would: its shebang and mode, not `node file`.
    const help = await exec(bin, ['--help'], { cwd: pkg.consumer });
    expect(help.stdout).toMatch(/^Usage: lambda-idempotency <command>/);
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    expect((await exec(bin, ['--version'], { cwd: pkg.consumer })).stdout).toBe(`${version}\n`);
    const env = {
      ...process.env,
      NODE_OPTIONS: '',
      AWS_ENDPOINT_URL_DYNAMODB: endpoint(),
      AWS_REGION: 'local',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
    };
    const missing = await exec(bin, ['inspect', '--table', tableName, '--id', 'nobody#0', '--json'], { cwd: pkg.consumer, env }).catch(
      (error: { code: number; stdout: string }) => error,
    );
    expect(missing).toMatchObject({ code: 3 });
  }, 60_000);

  test('a CommonJS CDK app synthesizes a stack with IdempotencyTable, without errors', async () => {
    expect(await compiled.cdk).toBe('');
    const { template, errors, functionName } = (await runApp('cdk/bin/payments.js')) as {
      template: { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };
      errors: unknown[];
      functionName: string;
    };
    expect(errors).toEqual([]);
    expect(functionName).toBe('pay');
    const resources = Object.values(template.Resources);
    const table = resources.find((r) => r.Type === 'AWS::DynamoDB::Table');
    expect(table?.Properties).toMatchObject({
      KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: 'expiration', Enabled: true },
    });
    const fn = resources.find((r) => r.Type === 'AWS::Lambda::Function');
    expect(fn?.Properties.Environment).toMatchObject({ Variables: { IDEMPOTENCY_TABLE: expect.anything() } });
    const actions = resources
      .filter((r) => r.Type === 'AWS::IAM::Policy')
      .flatMap((r) => (r.Properties.PolicyDocument as { Statement: Array<{ Action: string | string[] }> }).Statement.flatMap((s) => s.Action));
    expect(actions).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem']));
  }, 60_000);

  test(`the CDK construct runs on aws-cdk-lib ${OLDEST_CDK}, the oldest the peer range accepts: a customer managed key is granted, and a warning acknowledged on its function is gone`, async () => {
    // The package beside that aws-cdk-lib, as npm installs it in a CDK app pinned to it; the AWS SDK resolves from the consumer.
    const copy = join(pkg.consumer, 'oldest-cdk', 'node_modules', 'lambda-idempotency');
    rmSync(copy, { recursive: true, force: true });
    cpSync(pkg.installed, copy, { recursive: true });
    expect(await runApp('oldest-cdk/synth.mjs')).toEqual({ version: OLDEST_CDK, messages: [] });
  }, 60_000);

  test("two copies of the package on one handler (another version in a dependency): the outer middleware never stores the inner one's rejection", async () => {
    // A second copy, as npm nests another version under a dependency; it resolves the AWS SDK from the consumer.
    const vendor = join(pkg.consumer, 'vendor', 'node_modules', 'lambda-idempotency');
    rmSync(vendor, { recursive: true, force: true });
    cpSync(pkg.installed, vendor, { recursive: true });
    writeFileSync(
      join(pkg.consumer, 'two-copies.mjs'),
      // Double quotes: jest.config.js runs a file that imports '@middy/core' (so quoted) once more on middy 6.
      `import middy from "@middy/core";
import { idempotency } from 'lambda-idempotency';
import { InMemoryStore } from 'lambda-idempotency/testing';
const other = await import('./vendor/node_modules/lambda-idempotency/dist/lib/index.js');
const otherTesting = await import('./vendor/node_modules/lambda-idempotency/dist/lib/testing/index.js');
let runs = 0;
const handler = middy(async () => ({ run: ++runs }))
  .use(idempotency({ store: new InMemoryStore(), name: 'outer', key: (event) => event.id, isFinalError: () => true }))
  .use(other.idempotency({ store: new otherTesting.InMemoryStore(), name: 'inner', key: (event) => event.tenant }));
const context = (id) => ({ functionName: 'pay', awsRequestId: id, getRemainingTimeInMillis: () => 30000 });
const first = await handler({ id: 'd-1' }, context('r-1')).then((value) => value, (error) => error.code);
const retried = await handler({ id: 'd-1', tenant: 't-1' }, context('r-2')).then((value) => value, (error) => error.code);
console.log(JSON.stringify({ twoCopies: idempotency !== other.idempotency, first, retried }));
`,
    );
    // The client adds the missing key and retries under the same outer key: the handler runs.
    expect(await runApp('two-copies.mjs')).toEqual({ twoCopies: true, first: 'KEY_MISSING', retried: { run: 1 } });
  }, 60_000);

  test(`TypeScript resolves the entry points under moduleResolution bundler and node16, and checks the declarations against @types/aws-lambda ${OLDEST_LAMBDA_TYPES}, the oldest the peer range accepts`, async () => {
    const installed = JSON.parse(readFileSync(join(pkg.consumer, 'oldest-types', 'node_modules', '@types', 'aws-lambda', 'package.json'), 'utf8'));
    expect(installed.version).toBe(OLDEST_LAMBDA_TYPES);
    expect(await compiled.bundler).toBe('');
    // node16 lists its files (absolute paths); tsc prints errors with paths relative to the consumer.
    const node16 = (await compiled.node16).split('\n').filter((line) => line !== '');
    expect(node16.filter((line) => !line.startsWith('/'))).toEqual([]);
    const lambdaTypes = node16.filter((file) => file.includes('/@types/aws-lambda/'));
    expect(lambdaTypes.length).toBeGreaterThan(0);
    expect(lambdaTypes.filter((file) => !file.includes('/oldest-types/'))).toEqual([]);
  }, 120_000);
});
