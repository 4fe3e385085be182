import { randomUUID } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2WithJWTAuthorizer } from 'aws-lambda';
import { DynamoDBStore, type HttpEvent, type HttpIdempotencyOptions, type HttpResult, httpIdempotency } from '../../lib/index.js';
import { readItem, scanItems, testClient, unreachableClient, useTablePerTest } from '../support/dynamodb.js';
import { gate } from '../support/gate.js';
import { lambdaContext } from '../support/lambda.js';

// ---------------------------------------------------------------------------------------------
// Event fixtures: what API Gateway REST (v1) and HTTP APIs (v2) actually send.

interface RequestSpec {
  /** The Idempotency-Key header value; no header when absent. */
  readonly key?: string;
  /** @default 'Idempotency-Key' (v1) / 'idempotency-key' (v2, which lower-cases header names) */
  readonly headerName?: string;
  /** @default 'POST' */
  readonly method?: string;
  /** Route template. @default '/orders' */
  readonly route?: string;
  /** Actual path. @default the route */
  readonly path?: string;
  /** Raw query string, e.g. 'dryRun=false'. */
  readonly query?: string;
  /** @default a JSON order */
  readonly body?: string | null;
  readonly isBase64Encoded?: boolean;
  /** v1: authorizer principalId; v2: JWT `sub`; `null`: no authorizer. @default 'user-a' */
  readonly principal?: string | null;
  /** v1 only: identity.apiKeyId. */
  readonly apiKeyId?: string;
  readonly headers?: Record<string, string>;
}

interface Api {
  readonly name: string;
  event(spec?: RequestSpec): HttpEvent;
  /** A realistic result of this API's handler, carrying every field the integration supports. */
  result(run: number): HttpResult;
}

const ORDER = '{"amount":1000,"currency":"EUR","items":[{"sku":"A-1","qty":2}]}';
const REQUEST_TIME = Date.UTC(2025, 0, 15, 12, 0, 0);

const rest: Api = {
  name: 'REST API (v1)',
  event(spec = {}) {
    const method = spec.method ?? 'POST';
    const resource = spec.route ?? '/orders';
    const path = spec.path ?? resource;
    const headers: Record<string, string> = {
      Accept: 'application/json',
      'Content-Type': 'application/json',
      Host: 'a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com',
      'User-Agent': 'curl/8.5.0',
      'X-Amzn-Trace-Id': 'Root=1-6787a3c0-0123456789abcdef01234567',
      'X-Forwarded-For': '203.0.113.7',
      'X-Forwarded-Port': '443',
      'X-Forwarded-Proto': 'https',
      ...spec.headers,
    };
    if (spec.key !== undefined) headers[spec.headerName ?? 'Idempotency-Key'] = spec.key;
    const query: Record<string, string[]> = Object.create(null); // API Gateway's parameters can be named __proto__
    for (const [name, value] of new URLSearchParams(spec.query ?? '')) (query[name] ??= []).push(value);
    const hasQuery = Object.keys(query).length > 0;
    const principal = spec.principal === undefined ? 'user-a' : spec.principal;
    const event: APIGatewayProxyEvent = {
      resource,
      path,
      httpMethod: method,
      headers,
      multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, [value]])),
      queryStringParameters: hasQuery ? Object.fromEntries(Object.entries(query).map(([name, values]) => [name, values.at(-1)!])) : null,
      multiValueQueryStringParameters: hasQuery ? query : null,
      pathParameters: resource.includes('{id}') ? { id: path.split('/').at(-1)! } : null,
      stageVariables: null,
      requestContext: {
        accountId: '123456789012',
        apiId: 'a1b2c3d4e5',
        authorizer: principal === null ? null : { principalId: principal, integrationLatency: 21, tenantTier: 'gold' },
        protocol: 'HTTP/1.1',
        httpMethod: method,
        identity: {
          accessKey: null,
          accountId: null,
          apiKey: spec.apiKeyId === undefined ? null : `key-value-${spec.apiKeyId}`,
          apiKeyId: spec.apiKeyId ?? null,
          caller: null,
          clientCert: null,
          cognitoAuthenticationProvider: null,
          cognitoAuthenticationType: null,
          cognitoIdentityId: null,
          cognitoIdentityPoolId: null,
          principalOrgId: null,
          sourceIp: '203.0.113.7',
          user: null,
          userAgent: 'curl/8.5.0',
          userArn: null,
        },
        path: `/prod${path}`,
        stage: 'prod',
        requestId: randomUUID(),
        requestTime: '15/Jan/2025:12:00:00 +0000',
        requestTimeEpoch: REQUEST_TIME,
        resourceId: 'x1y2z3',
        resourcePath: resource,
        domainName: 'a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com',
        domainPrefix: 'a1b2c3d4e5',
        extendedRequestId: 'EXAMPLEext=',
      },
      body: spec.body === undefined ? ORDER : spec.body,
      isBase64Encoded: spec.isBase64Encoded ?? false,
    };
    return event;
  },
  result: (run) => ({
    statusCode: 201,
    headers: { 'Content-Type': 'application/json', Location: `/orders/ord-${run}` },
    multiValueHeaders: { 'Set-Cookie': [`order=ord-${run}; Path=/; Secure`, 'theme=dark; Path=/'], Vary: ['Accept', 'Authorization'] },
    body: JSON.stringify({ orderId: `ord-${run}`, status: 'CREATED' }),
    isBase64Encoded: false,
  }),
};

const httpApi: Api = {
  name: 'HTTP API (v2)',
  event(spec = {}) {
    const method = spec.method ?? 'POST';
    const route = spec.route ?? '/orders';
    const path = spec.path ?? route;
    const headers: Record<string, string> = {
      accept: 'application/json',
      'content-length': String(ORDER.length),
      'content-type': 'application/json',
      host: 'q1w2e3r4t5.execute-api.eu-west-1.amazonaws.com',
      'user-agent': 'curl/8.5.0',
      'x-amzn-trace-id': 'Root=1-6787a3c0-0123456789abcdef01234567',
      'x-forwarded-for': '203.0.113.7',
      'x-forwarded-port': '443',
      'x-forwarded-proto': 'https',
      ...spec.headers,
    };
    if (spec.key !== undefined) headers[spec.headerName ?? 'idempotency-key'] = spec.key;
    const principal = spec.principal === undefined ? 'user-a' : spec.principal;
    const query: Record<string, string> = Object.create(null); // API Gateway's parameters can be named __proto__
    for (const [name, value] of new URLSearchParams(spec.query ?? '')) query[name] = query[name] === undefined ? value : `${query[name]},${value}`;
    const event: APIGatewayProxyEventV2WithJWTAuthorizer = {
      version: '2.0',
      routeKey: `${method} ${route}`,
      rawPath: path,
      rawQueryString: spec.query ?? '',
      cookies: ['session=s3ss10n'],
      headers,
      ...(spec.query ? { queryStringParameters: query } : {}),
      requestContext: {
        accountId: '123456789012',
        apiId: 'q1w2e3r4t5',
        authorizer: {
          principalId: '',
          integrationLatency: 0,
          jwt: {
            claims: { sub: principal ?? '', iss: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example', aud: 'client-app', scope: 'orders/write' },
            scopes: ['orders/write'],
          },
        },
        domainName: 'q1w2e3r4t5.execute-api.eu-west-1.amazonaws.com',
        domainPrefix: 'q1w2e3r4t5',
        http: { method, path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'curl/8.5.0' },
        requestId: `E${randomUUID().slice(0, 14)}=`,
        routeKey: `${method} ${route}`,
        stage: '$default',
        time: '15/Jan/2025:12:00:00 +0000',
        timeEpoch: REQUEST_TIME,
      },
      ...(route.includes('{id}') ? { pathParameters: { id: path.split('/').at(-1)! } } : {}),
      ...(spec.body === null ? {} : { body: spec.body ?? ORDER }),
      isBase64Encoded: spec.isBase64Encoded ?? false,
    };
    if (principal === null) delete (event.requestContext as { authorizer?: unknown }).authorizer;
    return event as HttpEvent;
  },
  result: (run) => ({
    statusCode: 201,
    headers: { 'content-type': 'application/json', location: `/orders/ord-${run}` },
    cookies: [`order=ord-${run}; Path=/; Secure`, 'theme=dark; Path=/'],
    body: Buffer.from(JSON.stringify({ orderId: `ord-${run}`, status: 'CREATED' })).toString('base64'),
    isBase64Encoded: true,
  }),
};

// ---------------------------------------------------------------------------------------------
// Harness: a real middy handler, a fake Lambda context, an injected clock, a fresh table per test.

const client = testClient();
let tableName: string;
let store: DynamoDBStore;
let clock: number;

useTablePerTest(client, 'http', (fresh) => ({ tableName, store } = fresh));
beforeEach(() => {
  clock = REQUEST_TIME;
});
afterAll(() => client.destroy());

type Respond = (event: HttpEvent, run: number) => HttpResult | Promise<HttpResult>;

/** `middy(handler).use(httpIdempotency(...))`; `runs` counts the handler's executions. */
function api(variant: Api, options: Partial<HttpIdempotencyOptions> = {}, respond: Respond = (_, run) => variant.result(run)) {
  const seen: HttpEvent[] = [];
  const handler = middy(async (event: HttpEvent): Promise<HttpResult> => {
    seen.push(event);
    return respond(event, seen.length);
  }).use(httpIdempotency({ store, now: () => clock, singleFlight: false, ...options })); // each invocation stands for another process
  return {
    invoke: (event: HttpEvent, context = lambdaContext('create-order', 30_000)) => handler(event, context) as Promise<HttpResult>,
    get runs() {
      return seen.length;
    },
  };
}

function replayOf(result: HttpResult): HttpResult {
  return { ...result, headers: { ...result.headers, 'Idempotent-Replayed': 'true' } };
}

/** Asserts an RFC 9457 problem response and returns its body. */
function expectProblem(result: HttpResult, status: number): Record<string, unknown> {
  expect(result.statusCode).toBe(status);
  expect(result.headers?.['Content-Type']).toBe('application/problem+json');
  const problem = JSON.parse(result.body!) as Record<string, unknown>;
  expect(problem).toEqual({ type: expect.any(String), title: expect.any(String), status, detail: expect.any(String) });
  expect((problem.title as string).length).toBeGreaterThan(0);
  expect((problem.detail as string).length).toBeGreaterThan(0);
  return problem;
}

const records = () => scanItems(client, tableName);

const readKey = (event: HttpEvent) => Object.entries(event.headers ?? {}).find(([name]) => name.toLowerCase() === 'idempotency-key')?.[1];
const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const header = (variant: Api, name: string) => (variant === rest ? name.replace(/(^|-)\w/g, (c) => c.toUpperCase()) : name.toLowerCase());

// ---------------------------------------------------------------------------------------------

describe.each([rest, httpApi])('httpIdempotency with $name events', (variant) => {
  test('runs the first request and replays its whole result to a duplicate, marked Idempotent-Replayed, without running the handler', async () => {
    const orders = api(variant);
    const first = await orders.invoke(variant.event({ key: 'order-7f3a' }));
    expect(first).toEqual(variant.result(1));
    expect(first.headers).not.toHaveProperty('Idempotent-Replayed');

    const [record] = await records();
    expect(record?.status?.S).toBe('COMPLETED');
    expect(record?.id?.S).toMatch(/^create-order#/);

    const duplicate = await orders.invoke(variant.event({ key: 'order-7f3a' }));
    expect(duplicate).toEqual(replayOf(variant.result(1)));
    expect(orders.runs).toBe(1);
    expect(await records()).toHaveLength(1);
  });

  test('a response that carries its own idempotent-replayed header (copied from an upstream API) is replayed with one such field, true', async () => {
    const upstream = (_: HttpEvent, run: number): HttpResult => {
      const result = variant.result(run);
      return { ...result, headers: { ...result.headers, 'idempotent-replayed': 'false' }, multiValueHeaders: { 'IDEMPOTENT-REPLAYED': ['false'] } };
    };
    const orders = api(variant, {}, upstream);
    await orders.invoke(variant.event({ key: 'k-upstream' }));
    const duplicate = await orders.invoke(variant.event({ key: 'k-upstream' }));
    const fields = [...Object.entries(duplicate.headers ?? {}), ...Object.entries(duplicate.multiValueHeaders ?? {})].filter(
      ([name]) => name.toLowerCase() === 'idempotent-replayed',
    );
    expect(fields).toEqual([['Idempotent-Replayed', 'true']]);
    expect(orders.runs).toBe(1);
  });

  test('query parameters named like Object members (__proto__, constructor, toString) are fingerprinted like any other', async () => {
    const orders = api(variant);
    const query = 'constructor=1&toString=2&__proto__=3';
    expect((await orders.invoke(variant.event({ key: 'k-proto', query }))).statusCode).toBe(201);
    expect(await orders.invoke(variant.event({ key: 'k-proto', query }))).toEqual(replayOf(variant.result(1)));
    expectProblem(await orders.invoke(variant.event({ key: 'k-proto', query: 'constructor=1&toString=2&__proto__=999' })), 422);
    expect(orders.runs).toBe(1);
  });

  test('a 429, 425 or 408 answer asks the client to retry: it is not stored, and the retry runs', async () => {
    for (const status of [429, 425, 408]) {
      let first = true;
      const orders = api(variant, {}, (_, run) => (first ? ((first = false), { statusCode: status, body: 'slow down' }) : variant.result(run)));
      expect((await orders.invoke(variant.event({ key: `k-${status}` }))).statusCode).toBe(status);
      expect(await orders.invoke(variant.event({ key: `k-${status}` }))).toEqual(variant.result(2));
      expect(orders.runs).toBe(2);
    }
  });

  test('a 401 asks the client to repeat the request with new credentials: it is not stored, and the retry with a refreshed token runs', async () => {
    // A handler that checks the token itself (a Function URL without an authorizer, say): the key is
    // shared by every token, so a stored 401 would refuse every retry, the refreshed one included.
    const orders = api(variant, {}, (event, run) =>
      event.headers?.authorization === 'Bearer fresh'
        ? variant.result(run)
        : { statusCode: 401, headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' } },
    );
    const request = (token: string) => variant.event({ key: 'k-401', headers: { authorization: `Bearer ${token}` } });
    expect((await orders.invoke(request('expired'))).statusCode).toBe(401);
    expect(await orders.invoke(request('fresh'))).toEqual(variant.result(2));
    expect(await orders.invoke(request('fresh'))).toEqual(replayOf(variant.result(2)));
    expect(orders.runs).toBe(2);
  });

  test('a 403 refuses the request without an effect: it is not stored, and the retry once access is granted runs', async () => {
    // Access decided from data the token does not carry (an account's permissions in a table):
    // the caller, and so the key, is the same before and after the grant.
    let granted = false;
    const orders = api(variant, {}, (_, run) => (granted ? variant.result(run) : { statusCode: 403, body: 'not allowed' }));
    expect((await orders.invoke(variant.event({ key: 'k-403' }))).statusCode).toBe(403);
    granted = true;
    expect(await orders.invoke(variant.event({ key: 'k-403' }))).toEqual(variant.result(2));
    expect(await orders.invoke(variant.event({ key: 'k-403' }))).toEqual(replayOf(variant.result(2)));
    expect(orders.runs).toBe(2);
  });

  test('a status code sent as a string (`"429"`, `"503"`), which API Gateway accepts, is read as its number: not stored, the retry runs', async () => {
    for (const status of ['429', '503']) {
      let first = true;
      const orders = api(variant, {}, (_, run) =>
        first ? ((first = false), { statusCode: status as unknown as number, body: 'later' }) : variant.result(run),
      );
      await orders.invoke(variant.event({ key: `k-text-${status}` }));
      expect(await orders.invoke(variant.event({ key: `k-text-${status}` }))).toEqual(variant.result(2));
      expect(orders.runs).toBe(2);
    }
  });

  test('a 4xx that says when to retry (`Retry-After`, in any case and header field: a lock that will be released) is not stored: the retry after it runs', async () => {
    // A 409 the handler answers while another request holds what it needs (its own nested
    // idempotent call met IN_PROGRESS, an optimistic lock), and a 413 or 423 that will pass: the
    // client is told to send the request again, and a stored answer would refuse it all day.
    const retryAfter = (status: number): HttpResult =>
      variant === rest
        ? { statusCode: status, multiValueHeaders: { 'retry-after': ['5'] }, body: '{"message":"stock is being reserved"}' }
        : { statusCode: status, headers: { 'RETRY-AFTER': '5' }, body: '{"message":"stock is being reserved"}' };
    for (const status of [409, 413, 423]) {
      const key = `k-retry-after-${status}`;
      const stored = (await records()).length;
      const orders = api(variant, {}, (_, run) => (run === 1 ? retryAfter(status) : variant.result(run)));
      expect(await orders.invoke(variant.event({ key }))).toEqual(retryAfter(status));
      expect(await records()).toHaveLength(stored);
      expect(await orders.invoke(variant.event({ key }))).toEqual(variant.result(2));
      expect(await orders.invoke(variant.event({ key }))).toEqual(replayOf(variant.result(2)));
      expect(orders.runs).toBe(2);
    }
  });

  test('a 413 without `Retry-After` (a request too large, and it will stay so) is an outcome: stored and replayed, the handler runs once', async () => {
    const tooLarge: HttpResult = { statusCode: 413, headers: { 'Content-Type': 'application/json' }, body: '{"message":"at most 100 items per order"}' };
    const orders = api(variant, {}, () => tooLarge);
    expect(await orders.invoke(variant.event({ key: 'k-413' }))).toEqual(tooLarge);
    expect(await orders.invoke(variant.event({ key: 'k-413' }))).toEqual(replayOf(tooLarge));
    expect(orders.runs).toBe(1);
  });

  test('a 2xx or 3xx with `Retry-After` is an outcome (when to poll the operation, or to follow the redirect): stored and replayed', async () => {
    for (const status of [202, 303]) {
      const accepted: HttpResult = { statusCode: status, headers: { Location: '/operations/op-1', 'Retry-After': '10' }, body: '' };
      const orders = api(variant, {}, () => accepted);
      expect(await orders.invoke(variant.event({ key: `k-poll-${status}` }))).toEqual(accepted);
      expect(await orders.invoke(variant.event({ key: `k-poll-${status}` }))).toEqual(replayOf(accepted));
      expect(orders.runs).toBe(1);
    }
  });

  test('matches the header name case-insensitively', async () => {
    const orders = api(variant);
    await orders.invoke(variant.event({ key: 'k-case', headerName: 'Idempotency-Key' }));
    for (const headerName of ['idempotency-key', 'IDEMPOTENCY-KEY', 'idempotency-KEY']) {
      expect(await orders.invoke(variant.event({ key: 'k-case', headerName }))).toEqual(replayOf(variant.result(1)));
    }
    expect(orders.runs).toBe(1);
  });

  test('accepts a quoted structured-field string and treats it as the bare token', async () => {
    const orders = api(variant);
    await orders.invoke(variant.event({ key: '"8e03978e-40d5-43e8-bc93-6894a57f9324"' }));
    expect(await orders.invoke(variant.event({ key: '8e03978e-40d5-43e8-bc93-6894a57f9324' }))).toEqual(replayOf(variant.result(1)));
    // Escapes are undone: "a\"b" is the key a"b.
    await orders.invoke(variant.event({ key: 'a"b' }));
    expect(await orders.invoke(variant.event({ key: '"a\\"b"' }))).toEqual(replayOf(variant.result(2)));
    expect(orders.runs).toBe(2);
  });

  test('answers a request without the header with 400 problem+json, runs nothing and stores nothing', async () => {
    const orders = api(variant);
    const response = await orders.invoke(variant.event({}));
    expect(expectProblem(response, 400).title).toMatch(/Idempotency-Key/);
    expect(orders.runs).toBe(0);
    expect(await records()).toEqual([]);
  });

  test.each(['GET', 'HEAD', 'OPTIONS'])(
    'runs a %s request without the header normally (a safe method; a CORS preflight never carries it), storing nothing',
    async (method) => {
      const orders = api(variant);
      expect(await orders.invoke(variant.event({ method, body: null }))).toEqual(variant.result(1));
      expect(orders.runs).toBe(1);
      expect(await records()).toEqual([]);
      // The other methods still need one.
      expectProblem(await orders.invoke(variant.event({ method: 'DELETE', body: null })), 400);
      expect(orders.runs).toBe(1);
    },
  );

  test('reads the method in any case, as a hand-built event may spell it: a `get` without the header runs like a GET', async () => {
    const orders = api(variant);
    expect(await orders.invoke(variant.event({ method: 'get', body: null }))).toEqual(variant.result(1));
    expect(orders.runs).toBe(1);
    expect(await records()).toEqual([]);
  });

  test("runs a GET with a key every time, fresh (a key sent on every request, a status poll reusing its operation's): no store request, no record, no event; a POST with that key still claims it", async () => {
    const requests: string[] = [];
    const events: unknown[] = [];
    // Every request the middleware makes of the store, whatever its method.
    const watched = new Proxy(store, {
      get(target, name) {
        const value: unknown = Reflect.get(target, name, target);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          requests.push(String(name));
          return (value as (...args: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const orders = api(variant, { store: watched, observability: (event) => void events.push(event) });
    const poll = variant.event({ key: 'k-poll', method: 'GET', route: '/orders/{id}', path: '/orders/ord-1', body: null });
    expect(await orders.invoke(poll)).toEqual(variant.result(1));
    expect(await orders.invoke(poll)).toEqual(variant.result(2));
    expect(orders.runs).toBe(2);
    expect(requests).toEqual([]);
    expect(events).toEqual([]);
    expect(await records()).toEqual([]);
    // The same key on a POST is claimed, recorded and replayed as ever.
    expect(await orders.invoke(variant.event({ key: 'k-poll' }))).toEqual(variant.result(3));
    expect(await orders.invoke(variant.event({ key: 'k-poll' }))).toEqual(replayOf(variant.result(3)));
    expect(orders.runs).toBe(3);
    expect(requests.length).toBeGreaterThan(0);
    expect(events.length).toBeGreaterThan(0);
    expect(await records()).toHaveLength(1);
  });

  test('answers a GET as the handler made it: no `isFinalResponse` asked, no warning about a body that is not text, as nothing is stored', async () => {
    const warnings: string[] = [];
    let asked = 0;
    const body = { id: 'ord-1' } as unknown as string; // a body a serializer inside the middleware would turn into text
    const orders = api(
      variant,
      {
        isFinalResponse: () => {
          asked++;
          return true;
        },
        logger: { warn: (line) => void warnings.push(line) },
      },
      () => ({ statusCode: 200, body }),
    );
    const poll = variant.event({ key: 'k-poll', method: 'GET', route: '/orders/{id}', path: '/orders/ord-1', body: null });
    expect((await orders.invoke(poll)).body).toBe(body);
    expect(asked).toBe(0);
    expect(warnings).toEqual([]);
    // The same response to a POST is stored: the warning is said, once.
    await orders.invoke(variant.event({ key: 'k-post' }));
    expect(asked).toBe(1);
    expect(warnings).toEqual([expect.stringContaining('stored a response whose body is not text')]);
  });

  test.each([
    ['HEAD', 'a malformed key', 'clé de commande'],
    ['OPTIONS', 'a malformed key', ''],
    ['HEAD', 'a key sent twice', 'k-1, k-2'],
    ['OPTIONS', 'a key sent twice', '"k-1", "k-2"'],
    ['TRACE', 'a key sent twice', 'k-1,k-2'],
    ['GET', 'a key the API did not issue', 'not-issued'],
  ])('runs %s with %s normally, every time, and stores nothing: no 400', async (method, _, key) => {
    const orders = api(variant, { signedKeys: { secrets: ['s'.repeat(32)] } });
    const request = variant.event({ key, method, body: null });
    // A REST API delivers a header sent twice as two values, the last one alone in `headers`.
    const sent = key.split(',').map((value) => value.trim());
    if (variant === rest && sent.length > 1) {
      (request as APIGatewayProxyEvent).multiValueHeaders['Idempotency-Key'] = sent;
      request.headers['Idempotency-Key'] = sent.at(-1);
    }
    expect(await orders.invoke(request)).toEqual(variant.result(1));
    expect(await orders.invoke(request)).toEqual(variant.result(2));
    expect(orders.runs).toBe(2);
    expect(await records()).toEqual([]);
  });

  test('with `required: false`, runs a request without the header without idempotency and stores nothing', async () => {
    const orders = api(variant, { required: false });
    expect(await orders.invoke(variant.event({}))).toEqual(variant.result(1));
    expect(await orders.invoke(variant.event({}))).toEqual(variant.result(2));
    expect(orders.runs).toBe(2);
    expect(await records()).toEqual([]);
    // A key, when sent, still counts.
    await orders.invoke(variant.event({ key: 'k-optional' }));
    expect(await orders.invoke(variant.event({ key: 'k-optional' }))).toEqual(replayOf(variant.result(3)));
    expect(orders.runs).toBe(3);
  });

  test.each([
    ['empty', ''],
    ['empty quoted', '""'],
    ['only spaces and tabs', ' \t  '],
    ['256 characters', 'k'.repeat(256)],
    ['a control character', 'order-\u0001-1'],
    ['a tab inside', 'order\t1'],
    ['a non-ASCII character', 'clé-de-commande'],
    ['a space in a bare token', 'order 1'],
    ['an unescaped quote inside a quoted string', '"a"b"'],
  ])('answers a key with %s with 400, without running or storing anything', async (_, key) => {
    const orders = api(variant, { required: false });
    const response = await orders.invoke(variant.event({ key }));
    expect(expectProblem(response, 400).title).toMatch(/invalid/i);
    expect(orders.runs).toBe(0);
    expect(await records()).toEqual([]);
  });

  test('accepts a key of exactly 255 characters', async () => {
    const orders = api(variant);
    expect(await orders.invoke(variant.event({ key: 'k'.repeat(255) }))).toEqual(variant.result(1));
    expect(await orders.invoke(variant.event({ key: 'k'.repeat(255) }))).toEqual(replayOf(variant.result(1)));
  });

  test('answers the same key with a different request with 422 and leaves the record untouched', async () => {
    const orders = api(variant);
    await orders.invoke(variant.event({ key: 'k-reuse' }));
    const [stored] = await records();
    const id = stored!.id!.S!;
    const before = await readItem(client, tableName, id);

    clock += 5_000;
    const otherBody = await orders.invoke(variant.event({ key: 'k-reuse', body: '{"amount":9999,"currency":"EUR","items":[{"sku":"A-1","qty":2}]}' }));
    expect(expectProblem(otherBody, 422).title).toMatch(/Idempotency-Key/);
    expectProblem(await orders.invoke(variant.event({ key: 'k-reuse', query: 'dryRun=true' })), 422);
    expectProblem(await orders.invoke(variant.event({ key: 'k-reuse', body: null })), 422);

    expect(orders.runs).toBe(1);
    expect(await readItem(client, tableName, id)).toEqual(before);
    expect(await records()).toHaveLength(1);
    // The original request is still replayed.
    expect(await orders.invoke(variant.event({ key: 'k-reuse' }))).toEqual(replayOf(variant.result(1)));
  });

  test('answers the same key on another resource of the same route template with 422', async () => {
    const orders = api(variant);
    await orders.invoke(variant.event({ key: 'k-path', method: 'PUT', route: '/orders/{id}', path: '/orders/ord-1' }));
    expectProblem(await orders.invoke(variant.event({ key: 'k-path', method: 'PUT', route: '/orders/{id}', path: '/orders/ord-2' })), 422);
    expect(orders.runs).toBe(1);
  });

  test('ignores JSON whitespace and member order in the body', async () => {
    const orders = api(variant);
    await orders.invoke(variant.event({ key: 'k-json', body: '{"amount":1000,"currency":"EUR","items":[{"sku":"A-1","qty":2}]}' }));
    const reordered = '{\n  "items": [ { "qty": 2, "sku": "A-1" } ],\n  "currency": "EUR",\n  "amount": 1000\n}';
    expect(await orders.invoke(variant.event({ key: 'k-json', body: reordered }))).toEqual(replayOf(variant.result(1)));
    // Array order does matter.
    const otherItems = '{"amount":1000,"currency":"EUR","items":[{"sku":"A-1","qty":2},{"sku":"B-2","qty":1}]}';
    expectProblem(await orders.invoke(variant.event({ key: 'k-json', body: otherItems })), 422);
    expect(orders.runs).toBe(1);
  });

  test('decodes base64 bodies before comparing them', async () => {
    const orders = api(variant);
    await orders.invoke(variant.event({ key: 'k-b64', body: ORDER }));
    const encoded = base64('{ "currency": "EUR", "items": [{"sku":"A-1","qty":2}], "amount": 1000 }');
    expect(await orders.invoke(variant.event({ key: 'k-b64', body: encoded, isBase64Encoded: true }))).toEqual(replayOf(variant.result(1)));
    expectProblem(await orders.invoke(variant.event({ key: 'k-b64', body: base64('{"amount":1}'), isBase64Encoded: true })), 422);

    // Not JSON: the same bytes match whether or not they arrive base64-encoded.
    const form = 'amount=1000&currency=EUR';
    await orders.invoke(variant.event({ key: 'k-form', body: form, headers: { [header(variant, 'content-type')]: 'application/x-www-form-urlencoded' } }));
    expect(await orders.invoke(variant.event({ key: 'k-form', body: base64(form), isBase64Encoded: true }))).toEqual(replayOf(variant.result(2)));
    expectProblem(await orders.invoke(variant.event({ key: 'k-form', body: base64('amount=1001&currency=EUR'), isBase64Encoded: true })), 422);
    expect(orders.runs).toBe(2);
  });

  test('answers a duplicate of a request still in progress with 409 and Retry-After in seconds of the remaining lease', async () => {
    const entered = gate();
    const release = gate();
    const orders = api(variant, {}, async (_, run) => {
      entered.open();
      await release.promise;
      return variant.result(run);
    });
    const first = orders.invoke(variant.event({ key: 'k-slow' }), lambdaContext('create-order', 30_000));
    try {
      await entered.promise;
      clock += 12_700; // the first request's lease ends 17.3 s from now: a retry after 17 s would still meet it
      const duplicate = await orders.invoke(variant.event({ key: 'k-slow' }));
      const problem = expectProblem(duplicate, 409);
      expect(problem.detail).toMatch(/in progress/i);
      expect(duplicate.headers?.['Retry-After']).toBe('18');
      expect((await records())[0]?.status?.S).toBe('INPROGRESS');
    } finally {
      release.open();
    }
    expect(await first).toEqual(variant.result(1));
    expect(await orders.invoke(variant.event({ key: 'k-slow' }))).toEqual(replayOf(variant.result(1)));
    expect(orders.runs).toBe(1);
  });

  test("an attempt taken over after its deadline gets a 409 problem (SUPERSEDED), never its own result over the taker's; duplicates replay the taker's", async () => {
    const entered = gate();
    const release = gate();
    const orders = api(variant, {}, async (_, run) => {
      if (run === 1) {
        entered.open();
        await release.promise;
      }
      return variant.result(run);
    });
    const stale = orders.invoke(variant.event({ key: 'k-stale' }), lambdaContext('create-order', 30_000));
    await entered.promise;
    clock += 31_000; // past the first attempt's lease: a retry takes the record over
    expect(await orders.invoke(variant.event({ key: 'k-stale' }))).toEqual(variant.result(2));
    release.open();
    expect(expectProblem(await stale, 409).title).toMatch(/took over/);
    expect(await orders.invoke(variant.event({ key: 'k-stale' }))).toEqual(replayOf(variant.result(2)));
    expect(orders.runs).toBe(2);
  });

  test('caps Retry-After at `maxRetryAfterSeconds` (default 60)', async () => {
    const entered = gate();
    const release = gate();
    const hold = async (_: HttpEvent, run: number) => {
      entered.open();
      await release.promise;
      return variant.result(run);
    };
    const capped = api(variant, { maxRetryAfterSeconds: 7 }, hold);
    const byDefault = api(variant, {}, hold);
    const first = capped.invoke(variant.event({ key: 'k-long' }), lambdaContext('create-order', 300_000));
    try {
      await entered.promise;
      expect((await capped.invoke(variant.event({ key: 'k-long' }))).headers?.['Retry-After']).toBe('7');
      expect((await byDefault.invoke(variant.event({ key: 'k-long' }))).headers?.['Retry-After']).toBe('60');
    } finally {
      release.open();
    }
    await first;
    expect(capped.runs + byDefault.runs).toBe(1);
  });

  test('answers 503 with Retry-After: 1 without running the handler when the store is unreachable', async () => {
    const unreachable = await unreachableClient();
    try {
      const orders = api(variant, { store: new DynamoDBStore({ tableName, client: unreachable }) });
      const response = await orders.invoke(variant.event({ key: 'k-down' }));
      expectProblem(response, 503);
      expect(response.headers?.['Retry-After']).toBe('1');
      expect(orders.runs).toBe(0);
    } finally {
      unreachable.destroy();
    }
  });

  test('stores and replays a 4xx result', async () => {
    const notFound: HttpResult = { statusCode: 404, headers: { 'Content-Type': 'application/json' }, body: '{"message":"customer not found"}' };
    const orders = api(variant, {}, () => notFound);
    expect(await orders.invoke(variant.event({ key: 'k-404' }))).toEqual(notFound);
    expect(await orders.invoke(variant.event({ key: 'k-404' }))).toEqual(replayOf(notFound));
    expect(orders.runs).toBe(1);
  });

  test('releases the key after a 5xx result, 500 included: the retry runs again', async () => {
    for (const status of [500, 502]) {
      const key = `k-${status}`;
      const stored = (await records()).length;
      const orders = api(variant, {}, (_, run) =>
        run === 1 ? { statusCode: status, body: '{"message":"payment provider unavailable"}' } : variant.result(run),
      );
      expect((await orders.invoke(variant.event({ key }))).statusCode).toBe(status);
      expect(await records()).toHaveLength(stored);
      expect(await orders.invoke(variant.event({ key }))).toEqual(variant.result(2));
      expect(await orders.invoke(variant.event({ key }))).toEqual(replayOf(variant.result(2)));
      expect(orders.runs).toBe(2);
    }
  });

  test('releases the key when the handler throws: the error propagates and the retry runs again', async () => {
    const failure = new Error('connection reset by the payment provider');
    const orders = api(variant, {}, (_, run) => {
      if (run === 1) throw failure;
      return variant.result(run);
    });
    await expect(orders.invoke(variant.event({ key: 'k-throw' }))).rejects.toBe(failure);
    expect(await records()).toEqual([]);
    expect(await orders.invoke(variant.event({ key: 'k-throw' }))).toEqual(variant.result(2));
    expect(orders.runs).toBe(2);
  });

  test('`isFinalResponse` decides which results are stored', async () => {
    const orders = api(variant, { isFinalResponse: (result) => (result.statusCode ?? 200) < 400 }, (_, run) =>
      run === 1 ? { statusCode: 409, body: '{"message":"stock reserved elsewhere"}' } : variant.result(run),
    );
    expect((await orders.invoke(variant.event({ key: 'k-final' }))).statusCode).toBe(409);
    expect(await records()).toEqual([]);
    expect(await orders.invoke(variant.event({ key: 'k-final' }))).toEqual(variant.result(2));
    expect(orders.runs).toBe(2);
  });

  test('with `isFinalError`, a final thrown error is replayed as that error, while a 5xx result still releases the key', async () => {
    class CardDeclined extends Error {
      override readonly name = 'CardDeclined';
      readonly code = 'card_declined';
    }
    const orders = api(variant, { isFinalError: (error) => error instanceof Error }, (event, run) => {
      if (readKey(event) === 'k-declined') throw new CardDeclined('card declined');
      return run === 2 ? { statusCode: 503, body: '{"message":"try again"}' } : variant.result(run);
    });
    await expect(orders.invoke(variant.event({ key: 'k-declined' }))).rejects.toBeInstanceOf(CardDeclined);
    await expect(orders.invoke(variant.event({ key: 'k-declined' }))).rejects.toMatchObject({
      name: 'CardDeclined',
      code: 'card_declined',
      message: 'card declined',
    });
    expect(orders.runs).toBe(1);

    expect((await orders.invoke(variant.event({ key: 'k-503' }))).statusCode).toBe(503);
    expect(await orders.invoke(variant.event({ key: 'k-503' }))).toEqual(variant.result(3));
    expect(orders.runs).toBe(3);
  });

  test('keeps tenants apart: the same key from two callers runs for each, and each replays its own result', async () => {
    const orders = api(variant);
    expect(await orders.invoke(variant.event({ key: 'k-shared', principal: 'user-a' }))).toEqual(variant.result(1));
    expect(await orders.invoke(variant.event({ key: 'k-shared', principal: 'user-b' }))).toEqual(variant.result(2));
    expect(await orders.invoke(variant.event({ key: 'k-shared', principal: 'user-a' }))).toEqual(replayOf(variant.result(1)));
    expect(await orders.invoke(variant.event({ key: 'k-shared', principal: 'user-b' }))).toEqual(replayOf(variant.result(2)));
    expect(orders.runs).toBe(2);
    expect(await records()).toHaveLength(2);
  });

  test('a `scope` option supplies the caller identity', async () => {
    const tenantHeader = header(variant, 'x-tenant-id');
    const orders = api(variant, { scope: (event) => event.headers?.[tenantHeader] });
    await orders.invoke(variant.event({ key: 'k-scope', headers: { [tenantHeader]: 'acme' } }));
    await orders.invoke(variant.event({ key: 'k-scope', headers: { [tenantHeader]: 'globex' } }));
    expect(await orders.invoke(variant.event({ key: 'k-scope', headers: { [tenantHeader]: 'acme' } }))).toEqual(replayOf(variant.result(1)));
    expect(orders.runs).toBe(2);
  });

  test('a throwing `scope` fails the invocation (a server fault, not a 400) and stores nothing', async () => {
    const fault = new TypeError("Cannot read properties of undefined (reading 'tenant')");
    const orders = api(variant, {
      scope: () => {
        throw fault;
      },
    });
    await expect(orders.invoke(variant.event({ key: 'k-fault' }))).rejects.toBe(fault);
    expect(orders.runs).toBe(0);
    expect(await records()).toEqual([]);
  });

  test('a `scope` that throws a value whose prototype cannot be read (a revoked Proxy) fails the invocation with that value', async () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const orders = api(variant, {
      scope: () => {
        throw proxy;
      },
    });
    // Boxed: a promise resolved with a revoked Proxy reads its `then`, and jest's matchers read it too.
    const thrown = await orders.invoke(variant.event({ key: 'k-revoked' })).then(
      () => ({ error: 'answered' as unknown }),
      (error: unknown) => ({ error }),
    );
    expect(thrown.error === proxy).toBe(true);
    expect(orders.runs).toBe(0);
    expect(await records()).toEqual([]);
  });

  test('scopes keys by route: the same key on two routes (or methods) runs on each', async () => {
    const orders = api(variant);
    await orders.invoke(variant.event({ key: 'k-route', route: '/orders' }));
    await orders.invoke(variant.event({ key: 'k-route', route: '/refunds' }));
    await orders.invoke(variant.event({ key: 'k-route', route: '/orders', method: 'PUT' }));
    expect(await orders.invoke(variant.event({ key: 'k-route', route: '/refunds' }))).toEqual(replayOf(variant.result(2)));
    expect(orders.runs).toBe(3);
  });

  test('with `cacheSize`, a duplicate in the same container is replayed from memory without a store request', async () => {
    let claims = 0;
    const counting = {
      claim: (request: Parameters<DynamoDBStore['claim']>[0]) => (claims++, store.claim(request)),
      complete: (request: Parameters<DynamoDBStore['complete']>[0]) => store.complete(request),
      release: (request: Parameters<DynamoDBStore['release']>[0]) => store.release(request),
    };
    const orders = api(variant, { store: counting, cacheSize: 10 });
    await orders.invoke(variant.event({ key: 'k-cache' }));
    expect(await orders.invoke(variant.event({ key: 'k-cache' }))).toEqual(replayOf(variant.result(1)));
    expect(claims).toBe(1);
    // The cached record still guards the payload.
    expectProblem(await orders.invoke(variant.event({ key: 'k-cache', body: '{"amount":1}' })), 422);
    expect(orders.runs).toBe(1);
  });

  test('scopes keys by function: the namespace is the function name', async () => {
    const orders = api(variant);
    await orders.invoke(variant.event({ key: 'k-fn' }), lambdaContext('create-order', 30_000));
    await orders.invoke(variant.event({ key: 'k-fn' }), lambdaContext('create-refund', 30_000));
    expect(orders.runs).toBe(2);
    expect((await records()).map((item) => item.id!.S!.split('#')[0]).sort()).toEqual(['create-order', 'create-refund']);
  });
});

describe('REST API (v1) specifics', () => {
  test('answers a key sent twice (multiValueHeaders) with 400', async () => {
    const orders = api(rest);
    const event = rest.event({ key: 'k-2' }) as APIGatewayProxyEvent;
    event.multiValueHeaders['Idempotency-Key'] = ['k-1', 'k-2'];
    expectProblem(await orders.invoke(event), 400);
    // Also when the two copies' names differ only in case.
    const mixed = rest.event({ key: 'k-2' }) as APIGatewayProxyEvent;
    mixed.multiValueHeaders['idempotency-key'] = ['k-1'];
    expectProblem(await orders.invoke(mixed), 400);
    expect(orders.runs).toBe(0);
    expect(await records()).toEqual([]);
  });

  test('a 4xx whose `Retry-After` in multiValueHeaders lists no value (API Gateway sends no such header) is an outcome: stored and replayed', async () => {
    const conflict: HttpResult = { statusCode: 409, multiValueHeaders: { 'Retry-After': [] }, body: '{"message":"order already shipped"}' };
    const orders = api(rest, {}, () => conflict);
    expect(await orders.invoke(rest.event({ key: 'k-empty-retry-after' }))).toEqual(conflict);
    expect(await orders.invoke(rest.event({ key: 'k-empty-retry-after' }))).toEqual(replayOf(conflict));
    expect(orders.runs).toBe(1);
  });

  test('scopes keys by API key id when there is no authorizer', async () => {
    const orders = api(rest);
    await orders.invoke(rest.event({ key: 'k-apikey', principal: null, apiKeyId: 'k9x8c7' }));
    await orders.invoke(rest.event({ key: 'k-apikey', principal: null, apiKeyId: 'p0o9i8' }));
    expect(await orders.invoke(rest.event({ key: 'k-apikey', principal: null, apiKeyId: 'k9x8c7' }))).toEqual(replayOf(rest.result(1)));
    expect(orders.runs).toBe(2);
  });
  describe('a response whose CORS headers are in multiValueHeaders only', () => {
    const ORIGIN = 'https://shop.example';
    /** A header as API Gateway sends it: `headers` and `multiValueHeaders` merged into one list, names in any case. */
    const sent = (result: HttpResult, name: string): string[] => {
      const pick = <T>(fields: Record<string, T> | undefined) => Object.entries(fields ?? {}).filter(([field]) => field.toLowerCase() === name.toLowerCase());
      const lists = pick(result.multiValueHeaders).flatMap(([, values]) => values.map(String));
      const single = pick(result.headers).map(([, value]) => String(value));
      return [...lists, ...single.filter((value) => !lists.includes(value))].flatMap((value) => value.split(',').map((item) => item.trim()));
    };

    test.each([
      ['no exposed headers', {}],
      ['X-Request-Id exposed', { 'access-control-expose-headers': ['X-Request-Id'] }],
    ])('with %s: the replay exposes Idempotent-Replayed to a script on the origin, after what it already exposed', async (_, exposed) => {
      const orders = api(rest, {}, (_event, run) => ({
        ...rest.result(run),
        multiValueHeaders: { 'Access-Control-Allow-Origin': [ORIGIN], Vary: ['Origin'], ...exposed },
      }));
      const first = await orders.invoke(rest.event({ key: 'k-cors' }));
      const replay = await orders.invoke(rest.event({ key: 'k-cors' }));
      expect(sent(replay, 'Access-Control-Allow-Origin')).toEqual([ORIGIN]);
      expect(sent(replay, 'Access-Control-Expose-Headers')).toEqual([...sent(first, 'Access-Control-Expose-Headers'), 'Idempotent-Replayed']);
      expect(replay.headers?.['Idempotent-Replayed']).toBe('true');
      expect(orders.runs).toBe(1);
    });

    test('a replay whose stored answer already exposes Idempotent-Replayed lists it once', async () => {
      const orders = api(rest, {}, (_event, run) => ({
        ...rest.result(run),
        multiValueHeaders: { 'Access-Control-Allow-Origin': [ORIGIN], 'Access-Control-Expose-Headers': ['idempotent-replayed'] },
      }));
      await orders.invoke(rest.event({ key: 'k-cors-listed' }));
      const replay = await orders.invoke(rest.event({ key: 'k-cors-listed' }));
      expect(sent(replay, 'Access-Control-Expose-Headers')).toEqual(['idempotent-replayed']);
    });

    test.each([
      ['Access-Control-Expose-Headers', { 'Access-Control-Allow-Origin': [ORIGIN], 'Access-Control-Expose-Headers': null }],
      ['Content-Encoding', { 'Content-Encoding': null }],
    ])(
      'a stored answer whose %s list is null (which the type forbids, but a handler can return) replays, never a TypeError on every retry',
      async (_, lists) => {
        const orders = api(rest, {}, (_event, run) => ({ ...rest.result(run), multiValueHeaders: lists as unknown as Record<string, string[]> }));
        const request = () => rest.event({ key: `k-null-${_}`, headers: { 'Accept-Encoding': 'identity' } });
        const first = await orders.invoke(request());
        const replay = await orders.invoke(request());
        expect(replay).toMatchObject({ statusCode: first.statusCode, body: first.body, multiValueHeaders: first.multiValueHeaders });
        expect(replay.headers?.['Idempotent-Replayed']).toBe('true');
        expect(orders.runs).toBe(1);
      },
    );

    test.each([
      ['null', null],
      ['empty', []],
    ])(
      'a gzip body named in headers beside a Content-Encoding list that is %s is decoded for a client that accepts only identity, not sent compressed',
      async (what, list) => {
        const text = JSON.stringify({ orderId: 'ord-gz', lines: Array.from({ length: 40 }, (_, i) => `line-${i}`) });
        const orders = api(rest, {}, (_event, run) => ({
          statusCode: 201,
          headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' },
          multiValueHeaders: { 'Content-Encoding': list } as unknown as Record<string, string[]>,
          isBase64Encoded: true,
          body: gzipSync(`${text}${run}`).toString('base64'),
        }));
        const first = await orders.invoke(rest.event({ key: `k-${what}-gzip`, headers: { 'Accept-Encoding': 'gzip' } }));
        expect(gunzipSync(Buffer.from(first.body!, 'base64')).toString()).toBe(`${text}1`);
        const replay = await orders.invoke(rest.event({ key: `k-${what}-gzip`, headers: { 'Accept-Encoding': 'identity' } }));
        const body = replay.isBase64Encoded ? Buffer.from(replay.body!, 'base64').toString() : replay.body;
        expect(body).toBe(`${text}1`);
        expect(replay.headers?.['Content-Encoding']).toBeUndefined();
        expect(orders.runs).toBe(1);
      },
    );
  });

  test.each([
    ['an object', { orderId: 'ord-1' }],
    ['undefined', undefined],
  ])(
    'a result that is not proxy-shaped (%s), which API Gateway answers with a 502, is kept and replayed as it was: never a 200 nobody received',
    async (_, value) => {
      const orders = api(rest, {}, () => value as HttpResult);
      expect(await orders.invoke(rest.event({ key: 'k-malformed' }))).toEqual(value);
      expect(await orders.invoke(rest.event({ key: 'k-malformed' }))).toEqual(value);
      expect(orders.runs).toBe(1);
    },
  );

  test('an HTTP API of payload format 1.0 makes no 200 of a result that is not proxy-shaped (it answers a 500 of its own): the result is kept and replayed as it was', async () => {
    const orders = api(rest, {}, () => ({ orderId: 'ord-1' }) as HttpResult);
    // Payload format 1.0 is the REST shape with a version: no `rawPath`, no `requestContext.http`.
    const event = () => ({ ...rest.event({ key: 'k-format-1' }), version: '1.0' }) as HttpEvent;
    expect(await orders.invoke(event())).toEqual({ orderId: 'ord-1' });
    expect(await orders.invoke(event())).toEqual({ orderId: 'ord-1' });
    expect(orders.runs).toBe(1);
  });
});

describe('HTTP API (v2) and Function URL specifics', () => {
  test('a Function URL event ($default route) is scoped by method and path', async () => {
    const warnings: string[] = [];
    const orders = api(httpApi, { logger: { warn: (line) => void warnings.push(line) } });
    const functionUrl = (path: string) => {
      const event = httpApi.event({ key: 'k-url', path, principal: null }) as APIGatewayProxyEventV2WithJWTAuthorizer;
      event.routeKey = '$default';
      event.requestContext.routeKey = '$default';
      return event as HttpEvent;
    };
    await orders.invoke(functionUrl('/orders'));
    await orders.invoke(functionUrl('/refunds'));
    expect(await orders.invoke(functionUrl('/orders'))).toEqual(replayOf(httpApi.result(1)));
    expect(orders.runs).toBe(2);
    // Its session cookie identifies nobody API Gateway or Lambda vouches for: said once.
    expect(warnings).toEqual([expect.stringContaining('got a request with credentials')]);
  });

  test('a plain (non-proxy-shaped) result is replayed as the JSON response API Gateway made of it', async () => {
    const orders = api(httpApi, {}, () => ({ orderId: 'ord-1', status: 'CREATED' }) as HttpResult);
    expect(await orders.invoke(httpApi.event({ key: 'k-plain' }))).toEqual({ orderId: 'ord-1', status: 'CREATED' });
    expect(await orders.invoke(httpApi.event({ key: 'k-plain' }))).toEqual({
      statusCode: 200,
      headers: { 'Content-Type': 'application/json', 'Idempotent-Replayed': 'true' },
      body: '{"orderId":"ord-1","status":"CREATED"}',
    });
    expect(orders.runs).toBe(1);
  });

  test.each([
    // The Node.js runtime serializes `undefined` as `null` (JSON.stringify(undefined) is no JSON).
    ['undefined', undefined, 'null'],
    ['null', null, 'null'],
    ['a string', 'accepted', 'accepted'],
    ['a number', 0, '0'],
  ])('a plain result (%s) is replayed as the 200 the HTTP API made of what the runtime sent', async (_, value, body) => {
    const orders = api(httpApi, {}, () => value as unknown as HttpResult);
    expect(await orders.invoke(httpApi.event({ key: 'k-plain-value' }))).toEqual(value);
    expect(await orders.invoke(httpApi.event({ key: 'k-plain-value' }))).toEqual({
      statusCode: 200,
      headers: { 'Content-Type': 'application/json', 'Idempotent-Replayed': 'true' },
      body,
    });
    expect(orders.runs).toBe(1);
  });
});

describe('events httpIdempotency does not serve', () => {
  const latticeV2 = {
    version: '2.0',
    path: '/orders',
    method: 'POST',
    headers: { 'idempotency-key': ['k-lattice'], 'content-type': ['application/json'] },
    queryStringParameters: {},
    body: ORDER,
    isBase64Encoded: false,
    requestContext: {
      serviceNetworkArn: 'arn:aws:vpc-lattice:eu-west-1:123456789012:servicenetwork/sn-0123',
      region: 'eu-west-1',
      timeEpoch: '1736942400000000',
    },
  };
  const latticeV1 = {
    raw_path: '/orders',
    method: 'POST',
    headers: { 'idempotency-key': 'k-lattice' },
    query_string_parameters: {},
    body: ORDER,
    is_base64_encoded: false,
  };

  test.each([
    ['a VPC Lattice (v2) request', latticeV2],
    ['a VPC Lattice (v1) request', latticeV1],
    ['an SQS batch', { Records: [] }],
    ['a direct invocation with the payload null', null],
  ])('%s: a TypeError that names the events it serves, and the handler does not run', async (_, event) => {
    const orders = api(rest);
    await expect(orders.invoke(event as unknown as HttpEvent)).rejects.toThrow(
      new TypeError(
        'httpIdempotency: the event is not an API Gateway REST or HTTP API, Function URL or Application Load Balancer request (it has neither `httpMethod` nor `requestContext.http.method`).',
      ),
    );
    expect(orders.runs).toBe(0);
  });
});
