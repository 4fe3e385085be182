/**
 * Lambda's tenant isolation mode: one function serves many tenants, and every invocation carries
 * its tenant's id (`context.tenantId`, and the runtime's invocation store). The records of an
 * invocation are its tenant's own: the same request from another tenant runs and gets its own
 * response, never the first tenant's. Real middy, DynamoDB Local.
 */
import { InvokeStore, InvokeStoreBase } from '@aws/lambda-invoke-store';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { runCli } from '../../lib/cli/run.js';
import { cloudWatchLines, type HttpResult, httpIdempotency, idempotency, idempotentBatch, inspectRecord, makeIdempotent, recordIdOf } from '../../lib/index.js';
import { lambdaContext as testingContext } from '../../lib/testing/index.js';
import { sqsEvent, sqsRecord } from '../support/batch-events.js';
import { endpoint, recordId, useFreshTable } from '../support/dynamodb.js';
import { httpEvent } from '../support/identity-events.js';
import { scanRecords } from '../support/invariants.js';
import { lambdaContext } from '../support/lambda.js';

const { client, tableName, store } = useFreshTable({ prefix: 'tenants' });

/** The context the runtime passes to an invocation of `tenant` (none: a function without tenant isolation). */
const contextOf = (name: string, tenant?: string): Context => ({ ...lambdaContext(name), ...(tenant === undefined ? {} : { tenantId: tenant }) }) as Context;

/** A handler that answers each run with its number, so a replay of another run shows. */
function counted() {
  let runs = 0;
  const handler = middy(async (order: { orderId: string }) => ({ orderId: order.orderId, run: ++runs })).use(idempotency({ store }));
  return { handler, runs: () => runs };
}

test('the same request from two tenants runs once for each, and each tenant’s duplicate replays its own response', async () => {
  const { handler, runs } = counted();
  const order = { orderId: 'o-1' };
  // The testing kit's context, as a user's unit test of a tenant-isolated handler makes it.
  const invoke = (tenantId: string) => handler(order, testingContext({ functionName: 'tenants-middleware', tenantId }));
  expect(await invoke('blue')).toEqual({ orderId: 'o-1', run: 1 });
  expect(await invoke('green')).toEqual({ orderId: 'o-1', run: 2 });
  expect(await invoke('blue')).toEqual({ orderId: 'o-1', run: 1 });
  expect(await invoke('green')).toEqual({ orderId: 'o-1', run: 2 });
  expect(runs()).toBe(2);
  const ids = (await scanRecords(client, tableName, 'tenants-middleware#')).map((record) => record.id).sort();
  expect(ids).toEqual(
    [recordIdOf({ name: 'tenants-middleware', key: order, tenant: 'blue' }), recordIdOf({ name: 'tenants-middleware', key: order, tenant: 'green' })].sort(),
  );
  expect(ids).not.toContain(recordId('tenants-middleware', order));
});

test('without a tenant, the record key is what it always was: records written before keep answering', async () => {
  const { handler } = counted();
  await handler({ orderId: 'o-1' }, contextOf('tenants-none'));
  await handler({ orderId: 'o-1' }, contextOf('tenants-none', ''));
  expect((await scanRecords(client, tableName, 'tenants-none#')).map((record) => record.id)).toEqual([recordId('tenants-none', { orderId: 'o-1' })]);
});

test('tenant ids are kept apart exactly: no tenant’s records are another’s, whatever the ids hold', async () => {
  const { handler, runs } = counted();
  const tenants = ['a', 'a:', 'a\u0000', 'b', 'B', 'a'.repeat(256)];
  for (const tenant of tenants) await handler({ orderId: 'o-1' }, contextOf('tenants-exact', tenant));
  await handler({ orderId: 'o-1' }, contextOf('tenants-exact'));
  expect(runs()).toBe(tenants.length + 1);
});

test('httpIdempotency: one Idempotency-Key and body sent by two tenants are two requests', async () => {
  let runs = 0;
  const handler = middy(async (): Promise<HttpResult> => ({ statusCode: 201, body: JSON.stringify({ run: ++runs }) })).use(httpIdempotency({ store }));
  const event = httpEvent('http', {}, { key: 'k-1' });
  const send = (tenant: string) => handler(event, contextOf('tenants-http', tenant)) as Promise<HttpResult>;
  expect((await send('blue')).body).toBe('{"run":1}');
  expect((await send('green')).body).toBe('{"run":2}');
  const replay = await send('blue');
  expect(replay.body).toBe('{"run":1}');
  expect(replay.headers?.['Idempotent-Replayed']).toBe('true');
});

test('idempotentBatch: one message delivered to two tenants runs once for each, and a redelivery to either runs nothing again', async () => {
  const runs: string[] = [];
  const handler = idempotentBatch(async (order: { orderId: string }, _record, context) => void runs.push(`${order.orderId} ${context.tenantId}`), {
    store,
    key: (order) => order.orderId,
  });
  const event = sqsEvent([sqsRecord({ orderId: 'o-1' })]);
  const deliver = (tenant: string) => handler(event, contextOf('tenants-batch', tenant));
  for (const tenant of ['blue', 'green', 'blue', 'green']) expect(await deliver(tenant)).toEqual({ batchItemFailures: [] });
  expect(runs).toEqual(['o-1 blue', 'o-1 green']);
  const ids = (await scanRecords(client, tableName, 'tenants-batch#')).map((record) => record.id).sort();
  expect(ids).toEqual(
    [recordIdOf({ name: 'tenants-batch', key: 'o-1', tenant: 'blue' }), recordIdOf({ name: 'tenants-batch', key: 'o-1', tenant: 'green' })].sort(),
  );
});

test('makeIdempotent called without a context takes the tenant from the runtime’s invocation store', async () => {
  const invokeStore = await InvokeStore.getInstanceAsync();
  let runs = 0;
  const charge = makeIdempotent(async (payment: { paymentId: string }) => ({ paymentId: payment.paymentId, run: ++runs }), {
    store,
    name: 'tenants-wrapper',
    key: (payment) => payment.paymentId,
  });
  /** An invocation as the runtime starts it: the tenant id in the store for the handler's run. */
  const invocation = <T>(tenant: string | undefined, fn: () => Promise<T>) =>
    invokeStore.run(
      { [InvokeStoreBase.PROTECTED_KEYS.REQUEST_ID]: 'r', ...(tenant === undefined ? {} : { [InvokeStoreBase.PROTECTED_KEYS.TENANT_ID]: tenant }) },
      fn,
    );
  try {
    expect(await invocation('blue', () => charge({ paymentId: 'p-1' }))).toEqual({ paymentId: 'p-1', run: 1 });
    expect(await invocation('green', () => charge({ paymentId: 'p-1' }))).toEqual({ paymentId: 'p-1', run: 2 });
    expect(await invocation('blue', () => charge({ paymentId: 'p-1' }))).toEqual({ paymentId: 'p-1', run: 1 });
    expect(await invocation(undefined, () => charge({ paymentId: 'p-1' }))).toEqual({ paymentId: 'p-1', run: 3 });
  } finally {
    await invocation(undefined, async () => undefined);
  }
  expect(await inspectRecord({ store, name: 'tenants-wrapper', key: 'p-1', tenant: 'green' })).toMatchObject({ status: 'COMPLETED' });
});

test('a call without a context nested in a tenant’s call is that tenant’s, also when the runtime’s invocation store holds no tenant id', async () => {
  // aws-lambda-ric 4.0.2 runs each invocation in the invocation store with its request id and trace
  // id only: the tenant id is on the context alone.
  const invokeStore = await InvokeStore.getInstanceAsync();
  let charges = 0;
  let entered = (): void => undefined;
  const charge = makeIdempotent(
    async (payment: { paymentId: string }) => {
      const charged = { paymentId: payment.paymentId, charge: ++charges };
      await entered();
      return charged;
    },
    { store, name: 'tenants-nested-charge', key: (payment) => payment.paymentId },
  );
  const handler = middy(async (order: { orderId: string; paymentId: string }) => charge({ paymentId: order.paymentId })).use(idempotency({ store }));
  const invoke = (tenant: string, paymentId = 'p-1') =>
    invokeStore.run({ [InvokeStoreBase.PROTECTED_KEYS.REQUEST_ID]: `r-${tenant}` }, () =>
      handler({ orderId: `o-${paymentId}`, paymentId }, contextOf('tenants-nested', tenant)),
    );
  expect(await invoke('blue')).toEqual({ paymentId: 'p-1', charge: 1 });
  // Keyed without the tenant, green's charge met blue's record and was answered with blue's charge.
  expect(await invoke('green')).toEqual({ paymentId: 'p-1', charge: 2 });
  expect(await invoke('blue')).toEqual({ paymentId: 'p-1', charge: 1 });
  expect(await inspectRecord({ store, name: 'tenants-nested-charge', key: 'p-1' })).toBeUndefined();
  expect(await inspectRecord({ store, name: 'tenants-nested-charge', key: 'p-1', tenant: 'green' })).toMatchObject({ status: 'COMPLETED' });

  // Two tenants' invocations at once in one process (Managed Instances): each charge runs while the
  // other's runs too, and neither follows the other's.
  const both = new Promise<void>((resolve) => {
    let waiting = 2;
    entered = () => (--waiting === 0 ? resolve() : both);
  });
  const answers = await Promise.all([invoke('blue', 'p-2'), invoke('green', 'p-2')]);
  expect(answers.map((answer) => answer.charge).sort()).toEqual([3, 4]);
});

test('operators address a tenant’s record with `tenant` (and the CLI with --tenant)', async () => {
  const { handler } = counted();
  await handler({ orderId: 'o-9' }, contextOf('tenants-ops', 'blue'));
  expect(await inspectRecord({ store, name: 'tenants-ops', key: { orderId: 'o-9' }, tenant: 'blue' })).toMatchObject({ status: 'COMPLETED' });
  expect(await inspectRecord({ store, name: 'tenants-ops', key: { orderId: 'o-9' } })).toBeUndefined();
  expect(() => recordIdOf({ name: 'tenants-ops', key: 'o-9', tenant: '' })).toThrow('`tenant` must be a non-empty string when given, without lone surrogates.');

  // The command's SDK client finds DynamoDB Local as it would in a shell: through the environment.
  const environment = { AWS_ENDPOINT_URL_DYNAMODB: endpoint(), AWS_REGION: 'local', AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local' };
  const run = async (...argv: string[]) => {
    const saved = { ...process.env };
    Object.assign(process.env, environment);
    const out = { code: 0, stdout: '', stderr: '' };
    try {
      out.code = await runCli(argv, {
        env: environment,
        now: Date.now,
        stdout: (text) => void (out.stdout += text),
        stderr: (text) => void (out.stderr += text),
      });
    } finally {
      for (const name of Object.keys(environment)) if (saved[name] === undefined) delete process.env[name];
      Object.assign(process.env, saved);
    }
    return out;
  };
  const found = await run('inspect', '--table', tableName, '--name', 'tenants-ops', '--key', '{"orderId":"o-9"}', '--tenant', 'blue', '--json');
  expect(found).toMatchObject({ code: 0, stderr: '' });
  expect(JSON.parse(found.stdout)).toMatchObject({ key: recordIdOf({ name: 'tenants-ops', key: { orderId: 'o-9' }, tenant: 'blue' }), status: 'COMPLETED' });
  expect((await run('inspect', '--table', tableName, '--name', 'tenants-ops', '--key', '{"orderId":"o-9"}', '--json')).code).toBe(3);
  expect((await run('inspect', '--table', tableName, '--id', 'n#h', '--tenant', 'blue')).stderr).toMatch(
    /^lambda-idempotency: `--id` already holds the tenant: leave out --tenant\./,
  );
});

test('a tenant id with a lone surrogate is refused (INVALID_KEY), never hashed as the tenant whose id holds U+FFFD there', async () => {
  const { handler, runs } = counted();
  expect(await handler({ orderId: 'o-1' }, contextOf('tenants-surrogate', 'a\ufffd'))).toEqual({ orderId: 'o-1', run: 1 });
  // UTF-8 writes a lone surrogate as U+FFFD: hashed, the two ids would be one tenant.
  await expect(handler({ orderId: 'o-1' }, contextOf('tenants-surrogate', 'a\ud800'))).rejects.toMatchObject({ code: 'INVALID_KEY' });
  await expect(handler({ orderId: 'o-1' }, contextOf('tenants-surrogate', 'a\udc00b'))).rejects.toMatchObject({ code: 'INVALID_KEY' });
  expect(runs()).toBe(1);
  // A well-formed id with an astral character (a surrogate pair) is a tenant like any other.
  expect(await handler({ orderId: 'o-1' }, contextOf('tenants-surrogate', 'a\u{1F600}'))).toEqual({ orderId: 'o-1', run: 2 });
  expect(() => recordIdOf({ name: 'tenants-surrogate', key: 'o-1', tenant: 'a\ud800' })).toThrow(
    '`tenant` must be a non-empty string when given, without lone surrogates.',
  );
});

test('namespaces with a lone surrogate are refused at construction: DynamoDB writes one as ?, so two names would share records', async () => {
  let runs = 0;
  const fn = async () => ++runs;
  const first = makeIdempotent(fn, { store, name: 'surrogate-?', key: () => 'k' });
  expect(await first('a')).toBe(1);
  // Accepted, this namespace met the record of 'surrogate-?' and replayed its answer without running.
  expect(() => makeIdempotent(fn, { store, name: 'surrogate-\ud800', key: () => 'k' })).toThrow(
    /^makeIdempotent: `name` must be a non-empty string without '#', at most 2,004 bytes of UTF-8, without lone surrogates/,
  );
  expect(() => middy(fn).use(idempotency({ store, name: 'surrogate-\udfff' }))).toThrow(TypeError);
  expect(() => recordIdOf({ name: 'surrogate-\ud800', key: 'k' })).toThrow(TypeError);
  // A well-formed name with an astral character (a surrogate pair) is a namespace like any other.
  expect(await makeIdempotent(fn, { store, name: 'surrogate-\u{1F600}', key: () => 'k' })('a')).toBe(2);
});

test('metrics of a tenant-isolated function have its name as their one dimension, never a tenant id: one series per event for every tenant', async () => {
  const lines: string[] = [];
  const handler = middy(async (order: { orderId: string }) => order.orderId).use(
    idempotency({ store, observability: cloudWatchLines({ logs: true, write: (line) => void lines.push(line) }) }),
  );
  for (const tenant of ['tenant-blue', 'tenant-green']) await handler({ orderId: 'o-1' }, contextOf('tenants-metrics', tenant));
  const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown> & { _aws?: { CloudWatchMetrics: Array<{ Dimensions: string[][] }> } });
  const metrics = parsed.filter((line) => line._aws !== undefined);
  expect(metrics.map((line) => [line._aws!.CloudWatchMetrics[0]!.Dimensions, line.Function, line.Misses])).toEqual([
    [[['Function']], 'tenants-metrics', 1],
    [[['Function']], 'tenants-metrics', 1],
  ]);
  for (const line of lines) expect(line).not.toContain('tenant-');
  // The log lines tell the tenants' records apart by their ids, which --tenant finds.
  expect(parsed.filter((line) => line._aws === undefined).map((line) => line.recordId)).toEqual([
    recordIdOf({ name: 'tenants-metrics', key: { orderId: 'o-1' }, tenant: 'tenant-blue' }),
    recordIdOf({ name: 'tenants-metrics', key: { orderId: 'o-1' }, tenant: 'tenant-green' }),
  ]);
});

test('inside a durable execution the tenant is read from the Lambda context the durable context carries', async () => {
  let runs = 0;
  const charge = makeIdempotent(async (order: { orderId: string }, _ctx: object) => ({ orderId: order.orderId, run: ++runs }), {
    store,
    name: 'tenants-durable',
  });
  const durableContext = (tenant: string) => ({
    executionContext: { durableExecutionArn: `arn:aws:lambda:eu-west-1:123456789012:function:tenants-durable:$LATEST/durable-execution/${tenant}/1` },
    step: async () => undefined,
    lambdaContext: contextOf('tenants-durable', tenant),
  });
  expect(await charge({ orderId: 'o-1' }, durableContext('blue'))).toEqual({ orderId: 'o-1', run: 1 });
  expect(await charge({ orderId: 'o-1' }, durableContext('green'))).toEqual({ orderId: 'o-1', run: 2 });
  const ids = (await scanRecords(client, tableName, 'tenants-durable#')).map((record) => record.id).sort();
  expect(ids).toEqual(
    [
      recordIdOf({ name: 'tenants-durable', key: { orderId: 'o-1' }, tenant: 'blue' }),
      recordIdOf({ name: 'tenants-durable', key: { orderId: 'o-1' }, tenant: 'green' }),
    ].sort(),
  );
});
