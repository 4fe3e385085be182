/**
 * The edges of HTTP requests, through real middy, `httpIdempotency` and DynamoDB Local: tenants
 * never replay each other's responses whatever authorizes them, an authorizer that identifies
 * nobody fails closed, a header sent twice is refused on every API, and requests that differ in
 * meaning never replay each other.
 */
import middy from '@middy/core';
import type { ALBEvent, APIGatewayProxyEvent, APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { callerIdentity, type HttpEvent, type HttpIdempotencyOptions, type HttpResult, hashKey, httpIdempotency } from '../../lib/index.js';
import { useFreshTable } from '../support/dynamodb.js';
import {
  ANONYMOUS,
  type Api,
  type Caller,
  eventFor,
  type GatewayApi,
  type HttpRequest,
  httpEvent,
  IDENTITY_SHAPES,
  noRestIdentity,
  SILENT_AUTHORIZERS,
} from '../support/identity-events.js';
import { scanRecords } from '../support/invariants.js';
import { lambdaContext } from '../support/lambda.js';

const { client, tableName, store } = useFreshTable({ prefix: 'http-identity' });

let functions = 0;

/** A function that creates an order for whoever calls, and answers with that caller's data. */
function ordersApi(options: Partial<HttpIdempotencyOptions<HttpEvent | ALBEvent>> = {}) {
  const name = `orders-${++functions}`;
  const runs: string[] = [];
  const handler = middy(async (event: HttpEvent | ALBEvent): Promise<HttpResult> => {
    runs.push(JSON.stringify(event.requestContext));
    return { statusCode: 201, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ orderId: `ord-${runs.length}` }) };
  }).use(httpIdempotency<HttpEvent | ALBEvent>({ store, ...options } as HttpIdempotencyOptions<HttpEvent | ALBEvent> & { scope: 'shared' }));
  return {
    name,
    runs,
    send: (event: HttpEvent | ALBEvent, context: Context = lambdaContext(name)) => handler(event, context) as Promise<HttpResult>,
    records: () => scanRecords(client, tableName, `${name}#`),
  };
}

const orderOf = (response: HttpResult) => (JSON.parse(response.body!) as { orderId: string }).orderId;
/** Marked as a replay, in whichever header field the event's source reads. */
const replayed = (response: HttpResult) => (response.headers ?? response.multiValueHeaders)?.['Idempotent-Replayed']?.toString() === 'true';

const alice: Caller = { tenant: 'tenant-a', user: 'alice' };
const aliceOfB: Caller = { tenant: 'tenant-b', user: 'alice' };

describe.each(IDENTITY_SHAPES)('$name', (shape) => {
  test("tenant B with tenant A's key runs its own request and never gets A's response; A's retry with a refreshed token replays A's", async () => {
    const api = ordersApi();
    const request: HttpRequest = { key: 'order-7f3a' };
    const first = await api.send(eventFor(shape, alice, request));
    expect([first.statusCode, orderOf(first), replayed(first)]).toEqual([201, 'ord-1', false]);

    const other = await api.send(eventFor(shape, aliceOfB, request));
    expect([other.statusCode, orderOf(other), replayed(other)]).toEqual([201, 'ord-2', false]);

    const retry = await api.send(eventFor(shape, { ...alice, token: 2 }, request));
    expect([retry.statusCode, orderOf(retry), replayed(retry)]).toEqual([201, 'ord-1', true]);
    const retryOfB = await api.send(eventFor(shape, { ...aliceOfB, token: 3 }, request));
    expect([orderOf(retryOfB), replayed(retryOfB)]).toEqual(['ord-2', true]);

    expect(api.runs).toHaveLength(2);
    expect((await api.records()).map((r) => r.status)).toEqual(['COMPLETED', 'COMPLETED']);
  });
});

test("a retry whose refreshed token lists the same scopes in another order replays, runs nothing; another user's token with those scopes runs its own", async () => {
  const api = ordersApi();
  // An HTTP API JWT authorizer reports the scopes as the token lists them, in its `scope` claim and its `scopes`.
  const token = (sub: string, jti: string, scopes: string[]) =>
    httpEvent('http', { authorizer: { jwt: { claims: { sub, jti, scope: scopes.join(' ') }, scopes } } }, { key: 'order-5c1d' });
  const first = await api.send(token('alice', 'jti-1', ['orders/write', 'orders/read']));
  const retry = await api.send(token('alice', 'jti-2', ['orders/read', 'orders/write']));
  expect([orderOf(retry), replayed(retry)]).toEqual([orderOf(first), true]);
  const bob = await api.send(token('bob', 'jti-3', ['orders/read', 'orders/write']));
  expect([orderOf(bob), replayed(bob)]).toEqual(['ord-2', false]);
  expect(api.runs).toHaveLength(2);
});

describe.each(SILENT_AUTHORIZERS)('%s', (_name, api, context) => {
  test('fails closed: a TypeError naming the `scope` option, the handler does not run, nothing is stored', async () => {
    const orders = ordersApi();
    await expect(orders.send(httpEvent(api, context, { key: 'k-1' }))).rejects.toThrow(TypeError);
    await expect(orders.send(httpEvent(api, context, { key: 'k-1' }))).rejects.toThrow(/`scope`/);
    expect(orders.runs).toHaveLength(0);
    expect(await orders.records()).toEqual([]);
  });

  test("with scope 'shared', runs once and replays to every caller", async () => {
    const orders = ordersApi({ scope: 'shared' });
    expect(orderOf(await orders.send(httpEvent(api, context, { key: 'k-1' })))).toBe('ord-1');
    const duplicate = await orders.send(httpEvent(api, context, { key: 'k-1' }));
    expect([orderOf(duplicate), replayed(duplicate)]).toEqual(['ord-1', true]);
    expect(orders.runs).toHaveLength(1);
  });
});

describe.each(ANONYMOUS)('%s', (_name, api, context) => {
  test('without any authorization, keys are shared by all callers, as before: the duplicate replays', async () => {
    const orders = ordersApi();
    expect(orderOf(await orders.send(httpEvent(api, context, { key: 'k-open' })))).toBe('ord-1');
    const duplicate = await orders.send(httpEvent(api, context, { key: 'k-open' }));
    expect([orderOf(duplicate), replayed(duplicate)]).toEqual(['ord-1', true]);
  });
});

test("with scope 'shared', two tenants share a key: an explicit choice, as documented", async () => {
  const [shape] = IDENTITY_SHAPES;
  const orders = ordersApi({ scope: 'shared' });
  await orders.send(eventFor(shape!, alice, { key: 'k-shared' }));
  const other = await orders.send(eventFor(shape!, aliceOfB, { key: 'k-shared' }));
  expect([orderOf(other), replayed(other)]).toEqual(['ord-1', true]);
});

// ---------------------------------------------------------------------------------------------
// One function behind two APIs or stages, one table

/** Alice's request to the stage `stage` of the REST API `apiId` (the path API Gateway gives the function leaves the stage out). */
const staged = (apiId: string, stage: string, request: HttpRequest = {}): HttpEvent => {
  const event = eventFor(IDENTITY_SHAPES[0]!, alice, request) as HttpEvent & { requestContext: { apiId: string; stage: string } };
  event.requestContext.apiId = apiId;
  event.requestContext.stage = stage;
  return event;
};

describe('two stages or APIs that invoke one function, with one table', () => {
  test('by default share keys: the same request under the same key on the other stage replays, another request gets 422', async () => {
    const orders = ordersApi();
    await orders.send(staged('a1b2c3d4e5', 'staging', { key: 'k-stages' }));
    const prod = await orders.send(staged('a1b2c3d4e5', 'prod', { key: 'k-stages' }));
    expect([orderOf(prod), replayed(prod)]).toEqual(['ord-1', true]);
    const otherApi = await orders.send(staged('f6g7h8i9j0', 'prod', { key: 'k-stages', body: '{"amount":1}' }));
    expect(otherApi.statusCode).toBe(422);
    expect(orders.runs).toHaveLength(1);
  });

  test('with the documented `scope` that adds the API id and stage, each runs its own request and replays its own response', async () => {
    const orders = ordersApi({
      scope: (event) => {
        const { apiId, stage } = event.requestContext as { apiId?: string; stage?: string };
        return JSON.stringify([apiId ?? null, stage ?? null, callerIdentity(event as HttpEvent) ?? null]);
      },
    });
    const requests = [
      staged('a1b2c3d4e5', 'staging', { key: 'k-stages' }),
      staged('a1b2c3d4e5', 'prod', { key: 'k-stages' }),
      staged('f6g7h8i9j0', 'prod', { key: 'k-stages' }),
    ];
    const first = [];
    for (const request of requests) first.push(orderOf(await orders.send(request)));
    expect(first).toEqual(['ord-1', 'ord-2', 'ord-3']);
    const again = [];
    for (const request of requests) {
      const response = await orders.send(request);
      again.push([orderOf(response), replayed(response)]);
    }
    expect(again).toEqual([
      ['ord-1', true],
      ['ord-2', true],
      ['ord-3', true],
    ]);
    // Tenants stay apart within a stage.
    const [shape] = IDENTITY_SHAPES;
    const tenantB = eventFor(shape!, aliceOfB, { key: 'k-stages' }) as HttpEvent & { requestContext: { stage: string } };
    tenantB.requestContext.stage = 'prod';
    expect(orderOf(await orders.send(tenantB))).toBe('ord-4');
  });
});

test('an HTTP API of payload format 1.0 names every path of its $default route `$default`: keys are not scoped by path there, so the same key on another path gets 422', async () => {
  const orders = ordersApi();
  const onPath = (path: string): HttpEvent => {
    // As API Gateway sends it: no authorizer member, the route's name as resource and resourcePath.
    const event = httpEvent('rest', { identity: noRestIdentity(), stage: '$default', resourcePath: '$default' }, { key: 'k-default' }) as APIGatewayProxyEvent;
    return { ...event, version: '1.0', resource: '$default', path } as HttpEvent;
  };
  expect(orderOf(await orders.send(onPath('/orders')))).toBe('ord-1');
  expect((await orders.send(onPath('/refunds'))).statusCode).toBe(422);
  expect(replayed(await orders.send(onPath('/orders')))).toBe(true);
  expect(orders.runs).toHaveLength(1);
});

/** Requests of payload format 2.0 to the route `routeKey`, on the path given, with the idempotency key `key`. */
const onRoute =
  (routeKey: string, key: string) =>
  (path: string): HttpEvent => {
    const event = httpEvent('http', {}, { key }) as APIGatewayProxyEventV2;
    return { ...event, routeKey, rawPath: path, requestContext: { ...event.requestContext, routeKey, http: { ...event.requestContext.http, path } } };
  };

test("an HTTP API's $default route of payload format 2.0 is scoped by its path, as a Function URL's: the same key on another path runs there", async () => {
  const orders = ordersApi();
  const onPath = onRoute('$default', 'k-default-v2');
  expect(orderOf(await orders.send(onPath('/orders')))).toBe('ord-1');
  expect(orderOf(await orders.send(onPath('/refunds')))).toBe('ord-2');
  expect(replayed(await orders.send(onPath('/orders')))).toBe(true);
  expect(replayed(await orders.send(onPath('/refunds')))).toBe(true);
  expect(orders.runs).toHaveLength(2);
});

test('a greedy route (`ANY /{proxy+}`, one function behind every path) is scoped by its template, as API Gateway names it: the same key on another path gets 422', async () => {
  const orders = ordersApi();
  const onPath = onRoute('ANY /{proxy+}', 'k-greedy');
  expect(orderOf(await orders.send(onPath('/orders')))).toBe('ord-1');
  expect((await orders.send(onPath('/refunds'))).statusCode).toBe(422);
  expect(replayed(await orders.send(onPath('/orders')))).toBe(true);
  expect(orders.runs).toHaveLength(1);
});

test("a scope that is neither a function nor 'shared' is refused at construction", () => {
  for (const scope of ['tenant', 'none', '', 42, null]) {
    expect(() => httpIdempotency({ store, scope: scope as never })).toThrow(TypeError);
  }
});

test("an async `scope` is a server fault, not the client's: a TypeError naming `scope`, no 400, the handler does not run, nothing is stored", async () => {
  const [shape] = IDENTITY_SHAPES;
  const orders = ordersApi({ scope: (async () => 'tenant-a') as never });
  for (let attempt = 0; attempt < 2; attempt++) {
    await expect(orders.send(eventFor(shape!, alice, { key: 'k-async' }))).rejects.toThrow(
      expect.objectContaining({ name: 'TypeError', message: expect.stringMatching(/`scope` returned a promise/) }),
    );
  }
  expect(orders.runs).toHaveLength(0);
  expect(await orders.records()).toEqual([]);
});

test.each([
  [
    'a `scope` value that cannot be hashed (NaN)',
    { scope: (() => Number.NaN) as never },
    {},
    { code: 'INVALID_KEY', statusCode: undefined, message: expect.stringMatching(/holds the number NaN at \$\.caller/) },
  ],
  [
    'a `scope` that throws an IdempotencyError (a `hashKey` of a claim the request lacks)',
    { scope: () => hashKey(undefined) },
    {},
    { name: 'TypeError', message: expect.stringMatching(/`scope` threw an IdempotencyError \(KEY_MISSING\)/) },
  ],
  [
    "an invocation's tenant id UTF-8 cannot write",
    {},
    { tenantId: 'tenant-\ud800' },
    { code: 'INVALID_KEY', statusCode: undefined, message: expect.stringMatching(/tenant id holds a lone surrogate/) },
  ],
])(
  "%s is a server fault, not the client's key: thrown, never a 400 blaming a valid Idempotency-Key; nothing runs or is stored",
  async (_what, options, context, error) => {
    const [shape] = IDENTITY_SHAPES;
    const orders = ordersApi(options);
    for (let attempt = 0; attempt < 2; attempt++) {
      await expect(orders.send(eventFor(shape!, alice, { key: 'k-valid' }), { ...lambdaContext(orders.name), ...context })).rejects.toThrow(
        expect.objectContaining(error),
      );
    }
    expect(orders.runs).toHaveLength(0);
    expect(await orders.records()).toEqual([]);
  },
);

// ---------------------------------------------------------------------------------------------
// The Idempotency-Key header sent twice

/** Every API, with the scope an ALB needs (its events say nothing about the caller). */
const APIS: readonly Api[] = ['rest', 'http', 'url', 'alb', 'alb-multi'];
const scopeFor = (api: Api): Partial<HttpIdempotencyOptions<HttpEvent | ALBEvent>> => (api.startsWith('alb') ? { scope: 'shared' } : {});

describe.each(APIS)('%s events', (api) => {
  const send = (orders: ReturnType<typeof ordersApi>, key: string) => orders.send(httpEvent(api, {}, { key }));

  test.each([
    ['two keys joined by a comma (a header sent twice)', 'k1,k2'],
    ['one key twice, joined', 'k1,k1'],
    ['two quoted keys joined', '"k1","k2"'],
    ['a quoted key with a comma, then another key', '"a,b",c'],
    ['an escape at the end of a quoted key', '"a\\"'],
    ['a backslash before a letter in a quoted key', '"a\\b"'],
  ])('%s: 400 problem+json, nothing runs, nothing is stored', async (_label, key) => {
    const orders = ordersApi(scopeFor(api));
    const response = await send(orders, key);
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body!)).toMatchObject({ status: 400, title: 'Idempotency-Key is invalid' });
    expect(orders.runs).toHaveLength(0);
    expect(await orders.records()).toEqual([]);
  });

  test('a key with a comma sent as a quoted string is one key, and replays', async () => {
    const orders = ordersApi(scopeFor(api));
    expect(orderOf(await send(orders, '"a,b"'))).toBe('ord-1');
    expect(replayed(await send(orders, '"a,b"'))).toBe(true);
    expect(orders.runs).toHaveLength(1);
  });

  test('an invalid quoted key never aliases the key its lax reading would give', async () => {
    const orders = ordersApi(scopeFor(api));
    expect(orderOf(await send(orders, '"a\\\\"'))).toBe('ord-1'); // the key a\
    expect((await send(orders, '"a\\"')).statusCode).toBe(400);
    expect((await send(orders, 'a\\')).statusCode).toBe(201); // a bare a\ is that key
    expect(orders.runs).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------
// Fingerprints: a different request under the same key is a 422, never a replay

describe.each(APIS)('%s events', (api) => {
  const send = (orders: ReturnType<typeof ordersApi>, request: HttpRequest) => orders.send(httpEvent(api, {}, { key: 'k-print', ...request }));
  const base64 = (bytes: number[] | string) => (typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes)).toString('base64');

  test.each([
    ['an account number above 2^53 and its neighbour', { body: '{"accountId":9007199254740993}' }, { body: '{"accountId":9007199254740992}' }],
    ['decimals that round to one double', { body: '{"amount":0.1}' }, { body: '{"amount":0.10000000000000001}' }],
    [
      'different invalid UTF-8 bytes',
      { body: base64([0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]), isBase64Encoded: true },
      { body: base64([0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x22, 0xfe, 0x22, 0x7d]), isBase64Encoded: true },
    ],
    ['an invalid byte and the replacement character', { body: base64([0xff]), isBase64Encoded: true }, { body: base64('\ufffd'), isBase64Encoded: true }],
    ['a member sent twice and once', { body: '{"amount":1,"amount":1000}' }, { body: '{"amount":1000}' }],
  ])('%s: 422, the handler ran once', async (_label, first, second) => {
    const orders = ordersApi(scopeFor(api));
    expect((await send(orders, first)).statusCode).toBe(201);
    expect((await send(orders, second)).statusCode).toBe(422);
    expect(replayed(await send(orders, first))).toBe(true);
    expect(orders.runs).toHaveLength(1);
  });

  test('whitespace, member order and escapes do not matter: the reformatted request replays', async () => {
    const orders = ordersApi(scopeFor(api));
    await send(orders, { body: '{"accountId":9007199254740993,"name":"é","items":[1,2]}' });
    const reformatted = await send(orders, {
      body: base64('{ "items" : [ 1 , 2 ],\n  "name": "\\u00e9", "accountId": 9007199254740993 }'),
      isBase64Encoded: true,
    });
    expect(replayed(reformatted)).toBe(true);
    expect(orders.runs).toHaveLength(1);
  });

  // Browsers, undici and Python's requests draw a new boundary each time they encode a form, so a
  // client that resends its form under the same key sends other bytes.
  const form = (boundary: string, note: string): HttpRequest => ({
    contentType: `multipart/form-data; boundary=${boundary}`,
    body: base64(
      `--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n${note}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="scan"; filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n\u0000\u00ff--x\r\n` +
        `--${boundary}--\r\n`,
    ),
    isBase64Encoded: true,
  });

  test('a multipart form resent with a fresh boundary, as every client encodes a retry, replays', async () => {
    const orders = ordersApi(scopeFor(api));
    await send(orders, form('----WebKitFormBoundaryA1b2C3d4E5f6G7h8', 'pay'));
    expect(replayed(await send(orders, form('----formdata-undici-012345678901', 'pay')))).toBe(true);
    expect(
      replayed(await send(orders, { ...form('quoted boundary', 'pay'), contentType: 'Multipart/Form-Data; charset=utf-8; BOUNDARY="quoted boundary"' })),
    ).toBe(true);
    expect(orders.runs).toHaveLength(1);
  });

  test('a multipart form with another value, or its bytes under another media type, under the same key: 422', async () => {
    const orders = ordersApi(scopeFor(api));
    await send(orders, form('b1', 'pay'));
    expect((await send(orders, form('b2', 'refund'))).statusCode).toBe(422);
    expect((await send(orders, { ...form('b1', 'pay'), contentType: 'application/octet-stream' })).statusCode).toBe(422);
    expect(orders.runs).toHaveLength(1);
  });
});

test('HTTP API query strings with different invalid escapes: 422', async () => {
  const orders = ordersApi();
  expect((await orders.send(httpEvent('http', {}, { key: 'k-query', query: 'amount=%FF' }))).statusCode).toBe(201);
  expect((await orders.send(httpEvent('http', {}, { key: 'k-query', query: 'amount=%FE' }))).statusCode).toBe(422);
  expect(orders.runs).toHaveLength(1);
});

// ---------------------------------------------------------------------------------------------
// Credentials the function verifies itself: keys shared by all callers, said once

const CREDENTIALS_WARNING = JSON.stringify({
  level: 'WARN',
  message:
    "lambda-idempotency: httpIdempotency got a request with credentials (an Authorization or Cookie header) that API Gateway and Lambda do not report, so its Idempotency-Key is shared by all callers: a caller who sends another caller's key with the same request gets the other's stored response. Set `scope` to return the caller your function verifies, or to 'shared' to keep sharing keys and silence this warning.",
});
const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.c2lnbmF0dXJl';
const SESSION = 'session=s3cr3t-s3ss10n-1d';

/** `event` with more headers, as its API delivers them (a REST API in `headers` and `multiValueHeaders`, as the client spelled them). */
function withHeaders<T extends HttpEvent>(event: T, headers: Record<string, string>): T {
  const out = { ...event, headers: { ...event.headers, ...headers } } as T & { multiValueHeaders?: Record<string, string[]> };
  if (out.multiValueHeaders) out.multiValueHeaders = { ...out.multiValueHeaders, ...Object.fromEntries(Object.entries(headers).map(([n, v]) => [n, [v]])) };
  return out;
}
/** `event` sent with another method. */
function withMethod(event: HttpEvent, method: string): HttpEvent {
  if ('version' in event && event.version === '2.0')
    return { ...event, requestContext: { ...event.requestContext, http: { ...event.requestContext.http, method } } };
  return { ...event, httpMethod: method } as HttpEvent;
}

/** The APIs whose open routes carry no identity: an API Gateway route without an authorizer, a Function URL of auth type NONE. */
const OPEN: ReadonlyArray<readonly [name: string, api: GatewayApi, context: Record<string, unknown>]> = [
  ['REST API without an authorizer', 'rest', { authorizer: null, identity: noRestIdentity() }],
  ['HTTP API without an authorizer', 'http', {}],
  ['Function URL, auth type NONE', 'url', {}],
];

function warnedApi(options: Partial<HttpIdempotencyOptions<HttpEvent | ALBEvent>> = {}) {
  const warnings: string[] = [];
  return { warnings, ...ordersApi({ ...options, logger: { warn: (line) => void warnings.push(line) } }) };
}

describe.each(OPEN)('%s', (_name, api, context) => {
  const open = (request: HttpRequest, headers: Record<string, string> = {}) => withHeaders(httpEvent(api, context, request), headers);

  test('a request with `Authorization: Bearer …` logs one warning, which names neither the token nor the key, and answers as before', async () => {
    const orders = warnedApi();
    const first = await orders.send(open({ key: 'k-bearer-7f3a' }, { Authorization: `Bearer ${TOKEN}` }));
    const duplicate = await orders.send(open({ key: 'k-bearer-7f3a' }, { Authorization: `Bearer ${TOKEN}` }));
    expect([first.statusCode, orderOf(first), replayed(first)]).toEqual([201, 'ord-1', false]);
    expect([duplicate.statusCode, orderOf(duplicate), replayed(duplicate)]).toEqual([201, 'ord-1', true]);
    expect(orders.warnings).toEqual([CREDENTIALS_WARNING]);
    expect(orders.warnings[0]).not.toMatch(/eyJ|c2VjcmV0|k-bearer|amount/);
    // Another caller's token under the same key still gets the stored response: the warning changes nothing.
    const other = await orders.send(open({ key: 'k-bearer-7f3a' }, { authorization: 'Bearer another-callers-token' }));
    expect([orderOf(other), replayed(other)]).toEqual(['ord-1', true]);
    expect(orders.runs).toHaveLength(1);
    expect(orders.warnings).toHaveLength(1);
  });

  test('a `Cookie` header logs the warning, without the cookie', async () => {
    const orders = warnedApi();
    await orders.send(open({ key: 'k-cookie' }, { [api === 'rest' ? 'Cookie' : 'cookie']: SESSION }));
    expect(orders.warnings).toEqual([CREDENTIALS_WARNING]);
    expect(orders.warnings[0]).not.toContain('s3cr3t');
  });

  test('without credentials, keys are shared as before and nothing is logged', async () => {
    const orders = warnedApi();
    await orders.send(open({ key: 'k-none' }));
    expect(replayed(await orders.send(open({ key: 'k-none' })))).toBe(true);
    expect(orders.warnings).toEqual([]);
  });

  test("with `scope: 'shared'` or a scope function, nothing is logged", async () => {
    for (const scope of ['shared', () => undefined] as const) {
      const orders = warnedApi({ scope });
      await orders.send(open({ key: 'k-scoped' }, { Authorization: `Bearer ${TOKEN}` }));
      expect(replayed(await orders.send(open({ key: 'k-scoped' }, { Authorization: `Bearer ${TOKEN}` })))).toBe(true);
      expect(orders.warnings).toEqual([]);
    }
  });

  test('a GET with a key and credentials claims nothing, and logs nothing; a request without a key neither', async () => {
    const orders = warnedApi({ required: false });
    await orders.send(withMethod(open({ key: 'k-get', body: '' }, { Authorization: `Bearer ${TOKEN}` }), 'GET'));
    await orders.send(open({}, { Authorization: `Bearer ${TOKEN}` }));
    expect(orders.runs).toHaveLength(2);
    expect(orders.warnings).toEqual([]);
  });
});

test.each([
  ['HTTP API', 'http'],
  ['Function URL', 'url'],
] as const)('%s: a `cookies` array (where a v2 event carries cookies) logs the warning, without the cookie', async (_name, api) => {
  const orders = warnedApi();
  const event = { ...httpEvent(api, {}, { key: 'k-cookies' }), cookies: [SESSION, 'theme=dark'] } as HttpEvent;
  await orders.send(event);
  expect(orders.warnings).toEqual([CREDENTIALS_WARNING]);
  expect(orders.warnings[0]).not.toContain('s3cr3t');
});

test('a REST API request whose credentials arrive only in `multiValueHeaders`, in any case, logs the warning', async () => {
  const orders = warnedApi();
  const event = httpEvent('rest', { authorizer: null, identity: noRestIdentity() }, { key: 'k-multi' }) as APIGatewayProxyEvent;
  await orders.send({ ...event, multiValueHeaders: { ...event.multiValueHeaders, AUTHORIZATION: [`Bearer ${TOKEN}`] } });
  expect(orders.warnings).toEqual([CREDENTIALS_WARNING]);
});

const API_KEY_WARNING = JSON.stringify({
  level: 'WARN',
  message:
    "lambda-idempotency: httpIdempotency got a request with credentials (an Authorization or Cookie header) that API Gateway and Lambda do not report, whose only identity is its API key, so its Idempotency-Key is shared by all callers of that API key (often every user of an app): a caller who sends another caller's key with the same request gets the other's stored response. Set `scope` to return the caller your function verifies, or to `(event) => callerIdentity(event)` to keep scoping keys by API key and silence this warning.",
});

describe('a REST API route without an authorizer whose only identity is its API key', () => {
  const appKey = { authorizer: null, identity: { ...noRestIdentity(), apiKey: 'key-value-of-the-app', apiKeyId: 'app-key-1' } };
  const request = (token: string) => withHeaders(httpEvent('rest', appKey, { key: 'k-app-7f3a' }), { Authorization: `Bearer ${token}` });

  test("with credentials the function verifies itself, logs once that every caller of the API key shares keys, naming neither the token, the key nor the API key's value", async () => {
    const orders = warnedApi();
    const first = await orders.send(request(TOKEN));
    // Another user of the same app: its own token, the app's API key, the first user's Idempotency-Key.
    const other = await orders.send(request('another-users-token'));
    expect([orderOf(other), replayed(other)]).toEqual([orderOf(first), true]);
    expect(orders.warnings).toEqual([API_KEY_WARNING]);
    expect(orders.warnings[0]).not.toMatch(/eyJ|k-app|key-value|app-key-1/);
  });

  test('without credentials, or with a scope, nothing is logged; with an authorizer as well, nothing either', async () => {
    const plain = warnedApi();
    await plain.send(httpEvent('rest', appKey, { key: 'k-app-plain' }));
    const scoped = warnedApi({ scope: (event) => callerIdentity(event as HttpEvent) });
    await scoped.send(request(TOKEN));
    const authorized = warnedApi();
    await authorized.send(
      withHeaders(httpEvent('rest', { ...appKey, authorizer: { principalId: 'alice' } }, { key: 'k-app-auth' }), { Authorization: `Bearer ${TOKEN}` }),
    );
    expect([plain.warnings, scoped.warnings, authorized.warnings]).toEqual([[], [], []]);
  });
});

test('a request whose authorizer identifies its caller logs nothing, whatever credentials it carries', async () => {
  const jwt = IDENTITY_SHAPES.find((shape) => shape.name.startsWith('HTTP API, JWT authorizer'))!;
  const orders = warnedApi();
  const event = { ...withHeaders(eventFor(jwt, alice, { key: 'k-jwt' }), { authorization: `Bearer ${TOKEN}` }), cookies: [SESSION] } as HttpEvent;
  await orders.send(event);
  expect(replayed(await orders.send(event))).toBe(true);
  expect(orders.warnings).toEqual([]);
});
