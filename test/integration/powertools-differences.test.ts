/**
 * Where Powertools' idempotency (`@aws-lambda-powertools/idempotency` 2.35.0, the version in
 * devDependencies) runs a handler twice or answers a caller wrongly, and what this library does in
 * the same scenario: both on DynamoDB Local, side by side. The Powertools halves pin its 2.35.0
 * behaviour: when an upgrade changes it, they fail, and the migration guide's "What behaves
 * differently" section must change with them.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { IdempotencyConfig, makeIdempotent as powertoolsIdempotent } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { makeHandlerIdempotent } from '@aws-lambda-powertools/idempotency/middleware';
import { jest } from '@jest/globals';
import middy from '@middy/core';
import httpErrorHandler from '@middy/http-error-handler';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { httpIdempotency, idempotency, makeIdempotent } from '../../lib/index.js';
import { endpoint, readItem, useFreshTable } from '../support/dynamodb.js';
import { faultyClient } from '../support/faults.js';
import { Turnstile } from '../support/gate.js';
import { httpEvent } from '../support/identity-events.js';
import { lambdaContext } from '../support/lambda.js';
import { rejection, thrown } from '../support/rejections.js';
import { invokeStreaming, streamingMode } from '../support/streaming.js';

const { client: faulty, faults } = faultyClient(endpoint());
const { client, tableName, store } = useFreshTable({ prefix: 'differences', storeClient: faulty });
afterEach(() => {
  faults.clear();
  jest.restoreAllMocks();
});
afterAll(() => faulty.destroy());

interface Payment {
  readonly id: string;
  readonly amount?: number;
}

/** Powertools configured as its documentation shows, on the same table; one persistence layer each, as it requires. */
function powertools(name: string, validate = false) {
  return {
    persistenceStore: new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: faulty }),
    config: new IdempotencyConfig({ eventKeyJmesPath: 'id', ...(validate ? { payloadValidationJmesPath: 'amount' } : {}) }),
    keyPrefix: name,
  };
}

/** The middy middleware of `library` for payments keyed by their id: Powertools' as above, or ours with `options`. */
function middlewareOf(library: 'powertools' | 'ours', name: string, options: { readonly singleFlight?: boolean } = {}) {
  return library === 'powertools' ? makeHandlerIdempotent(powertools(name)) : idempotency<Payment>({ store, key: (event) => event.id, ...options });
}

/** The id of Powertools' record of payment `id` under `name`. */
const powertoolsId = (name: string, id: string) => `${name}#${createHash('md5').update(JSON.stringify(id)).digest('base64')}`;

/** Powertools reads `Date.now`; this moves it, so that a lease ends without sleeping. */
function movableClock(): { advance(millis: number): void; now(): number } {
  let now = Date.now();
  jest.spyOn(Date, 'now').mockImplementation(() => now);
  return { advance: (millis) => void (now += millis), now: () => now };
}

/** A function (event, context) that waits at a turnstile for its result ('throw' makes it throw), made idempotent by `wrap`. */
function held(wrap: (fn: (event: Payment, context: Context) => Promise<string>) => (event: Payment, context: Context) => Promise<string>) {
  const turnstile = new Turnstile<string>();
  const run = wrap(async () => {
    const value = await turnstile.enter();
    if (value === 'throw') throw new Error('declined, late');
    return value;
  });
  return { run, turnstile };
}

/**
 * The first attempt outlives its 1 s lease, a second takes the record over and returns 'second',
 * then the first ends late (returns or throws); then a third call. What each of the three got.
 */
async function lateAttempt({ run, turnstile }: ReturnType<typeof held>, clock: { advance(millis: number): void }, late: 'returns' | 'throws') {
  const context = () => lambdaContext('late', 1_000);
  const event = { id: randomUUID() };
  const settle = (call: Promise<string>) => call.catch((error: Error) => error);
  const first = settle(run(event, context()));
  const stuck = await turnstile.next();
  clock.advance(5_000);
  const second = settle(run(event, context()));
  (await turnstile.next()).open('second');
  await second;
  stuck.open(late === 'throws' ? 'throw' : 'first, late');
  await first;
  // The third call replays, or runs: then it is let through with 'third'.
  const third = settle(run(event, context()));
  const ran = await Promise.race([
    third.then(() => false),
    turnstile.next().then((entered) => {
      entered.open('third');
      return true;
    }),
  ]);
  return { first: await first, second: await second, third: await third, ran };
}

describe('an attempt that outlives its lease, after another attempt took the record over', () => {
  test("its completion: Powertools 2.35.0 overwrites the other attempt's record, so duplicates replay another answer than its caller got; ours is SUPERSEDED", async () => {
    const clock = movableClock();
    const theirs = await lateAttempt(
      held((fn) => powertoolsIdempotent(fn, powertools('late-pt'))),
      clock,
      'returns',
    );
    expect(theirs).toEqual({ first: 'first, late', second: 'second', third: 'first, late', ran: false });
    const ours = await lateAttempt(
      held((fn) => makeIdempotent(fn, { store, name: 'late-ours', key: (event) => event.id, now: clock.now, singleFlight: false })),
      clock,
      'returns',
    );
    expect(ours).toEqual({ first: expect.objectContaining({ code: 'SUPERSEDED' }), second: 'second', third: 'second', ran: false });
  });

  test("its failure: Powertools 2.35.0 deletes the other attempt's record, so the next duplicate runs a third time; ours leaves it", async () => {
    const clock = movableClock();
    const theirs = await lateAttempt(
      held((fn) => powertoolsIdempotent(fn, powertools('late-fail-pt'))),
      clock,
      'throws',
    );
    expect(theirs).toEqual({ first: new Error('declined, late'), second: 'second', third: 'third', ran: true });
    const ours = await lateAttempt(
      held((fn) => makeIdempotent(fn, { store, name: 'late-fail-ours', key: (event) => event.id, now: clock.now, singleFlight: false })),
      clock,
      'throws',
    );
    expect(ours).toEqual({ first: new Error('declined, late'), second: 'second', third: 'second', ran: false });
  });
});

describe("the middy middleware's onError", () => {
  test("an in-progress duplicate: Powertools 2.35.0 deletes the running attempt's record, so the next duplicate runs concurrently; ours leaves it", async () => {
    for (const library of ['powertools', 'ours'] as const) {
      const turnstile = new Turnstile<string>();
      const name = `onerror-${library}`;
      const middleware = middlewareOf(library, name, { singleFlight: false });
      const handler = middy(async (_event: Payment) => turnstile.enter()).use(middleware);
      const event = { id: randomUUID() };
      const first = handler(event, lambdaContext(name));
      const running = await turnstile.next();
      const duplicate = await thrown(handler(event, lambdaContext(name)));
      expect(duplicate.name).toBe(library === 'powertools' ? 'IdempotencyAlreadyInProgressError' : 'IdempotencyError');
      if (library === 'powertools') expect(await readItem(client, tableName, powertoolsId(name, event.id))).toBeUndefined();
      const next = handler(event, lambdaContext(name)).catch((error: Error) => error);
      if (library === 'powertools') (await turnstile.next()).open('ran again');
      expect(await next).toEqual(library === 'powertools' ? 'ran again' : expect.objectContaining({ code: 'IN_PROGRESS' }));
      running.open('first');
      expect(await first).toBe('first');
      expect(turnstile.count).toBe(library === 'powertools' ? 2 : 1);
    }
  });

  test("a payload mismatch: Powertools 2.35.0 deletes the completed record, so the original request's retry runs again; ours leaves it", async () => {
    for (const library of ['powertools', 'ours'] as const) {
      let runs = 0;
      const name = `mismatch-${library}`;
      const middleware =
        library === 'powertools'
          ? makeHandlerIdempotent(powertools(name, true))
          : idempotency<Payment>({ store, key: (event) => event.id, fingerprint: (event) => event.amount });
      const handler = middy(async (event: Payment) => ({ charged: event.amount, run: ++runs })).use(middleware);
      const id = randomUUID();
      expect(await handler({ id, amount: 100 }, lambdaContext(name))).toEqual({ charged: 100, run: 1 });
      const mismatch = await thrown(handler({ id, amount: 999 }, lambdaContext(name)));
      expect(mismatch.name).toBe(library === 'powertools' ? 'IdempotencyValidationError' : 'IdempotencyError');
      const retry = await handler({ id, amount: 100 }, lambdaContext(name));
      expect(retry).toEqual(library === 'powertools' ? { charged: 100, run: 2 } : { charged: 100, run: 1 });
    }
  });
});

test('a handler that returns undefined: behind the Powertools 2.35.0 middleware every duplicate runs it again; ours replays undefined', async () => {
  for (const library of ['powertools', 'ours'] as const) {
    let runs = 0;
    const name = `undefined-${library}`;
    const middleware = middlewareOf(library, name);
    const handler = middy(async (_event: Payment) => {
      runs++;
    }).use(middleware);
    const event = { id: randomUUID() };
    expect(await handler(event, lambdaContext(name))).toBeUndefined();
    expect(await handler(event, lambdaContext(name))).toBeUndefined();
    expect(runs).toBe(library === 'powertools' ? 2 : 1);
  }
});

describe('a completion that fails once the handler has run (every SDK attempt of the UpdateItem answered 500)', () => {
  const failCompletion = () => faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'server-error' }, attempts: 'all' });

  test('the wrapper: Powertools 2.35.0 throws, and the retry it provokes runs the handler again once the lease ends; ours sends the completion again and returns the result, and the retry replays', async () => {
    const clock = movableClock();
    let runs = 0;
    const charge = async (event: Payment, _context: Context) => ({ charged: event.id, run: ++runs });
    const theirs = powertoolsIdempotent(charge, powertools('completion-pt'));
    const event = { id: randomUUID() };
    failCompletion();
    expect((await thrown(theirs(event, lambdaContext('completion-pt', 1_000)))).name).toBe('IdempotencyPersistenceLayerError');
    clock.advance(5_000); // the caller's retry, once the lease has ended
    expect(await theirs(event, lambdaContext('completion-pt', 1_000))).toEqual({ charged: event.id, run: 2 });

    runs = 0;
    const warnings: string[] = [];
    const ours = makeIdempotent(charge, {
      store,
      name: 'completion-ours',
      key: (input) => input.id,
      now: clock.now,
      logger: { warn: (line) => warnings.push(line) },
    });
    failCompletion();
    expect(await ours(event, lambdaContext('completion-ours', 1_000))).toEqual({ charged: event.id, run: 1 });
    expect(warnings).toEqual([]);
    clock.advance(5_000);
    expect(await ours(event, lambdaContext('completion-ours', 1_000))).toEqual({ charged: event.id, run: 1 });
    expect(runs).toBe(1);
  });

  test('the middleware: Powertools 2.35.0 throws and deletes the record, so the retry runs the handler again at once; ours sends the completion again and returns the result, and the retry replays', async () => {
    for (const library of ['powertools', 'ours'] as const) {
      let runs = 0;
      const name = `completion-mw-${library}`;
      const middleware =
        library === 'powertools'
          ? makeHandlerIdempotent(powertools(name))
          : idempotency<Payment>({ store, key: (event) => event.id, logger: { warn: () => undefined } });
      const handler = middy(async (event: Payment) => ({ charged: event.id, run: ++runs })).use(middleware);
      const event = { id: randomUUID() };
      failCompletion();
      if (library === 'powertools') {
        expect((await thrown(handler(event, lambdaContext(name)))).name).toBe('IdempotencyPersistenceLayerError');
        expect(await handler(event, lambdaContext(name))).toEqual({ charged: event.id, run: 2 });
      } else {
        expect(await handler(event, lambdaContext(name))).toEqual({ charged: event.id, run: 1 });
        expect(await handler(event, lambdaContext(name))).toEqual({ charged: event.id, run: 1 });
      }
    }
  });
});

test('an in-progress duplicate behind @middy/http-error-handler: Powertools 2.35.0 answers 500; httpIdempotency answers 409 with Retry-After', async () => {
  for (const library of ['powertools', 'ours'] as const) {
    const turnstile = new Turnstile<APIGatewayProxyStructuredResultV2>();
    const name = `http-${library}`;
    const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>(async () => turnstile.enter()).use(httpErrorHandler({ logger: false }));
    if (library === 'powertools') {
      handler.use(makeHandlerIdempotent({ ...powertools(name), config: new IdempotencyConfig({ eventKeyJmesPath: 'headers."idempotency-key"' }) }));
    } else {
      handler.use(httpIdempotency({ store, singleFlight: false }));
    }
    const event = httpEvent('url', {}, { key: randomUUID() }) as APIGatewayProxyEventV2;
    const first = handler(event, lambdaContext(name));
    const running = await turnstile.next();
    const duplicate = (await handler(event, lambdaContext(name))) as APIGatewayProxyStructuredResultV2;
    if (library === 'powertools') {
      expect(duplicate.statusCode).toBe(500);
    } else {
      expect(duplicate.statusCode).toBe(409);
      expect(Number(duplicate.headers?.['Retry-After'])).toBeGreaterThan(0);
    }
    running.open({ statusCode: 201, body: 'created' });
    expect(await first).toMatchObject({ statusCode: 201 });
  }
});

test('the same duplicate behind idempotency() (a key from the body, no httpIdempotency) is a 409 with Retry-After too: the error carries its status', async () => {
  const turnstile = new Turnstile<APIGatewayProxyStructuredResultV2>();
  const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>(async () => turnstile.enter())
    .use(idempotency<APIGatewayProxyEventV2>({ store, singleFlight: false, key: (event) => JSON.parse(event.body ?? '{}').id }))
    .use(httpErrorHandler({ logger: false }));
  const event = httpEvent('url', {}, { body: JSON.stringify({ id: randomUUID() }) }) as APIGatewayProxyEventV2;
  const first = handler(event, lambdaContext('http-plain'));
  const running = await turnstile.next();
  const duplicate = (await handler(event, lambdaContext('http-plain'))) as APIGatewayProxyStructuredResultV2;
  expect(duplicate.statusCode).toBe(409);
  expect(Number(duplicate.headers?.['Retry-After'])).toBeGreaterThan(0);
  running.open({ statusCode: 201, body: 'created' });
  expect(await first).toMatchObject({ statusCode: 201 });
});

test('a wrapped function called without a Lambda context: Powertools 2.35.0 holds its record for the retention; ours for leaseSeconds (60 s), or until the deadline of a context passed as second argument', async () => {
  const clock = movableClock();
  jest.spyOn(console, 'warn').mockImplementation(() => undefined); // Powertools warns that it has no context
  /** Whether a duplicate sent 61 s after the first call of `library`'s wrapper, which is still running, runs too. */
  const duplicateRuns = async (library: 'powertools' | 'ours', withContext = false) => {
    const turnstile = new Turnstile<string>();
    const work = async (_payment: Payment, _context?: Context) => turnstile.enter();
    const name = `no-context-${library}-${withContext}`;
    const call =
      library === 'powertools'
        ? powertoolsIdempotent(work, powertools(name))
        : makeIdempotent(work, { store, name, key: (payment) => payment.id, singleFlight: false, now: () => Date.now() });
    const payment = { id: randomUUID() };
    const send = () => (withContext ? call(payment, lambdaContext(name, 300_000)) : call(payment));
    const first = send();
    const running = await turnstile.next();
    clock.advance(61_000);
    const duplicate = send().catch((error: Error) => error);
    const ran = await Promise.race([duplicate.then(() => false), turnstile.next().then((entered) => (entered.open('second'), true))]);
    running.open('first');
    await Promise.all([first.catch(() => undefined), duplicate]); // ours: the first call was taken over, it is SUPERSEDED
    return ran;
  };
  expect(await duplicateRuns('powertools')).toBe(false);
  expect(await duplicateRuns('ours')).toBe(true);
  expect(await duplicateRuns('ours', true)).toBe(false);
});

test('a streamed response: behind the Powertools 2.35.0 middleware the caller gets an error and the duplicate runs again; ours sends and replays the bytes', async () => {
  for (const library of ['powertools', 'ours'] as const) {
    let runs = 0;
    const name = `stream-${library}`;
    const middleware = middlewareOf(library, name);
    const handler = middy(async (_event: Payment) => {
      runs++;
      return Readable.from(['data: 1\n\n', 'data: 2\n\n']);
    }, streamingMode as never).use(middleware);
    const event = { id: randomUUID() };
    if (library === 'powertools') {
      expect((await thrown(invokeStreaming(handler, event, lambdaContext(name)))).name).toBe('IdempotencyPersistenceLayerError');
      expect((await thrown(invokeStreaming(handler, event, lambdaContext(name)))).name).toBe('IdempotencyPersistenceLayerError');
      expect(runs).toBe(2);
    } else {
      const first = await invokeStreaming(handler, event, lambdaContext(name));
      const again = await invokeStreaming(handler, event, lambdaContext(name));
      expect(again.bytes.toString('utf8')).toBe('data: 1\n\ndata: 2\n\n');
      expect(again.bytes.equals(first.bytes)).toBe(true);
      expect(runs).toBe(1);
    }
  }
});

test("Lambda's tenant isolation mode: Powertools 2.35.0 answers a second tenant's equal request with the first tenant's response; ours runs it for that tenant", async () => {
  for (const library of ['powertools', 'ours'] as const) {
    const name = `tenants-${library}`;
    const handler = middy(async (event: Payment, context: Context) => ({ id: event.id, tenant: (context as Context & { tenantId: string }).tenantId })).use(
      middlewareOf(library, name),
    );
    const event = { id: randomUUID() };
    const as = (tenantId: string) => handler(event, { ...lambdaContext(name), tenantId } as Context);
    expect(await as('blue')).toEqual({ id: event.id, tenant: 'blue' });
    expect(await as('green')).toEqual({ id: event.id, tenant: library === 'powertools' ? 'blue' : 'green' });
  }
});

describe('a request without its key', () => {
  interface Keyed {
    readonly id?: unknown;
    readonly customerId?: string;
    readonly orderId?: string;
    readonly n?: number;
  }

  test('Powertools 2.35.0 with throwOnNoIdempotencyKey: its IdempotencyKeyError reaches the caller only as the cause of an IdempotencyPersistenceLayerError, also for 0 and false; ours is KEY_MISSING, and 0 and false are keys', async () => {
    const config = () => new IdempotencyConfig({ eventKeyJmesPath: 'id', throwOnNoIdempotencyKey: true });
    const wrapped = powertoolsIdempotent(async (_event: Keyed, _context: Context) => 'ran', { ...powertools('no-key-wrapper'), config: config() });
    const handler = middy(async (_event: Keyed) => 'ran').use(makeHandlerIdempotent({ ...powertools('no-key-middleware'), config: config() }));
    for (const event of [{}, { id: 0 }, { id: false }]) {
      for (const call of [() => wrapped(event, lambdaContext('no-key-wrapper')), () => handler(event, lambdaContext('no-key-middleware'))]) {
        const error = await thrown(call());
        expect([error.name, (error.cause as Error | undefined)?.name]).toEqual(['IdempotencyPersistenceLayerError', 'IdempotencyKeyError']);
      }
    }
    const ours = makeIdempotent(async (event: Keyed) => event.id, { store, name: 'no-key-ours', key: (event) => event.id });
    expect((await rejection(ours({}))).code).toBe('KEY_MISSING');
    expect([await ours({ id: 0 }), await ours({ id: false })]).toEqual([0, false]);
  });

  test("Powertools 2.35.0 by default hashes '' or a list of missing parts as one key, so another request without the key gets the first one's response; ours refuses both (KEY_MISSING), or with onMissingKey: 'skip' runs each", async () => {
    jest.spyOn(console, 'warn').mockImplementation(() => undefined); // Powertools warns of each missing key
    const requests: Array<[string, Keyed, Keyed]> = [
      ['id', { id: '', n: 1 }, { id: '', n: 2 }],
      ['[customerId, orderId]', { n: 1 }, { n: 2 }],
    ];
    for (const [expression, first, second] of requests) {
      const name = `shared-missing-${expression === 'id' ? 'empty' : 'list'}`;
      const config = new IdempotencyConfig({ eventKeyJmesPath: expression });
      const theirs = powertoolsIdempotent(async (event: Keyed, _context: Context) => event.n, { ...powertools(name), config });
      expect([await theirs(first, lambdaContext(name)), await theirs(second, lambdaContext(name))]).toEqual([1, 1]);
      const key = expression === 'id' ? (event: Keyed) => event.id : (event: Keyed) => [event.customerId, event.orderId];
      const ours = makeIdempotent(async (event: Keyed) => event.n, { store, name: `${name}-ours`, key });
      expect((await rejection(ours(first))).code).toBe('KEY_MISSING');
      expect((await rejection(ours(second))).code).toBe('KEY_MISSING');
      const skipping = makeIdempotent(async (event: Keyed) => event.n, { store, name: `${name}-ours`, key, onMissingKey: 'skip' });
      expect([await skipping(first), await skipping(second)]).toEqual([1, 2]);
    }
  });
});

test("two wrapped functions given an equal payload: Powertools 2.35.0 (no keyPrefix) keys both by the Lambda function's name, so the second replays the first's result; ours keeps each name's records apart", async () => {
  const previous = process.env.AWS_LAMBDA_FUNCTION_NAME;
  process.env.AWS_LAMBDA_FUNCTION_NAME = `shared-prefix-${randomUUID()}`;
  try {
    const layer = () => ({ persistenceStore: new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: faulty }), config: new IdempotencyConfig({}) });
    const reserve = powertoolsIdempotent(async (_order: Payment, _context: Context) => 'reserved', layer());
    const charge = powertoolsIdempotent(async (_order: Payment, _context: Context) => 'charged', layer());
    const order = { id: randomUUID() };
    expect([await reserve(order, lambdaContext('orders')), await charge(order, lambdaContext('orders'))]).toEqual(['reserved', 'reserved']);
    const reserveOnce = makeIdempotent(async (_order: Payment) => 'reserved', { store, name: 'reserve' });
    const chargeOnce = makeIdempotent(async (_order: Payment) => 'charged', { store, name: 'charge' });
    expect([await reserveOnce(order), await chargeOnce(order)]).toEqual(['reserved', 'charged']);
  } finally {
    if (previous === undefined) delete process.env.AWS_LAMBDA_FUNCTION_NAME;
    else process.env.AWS_LAMBDA_FUNCTION_NAME = previous;
  }
});
