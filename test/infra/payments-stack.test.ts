import { App, type CfnElement, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { paymentsTableSchema } from '../../infra/payments-schema.js';
import { PaymentsStack } from '../../infra/payments-stack.js';
import { idempotencyTableSchema } from '../../lib/table-schema.js';

let stack: PaymentsStack;
let template: Template;
const id = (construct: IConstruct): string => Stack.of(construct).getLogicalId(construct.node.defaultChild as CfnElement);

beforeAll(() => {
  // Skip esbuild here: these tests read the template; test/integration/bundles.test.ts runs the bundles.
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  stack = new PaymentsStack(app, 'PaymentsDemo');
  template = Template.fromStack(stack);
});

type Statement = { Action: string | string[]; Resource: unknown; Effect: string };
function statements(): Statement[] {
  return Object.values(template.findResources('AWS::IAM::Policy')).flatMap(
    (policy) => (policy as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument.Statement,
  );
}
const actionsOf = (s: Statement): string[] => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const onTable = (s: Statement, logicalId: string): boolean => JSON.stringify(s.Resource).includes(`"${logicalId}"`);

describe('tables', () => {
  test('the idempotency table has the key and TTL of the library schema, on-demand, with PITR and an AWS owned key, deleted with the stack', () => {
    expect(
      template.findResources('AWS::DynamoDB::Table', {
        Properties: {
          KeySchema: [{ AttributeName: idempotencyTableSchema.partitionKey.name, KeyType: 'HASH' }],
          AttributeDefinitions: [{ AttributeName: idempotencyTableSchema.partitionKey.name, AttributeType: 'S' }],
          TimeToLiveSpecification: { AttributeName: idempotencyTableSchema.timeToLiveAttribute, Enabled: true },
          BillingMode: 'PAY_PER_REQUEST',
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          SSESpecification: { SSEEnabled: false },
          // `cdk destroy` deletes the demo's table: a protected table would make it fail.
          DeletionProtectionEnabled: false,
        },
        DeletionPolicy: 'Delete',
      }),
    ).toHaveProperty([id(stack.idempotencyTable.table)]);
  });

  test('the payments table is derived from the shared payments schema', () => {
    const table = template.toJSON().Resources[id(stack.paymentsTable)];
    expect(table.Properties).toMatchObject({
      KeySchema: [{ AttributeName: paymentsTableSchema.partitionKey.name, KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: paymentsTableSchema.partitionKey.name, AttributeType: paymentsTableSchema.partitionKey.type }],
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
  });
});

describe('functions', () => {
  test.each(['paymentFunction', 'consumerFunction'] as const)('%s runs Node.js 24 on arm64 with an ESM bundle and the table environment', (name) => {
    const fn = template.toJSON().Resources[id(stack[name])];
    expect(fn.Properties).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      Timeout: 10,
      Environment: {
        Variables: {
          IDEMPOTENCY_TABLE: { Ref: id(stack.idempotencyTable.table) },
          IDEMPOTENCY_EXPIRES_AFTER_SECONDS: '86400',
          PAYMENTS_TABLE: { Ref: id(stack.paymentsTable) },
        },
      },
    });
  });
});

test('each function gets the environment its handler reads, and no other', () => {
  // Less the configuration of the Parameters and Secrets extension, which CDK sets with its layer.
  const variables = (fn: typeof stack.paymentFunction) =>
    Object.keys(template.toJSON().Resources[id(fn)].Properties.Environment.Variables)
      .filter((name) => !/^(PARAMETERS_SECRETS_EXTENSION|SECRETS_MANAGER|SSM_PARAMETER_STORE)_/.test(name))
      .sort();
  const handlerReads = ['IDEMPOTENCY_EXPIRES_AFTER_SECONDS', 'IDEMPOTENCY_TABLE', 'PAYMENTS_TABLE'];
  expect(variables(stack.paymentFunction)).toEqual([...handlerReads, 'NODE_OPTIONS'].sort());
  expect(variables(stack.consumerFunction)).toEqual([...handlerReads, 'NODE_OPTIONS'].sort());
  expect(variables(stack.keyFunction)).toEqual(['IDEMPOTENCY_KEY_SECRET_ID', 'NODE_OPTIONS']);
});

describe('least privilege', () => {
  test('no statement grants dynamodb:*, Scan, Query or batch and PartiQL access', () => {
    const all = statements();
    expect(all.length).toBeGreaterThan(0);
    for (const s of all) {
      for (const action of actionsOf(s)) {
        expect(action).not.toMatch(/^dynamodb:\*$|^\*$/);
        expect(action).not.toMatch(/^dynamodb:(Scan|Query|BatchGetItem|BatchWriteItem|PartiQL.*)$/);
      }
    }
  });

  test('each function may put, update and delete idempotency records, nothing more', () => {
    const table = id(stack.idempotencyTable.table);
    const grants = statements().filter((s) => onTable(s, table));
    expect(grants).toHaveLength(2);
    for (const s of grants) expect(actionsOf(s).sort()).toEqual(['dynamodb:DeleteItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']);
  });

  test.each(['paymentFunction', 'consumerFunction', 'keyFunction'] as const)('%s may write to its own log group alone, through no managed policy', (name) => {
    const fn = stack[name];
    const role = template.toJSON().Resources[id(fn.role!)];
    // AWSLambdaBasicExecutionRole would let it create and write every log group of the account.
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    const logs = statements().filter((s) => actionsOf(s).some((action) => action.startsWith('logs:')));
    const own = logs.filter((s) => JSON.stringify(s.Resource).includes(`"${id(fn.logGroup as unknown as IConstruct)}"`));
    expect(own).toHaveLength(1);
    expect(actionsOf(own[0]!).sort()).toEqual(['logs:CreateLogStream', 'logs:PutLogEvents']);
    for (const s of logs) expect(JSON.stringify(s.Resource)).not.toContain('"*"');
  });

  test('the payments table gets only the conditional writes the service makes, and GetItem for GET /payments/{id} and the payment a charge may have made', () => {
    const table = id(stack.paymentsTable);
    const policies = template.findResources('AWS::IAM::Policy');
    const forRole = (fn: typeof stack.paymentFunction) =>
      Object.values(policies)
        .filter((p) => JSON.stringify(p.Properties.Roles).includes(id(fn.role!)))
        .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[])
        .filter((s) => onTable(s, table))
        .flatMap(actionsOf)
        .sort();
    expect(forRole(stack.paymentFunction)).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']);
    expect(forRole(stack.consumerFunction)).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem']);
  });
});

describe('queue', () => {
  test('the consumer reads the order queue and reports batch item failures', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: id(stack.consumerFunction) },
      EventSourceArn: { 'Fn::GetAtt': [id(stack.queue), 'Arn'] },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BatchSize: 10,
    });
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
  });

  test('the queue has a dead-letter queue and a visibility timeout of 6× the function timeout plus the batching window', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: 61,
      RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [id(stack.deadLetterQueue), 'Arn'] }, maxReceiveCount: 5 },
    });
    expect(template.toJSON().Resources[id(stack.deadLetterQueue)].Properties.MessageRetentionPeriod).toBe(14 * 86_400);
  });
  test('the dead-letter alarm does not tell the operator that its orders were not charged: a charge made but never answered ends there too', () => {
    // test/integration/demo-consumer.test.ts: "an order whose charge is made but never answered fails every receive …"
    const alarm = template.toJSON().Resources[id(stack.deadLetterAlarm)];
    const description: string = alarm.Properties.AlarmDescription;
    expect(description).not.toMatch(/without being charged|not charged|never charged/);
    expect(description).toMatch(/may be charged/);
    expect(description.length).toBeLessThanOrEqual(1024);
  });
});

describe('api', () => {
  test.each([
    ['POST /payments', 'paymentFunction'],
    ['GET /payments/{id}', 'paymentFunction'],
    ['POST /payments/{id}/refunds', 'paymentFunction'],
    ['POST /idempotency-keys', 'keyFunction'],
  ] as const)('routes %s to the %s', (routeKey, name) => {
    const routes = Object.values(template.findResources('AWS::ApiGatewayV2::Route', { Properties: { RouteKey: routeKey } }));
    expect(routes).toHaveLength(1);
    // The integration this route targets (`integrations/<id>`), not any integration of the API.
    const target = JSON.stringify(routes[0]!.Properties.Target);
    const targeted = Object.entries(template.findResources('AWS::ApiGatewayV2::Integration')).filter(([logicalId]) => target.includes(`"${logicalId}"`));
    expect(targeted).toHaveLength(1);
    expect(targeted[0]![1].Properties.IntegrationUri).toEqual({ 'Fn::GetAtt': [id(stack[name]), 'Arn'] });
  });
  test('the API has those four routes and no other', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Route', 4);
  });
});

test('each function logs to a log group of its own, kept a week', () => {
  for (const fn of [stack.paymentFunction, stack.consumerFunction, stack.keyFunction]) {
    const logGroup = id(fn.logGroup as unknown as IConstruct);
    expect(template.toJSON().Resources[logGroup].Properties).toEqual({ RetentionInDays: 7 });
    expect(template.toJSON().Resources[id(fn)].Properties.LoggingConfig).toEqual({ LogGroup: { Ref: logGroup } });
  }
  template.resourceCountIs('AWS::Logs::LogGroup', 3);
});

test('`cdk destroy` removes everything: no resource is retained', () => {
  const kept = Object.entries(template.toJSON().Resources as Record<string, { DeletionPolicy?: string; UpdateReplacePolicy?: string }>)
    .filter(([, r]) => (r.DeletionPolicy ?? 'Delete') !== 'Delete' || (r.UpdateReplacePolicy ?? 'Delete') !== 'Delete')
    .map(([logicalId]) => logicalId);
  expect(kept).toEqual([]);
});

test('outputs the API URL, the queue URL and both table names', () => {
  template.hasOutput('ApiUrl', { Value: { 'Fn::GetAtt': [id(stack.api), 'ApiEndpoint'] } });
  template.hasOutput('QueueUrl', { Value: { Ref: id(stack.queue) } });
  template.hasOutput('IdempotencyTableName', { Value: { Ref: id(stack.idempotencyTable.table) } });
  template.hasOutput('PaymentsTableName', { Value: { Ref: id(stack.paymentsTable) } });
});

test('the demo stack passes the synth-time idempotency checks', () => {
  const annotations = Annotations.fromStack(stack);
  annotations.hasNoError('*', Match.anyValue());
  annotations.hasNoWarning('*', Match.stringLikeRegexp('lambda-idempotency'));
});
