/**
 * The `lambda-idempotency` command as an operator uses it during an incident, against DynamoDB
 * Local: a forget never deletes a call that claimed the key after the record it read.
 */

import { DeleteItemCommand, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { jest } from '@jest/globals';
import { runCli } from '../../lib/cli/run.js';
import { makeIdempotent } from '../../lib/index.js';
import { endpoint, readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { Turnstile } from '../support/gate.js';
import { rejection } from '../support/rejections.js';

const { client, tableName, store } = useFreshTable({ prefix: 'cli-safety' });

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const environment = (): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  AWS_ENDPOINT_URL_DYNAMODB: endpoint(),
  AWS_REGION: 'local',
  AWS_ACCESS_KEY_ID: 'local',
  AWS_SECRET_ACCESS_KEY: 'local',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
});

/** The command in this process; `between` runs once it has read the record, just before its delete is sent. */
async function forgetRaced(between: () => Promise<void>, id: string): Promise<Run> {
  const send = DynamoDBClient.prototype.send;
  let raced = false;
  const spy = jest.spyOn(DynamoDBClient.prototype, 'send').mockImplementation(async function (this: DynamoDBClient, ...args: unknown[]) {
    if (args[0] instanceof DeleteItemCommand && !raced) {
      raced = true;
      await between();
    }
    return (send as (...rest: unknown[]) => Promise<unknown>).apply(this, args);
  } as never);
  const env = environment();
  const saved = { ...process.env };
  Object.assign(process.env, env);
  let stdout = '';
  let stderr = '';
  try {
    const code = await runCli(['forget', '--table', tableName, '--id', id, '--yes'], {
      env,
      now: Date.now,
      stdout: (text) => void (stdout += text),
      stderr: (text) => void (stderr += text),
    });
    return { code, stdout, stderr };
  } finally {
    spy.mockRestore();
    for (const name of Object.keys(env)) if (saved[name] === undefined) delete process.env[name];
    Object.assign(process.env, saved);
    expect(raced).toBe(true);
  }
}

/** Another instance's copy of a function keyed by its argument, which waits at the turnstile. */
function instances(name: string) {
  const turnstile = new Turnstile();
  let runs = 0;
  const handler = async (orderId: string) => {
    runs++;
    await turnstile.enter();
    return `p-${orderId}`;
  };
  return { instance: () => makeIdempotent(handler, { store, name, key: (orderId: string) => orderId }), turnstile, runs: () => runs };
}

test('plain forget of an INPROGRESS record without a lease leaves alone a call that claims the key (its retention ended) between the read and the delete: that call runs alone', async () => {
  const name = 'safety-leaseless';
  const id = recordId(name, 'o-1');
  // Written by an older version (no lease): held until its retention, which ended a minute ago.
  await client.send(
    new PutItemCommand({
      TableName: tableName,
      Item: { id: { S: id }, status: { S: 'INPROGRESS' }, owner: { S: 'older' }, expiration: { N: String(Math.floor(Date.now() / 1000) - 60) } },
    }),
  );
  const { instance, turnstile, runs } = instances(name);
  let retry: Promise<string> | undefined;
  let inside: Awaited<ReturnType<Turnstile['next']>> | undefined;
  const forgot = await forgetRaced(async () => {
    retry = instance()('o-1');
    inside = await turnstile.next();
  }, id);
  expect(forgot).toEqual({
    code: 3,
    stdout: `${id} changed after forget read it INPROGRESS (it completed, or a call claimed it after its retention, or it is gone): nothing deleted.\n`,
    stderr: '',
  });
  // The call that claimed the key still holds it: another instance's duplicate is refused, not run beside it.
  expect((await readItem(client, tableName, id))?.owner?.S).not.toBe('older');
  expect((await rejection(instance()('o-1'))).code).toBe('IN_PROGRESS');
  inside!.open();
  expect(await retry).toBe('p-o-1');
  expect(runs()).toBe(1);
});

test('plain forget of a COMPLETED record leaves alone a call that claims and completes the key (its retention ended) between the read and the delete: the next duplicate replays it', async () => {
  const name = 'safety-recompleted';
  const id = recordId(name, 'o-1');
  const now = Date.now();
  const expiresAt = Math.floor(now / 1000) - 60;
  await store.claim({ key: id, owner: 'earlier', leaseUntil: now - 170_000, expiresAt, now: now - 180_000 });
  expect(await store.complete({ key: id, owner: 'earlier', expiresAt, response: '"p-earlier"', now: now - 175_000 })).toMatchObject({ completed: true });
  let runs = 0;
  const instance = () =>
    makeIdempotent(
      async (orderId: string) => {
        runs++;
        return `p-${orderId}`;
      },
      { store, name, key: (orderId: string) => orderId },
    );
  const forgot = await forgetRaced(async () => {
    expect(await instance()('o-1')).toBe('p-o-1');
  }, id);
  expect(forgot).toEqual({
    code: 3,
    stdout: `${id} changed after forget read it COMPLETED (a call claimed it again after its retention, or it is gone): nothing deleted.\n`,
    stderr: '',
  });
  expect(await instance()('o-1')).toBe('p-o-1');
  expect(runs).toBe(1);
});
