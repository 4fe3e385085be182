/**
 * `httpIdempotency<ALBEvent>` behind an Application Load Balancer, through real middy and DynamoDB
 * Local, in both header modes of a target group: the key found as the load balancer sends it, the
 * middleware's own answers and its replays in the one header field the load balancer reads, with
 * the status line it sends, and no caller identity a client could forge.
 */
import middy, { type MiddlewareObj } from '@middy/core';
import httpEventNormalizer from '@middy/http-event-normalizer';
import type { ALBEvent, ALBResult, Context } from 'aws-lambda';
import {
  DynamoDBStore,
  forgetRecord,
  type HttpIdempotencyOptions,
  type HttpResult,
  httpIdempotency,
  inspectRecord,
  issueIdempotencyKey,
} from '../../lib/index.js';
import { unreachableClient, useFreshTable } from '../support/dynamodb.js';
import { gate } from '../support/gate.js';
import { type AlbRequest, albEvent, TARGET_GROUP_ARN } from '../support/identity-events.js';
import { scanRecords } from '../support/invariants.js';
import { lambdaContext } from '../support/lambda.js';

const { client, tableName, store } = useFreshTable({ prefix: 'http-alb' });
const REQUEST_TIME = Date.UTC(2025, 0, 15, 12, 0, 0);
let clock = REQUEST_TIME;
beforeEach(() => {
  clock = REQUEST_TIME;
});

let functions = 0;

type Respond = (event: ALBEvent, run: number) => ALBResult | Promise<ALBResult>;

/** A created order, answered in the header field the event's target group reads, as an ALB handler must. */
const created: Respond = (event, run) => {
  const headers = { 'Content-Type': 'application/json', Location: `/orders/ord-${run}` };
  const body = JSON.stringify({ orderId: `ord-${run}` });
  return event.multiValueHeaders
    ? {
        statusCode: 201,
        statusDescription: '201 Created',
        multiValueHeaders: {
          ...Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, [value]])),
          'Set-Cookie': [`order=ord-${run}`, 'theme=dark'],
        },
        body,
        isBase64Encoded: false,
      }
    : { statusCode: 201, statusDescription: '201 Created', headers, body, isBase64Encoded: false };
};

/** `middy(handler).use(...outer).use(httpIdempotency<ALBEvent>(...))`; `runs` counts the handler's executions. */
function ordersBehindAlb(options: Partial<HttpIdempotencyOptions<ALBEvent>> = {}, respond: Respond = created, outer: MiddlewareObj[] = []) {
  const name = `alb-orders-${++functions}`;
  const seen: ALBEvent[] = [];
  const handler = middy(async (event: ALBEvent): Promise<ALBResult> => {
    seen.push(event);
    return respond(event, seen.length);
  })
    .use(outer)
    .use(httpIdempotency<ALBEvent>({ store, scope: 'shared', now: () => clock, singleFlight: false, ...options }));
  return {
    name,
    send: (event: ALBEvent, context: Context = lambdaContext(name, 30_000)) => handler(event, context) as Promise<HttpResult>,
    get runs() {
      return seen.length;
    },
    records: () => scanRecords(client, tableName, `${name}#`),
  };
}

/** The value of `name` in the header field the event's target group reads; fails if it is in the other one. */
function headerOf(response: HttpResult, name: string, multiValue: boolean): string | undefined {
  if (multiValue) {
    expect(response).not.toHaveProperty('headers');
    const values = response.multiValueHeaders?.[name];
    if (values === undefined) return undefined;
    expect(values).toHaveLength(1);
    return String(values[0]);
  }
  expect(response).not.toHaveProperty('multiValueHeaders');
  const value = response.headers?.[name];
  return value === undefined ? undefined : String(value);
}

/** Asserts an RFC 9457 problem as an ALB sends it (status line, header field, base64 flag) and returns its body. */
function expectProblem(response: HttpResult, status: number, statusDescription: string, multiValue: boolean): Record<string, unknown> {
  expect([response.statusCode, response.statusDescription, response.isBase64Encoded]).toEqual([status, statusDescription, false]);
  expect(headerOf(response, 'Content-Type', multiValue)).toBe('application/problem+json');
  const problem = JSON.parse(response.body!) as Record<string, unknown>;
  expect(problem).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
  return problem;
}

const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

describe.each([
  { mode: 'default headers', multiValue: false },
  { mode: 'multi-value headers enabled', multiValue: true },
])('an ALB target group with $mode', ({ multiValue }) => {
  const event = (request: AlbRequest = {}) => albEvent({ multiValue, ...request });

  test('the event is what AWS documents: lower-case header names, the target group ARN, one header field', () => {
    const sent = event({ key: 'k-1' });
    expect(sent.requestContext).toEqual({ elb: { targetGroupArn: TARGET_GROUP_ARN } });
    const names = Object.keys((multiValue ? sent.multiValueHeaders : sent.headers)!);
    expect(names).toContain('idempotency-key');
    expect(names.every((name) => name === name.toLowerCase())).toBe(true);
    expect(sent).not.toHaveProperty(multiValue ? 'headers' : 'multiValueHeaders');
  });

  test('runs the first request and replays its whole result to a duplicate, Idempotent-Replayed in the header field the load balancer reads', async () => {
    const orders = ordersBehindAlb();
    const first = await orders.send(event({ key: 'order-7f3a' }));
    expect(first).toEqual(await created(event(), 1));

    const duplicate = await orders.send(event({ key: 'order-7f3a' }));
    expect(headerOf(duplicate, 'Idempotent-Replayed', multiValue)).toBe('true');
    expect(duplicate).toEqual(
      multiValue
        ? { ...first, multiValueHeaders: { ...first.multiValueHeaders, 'Idempotent-Replayed': ['true'] } }
        : { ...first, headers: { ...first.headers, 'Idempotent-Replayed': 'true' } },
    );
    expect(orders.runs).toBe(1);
    expect((await orders.records()).map((record) => record.status)).toEqual(['COMPLETED']);
  });

  test('a result without a status code, which the load balancer answers with a 502, is kept and replayed as it was: never a 200 nobody received', async () => {
    const orders = ordersBehindAlb({}, () => ({ orderId: 'ord-1' }) as unknown as ALBResult);
    expect(await orders.send(event({ key: 'order-malformed' }))).toEqual({ orderId: 'ord-1' });
    expect(await orders.send(event({ key: 'order-malformed' }))).toEqual({ orderId: 'ord-1' });
    expect(orders.runs).toBe(1);
  });

  test('finds the key whatever the case of its name', async () => {
    const orders = ordersBehindAlb();
    await orders.send(event({ key: 'k-case' }));
    for (const name of ['Idempotency-Key', 'IDEMPOTENCY-KEY']) {
      const duplicate = await orders.send(event({ headers: { [name]: 'k-case' } }));
      expect(headerOf(duplicate, 'Idempotent-Replayed', multiValue)).toBe('true');
    }
    expect(orders.runs).toBe(1);
  });

  test('a POST without the key: 400 Bad Request as problem+json, nothing runs, nothing is stored', async () => {
    const orders = ordersBehindAlb();
    expect(expectProblem(await orders.send(event()), 400, '400 Bad Request', multiValue).title).toMatch(/Idempotency-Key/);
    expect(orders.runs).toBe(0);
    expect(await orders.records()).toEqual([]);
  });

  test.each(['GET', 'HEAD', 'OPTIONS'])('a %s without the key runs normally and stores nothing', async (method) => {
    const orders = ordersBehindAlb();
    expect(await orders.send(event({ method, body: '' }))).toEqual(await created(event(), 1));
    expect(orders.runs).toBe(1);
    expect(await orders.records()).toEqual([]);
  });

  test('a GET with a key runs every time and stores nothing, the key sent twice too: no replay, no 400', async () => {
    const orders = ordersBehindAlb();
    for (const key of ['k-poll', 'k-poll']) expect((await orders.send(event({ method: 'GET', body: '', key }))).statusCode).toBe(201);
    expect((await orders.send(event({ method: 'GET', body: '', headers: { 'idempotency-key': ['k-1', 'k-2'] } }))).statusCode).toBe(201);
    expect(orders.runs).toBe(3);
    expect(await orders.records()).toEqual([]);
  });

  test('a duplicate while the first request runs: 409 Conflict with Retry-After in the header field the load balancer reads', async () => {
    const entered = gate();
    const release = gate();
    const orders = ordersBehindAlb({}, async (sent, run) => {
      entered.open();
      await release.promise;
      return created(sent, run);
    });
    const first = orders.send(event({ key: 'k-slow' }));
    try {
      await entered.promise;
      clock += 12_300; // the first request's lease ends 17.7 s from now
      const duplicate = await orders.send(event({ key: 'k-slow' }));
      expect(expectProblem(duplicate, 409, '409 Conflict', multiValue).detail).toMatch(/in progress/i);
      expect(headerOf(duplicate, 'Retry-After', multiValue)).toBe('18');
    } finally {
      release.open();
    }
    await first;
    expect(orders.runs).toBe(1);
  });

  test('a key sent twice is a 400 when the target group passes both; by default the load balancer passes the last one only', async () => {
    const orders = ordersBehindAlb();
    const response = await orders.send(event({ headers: { 'idempotency-key': ['k-1', 'k-2'] } }));
    if (multiValue) {
      expect(expectProblem(response, 400, '400 Bad Request', multiValue).title).toMatch(/invalid/i);
      expect(orders.runs).toBe(0);
    } else {
      expect(response.statusCode).toBe(201);
      expect(headerOf(await orders.send(event({ key: 'k-2' })), 'Idempotent-Replayed', multiValue)).toBe('true');
      expect(orders.runs).toBe(1);
    }
  });

  test('base64 bodies: the same JSON sent base64-encoded replays, a different one is a 422 Unprocessable Content', async () => {
    const orders = ordersBehindAlb();
    await orders.send(event({ key: 'k-b64', body: '{"amount":1000,"currency":"EUR"}' }));
    const encoded = event({
      key: 'k-b64',
      body: base64('{ "currency": "EUR", "amount": 1000 }'),
      isBase64Encoded: true,
      headers: { 'content-encoding': 'identity' },
    });
    expect(headerOf(await orders.send(encoded), 'Idempotent-Replayed', multiValue)).toBe('true');
    const other = event({ key: 'k-b64', body: base64('{"amount":1,"currency":"EUR"}'), isBase64Encoded: true });
    expectProblem(await orders.send(other), 422, '422 Unprocessable Content', multiValue);

    // Bytes that are not JSON match whether or not they arrive base64-encoded.
    const form = 'amount=1000&currency=EUR';
    await orders.send(event({ key: 'k-form', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } }));
    expect(headerOf(await orders.send(event({ key: 'k-form', body: base64(form), isBase64Encoded: true })), 'Idempotent-Replayed', multiValue)).toBe('true');
    expect(orders.runs).toBe(2);
  });

  test('query values as a form decoder reads them: `%20` and `+` are one space, `%2B` is a plus, names decode too', async () => {
    const orders = ordersBehindAlb();
    await orders.send(event({ key: 'k-query', query: 'note=two%20words&tags%5B%5D=a' }));
    for (const query of ['note=two+words&tags%5B%5D=a', 'note=two%20words&tags[]=a', 'n%6Fte=two words&tags[]=%61']) {
      expect(headerOf(await orders.send(event({ key: 'k-query', query })), 'Idempotent-Replayed', multiValue)).toBe('true');
    }
    for (const query of ['note=two%2Bwords&tags[]=a', 'note=two+words&tags[]=b', 'note=two+words', 'note=two%FFwords&tags[]=a']) {
      expectProblem(await orders.send(event({ key: 'k-query', query })), 422, '422 Unprocessable Content', multiValue);
    }
    expect(orders.runs).toBe(1);
  });

  test('behind http-event-normalizer, which gives the event an empty multiValueQueryStringParameters, the query still counts', async () => {
    // Its types name API Gateway events only; it serves load balancers' events alike.
    const orders = ordersBehindAlb({}, created, [httpEventNormalizer() as unknown as MiddlewareObj]);
    await orders.send(event({ key: 'k-normalized', query: 'amount=10' }));
    expect(headerOf(await orders.send(event({ key: 'k-normalized', query: 'amount=10' })), 'Idempotent-Replayed', multiValue)).toBe('true');
    expectProblem(await orders.send(event({ key: 'k-normalized', query: 'amount=1000' })), 422, '422 Unprocessable Content', multiValue);
    expect(orders.runs).toBe(1);
  });

  test('query values that are not UTF-8 once decoded are told apart by their bytes', async () => {
    const orders = ordersBehindAlb();
    await orders.send(event({ key: 'k-bytes', query: 'amount=%FF' }));
    expect(headerOf(await orders.send(event({ key: 'k-bytes', query: 'amount=%FF' })), 'Idempotent-Replayed', multiValue)).toBe('true');
    for (const query of ['amount=%FE', 'amount=%EF%BF%BD', 'amount=%25FF']) {
      expect((await orders.send(event({ key: 'k-bytes', query }))).statusCode).toBe(422);
    }
    expect(orders.runs).toBe(1);
  });

  test('keys are scoped by method and path: the same key on another path or method runs on each', async () => {
    const orders = ordersBehindAlb();
    await orders.send(event({ key: 'k-route', path: '/orders' }));
    await orders.send(event({ key: 'k-route', path: '/refunds' }));
    await orders.send(event({ key: 'k-route', path: '/orders', method: 'PUT' }));
    expect(headerOf(await orders.send(event({ key: 'k-route', path: '/refunds' })), 'Idempotent-Replayed', multiValue)).toBe('true');
    expect(orders.runs).toBe(3);
  });

  test('`problemHeaders` go into the header field the load balancer reads', async () => {
    const orders = ordersBehindAlb({
      problemHeaders: (sent) => ({ 'Access-Control-Allow-Origin': sent.path === '/orders' ? 'https://shop.example' : 'none' }),
    });
    const response = await orders.send(event());
    expectProblem(response, 400, '400 Bad Request', multiValue);
    expect(headerOf(response, 'Access-Control-Allow-Origin', multiValue)).toBe('https://shop.example');
  });

  test('an issued key past its age limit that no record answers: 400 Bad Request, with `problemHeaders`, in the header field the load balancer reads; nothing runs', async () => {
    const secret = 's'.repeat(32);
    const orders = ordersBehindAlb({
      signedKeys: { secrets: [secret], maxAgeSeconds: 3_600 },
      problemHeaders: { 'Access-Control-Allow-Origin': 'https://shop.example' },
    });
    const key = issueIdempotencyKey({ secret, now: () => REQUEST_TIME });
    clock = REQUEST_TIME + 3_600_000; // the first millisecond past its age limit; never used before
    const refused = await orders.send(event({ key }));
    expect(expectProblem(refused, 400, '400 Bad Request', multiValue).detail).toMatch(/new key/);
    expect(headerOf(refused, 'Access-Control-Allow-Origin', multiValue)).toBe('https://shop.example');
    expect(orders.runs).toBe(0);
    expect(await orders.records()).toEqual([]);
  });

  test('an unreachable store: 503 Service Unavailable with Retry-After, the handler does not run', async () => {
    const unreachable = await unreachableClient();
    try {
      const orders = ordersBehindAlb({ store: new DynamoDBStore({ tableName, client: unreachable }) });
      const response = await orders.send(event({ key: 'k-down' }));
      expectProblem(response, 503, '503 Service Unavailable', multiValue);
      expect(Number(headerOf(response, 'Retry-After', multiValue))).toBeGreaterThan(0);
      expect(orders.runs).toBe(0);
    } finally {
      unreachable.destroy();
    }
  });

  test('without `scope`: a TypeError naming it, also when the client sends x-amzn-oidc-identity itself; nothing runs, nothing is stored', async () => {
    const orders = ordersBehindAlb({ scope: undefined });
    for (const headers of [{}, { 'x-amzn-oidc-identity': 'alice' }] as Array<Record<string, string>>) {
      await expect(orders.send(event({ key: 'k-1', headers }))).rejects.toThrow(TypeError);
      await expect(orders.send(event({ key: 'k-1', headers }))).rejects.toThrow(/`scope`/);
    }
    expect(orders.runs).toBe(0);
    expect(await orders.records()).toEqual([]);
    // A health check (a GET without a key) still runs.
    expect((await orders.send(event({ method: 'GET', path: '/', body: '' }))).statusCode).toBe(201);
  });

  test('a `scope` function gets the ALB event and keeps tenants apart', async () => {
    const tenantOf = (sent: ALBEvent) => sent.headers?.['x-tenant-id'] ?? sent.multiValueHeaders?.['x-tenant-id']?.[0];
    const orders = ordersBehindAlb({ scope: tenantOf });
    await orders.send(event({ key: 'k-scope', headers: { 'x-tenant-id': 'acme' } }));
    await orders.send(event({ key: 'k-scope', headers: { 'x-tenant-id': 'globex' } }));
    const replay = await orders.send(event({ key: 'k-scope', headers: { 'x-tenant-id': 'acme' } }));
    expect(JSON.parse(replay.body!)).toEqual({ orderId: 'ord-1' });
    expect(orders.runs).toBe(2);
  });

  test('a response stored while the target group had the other header mode is replayed in the field it reads now', async () => {
    const orders = ordersBehindAlb();
    const first = await orders.send(albEvent({ key: 'k-switch', multiValue: !multiValue }));
    const replay = await orders.send(event({ key: 'k-switch' }));
    expect(headerOf(replay, 'Idempotent-Replayed', multiValue)).toBe('true');
    expect(headerOf(replay, 'Location', multiValue)).toBe('/orders/ord-1');
    if (multiValue) expect(replay.multiValueHeaders?.['Content-Type']).toEqual([first.headers?.['Content-Type']]);
    else expect(replay.headers?.['Set-Cookie']).toBe('theme=dark'); // the last value, as the load balancer keeps a request's last
    expect(orders.runs).toBe(1);
  });

  test('a header in both fields under names that differ in case is replayed once, with the value the load balancer read: never a second Content-Type', async () => {
    // The field the target group does not read holds another Content-Type, spelled in other case.
    const orders = ordersBehindAlb({}, (sent, run) => {
      const answer = created(sent, run) as ALBResult;
      return multiValue ? { ...answer, headers: { 'content-type': 'text/plain' } } : { ...answer, multiValueHeaders: { 'content-type': ['text/plain'] } };
    });
    await orders.send(event({ key: 'k-case' }));
    const replay = await orders.send(event({ key: 'k-case' }));
    const fields = (multiValue ? replay.multiValueHeaders : replay.headers) ?? {};
    expect(Object.entries(fields).filter(([name]) => name.toLowerCase() === 'content-type')).toEqual([
      ['Content-Type', multiValue ? ['application/json'] : 'application/json'],
    ]);
    expect(headerOf(replay, 'Idempotent-Replayed', multiValue)).toBe('true');
    expect(orders.runs).toBe(1);
  });

  test('a stored answer with a list that is null in multiValueHeaders (which the type forbids, but a handler can return) replays, never a TypeError on every retry', async () => {
    const orders = ordersBehindAlb({}, async (sent, run) => ({
      ...(await created(sent, run)),
      multiValueHeaders: { ...(await created(sent, run)).multiValueHeaders, 'X-Trace': null } as unknown as Record<string, string[]>,
    }));
    const first = await orders.send(event({ key: 'k-null-list' }));
    const replay = await orders.send(event({ key: 'k-null-list' }));
    expect([replay.statusCode, replay.body]).toEqual([first.statusCode, first.body]);
    expect(multiValue ? replay.multiValueHeaders?.['Idempotent-Replayed'] : replay.headers?.['Idempotent-Replayed']).toEqual(multiValue ? ['true'] : 'true');
    expect(orders.runs).toBe(1);
  });
});

test("the operations tools address an ALB request's record by its method, `<METHOD> <path>` as the route, and the scope's caller", async () => {
  const orders = ordersBehindAlb({ scope: () => 'tenant-a' });
  await orders.send(albEvent({ key: 'k-ops', path: '/orders/7' }));
  const http = { key: 'k-ops', method: 'post', route: 'POST /orders/7', caller: 'tenant-a' };
  expect(await inspectRecord({ store, name: orders.name, http })).toMatchObject({ status: 'COMPLETED' });
  expect(await forgetRecord({ store, name: orders.name, http })).toBe(true);
  expect((await orders.send(albEvent({ key: 'k-ops', path: '/orders/7' }))).statusCode).toBe(201);
  expect(orders.runs).toBe(2);
});

test("an ELB health check (AWS's event: multi-value headers, GET /, an empty body) runs without a key", async () => {
  const orders = ordersBehindAlb({ scope: undefined });
  const healthCheck: ALBEvent = {
    requestContext: { elb: { targetGroupArn: TARGET_GROUP_ARN } },
    httpMethod: 'GET',
    path: '/',
    multiValueQueryStringParameters: {},
    multiValueHeaders: { 'user-agent': ['ELB-HealthChecker/2.0'] },
    body: '',
    isBase64Encoded: false,
  };
  expect((await orders.send(healthCheck)).statusCode).toBe(201);
  expect(orders.runs).toBe(1);
  expect(await orders.records()).toEqual([]);
});
