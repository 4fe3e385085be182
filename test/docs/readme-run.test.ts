/**
 * The documentation's examples run as written: the Quickstart and the exactly-once `refund` against
 * DynamoDB Local, the CDK snippets synthesized in a stack, and the Jest example of docs/testing.md
 * (InMemoryStore) as tests of this file. The snippets are extracted from the Markdown and imported
 * (run-snippet.ts), never copied here; the test gives only the user code they leave out.
 */

import { randomUUID } from 'node:crypto';
import { CreateTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type { CfnRole } from 'aws-cdk-lib/aws-iam';
import { type CfnFunction, Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import type { Context } from 'aws-lambda';
import { DynamoDBStore } from '../../lib/index.js';
import { lambdaContext } from '../../lib/testing/index.js';
import { dropTable, endpoint, freshTable, readItem, recordId, testClient } from '../support/dynamodb.js';
import { SnippetRunner } from './run-snippet.js';
import { readDocument, snippetUnder } from './snippets.js';

const readme = readDocument('README.md');
const testingGuide = readDocument('docs/testing.md');
const operationsGuide = readDocument('docs/operations.md');
const runner = new SnippetRunner();
afterAll(() => runner.dispose());

type Handler<TEvent, TResult> = (event: TEvent, context?: Context) => Promise<TResult>;

/** Sets environment variables until the returned function restores them. */
function setEnvironment(values: Record<string, string>): () => void {
  const before = Object.fromEntries(Object.keys(values).map((name) => [name, process.env[name]]));
  Object.assign(process.env, values);
  return () => {
    for (const [name, value] of Object.entries(before)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

describe('against DynamoDB Local', () => {
  let client: DynamoDBClient;
  const tables: string[] = [];
  beforeAll(() => {
    client = testClient();
  });
  afterAll(async () => {
    for (const table of tables) await dropTable(client, table);
    client.destroy();
  });

  async function table(prefix: string): Promise<string> {
    const name = `${prefix}-${randomUUID()}`;
    await client.send(
      new CreateTableCommand({
        TableName: name,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      }),
    );
    tables.push(name);
    return name;
  }

  test('README Quickstart: a duplicate event and a duplicate call each charge once', async () => {
    const tableName = await freshTable(client);
    tables.push(tableName);
    const charge = jest.fn(async (event: { paymentId: string }) => ({ receipt: `r-${event.paymentId}-${charge.mock.calls.length}` }));
    // `new DynamoDBStore()` finds its table and DynamoDB in the environment, as in a deployed function.
    const restore = setEnvironment({
      IDEMPOTENCY_TABLE: tableName,
      AWS_ENDPOINT_URL_DYNAMODB: endpoint(),
      AWS_REGION: 'local',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
    });
    try {
      const quickstart = await runner.run(readme, snippetUnder(readme, 'Quickstart'), { charge });
      const handler = quickstart.handler as Handler<object, unknown>;
      const chargeOnce = quickstart.chargeOnce as Handler<object, unknown>;
      const event = { paymentId: 'p-1', amount: 100 };

      const first = await handler(event, lambdaContext({ functionName: 'payments' }));
      expect(await handler({ ...event }, lambdaContext({ functionName: 'payments' }))).toEqual(first);
      expect(charge).toHaveBeenCalledTimes(1);
      // Keyed by the paymentId, as the snippet says, not by the whole event: a duplicate whose other
      // members differ (a resend stamped with its own time) replays too, and another payment runs.
      expect(await handler({ ...event, sentAt: '2026-01-01T00:00:01Z' }, lambdaContext({ functionName: 'payments' }))).toEqual(first);
      expect(charge).toHaveBeenCalledTimes(1);
      expect(await handler({ ...event, paymentId: 'p-2' }, lambdaContext({ functionName: 'payments' }))).not.toEqual(first);
      expect(charge).toHaveBeenCalledTimes(2);
      // The record is the function's (its name by default) under that key, completed with the response.
      expect(await readItem(client, tableName, recordId('payments', 'p-1'))).toMatchObject({ status: { S: 'COMPLETED' } });

      const once = await chargeOnce({ ...event });
      expect(await chargeOnce({ ...event, sentAt: '2026-01-01T00:00:01Z' })).toEqual(once);
      expect(charge).toHaveBeenCalledTimes(3); // another name: its own record
      expect(await readItem(client, tableName, recordId('charge', 'p-1'))).toMatchObject({ status: { S: 'COMPLETED' } });
    } finally {
      restore();
    }
  });

  test('README Exactly-once effects: a duplicate refund writes nothing, and a second refund of the payment is refused', async () => {
    const store = new DynamoDBStore({ tableName: await freshTable(client), client });
    const documents = DynamoDBDocumentClient.from(client);
    const payments = await table('payments');
    const refunds = await table('refunds');
    await documents.send(new PutCommand({ TableName: payments, Item: { id: 'p-1', status: 'PAID', amount: 100 } }));
    const restore = setEnvironment({ PAYMENTS_TABLE: payments, REFUNDS_TABLE: refunds });
    let refund: Handler<object, unknown>;
    try {
      refund = (await runner.run(readme, snippetUnder(readme, 'Exactly-once effects'), { store })).refund as Handler<object, unknown>;
    } finally {
      restore();
    }

    const request = { refundId: 'rf-1', paymentId: 'p-1' };
    expect(await refund(request)).toEqual({ refunded: 'p-1' });
    expect(await refund({ ...request })).toEqual({ refunded: 'p-1' });
    const written = await documents.send(new ScanCommand({ TableName: refunds, ConsistentRead: true }));
    expect(written.Items).toEqual([{ id: expect.any(String), paymentId: 'p-1' }]);
    const payment = await documents.send(new GetCommand({ TableName: payments, Key: { id: 'p-1' }, ConsistentRead: true }));
    expect(payment.Item).toMatchObject({ status: 'REFUNDED' });

    // Another refund of the same payment: the transition's condition fails, nothing is written.
    await expect(refund({ refundId: 'rf-2', paymentId: 'p-1' })).rejects.toMatchObject({
      code: 'TRANSACTION_CONDITION_FAILED',
      tableName: payments,
    });
    expect((await documents.send(new ScanCommand({ TableName: refunds, ConsistentRead: true }))).Items).toHaveLength(1);
  });
});

describe('README CDK', () => {
  /** A stack with what the snippets name: two functions, and a queue with or without a dead-letter queue. */
  function stackWith({ deadLetterQueue }: { deadLetterQueue: boolean }) {
    const stack = new Stack(new App(), 'Payments');
    const fn = (id: string, timeout: Duration) =>
      new LambdaFunction(stack, id, {
        runtime: Runtime.NODEJS_22_X,
        handler: 'index.handler',
        code: Code.fromInline('export const handler = async () => {};'),
        timeout,
      });
    const queue = new Queue(stack, 'Orders', {
      visibilityTimeout: Duration.minutes(3),
      ...(deadLetterQueue ? { deadLetterQueue: { queue: new Queue(stack, 'Dead'), maxReceiveCount: 5 } } : {}),
    });
    return { stack, apiFunction: fn('Api', Duration.seconds(10)), consumer: fn('Consumer', Duration.seconds(30)), queue };
  }
  const errors = (stack: Stack) =>
    Annotations.fromStack(stack)
      .findError('*', Match.anyValue())
      .map((found) => found.entry.data);

  test('the table, its functions and the dashboard synthesize without errors', async () => {
    const parts = stackWith({ deadLetterQueue: true });
    const { idempotency } = await runner.run(readme, snippetUnder(readme, 'CDK'), parts);
    await runner.run(operationsGuide, snippetUnder(operationsGuide, 'Dashboard and alarms'), {
      idempotency,
      apiFunction: parts.apiFunction,
      alarmTopic: new Topic(parts.stack, 'Alarms'),
    });
    expect(errors(parts.stack)).toEqual([]);
    // What the snippet's comments say each call does.
    const template = Template.fromStack(parts.stack);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { BatchSize: 10, FunctionResponseTypes: ['ReportBatchItemFailures'] });
    for (const fn of [parts.apiFunction, parts.consumer]) {
      const logicalId = parts.stack.getLogicalId(fn.node.defaultChild as CfnFunction);
      const variables = template.findResources('AWS::Lambda::Function')[logicalId]?.Properties.Environment.Variables;
      expect(Object.keys(variables ?? {}).sort()).toEqual(['IDEMPOTENCY_EXPIRES_AFTER_SECONDS', 'IDEMPOTENCY_TABLE']);
      const role = parts.stack.getLogicalId(fn.role!.node.defaultChild as CfnRole);
      const actions = Object.values(template.findResources('AWS::IAM::Policy'))
        .filter((policy) => JSON.stringify(policy.Properties.Roles) === JSON.stringify([{ Ref: role }]))
        .flatMap((policy) => (policy.Properties.PolicyDocument.Statement as Array<{ Action: string | string[] }>).flatMap((statement) => statement.Action));
      expect(actions).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem']));
    }
  });

  test('the same snippet on a queue that redelivers for longer than the retention reports an error', async () => {
    const parts = stackWith({ deadLetterQueue: false }); // redelivered for the queue's 4 days of retention
    await runner.run(readme, snippetUnder(readme, 'CDK'), parts);
    expect(errors(parts.stack)).toEqual([expect.stringContaining('retentionShorterThanRedelivery')]);
  });
});

// The Jest example of docs/testing.md defines its own tests: importing it registers them in this file.
await runner.run(testingGuide, snippetUnder(testingGuide, 'With Jest'));
