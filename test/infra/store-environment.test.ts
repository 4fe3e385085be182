/**
 * The construct and the runtime agree: what `IdempotencyTable.attachFunction` puts in a function's
 * environment is what `new DynamoDBStore()` reads, so the retention checked at synth time is the
 * retention the handler's records get.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AttributeType, Table } from 'aws-cdk-lib/aws-dynamodb';
import { Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { IDEMPOTENCY_EXPIRES_AFTER_SECONDS_ENV, IDEMPOTENCY_TABLE_ENV, IdempotencyTable } from '../../lib/cdk/index.js';
import { DynamoDBStore } from '../../lib/index.js';

/** The environment the construct gives an attached function, as deployed: a `Ref` to the table resolves to its name, as CloudFormation does. */
function attachedEnvironment(expiresAfter: Duration, ownExpiresAfter?: Duration): Record<string, string> {
  const stack = new Stack(new App(), 'Env');
  const table = new IdempotencyTable(stack, 'Idempotency', { tableName: 'orders-idempotency', expiresAfter });
  table.attachFunction(
    new LambdaFunction(stack, 'Handler', { runtime: Runtime.NODEJS_22_X, handler: 'index.handler', code: Code.fromInline('export const handler = () => {}') }),
    ownExpiresAfter === undefined ? undefined : { expiresAfter: ownExpiresAfter },
  );
  const template = Template.fromStack(stack);
  const [fn] = Object.values(template.findResources('AWS::Lambda::Function'));
  const variables = (fn as { Properties: { Environment: { Variables: Record<string, string | { Ref: string }> } } }).Properties.Environment.Variables;
  const tables = template.findResources('AWS::DynamoDB::Table') as Record<string, { Properties: { TableName: string } }>;
  return Object.fromEntries(
    Object.entries(variables).map(([name, value]) => [name, typeof value === 'string' ? value : tables[value.Ref]!.Properties.TableName]),
  );
}

const saved = { ...process.env };
afterEach(() => {
  for (const name of [IDEMPOTENCY_TABLE_ENV, IDEMPOTENCY_EXPIRES_AFTER_SECONDS_ENV, 'AWS_REGION']) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
});

test.each([Duration.hours(24), Duration.days(4), Duration.seconds(90)])(
  "a store made with no options in an attached function (retention %s) uses the construct's table and retention",
  (expiresAfter) => {
    const variables = attachedEnvironment(expiresAfter);
    expect(Object.keys(variables).sort()).toEqual([IDEMPOTENCY_EXPIRES_AFTER_SECONDS_ENV, IDEMPOTENCY_TABLE_ENV].sort());
    Object.assign(process.env, variables);
    const store = new DynamoDBStore();
    expect(store.tableName).toBe('orders-idempotency');
    expect(store.expiresAfterSeconds).toBe(expiresAfter.toSeconds());
  },
);

test('a store made with no options in a function attached with a retention of its own uses that retention, the one its retries were checked against', () => {
  Object.assign(process.env, attachedEnvironment(Duration.days(7), Duration.hours(1)));
  expect(new DynamoDBStore().expiresAfterSeconds).toBe(3600);
});

test('a store made with no options in a function attached to a table of another account addresses it by the ARN the construct set', () => {
  const stack = new Stack(new App(), 'Elsewhere', { env: { account: '111111111111', region: 'eu-west-1' } });
  const arn = 'arn:aws:dynamodb:eu-west-1:222222222222:table/orders-idempotency';
  const handler = new LambdaFunction(stack, 'Handler', { runtime: Runtime.NODEJS_22_X, handler: 'index.handler', code: Code.fromInline('export {}') });
  IdempotencyTable.fromTable(stack, 'Idempotency', Table.fromTableArn(stack, 'Central', arn)).attachFunction(handler);
  const [fn] = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function'));
  Object.assign(process.env, (fn as { Properties: { Environment: { Variables: Record<string, string> } } }).Properties.Environment.Variables);
  expect(new DynamoDBStore().tableName).toBe(arn);
});

test.each([
  ['an imported table', (stack: Stack) => Table.fromTableArn(stack, 'Central', 'arn:aws:dynamodb:us-east-1:111111111111:table/orders-idempotency')],
  [
    'a table of the app in a stack of that Region',
    (stack: Stack) =>
      // A table of another environment named by the app: CDK writes its ARN as a literal.
      new Table(new Stack(stack.node.root as App, 'Tables', { env: { account: '111111111111', region: 'us-east-1' } }), 'Records', {
        tableName: 'orders-idempotency',
        partitionKey: { name: 'id', type: AttributeType.STRING },
      }),
  ],
])("a store made with no options in a function attached to %s of its account but another Region sends its requests to the table's Region", async (_, table) => {
  const stack = new Stack(new App(), 'Elsewhere', { env: { account: '111111111111', region: 'eu-west-1' } });
  const handler = new LambdaFunction(stack, 'Handler', { runtime: Runtime.NODEJS_22_X, handler: 'index.handler', code: Code.fromInline('export {}') });
  IdempotencyTable.fromTable(stack, 'Idempotency', table(stack)).attachFunction(handler);
  const [fn] = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function'));
  const deployed = (value: unknown): string => {
    // CloudFormation's join, with the partition of the commercial Regions.
    if (typeof value === 'string') return value;
    const join = (value as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
    return join[1].map((part) => (typeof part === 'string' ? part : (part as { Ref: string }).Ref === 'AWS::Partition' ? 'aws' : '?')).join(join[0]);
  };
  const environment = (fn as { Properties: { Environment: { Variables: Record<string, unknown> } } }).Properties.Environment.Variables;
  const variables = Object.fromEntries(Object.entries(environment).map(([name, value]) => [name, deployed(value)]));
  expect(variables[IDEMPOTENCY_TABLE_ENV]).toBe('arn:aws:dynamodb:us-east-1:111111111111:table/orders-idempotency');
  process.env.AWS_REGION = 'eu-west-1'; // as Lambda sets it for the function
  Object.assign(process.env, variables);
  const store = new DynamoDBStore() as unknown as { tableName: string; client: { config: { region: () => Promise<string> } } };
  expect(store.tableName).toBe('arn:aws:dynamodb:us-east-1:111111111111:table/orders-idempotency');
  expect(await store.client.config.region()).toBe('us-east-1');
});
