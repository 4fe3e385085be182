/**
 * A composite key a selector builds from parts of the event (`{ tenant, orderId }`,
 * `[customerId, requestId]`) with a part the event lacks. Hashed as JSON writes it, that part would
 * vanish (`{"tenant":"t"}`) or become null (`["c",null]`): every such request would share the
 * record of the parts found, and a second, different request would be answered with the first
 * one's response and never run. Such a key is KEY_MISSING instead; an explicit `null` is a value.
 * Real middy, DynamoDB Local.
 */
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { idempotency, idempotentBatch, makeIdempotent } from '../../lib/index.js';
import { sqsEvent, sqsRecord } from '../support/batch-events.js';
import { useFreshTable } from '../support/dynamodb.js';
import { scanRecords } from '../support/invariants.js';
import { lambdaContext } from '../support/lambda.js';
import { rejection } from '../support/rejections.js';

const { client, tableName, store } = useFreshTable({ prefix: 'partial-keys' });

interface Order {
  readonly tenant: string;
  readonly orderId?: string;
  readonly amount: number;
}

test('middleware: a request whose selected key lacks a part is KEY_MISSING and never answered with another request’s response', async () => {
  let runs = 0;
  const handler = middy(async (order: Order) => ({ amount: order.amount, run: ++runs })).use(
    idempotency<Order>({ store, key: (order) => ({ tenant: order.tenant, orderId: order.orderId }) }),
  );
  const context = lambdaContext('partial-middleware') as Context;
  expect(await handler({ tenant: 't', orderId: 'o-1', amount: 1 }, context)).toEqual({ amount: 1, run: 1 });
  for (const amount of [2, 3]) {
    const error = await rejection(handler({ tenant: 't', amount }, context));
    expect(error.code).toBe('KEY_MISSING');
    expect(error.message).toContain('member `orderId` is undefined');
    expect(error.message).toContain('Select null explicitly');
  }
  expect(runs).toBe(1);
  expect(await scanRecords(client, tableName, 'partial-middleware#')).toHaveLength(1);
});

test('makeIdempotent: an array key with an element undefined is KEY_MISSING; one the selector makes null explicitly is a key', async () => {
  let runs = 0;
  const charge = async (request: { customerId: string; requestId?: string; amount: number }) => ({ amount: request.amount, run: ++runs });
  const strict = makeIdempotent(charge, { store, name: 'partial-wrapper', key: (request) => [request.customerId, request.requestId] });
  for (const amount of [10, 20]) {
    const error = await rejection(strict({ customerId: 'c', amount }));
    expect(error.code).toBe('KEY_MISSING');
    expect(error.message).toContain('index 1 is undefined');
  }
  expect(runs).toBe(0);
  expect(await scanRecords(client, tableName, 'partial-wrapper#')).toHaveLength(0);
  // The selector says that requests without an id are one request: the choice is explicit.
  const lenient = makeIdempotent(charge, { store, name: 'partial-null', key: (request) => [request.customerId, request.requestId ?? null] });
  expect(await lenient({ customerId: 'c', amount: 10 })).toEqual({ amount: 10, run: 1 });
  expect(await lenient({ customerId: 'c', amount: 20 })).toEqual({ amount: 10, run: 1 });
  // Without a selector the whole input is the key, as before: a member it lacks is no part of it.
  const whole = makeIdempotent(charge, { store, name: 'partial-whole' });
  expect(await whole({ customerId: 'c', requestId: undefined, amount: 30 })).toEqual({ amount: 30, run: 2 });
  expect(await whole({ customerId: 'c', amount: 30 })).toEqual({ amount: 30, run: 2 });
});

test('idempotentBatch: messages whose selected key lacks a part are poison, reported failed and never run, on every delivery', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = { error: (line: string) => void lines.push(JSON.parse(line)), warn() {} };
  const shipped: number[] = [];
  const handler = idempotentBatch(async (order: Order) => void shipped.push(order.amount), {
    store,
    name: 'partial-batch',
    logger,
    key: (order) => [order.tenant, order.orderId],
  });
  const complete = sqsRecord(JSON.stringify({ tenant: 't', orderId: 'o-1', amount: 1 }));
  const lacking = [2, 3].map((amount) => sqsRecord(JSON.stringify({ tenant: 't', amount })));
  const context = lambdaContext('partial-batch', 60_000) as Context;
  for (let delivery = 0; delivery < 2; delivery++) {
    const response = await handler(sqsEvent([complete, ...lacking]), context);
    expect(response.batchItemFailures).toEqual(lacking.map((record) => ({ itemIdentifier: record.messageId })));
  }
  expect(shipped).toEqual([1]);
  expect(
    lines.filter((line) => line.message === 'lambda-idempotency: poison record reported as failed').map((line) => [line.itemIdentifier, line.reason]),
  ).toEqual([...lacking, ...lacking].map((record) => [record.messageId, expect.stringMatching(/^KEY_MISSING: .* whose index 1 is undefined/)]));
  expect(await scanRecords(client, tableName, 'partial-batch#')).toHaveLength(1);
});
