/**
 * The `lambda-idempotency` command as an operator uses it during an incident, against DynamoDB
 * Local: a forget never deletes a call that claimed the key after the record it read, and a record
 * it cannot find is reported with what to check rather than as a bare "no record".
 */

import { execFile } from 'node:child_process';
import { DeleteItemCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { jest } from '@jest/globals';
import { DynamoDBStore, makeIdempotent } from '../../lib/index.js';
import { idempotencyTableSchema } from '../../lib/table-schema.js';
import { createTable } from '../../tools/tables.js';
import { useCliBundle } from '../support/cli-bundle.js';
import { localCliEnvironment, type Run, runInProcess } from '../support/cli-in-process.js';
import { dropTable, endpoint, readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import type { Turnstile } from '../support/gate.js';
import { completedPastRetention, heldRetries } from '../support/held-retries.js';
import { serviceError } from '../support/mocked-dynamodb.js';
import { rejection } from '../support/rejections.js';

const { client, tableName, store } = useFreshTable({ prefix: 'cli-safety' });
const main = useCliBundle();

/** The command in this process, on DynamoDB Local, with the environment a shell would give it. */
function cli(...args: string[]): Promise<Run> {
  return runInProcess(localCliEnvironment(), undefined, args);
}

/** The command as a child process (built from source for the file), on DynamoDB Local. */
function cliProcess(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [main(), ...args], { env: localCliEnvironment() }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

/** The command in this process; `between` runs once it has read the record: just before its delete is sent, or before it reads an item it could not read as a record again. */
async function forgetRaced(between: () => Promise<void>, id: string, before: 'delete' | 'second read' = 'delete'): Promise<Run> {
  const send = DynamoDBClient.prototype.send;
  let raced = false;
  let reads = 0;
  const spy = jest.spyOn(DynamoDBClient.prototype, 'send').mockImplementation(async function (this: DynamoDBClient, ...args: unknown[]) {
    const at = before === 'delete' ? args[0] instanceof DeleteItemCommand : args[0] instanceof GetItemCommand && ++reads === 2;
    if (at && !raced) {
      raced = true;
      await between();
    }
    return (send as (...rest: unknown[]) => Promise<unknown>).apply(this, args);
  } as never);
  try {
    return await runInProcess(localCliEnvironment(), undefined, ['forget', '--table', tableName, '--id', id, '--yes']);
  } finally {
    spy.mockRestore();
    expect(raced).toBe(true);
  }
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
  const { instance, turnstile, runs } = heldRetries(store, name);
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
  await completedPastRetention(store, id, Date.now());
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

test.each([
  ['its owner (a call claimed it again)', { owner: { S: 'later' } }],
  ['its status', { status: { S: 'INPROGRESS' } }],
  ['a lease (a call took it INPROGRESS)', { leaseUntil: { N: String(Date.now() + 60_000) } }],
  ['its retention (completed again)', { expiration: { N: String(Math.floor(Date.now() / 1000) + 86_400) } }],
])('plain forget of a COMPLETED record deletes it only as read: a change of %s between the read and the delete keeps it', async (_change, changed) => {
  const id = recordId('safety-fence', Object.keys(changed)[0]);
  const read = { id: { S: id }, status: { S: 'COMPLETED' }, owner: { S: 'earlier' }, expiration: { N: String(Math.floor(Date.now() / 1000) - 60) } };
  await client.send(new PutItemCommand({ TableName: tableName, Item: read }));
  const forgot = await forgetRaced(async () => {
    await client.send(new PutItemCommand({ TableName: tableName, Item: { ...read, ...changed } }));
  }, id);
  expect(forgot).toEqual({
    code: 3,
    stdout: `${id} changed after forget read it COMPLETED (a call claimed it again after its retention, or it is gone): nothing deleted.\n`,
    stderr: '',
  });
  expect(await readItem(client, tableName, id)).toEqual({ ...read, ...changed });
});

test('plain forget of an item it cannot read as a record, which is gone before the delete, reports nothing deleted', async () => {
  const id = recordId('safety-unreadable-gone', 'o-1');
  // No owner, and a status no version wrote: not a record.
  await client.send(new PutItemCommand({ TableName: tableName, Item: { id: { S: id }, status: { S: 'PENDING' } } }));
  const forgot = await forgetRaced(async () => {
    await client.send(new DeleteItemCommand({ TableName: tableName, Key: { id: { S: id } } }));
  }, id);
  expect(forgot).toEqual({
    code: 3,
    stdout: `${id} changed after forget read it (a call claimed it, or it was written again): nothing deleted.\n`,
    stderr: '',
  });
});

test.each([
  ['before the delete', 'delete'],
  ['before forget reads it again to delete it', 'second read'],
] as const)('plain forget of an item it cannot read as a record, which a call replaces with its claim %s, leaves that claim alone', async (_, before) => {
  const id = recordId(`safety-unreadable-claimed-${before.replace(' ', '-')}`, 'o-1');
  await client.send(new PutItemCommand({ TableName: tableName, Item: { id: { S: id }, status: { S: 'PENDING' } } }));
  const claim = {
    id: { S: id },
    status: { S: 'INPROGRESS' },
    owner: { S: 'new-call' },
    leaseUntil: { N: String(Date.now() + 60_000) },
    expiration: { N: '9999999999' },
  };
  const forgot = await forgetRaced(
    async () => {
      await client.send(new PutItemCommand({ TableName: tableName, Item: claim }));
    },
    id,
    before,
  );
  expect(forgot).toMatchObject({ code: 3, stdout: `${id} changed after forget read it (a call claimed it, or it was written again): nothing deleted.\n` });
  expect(await readItem(client, tableName, id)).toEqual(claim);
});

test('plain forget whose delete DynamoDB refuses (a missing grant) fails with that refusal, exit 1, instead of saying the record changed', async () => {
  const id = recordId('safety-delete-refused', 'o-1');
  const item = { id: { S: id }, status: { S: 'COMPLETED' }, owner: { S: 'o' }, expiration: { N: '9999999999' }, response: { S: '"paid"' } };
  await client.send(new PutItemCommand({ TableName: tableName, Item: item }));
  const refusal = serviceError(
    'AccessDeniedException',
    `User: arn:aws:sts::123456789012:assumed-role/ops/me is not authorized to perform: dynamodb:DeleteItem on resource: ${tableName}`,
  );
  const forgot = await forgetRaced(() => Promise.reject(refusal), id);
  expect(forgot).toMatchObject({ code: 1, stdout: '', stderr: expect.stringContaining('lambda-idempotency: AccessDeniedException: User: ') });
  expect(await readItem(client, tableName, id)).toEqual(item);
});

test('a key, id or name that misses the record the function uses says what to check (the number and string twins of a key, an id copied in part, a qualified name) and which Region it read', async () => {
  const name = 'safety-miss';
  let runs = 0;
  const charge = makeIdempotent(
    async (order: { orderId: number }) => {
      runs++;
      return `p-${order.orderId}`;
    },
    { store, name, key: (order) => order.orderId },
  );
  await charge({ orderId: 123 });
  const id = recordId(name, 123);
  const asString = recordId(name, '123');
  const [byNumber, spaced, byString, forgetString, cut, trailing, cutJson, qualified, arn] = await Promise.all([
    cli('inspect', '--table', tableName, '--name', name, '--key', '123', '--json'),
    cli('inspect', '--table', tableName, '--name', name, '--key', ' 123 ', '--json'),
    cli('inspect', '--table', tableName, '--name', name, '--key', '"123"'),
    cli('forget', '--table', tableName, '--name', name, '--key', '"123"', '--yes'),
    cli('inspect', '--table', tableName, '--id', id.slice(0, -1)),
    cli('forget', '--table', tableName, '--id', `${id} `, '--yes'),
    cli('inspect', '--table', tableName, '--id', id.slice(0, -1), '--json'),
    cli('inspect', '--table', tableName, '--name', `${name}:live`, '--key', '123'),
    cli('inspect', '--table', tableName, '--name', `arn:aws:lambda:eu-west-1:000000000000:function:${name}`, '--key', '123'),
  ]);
  // The key the function selected, a number, finds its record; JSON's own spaces around it change nothing.
  expect(byNumber).toMatchObject({ code: 0, stderr: '' });
  expect(JSON.parse(byNumber.stdout)).toMatchObject({ key: id, status: 'COMPLETED' });
  expect(spaced.stdout).toBe(byNumber.stdout);
  expect(byString).toEqual({
    code: 3,
    stdout: `No record ${asString} in ${tableName} (local). The number key 123 is another record: --key 123.\n`,
    stderr: '',
  });
  expect(forgetString).toEqual({
    code: 3,
    stdout: `No record ${asString} in ${tableName} (local): nothing deleted. The number key 123 is another record: --key 123.\n`,
    stderr: '',
  });
  const cutHint = ` Its hash ${JSON.stringify(id.slice(name.length + 1, -1))} is not one the library writes (43 characters of base64url): copy the id whole, as logs show it.`;
  expect(cut).toEqual({ code: 3, stdout: `No record ${id.slice(0, -1)} in ${tableName} (local).${cutHint}\n`, stderr: '' });
  expect(trailing).toMatchObject({ code: 3, stdout: expect.stringContaining(`Its hash ${JSON.stringify(`${id.slice(name.length + 1)} `)} is not one`) });
  // JSON stays what scripts read; the hint goes to standard error.
  expect(cutJson).toEqual({ code: 3, stdout: 'null\n', stderr: `lambda-idempotency:${cutHint}\n` });
  for (const [run, given] of [
    [qualified, `${name}:live`],
    [arn, `arn:aws:lambda:eu-west-1:000000000000:function:${name}`],
  ] as const) {
    expect(run).toMatchObject({
      code: 3,
      stdout: expect.stringContaining(` --name ${JSON.stringify(given)} is not a function's name: records are namespaced by the name alone`),
    });
  }
  // Nothing was deleted: a duplicate replays.
  expect(await charge({ orderId: 123 })).toBe('p-123');
  expect(runs).toBe(1);
});

test('a record id or a hash given as --key, which is hashed again as a key, says to give the record id as --id', async () => {
  const name = 'safety-id-as-key';
  const charge = makeIdempotent(async (orderId: string) => `p-${orderId}`, { store, name });
  await charge('o-1');
  const id = recordId(name, 'o-1');
  const hash = id.slice(name.length + 1);
  const [idAsKey, hashAsKey, forgotten, asJson] = await Promise.all([
    cli('inspect', '--table', tableName, '--name', name, '--key', JSON.stringify(id)),
    cli('inspect', '--table', tableName, '--name', name, '--key', JSON.stringify(hash)),
    cli('forget', '--table', tableName, '--name', name, '--key', JSON.stringify(id), '--yes'),
    cli('inspect', '--table', tableName, '--name', name, '--key', JSON.stringify(hash), '--json'),
  ]);
  const hint = ` \`--key\` holds a record id, which is hashed again as a key: give it as --id '${id}'.`;
  expect(idAsKey).toEqual({ code: 3, stdout: `No record ${recordId(name, id)} in ${tableName} (local).${hint}\n`, stderr: '' });
  expect(hashAsKey).toEqual({
    code: 3,
    stdout: `No record ${recordId(name, hash)} in ${tableName} (local). \`--key\` holds a record's hash, which is hashed again as a key: give the record id, --id '${id}'.\n`,
    stderr: '',
  });
  expect(forgotten).toEqual({ code: 3, stdout: `No record ${recordId(name, id)} in ${tableName} (local): nothing deleted.${hint}\n`, stderr: '' });
  expect(asJson).toEqual({
    code: 3,
    stdout: 'null\n',
    stderr: `lambda-idempotency: \`--key\` holds a record's hash, which is hashed again as a key: give the record id, --id '${id}'.\n`,
  });
  // The hint's id finds the record.
  expect(await cli('inspect', '--table', tableName, '--id', id, '--json')).toMatchObject({ code: 0, stdout: expect.stringContaining('"COMPLETED"') });
});

test('a --name or an id whose namespace has spaces around it says to give the name alone, as logs show it', async () => {
  const id = recordId('safety-spaced', 'o-1');
  const [byName, byId] = await Promise.all([
    cli('inspect', '--table', tableName, '--name', 'safety-spaced ', '--key', '"o-1"'),
    cli('forget', '--table', tableName, '--id', ` ${id}`, '--yes'),
  ]);
  expect(byName).toMatchObject({
    code: 3,
    stdout: expect.stringContaining(` --name "safety-spaced " is not a function's name: records are namespaced by the name alone`),
  });
  expect(byId).toMatchObject({
    code: 3,
    stdout: expect.stringMatching(/: nothing deleted\. Its namespace " safety-spaced" has spaces around it: copy the id as logs show it\.\n$/),
  });
});

test('a table keyed by another attribute than the store default, given without --attributes, fails with what to give (exit 1)', async () => {
  const table = `cli-safety-pk-${Date.now()}`;
  await createTable(client, table, { ...idempotencyTableSchema, partitionKey: { name: 'pk', type: 'S' } });
  try {
    const run = await cli('inspect', '--table', table, '--id', recordId('safety-pk', 'o-1'));
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr: expect.stringMatching(
        new RegExp(
          `^lambda-idempotency: ValidationException: .+: the key attribute of ${table} is not \`id\`: give --attributes '\\{"key":"<its name>"\\}', with every name the functions' store uses\\.\\n$`,
        ),
      ),
    });
  } finally {
    await dropTable(client, table);
  }
});

test('a table keyed by `id` of another type, or by `id` and a sort key, fails with what is wrong with its key (exit 1), not a bare ValidationException', async () => {
  const numeric = `cli-safety-n-${Date.now()}`;
  const sorted = `cli-safety-sk-${Date.now()}`;
  await createTable(client, numeric, { ...idempotencyTableSchema, partitionKey: { name: 'id', type: 'N' } });
  await createTable(client, sorted, { ...idempotencyTableSchema, sortKey: { name: 'sk', type: 'S' } });
  try {
    const id = recordId('safety-keyed', 'o-1');
    const [inspected, forgot] = await Promise.all([cli('inspect', '--table', numeric, '--id', id), cli('forget', '--table', sorted, '--id', id, '--yes')]);
    for (const [run, table] of [
      [inspected, numeric],
      [forgot, sorted],
    ] as const) {
      const advice = `: ${table} is not keyed by \`id\`, a string, alone: the functions' store needs such a table; if its key attribute has another name, give --attributes '{"key":"<its name>"}'.\n`;
      expect(run).toEqual({ code: 1, stdout: '', stderr: expect.stringMatching(/^lambda-idempotency: ValidationException: /) });
      expect(run.stderr.slice(-advice.length)).toBe(advice);
    }
  } finally {
    await Promise.all([dropTable(client, numeric), dropTable(client, sorted)]);
  }
});

test('an HTTP record addressed by the raw header value, quoted or with spaces, says that the middleware reads the key without them', async () => {
  const address = ['--name', 'safety-http', '--method', 'POST', '--route', 'POST /payments'];
  const [quoted, spaced] = await Promise.all([
    cli('inspect', '--table', tableName, ...address, '--http-key', '"order-42"'),
    cli('forget', '--table', tableName, ...address, '--http-key', 'order-42 ', '--yes'),
  ]);
  expect(quoted).toMatchObject({
    code: 3,
    stdout: expect.stringMatching(/ \(local\)\. The quotes of a quoted Idempotency-Key are not part of the key: give --http-key without them\.\n$/),
  });
  expect(spaced).toMatchObject({
    code: 3,
    stdout: expect.stringMatching(/: nothing deleted\. The middleware drops the spaces around an Idempotency-Key: give --http-key without them\.\n$/),
  });
});

test('stuck --name on a table keyed by `id` whose records use another status attribute, given without --attributes, fails with what to give (exit 1) instead of finding none', async () => {
  const table = `cli-safety-stuck-state-${Date.now()}`;
  await createTable(client, table, idempotencyTableSchema);
  try {
    const now = Date.now();
    const named = new DynamoDBStore({ tableName: table, client, attributes: { status: 'state' } });
    await named.claim({ key: recordId('safety-state', 'o-1'), owner: 'crashed', leaseUntil: now - 60_000, expiresAt: Math.floor(now / 1000) + 86_400, now });
    const scanning = `lambda-idempotency: stuck scans the whole table ${table}: every item is read (and billed), page by page.\n`;
    expect(await cli('stuck', '--table', table, '--name', 'safety-state')).toEqual({
      code: 1,
      stdout: '',
      stderr: `${scanning}lambda-idempotency: Records of safety-state in ${table} have no \`status\` attribute: they use other attribute names than these; give --attributes with every name the functions' store uses.\n`,
    });
    const given = await cli('stuck', '--table', table, '--name', 'safety-state', '--attributes', '{"status":"state"}', '--json');
    expect({ code: given.code, keys: (JSON.parse(given.stdout) as Array<{ key: string }>).map((summary) => summary.key) }).toEqual({
      code: 0,
      keys: [recordId('safety-state', 'o-1')],
    });
  } finally {
    await dropTable(client, table);
  }
});

test('stuck --name on a table whose records name the lease or the owner otherwise, given without --attributes, fails with what to give (exit 1) instead of finding none', async () => {
  const table = `cli-safety-stuck-lease-${Date.now()}`;
  await createTable(client, table, idempotencyTableSchema);
  try {
    const now = Date.now();
    const scanning = `lambda-idempotency: stuck scans the whole table ${table}: every item is read (and billed), page by page.\n`;
    for (const [field, name] of [
      ['leaseUntil', 'lease_until'],
      ['owner', 'holder'],
    ] as const) {
      const named = new DynamoDBStore({ tableName: table, client, attributes: { [field]: name } });
      const namespace = `safety-${field}`;
      await named.claim({ key: recordId(namespace, 'o-1'), owner: 'crashed', leaseUntil: now - 60_000, expiresAt: Math.floor(now / 1000) + 86_400, now });
      expect(await cli('stuck', '--table', table, '--name', namespace)).toEqual({
        code: 1,
        stdout: '',
        stderr: `${scanning}lambda-idempotency: Records of ${namespace} in ${table} have no \`${field}\` attribute: they use other attribute names than these; give --attributes with every name the functions' store uses.\n`,
      });
      const given = await cli('stuck', '--table', table, '--name', namespace, '--attributes', JSON.stringify({ [field]: name }), '--json');
      expect({ code: given.code, keys: (JSON.parse(given.stdout) as Array<{ key: string }>).map((summary) => summary.key) }).toEqual({
        code: 0,
        keys: [recordId(namespace, 'o-1')],
      });
    }
    // An INPROGRESS record without a lease under these names and no attribute of other names (written by
    // hand, or by an older version) is held until its retention: not stuck, and no reason to stop.
    await client.send(
      new PutItemCommand({
        TableName: table,
        Item: {
          id: { S: recordId('safety-old', 'o-1') },
          status: { S: 'INPROGRESS' },
          owner: { S: 'o' },
          expiration: { N: String(Math.floor(now / 1000) + 60) },
        },
      }),
    );
    const old = await cli('stuck', '--table', table, '--name', 'safety-old', '--json');
    expect({ code: old.code, stdout: old.stdout }).toEqual({ code: 0, stdout: '[]\n' });
  } finally {
    await dropTable(client, table);
  }
});

test('stuck on a table whose records use other attribute names, given without --attributes, fails with what to give (exit 1) instead of finding none', async () => {
  const table = `cli-safety-stuck-pk-${Date.now()}`;
  const attributes = { key: 'pk', status: 'state', expiration: 'ttl', leaseUntil: 'lease', owner: 'holder' };
  await createTable(client, table, { ...idempotencyTableSchema, partitionKey: { name: 'pk', type: 'S' }, timeToLiveAttribute: 'ttl' });
  try {
    const now = Date.now();
    const named = new DynamoDBStore({ tableName: table, client, attributes });
    await named.claim({ key: recordId('safety-stuck', 'o-1'), owner: 'crashed', leaseUntil: now - 60_000, expiresAt: Math.floor(now / 1000) + 86_400, now });
    const scanning = `lambda-idempotency: stuck scans the whole table ${table}: every item is read (and billed), page by page.\n`;
    for (const name of [[], ['--name', 'safety-stuck']]) {
      expect(await cli('stuck', '--table', table, ...name)).toEqual({
        code: 1,
        stdout: '',
        stderr: `${scanning}lambda-idempotency: Items of ${table} have no \`id\` attribute: the key attribute of ${table} is not \`id\`: give --attributes '{"key":"<its name>"}', with every name the functions' store uses.\n`,
      });
    }
    // With the names the functions' store uses, the same table lists its stuck attempt.
    const given = await cli('stuck', '--table', table, '--attributes', JSON.stringify(attributes), '--json');
    expect({ code: given.code, keys: (JSON.parse(given.stdout) as Array<{ key: string }>).map((summary) => summary.key) }).toEqual({
      code: 0,
      keys: [recordId('safety-stuck', 'o-1')],
    });
  } finally {
    await dropTable(client, table);
  }
});

test('forget --lease-until or --only-if COMPLETED that misses the record for a mistyped address says what to check', async () => {
  const now = Date.now();
  const id = recordId('safety-fenced-miss', 'o-1');
  await store.claim({ key: id, owner: 'crashed', leaseUntil: now - 60_000, expiresAt: Math.floor(now / 1000) + 86_400, now });
  const lease = new Date(now - 60_000).toISOString();
  // The id copied from a `stuck` line with the space after it; the key's number twin of a string key.
  const [pasted, pastedJson, twin] = await Promise.all([
    cli('forget', '--table', tableName, '--id', `${id} `, '--lease-until', lease, '--yes'),
    cli('forget', '--table', tableName, '--id', `${id} `, '--lease-until', lease, '--yes', '--json'),
    cli('forget', '--table', tableName, '--name', 'safety-fenced-miss', '--key', '123', '--only-if', 'COMPLETED', '--yes'),
  ]);
  const hashHint = ` Its hash ${JSON.stringify(`${id.slice('safety-fenced-miss#'.length)} `)} is not one the library writes (43 characters of base64url): copy the id whole, as logs show it.`;
  expect(pasted).toEqual({
    code: 3,
    stdout: `No attempt of ${id}  whose lease ends at ${lease}: nothing deleted (another attempt took the record over, or it completed or is gone).${hashHint}\n`,
    stderr: '',
  });
  expect(pastedJson).toEqual({
    code: 3,
    stdout: `${JSON.stringify({ id: `${id} `, deleted: false, leaseUntil: now - 60_000 }, null, 2)}\n`,
    stderr: `lambda-idempotency:${hashHint}\n`,
  });
  expect(twin).toMatchObject({ code: 3, stdout: expect.stringMatching(/: nothing deleted\. The string key "123" is another record: --key '"123"'\.\n$/) });
  // The stuck attempt is still there, for the right command.
  expect((await store.inspect(id))?.leaseUntil).toBe(now - 60_000);
});

test('stuck --name with a qualified function name or spaces, which namespaces no record, says what to give instead of only finding none', async () => {
  const now = Date.now();
  await store.claim({ key: recordId('safety-stuck-name', 'o-1'), owner: 'crashed', leaseUntil: now - 60_000, expiresAt: Math.floor(now / 1000) + 86_400, now });
  const [qualified, spaced] = await Promise.all([
    cli('stuck', '--table', tableName, '--name', 'safety-stuck-name:live'),
    cli('stuck', '--table', tableName, '--name', 'safety-stuck-name ', '--json'),
  ]);
  const hint = (given: string) =>
    `lambda-idempotency: --name ${JSON.stringify(given)} is not a function's name: records are namespaced by the name alone (no ARN, alias, version or spaces), or by the \`name\` option.\n`;
  const scanning = `lambda-idempotency: stuck scans the whole table ${tableName}: every item is read (and billed), page by page.\n`;
  expect(qualified).toEqual({ code: 0, stdout: '0 INPROGRESS records past the lease.\n', stderr: `${scanning}${hint('safety-stuck-name:live')}` });
  expect(spaced).toEqual({ code: 0, stdout: '[]\n', stderr: `${scanning}${hint('safety-stuck-name ')}` });
  expect(await cli('stuck', '--table', tableName, '--name', 'safety-stuck-name', '--json')).toMatchObject({
    code: 0,
    stdout: expect.stringContaining(recordId('safety-stuck-name', 'o-1')),
  });
});

test('plain forget of a live attempt written under other attribute names, given without --attributes, deletes nothing and says what to give (exit 1)', async () => {
  const now = Date.now();
  const attributes = { status: 'state', owner: 'holder', leaseUntil: 'lease', expiration: 'ttl' };
  const named = new DynamoDBStore({ tableName, client, attributes });
  const id = recordId('safety-foreign', 'o-1');
  await named.claim({ key: id, owner: 'running', leaseUntil: now + 60_000, expiresAt: Math.floor(now / 1000) + 86_400, now });
  const item = await readItem(client, tableName, id);
  const forgot = await cli('forget', '--table', tableName, '--id', id, '--yes');
  expect(forgot).toEqual({
    code: 1,
    stdout: '',
    stderr: `lambda-idempotency: ${id} in ${tableName} holds its status under another attribute than \`status\` (\`state\`): it was written under other attribute names than these, so nothing was deleted; give --attributes with every name the functions' store uses.\n`,
  });
  expect(await readItem(client, tableName, id)).toEqual(item);
  // With the names the functions' store uses, forget sees the live attempt and refuses it.
  expect(await cli('forget', '--table', tableName, '--id', id, '--yes', '--attributes', JSON.stringify(attributes))).toMatchObject({ code: 4 });
  expect(await readItem(client, tableName, id)).toEqual(item);
});

test.each([
  ['an owner name it leaves out', { owner: 'holder' }, { expiration: 'expiration' }, 'owner', ['holder']],
  ['a wrong owner name', { owner: 'holder' }, { owner: 'own' }, 'own', ['holder']],
  ['a lease name it leaves out', { leaseUntil: 'lease' }, { owner: 'owner' }, 'leaseUntil', ['lease']],
  ['wrong lease and retention names', { leaseUntil: 'lease', expiration: 'ttl' }, { leaseUntil: 'until', expiration: 'expires' }, 'until', ['lease', 'ttl']],
] as const)(
  'forget given --attributes with the right status name but %s refuses a live attempt, naming the attribute it could not find (exit 1)',
  async (_case, functions, given, missing, others) => {
    const now = Date.now();
    const named = new DynamoDBStore({ tableName, client, attributes: functions });
    const id = recordId(`safety-partial-${Object.values(given).join('-')}`, 'o-1');
    await named.claim({ key: id, owner: 'running', leaseUntil: now + 60_000, expiresAt: Math.floor(now / 1000) + 86_400, now });
    const item = await readItem(client, tableName, id);
    const expected = {
      code: 1,
      stdout: '',
      stderr: `lambda-idempotency: ${id} in ${tableName} has no \`${missing}\` attribute but holds ${others.map((name) => `\`${name}\``).join(', ')}, which none of these attribute names is: it was written under other attribute names than these, so nothing was deleted; give --attributes with every name the functions' store uses.\n`,
    };
    const attributes = JSON.stringify(given);
    expect(await cli('forget', '--table', tableName, '--id', id, '--yes', '--attributes', attributes)).toEqual(expected);
    expect(await cli('forget', '--table', tableName, '--id', id, '--yes', '--attributes', attributes, '--only-if', 'INPROGRESS')).toMatchObject({ code: 1 });
    expect(await readItem(client, tableName, id)).toEqual(item);
    // With the names the functions' store uses, forget sees the live attempt and refuses it.
    expect(await cli('forget', '--table', tableName, '--id', id, '--yes', '--attributes', JSON.stringify(functions))).toMatchObject({ code: 4 });
    expect(await readItem(client, tableName, id)).toEqual(item);
  },
);

test.each([
  ['a live attempt whose lease', { leaseUntil: 'lease' }, 'leaseUntil', ['lease'], 'lease        none'],
  ['a record whose retention', { expiration: 'ttl' }, 'expiration', ['ttl'], 'expires      none'],
] as const)(
  'inspect of %s is named otherwise, given without --attributes, says what to give (exit 1) instead of showing none',
  async (_case, functions, missing, others, shown) => {
    const now = Date.now();
    const named = new DynamoDBStore({ tableName, client, attributes: functions });
    const id = recordId(`safety-inspect-${missing}`, 'o-1');
    await named.claim({ key: id, owner: 'running', leaseUntil: now + 60_000, expiresAt: Math.floor(now / 1000) + 86_400, now });
    expect(await cli('inspect', '--table', tableName, '--id', id)).toEqual({
      code: 1,
      stdout: '',
      stderr: `lambda-idempotency: ${id} in ${tableName} has no \`${missing}\` attribute but holds ${others.map((name) => `\`${name}\``).join(', ')}, which none of these attribute names is: it was written under other attribute names than these; give --attributes with every name the functions' store uses.\n`,
    });
    const given = await cli('inspect', '--table', tableName, '--id', id, '--attributes', JSON.stringify(functions));
    expect(given.code).toBe(0);
    expect(given.stdout).not.toContain(shown);
  },
);

/** The words of a command line as a POSIX shell splits it (`sh` itself, so the test trusts no splitter of its own). */
function shellWords(line: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('sh', ['-c', `printf '%s\\0' ${line}`], (error, stdout) => (error ? reject(error) : resolve(stdout.split('\0').slice(0, -1))));
  });
}

test("the forget command an unreadable item's error names holds the flags that found it (--table, --region, --attributes), quoted for a shell even with ' and spaces, and deletes it as given", async () => {
  const id = recordId("it's a name", 'o-1');
  const attributes = JSON.stringify({ fingerprint: "finger's print" });
  await client.send(
    new PutItemCommand({ TableName: tableName, Item: { id: { S: id }, status: { S: 'DONE' }, owner: { S: 'o' }, expiration: { N: '4102444800' } } }),
  );
  const inspected = await cli('inspect', '--table', tableName, '--region', 'local', '--attributes', attributes, '--id', id);
  expect(inspected).toMatchObject({ code: 1, stdout: '' });
  const suggested = /`(lambda-idempotency forget [^`]*)`/.exec(inspected.stderr)?.[1];
  expect(suggested).toBeDefined();
  const words = await shellWords(suggested!);
  expect(words).toEqual(['lambda-idempotency', 'forget', '--table', tableName, '--region', 'local', '--attributes', attributes, '--id', id, '--yes']);
  // --only-if refuses to read it too, and names the same command.
  const fenced = await cli('forget', '--table', tableName, '--region', 'local', '--attributes', attributes, '--id', id, '--only-if', 'INPROGRESS', '--yes');
  expect(fenced).toMatchObject({ code: 1, stderr: expect.stringContaining(suggested!) });
  expect(await cliProcess(...words.slice(1))).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Deleted /) });
  expect(await readItem(client, tableName, id)).toBeUndefined();
});

test("a store's error for an item it cannot read names the forget command with its client's Region and its attribute names, quoted for a shell, which deletes it", async () => {
  const attributes = { fingerprint: "finger's print" };
  // A Region other than the one the command's environment gives (DynamoDB Local shares one database across Regions).
  const elsewhere = new DynamoDBClient({ endpoint: endpoint(), region: 'eu-south-2', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  const named = new DynamoDBStore({ tableName, client: elsewhere, attributes });
  const id = recordId("it's another name", 'o-1');
  await client.send(
    new PutItemCommand({ TableName: tableName, Item: { id: { S: id }, status: { S: 'DONE' }, owner: { S: 'o' }, expiration: { N: '4102444800' } } }),
  );
  const error: unknown = await named.read(id).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  const suggested = /`(lambda-idempotency forget [^`]*)`/.exec((error as Error).message)?.[1];
  expect(await shellWords(suggested!)).toEqual([
    'lambda-idempotency',
    'forget',
    '--table',
    tableName,
    '--region',
    'eu-south-2',
    '--attributes',
    JSON.stringify(attributes),
    '--id',
    id,
    '--yes',
  ]);
  expect(await cliProcess(...(await shellWords(suggested!)).slice(1))).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Deleted /) });
  expect(await readItem(client, tableName, id)).toBeUndefined();
});
