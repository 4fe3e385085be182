/**
 * The DynamoDB Local set-up of docs/testing.md runs as written: it starts its own DynamoDB Local
 * on a free port with the `idempotency` table, publishes the endpoint, and its stop function ends it.
 */
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, expect, test } from '@jest/globals';
import { DynamoDBStore, makeIdempotent } from '../../lib/index.js';
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
