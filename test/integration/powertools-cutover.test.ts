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
import httpErrorHandler from '@middy/http-error-handler';
import httpJsonBodyParser from '@middy/http-json-body-parser';
import type { Context, APIGatewayProxyEventV2 as Request } from 'aws-lambda';
import { idempotency, makeIdempotent } from '../../lib/index.js';
import { lambdaContext } from '../../lib/testing/index.js';
import { recordId, scanItems, useFreshTable } from '../support/dynamodb.js';
import { Turnstile } from '../support/gate.js';
import { httpEvent } from '../support/identity-events.js';

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

test("while traffic shifts to the second deployment, a duplicate that reaches the first is answered from this library's record", async () => {
  const turnstile = new Turnstile();
  const { charged, during, after } = deployments(turnstile);
  // Handled by the new version alone, then its duplicate reaches a version still wrapped by both.
  const handled = after({ paymentId: 'p-shift' });
  (await turnstile.next()).open();
  const answer = await handled;
  expect(await during({ paymentId: 'p-shift' })).toEqual(answer);
  // Still running on the new version: the duplicate on the old one is refused.
  const running = after({ paymentId: 'p-shift-flight' });
  const inside = await turnstile.next();
  await expect(during({ paymentId: 'p-shift-flight' })).rejects.toMatchObject({ code: 'IN_PROGRESS' });
  inside.open();
  await running;
  expect(charged).toEqual(['p-shift', 'p-shift-flight']);
});

test("a handler Powertools' makeIdempotent wrapped without middy: this library's wrapper goes inside it, and an old request is answered once", async () => {
  const charged: string[] = [];
  const charge = async (event: Charge, _context: Context) => {
    charged.push(event.paymentId);
    return { receipt: `${event.paymentId}/${charged.length}` };
  };
  const powertools = () => ({
    persistenceStore: new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client }),
    config: new IdempotencyConfig({ eventKeyJmesPath: 'paymentId' }),
    keyPrefix: 'wrapped',
  });
  const ours = () => makeIdempotent(charge, { store, name: 'wrapped', key: (event) => event.paymentId });
  const before = powertoolsIdempotent(charge, powertools());
  const during = powertoolsIdempotent(ours(), powertools());
  const after = ours();
  const context = () => lambdaContext({ functionName: 'wrapped' });
  const old = await before({ paymentId: 'p-wrapped-old' }, context());
  expect(await during({ paymentId: 'p-wrapped-old' }, context())).toEqual(old);
  const fresh = await during({ paymentId: 'p-wrapped-new' }, context());
  expect(await after({ paymentId: 'p-wrapped-new' }, context())).toEqual(fresh);
  expect(charged).toEqual(['p-wrapped-old', 'p-wrapped-new']);
});

describe('an old deployment whose Powertools middleware read a body parsed by another middleware', () => {
  // Before the cutover: `http-json-body-parser` ran first, so the key expression read `body` as an object.
  // During it, Powertools wraps the whole middy handler and sees the event as Lambda delivered it.
  const request = (paymentId: string) => httpEvent('url', {}, { body: JSON.stringify({ paymentId }) }) as Request;
  const parsedId = (event: Request) => (event.body as unknown as Charge).paymentId;
  const rawId = (event: Request) => (JSON.parse(event.body!) as Charge).paymentId;

  function parsedDeployments(duringKeyExpression: string) {
    const charged: string[] = [];
    const charge = async (event: Request) => {
      charged.push(parsedId(event));
      return { receipt: `${parsedId(event)}/${charged.length}` };
    };
    // Each deployment has its own persistence layer: Powertools keeps the first configuration a layer is given.
    const persistenceStore = () => new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client });
    const old = { persistenceStore: persistenceStore(), config: new IdempotencyConfig({ eventKeyJmesPath: 'body.paymentId' }), keyPrefix: 'parsed' };
    const cutover = { persistenceStore: persistenceStore(), config: new IdempotencyConfig({ eventKeyJmesPath: duringKeyExpression }), keyPrefix: 'parsed' };
    const powertoolsOnly = middy(charge).use(httpJsonBodyParser()).use(makeHandlerIdempotent(old));
    const both = powertoolsIdempotent(
      middy(charge)
        .use(idempotency<Request>({ store, key: rawId }))
        .use(httpJsonBodyParser()),
      cutover,
    );
    const context = () => lambdaContext({ functionName: 'parsed' });
    return {
      charged,
      powertoolsOnly: (event: Request) => powertoolsOnly(event, context()),
      both: (event: Request) => both(event, context()),
    };
  }

  test('the same key expression finds nothing in the raw event, and Powertools runs the duplicate without idempotency', async () => {
    const { charged, powertoolsOnly, both } = parsedDeployments('body.paymentId');
    await powertoolsOnly(request('p-parsed-same'));
    await both(request('p-parsed-same'));
    expect(charged).toEqual(['p-parsed-same', 'p-parsed-same']);
  });

  test('the expression rewritten to parse the raw body selects the same value, so Powertools finds its record and replays it', async () => {
    const { charged, powertoolsOnly, both } = parsedDeployments('powertools_json(body).paymentId');
    const old = await powertoolsOnly(request('p-parsed-rewritten'));
    expect(await both(request('p-parsed-rewritten'))).toEqual(old);
    expect(charged).toEqual(['p-parsed-rewritten']);
  });
});

describe('a handler whose errors an error handler answers, during the cutover', () => {
  /** A charge that fails once (the provider is down), then succeeds; the deployment with both libraries. */
  function failingOnce(errorHandlerOutside: boolean) {
    const charged: string[] = [];
    const charge = async (event: Request) => {
      const { paymentId } = JSON.parse(event.body!) as Charge;
      charged.push(paymentId);
      if (charged.length === 1) throw new Error('provider unavailable');
      return { statusCode: 201, body: `${paymentId}/${charged.length}` };
    };
    const powertools = {
      persistenceStore: new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client }),
      config: new IdempotencyConfig({ eventKeyJmesPath: 'powertools_json(body).paymentId' }),
      keyPrefix: errorHandlerOutside ? 'answered-outside' : 'answered-inside',
    };
    const ours = () => idempotency<Request>({ store, key: (event) => (JSON.parse(event.body!) as Charge).paymentId });
    const both = errorHandlerOutside
      ? middy(powertoolsIdempotent(middy(charge).use(ours()), powertools)).use(httpErrorHandler({ logger: false }))
      : powertoolsIdempotent(
          middy(charge)
            .use(ours())
            .use(httpErrorHandler({ logger: false })),
          powertools,
        );
    const name = powertools.keyPrefix;
    return { charged, both: (event: Request) => both(event, lambdaContext({ functionName: name })) as Promise<{ statusCode: number }> };
  }
  const request = (paymentId: string) => httpEvent('url', {}, { body: JSON.stringify({ paymentId }) }) as Request;

  test("inside Powertools' wrapper, the 500 it answers is stored by Powertools as a success, and the retry gets it again without running", async () => {
    const { charged, both } = failingOnce(false);
    expect((await both(request('p-answered-inside'))).statusCode).toBe(500);
    expect((await both(request('p-answered-inside'))).statusCode).toBe(500);
    expect(charged).toEqual(['p-answered-inside']);
  });

  test("outside Powertools' wrapper, the error reaches Powertools, which releases its record, and the retry runs", async () => {
    const { charged, both } = failingOnce(true);
    expect((await both(request('p-answered-outside'))).statusCode).toBe(500);
    expect(await both(request('p-answered-outside'))).toMatchObject({ statusCode: 201 });
    expect(charged).toEqual(['p-answered-outside', 'p-answered-outside']);
  });
});
