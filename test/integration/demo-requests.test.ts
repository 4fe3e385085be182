/**
 * `npm run demo -- --serve` answering what curl users really send: every bad request gets a clear
 * 4xx from the payment API (or API Gateway's 404 for no route), never a 500.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDemoTables, type DemoTables, dropDemoTables } from '../../demo/scenarios.js';
import { serve } from '../../demo/serve.js';
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
