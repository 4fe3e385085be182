/**
 * Lambda durable functions with Powertools' idempotency (`@aws-lambda-powertools/idempotency`
 * 2.35.0) and with this library, side by side on DynamoDB Local through AWS's local runner.
 * Powertools lets a replay of an execution through, but its in-progress lease is one invocation's
 * remaining time: an execution suspended past it no longer holds its key. The Powertools half pins
 * its 2.35.0 behaviour; when an upgrade changes it, it fails, and the migration guide with it.
 */
import { randomUUID } from 'node:crypto';
import { type DurableContext, type DurableLambdaHandler, withDurableExecution } from '@aws/durable-execution-sdk-js';
import { IdempotencyConfig, makeIdempotent as powertoolsIdempotent } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { makeIdempotent } from '../../lib/index.js';
import { advanceRunnerClock, runExecution, startExecution, useDurableRunner } from '../support/durable.js';
import { useFreshTable } from '../support/dynamodb.js';

const { client, tableName, store } = useFreshTable({ prefix: 'durable-differences' });
useDurableRunner();

const CALLBACK = 'approval';
const SIXTEEN_MINUTES = 16 * 60_000;

interface Order {
  readonly orderId: string;
  /** Which execution this is, for the step log; not part of the key. */
  readonly run: string;
  readonly waitForApproval: boolean;
}

/** Two steps, with a `waitForCallback` between them when asked; `steps` logs every step that really runs. */
const orderBody =
  (steps: string[]) =>
  async (order: Order, ctx: DurableContext): Promise<string> => {
    await ctx.step('reserve', async () => void steps.push(`${order.run}:reserve`));
    if (order.waitForApproval) await ctx.waitForCallback(CALLBACK, async () => undefined);
    await ctx.step('charge', async () => void steps.push(`${order.run}:charge`));
    return `${order.run} charged`;
  };

const libraries: ReadonlyArray<[string, (steps: string[]) => DurableLambdaHandler, string[], 'SUCCEEDED' | 'FAILED']> = [
  [
    'Powertools 2.35.0: a second execution takes the key over and charges, and the first charges too when it resumes',
    (steps) =>
      withDurableExecution(
        powertoolsIdempotent(orderBody(steps), {
          persistenceStore: new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client }),
          config: new IdempotencyConfig({ eventKeyJmesPath: 'orderId' }),
          keyPrefix: 'orders-pt',
        }),
      ),
    ['first:reserve', 'second:reserve', 'second:charge', 'first:charge'],
    'SUCCEEDED',
  ],
  [
    'ours: the suspended execution still holds its key; the second is refused and charges nothing',
    (steps) => withDurableExecution(makeIdempotent(orderBody(steps), { store, name: 'orders-ours', key: (order) => order.orderId })),
    ['first:reserve', 'first:charge'],
    'FAILED',
  ],
];

test.each(libraries)(
  'an execution suspended more than 15 minutes, and another with its key meanwhile. %s',
  async (_library, durableHandler, expected, secondStatus) => {
    const steps: string[] = [];
    const handler = durableHandler(steps);
    const orderId = randomUUID();
    const first = startExecution<string>(handler, { orderId, run: 'first', waitForApproval: true }, CALLBACK);
    await first.suspended();
    await advanceRunnerClock(SIXTEEN_MINUTES);
    const second = await runExecution<string>(handler, { orderId, run: 'second', waitForApproval: false });
    await first.resume('approved');
    expect((await first.result).getStatus()).toBe('SUCCEEDED');
    expect(second.getStatus()).toBe(secondStatus);
    expect(steps).toEqual(expected);
  },
);
