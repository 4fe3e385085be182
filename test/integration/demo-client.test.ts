/**
 * The DynamoDB client the demo functions build in Lambda (none injected), which the payment service
 * and the store share: each request attempt is bounded as the store's own client bounds it, so a
 * request of the function's own (a payment read, a refund's write), which no Lambda deadline of the
 * library bounds, fails instead of holding the function until its timeout. The client is configured,
 * as in Lambda, by the environment, in front of a DynamoDB Local a proxy can cut short.
 */
import { jest } from '@jest/globals';
import { toHttpApiEvent } from '../../demo/http-event.js';
import { lambdaContext, QuietLogger } from '../../demo/scenarios.js';
import { createPaymentHandler } from '../../infra/functions/payment.js';
import { useDemoTables } from '../support/demo-tables.js';
import { thrown } from '../support/rejections.js';
import { useStalledDynamoDB } from '../support/stalled-dynamodb.js';

const { tables } = useDemoTables('demo-client');
const proxy = useStalledDynamoDB();

// Without the bound, the request waits until Jest gives up on it.
jest.setTimeout(15_000);

test("a reply cut short after its headers (a connection dropped silently mid-reply) fails the payment read with the SDK's TimeoutError, instead of holding the function", async () => {
  const { idempotencyTable, paymentsTable } = tables();
  const handler = createPaymentHandler({ idempotencyTable, paymentsTable, logger: new QuietLogger() });
  const event = toHttpApiEvent({ method: 'GET', url: `/payments/pay_${'a'.repeat(22)}` })!;
  proxy.cutRepliesShort();
  // A minute left: the Lambda deadline, which middy's own timeout answers, is not what ends the request.
  const error = await thrown(handler(event, lambdaContext('payments-api', Date.now, 60_000)));
  expect({ name: error.name, message: error.message }).toEqual({ name: 'TimeoutError', message: expect.stringMatching(/socket timed out/i) });
});
