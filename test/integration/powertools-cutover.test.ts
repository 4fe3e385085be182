/**
 * The cutover from Powertools' idempotency that the migration guide prescribes, against DynamoDB
 * Local with real Powertools records: this library never reads Powertools' records, so for one
 * Powertools retention period the function runs behind both, this library's middleware first and
 * Powertools' wrapper around the handler inside it, and Powertools answers the duplicates of the
 * requests it handled alone. Layered the other way round (Powertools' wrapper around the middy
 * handler), Powertools stores answers that are not the handler's: those tests show why not.
 */

import { createHash } from 'node:crypto';
import { IdempotencyConfig, makeIdempotent as powertoolsIdempotent } from '@aws-lambda-powertools/idempotency';
import { CachePersistenceLayer } from '@aws-lambda-powertools/idempotency/cache';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { makeHandlerIdempotent } from '@aws-lambda-powertools/idempotency/middleware';
import middy from '@middy/core';
import httpErrorHandler from '@middy/http-error-handler';
import httpJsonBodyParser from '@middy/http-json-body-parser';
import type { Context, APIGatewayProxyEventV2 as Request } from 'aws-lambda';
import { httpIdempotency, idempotency, makeIdempotent } from '../../lib/index.js';
import { lambdaContext } from '../../lib/testing/index.js';
import { recordId, scanItems, testClient, unreachableClient, useFreshTable } from '../support/dynamodb.js';
import { Turnstile } from '../support/gate.js';
import { httpEvent } from '../support/identity-events.js';
import { rejection, thrown } from '../support/rejections.js';

const { client, tableName, store } = useFreshTable({ prefix: 'cutover' });

interface Charge {
  readonly paymentId: string;
}

/** The same payment function deployed three times: before, during and after the cutover. */
function deployments(turnstile?: Turnstile, isFinalError?: (error: unknown) => boolean) {
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
  const ours = () => idempotency<Charge>({ store, key: (event) => event.paymentId, ...(isFinalError ? { isFinalError } : {}) });
  const context = () => lambdaContext({ functionName: 'payments' });
  const before = middy(charge).use(makeHandlerIdempotent(powertools));
  const during = middy(powertoolsIdempotent(charge, powertools)).use(ours());
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

test('rolling back: the first deployment answers what the second handled; the version with Powertools alone runs it again, and a final error the first stored too', async () => {
  const { charged, before, during, after } = deployments();
  const answer = await after({ paymentId: 'p-rollback' });
  expect(await during({ paymentId: 'p-rollback' })).toEqual(answer);
  expect(charged).toEqual(['p-rollback']);
  await before({ paymentId: 'p-rollback' });
  expect(charged).toEqual(['p-rollback', 'p-rollback']);

  // A declined charge, stored by this library as final in the first deployment: Powertools released its record.
  const declined = Object.assign(new Error('card declined'), { name: 'CardDeclined' });
  const decline = async (event: Charge) => {
    charged.push(event.paymentId);
    throw declined;
  };
  const powertools = {
    persistenceStore: new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client }),
    config: new IdempotencyConfig({ eventKeyJmesPath: 'paymentId' }),
    keyPrefix: 'payments',
  };
  const first = middy(powertoolsIdempotent(decline, powertools)).use(
    idempotency<Charge>({ store, key: (event) => event.paymentId, isFinalError: (error) => error === declined }),
  );
  const old = middy(decline).use(makeHandlerIdempotent(powertools));
  const context = () => lambdaContext({ functionName: 'payments' });
  expect((await thrown(first({ paymentId: 'p-declined' }, context()))).name).toBe('CardDeclined');
  expect((await thrown(first({ paymentId: 'p-declined' }, context()))).name).toBe('CardDeclined');
  expect(charged).toEqual(['p-rollback', 'p-rollback', 'p-declined']);
  await thrown(old({ paymentId: 'p-declined' }, context()));
  expect(charged).toEqual(['p-rollback', 'p-rollback', 'p-declined', 'p-declined']);
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

/**
 * A duplicate that reaches the new deployment while the old one runs `paymentId` is refused by
 * Powertools, which leaves this library's key free (nothing stored, whatever `isFinalError` says):
 * once the old version has finished, the duplicate gets its answer, charged once.
 */
async function inFlightDuplicate(paymentId: string, isFinalError?: (error: unknown) => boolean): Promise<void> {
  const turnstile = new Turnstile();
  const { charged, before, during } = deployments(turnstile, isFinalError);
  const running = before({ paymentId });
  const inside = await turnstile.next();
  await expect(during({ paymentId })).rejects.toMatchObject({ name: 'IdempotencyAlreadyInProgressError' });
  expect((await scanItems(client, tableName)).map((item) => item.id!.S!)).not.toContain(recordId('payments', paymentId));
  inside.open();
  const answer = await running;
  expect(await during({ paymentId })).toEqual(answer);
  expect(charged).toEqual([paymentId]);
}

test('a duplicate that reaches the new deployment while the old one still runs the request is refused as in progress', async () => {
  await inFlightDuplicate('p-flight');
});

test("a catch-all isFinalError never stores Powertools' refusal of an in-flight duplicate: once the old version has finished, the duplicate gets its answer", async () => {
  await inFlightDuplicate('p-final', () => true);
});

test("Powertools' middleware .use()d after this library's, instead of its makeIdempotent inside: an in-progress duplicate deletes the running request's record, and the next one runs concurrently", async () => {
  const turnstile = new Turnstile();
  const { charged, before } = deployments(turnstile);
  const charge = async (event: Charge) => {
    charged.push(event.paymentId);
    return { receipt: 'again' };
  };
  const persistenceStore = new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client });
  const middlewareInside = middy(charge)
    .use(idempotency<Charge>({ store, key: (event) => event.paymentId }))
    .use(makeHandlerIdempotent({ persistenceStore, config: new IdempotencyConfig({ eventKeyJmesPath: 'paymentId' }), keyPrefix: 'payments' }));
  const both = (event: Charge) => middlewareInside(event, lambdaContext({ functionName: 'payments' }));
  const running = before({ paymentId: 'p-middleware' });
  const inside = await turnstile.next();
  await expect(both({ paymentId: 'p-middleware' })).rejects.toMatchObject({ name: 'IdempotencyAlreadyInProgressError' });
  // Its onError (#5675) deleted the old version's record: the next duplicate runs while the first still does.
  expect(await both({ paymentId: 'p-middleware' })).toEqual({ receipt: 'again' });
  inside.open();
  await running;
  expect(charged).toEqual(['p-middleware', 'p-middleware']);
});

test('Powertools finds its records by table, key expression, key prefix and hash function, not by its retention: another retention still replays, another hash function runs again', async () => {
  const { charged, before } = deployments();
  const old = await before({ paymentId: 'p-config' });
  const redeployed = (config: ConstructorParameters<typeof IdempotencyConfig>[0]) => {
    const persistenceStore = new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client });
    const handler = middy(async (event: Charge) => {
      charged.push(event.paymentId);
      return { receipt: 'again' };
    }).use(makeHandlerIdempotent({ persistenceStore, config: new IdempotencyConfig(config), keyPrefix: 'payments' }));
    return (event: Charge) => handler(event, lambdaContext({ functionName: 'payments' }));
  };
  expect(await redeployed({ eventKeyJmesPath: 'paymentId', expiresAfterSeconds: 60 })({ paymentId: 'p-config' })).toEqual(old);
  expect(charged).toEqual(['p-config']);
  expect(await redeployed({ eventKeyJmesPath: 'paymentId', hashFunction: 'sha256' })({ paymentId: 'p-config' })).toEqual({ receipt: 'again' });
  expect(charged).toEqual(['p-config', 'p-config']);
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

test("Lambda's tenant isolation mode: behind both, Powertools answers a tenant's request with the response to another tenant's equal request, and this library keeps it, after the second deployment too", async () => {
  const runs: string[] = [];
  const tenantOf = (context: Context) => (context as Context & { readonly tenantId: string }).tenantId;
  const charge = async (event: Charge, context: Context) => {
    runs.push(tenantOf(context));
    return { paymentId: event.paymentId, tenant: tenantOf(context) };
  };
  const ours = () => idempotency<Charge>({ store, key: (event) => event.paymentId });
  const powertools = {
    persistenceStore: new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client }),
    config: new IdempotencyConfig({ eventKeyJmesPath: 'paymentId' }),
    keyPrefix: 'tenants',
  };
  const during = middy(powertoolsIdempotent(charge, powertools)).use(ours());
  const after = middy(charge).use(ours());
  const as = (handler: (event: Charge, context: Context) => Promise<unknown>, tenantId: string) =>
    handler({ paymentId: 'p-tenant' }, lambdaContext({ functionName: 'tenants', tenantId }));
  expect(await as(during, 'blue')).toEqual({ paymentId: 'p-tenant', tenant: 'blue' });
  // Each tenant has its own record here, but Powertools' record of the payment is the tenants' one.
  expect(await as(during, 'green')).toEqual({ paymentId: 'p-tenant', tenant: 'blue' });
  expect(await as(after, 'green')).toEqual({ paymentId: 'p-tenant', tenant: 'blue' });
  expect(runs).toEqual(['blue']);
});

test("a handler Powertools' makeIdempotent wrapped without middy: this library's wrapper goes around it, and an old request is answered once", async () => {
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
  const ours = <F extends typeof charge>(fn: F) => makeIdempotent(fn, { store, name: 'wrapped', key: (event) => event.paymentId });
  const before = powertoolsIdempotent(charge, powertools());
  const during = ours(powertoolsIdempotent(charge, powertools()));
  const after = ours(charge);
  const context = () => lambdaContext({ functionName: 'wrapped' });
  const old = await before({ paymentId: 'p-wrapped-old' }, context());
  expect(await during({ paymentId: 'p-wrapped-old' }, context())).toEqual(old);
  const fresh = await during({ paymentId: 'p-wrapped-new' }, context());
  expect(await after({ paymentId: 'p-wrapped-new' }, context())).toEqual(fresh);
  expect(charged).toEqual(['p-wrapped-old', 'p-wrapped-new']);
});

describe('a function whose Powertools configuration checks the payload (payloadValidationJmesPath)', () => {
  interface CheckedCharge extends Charge {
    readonly amount: number;
  }
  /** Powertools alone, then the first deployment (both) and the second (this library alone); `firstChecks`: whether the first has the second's fingerprint. */
  function checkedDeployments(prefix: string, firstChecks: boolean, isFinalError?: (error: unknown) => boolean) {
    const charged: string[] = [];
    const charge = async (event: CheckedCharge) => {
      charged.push(event.paymentId);
      return { receipt: `${event.paymentId}/${event.amount}/${charged.length}` };
    };
    const powertools = () => ({
      persistenceStore: new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client }),
      config: new IdempotencyConfig({ eventKeyJmesPath: 'paymentId', payloadValidationJmesPath: 'amount' }),
      keyPrefix: prefix,
    });
    const ours = (checks: boolean) =>
      idempotency<CheckedCharge>({
        store,
        key: (event) => event.paymentId,
        ...(checks ? { fingerprint: (event) => event.amount } : {}),
        ...(isFinalError ? { isFinalError } : {}),
      });
    const powertoolsOnly = middy(charge).use(makeHandlerIdempotent(powertools()));
    const first = middy(powertoolsIdempotent(charge, powertools())).use(ours(firstChecks));
    const second = middy(charge).use(ours(true));
    const call = (handler: typeof powertoolsOnly) => (event: CheckedCharge) => handler(event, lambdaContext({ functionName: prefix }));
    return { charged, powertoolsOnly: call(powertoolsOnly), first: call(first), second: call(second) };
  }

  test('this library given the same fingerprint in both deployments: another amount is refused in both, whether Powertools or this library holds the key; the same amount replays', async () => {
    const { charged, powertoolsOnly, first, second } = checkedDeployments('checked', true);
    const old = await powertoolsOnly({ paymentId: 'p-checked-old', amount: 100 });
    expect((await thrown(first({ paymentId: 'p-checked-old', amount: 999 }))).name).toBe('IdempotencyValidationError');
    expect(await first({ paymentId: 'p-checked-old', amount: 100 })).toEqual(old);
    expect((await rejection(first({ paymentId: 'p-checked-old', amount: 999 }))).code).toBe('PAYLOAD_MISMATCH');

    const fresh = await first({ paymentId: 'p-checked-new', amount: 100 });
    expect((await rejection(first({ paymentId: 'p-checked-new', amount: 999 }))).code).toBe('PAYLOAD_MISMATCH');
    expect(await second({ paymentId: 'p-checked-new', amount: 100 })).toEqual(fresh);
    expect((await rejection(second({ paymentId: 'p-checked-new', amount: 999 }))).code).toBe('PAYLOAD_MISMATCH');
    expect(charged).toEqual(['p-checked-old', 'p-checked-new']);
  });

  test("a fingerprint given only in the second deployment: the first replays another amount, and the second refuses the same request's retry as PAYLOAD_MISMATCH", async () => {
    const { charged, first, second } = checkedDeployments('unchecked', false);
    const fresh = await first({ paymentId: 'p-unchecked', amount: 100 });
    expect(await first({ paymentId: 'p-unchecked', amount: 999 })).toEqual(fresh);
    expect((await rejection(second({ paymentId: 'p-unchecked', amount: 100 }))).code).toBe('PAYLOAD_MISMATCH');
    expect(charged).toEqual(['p-unchecked']);
  });

  test("a catch-all isFinalError never stores Powertools' refusal of another amount: the original request's retry still gets its answer", async () => {
    const { charged, powertoolsOnly, first, second } = checkedDeployments('checked-final', true, () => true);
    const old = await powertoolsOnly({ paymentId: 'p-checked-final', amount: 100 });
    expect((await thrown(first({ paymentId: 'p-checked-final', amount: 999 }))).name).toBe('IdempotencyValidationError');
    expect(await first({ paymentId: 'p-checked-final', amount: 100 })).toEqual(old);
    expect(await second({ paymentId: 'p-checked-final', amount: 100 })).toEqual(old);
    expect(charged).toEqual(['p-checked-final']);
  });
});

/**
 * The first deployment (Powertools' `makeIdempotent` inside this library's middleware, whose
 * `isFinalError` keeps every error) named `name`, with Powertools sending through the client given.
 */
function catchAllDeployment(name: string) {
  const charged: string[] = [];
  const charge = async (event: Charge) => {
    charged.push(event.paymentId);
    return { receipt: `${event.paymentId}/${charged.length}` };
  };
  const both = (powertoolsClient: typeof client) =>
    middy(
      powertoolsIdempotent(charge, {
        persistenceStore: new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: powertoolsClient }),
        config: new IdempotencyConfig({ eventKeyJmesPath: 'paymentId' }),
        keyPrefix: name,
      }),
    ).use(idempotency<Charge>({ store, key: (event) => event.paymentId, isFinalError: () => true }));
  return { charged, both, context: () => lambdaContext({ functionName: name }) };
}

test("a catch-all isFinalError never stores Powertools' failure to claim (IdempotencyPersistenceLayerError): the function did not run, and the retry runs it", async () => {
  const { charged, both, context } = catchAllDeployment('claim-failed');
  const unreachable = await unreachableClient();
  try {
    expect((await thrown(both(unreachable)({ paymentId: 'p-claim-failed' }, context()))).name).toBe('IdempotencyPersistenceLayerError');
  } finally {
    unreachable.destroy();
  }
  expect(charged).toEqual([]);
  expect(await both(client)({ paymentId: 'p-claim-failed' }, context())).toEqual({ receipt: 'p-claim-failed/1' });
  expect(charged).toEqual(['p-claim-failed']);
});

test("a catch-all isFinalError never stores Powertools' cache layer finding no record where another attempt recovered an orphan (IdempotencyItemNotFoundError): the function did not run, and the retry runs it", async () => {
  const charged: string[] = [];
  const charge = async (event: Charge) => {
    charged.push(event.paymentId);
    return { receipt: `${event.paymentId}/${charged.length}` };
  };
  // Redis as Powertools' cache layer meets it: an in-progress record without a lease (an orphan, to
  // it) that another attempt holds the lock to recover, and deletes (its function failed) before
  // this attempt reads it again.
  const values = new Map<string, string>();
  let recordReads = 0;
  const cache = {
    async get(name: string) {
      if (!name.endsWith(':lock') && ++recordReads === 2) values.delete(name);
      return values.get(name) ?? null;
    },
    async set(name: string, value: unknown, options?: { readonly NX?: boolean }) {
      if (options?.NX && values.has(name)) return null;
      values.set(name, String(value));
      return 'OK';
    },
    async del(keys: string[]) {
      for (const key of keys) values.delete(key);
      return keys.length;
    },
  };
  const powertoolsKey = `orphan#${createHash('md5').update(JSON.stringify('p-orphan')).digest('base64')}`;
  values.set(powertoolsKey, JSON.stringify({ status: 'INPROGRESS', expiration: Math.floor(Date.now() / 1000) + 3600 }));
  values.set(`${powertoolsKey}:lock`, 'true');
  const both = middy(
    powertoolsIdempotent(charge, {
      persistenceStore: new CachePersistenceLayer({ client: cache }),
      config: new IdempotencyConfig({ eventKeyJmesPath: 'paymentId' }),
      keyPrefix: 'orphan',
    }),
  ).use(idempotency<Charge>({ store, key: (event) => event.paymentId, isFinalError: () => true }));
  const context = () => lambdaContext({ functionName: 'orphan' });
  expect((await thrown(both({ paymentId: 'p-orphan' }, context()))).name).toBe('IdempotencyItemNotFoundError');
  expect(charged).toEqual([]);
  expect(await both({ paymentId: 'p-orphan' }, context())).toEqual({ receipt: 'p-orphan/1' });
  expect(charged).toEqual(['p-orphan']);
});

test("a catch-all isFinalError still stores Powertools' failure to complete its record: the function ran, and the retry gets that error instead of running it again", async () => {
  const { charged, both, context } = catchAllDeployment('completion-failed');
  // Powertools claims with PutItem and completes with UpdateItem: a refused UpdateItem fails its completion only.
  const refusing = testClient();
  refusing.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'UpdateItemCommand')
        throw Object.assign(new Error('User is not authorized to perform: dynamodb:UpdateItem'), { name: 'AccessDeniedException' });
      return next(args);
    },
    { step: 'initialize', name: 'refuseUpdates' },
  );
  const handler = both(refusing);
  try {
    const first = await thrown(handler({ paymentId: 'p-completion-failed' }, context()));
    expect([first.name, first.message]).toEqual(['IdempotencyPersistenceLayerError', 'Failed to update success record to idempotency store']);
    const retry = await thrown(handler({ paymentId: 'p-completion-failed' }, context()));
    expect([retry.name, retry.message]).toEqual([first.name, first.message]);
    expect(charged).toEqual(['p-completion-failed']);
  } finally {
    refusing.destroy();
  }
});

describe("an old deployment whose Powertools middleware stored a response another middleware's after had changed", () => {
  /** An `after` of the application's own that makes the handler's result an HTTP response: applied twice, it nests one in the other. */
  const asHttpResponse = () => ({
    after: (request: { response: unknown }) => {
      request.response = { statusCode: 200, body: JSON.stringify(request.response) };
    },
  });

  /**
   * Before the cutover, Powertools' middleware came first, so it stored what `asHttpResponse` made of
   * the result; the first deployment puts Powertools' wrapper around the function alone, or around a
   * middy handler holding the middlewares that were inside its middleware.
   */
  function wrappedDeployments(prefix: string, inside: boolean) {
    const charged: string[] = [];
    const charge = async (event: Charge) => {
      charged.push(event.paymentId);
      return { receipt: `${event.paymentId}/${charged.length}` };
    };
    // Each deployment has its own persistence layer, as each runs in its own functions.
    const powertools = () => ({
      persistenceStore: new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client }),
      config: new IdempotencyConfig({ eventKeyJmesPath: 'paymentId' }),
      keyPrefix: prefix,
    });
    const ours = () => idempotency<Charge>({ store, key: (event) => event.paymentId });
    const powertoolsOnly = middy(charge).use(makeHandlerIdempotent(powertools())).use(asHttpResponse());
    const first = inside
      ? middy(powertoolsIdempotent(middy(charge).use(asHttpResponse()), powertools())).use(ours())
      : middy(powertoolsIdempotent(charge, powertools())).use(ours()).use(asHttpResponse());
    const second = middy(charge).use(ours()).use(asHttpResponse());
    const context = () => lambdaContext({ functionName: prefix });
    // What the caller gets: an HTTP response, or what a replay made of one.
    const answer = (handler: typeof second) => (event: Charge) => handler(event, context()) as Promise<unknown>;
    return { charged, powertoolsOnly: answer(powertoolsOnly), first: answer(first), second: answer(second) };
  }

  test('its wrapper around the function alone: a replay of an old record passes through that after again, which this library keeps, and a rollback replays a new request without it', async () => {
    const { charged, powertoolsOnly, first, second } = wrappedDeployments('response-outside', false);
    const old = await powertoolsOnly({ paymentId: 'p-response-old' });
    expect(old).toEqual({ statusCode: 200, body: JSON.stringify({ receipt: 'p-response-old/1' }) });
    const replay = (await first({ paymentId: 'p-response-old' })) as { statusCode: number; body: string };
    expect([replay.statusCode, JSON.parse(replay.body)]).toEqual([200, old]);
    expect(await second({ paymentId: 'p-response-old' })).toEqual(replay);

    const fresh = await first({ paymentId: 'p-response-new' });
    expect(fresh).toEqual({ statusCode: 200, body: JSON.stringify({ receipt: 'p-response-new/2' }) });
    expect(await powertoolsOnly({ paymentId: 'p-response-new' })).toEqual({ receipt: 'p-response-new/2' });
    expect(charged).toEqual(['p-response-old', 'p-response-new']);
  });

  test('its wrapper around a middy handler holding the middlewares that were inside its middleware: both deployments answer every duplicate as the request was answered', async () => {
    const { charged, powertoolsOnly, first, second } = wrappedDeployments('response-inside', true);
    const old = await powertoolsOnly({ paymentId: 'p-response-old' });
    expect(await first({ paymentId: 'p-response-old' })).toEqual(old);
    expect(await second({ paymentId: 'p-response-old' })).toEqual(old);

    const fresh = await first({ paymentId: 'p-response-new' });
    expect(fresh).toEqual({ statusCode: 200, body: JSON.stringify({ receipt: 'p-response-new/2' }) });
    expect(await first({ paymentId: 'p-response-new' })).toEqual(fresh);
    expect(await second({ paymentId: 'p-response-new' })).toEqual(fresh);
    expect(await powertoolsOnly({ paymentId: 'p-response-new' })).toEqual(fresh);
    expect(charged).toEqual(['p-response-old', 'p-response-new']);
  });
});

describe('an old deployment whose Powertools middleware read a body parsed by another middleware', () => {
  // Before the cutover: `http-json-body-parser` ran first, so the key expression read `body` as an object.
  const request = (paymentId: string) => httpEvent('url', {}, { body: JSON.stringify({ paymentId }) }) as Request;
  const parsedId = (event: Request) => (event.body as unknown as Charge).paymentId;
  const rawId = (event: Request) => (JSON.parse(event.body!) as Charge).paymentId;

  function parsedDeployments(powertoolsAround: boolean) {
    const charged: string[] = [];
    const charge = async (event: Request) => {
      charged.push(parsedId(event));
      return { receipt: `${parsedId(event)}/${charged.length}` };
    };
    // Each deployment has its own persistence layer: Powertools keeps the first configuration a layer is given.
    const powertools = () => ({
      persistenceStore: new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client }),
      config: new IdempotencyConfig({ eventKeyJmesPath: 'body.paymentId' }),
      keyPrefix: powertoolsAround ? 'parsed-around' : 'parsed-inside',
    });
    const ours = () => idempotency<Request>({ store, key: rawId });
    const powertoolsOnly = middy(charge).use(httpJsonBodyParser()).use(makeHandlerIdempotent(powertools()));
    const both = powertoolsAround
      ? powertoolsIdempotent(middy(charge).use(ours()).use(httpJsonBodyParser()), powertools())
      : middy(powertoolsIdempotent(charge, powertools())).use(ours()).use(httpJsonBodyParser());
    const context = () => lambdaContext({ functionName: powertools().keyPrefix });
    return {
      charged,
      powertoolsOnly: (event: Request) => powertoolsOnly(event, context()),
      both: (event: Request) => both(event, context()),
    };
  }

  test('inside, Powertools reads the event the handler gets, parsed as before: the same key expression finds the old record', async () => {
    const { charged, powertoolsOnly, both } = parsedDeployments(false);
    const old = await powertoolsOnly(request('p-parsed-inside'));
    expect(await both(request('p-parsed-inside'))).toEqual(old);
    expect(charged).toEqual(['p-parsed-inside']);
  });

  test('around the middy handler, it reads the raw event: the expression selects nothing and Powertools runs the duplicate without idempotency', async () => {
    const { charged, powertoolsOnly, both } = parsedDeployments(true);
    await powertoolsOnly(request('p-parsed-around'));
    await both(request('p-parsed-around'));
    expect(charged).toEqual(['p-parsed-around', 'p-parsed-around']);
  });
});

describe('a handler whose errors an error handler answers, during the cutover', () => {
  /** A charge that fails once (the provider is down), then succeeds; the deployment with both libraries. */
  function failingOnce(powertoolsAround: boolean) {
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
      keyPrefix: powertoolsAround ? 'answered-around' : 'answered-inside',
    };
    const ours = () => idempotency<Request>({ store, key: (event) => (JSON.parse(event.body!) as Charge).paymentId });
    const errors = () => httpErrorHandler({ logger: false });
    const both = powertoolsAround
      ? powertoolsIdempotent(middy(charge).use(ours()).use(errors()), powertools)
      : middy(powertoolsIdempotent(charge, powertools)).use(ours()).use(errors());
    const name = powertools.keyPrefix;
    return { charged, both: (event: Request) => both(event, lambdaContext({ functionName: name })) as Promise<{ statusCode: number }> };
  }
  const request = (paymentId: string) => httpEvent('url', {}, { body: JSON.stringify({ paymentId }) }) as Request;

  test('inside, Powertools sees the error, releases its record, and the retry runs', async () => {
    const { charged, both } = failingOnce(false);
    expect((await both(request('p-answered-inside'))).statusCode).toBe(500);
    expect(await both(request('p-answered-inside'))).toMatchObject({ statusCode: 201 });
    expect(charged).toEqual(['p-answered-inside', 'p-answered-inside']);
  });

  test('around the middy handler, Powertools stores the 500 the error handler answered, and the retry gets it again without running', async () => {
    const { charged, both } = failingOnce(true);
    expect((await both(request('p-answered-around'))).statusCode).toBe(500);
    expect((await both(request('p-answered-around'))).statusCode).toBe(500);
    expect(charged).toEqual(['p-answered-around']);
  });
});

describe('httpIdempotency, while traffic shifts to the second deployment', () => {
  /** The first deployment (both libraries) and the second (httpIdempotency alone) of a handler waiting at `turnstile`. */
  function httpDeployments(powertoolsAround: boolean) {
    const turnstile = new Turnstile<number>();
    const charge = async () => ({ statusCode: 201, body: `charge ${await turnstile.enter()}` });
    const powertools = {
      persistenceStore: new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client }),
      config: new IdempotencyConfig({ eventKeyJmesPath: 'headers."idempotency-key"' }),
      keyPrefix: powertoolsAround ? 'http-around' : 'http-inside',
    };
    const ours = () => httpIdempotency<Request>({ store, singleFlight: false });
    const first = powertoolsAround ? powertoolsIdempotent(middy(charge).use(ours()), powertools) : middy(powertoolsIdempotent(charge, powertools)).use(ours());
    const second = middy(charge).use(ours());
    const context = () => lambdaContext({ functionName: powertools.keyPrefix });
    const call = (handler: typeof second | typeof first) => async (event: Request) =>
      (await handler(event, context())) as { statusCode: number; body?: string };
    return { turnstile, first: call(first), second: call(second) };
  }

  /** A request the second deployment runs; its duplicate on the first while it runs, then after it completed. */
  async function duplicatesOnTheFirst(powertoolsAround: boolean) {
    const { turnstile, first, second } = httpDeployments(powertoolsAround);
    const event = httpEvent('url', {}, { key: `k-${powertoolsAround}-${Date.now()}` }) as Request;
    const running = second(event);
    const inside = await turnstile.next();
    const whileRunning = await first(event);
    inside.open(1);
    const answer = await running;
    return { answer, whileRunning, afterwards: await first(event), runs: turnstile.count };
  }

  test("inside, the first deployment answers 409 while the request runs, then replays this library's response", async () => {
    const { answer, whileRunning, afterwards, runs } = await duplicatesOnTheFirst(false);
    expect(whileRunning.statusCode).toBe(409);
    expect(afterwards).toMatchObject({ statusCode: 201, body: answer.body });
    expect(runs).toBe(1);
  });

  test('around the middy handler, Powertools stores that 409 as the outcome and replays it after the request completed', async () => {
    const { whileRunning, afterwards, runs } = await duplicatesOnTheFirst(true);
    expect(whileRunning.statusCode).toBe(409);
    expect(afterwards.statusCode).toBe(409);
    expect(runs).toBe(1);
  });
});
