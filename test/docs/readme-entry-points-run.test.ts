/**
 * The README's snippets of the entry points run as written, on `InMemoryStore`: the HTTP handler
 * behind `httpIdempotency`, the SQS batch handler of `idempotentBatch`, and the durable handler
 * (AWS's local durable runner). Each does what the lines under it say. The snippets are extracted
 * from the Markdown (run-snippet.ts); the test gives only the user code they leave out.
 */

import type { DurableLambdaHandler } from '@aws/durable-execution-sdk-js';
import { afterAll, describe, expect, jest, test } from '@jest/globals';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { HttpEvent, HttpResult } from '../../lib/index.js';
import { InMemoryStore, lambdaContext } from '../../lib/testing/index.js';
import { sqsEvent, sqsRecord } from '../support/batch-events.js';
import { runExecution, useDurableRunner } from '../support/durable.js';
import { paymentRequest } from '../support/payment-request.js';
import { SnippetRunner } from './run-snippet.js';
import { readDocument, snippetUnder } from './snippets.js';

const readme = readDocument('README.md');
const runner = new SnippetRunner();
afterAll(() => runner.dispose());
useDurableRunner();

type Handler<TEvent, TResult> = (event: TEvent, context: Context) => Promise<TResult>;

test('README HTTP APIs: a retried POST replays the first response marked Idempotent-Replayed; another body under the key is a 422, no key a 400', async () => {
  const createPayment = jest.fn(async () => ({ statusCode: 201, body: JSON.stringify({ paymentId: `pay-${createPayment.mock.calls.length}` }) }));
  const snippet = await runner.run(readme, snippetUnder(readme, 'HTTP APIs: Idempotency-Key'), { store: new InMemoryStore(), createPayment });
  const handler = snippet.handler as Handler<HttpEvent, HttpResult>;
  const context = () => lambdaContext({ functionName: 'payments' });

  const first = (await handler(paymentRequest('order-42'), context())) as { statusCode: number; body: string; headers?: Record<string, unknown> };
  expect(first).toMatchObject({ statusCode: 201, body: '{"paymentId":"pay-1"}' });
  expect(first.headers ?? {}).not.toHaveProperty('Idempotent-Replayed');
  expect(await handler(paymentRequest('order-42'), context())).toMatchObject({
    statusCode: 201,
    body: '{"paymentId":"pay-1"}',
    headers: { 'Idempotent-Replayed': 'true' },
  });

  const otherBody = { ...paymentRequest('order-42'), body: '{"amount":1300,"currency":"EUR"}' };
  expect(await handler(otherBody, context())).toMatchObject({ statusCode: 422 });
  const { 'idempotency-key': _, ...withoutKey } = paymentRequest('order-43').headers;
  expect(await handler({ ...paymentRequest('order-43'), headers: withoutKey }, context())).toMatchObject({ statusCode: 400 });
  expect(createPayment).toHaveBeenCalledTimes(1);
});

test('README SQS: a message per order ships once, a duplicate and a redelivery replay, a poison message is reported failed with a log line', async () => {
  const ship = jest.fn(async (order: { orderId: string }) => ({ trackingId: `t-${order.orderId}-${ship.mock.calls.length}` }));
  const snippet = await runner.run(readme, snippetUnder(readme, 'SQS, Kinesis and DynamoDB Streams'), { store: new InMemoryStore(), ship });
  const handler = snippet.handler as Handler<SQSEvent, SQSBatchResponse>;
  const context = () => lambdaContext({ functionName: 'shipping' });
  const warnings: unknown[] = [];
  const warn = jest.spyOn(console, 'warn').mockImplementation((line) => void warnings.push(line));
  const error = jest.spyOn(console, 'error').mockImplementation((line) => void warnings.push(line));
  try {
    const o1 = sqsRecord({ orderId: 'o-1', amount: 10 });
    const poison = sqsRecord('{not json');
    const batch = [o1, sqsRecord({ orderId: 'o-1', amount: 10, sentAt: 2 }), sqsRecord({ orderId: 'o-2', amount: 20 }), poison];
    expect(await handler(sqsEvent(batch), context())).toEqual({ batchItemFailures: [{ itemIdentifier: poison.messageId }] });
    // Keyed by orderId: the second message of o-1 (other content) replays, o-2 runs.
    expect(ship.mock.calls.map(([order]) => order.orderId).sort()).toEqual(['o-1', 'o-2']);
    expect(warnings.map((line) => JSON.parse(String(line)))).toEqual([
      expect.objectContaining({ itemIdentifier: poison.messageId, reason: 'unparseable payload' }),
    ]);

    expect(await handler(sqsEvent([o1]), context())).toEqual({ batchItemFailures: [] });
    expect(ship).toHaveBeenCalledTimes(2);
  } finally {
    warn.mockRestore();
    error.mockRestore();
  }
});

describe('README Durable functions', () => {
  test('an execution charges and ships once across its wait; another execution with the key gets the stored result without running a step', async () => {
    const chargeCard = jest.fn(async (order: { orderId: string }) => ({ chargeId: `ch-${order.orderId}-${chargeCard.mock.calls.length}` }));
    const ship = jest.fn(async (_order: unknown, charge: { chargeId: string }) => ({ trackingId: `t-${charge.chargeId}` }));
    const snippet = await runner.run(readme, snippetUnder(readme, 'Durable functions'), { store: new InMemoryStore(), chargeCard, ship });
    let invocations = 0;
    const handler: DurableLambdaHandler = (event, context) => (invocations++, (snippet.handler as DurableLambdaHandler)(event, context));

    const first = await runExecution<{ trackingId: string }>(handler, { orderId: 'o-1' });
    expect(first.getStatus()).toBe('SUCCEEDED');
    expect(first.getResult()).toEqual({ trackingId: 't-ch-o-1-1' });
    // The wait suspended the execution and a replay resumed it: the steps that ran were not run again.
    expect(invocations).toBe(2);
    expect([chargeCard.mock.calls.length, ship.mock.calls.length]).toEqual([1, 1]);

    invocations = 0;
    const duplicate = await runExecution<{ trackingId: string }>(handler, { orderId: 'o-1' });
    expect(duplicate.getStatus()).toBe('SUCCEEDED');
    expect(duplicate.getResult()).toEqual({ trackingId: 't-ch-o-1-1' });
    expect(invocations).toBe(1);
    expect([chargeCard.mock.calls.length, ship.mock.calls.length]).toEqual([1, 1]);
  });
});
