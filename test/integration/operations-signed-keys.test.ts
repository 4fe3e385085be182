/**
 * Server-issued keys through real middy and DynamoDB Local: only keys signed with a listed secret
 * run; anything else is a 400 problem, runs nothing and writes no record.
 */

import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { lambdaContext as demoLambdaContext } from '../../demo/scenarios.js';
import { readKeySecrets } from '../../infra/functions/key-secrets.js';
import { createKeyHandler } from '../../infra/functions/keys.js';
import { createPaymentHandler } from '../../infra/functions/payment.js';
import { DynamoDBStore, type HttpEvent, type HttpIdempotencyOptions, httpIdempotency, issueIdempotencyKey, type SigningSecret } from '../../lib/index.js';
import { useDemoTables } from '../support/demo-tables.js';
import { idsWithPrefix, useFreshTable } from '../support/dynamodb.js';
import { lambdaContext } from '../support/lambda.js';
import { paymentRequest } from '../support/payment-request.js';

const { client, tableName, store } = useFreshTable({ prefix: 'signed' });
const current = randomBytes(32);
const previous = randomBytes(48).toString('base64');

function api(name: string, secrets: readonly SigningSecret[], options: Partial<HttpIdempotencyOptions> = {}) {
  let runs = 0;
  const handler = middy(async (): Promise<APIGatewayProxyStructuredResultV2> => ({ statusCode: 201, body: JSON.stringify({ run: ++runs }) })).use(
    httpIdempotency({ store, name, signedKeys: { secrets }, ...options }),
  );
  const post = async (key: string) => (await handler(paymentRequest(key), lambdaContext(name))) as APIGatewayProxyStructuredResultV2;
  return { post, runs: () => runs, records: () => idsWithPrefix(client, tableName, `${name}#`) };
}

const REASONS = {
  forged: 'The Idempotency-Key was not issued by this API: ask it for a key.',
  expired: 'The Idempotency-Key has expired: ask this API for a new key.',
  early: "The Idempotency-Key's issue time is in the future: the clocks of the servers that issue and accept keys differ.",
};

const expectRefused = (result: APIGatewayProxyStructuredResultV2, reason: keyof typeof REASONS = 'forged'): void => {
  expect(result.statusCode).toBe(400);
  expect(result.headers).toEqual({ 'Content-Type': 'application/problem+json' });
  expect(JSON.parse(result.body!)).toMatchObject({
    status: 400,
    title: 'Idempotency-Key is invalid',
    detail: REASONS[reason],
  });
};

test('an issued key runs once and replays; forged, tampered and client-chosen keys get 400, run nothing and write nothing', async () => {
  const { post, runs, records } = api('signed-api', [current]);
  const key = issueIdempotencyKey({ secret: current });
  expect(await post(key)).toMatchObject({ statusCode: 201, body: '{"run":1}' });
  const replay = await post(key);
  expect(replay).toMatchObject({ statusCode: 201, body: '{"run":1}' });
  expect(replay.headers).toMatchObject({ 'Idempotent-Replayed': 'true' });
  expect(await records()).toHaveLength(1);

  const forged = issueIdempotencyKey({ secret: randomBytes(32) });
  const tampered = `${key.slice(0, 30)}${key[30] === 'A' ? 'B' : 'A'}${key.slice(31)}`;
  for (const bad of [forged, tampered, 'order-1']) expectRefused(await post(bad));
  expect(runs()).toBe(1);
  expect(await records()).toHaveLength(1);
});

test('rotation: keys of the previous secret run while it is listed, and are refused once it is removed', async () => {
  const rotating = api('signed-rotating', [current, previous]);
  const old = issueIdempotencyKey({ secret: previous });
  expect(await rotating.post(old)).toMatchObject({ statusCode: 201, body: '{"run":1}' });
  expect(await rotating.post(issueIdempotencyKey({ secret: current }))).toMatchObject({ statusCode: 201, body: '{"run":2}' });

  const rotated = api('signed-rotated', [current]);
  expectRefused(await rotated.post(issueIdempotencyKey({ secret: previous })));
  expect(rotated.runs()).toBe(0);
  expect(await rotated.records()).toEqual([]);
});

test('signedKeys is validated at construction', () => {
  expect(() => httpIdempotency({ store, signedKeys: { secrets: ['too short'] } })).toThrow(
    new TypeError('httpIdempotency `signedKeys`: a secret must be at least 32 bytes long (got 9); use e.g. randomBytes(32).'),
  );
  expect(() => httpIdempotency({ store, signedKeys: { secrets: [] } })).toThrow('`secrets` must be a non-empty array');
  expect(() => httpIdempotency({ store, signedKeys: { secret: current } as never })).toThrow('unknown option `signedKeys.secret`');
});

describe('issued keys expire before their records', () => {
  const issuedAt = 1_764_000_000_000;
  const clock = { millis: issuedAt };
  const now = () => clock.millis;
  const hour = 3_600_000;

  test('a key resent after its record expired is refused with a 400 that says so, and the payment does not run again', async () => {
    const { post, runs } = api('signed-expiry', [current], { now, expiresAfterSeconds: 3600 });
    const key = issueIdempotencyKey({ secret: current, now });
    clock.millis = issuedAt + 60_000; // used a minute after it was issued
    expect(await post(key)).toMatchObject({ statusCode: 201, body: '{"run":1}' });

    // The last millisecond of its age limit (the retention less 5 minutes of clock skew): its record still answers.
    clock.millis = issuedAt + hour - 300_001;
    expect(await post(key)).toMatchObject({ statusCode: 201, body: '{"run":1}', headers: { 'Idempotent-Replayed': 'true' } });
    // Past it, the record made on first use still answers, until its last second (first use + the retention).
    for (const later of [issuedAt + hour - 300_000, issuedAt + hour + 60_999]) {
      clock.millis = later;
      expect(await post(key)).toMatchObject({ statusCode: 201, body: '{"run":1}', headers: { 'Idempotent-Replayed': 'true' } });
    }
    for (const later of [issuedAt + hour + 61_000, issuedAt + 30 * 24 * hour]) {
      clock.millis = later;
      const refused = await post(key);
      expectRefused(refused, 'expired');
      expect(runs()).toBe(1);
    }
  });

  test("a key past its age limit still gets its record's outcome while the record lives: a client whose answer was lost learns it, instead of a 400 that sends it for a new key to pay again", async () => {
    const { post, runs, records } = api('signed-late', [current], { now, expiresAfterSeconds: 3600 });
    const key = issueIdempotencyKey({ secret: current, now: () => issuedAt });
    clock.millis = issuedAt + hour - 310_000; // used 10 s before its age limit; the answer is lost
    expect(await post(key)).toMatchObject({ statusCode: 201, body: '{"run":1}' });
    clock.millis = issuedAt + hour - 290_000; // the retry, 10 s past the limit: the record still answers
    expect(await post(key)).toMatchObject({ statusCode: 201, body: '{"run":1}', headers: { 'Idempotent-Replayed': 'true' } });
    expect(runs()).toBe(1);

    // Once the record has expired (an hour after its first use), the key is refused and runs nothing.
    clock.millis = issuedAt + 2 * hour;
    expectRefused(await post(key), 'expired');
    // A key past its limit that was never used is refused too, and leaves no record.
    expectRefused(await post(issueIdempotencyKey({ secret: current, now: () => issuedAt })), 'expired');
    expect(runs()).toBe(1);
    // Neither key holds a record: each claim a refused key makes is released before anything runs.
    expect(await records()).toEqual([]);
  });

  test('a `problemHeaders` function that throws while a key past its age limit is refused fails that request and releases its claim: the next one gets the 400 at once', async () => {
    let failing = true;
    const problemHeaders = (): Record<string, string> => {
      if (failing) throw new Error('origin lookup failed');
      return {};
    };
    const { post, runs, records } = api('signed-late-headers', [current], { now, expiresAfterSeconds: 3600, problemHeaders });
    const key = issueIdempotencyKey({ secret: current, now: () => issuedAt });
    clock.millis = issuedAt + 2 * hour;
    await expect(post(key)).rejects.toThrow('origin lookup failed');
    expect(await records()).toEqual([]);
    failing = false;
    expectRefused(await post(key), 'expired');
    expect(runs()).toBe(0);
  });

  test('atomic: a key past its age limit is refused (400) even while its record lives, since an atomic call reads no record before it runs; it never runs again', async () => {
    const { post, runs } = api('signed-late-atomic', [current], { now, expiresAfterSeconds: 3600, atomic: true });
    const key = issueIdempotencyKey({ secret: current, now: () => issuedAt });
    clock.millis = issuedAt + hour - 310_000;
    expect(await post(key)).toMatchObject({ statusCode: 201, body: '{"run":1}' });
    clock.millis = issuedAt + hour - 290_000;
    expectRefused(await post(key), 'expired');
    expect(runs()).toBe(1);
  });

  test('one event object sent again without its key (a fixture reused): the key past its age limit it carried before, refused or answered by its record, does not refuse it', async () => {
    let runs = 0;
    const handler = middy(async (): Promise<APIGatewayProxyStructuredResultV2> => ({ statusCode: 201, body: JSON.stringify({ run: ++runs }) })).use(
      httpIdempotency({ store, name: 'signed-reused', signedKeys: { secrets: [current] }, now, expiresAfterSeconds: 3600, required: false }),
    );
    const send = async (event: HttpEvent) => (await handler(event, lambdaContext('signed-reused'))) as APIGatewayProxyStructuredResultV2;
    const withoutKey = (event: HttpEvent): HttpEvent => {
      delete event.headers['idempotency-key'];
      return event;
    };
    const answered = paymentRequest(issueIdempotencyKey({ secret: current, now: () => issuedAt }));
    clock.millis = issuedAt + hour - 310_000;
    expect(await send(answered)).toMatchObject({ statusCode: 201, body: '{"run":1}' });
    clock.millis = issuedAt + hour - 290_000; // past its age limit: its record answers
    expect(await send(answered)).toMatchObject({ statusCode: 201, body: '{"run":1}', headers: { 'Idempotent-Replayed': 'true' } });
    // Without a key (not required here), the request runs.
    expect(await send(withoutKey(answered))).toMatchObject({ statusCode: 201, body: '{"run":2}' });

    const refused = paymentRequest(issueIdempotencyKey({ secret: current, now: () => issuedAt }));
    expectRefused(await send(refused), 'expired');
    expect(await send(withoutKey(refused))).toMatchObject({ statusCode: 201, body: '{"run":3}' });
  });

  test('a key issued more than 5 minutes ahead of the clock, or with its time changed, is refused and writes nothing', async () => {
    const { post, runs, records } = api('signed-early', [current], { now, expiresAfterSeconds: 3600 });
    clock.millis = issuedAt;
    expectRefused(await post(issueIdempotencyKey({ secret: current, now: () => issuedAt + 301_000 })), 'early');
    const [random, time, tag] = issueIdempotencyKey({ secret: current, now: () => issuedAt - 2 * hour }).split('.') as [string, string, string];
    expectRefused(await post(`${random}.${(Number.parseInt(time, 36) + 7200).toString(36)}.${tag}`));
    expect(runs()).toBe(0);
    expect(await records()).toEqual([]);
    // Within the allowance (its issue second 300 s ahead) it runs: the issuing server's clock may be a little ahead.
    expect(await post(issueIdempotencyKey({ secret: current, now: () => issuedAt + 300_999 }))).toMatchObject({ statusCode: 201 });
  });

  test('keys issued before keys carried a time are still accepted, at any age', async () => {
    const { post } = api('signed-v1', [current], { now, expiresAfterSeconds: 3600 });
    const random = randomBytes(16).toString('base64url');
    const v1 = `${random}.${createHmac('sha256', current).update('lambda-idempotency key v1.').update(random).digest('base64url')}`;
    clock.millis = issuedAt + 365 * 24 * hour;
    expect(await post(v1)).toMatchObject({ statusCode: 201, body: '{"run":1}' });
    expect(await post(v1)).toMatchObject({ statusCode: 201, body: '{"run":1}', headers: { 'Idempotent-Replayed': 'true' } });
  });

  test('maxAgeSeconds lowers the age limit, never above the retention the records are kept for', async () => {
    const { post } = api('signed-max-age', [current], { now, signedKeys: { secrets: [current], maxAgeSeconds: 60 } });
    const key = issueIdempotencyKey({ secret: current, now: () => issuedAt });
    clock.millis = issuedAt + 59_999;
    expect(await post(key)).toMatchObject({ statusCode: 201 });
    clock.millis = issuedAt + 60_000;
    // Its record answers it still; a key as old that was never used is refused.
    expect(await post(key)).toMatchObject({ statusCode: 201, headers: { 'Idempotent-Replayed': 'true' } });
    expectRefused(await post(issueIdempotencyKey({ secret: current, now: () => issuedAt })), 'expired');

    // The default retention (a day), the option's, the store's: each bounds maxAgeSeconds.
    const signedKeys = (maxAgeSeconds: number) => ({ secrets: [current], maxAgeSeconds });
    expect(() => httpIdempotency({ store, signedKeys: signedKeys(86_100) })).not.toThrow();
    expect(() => httpIdempotency({ store, signedKeys: signedKeys(86_101) })).toThrow(
      new TypeError(
        'httpIdempotency `signedKeys`: `maxAgeSeconds` must be at most 86100 (the retention, 86400 s, less 300 s allowed for clock skew), got 86101: a key that outlives its record would run again.',
      ),
    );
    expect(() => httpIdempotency({ store, expiresAfterSeconds: 3600, signedKeys: signedKeys(3301) })).toThrow('must be at most 3300');
    const shortStore = new DynamoDBStore({ tableName, client, expiresAfterSeconds: 100 });
    expect(() => httpIdempotency({ store: shortStore, signedKeys: signedKeys(51) })).toThrow('must be at most 50 (the retention, 100 s, less 50 s');
    expect(() => httpIdempotency({ store, signedKeys: signedKeys(0) })).toThrow(
      new TypeError('httpIdempotency: `signedKeys.maxAgeSeconds` must be a whole number of seconds, 1 or more (got 0).'),
    );
    expect(() => httpIdempotency({ store, signedKeys: { secrets: [current], maxAge: 60 } as never })).toThrow(
      'unknown option `signedKeys.maxAge`. Known options of `signedKeys`: secrets, maxAgeSeconds.',
    );
  });
});

describe('the demo API', () => {
  const { client: demoClient, tables } = useDemoTables('signed-demo');

  test('POST /idempotency-keys issues a fresh key that the payment API, requiring issued keys, accepts once and replays', async () => {
    const secret = randomBytes(32);
    const issue = createKeyHandler({ secret });
    const pay = createPaymentHandler({ ...tables(), client: demoClient, keySecrets: [secret] });
    const issued = await issue();
    expect(issued).toMatchObject({ statusCode: 201, headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' } });
    const { key } = JSON.parse(issued.body!) as { key: string };
    expect(JSON.parse((await issue()).body!).key).not.toBe(key);

    const payment = (idempotencyKey: string) => paymentRequest(idempotencyKey) as APIGatewayProxyEventV2;
    const created = await pay(payment(key), demoLambdaContext('payments-api'));
    expect(created.statusCode).toBe(201);
    expect(await pay(payment(key), demoLambdaContext('payments-api'))).toMatchObject({
      statusCode: 201,
      body: created.body,
      headers: { 'Idempotent-Replayed': 'true' },
    });
    expect((await pay(payment('order-42'), demoLambdaContext('payments-api'))).statusCode).toBe(400);
    expect((await idsWithPrefix(demoClient, tables().idempotencyTable, 'payments-api#')).length).toBe(1);
  });

  test('the Lambda entry reads the current and previous secret through the Parameters and Secrets extension', async () => {
    const versions: Record<string, string> = { AWSCURRENT: 'current-secret-of-at-least-32-bytes!', AWSPREVIOUS: 'previous-secret-of-at-least-32-bytes' };
    const seen: string[] = [];
    const extension = createServer((request, response) => {
      const url = new URL(request.url!, 'http://localhost');
      seen.push(
        `${url.pathname} ${url.searchParams.get('secretId')} ${url.searchParams.get('versionStage')} ${request.headers['x-aws-parameters-secrets-token']}`,
      );
      const value = versions[url.searchParams.get('versionStage')!];
      if (value === undefined) response.writeHead(400).end('ResourceNotFoundException');
      else response.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ SecretString: value }));
    });
    await new Promise<void>((resolve) => extension.listen(0, '127.0.0.1', resolve));
    const env = { PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: String((extension.address() as AddressInfo).port), AWS_SESSION_TOKEN: 'session' };
    try {
      expect(await readKeySecrets('arn:secret', env)).toEqual([versions.AWSCURRENT, versions.AWSPREVIOUS]);
      expect(seen.sort()).toEqual(['/secretsmanager/get arn:secret AWSCURRENT session', '/secretsmanager/get arn:secret AWSPREVIOUS session']);
      delete versions.AWSPREVIOUS; // never rotated
      expect(await readKeySecrets('arn:secret', env)).toEqual([versions.AWSCURRENT]);
      delete versions.AWSCURRENT;
      await expect(readKeySecrets('arn:secret', env)).rejects.toThrow('Reading the key-signing secret failed: 400 ResourceNotFoundException');
    } finally {
      await new Promise((resolve) => extension.close(resolve));
    }
  });

  test('a failure to read the previous secret fails the read, rather than dropping the keys it signed until the environment is replaced', async () => {
    // The extension answers 400 for a version stage the secret does not have; a 5xx is a failure (throttled, unreachable).
    const extension = createServer((request, response) => {
      const stage = new URL(request.url!, 'http://localhost').searchParams.get('versionStage');
      if (stage === 'AWSCURRENT')
        response.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ SecretString: 'current-secret-of-at-least-32-bytes!' }));
      else response.writeHead(502).end('Secrets Manager is unavailable');
    });
    await new Promise<void>((resolve) => extension.listen(0, '127.0.0.1', resolve));
    const env = { PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: String((extension.address() as AddressInfo).port), AWS_SESSION_TOKEN: 'session' };
    try {
      await expect(readKeySecrets('arn:secret', env)).rejects.toThrow('Reading the key-signing secret failed: 502 Secrets Manager is unavailable');
    } finally {
      await new Promise((resolve) => extension.close(resolve));
    }
  });
});
