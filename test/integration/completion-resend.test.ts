/**
 * A completion the SDK gave up on (its attempts spent on throttles, 500s, lost connections) is sent
 * again by `DynamoDBStore`, briefly, while the call has time: the function has run, and a record
 * left INPROGRESS would let a duplicate after its lease run it again. Against DynamoDB Local behind
 * the fault layer, so that the SDK's own retry and error classification meet each fault.
 */
import type { Context } from 'aws-lambda';
import { makeIdempotent } from '../../lib/index.js';
import { lambdaContext } from '../../lib/testing/index.js';
import { endpoint, readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { type Fault, faultyClient } from '../support/faults.js';

const { client, faults } = faultyClient(endpoint());
const { client: inspect, tableName, store } = useFreshTable({ storeClient: client });
afterEach(() => {
  faults.clear();
});
afterAll(() => client.destroy());

/** The completions sent (SDK invocations, each of its own attempts). */
const sends = (): number => new Set(faults.attempts.filter((a) => a.operation === 'UpdateItem').map((a) => a.invocation)).size;

/** A function counting its runs, with the warnings and events of its calls. */
function charge(name: string) {
  let runs = 0;
  const warnings: string[] = [];
  const events: string[] = [];
  const fn = makeIdempotent(async (id: string, _context?: Context) => ({ id, run: ++runs }), {
    store,
    name,
    logger: { warn: (line) => void warnings.push(line) },
    observability: (event: string) => void events.push(event),
  });
  return { fn, runs: () => runs, warnings, events, item: () => readItem(inspect, tableName, recordId(name, 'k')) };
}

const TRANSIENT: ReadonlyArray<[string, Fault]> = [
  ['throttled (ProvisionedThroughputExceededException)', { kind: 'throttle', exception: 'ProvisionedThroughputExceededException' }],
  ['throttled (ThrottlingException)', { kind: 'throttle', exception: 'ThrottlingException' }],
  ['throttled (RequestLimitExceeded)', { kind: 'throttle', exception: 'RequestLimitExceeded' }],
  ['a 500 before the write', { kind: 'server-error' }],
  ['a 500 after the write', { kind: 'server-error', applied: true }],
  ['a connection reset', { kind: 'reset' }],
  ['a response lost after the write (TimeoutError)', { kind: 'drop-response', error: 'TimeoutError' }],
];

let scenarios = 0;

test.each(TRANSIENT)(
  'a completion the SDK gave up on twice, %s, is sent again and taken: the record completes, a duplicate replays, the function ran once',
  async (_what, fault) => {
    const { fn, runs, warnings, events, item } = charge(`resend-${++scenarios}`);
    faults.schedule({ operations: ['UpdateItem'], fault, requests: 2, attempts: 'all' });
    expect(await fn('k')).toEqual({ id: 'k', run: 1 });
    // Two sends of three attempts each, every one faulted; the third send went through.
    expect(faults.injected).toHaveLength(6);
    expect(faults.attemptsOf('UpdateItem')).toBe(7);
    expect(sends()).toBe(3);
    expect(warnings).toEqual([]);
    expect(events).not.toContain('bookkeepingFailure');
    expect(await item()).toMatchObject({ status: { S: 'COMPLETED' }, response: { S: '{"id":"k","run":1}' } });
    expect(await fn('k')).toEqual({ id: 'k', run: 1 });
    expect(runs()).toBe(1);
  },
);

test('a completion refused for a cause no resend changes (AccessDeniedException) is sent once: one warning, one BookkeepingFailures event', async () => {
  const { fn, warnings, events, item } = charge('resend-refused');
  faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'refuse' }, requests: 1_000, attempts: 'all' });
  expect(await fn('k')).toEqual({ id: 'k', run: 1 });
  expect(faults.attemptsOf('UpdateItem')).toBe(1);
  expect(warnings).toEqual([expect.stringMatching(/could not mark the record COMPLETED.*"error":"AccessDeniedException/)]);
  expect(events.filter((event) => event === 'bookkeepingFailure')).toHaveLength(1);
  expect(await item()).toMatchObject({ status: { S: 'INPROGRESS' } });
});

test('a completion throttled on every send is sent again only until the call must answer, before the Lambda deadline: one warning, one BookkeepingFailures event, nothing sent after the answer', async () => {
  const { fn, runs, warnings, events, item } = charge('resend-deadline');
  faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'throttle' }, requests: 1_000, attempts: 'all' });
  const REMAINING = 600;
  const started = performance.now();
  // A context whose time runs down with real time, as Lambda's does.
  expect(await fn('k', lambdaContext({ remainingMillis: REMAINING }))).toEqual({ id: 'k', run: 1 });
  const answeredAfter = performance.now() - started;
  const sent = faults.attemptsOf('UpdateItem');
  // Sent again (after pauses of 50, 100, 200 ms: four sends, fewer on a slow machine), each with
  // the SDK's three attempts, then no more: the next pause would end past the call's answer.
  expect(sends()).toBeGreaterThanOrEqual(2);
  expect(sends()).toBeLessThanOrEqual(4);
  expect(sent).toBe(sends() * 3);
  expect(answeredAfter).toBeLessThan(REMAINING);
  expect(warnings).toEqual([expect.stringMatching(/could not mark the record COMPLETED.*"error":"ProvisionedThroughputExceededException/)]);
  expect(events.filter((event) => event === 'bookkeepingFailure')).toHaveLength(1);
  await new Promise((resolve) => setTimeout(resolve, REMAINING));
  expect(faults.attemptsOf('UpdateItem')).toBe(sent);
  expect(await item()).toMatchObject({ status: { S: 'INPROGRESS' } });
  expect(runs()).toBe(1);
});
