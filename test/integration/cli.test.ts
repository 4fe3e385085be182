/**
 * The `lambda-idempotency` command against DynamoDB Local, which it finds through the SDK's own
 * `AWS_ENDPOINT_URL_DYNAMODB`. Most runs are in this process (test/support/cli-in-process.ts, with
 * the environment a shell would give it); a child process of the command built from source once for
 * the file (test/support/cli-bundle.ts) runs each command end to end, and whatever is the process's
 * own: exit codes as a shell sees them, a closed pipe, a request that never answers, the
 * credentials and Region the SDK finds in the environment and the AWS files.
 */

import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { IdempotencyConfig, makeIdempotent as powertoolsIdempotent } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { type AttributeValue, DeleteItemCommand, DynamoDBClient, GetItemCommand, PutItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { jest } from '@jest/globals';
import middy from '@middy/core';
import { runCli } from '../../lib/cli/run.js';
import { stuckRecords } from '../../lib/cli/stuck.js';
import { DEFAULT_ATTRIBUTE_NAMES } from '../../lib/dynamodb-store.js';
import { callerIdentity, DynamoDBStore, httpIdempotency, makeIdempotent, type RecordSummary, recordIdOf } from '../../lib/index.js';
import { useCliBundle } from '../support/cli-bundle.js';
import { localCliEnvironment, type Run, runInProcess } from '../support/cli-in-process.js';
import { dropTable, endpoint, freshTable, readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { faultyClient } from '../support/faults.js';
import type { Turnstile } from '../support/gate.js';
import { completedPastRetention, heldRetries } from '../support/held-retries.js';
import { aesKey, keyring } from '../support/keyring.js';
import { lambdaContext } from '../support/lambda.js';
import { serviceError } from '../support/mocked-dynamodb.js';
import { paymentRequest } from '../support/payment-request.js';
import { rejection } from '../support/rejections.js';
import { TcpProxy } from '../support/tcp-proxy.js';

const { client, tableName, store } = useFreshTable({ prefix: 'cli' });
const main = useCliBundle();

/** Runs the CLI (in this process) with credentials and region for DynamoDB Local, and nothing else from this process's AWS settings. */
function cli(...args: string[]): Promise<Run> {
  return cliWith({}, ...args);
}

/** The CLI in this process, its environment with these variables changed (`undefined` removes one). */
function cliWith(changes: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> {
  return runInProcess(localCliEnvironment(changes), undefined, args);
}

/** The CLI as a child process, as a shell runs it, with these variables changed (`undefined` removes one). */
function cliProcess(changes: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [main(), ...args], { env: localCliEnvironment(changes) }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

function counted(name: string) {
  let runs = 0;
  const once = makeIdempotent(
    async (order: { orderId: string }) => {
      runs++;
      return { paymentId: `p-${order.orderId}` };
    },
    { store, name, key: (order) => order.orderId, fingerprint: (order) => order },
  );
  return { once, runs: () => runs };
}

test('inspect prints a record, as text and as JSON; an unknown key exits 3; a failing request exits 1', async () => {
  const { once } = counted('cli-inspect');
  await once({ orderId: 'o-1' });
  const id = recordId('cli-inspect', 'o-1');
  const [text, asJson, byId, missing, noTable] = await Promise.all([
    cliProcess({}, 'inspect', '--table', tableName, '--name', 'cli-inspect', '--key', '"o-1"'),
    cliProcess({}, 'inspect', '--table', tableName, '--name', 'cli-inspect', '--key', '"o-1"', '--json'),
    cliProcess({}, 'inspect', '--table', tableName, '--id', id, '--json'),
    cliProcess({}, 'inspect', '--table', tableName, '--name', 'cli-inspect', '--key', '"o-2"', '--json'),
    cliProcess({}, 'inspect', '--table', 'no-such-table', '--id', id),
  ]);
  expect(text).toMatchObject({ code: 0, stderr: '' });
  const responseBytes = JSON.stringify({ paymentId: 'p-o-1' }).length;
  expect(text.stdout).toMatch(
    new RegExp(
      `^${id.replace(/[+]/g, '\\+')}\n  status +COMPLETED\n  expires +\\S+Z \\(in 2[34] h\\)\n  lease +none\n  fingerprint +stored\n  response +${responseBytes} bytes\n  final error +none\n$`,
    ),
  );

  expect(asJson.code).toBe(0);
  const summary = JSON.parse(asJson.stdout) as RecordSummary;
  expect(summary).toEqual(await store.inspect(id));
  expect(summary).toMatchObject({ key: id, status: 'COMPLETED', hasFingerprint: true, responseBytes });
  expect(JSON.parse(byId.stdout)).toEqual(summary);

  expect(missing).toEqual({ code: 3, stdout: 'null\n', stderr: '' });
  expect(noTable.code).toBe(1);
  // DynamoDB's message names neither the table nor the Region: the command does.
  expect(noTable.stderr).toMatch(
    /^lambda-idempotency: ResourceNotFoundException: .+ \(table no-such-table in local\): check --table, --region and --profile\.\n$/,
  );
});

test("forget that deletes without reading first (--only-if COMPLETED, --lease-until) reports a failing request as inspect does: DynamoDB's error and what to check, exit 1", async () => {
  const id = recordId('cli-forget-no-table', 'o-1');
  const runs = await Promise.all([
    cli('forget', '--table', 'no-such-table', '--id', id, '--only-if', 'COMPLETED', '--yes'),
    cli('forget', '--table', 'no-such-table', '--id', id, '--lease-until', '2026-12-02T16:08:35.123Z', '--yes'),
  ]);
  for (const run of runs) {
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr: expect.stringMatching(
        /^lambda-idempotency: ResourceNotFoundException: .+ \(table no-such-table in local\): check --table, --region and --profile\.\n$/,
      ),
    });
  }
});

test('inspect names the key that sealed a record, as text and as JSON, so an operator can tell the records a rotation has not reached yet', async () => {
  const ring = keyring(aesKey('k-2024'));
  const sealing = new DynamoDBStore({ tableName, client, encryption: ring.encryption });
  const once = makeIdempotent(async (id: string) => ({ id }), { store: sealing, name: 'cli-sealed' });
  await once('old');
  ring.rotate(aesKey('k-2025'));
  await once('new');
  const [oldText, oldJson, newJson] = await Promise.all([
    cli('inspect', '--table', tableName, '--id', recordId('cli-sealed', 'old')),
    cli('inspect', '--table', tableName, '--id', recordId('cli-sealed', 'old'), '--json'),
    cli('inspect', '--table', tableName, '--id', recordId('cli-sealed', 'new'), '--json'),
  ]);
  expect(oldText).toMatchObject({ code: 0, stderr: '' });
  expect(oldText.stdout).toMatch(/\n {2}final error +none\n {2}sealed with {2}key `k-2024`\n$/);
  expect(JSON.parse(oldJson.stdout)).toMatchObject({ status: 'COMPLETED', keyId: 'k-2024' });
  expect(JSON.parse(newJson.stdout)).toMatchObject({ status: 'COMPLETED', keyId: 'k-2025' });
});

test('a DynamoDB that never answers fails the command (exit 1, TimeoutError) instead of hanging it', async () => {
  const proxy = await TcpProxy.start(Number(new URL(endpoint()).port));
  try {
    proxy.stall();
    // Without a bound on each attempt the command waits forever. One attempt (AWS_MAX_ATTEMPTS, which the
    // SDK reads as a user's shell sets it) shows the bound as well as the default three, in a third of the time.
    const run = await cliProcess(
      { AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${proxy.port}`, AWS_MAX_ATTEMPTS: '1' },
      'inspect',
      '--table',
      tableName,
      '--id',
      recordId('cli-hang', 'o-1'),
    );
    expect(run).toEqual({ code: 1, stdout: '', stderr: expect.stringMatching(/^lambda-idempotency: TimeoutError: /) });
  } finally {
    await proxy.cut();
  }
}, 30_000);

test('no credentials, or no Region: exit 1 with what to give', async () => {
  // Nothing to find: no keys in the environment, no shared files, no instance metadata.
  const nowhere = { AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials', AWS_CONFIG_FILE: '/nonexistent/config', AWS_EC2_METADATA_DISABLED: 'true' };
  const address = ['inspect', '--table', tableName, '--id', recordId('cli-setup', 'o-1')];
  const [noCredentials, noProfile, noEnvProfile, noRegion] = await Promise.all([
    cliProcess({ ...nowhere, AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined }, ...address),
    cliProcess({ ...nowhere, AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined }, ...address, '--profile', 'nope'),
    // A profile set in the environment is the one to check, not one to set.
    cliProcess({ ...nowhere, AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_PROFILE: 'nope' }, ...address),
    cliProcess({ ...nowhere, AWS_REGION: undefined }, ...address),
  ]);
  const hints = [
    ': give --profile, or set AWS_PROFILE or credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) in the environment.\n',
    ': check that the profile nope exists in the AWS config or credentials file, with credentials.\n',
    ': check that the profile nope (AWS_PROFILE) exists in the AWS config or credentials file, with credentials.\n',
  ];
  for (const [index, run] of [noCredentials, noProfile, noEnvProfile].entries()) {
    expect(run).toEqual({ code: 1, stdout: '', stderr: expect.stringMatching(/^lambda-idempotency: CredentialsProviderError: /) });
    expect(run.stderr.endsWith(hints[index]!)).toBe(true);
  }
  expect(noRegion).toEqual({ code: 1, stdout: '', stderr: 'lambda-idempotency: Region is missing: give --region or set AWS_REGION.\n' });
  // A Region the SDK refuses to build a host name from, wherever it came from, gets the same advice.
  const refused = await Promise.all([cliProcess({ AWS_REGION: 'us east' }, ...address), cliProcess({}, ...address, '--region', 'eu_west_1')]);
  expect(refused).toEqual(
    ['us east', 'eu_west_1'].map((region) => ({
      code: 1,
      stdout: '',
      stderr: `lambda-idempotency: Region not accepted: region="${region}" is not a valid hostname component. Give --region or set AWS_REGION to a Region's name, such as us-east-1.\n`,
    })),
  );
});

test('an endpoint URL without its scheme (localhost:8000) is a usage error that names the variable, before any request', async () => {
  // Read as a URL of scheme `localhost:`, the SDK would send the request to port 80 of this host, and report what answers there.
  const local = new URL(endpoint()).host;
  const address = ['inspect', '--table', tableName, '--id', recordId('cli-endpoint', 'o-1')];
  const [service, anyService, ip, ignored] = await Promise.all([
    cliWith({ AWS_ENDPOINT_URL_DYNAMODB: `localhost:${new URL(endpoint()).port}` }, ...address),
    cliWith({ AWS_ENDPOINT_URL_DYNAMODB: undefined, AWS_ENDPOINT_URL: 'localhost:8000' }, ...address),
    cliWith({ AWS_ENDPOINT_URL_DYNAMODB: local }, ...address),
    // Configured endpoints the SDK is told to ignore are not its to check.
    cliWith(
      { AWS_ENDPOINT_URL: 'localhost:8000', AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true', AWS_ENDPOINT_URL_DYNAMODB: undefined, AWS_REGION: 'local' },
      ...address,
    ),
  ]);
  expect(service).toEqual({
    code: 2,
    stdout: '',
    stderr: `lambda-idempotency: AWS_ENDPOINT_URL_DYNAMODB "localhost:${new URL(endpoint()).port}" is not an http:// or https:// URL: give it with its scheme, e.g. http://localhost:${new URL(endpoint()).port}.\nRun \`lambda-idempotency --help\` for usage.\n`,
  });
  expect(anyService.stderr.split('\n')[0]).toBe(
    'lambda-idempotency: AWS_ENDPOINT_URL "localhost:8000" is not an http:// or https:// URL: give it with its scheme, e.g. http://localhost:8000.',
  );
  expect(ip.stderr.split('\n')[0]).toBe(
    `lambda-idempotency: AWS_ENDPOINT_URL_DYNAMODB "${local}" is not an http:// or https:// URL: give it with its scheme, e.g. http://${local}.`,
  );
  expect(ip.code).toBe(2);
  // Region `local` alone is DynamoDB Local at localhost:8000 for the SDK: the request is sent there, whatever answers it.
  expect(ignored.code).not.toBe(2);
});

test("a table given by its ARN is read in the ARN's Region, without --region or AWS_REGION", async () => {
  const { once } = counted('cli-arn');
  await once({ orderId: 'o-1' });
  const arn = `arn:aws:dynamodb:local:000000000000:table/${tableName}`;
  const [run, missing] = await Promise.all([
    cliWith({ AWS_REGION: undefined }, 'inspect', '--table', arn, '--name', 'cli-arn', '--key', '"o-1"', '--json'),
    cliWith({ AWS_REGION: undefined }, 'inspect', '--table', 'arn:aws:dynamodb:eu-west-3:000000000000:table/missing', '--id', 'n#h'),
  ]);
  expect(run).toMatchObject({ code: 0, stderr: '' });
  expect(JSON.parse(run.stdout)).toMatchObject({ status: 'COMPLETED' });
  // A table missing there is reported in the ARN's Region, the one the request went to.
  expect(missing).toEqual({
    code: 1,
    stdout: '',
    stderr: expect.stringMatching(/\(table arn:aws:dynamodb:eu-west-3:000000000000:table\/missing in eu-west-3\): check --table, --region and --profile\.\n$/),
  });
});

test("--region names the Region the command reads in, over the environment's and a --table ARN's", async () => {
  const [overEnvironment, overArn] = await Promise.all([
    cli('inspect', '--table', 'cli-missing', '--id', 'n#h', '--region', 'eu-west-3'),
    cliWith({ AWS_REGION: undefined }, 'inspect', '--table', 'arn:aws:dynamodb:eu-west-3:000000000000:table/missing', '--id', 'n#h', '--region', 'eu-south-2'),
  ]);
  expect(overEnvironment).toMatchObject({
    code: 1,
    stderr: expect.stringMatching(/\(table cli-missing in eu-west-3\): check --table, --region and --profile\.\n$/),
  });
  expect(overArn).toMatchObject({ code: 1, stderr: expect.stringMatching(/\/missing in eu-south-2\): check --table, --region and --profile\.\n$/) });
});

test('forget refuses without --yes; with it the key runs again through makeIdempotent', async () => {
  const { once, runs } = counted('cli-forget');
  await once({ orderId: 'o-1' });
  await once({ orderId: 'o-1' });
  expect(runs()).toBe(1);
  const id = recordId('cli-forget', 'o-1');

  // Two commands that delete nothing, run together.
  const [refused, wrongStatus] = await Promise.all([
    cliProcess({}, 'forget', '--table', tableName, '--name', 'cli-forget', '--key', '"o-1"'),
    cliProcess({}, 'forget', '--table', tableName, '--id', id, '--only-if', 'INPROGRESS', '--yes'),
  ]);
  expect(refused).toEqual({
    code: 2,
    stdout: '',
    stderr:
      'lambda-idempotency: forget deletes the record, after which the next call with its key runs again: add --yes to do it.\n' +
      'Run `lambda-idempotency --help` for usage.\n',
  });
  expect(wrongStatus).toEqual({ code: 3, stdout: `No record ${id} with status INPROGRESS in ${tableName} (local): nothing deleted.\n`, stderr: '' });
  expect(await readItem(client, tableName, id)).toBeDefined();

  const forgotten = await cliProcess({}, 'forget', '--table', tableName, '--name', 'cli-forget', '--key', '"o-1"', '--yes', '--json');
  expect(forgotten.code).toBe(0);
  expect(JSON.parse(forgotten.stdout)).toEqual({ id, deleted: true });
  expect(await readItem(client, tableName, id)).toBeUndefined();
  // A miss names the table and the Region it read: one of the same name elsewhere answers too.
  expect(await cliProcess({}, 'forget', '--table', tableName, '--id', id, '--only-if', 'COMPLETED', '--yes')).toEqual({
    code: 3,
    stdout: `No record ${id} with status COMPLETED in ${tableName} (local): nothing deleted.\n`,
    stderr: '',
  });
  await once({ orderId: 'o-1' });
  expect(runs()).toBe(2);
});

/** Records left INPROGRESS by attempts that crashed a minute ago, by key. */
async function crashed(name: string, ...keys: string[]): Promise<{ ids: string[]; leaseUntil: number }> {
  const now = Date.now();
  const leaseUntil = now - 60_000;
  const ids = keys.map((key) => recordId(name, key));
  for (const key of ids) await store.claim({ key, owner: 'crashed', leaseUntil, expiresAt: Math.floor(now / 1000) + 86_400, now: now - 120_000 });
  return { ids, leaseUntil };
}

test('forget after stuck leaves alone a record that a retry took over in between: the retry runs alone and completes', async () => {
  const { ids, leaseUntil } = await crashed('cli-fenced', 'o-1');
  const id = ids[0]!;
  const listed = await cli('stuck', '--table', tableName, '--name', 'cli-fenced', '--json');
  expect(JSON.parse(listed.stdout)).toMatchObject([{ key: id, leaseUntil }]);
  // A retry takes the record over and runs its handler.
  const { instance, turnstile, runs } = heldRetries(store, 'cli-fenced');
  const retry = instance()('o-1');
  const inside = await turnstile.next();

  // Two commands that must delete nothing, run together.
  const iso = new Date(leaseUntil).toISOString();
  const [byStatus, asListed] = await Promise.all([
    cli('forget', '--table', tableName, '--id', id, '--only-if', 'INPROGRESS', '--yes'),
    cli('forget', '--table', tableName, '--id', id, '--lease-until', iso, '--yes'),
  ]);
  expect(byStatus).toEqual({
    code: 4,
    stdout: expect.stringMatching(
      new RegExp(`^${id.replace(/[+]/g, '\\+')} is held by an attempt whose lease ends \\S+Z \\(in \\d+ s\\): it may be running, so nothing was deleted\\. `),
    ),
    stderr: '',
  });
  expect(asListed).toEqual({
    code: 3,
    stdout: `No attempt of ${id} whose lease ends at ${iso}: nothing deleted (another attempt took the record over, or it completed or is gone).\n`,
    stderr: '',
  });
  // Another instance's duplicate is refused instead of running a second time; the retry completes.
  expect((await rejection(instance()('o-1'))).code).toBe('IN_PROGRESS');
  inside.open();
  expect(await retry).toBe('p-o-1');
  expect(runs()).toBe(1);
});

test('forget --only-if INPROGRESS deletes a stuck attempt and says which; --lease-until as stuck printed it deletes that attempt', async () => {
  const { ids, leaseUntil } = await crashed('cli-unstick', 'o-1', 'o-2');
  const iso = new Date(leaseUntil).toISOString();
  const byStatus = await cli('forget', '--table', tableName, '--id', ids[0]!, '--only-if', 'INPROGRESS', '--yes');
  expect(byStatus).toEqual({
    code: 0,
    stdout: expect.stringMatching(/^Deleted \S+, the attempt whose lease ended \S+ \(\d+ s ago\); the next call with this key runs again/),
    stderr: '',
  });
  expect(byStatus.stdout).toContain(`Deleted ${ids[0]}, the attempt whose lease ended ${iso} (`);
  const listed = await cli('stuck', '--table', tableName, '--name', 'cli-unstick');
  const shown = / lease ended (\S+Z) /.exec(listed.stdout)![1]!;
  const byLease = await cli('forget', '--table', tableName, '--id', ids[1]!, '--lease-until', shown, '--yes', '--json');
  expect(byLease).toEqual({ code: 0, stdout: `${JSON.stringify({ id: ids[1], deleted: true, leaseUntil }, null, 2)}\n`, stderr: '' });
  for (const id of ids) expect(await readItem(client, tableName, id)).toBeUndefined();
});

/**
 * The command run in this process at the instant `now` (its clock), against DynamoDB Local, which
 * its SDK client finds through the environment as it would in a shell.
 */
async function cliAt(now: number, ...argv: string[]): Promise<Run> {
  return runInProcess(localCliEnvironment({}), () => now, argv);
}

test('forget whose delete applied but whose answer was lost (the SDK retried it, and the retry found no record) says it deleted the record, exit 0', async () => {
  const proxy = await TcpProxy.start(Number(new URL(endpoint()).port));
  try {
    const { once } = counted('cli-lost-reply');
    await once({ orderId: 'o-1' });
    const completed = recordId('cli-lost-reply', 'o-1');
    const { ids, leaseUntil } = await crashed('cli-lost-reply', 'o-2');
    const stuck = ids[0]!;
    const forget = async (id: string, ...flags: string[]) => {
      // The first DeleteItem reaches DynamoDB Local and is applied; its answer is lost, so the SDK times out and
      // sends it again, and the retry (answered) finds no record to match its condition.
      proxy.loseReplies();
      const run = cliWith(
        { AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${proxy.port}` },
        'forget',
        '--table',
        tableName,
        '--id',
        id,
        ...flags,
        '--yes',
        '--json',
      );
      while ((await readItem(client, tableName, id)) !== undefined) await new Promise((resolve) => setImmediate(resolve));
      await proxy.restore();
      return run;
    };
    for (const [id, flags, extra] of [
      [completed, ['--only-if', 'COMPLETED'], {}],
      [stuck, ['--lease-until', String(leaseUntil)], { leaseUntil }],
    ] as const) {
      expect(await forget(id, ...flags)).toEqual({ code: 0, stdout: `${JSON.stringify({ id, deleted: true, ...extra }, null, 2)}\n`, stderr: '' });
    }
    // An address that matches no record is still no record (exit 3), the SDK sending it once.
    expect(
      await cliWith({}, 'forget', '--table', tableName, '--id', recordId('cli-lost-reply', 'o-3'), '--only-if', 'COMPLETED', '--yes', '--json'),
    ).toMatchObject({ code: 3 });
  } finally {
    await proxy.cut();
  }
}, 30_000);

test('a store forget whose first attempt was throttled (nothing applied) and whose retry finds no record deleted nothing; one whose first answer was lost deleted it', async () => {
  const { client: faulty, faults } = faultyClient(endpoint());
  try {
    const faultyStore = new DynamoDBStore({ tableName, client: faulty });
    const absent = recordId('cli-delete-retry', 'absent');
    faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'throttle' } });
    expect(await faultyStore.forget(absent)).toBe(false);
    const { ids } = await crashed('cli-delete-retry', 'o-1');
    faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'drop-response' } });
    expect(await faultyStore.forget(ids[0]!, 'INPROGRESS')).toBe(true);
    expect(faults.injected).toHaveLength(2);
    expect(await readItem(client, tableName, ids[0]!)).toBeUndefined();
  } finally {
    faulty.destroy();
  }
});

test('a store forget whose first attempt DynamoDB applied but answered with a 5xx, and whose retry finds no record, deleted it', async () => {
  const { client: faulty, faults } = faultyClient(endpoint());
  try {
    const faultyStore = new DynamoDBStore({ tableName, client: faulty });
    const { ids } = await crashed('cli-delete-5xx', 'o-1');
    // A 500 may come after the write was applied: the SDK sends the delete again, which meets no record.
    faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'server-error', applied: true } });
    expect(await faultyStore.forget(ids[0]!, 'INPROGRESS')).toBe(true);
    expect(faults.injected).toHaveLength(1);
    expect(await readItem(client, tableName, ids[0]!)).toBeUndefined();
  } finally {
    faulty.destroy();
  }
});

test('a forget by lease or of a COMPLETED record, on a role with DeleteItem alone as docs/operations.md allows, whose delete the SDK sent again after a 5xx that applied it: deleted, the refused read of the item aside', async () => {
  const { client: faulty, faults } = faultyClient(endpoint());
  try {
    const faultyStore = new DynamoDBStore({ tableName, client: faulty });
    const { once } = counted('cli-delete-only');
    await once({ orderId: 'o-1' });
    const completed = recordId('cli-delete-only', 'o-1');
    const { ids, leaseUntil } = await crashed('cli-delete-only', 'o-2');
    for (const forget of [() => faultyStore.forget(completed, 'COMPLETED'), () => faultyStore.forget(ids[0]!, 'INPROGRESS', leaseUntil)]) {
      faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'server-error', applied: true } });
      faults.schedule({ operations: ['GetItem'], fault: { kind: 'refuse' }, attempts: 'all' });
      expect(await forget()).toBe(true);
      faults.clear();
    }
    for (const id of [completed, ids[0]!]) expect(await readItem(client, tableName, id)).toBeUndefined();
  } finally {
    faulty.destroy();
  }
});

test('forget --only-if INPROGRESS leaves alone an attempt in the last millisecond of its lease, which still holds the record; one millisecond later it deletes it', async () => {
  const { ids, leaseUntil } = await crashed('cli-last-ms', 'o-1');
  const id = ids[0]!;
  // Stores take a record over only after its lease: at its last millisecond the attempt may still be running.
  const atEnd = await cliAt(leaseUntil, 'forget', '--table', tableName, '--id', id, '--only-if', 'INPROGRESS', '--yes', '--json');
  // Refused (exit 4, `refused` in JSON), not absent (exit 3): a script must not read a live attempt as gone.
  expect(atEnd).toEqual({ code: 4, stdout: `${JSON.stringify({ id, deleted: false, refused: true, leaseUntil }, null, 2)}\n`, stderr: '' });
  expect(await readItem(client, tableName, id)).toBeDefined();
  const after = await cliAt(leaseUntil + 1, 'forget', '--table', tableName, '--id', id, '--only-if', 'INPROGRESS', '--yes', '--json');
  expect(after).toEqual({ code: 0, stdout: `${JSON.stringify({ id, deleted: true, leaseUntil }, null, 2)}\n`, stderr: '' });
  expect(await readItem(client, tableName, id)).toBeUndefined();
});

test('forget --only-if COMPLETED leaves alone an attempt that holds the record INPROGRESS (exit 3); once it has completed, it deletes it', async () => {
  const id = recordId('cli-only-completed', 'o-1');
  const now = Date.now();
  const expiresAt = Math.floor(now / 1000) + 86_400;
  await store.claim({ key: id, owner: 'running', leaseUntil: now + 60_000, expiresAt, now });
  const args = ['forget', '--table', tableName, '--id', id, '--only-if', 'COMPLETED', '--yes'];
  expect(await cliAt(now, ...args)).toEqual({
    code: 3,
    stdout: `No record ${id} with status COMPLETED in ${tableName} (local): nothing deleted.\n`,
    stderr: '',
  });
  expect((await readItem(client, tableName, id))?.owner).toEqual({ S: 'running' });
  await store.complete({ key: id, owner: 'running', expiresAt, response: '"p-o-1"', now });
  expect(await cliAt(now, ...args)).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Deleted \S+; the next call with this key runs again/) });
  expect(await readItem(client, tableName, id)).toBeUndefined();
});

test('inspect calls a record expired only once a call would run again: not in the last second of its retention, in which a duplicate still replays', async () => {
  const id = recordId('cli-retention-edge', 'o-1');
  // A retention that ended an hour ago, seen by a command whose clock is behind the table's, at its end: the table's clock, ahead, does not decide.
  const now = Date.now() - 7_200_000;
  const expiresAt = Math.floor(now / 1000) + 3600;
  await store.claim({ key: id, owner: 'earlier', leaseUntil: now + 60_000, expiresAt, now });
  await store.complete({ key: id, owner: 'earlier', expiresAt, response: '"p-o-1"', now });
  // Stores take a record over once its retention, in epoch seconds, is before the current second.
  const lastMillisecond = expiresAt * 1000 + 999;
  const inspected = await cliAt(lastMillisecond, 'inspect', '--table', tableName, '--id', id);
  expect(inspected).toMatchObject({ code: 0, stdout: expect.stringMatching(/\n {2}expires +\S+\.999Z \(in 0 s\)\n/) });
  const claimed = await store.claim({ key: id, owner: 'later', leaseUntil: lastMillisecond + 60_000, expiresAt: expiresAt + 86_400, now: lastMillisecond });
  expect(claimed.claimed).toBe(false);
  const after = await cliAt(lastMillisecond + 1, 'inspect', '--table', tableName, '--id', id);
  expect(after.stdout).toMatch(/\n {2}expires +\S+\.999Z \(0 s ago\), expired: the next call with this key runs again\n/);
  expect(
    await store.claim({ key: id, owner: 'later', leaseUntil: lastMillisecond + 60_001, expiresAt: expiresAt + 86_400, now: lastMillisecond + 1 }),
  ).toMatchObject({
    claimed: true,
  });
});

test('stuck lists an attempt only once its lease has ended: not in its last millisecond, which is still its own', async () => {
  const { ids, leaseUntil } = await crashed('cli-stuck-edge', 'o-1');
  const [atEnd, after] = await Promise.all([
    cliAt(leaseUntil, 'stuck', '--table', tableName, '--name', 'cli-stuck-edge', '--json'),
    cliAt(leaseUntil + 1, 'stuck', '--table', tableName, '--name', 'cli-stuck-edge', '--json'),
  ]);
  expect(JSON.parse(atEnd.stdout)).toEqual([]);
  expect(JSON.parse(after.stdout)).toMatchObject([{ key: ids[0], leaseUntil }]);
});

test('an attempt whose lease ends at a fraction of a millisecond (a clock on performance.now()) is named exactly: the --lease-until that forget --only-if suggests deletes it', async () => {
  // A lease that ended a minute ago, seen by commands whose clocks are behind the table's: the table's clock, ahead, does not decide.
  const now = Date.now() - 120_000;
  const leaseUntil = now + 60_000.25;
  const id = recordId('cli-fraction', 'o-1');
  await store.claim({ key: id, owner: 'failed-execution', leaseUntil, expiresAt: Math.floor(now / 1000) + 86_400, now });
  // stuck and inspect print it exactly too: ISO alone would round it.
  const shown = await cliAt(now + 60_001, 'stuck', '--table', tableName, '--name', 'cli-fraction');
  expect(shown.stdout).toContain(`(epoch ms ${leaseUntil}, `);
  expect((await cliAt(now, 'inspect', '--table', tableName, '--id', id)).stdout).toContain(`(epoch ms ${leaseUntil}, in 60 s)`);
  const held = await cliAt(now, 'forget', '--table', tableName, '--id', id, '--only-if', 'INPROGRESS', '--yes');
  expect(held.code).toBe(4);
  const suggested = / add --lease-until (\S+) instead of --only-if\.$/.exec(held.stdout.trimEnd())?.[1];
  expect(suggested).toBe(String(leaseUntil));
  const forgot = await cliAt(now, 'forget', '--table', tableName, '--id', id, '--lease-until', suggested!, '--yes', '--json');
  expect(forgot).toEqual({ code: 0, stdout: `${JSON.stringify({ id, deleted: true, leaseUntil }, null, 2)}\n`, stderr: '' });
});

/**
 * The command run in this process; `between` runs once it has read the record, just before its
 * delete is sent (or, with `before: 'read'`, before its second read).
 */
async function cliRaced(between: () => Promise<void>, ...argv: string[]): Promise<Run> {
  return cliRacedAt(DeleteItemCommand, 1, between, ...argv);
}

/** The command run in this process; `between` runs just before the `nth` request of type `command` is sent. */
async function cliRacedAt(
  command: typeof DeleteItemCommand | typeof GetItemCommand,
  nth: number,
  between: () => Promise<void>,
  ...argv: string[]
): Promise<Run> {
  const send = DynamoDBClient.prototype.send;
  let raced = false;
  let seen = 0;
  const spy = jest.spyOn(DynamoDBClient.prototype, 'send').mockImplementation(async function (this: DynamoDBClient, ...args: unknown[]) {
    if (args[0] instanceof command && ++seen === nth && !raced) {
      raced = true;
      await between();
    }
    return (send as (...rest: unknown[]) => Promise<unknown>).apply(this, args);
  } as never);
  try {
    return await cliAt(Date.now(), ...argv);
  } finally {
    spy.mockRestore();
    expect(raced).toBe(true);
  }
}

/**
 * forget of `name`'s key o-1 while another instance's retry claims the record between the
 * command's read and its delete; checks that the retry keeps the record, runs alone and completes.
 */
async function forgetRacingRetry(name: string, ...flags: string[]): Promise<Run> {
  return forgetRacingRetryAt(DeleteItemCommand, 1, name, ...flags);
}

/** {@link forgetRacingRetry}, the retry claiming the record just before the `nth` request of type `command`. */
async function forgetRacingRetryAt(command: typeof DeleteItemCommand | typeof GetItemCommand, nth: number, name: string, ...flags: string[]): Promise<Run> {
  const { instance, turnstile, runs } = heldRetries(store, name);
  let retry: Promise<string> | undefined;
  let inside: Awaited<ReturnType<Turnstile['next']>> | undefined;
  const forgot = await cliRacedAt(
    command,
    nth,
    async () => {
      retry = instance()('o-1');
      inside = await turnstile.next();
    },
    ...['forget', '--table', tableName, '--id', recordId(name, 'o-1'), ...flags, '--yes'],
  );
  // The retry still holds the record (checked first: a duplicate that ran would wait at the turnstile),
  // so another instance's duplicate is refused instead of running beside it; the retry completes.
  expect((await readItem(client, tableName, recordId(name, 'o-1')))?.status).toEqual({ S: 'INPROGRESS' });
  expect((await rejection(instance()('o-1'))).code).toBe('IN_PROGRESS');
  inside!.open();
  expect(await retry).toBe('p-o-1');
  expect(runs()).toBe(1);
  return forgot;
}

test.each([
  ['forget --only-if INPROGRESS', ['--only-if', 'INPROGRESS']],
  ['plain forget', []],
])(
  '%s deletes only the stuck attempt it read: a retry that takes the record over between its read and its delete keeps it, runs alone and completes',
  async (_command, flags) => {
    const name = `cli-raced-${flags.length}`;
    await crashed(name, 'o-1');
    expect(await forgetRacingRetry(name, ...flags)).toMatchObject({
      code: 3,
      stdout: expect.stringMatching(/^No attempt of \S+ whose lease ends at \S+Z: nothing deleted \(another attempt took the record over/),
    });
  },
);

test('plain forget leaves alone an attempt whose lease is live (exit 4, refused, not 3, absent) and names the --lease-until that deletes it; a stuck attempt it deletes as --only-if INPROGRESS does', async () => {
  const now = Date.now();
  const leaseUntil = now + 60_000;
  const id = recordId('cli-plain-live', 'o-1');
  await store.claim({ key: id, owner: 'running', leaseUntil, expiresAt: Math.floor(now / 1000) + 86_400, now });
  const iso = new Date(leaseUntil).toISOString();
  const held = await cliAt(now, 'forget', '--table', tableName, '--id', id, '--yes');
  expect(held).toEqual({
    code: 4,
    stdout:
      `${id} is held by an attempt whose lease ends ${iso} (in 60 s): it may be running, so nothing was deleted. ` +
      `If you know it is not (a durable execution that failed), add --lease-until ${iso}.\n`,
    stderr: '',
  });
  const asJson = await cliAt(now, 'forget', '--table', tableName, '--id', id, '--yes', '--json');
  expect(asJson).toEqual({ code: 4, stdout: `${JSON.stringify({ id, deleted: false, refused: true, leaseUntil }, null, 2)}\n`, stderr: '' });
  expect(await readItem(client, tableName, id)).toBeDefined();
  // Named, a live attempt is deleted, and said to be one whose lease ends (not ended).
  const named = await cliAt(now, 'forget', '--table', tableName, '--id', id, '--lease-until', iso, '--yes');
  expect(named).toEqual({
    code: 0,
    stdout: `Deleted ${id}, the attempt whose lease ends ${iso} (in 60 s); the next call with this key runs again (not in an instance that holds it in its cacheSize memory).\n`,
    stderr: '',
  });
  expect(await readItem(client, tableName, id)).toBeUndefined();
  expect(await cliAt(now, 'forget', '--table', tableName, '--id', id, '--yes')).toEqual({
    code: 3,
    stdout: `No record ${id} in ${tableName} (local): nothing deleted.\n`,
    stderr: '',
  });

  const stuck = await crashed('cli-plain-stuck', 'o-1');
  const forgot = await cli('forget', '--table', tableName, '--id', stuck.ids[0]!, '--yes');
  expect(forgot).toMatchObject({ code: 0, stderr: '' });
  expect(forgot.stdout).toContain(`Deleted ${stuck.ids[0]}, the attempt whose lease ended ${new Date(stuck.leaseUntil).toISOString()} (`);
  expect(await readItem(client, tableName, stuck.ids[0]!)).toBeUndefined();
});

test('the --lease-until that forget names for a hand-written lease beyond the dates JavaScript can show (nanoseconds) is one forget takes, and deletes that attempt', async () => {
  const id = recordId('cli-far-lease', 'o-1');
  // Written by hand, or by another tool, in nanoseconds: far beyond any Date, so shown in epoch ms.
  await client.send(
    new PutItemCommand({
      TableName: tableName,
      Item: { id: { S: id }, status: { S: 'INPROGRESS' }, owner: { S: 'by-hand' }, expiration: { N: '99999999999' }, leaseUntil: { N: '1733460000000000000' } },
    }),
  );
  const held = await cli('forget', '--table', tableName, '--id', id, '--yes');
  expect(held.code).toBe(4);
  const named = /add --lease-until (\S+)\.\n$/.exec(held.stdout)?.[1];
  expect(named).toBe('1733460000000000000');
  expect(await cli('forget', '--table', tableName, '--id', id, '--lease-until', named!, '--yes')).toMatchObject({ code: 0, stderr: '' });
  expect(await readItem(client, tableName, id)).toBeUndefined();
});

test('plain forget deletes a COMPLETED record only while it is COMPLETED: a call that claims it again (its retention ended) between the read and the delete keeps it and runs alone', async () => {
  const name = 'cli-completed-raced';
  const id = recordId(name, 'o-1');
  await completedPastRetention(store, id, Date.now());
  expect(await forgetRacingRetry(name)).toEqual({
    code: 3,
    stdout: `${id} changed after forget read it COMPLETED (a call claimed it again after its retention, or it is gone): nothing deleted.\n`,
    stderr: '',
  });
});

test('plain forget deletes an INPROGRESS record without a lease (held until its retention) only while it is INPROGRESS', async () => {
  const id = recordId('cli-leaseless', 'o-1');
  const item = (status: string) => ({ id: { S: id }, status: { S: status }, owner: { S: 'o' }, expiration: { N: '4102444800' } });
  await client.send(new PutItemCommand({ TableName: tableName, Item: item('INPROGRESS') }));
  // Completed by its owner (a function of an older version) between the read and the delete.
  const raced = await cliRaced(
    () => client.send(new PutItemCommand({ TableName: tableName, Item: item('COMPLETED') })).then(() => undefined),
    'forget',
    '--table',
    tableName,
    '--id',
    id,
    '--yes',
  );
  expect(raced).toEqual({
    code: 3,
    stdout: `${id} changed after forget read it INPROGRESS (it completed, or a call claimed it after its retention, or it is gone): nothing deleted.\n`,
    stderr: '',
  });
  expect((await readItem(client, tableName, id))?.status).toEqual({ S: 'COMPLETED' });
  await client.send(new PutItemCommand({ TableName: tableName, Item: item('INPROGRESS') }));
  // Without a lease nothing says the attempt has stopped: --only-if INPROGRESS deletes only stuck attempts.
  const onlyIf = await cliAt(Date.now(), 'forget', '--table', tableName, '--id', id, '--only-if', 'INPROGRESS', '--yes');
  expect(onlyIf).toEqual({
    code: 4,
    stdout: `${id} is INPROGRESS without a lease: nothing deleted. Forget it without --only-if if nothing runs.\n`,
    stderr: '',
  });
  expect((await readItem(client, tableName, id))?.status).toEqual({ S: 'INPROGRESS' });
  const forgot = await cliAt(Date.now(), 'forget', '--table', tableName, '--id', id, '--yes');
  expect(forgot).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Deleted \S+; the next call with this key runs again/) });
  expect(await readItem(client, tableName, id)).toBeUndefined();
});

test('an item the store cannot read as a record is deleted by the command its error names, plain forget --yes; --only-if INPROGRESS refuses to read it', async () => {
  const id = recordId('cli-malformed', 'o-1');
  await client.send(
    new PutItemCommand({ TableName: tableName, Item: { id: { S: id }, status: { S: 'DONE' }, owner: { S: 'o' }, expiration: { N: '4102444800' } } }),
  );
  const fenced = await cli('forget', '--table', tableName, '--id', id, '--only-if', 'INPROGRESS', '--yes');
  expect(fenced).toMatchObject({ code: 1, stdout: '' });
  expect(fenced.stderr).toContain(`lambda-idempotency forget --table ${tableName} --id '${id}' --yes`);
  const forgot = await cli('forget', '--table', tableName, '--id', id, '--yes');
  expect(forgot).toEqual({
    code: 0,
    stdout: `Deleted ${id}, an item this store cannot read as a record (written by hand, or under other attribute names); the next call with this key runs again (not in an instance that holds it in its cacheSize memory).\n`,
    stderr: '',
  });
  expect(await readItem(client, tableName, id)).toBeUndefined();
});

test.each([
  ['its delete', DeleteItemCommand, 1],
  ['its second read', GetItemCommand, 2],
] as const)(
  'plain forget of an item it cannot read as a record leaves alone a retry that replaces the item (its lease ended) just before %s: the retry runs alone and completes',
  async (_moment, command, nth) => {
    const name = `cli-malformed-raced-${nth}`;
    const id = recordId(name, 'o-1');
    const now = Date.now();
    // No owner: unreadable; INPROGRESS past its lease: a claim replaces it.
    await client.send(
      new PutItemCommand({
        TableName: tableName,
        Item: { id: { S: id }, status: { S: 'INPROGRESS' }, leaseUntil: { N: String(now - 60_000) }, expiration: { N: String(Math.floor(now / 1000) + 3600) } },
      }),
    );
    expect(await forgetRacingRetryAt(command, nth, name)).toEqual({
      code: 3,
      stdout: `${id} changed after forget read it (a call claimed it, or it was written again): nothing deleted.\n`,
      stderr: '',
    });
  },
);

test('an HTTP record is found and forgotten by its header key, method, route and caller', async () => {
  let runs = 0;
  const handler = middy(async () => ({ statusCode: 201, body: String(++runs) })).use(httpIdempotency({ store, name: 'cli-http' }));
  const event = paymentRequest('k-1', 'user-7');
  await handler(event, lambdaContext('cli-http'));
  const address = ['--name', 'cli-http', '--http-key', 'k-1', '--method', 'POST', '--route', 'POST /payments', '--caller', callerIdentity(event)!];
  const [inspected, withoutCaller] = await Promise.all([
    cli('inspect', '--table', tableName, ...address, '--json'),
    cli('inspect', '--table', tableName, ...address.slice(0, -2), '--json'),
  ]);
  expect(JSON.parse(inspected.stdout)).toMatchObject({ status: 'COMPLETED', responseBytes: expect.any(Number) });
  expect(withoutCaller.code).toBe(3);
  expect((await cli('forget', '--table', tableName, ...address, '--yes')).code).toBe(0);
  expect((await handler(event, lambdaContext('cli-http'))).body).toBe('2');
});

test('usage errors exit 2 with a sentence, before any request (in process)', async () => {
  const io = () => {
    const out = { stdout: '', stderr: '' };
    return { out, io: { env: {}, now: Date.now, stdout: (text: string) => void (out.stdout += text), stderr: (text: string) => void (out.stderr += text) } };
  };
  const cases: Array<[string[], string]> = [
    [['inspect', '--table', tableName, '--name', 'n', '--key', 'o-1'], '`--key` must be JSON; a string key is quoted: --key \'"o-1"\'.'],
    // Broken JSON of an object is not a string key: quoting it would address another record.
    [['inspect', '--table', tableName, '--name', 'n', '--key', '{"orderId":o-1}'], '`--key` is not valid JSON; quote string values inside it.'],
    // A string missing its closing quote: quoting it again would address the key `"o-1`, another record.
    [['inspect', '--table', tableName, '--name', 'n', '--key', '"o-1'], '`--key` is not valid JSON; quote string values inside it.'],
    // JSON.parse would round it, and address a record no entry point wrote: which one is meant depends on the entry point.
    [
      ['inspect', '--table', tableName, '--name', 'n', '--key', '{"orderId":12345678901234567890}'],
      '`--key` holds 12345678901234567890, a number JavaScript cannot hold exactly: quote it ("12345678901234567890") for an idempotentBatch record, which keeps such numbers exact; elsewhere give it as JavaScript reads it, 12345678901234567000.',
    ],
    // Read as Infinity, which no key can hold: no advice to give it so.
    [
      ['inspect', '--table', tableName, '--name', 'n', '--key', '{"orderId":1e400}'],
      '`--key` holds 1e400, a number JavaScript cannot hold exactly: quote it ("1e400") for an idempotentBatch record, which keeps such numbers exact; no other entry point keys by it.',
    ],
    [['inspect', '--table', tableName, '--id', 'no-hash'], 'A record id must read `<namespace>#<hash>`, as the library logs it.'],
    [
      ['inspect', '--table', tableName, '--name', 'n', '--key', '"k"', '--id', 'n#h'],
      'Which record? Give one of --key (with --name), --http-key (with --name, --method, --route) or --id.',
    ],
    [
      ['inspect', '--table', tableName, '--name', 'n', '--http-key', 'k', '--method', 'POST'],
      '`--http-key` needs --method and --route (and --caller when the request had a caller identity).',
    ],
    [['inspect', '--name', 'n', '--key', '"k"'], 'Which table? Give --table or set IDEMPOTENCY_TABLE.'],
    [['forget', '--table', tableName, '--id', 'n#h', '--yes', '--only-if', 'DONE'], '`--only-if` takes INPROGRESS or COMPLETED.'],
    [
      ['forget', '--table', tableName, '--id', 'n#h', '--yes', '--lease-until', '2026-12-02 16:08'],
      '`--lease-until` takes the lease end as stuck and inspect print it (2026-12-02T16:08:35.123Z), or in epoch milliseconds.',
    ],
    [
      ['forget', '--table', tableName, '--id', 'n#h', '--yes', '--lease-until', '1700000000000', '--only-if', 'COMPLETED'],
      '`--lease-until` names an INPROGRESS attempt: a COMPLETED record has no lease.',
    ],
    [['stuck', '--table', tableName, '--yes'], '`--yes` does not apply to stuck.'],
    [['stuck', '--table', tableName, '--attributes', '{"state":"s"}'], expect.stringContaining('`--attributes`: unknown field `state`.')],
    [['inspect', '--table', tableName, '--bogus'], "Unknown option '--bogus'."],
    [
      ['inspect', '--table', 't', '--id', 'n#h'],
      `DynamoDBStore: \`tableName\` must be the name of a DynamoDB table (3 to 255 letters, digits, '_', '-' or '.') or its ARN, arn:aws:dynamodb:<region>:<account>:table/<name> (got "t").`,
    ],
    [['purge', '--table', tableName], 'Unknown command `purge`: use inspect, forget or stuck.'],
    // A script whose command variable is empty must not read the help as a result.
    [[], 'Which command? Give inspect, forget or stuck (--help lists them).'],
    [['--table', tableName, '--json'], 'Which command? Give inspect, forget or stuck (--help lists them).'],
    [['forget', '--table', tableName, '--id', 'a#h', '--id', 'b#h', '--yes'], '`--id` is given twice: give it once.'],
    [['inspect', '--table', tableName, '--name', 'n', '--key', '-1'], "Option '--key' argument is ambiguous."],
  ] as never;
  for (const [argv, message] of cases) {
    const { out, io: cliIo } = io();
    expect(await runCli(argv, cliIo)).toBe(2);
    expect(out.stdout).toBe('');
    expect(out.stderr.split('\n')[0]).toEqual(typeof message === 'string' ? `lambda-idempotency: ${message}` : message);
  }
  const dash = io();
  expect(await runCli(['inspect', '--table', tableName, '--name', 'n', '--key', '-1'], dash.io)).toBe(2);
  expect(dash.out.stderr).toContain("use '--key=-XYZ'.\nRun `lambda-idempotency --help` for usage.");
  const { out, io: cliIo } = io();
  expect(await runCli(['--help'], cliIo)).toBe(0);
  expect(out.stdout).toMatch(/^Usage: lambda-idempotency <command>/);
  for (const command of ['inspect', 'forget', 'stuck']) expect(out.stdout).toContain(`\n  ${command} `);
});

test('stuck lists INPROGRESS records past their lease across every page of the scan, with a warning', async () => {
  const table = await freshTable(client, 'cli-stuck');
  try {
    // Plain responses of 100 KB: twelve of them make the table larger than one 1 MB scan page.
    const large = new DynamoDBStore({ tableName: table, client, compressAboveBytes: 400 * 1024 });
    const now = Date.now();
    const claim = (name: string, key: string, leaseUntil: number) =>
      large.claim({ key: recordIdOf({ name, key }), owner: 'crashed', leaseUntil, expiresAt: Math.floor(now / 1000) + 86_400, now });
    for (let i = 0; i < 12; i++) await makeIdempotent(async () => 'x'.repeat(100_000), { store: large, name: 'done' })(`c-${i}`);
    const stuck = Array.from({ length: 8 }, (_, i) => `s-${i}`);
    for (const key of stuck) await claim('worker', key, now - 60_000);
    await claim('other', 's-0', now - 60_000);
    await claim('worker', 'live', now + 600_000);
    const expected = stuck.map((key) => recordIdOf({ name: 'worker', key })).sort();

    // Precondition: one page does not hold every stuck record, so only a paginated scan finds them all.
    const firstPage = await client.send(new ScanCommand({ TableName: table, ProjectionExpression: 'id' }));
    expect(firstPage.LastEvaluatedKey).toBeDefined();
    expect(expected.every((id) => firstPage.Items!.some((item) => item.id!.S === id))).toBe(false);

    const [asJson, text] = await Promise.all([
      cliProcess({}, 'stuck', '--table', table, '--name', 'worker', '--json'),
      cliProcess({}, 'stuck', '--table', table),
    ]);
    expect(asJson.code).toBe(0);
    expect(asJson.stderr).toBe(`lambda-idempotency: stuck scans the whole table ${table}: every item is read (and billed), page by page.\n`);
    const found = JSON.parse(asJson.stdout) as RecordSummary[];
    expect(found.map((summary) => summary.key).sort()).toEqual(expected);
    expect(found[0]).toEqual({
      key: found[0]!.key,
      status: 'INPROGRESS',
      expiresAt: Math.floor(now / 1000) + 86_400,
      leaseUntil: now - 60_000,
      hasFingerprint: false,
      responseOmitted: false,
    });

    expect(text.code).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines.at(-1)).toBe('9 INPROGRESS records past the lease.');
    expect(
      lines
        .slice(0, -1)
        .map((line) => line.split(' ')[0])
        .sort(),
    ).toEqual([...expected, recordIdOf({ name: 'other', key: 's-0' })].sort());
    expect(lines[0]).toMatch(/ lease ended \S+Z \(\d+ s ago\), expires \S+Z$/);
  } finally {
    await dropTable(client, table);
  }
});

test('stuck --name lists that namespace alone, not another whose name begins with it', async () => {
  const table = await freshTable(client, 'cli-stuck-name');
  try {
    const store = new DynamoDBStore({ tableName: table, client });
    const now = Date.now();
    for (const name of ['worker', 'worker-eu']) {
      await store.claim({ key: recordIdOf({ name, key: 'k' }), owner: 'crashed', leaseUntil: now - 60_000, expiresAt: Math.floor(now / 1000) + 86_400, now });
    }
    const listed = await cli('stuck', '--table', table, '--name', 'worker', '--json');
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as RecordSummary[]).map((summary) => summary.key)).toEqual([recordIdOf({ name: 'worker', key: 'k' })]);
  } finally {
    await dropTable(client, table);
  }
});

test("text read from the table never reaches the terminal as control or format characters: stuck (text and --json) and the error naming an item's attributes escape them; JSON reads the id back whole", async () => {
  const table = await freshTable(client, 'cli-hostile');
  try {
    // Sets the clipboard (OSC 52), clears the screen with an 8-bit CSI, reverses the text that follows.
    const hostile = 'worker#\u001b]52;c;ZWNobyBoaQ==\u0007\u009b2J\u202e\u{e0041}';
    const item = (id: string, more: Record<string, AttributeValue>) => ({ TableName: table, Item: { id: { S: id }, owner: { S: 'o' }, ...more } });
    await client.send(new PutItemCommand(item(hostile, { status: { S: 'INPROGRESS' }, leaseUntil: { N: '1' }, expiration: { N: '4102444800' } })));
    // No retention under these names, and an attribute none of them is: inspect's error names it.
    await client.send(new PutItemCommand(item('worker#h', { status: { S: 'COMPLETED' }, '\u009b2J\u001b[1A': { N: '4102444800' } })));
    const [text, asJson, inspected] = await Promise.all([
      cli('stuck', '--table', table),
      cli('stuck', '--table', table, '--json'),
      cli('inspect', '--table', table, '--id', 'worker#h', '--json'),
    ]);
    const controls = /(?!\n)[\p{Cc}\p{Cf}]/u;
    expect(text).toMatchObject({ code: 0 });
    expect(text.stdout).toContain('worker#\\u001b]52;c;ZWNobyBoaQ==\\u0007\\u009b2J\\u202e\\u{e0041}  lease ended ');
    expect(text.stdout).not.toMatch(controls);
    expect(asJson).toMatchObject({ code: 0 });
    expect(asJson.stdout).not.toMatch(controls);
    expect((JSON.parse(asJson.stdout) as RecordSummary[]).map((summary) => summary.key)).toEqual([hostile]);
    expect(inspected).toMatchObject({ code: 1, stdout: '' });
    expect(inspected.stderr).toContain('holds `\\u009b2J\\u001b[1A`, which none of these attribute names is');
    expect(inspected.stderr).not.toMatch(controls);
  } finally {
    await dropTable(client, table);
  }
});

test('attribute names other than the defaults are given with --attributes', async () => {
  const table = await freshTable(client, 'cli-attrs');
  try {
    await client.send(
      new PutItemCommand({
        TableName: table,
        Item: { id: { S: 'n#h' }, state: { S: 'INPROGRESS' }, expiration: { N: '4102444800' }, owner: { S: 'o' }, leaseUntil: { N: '1' } },
      }),
    );
    const [inspected, stuck] = await Promise.all([
      cli('inspect', '--table', table, '--id', 'n#h', '--attributes', '{"status":"state"}', '--json'),
      cli('stuck', '--table', table, '--attributes', '{"status":"state"}', '--json'),
    ]);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ key: 'n#h', status: 'INPROGRESS', leaseUntil: 1 });
    expect((JSON.parse(stuck.stdout) as RecordSummary[]).map((summary) => summary.key)).toEqual(['n#h']);
  } finally {
    await dropTable(client, table);
  }
});

test('stuck lists a record past its lease that has no expiration (written by hand) without one, as inspect does, instead of failing on it', async () => {
  const table = await freshTable(client, 'cli-stuck-bad');
  try {
    await client.send(
      new PutItemCommand({ TableName: table, Item: { id: { S: 'n#h' }, status: { S: 'INPROGRESS' }, owner: { S: 'o' }, leaseUntil: { N: '1' } } }),
    );
    const [text, asJson] = await Promise.all([cli('stuck', '--table', table), cli('stuck', '--table', table, '--json')]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^n#h {2}lease ended 1970-01-01T00:00:00\.001Z \(\d+ days ago\), no expiration\n1 INPROGRESS record past the lease\.\n$/);
    expect(asJson.code).toBe(0);
    expect(JSON.parse(asJson.stdout)).toEqual([
      // Without `expiresAt`, as inspect shows such a record: never NaN, which JSON would print as null.
      { key: 'n#h', status: 'INPROGRESS', leaseUntil: 1, hasFingerprint: false, responseOmitted: false },
    ]);
  } finally {
    await dropTable(client, table);
  }
});

test('inspect shows a record without an expiration (written by hand) without one, instead of failing on it', async () => {
  const table = await freshTable(client, 'cli-inspect-bare');
  try {
    await client.send(new PutItemCommand({ TableName: table, Item: { id: { S: 'n#h' }, status: { S: 'COMPLETED' }, owner: { S: 'o' } } }));
    const [text, asJson] = await Promise.all([cli('inspect', '--table', table, '--id', 'n#h'), cli('inspect', '--table', table, '--id', 'n#h', '--json')]);
    expect(text).toMatchObject({ code: 0, stderr: '' });
    expect(text.stdout).toContain('\n  expires      none (written by hand or by an older version): the next call with this key sets one\n');
    expect(JSON.parse(asJson.stdout)).toEqual({ key: 'n#h', status: 'COMPLETED', hasFingerprint: false, responseOmitted: false });
  } finally {
    await dropTable(client, table);
  }
});

test('inspect and stuck show a hand-written instant beyond the dates JavaScript can show, instead of failing on it', async () => {
  const table = await freshTable(client, 'cli-far-dates');
  try {
    const item = (id: string, status: string, numbers: Record<string, string>) =>
      new PutItemCommand({
        TableName: table,
        Item: { id: { S: id }, status: { S: status }, owner: { S: 'o' }, ...Object.fromEntries(Object.entries(numbers).map(([name, n]) => [name, { N: n }])) },
      });
    await client.send(item('n#pinned', 'COMPLETED', { expiration: '99999999999999999999' }));
    await client.send(item('n#stuck', 'INPROGRESS', { expiration: '99999999999999999999', leaseUntil: '-99999999999999999999' }));
    const [inspected, stuck] = await Promise.all([cli('inspect', '--table', table, '--id', 'n#pinned'), cli('stuck', '--table', table)]);
    expect(inspected).toMatchObject({ code: 0, stderr: '' });
    expect(inspected.stdout).toMatch(/^ {2}expires {6}epoch ms 1e\+23 \(beyond the dates JavaScript can show\)$/m);
    expect(stuck.code).toBe(0);
    expect(stuck.stdout).toBe(
      'n#stuck  lease ended epoch ms -100000000000000000000 (beyond the dates JavaScript can show), expires epoch ms 1e+23 (beyond the dates JavaScript can show)\n1 INPROGRESS record past the lease.\n',
    );
  } finally {
    await dropTable(client, table);
  }
});

test('stuck piped into a reader that stops early (`| head`) ends quietly, without an EPIPE error', async () => {
  const child = spawn(process.execPath, [main(), 'stuck', '--table', tableName, '--name', 'cli-none'], {
    env: localCliEnvironment({}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The reader is gone before the command writes its first line.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const code = await new Promise((resolve) => child.on('close', resolve));
  expect({ code, stderr }).toEqual({
    code: 0,
    stderr: `lambda-idempotency: stuck scans the whole table ${tableName}: every item is read (and billed), page by page.\n`,
  });
});

test('a message that cannot be written (stderr read by a reader gone, as with `2>&1 | head`) is dropped: the command ends with its own exit code, not an uncaught EPIPE', async () => {
  const child = spawn(process.execPath, [main(), 'inspect', '--bogus'], { env: localCliEnvironment({}), stdio: ['ignore', 'pipe', 'pipe'] });
  // The reader is gone before the command writes its usage error.
  child.stderr.destroy();
  let stdout = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  const code = await new Promise((resolve) => child.on('close', resolve));
  expect({ code, stdout }).toEqual({ code: 2, stdout: '' });
});

test('output that cannot be written (a full disk, here /dev/full) ends the command with one line saying so, exit 1, not a stack trace', async () => {
  const full = openSync('/dev/full', 'w');
  try {
    const child = spawn(process.execPath, [main(), 'stuck', '--table', tableName, '--name', 'cli-none', '--json'], {
      env: localCliEnvironment({}),
      stdio: ['ignore', full, 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
    });
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect({ code, stderr }).toEqual({
      code: 1,
      stderr: `lambda-idempotency: stuck scans the whole table ${tableName}: every item is read (and billed), page by page.\nlambda-idempotency: the output could not be written: ENOSPC: no space left on device, write.\n`,
    });
  } finally {
    closeSync(full);
  }
});

test("a retention in the environment that a function's store would refuse does not stop the CLI, which writes no record", async () => {
  const run = await cliProcess({ IDEMPOTENCY_EXPIRES_AFTER_SECONDS: 'one day' }, 'inspect', '--table', tableName, '--id', recordId('cli-env', 'o-1'), '--json');
  expect(run).toEqual({ code: 3, stdout: 'null\n', stderr: '' });
});

test.each(['ProvisionedThroughputExceededException', 'ThrottlingException', 'RequestLimitExceeded'] as const)(
  'stuck reads a page that stays throttled (%s) through the SDK retries again, from where it starts, instead of failing the scan',
  async (exception) => {
    const table = await freshTable(client, `cli-stuck-throttled-${exception.slice(0, 8).toLowerCase()}`);
    try {
      // Six items of 390 KB: a 1 MB scan page cannot hold them all.
      const ids = ['t#1', 't#2', 't#3', 't#4', 't#5', 't#6'];
      const item = (id: string) => marshall({ id, status: 'INPROGRESS', owner: 'o', expiration: 4102444800, leaseUntil: 1, pad: 'x'.repeat(390_000) });
      for (const id of ids) await client.send(new PutItemCommand({ TableName: table, Item: item(id) }));
      const { client: throttled, faults } = faultyClient(endpoint());
      // The second page: every attempt the SDK makes of it is throttled.
      faults.schedule({ operations: ['Scan'], fault: { kind: 'throttle', exception }, skip: 1, attempts: 3 });
      const found: string[] = [];
      for await (const summary of stuckRecords({ client: throttled, tableName: table, attributes: DEFAULT_ATTRIBUTE_NAMES, now: Date.now }))
        found.push(summary.key);
      expect(faults.injected).toHaveLength(3);
      expect(found.sort()).toEqual(ids);
      throttled.destroy();
    } finally {
      await dropTable(client, table);
    }
  },
);

test('stuck fails at once on a page that fails with another error than throttling, through the SDK retries, instead of waiting to read it again', async () => {
  const { client: failing, faults } = faultyClient(endpoint());
  faults.schedule({ operations: ['Scan'], fault: { kind: 'server-error' }, attempts: 3 });
  const scan = async () => {
    for await (const _summary of stuckRecords({ client: failing, tableName, attributes: DEFAULT_ATTRIBUTE_NAMES, now: Date.now }));
  };
  await expect(scan()).rejects.toMatchObject({ name: 'InternalServerError' });
  expect(faults.injected).toHaveLength(3);
  failing.destroy();
});

test('stuck whose scan fails at a later page keeps what the pages before it found: --json prints them as a JSON array, and both modes say the list is partial (exit 1)', async () => {
  const table = await freshTable(client, 'cli-stuck-partial');
  try {
    // Six items of 390 KB: the first 1 MB page holds two of them.
    const ids = ['p#1', 'p#2', 'p#3', 'p#4', 'p#5', 'p#6'];
    const item = (id: string) => marshall({ id, status: 'INPROGRESS', owner: 'o', expiration: 4102444800, leaseUntil: 1, pad: 'x'.repeat(390_000) });
    for (const id of ids) await client.send(new PutItemCommand({ TableName: table, Item: item(id) }));
    // The second page fails as it would after the SDK's retries.
    const send = DynamoDBClient.prototype.send;
    const pages = new Map<string, number>();
    const spy = jest.spyOn(DynamoDBClient.prototype, 'send').mockImplementation(async function (this: DynamoDBClient, ...args: unknown[]) {
      const [command] = args;
      if (command instanceof ScanCommand && command.input.TableName === table) {
        const key = JSON.stringify(command.input.ExclusiveStartKey ?? null);
        if (!pages.has(key)) pages.set(key, pages.size);
        if (pages.get(key)! > 0) throw serviceError('InternalServerError', 'Internal server error', 'server');
      }
      return (send as (...rest: unknown[]) => Promise<unknown>).apply(this, args);
    } as never);
    let runs: [Run, Run];
    try {
      runs = await Promise.all([cli('stuck', '--table', table, '--json'), cli('stuck', '--table', table)]);
    } finally {
      spy.mockRestore();
    }
    const [asJson, text] = runs;
    const found = JSON.parse(asJson.stdout) as RecordSummary[];
    expect(found.length).toBeGreaterThan(0);
    expect(found.length).toBeLessThan(ids.length);
    expect(found.every((summary) => ids.includes(summary.key) && summary.status === 'INPROGRESS')).toBe(true);
    const scanning = `lambda-idempotency: stuck scans the whole table ${table}: every item is read (and billed), page by page.\n`;
    const partial = `lambda-idempotency: InternalServerError: Internal server error\nlambda-idempotency: the scan of ${table} stopped before its end: the ${found.length} INPROGRESS record${found.length === 1 ? '' : 's'} past the lease listed are those of the pages it read; run stuck again for the others.\n`;
    expect(asJson).toEqual({ code: 1, stdout: asJson.stdout, stderr: `${scanning}${partial}` });
    expect(text).toEqual({ code: 1, stdout: expect.any(String), stderr: `${scanning}${partial}` });
    // Text lists each record as the scan finds it: the same records, without the count line of a whole scan.
    expect(text.stdout.split('\n')).toEqual([...found.map((summary) => expect.stringMatching(`^${summary.key}  lease ended `)), '']);
  } finally {
    await dropTable(client, table);
  }
});

test('stuck shows whether a stuck attempt stored a fingerprint', async () => {
  const now = Date.now();
  const expiresAt = Math.floor(now / 1000) + 86_400;
  for (const [key, fingerprint] of [
    ['plain', undefined],
    ['checked', 'fp'],
  ] as const) {
    await store.claim({
      key: recordId('cli-stuck-fp', key),
      owner: 'crashed',
      leaseUntil: now - 60_000,
      expiresAt,
      now,
      ...(fingerprint ? { fingerprint } : {}),
    });
  }
  const listed = await cli('stuck', '--table', tableName, '--name', 'cli-stuck-fp', '--json');
  const found = Object.fromEntries((JSON.parse(listed.stdout) as RecordSummary[]).map((summary) => [summary.key, summary.hasFingerprint]));
  expect(found).toEqual({ [recordId('cli-stuck-fp', 'plain')]: false, [recordId('cli-stuck-fp', 'checked')]: true });
});

test("stuck --name on a table shared with Powertools, whose status attribute is named otherwise (only the key and the TTL attribute must match), lists this library's attempts and leaves Powertools' records out", async () => {
  const table = await freshTable(client, 'cli-stuck-shared-names');
  try {
    // Powertools' records share the namespace: its key prefix is the function's name, as this library's `name` is.
    const persistenceStore = new DynamoDBPersistenceLayer({ tableName: table, awsSdkV3Client: client, statusAttr: 'state' });
    const config = new IdempotencyConfig({ eventKeyJmesPath: 'orderId' });
    config.registerLambdaContext(lambdaContext('orders')); // as its handler would: Powertools warns without one
    const charge = powertoolsIdempotent(async (_order: { orderId: string }) => ({ receipt: 'r-1' }), { persistenceStore, config, keyPrefix: 'orders' });
    await charge({ orderId: 'o-1' });
    const now = Date.now();
    const ours = new DynamoDBStore({ tableName: table, client });
    await ours.claim({ key: recordId('orders', 'o-2'), owner: 'crashed', leaseUntil: now - 60_000, expiresAt: Math.floor(now / 1000) + 86_400, now });
    const listed = await cli('stuck', '--table', table, '--name', 'orders', '--json');
    expect({
      code: listed.code,
      keys: listed.code === 0 ? (JSON.parse(listed.stdout) as RecordSummary[]).map((summary) => summary.key) : listed.stderr,
    }).toEqual({
      code: 0,
      keys: [recordId('orders', 'o-2')],
    });
  } finally {
    await dropTable(client, table);
  }
});

test("stuck leaves out an INPROGRESS item without an owner, such as Powertools' in-progress record on a shared table whose lease attribute has the same name", async () => {
  const table = await freshTable(client, 'cli-stuck-shared');
  try {
    const ours = { id: 'orders#ours', status: 'INPROGRESS', owner: 'attempt-1', expiration: 4102444800, leaseUntil: 1 };
    const powertools = { id: 'orders#powertools', status: 'INPROGRESS', expiration: 4102444800, leaseUntil: 1, data: '' };
    for (const item of [ours, powertools]) await client.send(new PutItemCommand({ TableName: table, Item: marshall(item) }));
    const found: string[] = [];
    for await (const summary of stuckRecords({ client, tableName: table, attributes: DEFAULT_ATTRIBUTE_NAMES, now: Date.now })) found.push(summary.key);
    expect(found).toEqual(['orders#ours']);
  } finally {
    await dropTable(client, table);
  }
});

test('each command sends only the requests whose permissions docs/operations.md lists: inspect GetItem, forget GetItem and DeleteItem (DeleteItem alone with --lease-until or --only-if COMPLETED), stuck Scan', async () => {
  const name = 'cli-permissions';
  const { once } = counted(name);
  await once({ orderId: 'done-1' });
  await once({ orderId: 'done-2' });
  const { ids, leaseUntil } = await crashed(name, 'stuck-1', 'stuck-2');
  const [done1, done2] = [recordId(name, 'done-1'), recordId(name, 'done-2')];
  const sentBy = async (...argv: string[]): Promise<string[]> => {
    const send = DynamoDBClient.prototype.send;
    const sent: string[] = [];
    const spy = jest.spyOn(DynamoDBClient.prototype, 'send').mockImplementation(function (this: DynamoDBClient, ...args: unknown[]) {
      sent.push((args[0] as object).constructor.name);
      return (send as (...rest: unknown[]) => Promise<unknown>).apply(this, args);
    } as never);
    try {
      expect((await cliAt(Date.now(), ...argv)).code).toBe(0);
    } finally {
      spy.mockRestore();
    }
    return sent;
  };
  const table = ['--table', tableName];
  expect(await sentBy('inspect', ...table, '--id', done1)).toEqual(['GetItemCommand']);
  expect(await sentBy('stuck', ...table, '--name', name)).toEqual(['ScanCommand']);
  expect(await sentBy('forget', ...table, '--id', done1, '--yes')).toEqual(['GetItemCommand', 'DeleteItemCommand']);
  expect(await sentBy('forget', ...table, '--id', done2, '--only-if', 'COMPLETED', '--yes')).toEqual(['DeleteItemCommand']);
  expect(await sentBy('forget', ...table, '--id', ids[0]!, '--lease-until', String(leaseUntil), '--yes')).toEqual(['DeleteItemCommand']);
  expect(await sentBy('forget', ...table, '--id', ids[1]!, '--only-if', 'INPROGRESS', '--yes')).toEqual(['GetItemCommand', 'DeleteItemCommand']);
  for (const id of [done1, done2, ...ids]) expect(await readItem(client, tableName, id)).toBeUndefined();
});
