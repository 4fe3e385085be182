/**
 * The failure points of the record protocol (the claim, the completion, the release after a
 * failure) and of the outcome (a key provider that fails, a result Lambda cannot send), met
 * through `httpIdempotency`, on DynamoDB Local behind the fault layer. For each: the caller gets
 * its own answer or a typed one, a handler that succeeded never runs again for a duplicate (unless
 * documented), and no record is held past its lease. `batch-faults.test.ts` does the same for
 * `idempotentBatch`.
 */
import { randomUUID } from 'node:crypto';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { httpIdempotency, transaction } from '../../lib/index.js';
import { quiet } from '../support/batch-consumer.js';
import { endpoint, readItem, scanItems, useFreshTable } from '../support/dynamodb.js';
import { faultyClient } from '../support/faults.js';
import { httpEvent } from '../support/identity-events.js';
import { useFaultyKeyring } from '../support/keyring.js';
import { lambdaContext } from '../support/lambda.js';

const { client: faulty, faults } = faultyClient(endpoint());
const { client: inspect, tableName, store } = useFreshTable({ prefix: 'http-faults', storeClient: faulty });
afterEach(() => void faults.clear());
afterAll(() => faulty.destroy());

type Response = APIGatewayProxyStructuredResultV2;
const T0 = 1_700_000_000_000;
/** The lease an HTTP call gets: the time its Lambda context has left. */
const LEASE_MILLIS = 10_000;

/** A payment API whose handler answers `answer(run)`; every call stands for another process (no single-flight). */
function paymentApi(answer: (run: number) => Response = (run) => ({ statusCode: 201, body: JSON.stringify({ payment: run }) }), storeOf = store) {
  const name = `pay-${randomUUID()}`;
  const clock = { now: T0 };
  const logger = quiet();
  let runs = 0;
  const handler = middy<APIGatewayProxyEventV2, Response>(async () => answer(++runs)).use(
    httpIdempotency<APIGatewayProxyEventV2>({ store: storeOf, singleFlight: false, now: () => clock.now, logger }),
  );
  return {
    clock,
    logger,
    runs: () => runs,
    call: (key: string) =>
      handler(httpEvent('url', {}, { key, body: '{"amount":1000}' }) as APIGatewayProxyEventV2, lambdaContext(name, LEASE_MILLIS)) as Promise<Response>,
    records: () => scanItems(inspect, tableName, `${name}#`),
  };
}

/**
 * An API whose handler charges by one `transaction()` update (the records' table stands in for a
 * business table), called with `key`: its runs, and the item its commits charge (`undefined`: none applied).
 */
function transactionalApi(key: string, atomic = false) {
  const name = `pay-tx-${randomUUID()}`;
  let runs = 0;
  const handler = middy<APIGatewayProxyEventV2, Response>(async () => {
    runs++;
    transaction().update({ TableName: tableName, Key: { id: `${name}-charge` }, UpdateExpression: 'ADD n :one', ExpressionAttributeValues: { ':one': 1 } });
    return { statusCode: 201, body: 'paid' };
  }).use(httpIdempotency<APIGatewayProxyEventV2>({ store, name, singleFlight: false, logger: quiet(), ...(atomic ? { atomic } : {}) }));
  return {
    call: () =>
      handler(httpEvent('url', {}, { key, body: '{"amount":1000}' }) as APIGatewayProxyEventV2, lambdaContext(name, LEASE_MILLIS)) as Promise<Response>,
    runs: () => runs,
    chargeItem: () => readItem(inspect, tableName, `${name}-charge`),
  };
}

const problemOf = (response: Response) => JSON.parse(String(response.body)) as { status: number; title: string };

describe('httpIdempotency', () => {
  test("a claim whose answer is lost (applied, retried by the SDK): the retry meets the call's own record, the payment runs once, no 409", async () => {
    faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response', error: 'TimeoutError' } });
    const api = paymentApi();
    const first = await api.call('k-claim-lost');
    expect(first).toEqual({ statusCode: 201, body: '{"payment":1}' });
    expect(faults.injected).toHaveLength(1);
    const duplicate = await api.call('k-claim-lost');
    expect(duplicate).toMatchObject({ statusCode: 201, body: '{"payment":1}', headers: { 'Idempotent-Replayed': 'true' } });
    expect(api.runs()).toBe(1);
  });

  test('a claim that loses every answer (it applied): 503 with Retry-After: 1, nothing ran, and the claim it may have made is released: the retry runs at once, once', async () => {
    faults.schedule({ operations: ['PutItem'], fault: { kind: 'drop-response' }, attempts: 'all' });
    const api = paymentApi();
    const refused = await api.call('k-claim-lost-always');
    expect([refused.statusCode, refused.headers?.['Retry-After'], problemOf(refused).title]).toEqual([503, '1', 'Idempotency store unavailable']);
    expect(faults.attemptsOf('PutItem')).toBe(3);
    expect(api.runs()).toBe(0);
    faults.clear();
    expect(await api.records()).toEqual([]);
    expect(await api.call('k-claim-lost-always')).toEqual({ statusCode: 201, body: '{"payment":1}' });
    expect(api.runs()).toBe(1);
  });

  test('a completion whose answer is lost: the caller gets its 201, the duplicate the stored 201, the payment runs once', async () => {
    faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'drop-response' } });
    const api = paymentApi();
    expect(await api.call('k-complete-lost')).toEqual({ statusCode: 201, body: '{"payment":1}' });
    expect(faults.injected).toHaveLength(1);
    expect((await api.call('k-complete-lost')).headers?.['Idempotent-Replayed']).toBe('true');
    expect(api.runs()).toBe(1);
    expect(api.logger.lines).toEqual([]);
  });

  test('a completion the store refuses (a missing grant): the caller gets its own 201, not a 503; a duplicate within the lease is a 409, after it the record is free', async () => {
    faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'refuse' } });
    const api = paymentApi();
    expect(await api.call('k-complete-fails')).toEqual({ statusCode: 201, body: '{"payment":1}' });
    expect(api.logger.lines).toHaveLength(1);
    expect(JSON.parse(api.logger.lines[0]!)).toMatchObject({ level: 'WARN' });
    faults.clear();
    const during = await api.call('k-complete-fails');
    expect(during.statusCode).toBe(409);
    expect(Number(during.headers?.['Retry-After'])).toBeGreaterThanOrEqual(1);
    expect(problemOf(during).title).toMatch(/being processed/);
    expect(api.runs()).toBe(1);
    // The record is held by the lease only: past it, a retry runs (docs/http.md: the record stays INPROGRESS until its lease ends).
    api.clock.now = T0 + LEASE_MILLIS + 1;
    expect(await api.call('k-complete-fails')).toEqual({ statusCode: 201, body: '{"payment":2}' });
    expect((await api.records()).map((item) => item.status?.S)).toEqual(['COMPLETED']);
  });

  test('a 5xx whose release the store refuses (a missing grant): the caller gets its own 503, not a problem answer; the key is held until the lease ends, then the retry runs', async () => {
    // Refused: a 500 would be sent again until DynamoDB takes it.
    faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'refuse' } });
    const api = paymentApi((run) => (run === 1 ? { statusCode: 503, body: '{"message":"bank down"}' } : { statusCode: 201, body: `{"payment":${run}}` }));
    expect(await api.call('k-release-fails')).toEqual({ statusCode: 503, body: '{"message":"bank down"}' });
    expect(api.logger.lines).toHaveLength(1);
    faults.clear();
    expect((await api.call('k-release-fails')).statusCode).toBe(409);
    expect(api.runs()).toBe(1);
    api.clock.now = T0 + LEASE_MILLIS + 1;
    expect(await api.call('k-release-fails')).toEqual({ statusCode: 201, body: '{"payment":2}' });
  });

  test('a thrown error whose release the store refuses (a missing grant): the caller gets the error itself, not a bookkeeping error', async () => {
    faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'refuse' } });
    const failure = new Error('bank unreachable');
    const api = paymentApi(() => {
      throw failure;
    });
    await expect(api.call('k-throw-release-fails')).rejects.toBe(failure);
    expect(api.logger.lines).toHaveLength(1);
    faults.clear();
    expect((await api.call('k-throw-release-fails')).statusCode).toBe(409);
    expect(api.runs()).toBe(1);
  });

  test.each([false, true])(
    "atomic: %s. A commit of the handler's writes that applied but lost every answer: a 201 or a 503 saying the outcome is unknown, never a second charge; the retry gets the 201",
    async (atomic) => {
      const { call, runs, chargeItem } = transactionalApi('k-tx', atomic);
      faults.schedule({ operations: ['TransactWriteItems'], fault: { kind: 'drop-response' }, attempts: 'all' });
      const first = await call();
      expect(faults.injected).toHaveLength(3);
      faults.clear();
      // With a claim, the release that settles the commit finds its COMPLETED record. Atomic, there is none to release.
      if (atomic) {
        expect([first.statusCode, problemOf(first).title]).toEqual([503, 'The outcome of this request is not known yet']);
        expect(Number(first.headers?.['Retry-After'])).toBeGreaterThanOrEqual(1);
      } else expect(first).toEqual({ statusCode: 201, body: 'paid' });
      expect(await call()).toMatchObject({ statusCode: 201, body: 'paid', headers: { 'Idempotent-Replayed': 'true' } });
      expect((await chargeItem())?.n).toEqual({ N: '1' });
      expect(runs()).toBe(atomic ? 2 : 1); // an atomic retry runs its pure handler; its commit meets the record
    },
  );

  test("a commit of the handler's writes that never reached DynamoDB: a 503 that says nothing was written, with Retry-After: 1; the retry runs and charges once", async () => {
    const { call, runs, chargeItem } = transactionalApi('k-tx-lost');
    faults.schedule({ operations: ['TransactWriteItems'], fault: { kind: 'reset' }, attempts: 'all' });
    const first = await call();
    expect(faults.injected.length).toBeGreaterThan(0);
    faults.clear();
    expect(first.statusCode).toBe(503);
    expect(first.headers?.['Retry-After']).toBe('1');
    expect(JSON.parse(String(first.body))).toMatchObject({
      title: 'The request was not applied',
      detail: 'Nothing was written; retry with the same Idempotency-Key after Retry-After.',
    });
    expect(await chargeItem()).toBeUndefined();
    expect(await call()).toEqual({ statusCode: 201, body: 'paid' });
    expect(runs()).toBe(2);
    expect((await chargeItem())?.n).toEqual({ N: '1' });
  });

  describe('encrypted', () => {
    const { ring, encrypted } = useFaultyKeyring(tableName, faulty);

    test('the key provider fails when a duplicate opens the stored answer: 503 with Retry-After: 1, the payment does not run again; once it recovers, the answer replays', async () => {
      const api = paymentApi(undefined, encrypted);
      await api.call('k-open-fails');
      ring.failById = 'throws';
      const duplicate = await api.call('k-open-fails');
      expect(duplicate.statusCode).toBe(503);
      expect(duplicate.headers?.['Retry-After']).toBe('1');
      expect(problemOf(duplicate).title).toBe('Idempotency store unavailable');
      expect(api.runs()).toBe(1);
      ring.failById = undefined;
      expect(await api.call('k-open-fails')).toMatchObject({ statusCode: 201, body: '{"payment":1}' });
      expect(api.runs()).toBe(1);
    });

    test('the key provider fails when the answer is sealed: the caller gets its 201; duplicates, even past the lease, a 409 (not kept), never a second payment', async () => {
      const api = paymentApi(undefined, encrypted);
      ring.failCurrent = 'throws';
      expect(await api.call('k-seal-fails')).toEqual({ statusCode: 201, body: '{"payment":1}' });
      ring.failCurrent = undefined;
      api.clock.now = T0 + LEASE_MILLIS + 1;
      const duplicate = await api.call('k-seal-fails');
      expect(duplicate.statusCode).toBe(409);
      expect(problemOf(duplicate).title).toMatch(/response was not kept/);
      expect(api.runs()).toBe(1);
    });
  });

  const cyclic = () => {
    const body: Record<string, unknown> = { ok: true };
    body.self = body;
    return body as unknown as string;
  };
  test.each([
    ['a BigInt header value', (): Response => ({ statusCode: 201, body: 'ok', headers: { 'X-Run': 1n as unknown as string } })],
    ['a cycle in its body', (): Response => ({ statusCode: 201, body: cyclic() })],
  ])(
    'a proxy result Lambda cannot send (%s) fails as a thrown error would and releases the key, as a plain value does: the retry runs',
    async (_what, unsendable) => {
      const api = paymentApi((run) => (run === 1 ? unsendable() : { statusCode: 201, body: `{"payment":${run}}` }));
      await expect(api.call('k-unsendable')).rejects.toThrow(TypeError);
      expect(await api.records()).toEqual([]);
      expect(await api.call('k-unsendable')).toEqual({ statusCode: 201, body: '{"payment":2}' });
      expect(api.runs()).toBe(2);
    },
  );
});
