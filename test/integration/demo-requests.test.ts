/**
 * The demo payment API as users call it and copy it: `npm run demo -- --serve` answers every bad
 * request with a clear 4xx (or API Gateway's 404 for no route), never a 500, and stops reading a
 * body past Lambda's 6 MB request quota; and a refund can never
 * exceed its payment, also when an attempt is taken over after its lease.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { CountingProvider, DemoClock } from '../../demo/fakes.js';
import { toHttpApiEvent } from '../../demo/http-event.js';
import { lambdaContext, QuietLogger } from '../../demo/scenarios.js';
import { type ServerLog, serve } from '../../demo/serve.js';
import { createPaymentHandler, type PaymentHandler } from '../../infra/functions/payment.js';
import { type PaymentProvider, RefundDeclined } from '../../infra/functions/payment-service.js';
import { useDemoTables } from '../support/demo-tables.js';
import { testClient } from '../support/dynamodb.js';

const { client, tables } = useDemoTables('demo-requests');
let server: Server;
let base: string;
/** What the server logged during the current test: its line per answered request, and the errors it answered with a 500. */
const logged = { lines: [] as string[], errors: [] as unknown[] };
const log: ServerLog = { log: (line) => void logged.lines.push(line), error: (error) => void logged.errors.push(error) };

beforeAll(async () => {
  server = await serve(client, tables(), 0, log);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  logged.lines = [];
  logged.errors = [];
});
// No request of these tests is one the payment API fails on.
afterEach(() => expect(logged.errors).toEqual([]));

let keys = 0;
async function post(path: string, body: string, key: string | null = `key-${++keys}`, method = 'POST'): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', ...(key === null ? {} : { 'Idempotency-Key': key }) };
  const response = await fetch(`${base}${path}`, { method, headers, ...(method === 'GET' ? {} : { body }) });
  return { status: response.status, text: await response.text() };
}

// Not JSON, no object, and amounts that are missing, negative, huge, fractional or a string; no currency.
const invalidPayments = ['{"amount": 10', '', '[1]', '{"currency": "EUR"}', '{"amount": -5, "currency": "EUR"}', '{"amount": 1e300, "currency": "EUR"}'];
invalidPayments.push('{"amount": 1.5, "currency": "EUR"}', '{"amount": "100", "currency": "EUR"}', '{"amount": 100}');
// Three capital letters that name no ISO 4217 currency, and a lower-case code.
invalidPayments.push('{"amount": 100, "currency": "XYZ"}', '{"amount": 100, "currency": "eur"}');

test.each(invalidPayments)('POST /payments with the body %j is a 400', async (body) => {
  expect((await post('/payments', body)).status).toBe(400);
  expect(logged.lines).toEqual(['POST /payments → 400']);
});

// ISO 4217 currencies in use, also those Node's ICU does not list (VED: Venezuela's digital bolívar, since 2021).
test.each(['EUR', 'VED', 'XCG', 'ZWG'])('POST /payments in the ISO 4217 currency %s is a 201', async (currency) => {
  expect((await post('/payments', JSON.stringify({ amount: 100, currency }))).status).toBe(201);
});

test('a refund of an unknown payment is a 404, a negative refund a 400, a payment id that does not decode a 400, and no route a 404', async () => {
  expect((await post('/payments/pay_unknown/refunds', '{"amount": 100}')).status).toBe(404);
  expect((await post('/payments/pay_unknown/refunds', '{"amount": -1}')).status).toBe(400);
  expect((await post('/payments/%E0%A4%A/refunds', '{"amount": 100}')).status).toBe(400);
  expect((await post('/payments/', '{"amount": 100, "currency": "EUR"}')).status).toBe(404);
});

test('a refund of a payment id longer than a DynamoDB key allows (2 KB) is a 404, not a 500', async () => {
  for (const id of ['p'.repeat(3000), '\u00e9'.repeat(1100)]) {
    const reply = await post(`/payments/${encodeURIComponent(id)}/refunds`, '{"amount": 100}');
    expect({ status: reply.status, title: JSON.parse(reply.text).title }).toEqual({ status: 404, title: 'Payment not found' });
  }
});

test("the server's own 400 and 404 answers are problem details, as the payment API's are", async () => {
  for (const [path, method, status, title] of [
    ['/payments/%E0%A4%A/refunds', 'POST', 400, 'Bad request'],
    ['/payments/', 'POST', 404, 'Not found'],
    ['/payments', 'GET', 404, 'Not found'],
  ] as const) {
    const response = await fetch(`${base}${path}`, { method, ...(method === 'GET' ? {} : { body: '{"amount": 100}' }) });
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(await response.json()).toEqual({ type: 'about:blank', title, status, detail: expect.any(String) });
  }
});

test('a request without an Idempotency-Key is a 400, and a method the API has no route for a 404', async () => {
  expect((await post('/payments', '{"amount": 100, "currency": "EUR"}', null)).status).toBe(400);
  expect((await post('/payments', '', 'k', 'GET')).status).toBe(404);
  expect((await post('/payments/pay_x/refunds', '{}', 'k', 'PUT')).status).toBe(404);
});

test('a refund can never exceed its payment: the second refund of the whole amount is a 409', async () => {
  const payment = JSON.parse((await post('/payments', '{"amount": 1000, "currency": "EUR"}')).text) as { paymentId: string };
  expect((await post(`/payments/${payment.paymentId}/refunds`, '{"amount": 1000}')).status).toBe(201);
  expect((await post(`/payments/${payment.paymentId}/refunds`, '{"amount": 1}')).status).toBe(409);
  const refunds = `POST /payments/${payment.paymentId}/refunds`;
  expect(logged.lines).toEqual(['POST /payments → 201', `${refunds} → 201`, `${refunds} → 409`]);
});

test('the Location of a created payment serves it: GET answers the payment as it stands, with or without a key; an unknown or impossible id is a 404', async () => {
  const key = `key-${++keys}`;
  const created = await fetch(`${base}/payments`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key },
    body: '{"amount": 1000, "currency": "EUR", "orderId": "o-get"}',
  });
  expect(created.status).toBe(201);
  const payment = (await created.json()) as { paymentId: string };
  const location = created.headers.get('location');
  expect(location).toBe(`/payments/${payment.paymentId}`);
  // A client may send its key on every request, the payment's status polls included: never a replay.
  const read = async (path: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${base}${path}`, { headers });
    return { status: response.status, type: response.headers.get('content-type'), body: await response.json() };
  };
  expect(await read(location!)).toEqual({ status: 200, type: 'application/json', body: payment });
  expect(await read(location!, { 'Idempotency-Key': key })).toEqual({ status: 200, type: 'application/json', body: payment });
  expect((await post(`/payments/${payment.paymentId}/refunds`, '{"amount": 400}')).status).toBe(201);
  // The refunds' bookkeeping on the item (refund ids, the attempt that answers for each) stays out of the answer.
  const refunded = { status: 200, type: 'application/json', body: { ...payment, status: 'PARTIALLY_REFUNDED', refundedAmount: 400, refundableAmount: 600 } };
  expect(await read(location!)).toEqual(refunded);
  expect(await read(location!, { 'Idempotency-Key': key })).toEqual(refunded);
  const notFound = { status: 404, type: 'application/problem+json', body: expect.objectContaining({ status: 404, title: 'Payment not found' }) };
  for (const id of [`pay_${'x'.repeat(22)}`, 'pay_unknown', 'p'.repeat(3000)]) expect(await read(`/payments/${id}`)).toEqual(notFound);
});

/** Lambda's quota for a synchronous invocation's request, which the demo server mirrors. */
const LIMIT = 6 * 1024 * 1024;

/** A raw connection to the demo server, for requests `fetch` cannot send: what it answered, and whether it closed the connection. */
function rawConnection() {
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  let received = '';
  let closed = false;
  const waiting: Array<() => void> = [];
  const wake = (): void => {
    for (const resolve of waiting.splice(0)) resolve();
  };
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1');
    wake();
  });
  socket.on('error', () => undefined); // a reset when the server closes while bytes are still on their way
  socket.once('close', () => {
    closed = true;
    wake();
  });
  return {
    write: (data: string): void => void socket.write(data),
    /** Resolves once the server's answer so far satisfies `check`; rejects if the connection closes first. */
    async answered(check: (text: string) => boolean): Promise<string> {
      while (!check(received)) {
        if (closed) throw new Error(`the connection closed after ${JSON.stringify(received.slice(0, 300))}`);
        await new Promise<void>((resolve) => waiting.push(resolve));
      }
      return received;
    },
    async closed(): Promise<string> {
      while (!closed) await new Promise<void>((resolve) => waiting.push(resolve));
      return received;
    },
    destroy: (): void => void socket.destroy(),
  };
}

const head = (headers: string): string =>
  `POST /payments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nIdempotency-Key: key-${++keys}\r\n${headers}\r\n`;

/** Whether a whole chunked answer has arrived (the demo server answers in chunks). */
const whole = (text: string): boolean => text.endsWith('\r\n0\r\n\r\n');

/** The status line, headers and body of one chunked answer. */
function parseAnswer(text: string): { status: string; headers: string[]; body: string } {
  const [status = '', ...headers] = text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n');
  let rest = text.slice(text.indexOf('\r\n\r\n') + 4);
  let body = '';
  for (let size = Number.parseInt(rest, 16); size > 0; size = Number.parseInt(rest, 16)) {
    const start = rest.indexOf('\r\n') + 2;
    body += rest.slice(start, start + size);
    rest = rest.slice(start + size + 2);
  }
  return { status, headers, body };
}

function expectTooLarge(text: string): void {
  const answer = parseAnswer(text);
  expect(answer.status).toBe('HTTP/1.1 413 Payload Too Large');
  expect(answer.headers).toEqual(expect.arrayContaining(['Content-Type: application/problem+json', 'Connection: close']));
  expect(JSON.parse(answer.body)).toEqual(expect.objectContaining({ status: 413, title: 'Content too large' }));
}

describe('request bodies past 6 MB (the most Lambda accepts for a synchronous invocation) are a 413, and the server stops reading them', () => {
  test('a Content-Length above the limit is answered at once, before any of the body arrives, and the connection closed', async () => {
    const connection = rawConnection();
    try {
      connection.write(head(`Content-Length: ${LIMIT + 1}\r\n`));
      expectTooLarge(await connection.closed());
    } finally {
      connection.destroy();
    }
  });

  test('a chunked body is answered as soon as it passes the limit, though it never ends', async () => {
    const connection = rawConnection();
    try {
      // One chunk one byte past the limit, and no last chunk: a server that buffered to the end would wait forever.
      connection.write(`${head('Transfer-Encoding: chunked\r\n')}${(LIMIT + 1).toString(16)}\r\n${'x'.repeat(LIMIT + 1)}`);
      expectTooLarge(await connection.closed());
    } finally {
      connection.destroy();
    }
  }, 30_000);

  test('a small Content-Length followed by more bytes: the body is what it announced, and the excess is no body but a bad next request that closes the connection', async () => {
    const connection = rawConnection();
    try {
      connection.write(`${head('Content-Length: 2\r\n')}{}`);
      // The handler saw `{}` alone: a JSON object without an amount.
      const first = parseAnswer(await connection.answered(whole));
      expect(first.status).toBe('HTTP/1.1 400 Bad Request');
      expect(JSON.parse(first.body).detail).toMatch(/^amount must be/);
      connection.write('x'.repeat(LIMIT + 1));
      await connection.closed();
    } finally {
      connection.destroy();
    }
    expect((await post('/payments', '{"amount": 100, "currency": "EUR"}')).status).toBe(201);
  }, 30_000);

  test('a body of exactly the limit, chunked or not, reaches the handler', async () => {
    const body = `${' '.repeat(LIMIT - 2)}{}`; // JSON without an amount: the handler's 400
    expect(await post('/payments', body)).toEqual({ status: 400, text: expect.stringContaining('amount must be') });
    const connection = rawConnection();
    try {
      connection.write(`${head('Transfer-Encoding: chunked\r\n')}${(LIMIT - 2).toString(16)}\r\n${' '.repeat(LIMIT - 2)}\r\n2\r\n{}\r\n0\r\n\r\n`);
      const answer = parseAnswer(await connection.answered(whole));
      expect(answer.status).toBe('HTTP/1.1 400 Bad Request');
      expect(JSON.parse(answer.body).detail).toMatch(/^amount must be/);
    } finally {
      connection.destroy();
    }
  }, 30_000);
});

/** A processor whose first refund hangs until `fail()` ends it with a decline; it counts the refunds it made. */
class HangingRefunds implements PaymentProvider {
  refunded = 0;
  calls = 0;
  private hung: ((error: Error) => void) | undefined;
  async charge(): Promise<{ chargeId: string }> {
    return { chargeId: `ch_${randomUUID()}` };
  }
  async refund(request: { amount: number }): Promise<{ providerRefundId: string }> {
    if (++this.calls === 1) return new Promise((_resolve, reject) => (this.hung = reject));
    this.refunded += request.amount;
    return { providerRefundId: `re_${randomUUID()}` };
  }
  fail(): void {
    this.hung?.(new RefundDeclined('the card network declined the refund'));
  }
}

/** The payment API's log lines about its own 5xx answers. */
/**
 * Sends `body` as JSON to `url` through `handler`, as an HTTP API would, under `key` (a fresh one
 * unless given), with the Lambda deadline on `now`; the status and the parsed body of the answer.
 */
async function postJson(
  handler: PaymentHandler,
  url: string,
  body: unknown,
  key = `key-${randomUUID()}`,
  now?: () => number,
): Promise<{ status: number | undefined; json: Record<string, unknown> }> {
  const event = toHttpApiEvent({ method: 'POST', url, headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify(body) });
  const result = await handler(event!, lambdaContext('payments-api', now));
  return { status: result.statusCode, json: JSON.parse(result.body ?? '{}') as Record<string, unknown> };
}

const failureLines = (logger: QuietLogger) =>
  logger.lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.message === 'payment request failed');

test('a refund taken over after its lease stays refunded when the late attempt fails: the late caller is told to retry, not that nothing was refunded, and the payment cannot be refunded again', async () => {
  const clock = new DemoClock();
  const provider = new HangingRefunds();
  const logger = new QuietLogger();
  const options = { ...tables(), client, provider, now: clock.now, logger };
  const first: PaymentHandler = createPaymentHandler(options);
  const other: PaymentHandler = createPaymentHandler(options); // another execution environment
  const post = (handler: PaymentHandler, url: string, body: unknown, key: string) => postJson(handler, url, body, key, clock.now);

  const payment = await post(first, '/payments', { amount: 1_000, currency: 'EUR' }, `pay-${randomUUID()}`);
  const refunds = `/payments/${String(payment.json.paymentId)}/refunds`;
  const key = `refund-${randomUUID()}`;
  const stuck = post(first, refunds, { amount: 1_000 }, key); // applies the refund, then hangs at the processor
  while (provider.calls === 0) await new Promise((resolve) => setImmediate(resolve));
  clock.advance(11_000); // past its 10 s lease
  const takeover = await post(other, refunds, { amount: 1_000 }, key);
  provider.fail(); // the late attempt ends with a provider failure
  const late = await stuck;
  // The refund this caller asked for was made (by the takeover): a retry with its key learns so.
  const retried = await post(first, refunds, { amount: 1_000 }, key);
  const again = await post(other, refunds, { amount: 1_000 }, `refund-${randomUUID()}`);

  expect({ takeover: takeover.status, late: late.status, retried: retried.status, again: again.status, refunded: provider.refunded }).toEqual({
    takeover: 201,
    late: 503,
    retried: 201,
    again: 409,
    refunded: 1_000,
  });
  expect(late.json.detail).not.toMatch(/nothing was refunded/);
  expect(retried.json).toEqual(takeover.json);
  // The 503 names no cause; the operator finds it in the log, the 409 is not logged.
  expect(failureLines(logger)).toEqual([
    { level: 'ERROR', message: 'payment request failed', status: 503, code: 'REFUND_INCOMPLETE', cause: 'the card network declined the refund' },
  ]);
});

/** A processor whose first refund waits until `answer()`; it counts its calls. */
class HeldRefund implements PaymentProvider {
  calls = 0;
  private held: (() => void) | undefined;
  async charge(): Promise<{ chargeId: string }> {
    return { chargeId: `ch_${randomUUID()}` };
  }
  async refund(): Promise<{ providerRefundId: string }> {
    if (++this.calls === 1) await new Promise<void>((resolve) => (this.held = resolve));
    return { providerRefundId: `re_${randomUUID()}` };
  }
  answer(): void {
    this.held?.();
  }
}

test('a takeover that finds the refund applied, and the earlier attempt completes it before the takeover holds it: the takeover answers it as made, without asking the processor again', async () => {
  const clock = new DemoClock();
  const provider = new HeldRefund();
  const logger = new QuietLogger();
  const first: PaymentHandler = createPaymentHandler({ ...tables(), client, provider, now: clock.now, logger });
  // Another execution environment, whose hold of the applied refund waits until the first attempt has completed it.
  const racing = testClient();
  let stuck: Promise<unknown> | undefined;
  racing.middlewareStack.add(
    (next) => async (args) => {
      const input = args.input as { UpdateExpression?: string };
      if (stuck !== undefined && input.UpdateExpression === 'SET #holder = :owner') {
        provider.answer();
        await stuck;
      }
      return next(args);
    },
    { step: 'initialize' },
  );
  const other: PaymentHandler = createPaymentHandler({ ...tables(), client: racing, provider, now: clock.now, logger });
  const post = (handler: PaymentHandler, url: string, body: unknown, key: string) => postJson(handler, url, body, key, clock.now);
  try {
    const payment = await post(first, '/payments', { amount: 1_000, currency: 'EUR' }, `pay-${randomUUID()}`);
    const refunds = `/payments/${String(payment.json.paymentId)}/refunds`;
    const key = `refund-${randomUUID()}`;
    stuck = post(first, refunds, { amount: 400 }, key); // applies the refund, then waits at the processor
    while (provider.calls === 0) await new Promise((resolve) => setImmediate(resolve));
    clock.advance(11_000); // past its 10 s lease
    const takeover = await post(other, refunds, { amount: 400 }, key);
    expect({ takeover: takeover.status, calls: provider.calls }).toEqual({ takeover: 201, calls: 1 });
    expect(takeover.json).toMatchObject({ amount: 400, refundedAmount: 400, refundableAmount: 600 });
    // The amount stays refunded once: the rest of the payment, and no more, can be refunded.
    expect((await post(first, refunds, { amount: 700 }, `refund-${randomUUID()}`)).status).toBe(409);
  } finally {
    racing.destroy();
  }
});

/** A processor that declines refunds while `down`; it counts the refunds it was asked for and those it made. */
class FailingRefunds implements PaymentProvider {
  down = true;
  asked = 0;
  refunded = 0;
  async charge(): Promise<{ chargeId: string }> {
    return { chargeId: `ch_${randomUUID()}` };
  }
  async refund(request: { amount: number }): Promise<{ providerRefundId: string }> {
    this.asked++;
    if (this.down) throw new RefundDeclined('the card network declined the refund');
    this.refunded += request.amount;
    return { providerRefundId: `re_${randomUUID()}` };
  }
}

test('a refund the processor declines is a 402 that says nothing was refunded, kept for the key: sent again, it is replayed without asking the processor, and the amount stays refundable', async () => {
  const provider = new FailingRefunds(); // declines the first refund; would make the next one
  const logger = new QuietLogger();
  const handler: PaymentHandler = createPaymentHandler({ ...tables(), client, provider, logger });
  const payment = await postJson(handler, '/payments', { amount: 1_000, currency: 'EUR' });
  const refunds = `/payments/${String(payment.json.paymentId)}/refunds`;
  const key = `refund-${randomUUID()}`;
  const declined = await postJson(handler, refunds, { amount: 400 }, key);
  provider.down = false;
  const again = await postJson(handler, refunds, { amount: 400 }, key);
  expect({ status: declined.status, title: declined.json.title, detail: declined.json.detail }).toEqual({
    status: 402,
    title: 'Refund declined',
    detail: 'The payment provider declined the refund; nothing was refunded.',
  });
  // One key, one answer: the decline, never a refund made by a retry of it.
  expect({ again, asked: provider.asked, refunded: provider.refunded }).toEqual({ again: declined, asked: 1, refunded: 0 });
  // The declined amount was given back: a new key refunds the whole payment.
  expect((await postJson(handler, refunds, { amount: 1_000 })).json).toMatchObject({ refundedAmount: 1_000, refundableAmount: 0 });
  expect({ refunded: provider.refunded, logged: failureLines(logger) }).toEqual({ refunded: 1_000, logged: [] });
});

test('a refund whose provider call and undo both fail is a 503 with Retry-After; the retry with the same key completes it, refunding once', async () => {
  const provider = new FailingRefunds();
  // DynamoDB refuses the write that gives the refund back (throttled): a fault DynamoDB Local does not produce.
  const faulty = testClient();
  let undoFails = true;
  faulty.middlewareStack.add(
    (next) => async (args) => {
      const input = args.input as { UpdateExpression?: string };
      if (undoFails && input.UpdateExpression?.startsWith('SET refundableAmount = refundableAmount + ')) throw new Error('throttled');
      return next(args);
    },
    { step: 'initialize' },
  );
  const logger = new QuietLogger();
  const handler: PaymentHandler = createPaymentHandler({ ...tables(), client: faulty, provider, logger });
  const call = async (url: string, body: unknown, key: string) => {
    const event = toHttpApiEvent({ method: 'POST', url, headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify(body) });
    const result = await handler(event!, lambdaContext('payments-api'));
    return { status: result.statusCode, headers: result.headers ?? {}, json: JSON.parse(result.body ?? '{}') as Record<string, unknown> };
  };
  try {
    const payment = await call('/payments', { amount: 1_000, currency: 'EUR' }, `pay-${randomUUID()}`);
    const refunds = `/payments/${String(payment.json.paymentId)}/refunds`;
    const key = `refund-${randomUUID()}`;
    const failed = await call(refunds, { amount: 400 }, key);
    expect(failed).toMatchObject({ status: 503, headers: { 'Content-Type': 'application/problem+json', 'Retry-After': '1' }, json: { status: 503 } });
    expect(failed.json.detail).toMatch(/retry with the same Idempotency-Key/);
    // Both causes, the provider's and the undo's, reach the log.
    expect(failureLines(logger)).toEqual([
      {
        level: 'ERROR',
        message: 'payment request failed',
        status: 503,
        code: 'REFUND_INCOMPLETE',
        cause: 'the provider call and its undo both failed: the card network declined the refund; throttled',
      },
    ]);
    expect(provider.refunded).toBe(0);

    provider.down = false;
    undoFails = false;
    const retried = await call(refunds, { amount: 400 }, key);
    expect(retried).toMatchObject({ status: 201, json: { amount: 400, refundedAmount: 400, refundableAmount: 600 } });
    expect(provider.refunded).toBe(400);
    // The refund id is the same, so a replay and the next refund see one refund of 400.
    expect((await call(refunds, { amount: 400 }, key)).headers).toMatchObject({ 'Idempotent-Replayed': 'true' });
    expect((await call(refunds, { amount: 600 }, `refund-${randomUUID()}`)).json).toMatchObject({ refundedAmount: 1_000, refundableAmount: 0 });
    expect(provider.refunded).toBe(1_000);
  } finally {
    faulty.destroy();
  }
});

test('a refund sent again after its record expired is not made again, though the processor no longer keeps its key', async () => {
  const clock = new DemoClock();
  const provider = new FailingRefunds(); // counts every refund call: no key dedupe
  provider.down = false;
  const handler: PaymentHandler = createPaymentHandler({ ...tables(), client, provider, now: clock.now, logger: new QuietLogger() });
  const call = async (url: string, body: unknown, key: string) => {
    const event = toHttpApiEvent({ method: 'POST', url, headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify(body) });
    const result = await handler(event!, lambdaContext('payments-api', clock.now));
    return { status: result.statusCode, replayed: result.headers?.['Idempotent-Replayed'] === 'true', json: JSON.parse(result.body ?? '{}') };
  };
  const payment = await call('/payments', { amount: 1_000, currency: 'EUR' }, `pay-${randomUUID()}`);
  const refunds = `/payments/${String(payment.json.paymentId)}/refunds`;
  const key = `refund-${randomUUID()}`;
  const first = await call(refunds, { amount: 400 }, key);
  clock.advance(25 * 3_600_000); // past the 24-hour retention: the record no longer answers
  const late = await call(refunds, { amount: 400 }, key);
  expect({ first: first.status, late: late.status, replayed: late.replayed, refundId: late.json.refundId, refunded: provider.refunded }).toEqual({
    first: 201,
    late: 201,
    replayed: false,
    refundId: first.json.refundId,
    refunded: 400,
  });
  expect(late.json).toMatchObject({ refundedAmount: 400, refundableAmount: 600 });
});

test('a refund key sent again after its record expired with another amount is a 422: the answer never states an amount that was not refunded', async () => {
  const clock = new DemoClock();
  const provider = new FailingRefunds();
  provider.down = false;
  const handler: PaymentHandler = createPaymentHandler({ ...tables(), client, provider, now: clock.now, logger: new QuietLogger() });
  const call = (url: string, body: unknown, key: string) => postJson(handler, url, body, key, clock.now);
  const payment = await call('/payments', { amount: 1_000, currency: 'EUR' }, `pay-${randomUUID()}`);
  const paymentId = String(payment.json.paymentId);
  const key = `refund-${randomUUID()}`;
  const first = await call(`/payments/${paymentId}/refunds`, { amount: 400 }, key);
  clock.advance(25 * 3_600_000); // past the 24-hour retention
  const late = await call(`/payments/${paymentId}/refunds`, { amount: 600 }, key);
  const stands = await handler(toHttpApiEvent({ method: 'GET', url: `/payments/${paymentId}` })!, lambdaContext('payments-api', clock.now));
  expect({ first: first.status, late: late.status, lateAmount: late.json.amount, refunded: provider.refunded }).toEqual({
    first: 201,
    late: 422,
    lateAmount: undefined,
    refunded: 400,
  });
  expect(JSON.parse(stands.body ?? '{}')).toMatchObject({ refundedAmount: 400, refundableAmount: 600, status: 'PARTIALLY_REFUNDED' });
});

test('POST /idempotency-keys issues a key with or without a query string, as API Gateway routes by the path alone', async () => {
  for (const path of ['/idempotency-keys', '/idempotency-keys?client=web']) {
    const response = await post(path, '', null);
    expect({ path, status: response.status }).toEqual({ path, status: 201 });
    expect(JSON.parse(response.text)).toEqual({ key: expect.any(String) });
  }
});

/** A processor that makes each refund, and then, for the first `lost` of them, its answer is lost (a timeout): the money moved. */
class LostAnswers extends CountingProvider {
  lost = 1;
  override async refund(request: Parameters<CountingProvider['refund']>[0]): Promise<{ providerRefundId: string }> {
    const made = await super.refund(request);
    if (this.lost > 0 && this.lost--) throw new Error('timed out waiting for the card network');
    return made;
  }
}

test('a refund whose provider call timed out after the processor made it stays recorded: no other refund exceeds the payment, the retry completes it', async () => {
  const provider = new LostAnswers();
  const handler: PaymentHandler = createPaymentHandler({ ...tables(), client, provider, logger: new QuietLogger() });
  const call = (url: string, body: unknown, key?: string) => postJson(handler, url, body, key);
  const payment = await call('/payments', { amount: 1_000, currency: 'EUR' });
  const refunds = `/payments/${String(payment.json.paymentId)}/refunds`;
  const key = `refund-${randomUUID()}`;
  const timedOut = await call(refunds, { amount: 400 }, key);
  const whole = await call(refunds, { amount: 1_000 });
  const retried = await call(refunds, { amount: 400 }, key);
  const refunded = provider.refunds.reduce((sum, refund) => sum + refund.amount, 0);
  expect({ timedOut: timedOut.status, whole: whole.status, retried: retried.status, refunded }).toEqual({
    timedOut: 503,
    whole: 409,
    retried: 201,
    refunded: 400,
  });
  expect(retried.json).toMatchObject({ refundedAmount: 400, refundableAmount: 600 });
});

/** A processor that charges the card, and whose first answer of a charge is lost: the call times out after the charge was made. */
class LostChargeAnswers extends CountingProvider {
  lost = 1;
  override async charge(request: Parameters<CountingProvider['charge']>[0]): Promise<{ chargeId: string }> {
    const made = await super.charge(request);
    if (this.lost > 0 && this.lost--) throw new Error('timed out waiting for the card network');
    return made;
  }
}

test('a charge whose provider call timed out after the processor charged the card does not answer that nothing was charged; the retry with the same key charges once', async () => {
  const provider = new LostChargeAnswers();
  const handler: PaymentHandler = createPaymentHandler({ ...tables(), client, provider, logger: new QuietLogger() });
  const key = `pay-${randomUUID()}`;
  const timedOut = await postJson(handler, '/payments', { amount: 1_000, currency: 'EUR' }, key);
  const retried = await postJson(handler, '/payments', { amount: 1_000, currency: 'EUR' }, key);
  expect({ timedOut: timedOut.status, retried: retried.status, charges: provider.charges.length }).toEqual({ timedOut: 502, retried: 201, charges: 1 });
  // The card was charged: the answer must not tell the client otherwise (it might pay again under a new key).
  expect(timedOut.json.detail).not.toMatch(/nothing was charged/);
  expect(timedOut.json.detail).toMatch(/retry with the same Idempotency-Key/);
});

test('a charge the processor declines is a 402 that says nothing was charged, kept for the key: sent again, it is replayed without asking the processor', async () => {
  const provider = new CountingProvider();
  provider.inject('decline'); // the first charge; the processor would take the next one (funds topped up meanwhile)
  const handler: PaymentHandler = createPaymentHandler({ ...tables(), client, provider, logger: new QuietLogger() });
  const key = `pay-${randomUUID()}`;
  const declined = await postJson(handler, '/payments', { amount: 1_000, currency: 'EUR' }, key);
  const again = await postJson(handler, '/payments', { amount: 1_000, currency: 'EUR' }, key);
  expect({ status: declined.status, title: declined.json.title, detail: declined.json.detail }).toEqual({
    status: 402,
    title: 'Payment declined',
    detail: 'The payment provider declined the charge; nothing was charged.',
  });
  // One key, one answer: the decline, never a charge made by a retry of it.
  expect({ again, asked: provider.attempts, charges: provider.charges.length }).toEqual({ again: declined, asked: 1, charges: 0 });
  // A new key is a new payment: it asks the processor again.
  expect((await postJson(handler, '/payments', { amount: 1_000, currency: 'EUR' })).status).toBe(201);
});

test('a refund key sent after its record expired for another payment refunds that payment: the processor is asked under a key of its own', async () => {
  const clock = new DemoClock();
  const provider = new CountingProvider(); // answers a key it has seen with its first result, as processors do
  const handler: PaymentHandler = createPaymentHandler({ ...tables(), client, provider, now: clock.now, logger: new QuietLogger() });
  const call = (url: string, body: unknown, key?: string) => postJson(handler, url, body, key, clock.now);
  const first = String((await call('/payments', { amount: 1_000, currency: 'EUR' })).json.paymentId);
  const second = String((await call('/payments', { amount: 1_000, currency: 'EUR' })).json.paymentId);
  const key = `refund-${randomUUID()}`;
  expect((await call(`/payments/${first}/refunds`, { amount: 400 }, key)).status).toBe(201);
  // Within the retention the same key on another payment is another request: a 422.
  expect((await call(`/payments/${second}/refunds`, { amount: 400 }, key)).status).toBe(422);
  clock.advance(25 * 3_600_000); // past the 24-hour retention
  const late = await call(`/payments/${second}/refunds`, { amount: 400 }, key);
  expect({ status: late.status, refundedAmount: late.json.refundedAmount, made: provider.refunds.map((refund) => refund.paymentId) }).toEqual({
    status: 201,
    refundedAmount: 400,
    made: [first, second],
  });
});

test("a refund in another currency than the payment's is a 422 that moves no money; the payment's currency, or none, refunds", async () => {
  const provider = new CountingProvider();
  const handler: PaymentHandler = createPaymentHandler({ ...tables(), client, provider, logger: new QuietLogger() });
  const call = (url: string, body: unknown, key?: string) => postJson(handler, url, body, key);
  const payment = await call('/payments', { amount: 1_000, currency: 'EUR' });
  const refunds = `/payments/${String(payment.json.paymentId)}/refunds`;
  const key = `refund-${randomUUID()}`;
  const foreign = await call(refunds, { amount: 400, currency: 'USD' }, key);
  expect(foreign).toEqual({
    status: 422,
    json: {
      type: 'about:blank',
      title: 'Refund currency differs from the payment',
      status: 422,
      detail: 'The payment is in EUR; a refund of it cannot be in USD.',
    },
  });
  // A 4xx is final (docs/demo.md): the same request gets the same answer, the corrected one a new key.
  expect((await call(refunds, { amount: 400, currency: 'USD' }, key)).status).toBe(422);
  expect((await call(refunds, { amount: 400, currency: 'usd' })).status).toBe(400);
  expect((await call(refunds, { amount: 400, currency: 'XYZ' })).status).toBe(400);
  expect(provider.refunds).toEqual([]);
  // Nothing was applied to the payment either: the whole amount is still refundable.
  expect((await call(refunds, { amount: 400, currency: 'EUR' })).json).toMatchObject({ amount: 400, refundedAmount: 400, refundableAmount: 600 });
  expect((await call(refunds, { amount: 600 })).json).toMatchObject({ amount: 600, refundedAmount: 1_000, refundableAmount: 0 });
  expect(provider.refunds.map((refund) => refund.amount)).toEqual([400, 600]);
});

/** A processor that has forgotten every idempotency key (they are kept for a day or so): each charge call charges the card. */
class ForgetfulProcessor extends CountingProvider {
  override async charge(request: Parameters<CountingProvider['charge']>[0]): Promise<{ chargeId: string }> {
    return super.charge({ ...request, idempotencyKey: randomUUID() });
  }
}

test('a payment sent again after its record expired is not charged again, though the processor no longer keeps its key; with another amount it is a 422', async () => {
  const clock = new DemoClock();
  const provider = new ForgetfulProcessor();
  const handler: PaymentHandler = createPaymentHandler({ ...tables(), client, provider, now: clock.now, logger: new QuietLogger() });
  const key = `pay-${randomUUID()}`;
  const first = await postJson(handler, '/payments', { amount: 1_000, currency: 'EUR' }, key, clock.now);
  clock.advance(25 * 3_600_000); // past the 24-hour retention: the record no longer answers
  const late = await postJson(handler, '/payments', { amount: 1_000, currency: 'EUR' }, key, clock.now);
  clock.advance(25 * 3_600_000); // past the retention of the record the late request wrote
  const changed = await postJson(handler, '/payments', { amount: 2_000, currency: 'EUR' }, key, clock.now);
  expect({ first: first.status, late: late.status, changed: changed.status, charges: provider.charges.length }).toEqual({
    first: 201,
    late: 201,
    changed: 422,
    charges: 1,
  });
  expect(late.json).toEqual(first.json);
});
