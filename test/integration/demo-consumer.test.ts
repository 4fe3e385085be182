/**
 * The demo's order consumer past its record retention: a producer's resend after 24 hours runs the
 * handler again. The processor is asked under the same key (it charges once while it keeps that
 * key), the payment is not written twice, and the message is reported failed, never acknowledged.
 */
import { randomUUID } from 'node:crypto';
import { CountingProvider, DemoClock } from '../../demo/fakes.js';
import { lambdaContext, QuietLogger, sqsRecord } from '../../demo/scenarios.js';
import { createConsumerHandler } from '../../infra/functions/consumer.js';
import { useDemoTables } from '../support/demo-tables.js';

const { client, tables } = useDemoTables('demo-consumer');

test('an order resent after the record retention is charged under the same processor key, written once, and reported failed', async () => {
  const clock = new DemoClock();
  const provider = new CountingProvider();
  const keys: string[] = [];
  const charge = provider.charge.bind(provider);
  provider.charge = async (request) => {
    keys.push(request.idempotencyKey);
    return charge(request);
  };
  const handler = createConsumerHandler({ ...tables(), client, provider, now: clock.now, logger: new QuietLogger() });
  const order = JSON.stringify({ orderId: `order-${randomUUID()}`, amount: 1_500, currency: 'EUR' });
  const first = await handler({ Records: [sqsRecord(order)] }, lambdaContext('payments-consumer', clock.now));
  clock.advance(25 * 3_600_000); // past the 24-hour retention
  const resent = sqsRecord(order);
  const late = await handler({ Records: [resent] }, lambdaContext('payments-consumer', clock.now)).catch((error: unknown) => error);
  expect({ first, charges: provider.charges.length, sameKey: keys.length === 2 && keys[0] === keys[1] }).toEqual({
    first: { batchItemFailures: [] },
    charges: 1,
    sameKey: true,
  });
  // No record of the batch succeeded: the batch fails as a whole, and the message comes back.
  // The payment's conditional write refuses the second payment: nothing was written.
  expect(late).toBeInstanceOf(AggregateError);
  expect((late as AggregateError).errors.map((error: { code?: string }) => error.code)).toEqual(['TRANSACTION_CONDITION_FAILED']);
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
