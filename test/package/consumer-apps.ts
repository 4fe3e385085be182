/**
 * The source of the apps a user writes against the installed package: an ES module app, a CommonJS
 * app, and a CommonJS CDK app laid out as `cdk init app --language typescript` makes it; beside them
 * the projects that only type-check the package's entry points and declarations. Written as strings
 * so the repository's own type-check does not compile them against the repository.
 */
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The same idempotent middy handler, unit-tested with the testing helpers, in either module system. */
function handlerApp(name: string, loadCdk: string): string {
  return `import middy from '@middy/core';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Context } from 'aws-lambda';
import { DynamoDBStore, idempotency } from 'lambda-idempotency';
import { lambdaContext, manualClock } from 'lambda-idempotency/testing';

interface Order {
  readonly orderId: string;
}

// Compiles only while the library's Lambda types are real types, not \`any\`.
type IsAny<T> = 0 extends 1 & T ? true : false;

async function main(): Promise<void> {
  const client = new DynamoDBClient({
    endpoint: process.env.DYNAMODB_ENDPOINT,
    region: 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const store = new DynamoDBStore({ tableName: process.env.TABLE_NAME ?? '', client });
  const clock = manualClock();
  let runs = 0;
  const handler = middy(async (event: Order, _context: Context) => ({ orderId: event.orderId, run: ++runs })).use(
    idempotency<Order>({ store, key: (event) => event.orderId, now: clock.now }),
  );
  const typed: [IsAny<Context>, IsAny<ReturnType<typeof lambdaContext>>, IsAny<Parameters<typeof handler>[1]>] = [false, false, false];
  const first = await handler({ orderId: '${name}-1' }, lambdaContext({ functionName: '${name}', now: clock.now }));
  const second = await handler({ orderId: '${name}-1' }, lambdaContext({ functionName: '${name}', now: clock.now }));
  const cdk = ${loadCdk};
  console.log(JSON.stringify({ first, second, runs, typed, cdk: typeof cdk.IdempotencyTable }));
  client.destroy();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
`;
}

/** tsconfig of the two handler apps: what TypeScript recommends for Node (NodeNext), full checks. */
const handlerTsconfig = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    esModuleInterop: true,
    // Checks the package's own declarations too, so one that names a stripped internal fails here.
    skipLibCheck: false,
    types: ['node'],
  },
  files: ['esm/app.ts', 'cjs/app.ts'],
};

const cdkStack = `import * as cdk from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { IdempotencyTable } from 'lambda-idempotency/cdk';

export class PaymentsStack extends cdk.Stack {
  constructor(scope: Construct, id: string, props?: cdk.StackProps) {
    super(scope, id, props);
    const idempotency = new IdempotencyTable(this, 'Idempotency');
    const pay = new lambda.Function(this, 'Pay', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('exports.handler = async () => ({ statusCode: 200 });'),
    });
    idempotency.attachFunction(pay);
  }
}
`;

const cdkBin = `#!/usr/bin/env node
import * as cdk from 'aws-cdk-lib';
import type { Context } from 'aws-lambda';
import { lambdaContext } from 'lambda-idempotency/testing';
import { PaymentsStack } from '../lib/payments-stack';

// The testing entry point resolves, typed, under the classic resolution of \`module: commonjs\`.
const context: Context = lambdaContext({ functionName: 'pay' });
// CDK's own CloudFormation validation (a WASM engine, seconds per synth) is not what this app tests.
const app = new cdk.App({ builtinCloudFormationValidation: false });
const stack = new PaymentsStack(app, 'PaymentsStack');
const artifact = app.synth().getStackByName(stack.stackName);
const errors = artifact.messages.filter((message) => message.level === 'error').map((message) => message.entry.data);
console.log(JSON.stringify({ template: artifact.template, errors, functionName: context.functionName }));
`;

/** The tsconfig \`cdk init app --language typescript\` wrote for years: CommonJS, classic resolution. */
const cdkTsconfig = {
  compilerOptions: {
    target: 'ES2020',
    module: 'commonjs',
    lib: ['es2020', 'dom'],
    declaration: true,
    strict: true,
    noImplicitAny: true,
    strictNullChecks: true,
    noImplicitThis: true,
    alwaysStrict: true,
    noUnusedLocals: false,
    noUnusedParameters: false,
    noImplicitReturns: true,
    noFallthroughCasesInSwitch: false,
    inlineSourceMap: true,
    inlineSources: true,
    experimentalDecorators: true,
    strictPropertyInitialization: false,
    skipLibCheck: true,
    types: ['node'],
  },
  exclude: ['node_modules', 'cdk.out'],
};

/**
 * The construct on the oldest aws-cdk-lib the peer range accepts (`oldest-cdk/node_modules`, where the
 * test copies the package): a customer managed key, whose grant tells a key of the app from an
 * imported one, and a synth-check warning acknowledged on the function it is reported on. Prints
 * the version that ran and the stack's messages.
 */
const oldestCdkSynth = `import { createRequire } from 'node:module';
import { Annotations, App, Duration, Stack } from 'aws-cdk-lib';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import { IdempotencyTable } from 'lambda-idempotency/cdk';

const { version } = createRequire(import.meta.url)('aws-cdk-lib/package.json');
const app = new App();
const stack = new Stack(app, 'Oldest');
const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.days(5), encryptionKey: new Key(stack, 'Key') });
const consumer = new LambdaFunction(stack, 'Consumer', {
  runtime: Runtime.NODEJS_22_X,
  handler: 'index.handler',
  code: Code.fromInline('exports.handler = async () => ({});'),
});
consumer.configureAsyncInvoke({ maxEventAge: Duration.hours(1), retryAttempts: 0 });
// Messages kept 4 days, records 5, no dead-letter queue: a warning, which this consumer accepts.
records.attachSqsConsumer(consumer, new Queue(stack, 'Orders', { visibilityTimeout: Duration.minutes(1) }));
Annotations.of(consumer).acknowledgeWarning('lambda-idempotency:queueWithoutDeadLetterQueue', 'failed orders are reconciled daily');
const messages = app.synth().getStackByName(stack.stackName).messages;
console.log(JSON.stringify({ version, messages: messages.map((message) => \`\${message.level} \${message.id}: \${message.entry.data}\`) }));
`;

/** The public entry points: subpath → one export it must provide. */
export const ENTRY_POINTS: Readonly<Record<string, string>> = {
  'lambda-idempotency': 'makeIdempotent',
  'lambda-idempotency/cdk': 'IdempotencyTable',
  'lambda-idempotency/dynamodb': 'DynamoDBStore',
  'lambda-idempotency/middy': 'idempotency',
  'lambda-idempotency/redis': 'RedisStore',
  'lambda-idempotency/testing': 'InMemoryStore',
};

/** Loads every entry point with `import` and with `require()`, and prints the names each exports. */
const loadEntries = `import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const entries = ${JSON.stringify(Object.keys(ENTRY_POINTS))};
const loaded = {};
for (const entry of entries) {
  loaded[entry] = { import: Object.keys(await import(entry)).sort(), require: Object.keys(require(entry)).sort() };
}
console.log(JSON.stringify(loaded));
`;

/** Imports one export of each of `entries`; compiles only while each resolves to a declaration that is not `any`. */
const typedEntries = (entries: readonly string[]) => `${entries.map((entry, i) => `import { ${ENTRY_POINTS[entry]} as E${i} } from '${entry}';`).join('\n')}

type IsAny<T> = 0 extends 1 & T ? true : false;
export const notAny: [${entries.map((_, i) => `IsAny<typeof E${i}>`).join(', ')}] = [${entries.map(() => 'false').join(', ')}];
`;

/** Uses every declaration that names a Lambda type: the middlewares, the batch handler, the testing context. */
const lambdaTypesApp = `import { callerIdentity, httpIdempotency, idempotency, idempotentBatch, makeIdempotent } from 'lambda-idempotency';
import { InMemoryStore, lambdaContext } from 'lambda-idempotency/testing';

const store = new InMemoryStore();
export const http = httpIdempotency({ store });
export const batch = idempotentBatch(async (message: { id: string }) => message.id, { store });
export const middleware = idempotency({ store });
export const wrapped = makeIdempotent(async (id: string) => id, { store, name: 'wrapped' });
export const context = lambdaContext();
export const caller = callerIdentity;
`;

const strict = { target: 'ES2022', strict: true, noEmit: true, types: ['node'] };

/** Every entry point under `moduleResolution` bundler (the CDK one too: its declarations are only parsed, aws-cdk-lib is large). */
const bundlerTsconfig = { compilerOptions: { ...strict, module: 'ESNext', moduleResolution: 'Bundler', skipLibCheck: true }, files: ['bundler.ts'] };

/**
 * The entry points but the CDK one under node16 (from an ES module, as node16 needs), and the
 * library's declarations checked in full against the oldest `@types/aws-lambda` the peer range accepts.
 */
const node16Tsconfig = {
  compilerOptions: {
    ...strict,
    module: 'Node16',
    moduleResolution: 'Node16',
    skipLibCheck: false,
    paths: { 'aws-lambda': ['../oldest-types/node_modules/@types/aws-lambda/index.d.ts'] },
    // Shows which @types/aws-lambda the program used.
    listFiles: true,
  },
  files: ['node16.mts', 'lambda-types.mts'],
};

/**
 * Each declaration file of the tarball checked as a source file (`x.d.ts` copied to `x.ts`, same
 * text, an ES module package like the installed one): `skipLibCheck` then skips only the
 * dependencies' declarations (aws-cdk-lib alone has some 2,600), which the package does not ship,
 * while every name the package's declarations use must still resolve.
 */
const declarationsTsconfig = (files: readonly string[]) => ({
  compilerOptions: { noEmit: true, strict: true, module: 'nodenext', moduleResolution: 'nodenext', types: ['node'], skipLibCheck: true },
  files,
});

/**
 * The TypeScript projects in the consumer, in the order one `tsc -b` compiles them: the
 * declarations first (their test comes first), the handler apps before the checks that only type-check.
 */
export const PROJECTS = {
  declarations: 'declarations-as-sources/tsconfig.json',
  apps: 'tsconfig.json',
  cdk: 'cdk/tsconfig.json',
  bundler: 'entries/tsconfig.bundler.json',
  node16: 'entries/tsconfig.node16.json',
} as const;

function write(dir: string, files: Record<string, string | object>): void {
  for (const [path, content] of Object.entries(files)) {
    const file = join(dir, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, typeof content === 'string' ? content : `${JSON.stringify(content, null, 2)}\n`);
  }
}

/**
 * Writes the apps, and the copies of `declarations` (paths in the installed package), into the
 * consumer project (over any earlier copy).
 */
export function writeConsumerApps(consumer: string, installed: string, declarations: readonly string[]): void {
  const copies = join(consumer, 'declarations-as-sources');
  rmSync(copies, { recursive: true, force: true });
  const sources = declarations.map((path) => {
    const copy = path.replace(/\.d\.ts$/, '.ts');
    mkdirSync(dirname(join(copies, copy)), { recursive: true });
    copyFileSync(join(installed, path), join(copies, copy));
    return copy;
  });
  write(copies, { 'package.json': { private: true, type: 'module' }, 'tsconfig.json': declarationsTsconfig(sources) });
  write(consumer, {
    'tsconfig.json': handlerTsconfig,
    'esm/package.json': { type: 'module' },
    'esm/app.ts': handlerApp('esm-app', "await import(String('lambda-idempotency/cdk'))"),
    'cjs/package.json': { type: 'commonjs' },
    'cjs/app.ts': handlerApp('cjs-app', "require('lambda-idempotency/cdk')"),
    'cdk/package.json': { name: 'payments', version: '0.1.0', bin: { payments: 'bin/payments.js' } },
    'cdk/tsconfig.json': cdkTsconfig,
    'cdk/lib/payments-stack.ts': cdkStack,
    'cdk/bin/payments.ts': cdkBin,
    'entries/package.json': { type: 'module' },
    'entries/load.js': loadEntries,
    'entries/bundler.ts': typedEntries(Object.keys(ENTRY_POINTS)),
    'entries/node16.mts': typedEntries(Object.keys(ENTRY_POINTS).filter((entry) => entry !== 'lambda-idempotency/cdk')),
    'entries/lambda-types.mts': lambdaTypesApp,
    'entries/tsconfig.bundler.json': bundlerTsconfig,
    'entries/tsconfig.node16.json': node16Tsconfig,
    'oldest-cdk/synth.mjs': oldestCdkSynth,
  });
}
