/**
 * The demo payment API as users call it and copy it: `npm run demo -- --serve` answers every bad
 * request with a clear 4xx (or API Gateway's 404 for no route), never a 500; and a refund can never
 * exceed its payment, also when an attempt is taken over after its lease.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DemoClock } from '../../demo/fakes.js';
import { toHttpApiEvent } from '../../demo/http-event.js';
import { createDemoTables, type DemoTables, dropDemoTables, lambdaContext, QuietLogger } from '../../demo/scenarios.js';
import { serve } from '../../demo/serve.js';
import { createPaymentHandler, type PaymentHandler } from '../../infra/functions/payment.js';
import type { PaymentProvider } from '../../infra/functions/payment-service.js';
import { testClient } from '../support/dynamodb.js';

const client = testClient();
let tables: DemoTables;
let server: Server;
let base: string;

beforeAll(async () => {
  tables = await createDemoTables(client, 'demo-requests');
  server = await serve(client, tables, 0);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await dropDemoTables(client, tables);
  client.destroy();
});

let keys = 0;
async function post(path: string, body: string, key: string | null = `key-${++keys}`, method = 'POST'): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', ...(key === null ? {} : { 'Idempotency-Key': key }) };
  const response = await fetch(`${base}${path}`, { method, headers, ...(method === 'GET' ? {} : { body }) });
  return { status: response.status, text: await response.text() };
}

// Not JSON, no object, and amounts that are missing, negative, huge, fractional or a string; no currency.
const invalidPayments = ['{"amount": 10', '', '[1]', '{"currency": "EUR"}', '{"amount": -5, "currency": "EUR"}', '{"amount": 1e300, "currency": "EUR"}'];
invalidPayments.push('{"amount": 1.5, "currency": "EUR"}', '{"amount": "100", "currency": "EUR"}', '{"amount": 100}');

test.each(invalidPayments)('POST /payments with the body %j is a 400', async (body) => {
  expect((await post('/payments', body)).status).toBe(400);
});

test('a refund of an unknown payment is a 404, a negative refund a 400, a payment id that does not decode a 400, and no route a 404', async () => {
  expect((await post('/payments/pay_unknown/refunds', '{"amount": 100}')).status).toBe(404);
  expect((await post('/payments/pay_unknown/refunds', '{"amount": -1}')).status).toBe(400);
  expect((await post('/payments/%E0%A4%A/refunds', '{"amount": 100}')).status).toBe(400);
  expect((await post('/payments/', '{"amount": 100, "currency": "EUR"}')).status).toBe(404);
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
});

/** A processor whose first refund hangs until `fail()` ends it with an error; it counts the refunds it made. */
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
    this.hung?.(new Error('the card network timed out'));
  }
}

test('a refund taken over after its lease stays refunded when the late attempt fails: the payment cannot be refunded again', async () => {
  const clock = new DemoClock();
  const provider = new HangingRefunds();
  const options = { ...tables, client, provider, now: clock.now, logger: new QuietLogger() };
  const first: PaymentHandler = createPaymentHandler(options);
  const other: PaymentHandler = createPaymentHandler(options); // another execution environment
  const post = async (handler: PaymentHandler, url: string, body: unknown, key: string) => {
    const event = toHttpApiEvent({ method: 'POST', url, headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify(body) });
    const result = await handler(event!, lambdaContext('payments-api', clock.now));
    return { status: result.statusCode, json: JSON.parse(result.body ?? '{}') as Record<string, unknown> };
  };

  const payment = await post(first, '/payments', { amount: 1_000, currency: 'EUR' }, `pay-${randomUUID()}`);
  const refunds = `/payments/${String(payment.json.paymentId)}/refunds`;
  const key = `refund-${randomUUID()}`;
  const stuck = post(first, refunds, { amount: 1_000 }, key); // applies the refund, then hangs at the processor
  while (provider.calls === 0) await new Promise((resolve) => setImmediate(resolve));
  clock.advance(11_000); // past its 10 s lease
  const takeover = await post(other, refunds, { amount: 1_000 }, key);
  provider.fail(); // the late attempt ends with a provider failure
  const late = await stuck;
  const again = await post(other, refunds, { amount: 1_000 }, `refund-${randomUUID()}`);

  expect({ takeover: takeover.status, late: late.status, again: again.status, refunded: provider.refunded }).toEqual({
    takeover: 201,
    late: 502,
    again: 409,
    refunded: 1_000,
  });
});
