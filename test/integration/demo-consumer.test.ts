/**
 * The demo's order consumer past its record retention: a producer's resend after 24 hours runs the
 * handler again. It finds the order's payment and acknowledges the message without asking the
 * processor again, which may have forgotten its key by then; the same order id with another amount
 * is reported failed, never acknowledged.
 */
import { randomUUID } from 'node:crypto';
import { CountingProvider, DemoClock } from '../../demo/fakes.js';
import { toHttpApiEvent } from '../../demo/http-event.js';
import { lambdaContext, QuietLogger, sqsRecord } from '../../demo/scenarios.js';
import { createConsumerHandler } from '../../infra/functions/consumer.js';
import { createPaymentHandler } from '../../infra/functions/payment.js';
import { useDemoTables } from '../support/demo-tables.js';

const { client, tables } = useDemoTables('demo-consumer');

test('an order resent after the record retention is acknowledged without a second charge; the order id with another amount is reported failed', async () => {
  const clock = new DemoClock();
  const provider = new CountingProvider();
  const keys: string[] = [];
  const charge = provider.charge.bind(provider);
  // The processor has forgotten every key: only the consumer can stop a second charge.
  provider.charge = async (request) => {
    keys.push(request.idempotencyKey);
    return charge({ ...request, idempotencyKey: randomUUID() });
  };
  const handler = createConsumerHandler({ ...tables(), client, provider, now: clock.now, logger: new QuietLogger() });
  const orderId = `order-${randomUUID()}`;
  const order = JSON.stringify({ orderId, amount: 1_500, currency: 'EUR' });
  const first = await handler({ Records: [sqsRecord(order)] }, lambdaContext('payments-consumer', clock.now));
  clock.advance(25 * 3_600_000); // past the 24-hour retention
  const late = await handler({ Records: [sqsRecord(order)] }, lambdaContext('payments-consumer', clock.now));
  clock.advance(25 * 3_600_000);
  const changed = await handler(
    { Records: [sqsRecord(JSON.stringify({ orderId, amount: 9_900, currency: 'EUR' }))] },
    lambdaContext('payments-consumer', clock.now),
  ).catch((error: unknown) => error);
  expect({ first, late, charges: provider.charges.length, asked: keys.length }).toEqual({
    first: { batchItemFailures: [] },
    late: { batchItemFailures: [] },
    charges: 1,
    asked: 1,
  });
  // No record of the batch succeeded: the batch fails as a whole, and the message comes back.
  expect(changed).toBeInstanceOf(AggregateError);
  expect((changed as AggregateError).errors.map((error: { code?: string }) => error.code)).toEqual(['PAYMENT_KEY_REUSED']);
});

test('an order whose charge is made but never answered fails every receive: it reaches the dead-letter queue charged', async () => {
  const clock = new DemoClock();
  const provider = new CountingProvider();
  const charge = provider.charge.bind(provider);
  // The processor charges the card, and its answer is lost (a timeout, a 5xx after the fact), on every receive.
  provider.charge = async (request) => {
    await charge(request);
    throw new Error('the card network did not answer in time');
  };
  const handler = createConsumerHandler({ ...tables(), client, provider, now: clock.now, logger: new QuietLogger() });
  const orderId = `order-${randomUUID()}`;
  const message = sqsRecord(JSON.stringify({ orderId, amount: 1_500, currency: 'EUR' }));
  const failedReceives: unknown[] = [];
  // The stack's order queue: maxReceiveCount 5, each receive after the 61-second visibility timeout.
  for (let receive = 0; receive < 5; receive++) {
    failedReceives.push(await handler({ Records: [message] }, lambdaContext('payments-consumer', clock.now)).catch((error: unknown) => error));
    clock.advance(61_000);
  }
  expect({ failed: failedReceives.every((out) => out instanceof AggregateError), charges: provider.charges.length }).toEqual({ failed: true, charges: 1 });
});

test('an order whose charge the processor declines fails every receive without asking the processor again: the decline is kept for the order', async () => {
  const clock = new DemoClock();
  const provider = new CountingProvider();
  provider.inject('decline'); // the first charge; the processor would take the next one
  const handler = createConsumerHandler({ ...tables(), client, provider, now: clock.now, logger: new QuietLogger() });
  const message = sqsRecord(JSON.stringify({ orderId: `order-${randomUUID()}`, amount: 1_500, currency: 'EUR' }));
  const codes: unknown[] = [];
  for (let receive = 0; receive < 5; receive++) {
    const out = await handler({ Records: [message] }, lambdaContext('payments-consumer', clock.now)).catch((error: unknown) => error);
    codes.push(out instanceof AggregateError ? out.errors.map((error: { code?: string }) => error.code) : out);
    clock.advance(61_000);
  }
  expect({ codes, asked: provider.attempts, charges: provider.charges.length }).toEqual({ codes: Array(5).fill(['CHARGE_DECLINED']), asked: 1, charges: 0 });
});

test('an order is charged once, whichever channel pays it: its message after the payment API, or the API again under another key, charges nothing', async () => {
  const provider = new CountingProvider();
  const options = { ...tables(), client, provider, logger: new QuietLogger() };
  const api = createPaymentHandler(options);
  const consumer = createConsumerHandler(options);
  const orderId = `order-${randomUUID()}`;
  const order = { orderId, amount: 1_500, currency: 'EUR' };
  const pay = async (key: string) => {
    const event = toHttpApiEvent({ method: 'POST', url: '/payments', headers: { 'idempotency-key': key }, body: JSON.stringify(order) });
    const result = await api(event!, lambdaContext('payments-api'));
    return { status: result.statusCode, json: JSON.parse(result.body ?? '{}') as Record<string, unknown> };
  };
  const key = `pay-${randomUUID()}`;
  const paid = await pay(key);
  const message = await consumer({ Records: [sqsRecord(JSON.stringify(order))] }, lambdaContext('payments-consumer')).catch((error: unknown) => error);
  const otherKey = await pay(`pay-${randomUUID()}`);
  const retried = await pay(key);
  expect({ paid: paid.status, otherKey: otherKey.status, title: otherKey.json.title, retried: retried.json, charges: provider.charges.length }).toEqual({
    paid: 201,
    otherKey: 409,
    title: 'Order already paid',
    retried: paid.json,
    charges: 1,
  });
  // The message wrote no payment: it fails, and reaches the dead-letter queue, never acknowledged as its own charge.
  expect(message instanceof AggregateError && message.errors.map((error: { code?: string }) => error.code)).toEqual(['ORDER_ALREADY_PAID']);
});

test('an order whose charge was declined is free again: its message, or the API under a new key, pays it', async () => {
  const provider = new CountingProvider();
  provider.inject('decline');
  const options = { ...tables(), client, provider, logger: new QuietLogger() };
  const api = createPaymentHandler(options);
  const order = JSON.stringify({ orderId: `order-${randomUUID()}`, amount: 1_500, currency: 'EUR' });
  const event = toHttpApiEvent({ method: 'POST', url: '/payments', headers: { 'idempotency-key': `pay-${randomUUID()}` }, body: order });
  const declined = await api(event!, lambdaContext('payments-api'));
  const message = await createConsumerHandler(options)({ Records: [sqsRecord(order)] }, lambdaContext('payments-consumer'));
  expect({ declined: declined.statusCode, message, charges: provider.charges.length }).toEqual({
    declined: 402,
    message: { batchItemFailures: [] },
    charges: 1,
  });
});

test('an order another payment is still paying is a 409 with Retry-After, not kept, past the record retention too: once that payment is declined, the same request pays it; a paid order is a final 409', async () => {
  const clock = new DemoClock();
  const provider = new CountingProvider();
  provider.inject('fail'); // the first payment's charge: the card network does not answer, the outcome is unknown
  provider.inject('decline'); // that payment's retry: declined, nothing charged
  const api = createPaymentHandler({ ...tables(), client, provider, now: clock.now, logger: new QuietLogger() });
  const order = JSON.stringify({ orderId: `order-${randomUUID()}`, amount: 1_500, currency: 'EUR' });
  const pay = async (key: string) => {
    const event = toHttpApiEvent({ method: 'POST', url: '/payments', headers: { 'idempotency-key': key }, body: order });
    const result = await api(event!, lambdaContext('payments-api', clock.now));
    const { title } = JSON.parse(result.body ?? '{}') as { title?: string };
    return { status: result.statusCode, title, retryAfter: result.headers?.['Retry-After'] };
  };
  const first = `pay-${randomUUID()}`;
  const second = `pay-${randomUUID()}`;
  const unknown = await pay(first); // the order stays bound to this payment: it may have been charged
  clock.advance(25 * 3_600_000); // past the 24-hour retention: time alone frees nothing
  const waiting = await pay(second);
  const declined = await pay(first); // frees the order
  const paid = await pay(second); // the same request as the 409's, sent again
  const third = await pay(`pay-${randomUUID()}`);
  expect({ unknown: unknown.status, waiting, declined: declined.status, paid: paid.status, third, charges: provider.charges.length }).toEqual({
    unknown: 502,
    waiting: { status: 409, title: 'Order being paid', retryAfter: expect.any(String) },
    declined: 402,
    paid: 201,
    third: { status: 409, title: 'Order already paid', retryAfter: undefined },
    charges: 1,
  });
});
