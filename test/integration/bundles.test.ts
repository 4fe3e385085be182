/**
 * End to end: `cdk synth` of the app (the CLI and cdk.json, as a user runs it) into a directory
 * inside the repository, then the bundled function assets, found through the cloud assembly's
 * manifests, run in a fresh Node process each against DynamoDB Local. The bundles leave the AWS SDK
 * external, so it resolves from node_modules as the Lambda runtime provides it.
 */

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { APIGatewayProxyStructuredResultV2, SQSRecord } from 'aws-lambda';
import { toHttpApiEvent } from '../../demo/http-event.js';
import { createDemoTables, type DemoTables, dropDemoTables } from '../../demo/scenarios.js';
import { LOCAL_CREDENTIALS } from '../../tools/dynamodb-local.js';
import { endpoint, testClient } from '../support/dynamodb.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const STACK = 'PaymentsDemo';

interface Bundle {
  readonly file: string;
  readonly environment: Record<string, unknown>;
  readonly runtime: string;
  readonly architectures: string[];
}

const client = testClient();
let outdir: string;
let tables: DemoTables;
let bundles: Record<'payment' | 'consumer', Bundle>;
let logicalIds: Record<string, string>;

/** Reads the cloud assembly: stack template, construct path → logical id, asset hash → asset directory. */
function readAssembly(dir: string) {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  const stack = manifest.artifacts[STACK];
  expect(stack?.type).toBe('aws:cloudformation:stack');
  const template = JSON.parse(readFileSync(join(dir, stack.properties.templateFile), 'utf8'));
  // Construct metadata sits in the manifest or, in newer assemblies, in the file it names.
  const metadata: Record<string, Array<{ type: string; data: string }>> = {
    ...stack.metadata,
    ...(stack.additionalMetadataFile ? JSON.parse(readFileSync(join(dir, stack.additionalMetadataFile), 'utf8')) : {}),
  };
  const ids: Record<string, string> = {};
  for (const [path, entries] of Object.entries(metadata)) {
    for (const entry of entries) if (entry.type === 'aws:cdk:logicalId') ids[path] = entry.data;
  }
  const assetArtifact = (stack.dependencies as string[]).map((name) => manifest.artifacts[name]).find((a) => a.type === 'cdk:asset-manifest');
  const assets = JSON.parse(readFileSync(join(dir, assetArtifact.properties.file), 'utf8'));
  return { template, ids, assets };
}

function bundleOf(assembly: ReturnType<typeof readAssembly>, constructPath: string): Bundle {
  const logicalId = assembly.ids[`/${STACK}/${constructPath}/Resource`];
  expect(logicalId).toBeDefined();
  const fn = assembly.template.Resources[logicalId!];
  expect(fn.Type).toBe('AWS::Lambda::Function');
  const hash = String(fn.Properties.Code.S3Key).replace(/\.zip$/, '');
  const source = assembly.assets.files[hash]?.source;
  expect(source?.packaging).toBe('zip');
  const [module, exportName] = String(fn.Properties.Handler).split('.');
  expect(exportName).toBe('handler');
  const file = join(outdir, source.path, `${module}.mjs`);
  expect(existsSync(file)).toBe(true);
  return { file, environment: fn.Properties.Environment.Variables, runtime: fn.Properties.Runtime, architectures: fn.Properties.Architectures };
}

/** The function's environment as the stack sets it, with table references pointing at the local tables. */
function environmentOf(bundle: Bundle): Record<string, string> {
  const tableFor: Record<string, string> = {
    [logicalIds.idempotency!]: tables.idempotencyTable,
    [logicalIds.payments!]: tables.paymentsTable,
  };
  return Object.fromEntries(
    Object.entries(bundle.environment).map(([name, value]) => {
      if (typeof value === 'string') return [name, value];
      const ref = (value as { Ref?: string }).Ref;
      if (ref === undefined || tableFor[ref] === undefined) throw new Error(`unexpected value of ${name}: ${JSON.stringify(value)}`);
      return [name, tableFor[ref]];
    }),
  );
}

/** Invokes the bundle's handler with each event in turn, in a fresh Node process, as the Lambda runtime would. */
async function invoke(bundle: Bundle, functionName: string, events: unknown[]): Promise<unknown[]> {
  const script = `
    const { handler } = await import(process.env.BUNDLE_URL);
    const results = [];
    for (const event of JSON.parse(process.env.EVENTS)) {
      const deadline = Date.now() + 10000;
      const context = { functionName: process.env.AWS_LAMBDA_FUNCTION_NAME, awsRequestId: crypto.randomUUID(), getRemainingTimeInMillis: () => deadline - Date.now() };
      results.push(await handler(event, context));
    }
    process.stdout.write(JSON.stringify(results));
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '--eval', script], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      ...environmentOf(bundle),
      BUNDLE_URL: pathToFileURL(bundle.file).href,
      EVENTS: JSON.stringify(events),
      AWS_LAMBDA_FUNCTION_NAME: functionName,
      AWS_REGION: 'eu-west-1',
      AWS_ENDPOINT_URL_DYNAMODB: endpoint(),
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
  });
  // Before the results, the handlers write their EMF metric lines to stdout, as Lambda expects them.
  return JSON.parse(stdout.slice(stdout.lastIndexOf('\n') + 1));
}

beforeAll(async () => {
  mkdirSync(join(root, 'cdk.out'), { recursive: true });
  outdir = mkdtempSync(join(root, 'cdk.out', 'bundles-test-'));
  tables = await createDemoTables(client, 'bundles');
  // The synth a user runs, with CDK's CloudFormation validation (test/support/setup-env.ts turns it off in process).
  const { CDK_VALIDATION: _, ...env } = process.env;
  await run(process.execPath, [join(root, 'node_modules/aws-cdk/bin/cdk'), 'synth', '--quiet', '--output', outdir], {
    cwd: root,
    env: { ...env, CDK_DISABLE_CLI_TELEMETRY: '1' },
  });
  const assembly = readAssembly(outdir);
  logicalIds = {
    idempotency: assembly.ids[`/${STACK}/Idempotency/Table/Resource`]!,
    payments: assembly.ids[`/${STACK}/Payments/Resource`]!,
  };
  bundles = { payment: bundleOf(assembly, 'PaymentFunction'), consumer: bundleOf(assembly, 'ConsumerFunction') };
}, 240_000);

afterAll(async () => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
  if (tables) await dropDemoTables(client, tables);
  client.destroy();
});

test.each(['payment', 'consumer'] as const)(
  'the %s bundle is one ESM file for Node.js 24 on arm64 that imports only the AWS SDK and Node built-ins',
  (name) => {
    const bundle = bundles[name];
    expect(bundle.runtime).toBe('nodejs24.x');
    expect(bundle.architectures).toEqual(['arm64']);
    const code = readFileSync(bundle.file, 'utf8');
    // Not a string "from" or "import" (a list of option names), whose closing quote would read as an import's opening one.
    const specifiers = [...code.matchAll(/(?<!")(?:\bfrom|\bimport)\s*\(?\s*"([^"]+)"/g)].map((m) => m[1]!);
    expect(specifiers).toContain('@aws-sdk/client-dynamodb');
    for (const specifier of specifiers) expect(specifier).toMatch(/^(@aws-sdk\/|node:|(crypto|zlib|async_hooks|stream|timers|util|events|buffer)$)/);
    expect(code).not.toMatch(/require\(["']@middy/); // middy and the library are inside the bundle
  },
);

test('the payment bundle charges once per Idempotency-Key and refunds once', async () => {
  const key = `bundle-${randomUUID()}`;
  const body = JSON.stringify({ amount: 2_500, currency: 'EUR' });
  const post = (url: string, idempotencyKey: string, payload: string) =>
    toHttpApiEvent({ method: 'POST', url, headers: { 'idempotency-key': idempotencyKey, 'content-type': 'application/json' }, body: payload });
  const [created, replayed, mismatch] = (await invoke(bundles.payment, 'payment-bundle', [
    post('/payments', key, body),
    post('/payments', key, body),
    post('/payments', key, JSON.stringify({ amount: 9_999, currency: 'EUR' })),
  ])) as APIGatewayProxyStructuredResultV2[];
  expect(created!.statusCode).toBe(201);
  expect(replayed).toMatchObject({ statusCode: 201, headers: { 'Idempotent-Replayed': 'true' }, body: created!.body });
  expect(mismatch!.statusCode).toBe(422);
  const paymentId = JSON.parse(created!.body!).paymentId as string;

  // A second process (a new execution environment) replays the refund the first one made.
  const refund = post(`/payments/${paymentId}/refunds`, `${key}-refund`, JSON.stringify({ amount: 1_000 }));
  const [first] = (await invoke(bundles.payment, 'payment-bundle', [refund])) as APIGatewayProxyStructuredResultV2[];
  const [again] = (await invoke(bundles.payment, 'payment-bundle', [refund])) as APIGatewayProxyStructuredResultV2[];
  expect(first!.statusCode).toBe(201);
  expect(again).toMatchObject({ statusCode: 201, headers: { 'Idempotent-Replayed': 'true' }, body: first!.body });

  const payments = await scan(tables.paymentsTable);
  const payment = payments.find((p) => p.paymentId === paymentId);
  expect(payment).toMatchObject({ amount: 2_500, refundedAmount: 1_000, refundableAmount: 1_500, status: 'PARTIALLY_REFUNDED' });
  const records = await scan(tables.idempotencyTable);
  expect(records.filter((r) => String(r.id).startsWith('payments-api#') && r.status === 'COMPLETED').length).toBeGreaterThanOrEqual(2);
});

test('the consumer bundle charges each order once and reports the poison message', async () => {
  const orderId = `bundle-order-${randomUUID()}`;
  const record = (body: string): SQSRecord => ({
    messageId: randomUUID(),
    receiptHandle: 'rh',
    body,
    attributes: { ApproximateReceiveCount: '1', SentTimestamp: '0', SenderId: 'test', ApproximateFirstReceiveTimestamp: '0' },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:orders',
    awsRegion: 'eu-west-1',
  });
  const order = JSON.stringify({ orderId, amount: 700, currency: 'EUR' });
  const poison = record('not json');
  const batch = { Records: [record(order), record(order), poison] };
  const [first, redelivered] = (await invoke(bundles.consumer, 'consumer-bundle', [batch, batch])) as Array<{
    batchItemFailures: Array<{ itemIdentifier: string }>;
  }>;
  expect(first).toEqual({ batchItemFailures: [{ itemIdentifier: poison.messageId }] });
  expect(redelivered).toEqual({ batchItemFailures: [{ itemIdentifier: poison.messageId }] });
  // The order's own item (`order#…`, which payment pays it) names the order too: count the payments.
  const charged = (await scan(tables.paymentsTable)).filter((p) => p.orderId === orderId && p.chargeId !== undefined);
  expect(charged).toHaveLength(1);
});

async function scan(TableName: string): Promise<Array<Record<string, unknown>>> {
  const out = await client.send(new ScanCommand({ TableName, ConsistentRead: true }));
  return (out.Items ?? []).map((item) => unmarshall(item));
}
