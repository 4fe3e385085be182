/**
 * The cutover from Powertools' idempotency that the migration guide prescribes, against DynamoDB
 * Local with real Powertools records: this library never reads Powertools' records, so for one
 * Powertools retention period the handler is wrapped by both, and Powertools answers the duplicates
 * of the requests it handled alone.
 */

import { createHash } from 'node:crypto';
import { IdempotencyConfig, makeIdempotent as powertoolsIdempotent } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { makeHandlerIdempotent } from '@aws-lambda-powertools/idempotency/middleware';
import middy from '@middy/core';
import { idempotency } from '../../lib/index.js';
import { lambdaContext } from '../../lib/testing/index.js';
import { recordId, scanItems, useFreshTable } from '../support/dynamodb.js';
import { Turnstile } from '../support/gate.js';

const { client, tableName, store } = useFreshTable({ prefix: 'cutover' });

interface Charge {
  readonly paymentId: string;
}

/** The same payment function deployed three times: before, during and after the cutover. */
function deployments(turnstile?: Turnstile) {
  const charged: string[] = [];
  const charge = async (event: Charge) => {
    charged.push(event.paymentId);
    await turnstile?.enter();
    return { receipt: `${event.paymentId}/${charged.length}` };
  };
  // Powertools' configuration stays exactly as it was, or it would not find its own records.
  const powertools = {
    persistenceStore: new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client }),
    config: new IdempotencyConfig({ eventKeyJmesPath: 'paymentId' }),
    keyPrefix: 'payments',
  };
  const ours = () => idempotency<Charge>({ store, key: (event) => event.paymentId });
  const context = () => lambdaContext({ functionName: 'payments' });
  const before = middy(charge).use(makeHandlerIdempotent(powertools));
  const during = powertoolsIdempotent(middy(charge).use(ours()), powertools);
  const after = middy(charge).use(ours());
  return {
    charged,
    before: (event: Charge) => before(event, context()),
    during: (event: Charge) => during(event, context()),
    after: (event: Charge) => after(event, context()),
  };
}

test('switching straight over runs a duplicate of a request Powertools handled again', async () => {
  const { charged, before, after } = deployments();
  await before({ paymentId: 'p-straight' });
  await after({ paymentId: 'p-straight' });
  expect(charged).toEqual(['p-straight', 'p-straight']);
});

test('with both for one retention period, every duplicate is answered, before, during and after the cutover', async () => {
  const { charged, before, during, after } = deployments();
  const old = await before({ paymentId: 'p-old' });

  // During: Powertools replays what it handled alone; new requests are recorded by both.
  expect(await during({ paymentId: 'p-old' })).toEqual(old);
  const fresh = await during({ paymentId: 'p-new' });
  expect(await during({ paymentId: 'p-new' })).toEqual(fresh);

  // After: this library alone replays what it recorded during the cutover.
  expect(await after({ paymentId: 'p-new' })).toEqual(fresh);
  expect(charged).toEqual(['p-old', 'p-new']);

  // Both keep records of p-new in the one table, under ids of different shapes that cannot collide:
  // Powertools' padded base64 of an MD5, this library's 43-character base64url of a SHA-256.
  const ids = (await scanItems(client, tableName)).map((item) => item.id!.S!);
  const powertoolsId = `payments#${createHash('md5').update(JSON.stringify('p-new')).digest('base64')}`;
  expect(ids).toEqual(expect.arrayContaining([powertoolsId, recordId('payments', 'p-new')]));
  expect(powertoolsId).toMatch(/^payments#[A-Za-z0-9+/]{22}==$/);
  expect(recordId('payments', 'p-new')).toMatch(/^payments#[\w-]{43}$/);
});

test('a duplicate that reaches the new deployment while the old one still runs the request is refused as in progress', async () => {
  const turnstile = new Turnstile();
  const { charged, before, during } = deployments(turnstile);
  const running = before({ paymentId: 'p-flight' });
  const inside = await turnstile.next();
  await expect(during({ paymentId: 'p-flight' })).rejects.toMatchObject({ name: 'IdempotencyAlreadyInProgressError' });
  inside.open();
  await running;
  expect(charged).toEqual(['p-flight']);
});
