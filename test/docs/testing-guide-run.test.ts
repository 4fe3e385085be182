/**
 * The DynamoDB Local set-up of docs/testing.md runs as written: it starts its own DynamoDB Local
 * on a free port with the `idempotency` table, publishes the endpoint, and its stop function ends it.
 * And the guide's handler under test, given no clock, follows Jest's fake timers as the guide says.
 */
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, expect, jest, test } from '@jest/globals';
import type { Context } from 'aws-lambda';
import { DynamoDBStore, type IdempotencyStore, makeIdempotent } from '../../lib/index.js';
import { InMemoryStore, lambdaContext } from '../../lib/testing/index.js';
import { SnippetRunner } from './run-snippet.js';
import { readDocument, snippetUnder } from './snippets.js';

const testingGuide = readDocument('docs/testing.md');
const runner = new SnippetRunner();
afterAll(() => runner.dispose());

test("the guide's globalSetup starts DynamoDB Local with the table DynamoDBStore expects, and its stop function stops it", async () => {
  const setup = await runner.run(testingGuide, snippetUnder(testingGuide, 'Against DynamoDB Local'));
  const suiteEndpoint = process.env.DYNAMODB_ENDPOINT; // this run's own DynamoDB Local, which the snippet's replaces
  const stop = await (setup.default as () => Promise<() => void>)();
  const endpoint = process.env.DYNAMODB_ENDPOINT!;
  process.env.DYNAMODB_ENDPOINT = suiteEndpoint;
  const client = new DynamoDBClient({ endpoint, region: 'local', credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, maxAttempts: 1 });
  try {
    expect(endpoint).not.toBe(suiteEndpoint);
    const store = new DynamoDBStore({ tableName: 'idempotency', client });
    let runs = 0;
    const charge = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store, name: 'charge' });
    expect([await charge('p-1'), await charge('p-1')]).toEqual([
      { id: 'p-1', run: 1 },
      { id: 'p-1', run: 1 },
    ]);
  } finally {
    stop();
  }
  // Stopped: the port no longer answers (the first attempt may still meet the closing server).
  let answered = true;
  for (let attempt = 0; attempt < 50 && answered; attempt++) {
    answered = await client.send(new ListTablesCommand({})).then(
      () => true,
      () => false,
    );
    if (answered) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  client.destroy();
  expect(answered).toBe(false);
}, 90_000); // a JVM started beside the suite's own servers: on a loaded 2-core machine it may take longer than the 30 s default

test("the guide's createHandler given no `now`, built before Jest's fake timers are installed (as a handler module is loaded first), follows them: a duplicate past the retention runs again", async () => {
  type ChargeEvent = { paymentId: string; amount: number };
  const { createHandler } = (await runner.run(testingGuide, snippetUnder(testingGuide, 'The handler under test'))) as {
    createHandler: (dependencies: {
      store: IdempotencyStore;
      charge: (event: ChargeEvent) => Promise<string>;
    }) => (event: ChargeEvent, context: Context) => Promise<unknown>;
  };
  let charges = 0;
  const handler = createHandler({ store: new InMemoryStore(), charge: async () => `receipt-${++charges}` });
  jest.useFakeTimers({ now: Date.now() });
  try {
    const event = { paymentId: 'p-1', amount: 100 };
    expect(await handler(event, lambdaContext({ functionName: 'charge' }))).toEqual({ receipt: 'receipt-1' });
    expect(await handler(event, lambdaContext({ functionName: 'charge' }))).toEqual({ receipt: 'receipt-1' });
    jest.setSystemTime(Date.now() + 24 * 3_600_000 + 1_000); // past the default retention of 24 hours
    expect(await handler(event, lambdaContext({ functionName: 'charge' }))).toEqual({ receipt: 'receipt-2' });
  } finally {
    jest.useRealTimers();
  }
});
