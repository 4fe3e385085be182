/**
 * The operator's clock: a laptop, VM or WSL clock runs ahead of the functions' by seconds or
 * minutes. The command judges whether a lease has ended by the earlier of its own clock and the
 * table's (the `Date` of DynamoDB's answers), so a clock ahead never frees, lists as stuck or shows
 * as ended the lease of an attempt that may still be running. DynamoDB Local answers with the time
 * of this machine, the functions' clock here; the command's clock is set ahead of it.
 */
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { localCliEnvironment, type Run, runInProcess } from '../support/cli-in-process.js';
import { endpoint, readItem, recordId, useFreshTable } from '../support/dynamodb.js';

const { client, tableName, store } = useFreshTable({ prefix: 'cli-clock' });

/** The command in this process, its clock `ahead` milliseconds ahead of this machine's. */
function cliAhead(ahead: number, ...argv: string[]): Promise<Run> {
  return runInProcess(localCliEnvironment(), () => Date.now() + ahead, argv);
}

/** An attempt that holds `id`, its lease ending `leaseMillis` from now by the functions' clock. */
async function running(id: string, leaseMillis: number): Promise<number> {
  const now = Date.now();
  const leaseUntil = now + leaseMillis;
  await store.claim({ key: id, owner: 'running', leaseUntil, expiresAt: Math.floor(now / 1000) + 86_400, now });
  return leaseUntil;
}

test('with its clock a minute ahead, forget (plain and --only-if INPROGRESS) refuses an attempt whose lease has 30 s left by the table: nothing is deleted (exit 4)', async () => {
  const id = recordId('clock-ahead-forget', 'o-1');
  const leaseUntil = await running(id, 30_000);
  const item = await readItem(client, tableName, id);
  const plain = await cliAhead(60_000, 'forget', '--table', tableName, '--id', id, '--yes');
  expect(plain).toMatchObject({
    code: 4,
    stdout: expect.stringContaining(`${id} is held by an attempt whose lease ends ${new Date(leaseUntil).toISOString()} (in `),
  });
  expect(plain.stdout).toMatch(/this machine's clock is \d+ s ahead of it\)/);
  expect(await cliAhead(60_000, 'forget', '--table', tableName, '--id', id, '--only-if', 'INPROGRESS', '--yes', '--json')).toMatchObject({
    code: 4,
    stdout: `${JSON.stringify({ id, deleted: false, refused: true, leaseUntil }, null, 2)}\n`,
  });
  expect(await readItem(client, tableName, id)).toEqual(item);
});

test('with its clock a minute ahead, forget that refuses an attempt whose lease is live by its own clock too does not put the refusal on the clocks', async () => {
  const id = recordId('clock-ahead-live', 'o-1');
  const leaseUntil = await running(id, 120_000);
  const refused = await cliAhead(60_000, 'forget', '--table', tableName, '--id', id, '--yes');
  expect(refused).toMatchObject({
    code: 4,
    stdout: expect.stringContaining(`${id} is held by an attempt whose lease ends ${new Date(leaseUntil).toISOString()} (in `),
  });
  expect(refused.stdout).not.toContain("by the table's clock");
  expect(await readItem(client, tableName, id)).toBeDefined();
});

test('with its clock a minute ahead, stuck does not list an attempt whose lease has 30 s left, and inspect does not show it ended', async () => {
  const id = recordId('clock-ahead-stuck', 'o-1');
  await running(id, 30_000);
  expect(await cliAhead(60_000, 'stuck', '--table', tableName, '--name', 'clock-ahead-stuck', '--json')).toMatchObject({ code: 0, stdout: '[]\n' });
  const shown = await cliAhead(60_000, 'inspect', '--table', tableName, '--id', id);
  expect(shown.code).toBe(0);
  expect(shown.stdout).toMatch(/\n {2}lease {8}\S+Z \(in \d+ s\)\n/);
});

test('with its clock a minute ahead, forget still deletes an attempt whose lease ended by the table, and stuck lists it', async () => {
  const id = recordId('clock-ahead-ended', 'o-1');
  const leaseUntil = await running(id, -5_000);
  const listed = await cliAhead(60_000, 'stuck', '--table', tableName, '--name', 'clock-ahead-ended', '--json');
  expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ key: id, leaseUntil })]);
  expect(await cliAhead(60_000, 'forget', '--table', tableName, '--id', id, '--yes')).toMatchObject({
    code: 0,
    stdout: expect.stringContaining(`Deleted ${id}, the attempt whose lease ended `),
  });
  expect(await readItem(client, tableName, id)).toBeUndefined();
});

test("through an endpoint whose answers carry no Date (a proxy that drops it), the command judges leases by this machine's clock alone: forget refuses a live attempt, inspect shows its lease ahead", async () => {
  // DynamoDB Local behind a proxy that forwards each request and its answer without the `Date` header.
  const proxy = createServer((request, response) => {
    const upstream = httpRequest(endpoint(), { method: request.method, path: request.url, headers: request.headers }, (answer) => {
      const { date: _date, ...headers } = answer.headers;
      response.sendDate = false;
      response.writeHead(answer.statusCode!, headers);
      answer.pipe(response);
    });
    request.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const env = localCliEnvironment({ AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` });
  try {
    const id = recordId('clock-no-date', 'o-1');
    const leaseUntil = await running(id, 30_000);
    const item = await readItem(client, tableName, id);
    expect(await runInProcess(env, undefined, ['forget', '--table', tableName, '--id', id, '--yes'])).toMatchObject({
      code: 4,
      stdout: expect.stringContaining(`${id} is held by an attempt whose lease ends ${new Date(leaseUntil).toISOString()} (in `),
    });
    expect(await readItem(client, tableName, id)).toEqual(item);
    const shown = await runInProcess(env, undefined, ['inspect', '--table', tableName, '--id', id]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/\n {2}lease {8}\S+Z \(in \d+ s\)\n/);
  } finally {
    proxy.closeAllConnections();
    await new Promise((resolve) => proxy.close(resolve));
  }
});
