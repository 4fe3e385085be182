/**
 * Key rotation with durable executions: a durable call's sealed outcome is kept for its durable
 * lease, which may be longer than the retention, so `keyById()` must know its key that long.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { type DurableContext, withDurableExecution } from '@aws/durable-execution-sdk-js';
import { aesGcmEncryption, DynamoDBStore, type EncryptionKey, makeIdempotent } from '../../lib/index.js';
import { advanceRunnerClock, startExecution, useDurableRunner } from '../support/durable.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';

const { client, tableName } = useFreshTable({ prefix: 'encdurable' });
useDurableRunner();

const CALLBACK = 'approval';

test('a durable call sealed with a key, replayed past its retention but within its durable lease, opens with that key: dropped from keyById() after the retention alone, the replay fails closed', async () => {
  const k1: EncryptionKey = { id: 'k1', key: randomBytes(32) };
  const k2: EncryptionKey = { id: 'k2', key: randomBytes(32) };
  const known = new Map([
    [k1.id, k1.key],
    [k2.id, k2.key],
  ]);
  let current = k1;
  const asked: string[] = [];
  const encryption = aesGcmEncryption({
    currentKey: () => current,
    keyById: (id) => {
      asked.push(id);
      const key = known.get(id);
      if (key === undefined) throw new Error(`no key ${id}`);
      return key;
    },
  });
  const name = `enc-durable-${randomUUID()}`;
  const charges: string[] = [];
  const charge = makeIdempotent(
    async (orderId: string, _ctx: DurableContext) => {
      charges.push(orderId);
      return `charged ${orderId}`;
    },
    { store: new DynamoDBStore({ tableName, client, encryption }), name, expiresAfterSeconds: 60, durableLeaseSeconds: 3_600 },
  );
  const handler = withDurableExecution(async (orderId: string, ctx: DurableContext) => {
    const charged = await charge(orderId, ctx);
    await ctx.waitForCallback(CALLBACK, async () => undefined);
    return [charged, await charge(orderId, ctx)];
  });
  const [kept, dropped] = [randomUUID(), randomUUID()];
  const keptRun = startExecution<string[]>(handler, kept, CALLBACK);
  const droppedRun = startExecution<string[]>(handler, dropped, CALLBACK);
  await keptRun.suspended();
  await droppedRun.suspended();
  await advanceRunnerClock(2 * 60_000);
  // Past the retention (60 s), each record sealed with k1 is kept for the durable lease (an hour).
  for (const orderId of [kept, dropped]) {
    const item = await readItem(client, tableName, recordId(name, orderId));
    expect(item?.keyId?.S).toBe('k1');
    expect(Number(item?.expiration?.N)).toBeGreaterThan(Math.floor(Date.now() / 1000) + 3_000);
  }
  current = k2;
  await keptRun.resume('approved');
  const resumed = await keptRun.result;
  expect(resumed.getStatus()).toBe('SUCCEEDED');
  expect(resumed.getResult()).toEqual([`charged ${kept}`, `charged ${kept}`]);
  expect(new Set(asked)).toEqual(new Set(['k1']));
  // k1 dropped once the retention has passed, as if that were long enough: the replay fails closed, nothing runs again.
  known.delete(k1.id);
  await droppedRun.resume('approved');
  await expect(droppedRun.result).rejects.toMatchObject({ code: 'STORE_FAILURE', isUnrecoverableInvocation: true, cause: { message: 'no key k1' } });
  // Each order charged once (the two executions start side by side, in either order).
  expect([...charges].sort()).toEqual([kept, dropped].sort());
}, 120_000);
