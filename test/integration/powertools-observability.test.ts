/**
 * Powertools' Logger and Metrics middlewares `.use()`d before the idempotency middleware, as
 * Powertools users place them. An early answer of a middy middleware (a replay, `httpIdempotency`'s
 * 400) makes middy skip every `after`, theirs included; they leave a cleanup in `request.internal`
 * for that, which the idempotency middlewares run before they answer.
 */

import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { jest } from '@jest/globals';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { httpIdempotency, idempotency } from '../../lib/index.js';
import { InMemoryStore, lambdaContext } from '../../lib/testing/index.js';
import { httpEvent } from '../support/identity-events.js';

interface Payment {
  readonly paymentId: string;
  readonly customer: string;
}

/** What the process wrote to standard output while `run` ran, line by line. */
async function printed(run: () => Promise<unknown>): Promise<string[]> {
  const lines: string[] = [];
  const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    return true;
  });
  try {
    await run();
  } finally {
    write.mockRestore();
  }
  return lines;
}

const context = lambdaContext({ functionName: 'charge' });

test('a replay publishes the metrics stored before it, in its own invocation (logMetrics before idempotency)', async () => {
  const metrics = new Metrics({ namespace: 'Payments', serviceName: 'charge' });
  const runs: string[] = [];
  const handler = middy(async (event: Payment) => (runs.push(event.paymentId), { receipt: event.paymentId }))
    .use(logMetrics(metrics))
    // A middleware counting every request, the duplicates too.
    .use({ before: () => void metrics.addMetric('Requests', MetricUnit.Count, 1) })
    .use(idempotency({ store: new InMemoryStore(), key: (event: Payment) => event.paymentId }));
  const event = { paymentId: 'p-1', customer: 'alice' };
  const first = await printed(() => handler(event, context));
  let replayed: unknown;
  const second = await printed(async () => (replayed = await handler(event, context)));
  expect(replayed).toEqual({ receipt: 'p-1' });
  expect(runs).toEqual(['p-1']);
  for (const lines of [first, second]) {
    expect(lines.filter((line) => line.includes('"Requests"'))).toHaveLength(1);
  }
  expect(metrics.hasStoredMetrics()).toBe(false);
});

test('a replay resets the log keys its request appended (injectLambdaContext with resetKeys before idempotency)', async () => {
  const logger = new Logger({ serviceName: 'charge' });
  const handler = middy(async (event: Payment) => ({ receipt: event.paymentId }))
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use({ before: (request: { event: Payment }) => void logger.appendKeys({ customer: request.event.customer }) })
    .use(idempotency({ store: new InMemoryStore(), key: (event: Payment) => event.paymentId }));
  await printed(() => handler({ paymentId: 'p-1', customer: 'alice' }, context));
  await printed(() => handler({ paymentId: 'p-1', customer: 'alice' }, context));
  // The next line logged outside any request carries no customer of an earlier one.
  const lines = await printed(async () => logger.info('between invocations'));
  expect(lines).toHaveLength(1);
  expect(JSON.parse(lines[0] as string)).not.toHaveProperty('customer');
});

test('httpIdempotency’s own answers (a 400 for a missing key) run the cleanups too', async () => {
  const metrics = new Metrics({ namespace: 'Payments', serviceName: 'charge' });
  const runs: number[] = [];
  const handler = middy(async () => (runs.push(1), { statusCode: 201, body: '{}' }))
    .use(logMetrics(metrics))
    .use({ before: () => void metrics.addMetric('Requests', MetricUnit.Count, 1) })
    .use(httpIdempotency({ store: new InMemoryStore() }));
  const event = httpEvent('http', {}) as APIGatewayProxyEventV2;
  let answer: unknown;
  const lines = await printed(async () => (answer = await handler(event, context)));
  expect(answer).toMatchObject({ statusCode: 400 });
  expect(runs).toEqual([]);
  expect(lines.filter((line) => line.includes('"Requests"'))).toHaveLength(1);
  expect(metrics.hasStoredMetrics()).toBe(false);
});

test('a cleanup that throws (Metrics set to throw on empty metrics, on a replay the handler added none to) is logged, and the replay is answered all the same', async () => {
  const metrics = new Metrics({ namespace: 'Payments', serviceName: 'charge' });
  const warnings: string[] = [];
  const runs: string[] = [];
  const handler = middy(async (event: Payment) => {
    runs.push(event.paymentId);
    metrics.addMetric('Charged', MetricUnit.Count, 1);
    return { receipt: event.paymentId };
  })
    .use(logMetrics(metrics, { throwOnEmptyMetrics: true }))
    .use(idempotency({ store: new InMemoryStore(), key: (event: Payment) => event.paymentId, logger: { warn: (line) => void warnings.push(line) } }));
  const event = { paymentId: 'p-1', customer: 'alice' };
  await printed(() => handler(event, context));
  let replayed: unknown;
  await printed(async () => (replayed = await handler(event, context)));
  expect(replayed).toEqual({ receipt: 'p-1' });
  expect(runs).toEqual(['p-1']);
  expect(warnings).toHaveLength(1);
  expect(JSON.parse(warnings[0]!).message).toMatch(
    /^lambda-idempotency: idempotency\(\): the cleanup `powertools-for-aws\.metrics` left for an early answer threw \(\w+: .+\); the answer was sent all the same$/,
  );
});

test("a Powertools Logger given each line's fields, as docs/observability.md shows, logs the record id as a field of its own, not inside its message", async () => {
  const logger = new Logger({ serviceName: 'charge' });
  // As docs/observability.md hands lines to a logger that takes a message and fields.
  const idempotencyLogger = {
    warn: (line: string) => {
      const { level: _level, message, ...fields } = JSON.parse(line) as { level: string; message: string };
      logger.warn(message, fields);
    },
    error: (line: string) => {
      const { level: _level, message, ...fields } = JSON.parse(line) as { level: string; message: string };
      logger.error(message, fields);
    },
  };
  const store = new InMemoryStore();
  // The completion fails: a warning that names the record.
  store.complete = () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { name: 'TimeoutError' }));
  const handler = middy(async (event: Payment) => ({ receipt: event.paymentId })).use(
    idempotency({ store, key: (event: Payment) => event.paymentId, logger: idempotencyLogger }),
  );
  // Powertools writes warnings to standard error.
  const lines: string[] = [];
  const write = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (lines.push(String(chunk).trim()), true));
  try {
    await handler({ paymentId: 'p-1', customer: 'alice' }, context);
  } finally {
    write.mockRestore();
  }
  expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
    expect.objectContaining({
      level: 'WARN',
      message: expect.stringMatching(/^lambda-idempotency: could not mark the record COMPLETED/),
      service: 'charge',
      recordId: expect.stringMatching(/^charge#[\w-]{43}$/),
      error: 'TimeoutError',
    }),
  ]);
});
