/**
 * The `lambda-idempotency` command on the records of a live durable execution, against DynamoDB
 * Local and AWS's local durable runner: the execution's own INPROGRESS record (held for its durable
 * lease) and the COMPLETED record of a call in its body, which every replay of the execution replays.
 */

import { randomUUID } from 'node:crypto';
import { type DurableContext, withDurableExecution } from '@aws/durable-execution-sdk-js';
import { makeIdempotent, recordIdOf } from '../../lib/index.js';
import { localCliEnvironment, runInProcess } from '../support/cli-in-process.js';
import { startExecution, useDurableRunner } from '../support/durable.js';
import { readItem, useFreshTable } from '../support/dynamodb.js';

const { client, tableName, store } = useFreshTable({ prefix: 'cli-durable' });
useDurableRunner();

/** The command in this process, on the runner's clock. */
const cli = (...args: string[]) => runInProcess(localCliEnvironment(), undefined, [...args, '--table', tableName]);

/** An execution that charges in its body (given the durable context), suspends on a callback, then charges again. */
async function suspendedExecution() {
  const charges: string[] = [];
  const bodyName = `body-charge-${randomUUID()}`;
  const name = `orders-${randomUUID()}`;
  const charge = makeIdempotent(
    async (orderId: string, _ctx: DurableContext) => {
      charges.push(orderId);
      return `charged ${orderId}`;
    },
    { store, name: bodyName },
  );
  const handler = withDurableExecution(
    makeIdempotent(
      async (orderId: string, ctx: DurableContext) => {
        const charged = await charge(orderId, ctx);
        await ctx.waitForCallback('approval', async () => undefined);
        return [charged, await charge(orderId, ctx)];
      },
      { store, name },
    ),
  );
  const orderId = randomUUID();
  const execution = startExecution<string[]>(handler, orderId, 'approval');
  await execution.suspended();
  return { charges, execution, orderId, executionId: recordIdOf({ name, key: orderId }), bodyId: recordIdOf({ name: bodyName, key: orderId }), name };
}

test('a suspended execution’s record is not stuck, and forget refuses it (exit 4), with and without --only-if INPROGRESS', async () => {
  const { execution, executionId, name } = await suspendedExecution();
  const stuck = await cli('stuck', '--name', name, '--json');
  expect([stuck.code, JSON.parse(stuck.stdout)]).toEqual([0, []]);
  for (const onlyIf of [[], ['--only-if', 'INPROGRESS']]) {
    const refused = await cli('forget', '--id', executionId, ...onlyIf, '--yes', '--json');
    expect(refused.code).toBe(4);
    expect(JSON.parse(refused.stdout)).toMatchObject({ id: executionId, deleted: false, refused: true });
  }
  expect((await readItem(client, tableName, executionId))?.status?.S).toBe('INPROGRESS');
  await execution.resume('approved');
  expect((await execution.result).getStatus()).toBe('SUCCEEDED');
});

test('forget refuses the COMPLETED record of a call in a durable execution’s body (exit 4): the suspended execution’s replay would run the call again', async () => {
  const { charges, execution, orderId, bodyId } = await suspendedExecution();
  const refused = await cli('forget', '--id', bodyId, '--yes');
  expect(refused.code).toBe(4);
  expect(refused.stdout).toBe(
    `${bodyId} was written by a durable execution, which replays it on every resume: forgetting it while the execution is suspended would run the call again, so nothing was deleted. ` +
      'If you know the execution has ended, add --only-if COMPLETED.\n',
  );
  const json = await cli('forget', '--id', bodyId, '--yes', '--json');
  expect([json.code, JSON.parse(json.stdout)]).toEqual([4, { id: bodyId, deleted: false, refused: true }]);
  await execution.resume('approved');
  const resumed = await execution.result;
  expect(resumed.getResult()).toEqual([`charged ${orderId}`, `charged ${orderId}`]);
  expect(charges).toEqual([orderId]);
  // Once the execution has ended, the operator who knows it deletes the record.
  const forced = await cli('forget', '--id', bodyId, '--only-if', 'COMPLETED', '--yes');
  expect(forced.code).toBe(0);
  expect(await readItem(client, tableName, bodyId)).toBeUndefined();
});
