import { App, type CfnElement, CfnParameter, Duration, NestedStack, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { Table } from 'aws-cdk-lib/aws-dynamodb';
import { AccountRootPrincipal, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { type IKey, Key, Alias as KeyAlias } from 'aws-cdk-lib/aws-kms';
import {
  Alias,
  ApplicationLogLevel,
  Code,
  type FunctionProps,
  Function as LambdaFunction,
  LoggingFormat,
  Runtime,
  SingletonFunction,
} from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import { Construct, type IConstruct } from 'constructs';
import { PaymentsStack, type PaymentsStackProps } from '../../infra/payments-stack.js';
import { IdempotencyMonitoring, type IdempotencyMonitoringProps, IdempotencyTable } from '../../lib/cdk/index.js';
import { cloudWatchLines, type IdempotencyEvent } from '../../lib/observability.js';

const EVENTS: IdempotencyEvent[] = [
  'miss',
  'takeover',
  'replay',
  'cacheReplay',
  'inProgress',
  'payloadMismatch',
  'superseded',
  'storeFailure',
  'bookkeepingFailure',
];

function monitored(props: Omit<IdempotencyMonitoringProps, 'functions'> & { withTopic?: boolean } = {}) {
  const stack = new Stack(new App(), 'Monitored');
  const table = new IdempotencyTable(stack, 'Idempotency');
  const handler = new LambdaFunction(stack, 'Handler', {
    runtime: Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: Code.fromInline('export const handler = () => {}'),
  });
  const topic = props.withTopic ? new Topic(stack, 'Alarms') : undefined;
  const { withTopic: _, ...rest } = props;
  const monitoring = table.addMonitoring({ functions: [handler, 'payments-api'], ...(topic ? { alarmTopic: topic } : {}), ...rest });
  return { stack, table, handler, topic, monitoring, template: Template.fromStack(stack) };
}

/** The props of a function whose code does nothing. */
const inlineCode = { runtime: Runtime.NODEJS_22_X, handler: 'index.handler', code: Code.fromInline('export const handler = () => {}') };

/** What the library writes for `event` with metrics on: its namespace, metric name and dimension. */
function emitted(event: IdempotencyEvent, namespace: string, metricNamespace?: string) {
  const lines: string[] = [];
  const listener = cloudWatchLines({ write: (line) => void lines.push(line), ...(metricNamespace ? { metricNamespace } : {}) });
  listener(event, { namespace, recordId: `${namespace}#hash`, time: 0 });
  const emf = JSON.parse(lines[0]!) as { _aws: { CloudWatchMetrics: Array<{ Namespace: string; Metrics: Array<{ Name: string }>; Dimensions: string[][] }> } };
  const [directive] = emf._aws.CloudWatchMetrics;
  return { namespace: directive!.Namespace, metricName: directive!.Metrics[0]!.Name, dimension: directive!.Dimensions[0]![0]! };
}

interface Widget {
  readonly type: string;
  readonly height: number;
  readonly properties: { readonly title?: string; readonly metrics?: unknown[][]; readonly alarms?: unknown[] };
}

/** The dashboard's widgets, with every reference written as `<LogicalId>`. */
function dashboardWidgets(template: Template): Widget[] {
  const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
  const [, parts] = dashboard!.Properties.DashboardBody['Fn::Join'] as [string, Array<string | { Ref?: string; 'Fn::GetAtt'?: string[] }>];
  const text = parts.map((part) => (typeof part === 'string' ? part : `<${part.Ref ?? part['Fn::GetAtt']![0]}>`)).join('');
  return (JSON.parse(text) as { widgets: Widget[] }).widgets;
}

describe('an alarm topic of the app: the alarms can publish to it', () => {
  const withTopic = (topicProps: ConstructorParameters<typeof Topic>[2]) => {
    const stack = new Stack(new App(), 'Topics', { env: { account: '111111111111', region: 'eu-west-1' } });
    const table = new IdempotencyTable(stack, 'Idempotency');
    const alarmTopic = new Topic(stack, 'Alarms', topicProps);
    table.addMonitoring({ functions: ['payments-api'], alarmTopic });
    return Template.fromStack(stack);
  };

  test("a topic with a policy of its own (enforceSSL's Deny) also allows the account's alarms of its Region to publish", () => {
    const policies = Object.values(withTopic({ enforceSSL: true }).findResources('AWS::SNS::TopicPolicy'));
    expect(policies).toHaveLength(1);
    expect(policies[0]!.Properties.PolicyDocument.Statement).toContainEqual({
      Sid: 'CloudWatchAlarmsPublish',
      Effect: 'Allow',
      Action: 'sns:Publish',
      Principal: { Service: 'cloudwatch.amazonaws.com' },
      Resource: { Ref: expect.any(String) },
      Condition: {
        StringEquals: { 'aws:SourceAccount': '111111111111' },
        ArnLike: { 'aws:SourceArn': { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':cloudwatch:eu-west-1:111111111111:alarm:*']] } },
      },
    });
  });

  test("a topic of another stack, in another account: the statement names the alarms' account and Region, not the topic's", () => {
    const app = new App();
    const alerts = new Stack(app, 'Alerts', { env: { account: '222222222222', region: 'us-east-1' } });
    const alarmTopic = new Topic(alerts, 'Alarms', { topicName: 'central-alarms', enforceSSL: true });
    const stack = new Stack(app, 'Service', { env: { account: '111111111111', region: 'eu-west-1' } });
    new IdempotencyTable(stack, 'Idempotency').addMonitoring({ functions: ['payments-api'], alarmTopic });
    const [policy] = Object.values(Template.fromStack(alerts).findResources('AWS::SNS::TopicPolicy'));
    expect(policy!.Properties.PolicyDocument.Statement).toContainEqual(
      expect.objectContaining({
        Sid: 'CloudWatchAlarmsPublish',
        Condition: {
          StringEquals: { 'aws:SourceAccount': '111111111111' },
          ArnLike: { 'aws:SourceArn': { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':cloudwatch:eu-west-1:111111111111:alarm:*']] } },
        },
      }),
    );
  });

  test('a statement the app adds to the topic after addMonitoring makes a policy, which lets the alarms publish too; two monitorings in one account and Region add one statement', () => {
    const stack = new Stack(new App(), 'Later', { env: { account: '111111111111', region: 'eu-west-1' } });
    const alarmTopic = new Topic(stack, 'Alarms');
    new IdempotencyTable(stack, 'Idempotency').addMonitoring({ functions: ['payments-api'], alarmTopic });
    new IdempotencyTable(stack, 'Other').addMonitoring({ functions: ['payments-consumer'], alarmTopic });
    alarmTopic.addToResourcePolicy(
      new PolicyStatement({ principals: [new AccountRootPrincipal()], actions: ['sns:Subscribe'], resources: [alarmTopic.topicArn] }),
    );
    const [policy] = Object.values(Template.fromStack(stack).findResources('AWS::SNS::TopicPolicy'));
    const statements = policy!.Properties.PolicyDocument.Statement as { Sid?: string; Action: string }[];
    expect(statements.map((statement) => [statement.Sid, statement.Action])).toEqual([
      ['0', 'sns:Subscribe'], // CDK numbers the statements given no Sid
      ['CloudWatchAlarmsPublish', 'sns:Publish'],
    ]);
  });

  test("a topic without a policy keeps SNS's default one, which lets the account's alarms publish: none is added", () => {
    withTopic({}).resourceCountIs('AWS::SNS::TopicPolicy', 0);
  });

  test("a topic encrypted with a key of the app: the key's policy lets CloudWatch encrypt the alarms' messages", () => {
    const stack = new Stack(new App(), 'Encrypted');
    const table = new IdempotencyTable(stack, 'Idempotency');
    const alarmTopic = new Topic(stack, 'Alarms', { masterKey: new Key(stack, 'TopicKey') });
    table.addMonitoring({ functions: ['payments-api'], alarmTopic });
    const [key] = Object.values(Template.fromStack(stack).findResources('AWS::KMS::Key'));
    expect(key!.Properties.KeyPolicy.Statement).toContainEqual(
      expect.objectContaining({ Effect: 'Allow', Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: ['kms:Decrypt', 'kms:GenerateDataKey*'] }),
    );
  });

  test("a topic encrypted with a key the app cannot grant on (SNS's AWS managed key, an imported key) is warned of: CloudWatch could not publish; a key or an alias of the app is not", () => {
    const warnings = (masterKey: (stack: Stack) => IKey) => {
      const stack = new Stack(new App(), 'TopicKeys', { env: { account: '111111111111', region: 'eu-west-1' } });
      const table = new IdempotencyTable(stack, 'Idempotency');
      table.addMonitoring({ functions: ['payments-api'], alarmTopic: new Topic(stack, 'Alarms', { masterKey: masterKey(stack), enforceSSL: true }) });
      return Annotations.fromStack(stack)
        .findWarning('*', Match.stringLikeRegexp('alarmTopicKeyNotGranted'))
        .map((warning) => String(warning.entry.data));
    };
    const [managed, ...others] = warnings((stack) => KeyAlias.fromAliasName(stack, 'SnsKey', 'alias/aws/sns'));
    expect(others).toEqual([]);
    expect(managed).toMatch(/Alarms is encrypted with SNS's AWS managed key \(alias\/aws\/sns\).*customer managed key.*every alarm notification is refused/);
    expect(warnings((stack) => Key.fromKeyArn(stack, 'Imported', 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab'))).toEqual([
      expect.stringMatching(/a key this app imports.*cloudwatch\.amazonaws\.com kms:Decrypt and kms:GenerateDataKey\*/),
    ]);
    expect(warnings((stack) => new Key(stack, 'Own'))).toEqual([]);
    expect(warnings((stack) => new Key(stack, 'Own').addAlias('alias/alarms'))).toEqual([]);
    // An alias imported with its target, a key of the app: the grant goes into that key's policy.
    expect(warnings((stack) => KeyAlias.fromAliasAttributes(stack, 'Named', { aliasName: 'alias/alarms', aliasTargetKey: new Key(stack, 'Own') }))).toEqual([]);
  });
});

describe('defaults, with an alarm topic', () => {
  const { stack, handler, topic, monitoring, template } = monitored({ withTopic: true });
  const fnRef = { Ref: stack.getLogicalId(handler.node.defaultChild as never) };
  const topicRef = { Ref: stack.getLogicalId(topic!.node.defaultChild as never) };

  test('three alarms per function on what the library emits, firing at the documented thresholds, notifying the topic', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 6);
    expect(monitoring.alarms).toHaveLength(6);
    const thresholds: Partial<Record<IdempotencyEvent, number>> = { storeFailure: 5, superseded: 1, bookkeepingFailure: 1 };
    for (const value of [fnRef, 'payments-api']) {
      for (const [event, threshold] of Object.entries(thresholds) as Array<[IdempotencyEvent, number]>) {
        const { namespace, metricName, dimension } = emitted(event, 'payments-api');
        template.hasResourceProperties('AWS::CloudWatch::Alarm', {
          Namespace: namespace,
          MetricName: metricName,
          Dimensions: [{ Name: dimension, Value: value }],
          Statistic: 'Sum',
          Period: 300,
          EvaluationPeriods: 1,
          Threshold: threshold,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          TreatMissingData: 'notBreaching',
          AlarmActions: [topicRef],
          OKActions: [topicRef],
          AlarmDescription: Match.anyValue(),
        });
      }
    }
  });

  test('a dashboard with every metric the library emits, per function, and the alarms', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const widgets = dashboardWidgets(template);
    const metrics = widgets.flatMap((widget) => (widget.properties.metrics ?? []) as unknown[][]);
    for (const value of [`<${fnRef.Ref}>`, 'payments-api']) {
      const shown = metrics.filter((metric) => metric[2] === 'Function' && metric[3] === value).map((metric) => metric.slice(0, 3).join(' '));
      expect(shown.sort()).toEqual(
        EVENTS.map((event) => {
          const { namespace, metricName, dimension } = emitted(event, 'payments-api');
          return `${namespace} ${metricName} ${dimension}`;
        }).sort(),
      );
    }
    const overview = widgets.find((widget) => widget.type === 'alarm')!;
    expect(overview.properties.alarms).toHaveLength(6);
    expect(widgets.map((widget) => widget.properties.title).filter(Boolean)).toEqual(
      expect.arrayContaining(['Table: throttled writes', 'Table: failed writes (system errors)']),
    );
    expect(monitoring.dashboard.node.defaultChild).toBeDefined();
  });

  test('the table graphs show, for every write the store sends, the metric their titles name', () => {
    const widgets = dashboardWidgets(template);
    const graphed = (title: string) =>
      (widgets.find((widget) => widget.properties.title === title)!.properties.metrics as unknown[][])
        .filter((metric) => metric[0] === 'AWS/DynamoDB')
        .map((metric) => (metric[2] === 'Operation' ? `${metric[1]} ${metric[3]}` : metric[1]))
        .sort();
    const writes = ['DeleteItem', 'PutItem', 'TransactWriteItems', 'UpdateItem'];
    expect(graphed('Table: throttled writes')).toEqual(writes.map((operation) => `ThrottledRequests ${operation}`));
    expect(graphed('Table: failed writes (system errors)')).toEqual(writes.map((operation) => `SystemErrors ${operation}`));
    expect(graphed('Table: consumed write capacity')).toEqual(['ConsumedWriteCapacityUnits']);
  });
});

test('thresholds, period and metric namespace are configurable; without a topic no action', () => {
  const { template } = monitored({ metricNamespace: 'Payments', period: Duration.minutes(1), alarmThresholds: { storeFailures: 20, superseded: 3 } });
  const alarm = (metricName: string) =>
    Object.values(template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: metricName, Dimensions: [{ Value: 'payments-api' }] } }))[0]!;
  // The description is what the notification shows: it names the namespace whose alarm fired.
  expect(alarm('StoreFailures').Properties).toMatchObject({
    Namespace: 'Payments',
    Period: 60,
    Threshold: 20,
    AlarmDescription: expect.stringMatching(/^Idempotency of payments-api: calls were refused because the idempotency table could not be reached/),
  });
  expect(alarm('Superseded').Properties).toMatchObject({ Threshold: 3 });
  expect(alarm('BookkeepingFailures').Properties).toMatchObject({ Threshold: 1 });
  template.allResourcesProperties('AWS::CloudWatch::Alarm', { AlarmActions: Match.absent(), OKActions: Match.absent(), TreatMissingData: 'notBreaching' });
});

test('the StoreFailures alarm names what the library counts as one: a table it could not reach, and a record or stored outcome it could not read (test/integration/malformed-records.test.ts)', () => {
  const { template } = monitored();
  const [alarm] = Object.values(
    template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'StoreFailures', Dimensions: [{ Value: 'payments-api' }] } }),
  );
  const description: string = alarm!.Properties.AlarmDescription;
  expect(description).toContain('the idempotency table could not be reached, or a record or stored outcome it returned could not be read');
  expect(description).toContain('encryption keys');
  // CloudWatch takes descriptions of at most 1,024 characters, with the longest record namespace monitored.
  expect(description.length - 'payments-api'.length + 255).toBeLessThanOrEqual(1024);
});

test('bad props are refused with a sentence; monitoring is added once per table', () => {
  const stack = new Stack(new App(), 'Bad');
  const table = new IdempotencyTable(stack, 'Idempotency');
  expect(() => table.addMonitoring({ functions: [] })).toThrow('`functions` must list at least one function or record namespace.');
  expect(() => table.addMonitoring({ functions: ['a#b'] })).toThrow("without '#'");
  expect(() => table.addMonitoring({ functions: ['api', 'api'] })).toThrow('listed twice');
  // cloudWatchLines writes no metric for a namespace CloudWatch cannot take as a dimension value: its alarms would never fire.
  for (const name of ['pagos-ñ', ' ', 'x'.repeat(1025)]) {
    expect(() => table.addMonitoring({ functions: [name] })).toThrow('must be 1 to 1,024 printable ASCII characters, not only spaces');
  }
  // CloudWatch would take it, but aws-cdk-lib's Metric refuses it midway, leaving a half-built construct behind.
  expect(() => table.addMonitoring({ functions: ['api', 'x'.repeat(256)] })).toThrow(
    new TypeError(
      "IdempotencyTable.addMonitoring: a record namespace of 256 characters cannot be monitored: the CDK's CloudWatch metrics take dimension values of at most 255 characters.",
    ),
  );
  expect(table.node.tryFindChild('Monitoring')).toBeUndefined();
  // 255 characters, the longest the CDK takes, is monitored: its alarms watch it.
  const longest = 'x'.repeat(255);
  const monitoredLongest = new IdempotencyTable(new Stack(new App(), 'Longest'), 'Idempotency').addMonitoring({ functions: [longest] });
  expect(monitoredLongest.alarms).toHaveLength(3);
  for (const superseded of [0, 2.5]) {
    expect(() => table.addMonitoring({ functions: ['api'], alarmThresholds: { superseded } })).toThrow(
      `\`alarmThresholds.superseded\` must be a whole number, 1 or more (got ${superseded}).`,
    );
  }
  // A misspelt threshold would leave the alarm at its default: one meant to be quieter would fire on normal traffic.
  expect(() => table.addMonitoring({ functions: ['api'], alarmThresholds: { storeFailure: 50 } as never })).toThrow(
    new TypeError(
      'IdempotencyTable.addMonitoring: unknown option `alarmThresholds.storeFailure`. Known options of `alarmThresholds`: storeFailures, superseded, bookkeepingFailures.',
    ),
  );
  expect(() => table.addMonitoring({ functions: ['api'], alarmThresholds: 5 as never })).toThrow('`alarmThresholds` must be an object');
  // Text is refused, quoted, as a whole-number option is everywhere.
  expect(() => table.addMonitoring({ functions: ['api'], alarmThresholds: { storeFailures: '20' } as never })).toThrow(
    new TypeError('IdempotencyTable.addMonitoring: `alarmThresholds.storeFailures` must be a whole number, 1 or more (got "20").'),
  );
  // Alarms on a namespace or period the functions' metrics never have could never fire.
  expect(() => table.addMonitoring({ functions: ['api'], namespace: 'Payments' } as never)).toThrow(
    'IdempotencyTable.addMonitoring: unknown option `namespace`. Known options: functions, alarmTopic, metricNamespace, dashboardName, period, alarmThresholds.',
  );
  for (const metricNamespace of ['AWS/Lambda', '', ':Payments', 'Payments!']) {
    expect(() => table.addMonitoring({ functions: ['api'], metricNamespace })).toThrow(
      `IdempotencyTable.addMonitoring: \`metricNamespace\` must be one \`cloudWatchLines\` accepts: 1 to 255 letters, digits, spaces or . - _ / # :, not starting with AWS/ or a colon (got ${JSON.stringify(metricNamespace)}).`,
    );
  }
  for (const seconds of [30, 90]) {
    expect(() => table.addMonitoring({ functions: ['api'], period: Duration.seconds(seconds) })).toThrow(
      `IdempotencyTable.addMonitoring: \`period\` must be a whole number of minutes: the metrics have a resolution of one minute (got ${seconds} s).`,
    );
  }
  // CloudWatch refuses, at deploy, an alarm evaluated over more than 7 days (its one period here).
  expect(() => table.addMonitoring({ functions: ['api'], period: Duration.days(8) })).toThrow(
    'IdempotencyTable.addMonitoring: `period` must be at most 7 days: CloudWatch refuses an alarm evaluated over a longer time (got 8 days).',
  );
  expect(() => new IdempotencyTable(new Stack(new App(), 'Week'), 'Idempotency').addMonitoring({ functions: ['api'], period: Duration.days(7) })).not.toThrow();
  table.addMonitoring({ functions: ['api'] });
  expect(() => table.addMonitoring({ functions: ['other'] })).toThrow('already has its monitoring');
});

test('an entry of `functions` that is neither a Lambda function nor a record namespace is refused with a sentence, not a TypeError from deep inside', () => {
  const stack = new Stack(new App(), 'Entries');
  const table = new IdempotencyTable(stack, 'Idempotency');
  // An optional prop left unset, a wrong value from JavaScript, a construct that is no function.
  for (const [entry, got] of [
    [undefined, 'undefined'],
    [null, 'null'],
    [42, '42'],
    [{}, 'an object that is no Lambda function construct'],
    [new Queue(stack, 'Queue'), 'an object that is no Lambda function construct'],
  ] as const) {
    expect(() => table.addMonitoring({ functions: ['api', entry as never] })).toThrow(
      new TypeError(
        `IdempotencyTable.addMonitoring: \`functions\` must list Lambda functions (a function, an alias or a version) or record namespaces (strings); its entry 1 is ${got}.`,
      ),
    );
  }
  expect(table.node.tryFindChild('Monitoring')).toBeUndefined();
});

test('a period, an alarm topic or a dashboard name of the wrong type is refused with a sentence naming the prop, not a TypeError from deep inside', () => {
  const stack = new Stack(new App(), 'Types');
  const table = new IdempotencyTable(stack, 'Idempotency');
  const refused: Array<[Partial<IdempotencyMonitoringProps>, string]> = [
    // Minutes or seconds as a number, from JavaScript.
    [{ period: 5 as never }, '`period` must be a Duration, such as Duration.minutes(5)'],
    [{ period: null as never }, '`period` must be a Duration, such as Duration.minutes(5)'],
    // The topic's ARN instead of the topic.
    [
      { alarmTopic: 'arn:aws:sns:us-east-1:123456789012:alarms' as never },
      '`alarmTopic` must be an SNS topic construct (a Topic, or one imported with Topic.fromTopicArn), not its ARN',
    ],
    [{ dashboardName: 42 as never }, '`dashboardName` must be a string'],
  ];
  for (const [props, message] of refused) {
    expect(() => table.addMonitoring({ functions: ['api'], ...props })).toThrow(new TypeError(`IdempotencyTable.addMonitoring: ${message}.`));
  }
  expect(table.node.tryFindChild('Monitoring')).toBeUndefined();
});

test('a dashboard name CloudWatch refuses is refused with a sentence naming the prop, before anything is created', () => {
  const stack = new Stack(new App(), 'DashboardNames');
  const table = new IdempotencyTable(stack, 'Idempotency');
  // Empty or too long, CloudFormation refuses it only at deploy; a space, the CDK refuses with the monitoring half built.
  for (const dashboardName of ['', 'payments dashboard', 'payments.api', 'a'.repeat(256)]) {
    expect(() => table.addMonitoring({ functions: ['api'], dashboardName })).toThrow(
      new TypeError(
        `IdempotencyTable.addMonitoring: \`dashboardName\` must be 1 to 255 letters, digits, '-' or '_', as CloudWatch takes it (got ${JSON.stringify(dashboardName)}).`,
      ),
    );
  }
  expect(table.node.tryFindChild('Monitoring')).toBeUndefined();
  table.addMonitoring({ functions: ['api'], dashboardName: `Payments_${'a'.repeat(246)}` });
  expect(table.node.tryFindChild('Monitoring')).toBeDefined();
});

test('a period of no time is refused at synth: CloudFormation refuses an alarm evaluated over 0 seconds only when the stack deploys', () => {
  const stack = new Stack(new App(), 'NoPeriod');
  const table = new IdempotencyTable(stack, 'Idempotency');
  for (const period of [Duration.minutes(0), Duration.seconds(0)]) {
    expect(() => table.addMonitoring({ functions: ['api'], period })).toThrow(
      new TypeError('IdempotencyTable.addMonitoring: `period` must be 1 minute or more: CloudWatch refuses an alarm evaluated over no time (got 0 s).'),
    );
  }
  expect(table.node.tryFindChild('Monitoring')).toBeUndefined();
});

test('new IdempotencyMonitoring given the IdempotencyTable construct instead of its table is refused with a sentence that names the table to give', () => {
  const app = new App();
  const idempotency = new IdempotencyTable(new Stack(app, 'Data'), 'Idempotency');
  const stack = new Stack(app, 'Watch');
  for (const table of [idempotency, undefined]) {
    expect(() => new IdempotencyMonitoring(stack, 'Monitoring', table as never, { functions: ['api'] })).toThrow(
      new TypeError(
        'IdempotencyMonitoring: `table` must be the DynamoDB table (an ITable): the `table` of an IdempotencyTable, or one imported with Table.fromTableArn.',
      ),
    );
  }
  expect(stack.node.tryFindChild('Monitoring')).toBeUndefined();
  expect(new IdempotencyMonitoring(stack, 'Monitoring', idempotency.table, { functions: ['api'] }).alarms).toHaveLength(3);
});

test('a record namespace listed as a string and as the name of a function, or two functions of one name, is refused: each alarm would fire, and notify, twice', () => {
  const stack = new Stack(new App(), 'Named');
  const table = new IdempotencyTable(stack, 'Idempotency');
  const payments = new LambdaFunction(stack, 'Payments', { ...inlineCode, functionName: 'payments' });
  const imported = LambdaFunction.fromFunctionName(stack, 'Imported', 'refunds');
  const message = (name: string) =>
    new TypeError(
      `IdempotencyTable.addMonitoring: the record namespace "${name}" is listed twice, as a string or as the name of a function: its alarms would fire twice.`,
    );
  expect(() => table.addMonitoring({ functions: [payments, 'payments'] })).toThrow(message('payments'));
  expect(() => table.addMonitoring({ functions: ['payments', payments.currentVersion] })).toThrow(message('payments'));
  expect(() =>
    table.addMonitoring({ functions: [LambdaFunction.fromFunctionArn(stack, 'Again', 'arn:aws:lambda:us-east-1:123456789012:function:payments'), payments] }),
  ).toThrow(message('payments'));
  expect(table.node.tryFindChild('Monitoring')).toBeUndefined();
  // A function imported by name alone is watched under a name read from its ARN at deploy: not judged.
  expect(table.addMonitoring({ functions: [payments, imported, 'refunds'] }).alarms).toHaveLength(9);
});

test('a dashboard CloudWatch would refuse for its size is refused at synth: alarm status widgets of at most 100 alarms each, 500 widgets in all', () => {
  const names = (count: number) => Array.from({ length: count }, (_, i) => `function-${i}`);
  const alarmWidgets = (template: Template) => dashboardWidgets(template).filter((widget) => widget.type === 'alarm');
  // 34 functions have 102 alarms: more than one alarm status widget takes.
  const stack = new Stack(new App(), 'Large');
  new IdempotencyTable(stack, 'ManyAlarms').addMonitoring({ functions: names(34) });
  const widgets = alarmWidgets(Template.fromStack(stack));
  expect(widgets.map((widget) => widget.properties.alarms!.length)).toEqual([100, 2]);
  // A line per four alarms under the title, at most 6 units high: 100 alarms scroll in the widget rather than push the graphs 27 units down.
  expect(widgets.map((widget) => widget.height)).toEqual([6, 3]);
  expect(new Set(widgets.flatMap((widget) => widget.properties.alarms)).size).toBe(102);
  // 123 functions: 4 alarm status widgets, 3 table graphs and 4 widgets per function make 499.
  const largest = new Stack(new App(), 'Largest');
  new IdempotencyTable(largest, 'Idempotency').addMonitoring({ functions: names(123) });
  const widgetsOfLargest = dashboardWidgets(Template.fromStack(largest));
  expect(widgetsOfLargest).toHaveLength(499);
  // CloudWatch's other limits: 500 metrics a graph and 2,500 a dashboard, counting those a math expression reads.
  const metricsOf = (widget: Widget) => widget.properties.metrics ?? [];
  expect(Math.max(...widgetsOfLargest.map((widget) => metricsOf(widget).length))).toBeLessThanOrEqual(500);
  // 9 metrics a function, the table's 9 and the 2 expressions that add up its per-operation ones.
  const rows = widgetsOfLargest.flatMap(metricsOf);
  expect(rows).toHaveLength(123 * 9 + 9 + 2);
  expect(rows.length).toBeLessThanOrEqual(2500);
  expect(() => new IdempotencyTable(stack, 'TooLarge').addMonitoring({ functions: names(124) })).toThrow(
    'IdempotencyTable.addMonitoring: `functions` lists 124, but a CloudWatch dashboard holds at most 500 widgets, and theirs would have 503 (4 per function, 3 table graphs, and an alarm status widget per 100 alarms): at most 123 functions or record namespaces.',
  );
});

test("the table graphs of a table in another region read that region's metrics", () => {
  const stack = new Stack(new App(), 'Regional', { env: { account: '111111111111', region: 'eu-west-1' } });
  const central = Table.fromTableArn(stack, 'Central', 'arn:aws:dynamodb:us-east-1:111111111111:table/idempotency');
  IdempotencyTable.fromTable(stack, 'Idempotency', central).addMonitoring({ functions: ['api'] });
  const body = JSON.stringify(Template.fromStack(stack).findResources('AWS::CloudWatch::Dashboard'));
  // The nine table metrics (four operations twice, and the capacity) name their region.
  expect(body.match(/\\"region\\":\\"us-east-1\\"/g)).toHaveLength(9);
});

test('functions whose construct ids repeat in other scopes, or read like a section of the monitoring, get a row each', () => {
  const stack = new Stack(new App(), 'SameIds');
  const table = new IdempotencyTable(stack, 'Idempotency');
  const handler = (scope: IConstruct, id: string) =>
    new LambdaFunction(scope, id, { runtime: Runtime.NODEJS_22_X, handler: 'index.handler', code: Code.fromInline('export const handler = () => {}') });
  const functions = [
    handler(new Construct(stack, 'Api'), 'Handler'),
    handler(new Construct(stack, 'Consumer'), 'Handler'),
    handler(stack, 'Dashboard'),
    handler(stack, 'Records-api'),
  ];
  const monitoring = table.addMonitoring({ functions: [...functions, 'api'] });
  expect(monitoring.alarms).toHaveLength(15);
  // The groups' ids are in the alarms' logical ids: other ids would replace the alarms, and lose their history, at the next deploy.
  expect([...new Set(monitoring.alarms.map((alarm) => alarm.node.scope!.node.id))]).toEqual([
    'Handler',
    'Handler2',
    'Dashboard2',
    'Records-api',
    'Records-api2',
  ]);
  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  for (const fn of functions) {
    const ref = { Ref: stack.getLogicalId(fn.node.defaultChild as CfnElement) };
    expect(Object.keys(template.findResources('AWS::CloudWatch::Alarm', { Properties: { Dimensions: [{ Value: ref }] } }))).toHaveLength(3);
  }
  expect(() => new IdempotencyTable(new Stack(new App(), 'Twice'), 'Idempotency').addMonitoring({ functions: [functions[0]!, functions[0]!] })).toThrow(
    'IdempotencyTable.addMonitoring: the function SameIds/Api/Handler is listed twice.',
  );
});

test("an alias or a version is watched under its function's name, the namespace its records (and metrics) get", () => {
  const stack = new Stack(new App(), 'Qualified');
  const table = new IdempotencyTable(stack, 'Idempotency');
  const fn = (id: string) =>
    new LambdaFunction(stack, id, { runtime: Runtime.NODEJS_22_X, handler: 'index.handler', code: Code.fromInline('export const handler = () => {}') });
  const aliased = fn('Api');
  const versioned = fn('Consumer');
  const live = new Alias(stack, 'Live', { aliasName: 'live', version: aliased.currentVersion });
  table.addMonitoring({ functions: [live, versioned.currentVersion] });
  const template = Template.fromStack(stack);
  for (const watched of [aliased, versioned]) {
    const ref = { Ref: stack.getLogicalId(watched.node.defaultChild as CfnElement) };
    expect(Object.keys(template.findResources('AWS::CloudWatch::Alarm', { Properties: { Dimensions: [{ Name: 'Function', Value: ref }] } }))).toHaveLength(3);
  }
  // An alias and its function are one namespace: listed both, they would be watched twice.
  expect(() => new IdempotencyTable(new Stack(new App(), 'Both'), 'Idempotency').addMonitoring({ functions: [aliased, live] })).toThrow(
    'IdempotencyTable.addMonitoring: the function Qualified/Api is listed twice.',
  );
});

test("a function of another Region or account, whose metrics CloudWatch keeps there, is refused: this stack's alarms would never fire; its own stack can monitor it", () => {
  const app = new App();
  const stack = new Stack(app, 'Central', { env: { account: '111111111111', region: 'eu-west-1' } });
  const table = new IdempotencyTable(stack, 'Idempotency');
  const fn = (scope: Stack, id: string) =>
    new LambdaFunction(scope, id, { runtime: Runtime.NODEJS_22_X, handler: 'index.handler', code: Code.fromInline('export const handler = () => {}') });
  const virginia = new Stack(app, 'Virginia', { env: { account: '111111111111', region: 'us-east-1' } });
  const partner = new Stack(app, 'Partner', { env: { account: '222222222222', region: 'eu-west-1' } });
  const imported = LambdaFunction.fromFunctionArn(stack, 'Imported', 'arn:aws:lambda:us-east-1:111111111111:function:charge');
  for (const [watched, where] of [
    [fn(virginia, 'Api'), 'Virginia/Api is in Region us-east-1, account 111111111111'],
    [imported, 'Central/Imported is in Region us-east-1, account 111111111111'],
    [fn(partner, 'Consumer'), 'Partner/Consumer is in Region eu-west-1, account 222222222222'],
  ] as const) {
    expect(() => table.addMonitoring({ functions: ['api', watched] })).toThrow(
      new TypeError(
        `IdempotencyTable.addMonitoring: the function ${where}, where CloudWatch keeps its metrics; alarms of a stack in Region eu-west-1, account 111111111111, would never fire: monitor it from a stack of its own Region and account (new IdempotencyMonitoring(stack, id, table, { functions })).`,
      ),
    );
  }
  expect(table.node.tryFindChild('Monitoring')).toBeUndefined();
  // Where it runs, the function's own metrics and the table's (of its Region) are watched.
  const api = virginia.node.findChild('Api') as LambdaFunction;
  const central = Table.fromTableArn(virginia, 'Central', 'arn:aws:dynamodb:eu-west-1:111111111111:table/idempotency');
  const monitoring = new IdempotencyMonitoring(virginia, 'Monitoring', central, { functions: [api] });
  expect(monitoring.alarms).toHaveLength(3);
  Template.fromStack(virginia).resourceCountIs('AWS::CloudWatch::Alarm', 3);
  // A function whose Region and account are known only at deploy may be the stack's: not refused.
  const agnostic = new Stack(app, 'Agnostic');
  new IdempotencyTable(agnostic, 'Idempotency').addMonitoring({ functions: [fn(agnostic, 'Handler'), fn(stack, 'Local')] });
});

test('a function logging JSON at an application log level above INFO is warned of: Lambda drops the metric lines below it, and at FATAL its alarms would never fire', () => {
  const stack = new Stack(new App(), 'Levels');
  const table = new IdempotencyTable(stack, 'Idempotency');
  const fn = (id: string, logging: Partial<FunctionProps>) =>
    new LambdaFunction(stack, id, {
      runtime: Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: Code.fromInline('export const handler = () => {}'),
      ...logging,
    });
  const warn = fn('Warn', { loggingFormat: LoggingFormat.JSON, applicationLogLevelV2: ApplicationLogLevel.WARN });
  const error = fn('Error', { loggingFormat: LoggingFormat.JSON, applicationLogLevelV2: ApplicationLogLevel.ERROR });
  const fatal = fn('Fatal', { loggingFormat: LoggingFormat.JSON, applicationLogLevelV2: ApplicationLogLevel.FATAL });
  const live = new Alias(stack, 'Live', { aliasName: 'live', version: error.currentVersion });
  // INFO and below, or plain text (no level filter), keep the lines.
  const kept = [
    fn('Info', { loggingFormat: LoggingFormat.JSON, applicationLogLevelV2: ApplicationLogLevel.INFO }),
    fn('Debug', { loggingFormat: LoggingFormat.JSON, applicationLogLevelV2: ApplicationLogLevel.DEBUG }),
    fn('Json', { loggingFormat: LoggingFormat.JSON }),
    fn('Text', { loggingFormat: LoggingFormat.TEXT }),
  ];
  expect(table.addMonitoring({ functions: [warn, live, fatal, ...kept] }).alarms).toHaveLength(21);
  const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('lambda-idempotency:metricsDropped'));
  expect(
    warnings.map((w) => [
      w.id,
      String(w.entry.data)
        .match(/log level (\w+): .*below it \(([^)]*)\), (.*)\. For every/)
        ?.slice(1),
    ]),
  ).toEqual([
    ['/Levels/Warn', ['WARN', 'Misses, Replays, CacheReplays, InProgressRejections', 'so those graphs of its dashboard stay empty; its alarms still fire']],
    [
      '/Levels/Error',
      [
        'ERROR',
        'Misses, Takeovers, Replays, CacheReplays, InProgressRejections, PayloadMismatches',
        'so those graphs of its dashboard stay empty; its alarms still fire',
      ],
    ],
    [
      '/Levels/Fatal',
      [
        'FATAL',
        'Misses, Takeovers, Replays, CacheReplays, InProgressRejections, PayloadMismatches, Superseded, StoreFailures, BookkeepingFailures',
        'so its alarms would never fire',
      ],
    ],
  ]);
  expect(String(warnings[0]!.entry.data)).toContain('give it an application log level of INFO or below');
});

test('a SingletonFunction logging JSON above INFO is warned of too, on the one function of its uuid', () => {
  const stack = new Stack(new App(), 'SingletonLevels');
  const table = new IdempotencyTable(stack, 'Idempotency');
  const worker = new SingletonFunction(stack, 'Worker', {
    uuid: 'c3d4',
    runtime: Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: Code.fromInline('export const handler = () => {}'),
    loggingFormat: LoggingFormat.JSON,
    applicationLogLevelV2: ApplicationLogLevel.WARN,
  });
  table.addMonitoring({ functions: [worker] });
  const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('lambda-idempotency:metricsDropped'));
  expect(warnings.map((w) => String(w.entry.data).match(/log level (\w+)/)?.[1])).toEqual(['WARN']);
});

test("a function of another stack that reads the table is watched under the name it is given, not a reference the table's stack would import: the two stacks would depend on each other", () => {
  const app = new App();
  const env = { account: '111111111111', region: 'eu-west-1' };
  const data = new Stack(app, 'Data', { env });
  const service = new Stack(app, 'Service', { env });
  const table = new IdempotencyTable(data, 'Idempotency');
  const fn = (id: string, functionName?: string) =>
    new LambdaFunction(service, id, {
      runtime: Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: Code.fromInline('export const handler = () => {}'),
      ...(functionName ? { functionName } : {}),
    });
  const named = fn('Api', 'charge');
  table.attachFunction(named);
  table.addMonitoring({ functions: [named] });
  expect(() => app.synth()).not.toThrow();
  Template.fromStack(data).resourceCountIs('AWS::CloudWatch::Alarm', 3);
  Template.fromStack(data).allResourcesProperties('AWS::CloudWatch::Alarm', { Dimensions: [{ Name: 'Function', Value: 'charge' }] });
  // A generated name can only be imported from the function's stack, which imports the table's name: refused with the ways out.
  const generated = fn('Consumer');
  const other = new IdempotencyTable(data, 'Other');
  other.attachFunction(generated);
  expect(() => other.addMonitoring({ functions: [generated] })).toThrow(
    new TypeError(
      "IdempotencyTable.addMonitoring: the function Service/Consumer is in the stack Service, which reads this table's name from the stack Data: its generated name in this stack's alarms would make each stack depend on the other. Give it a `functionName`, give its records a `name` and list that, or monitor it from its own stack (new IdempotencyMonitoring(stack, id, table, { functions })).",
    ),
  );
  expect(other.node.tryFindChild('Monitoring')).toBeUndefined();
});

test("a stack that reads the table's name, and has a function the table's stack watches by its generated name, is refused whichever call comes last and whichever of its functions reads it: not a cyclic reference at synth", () => {
  const app = new App();
  const env = { account: '111111111111', region: 'eu-west-1' };
  const data = new Stack(app, 'Data', { env });
  const service = new Stack(app, 'Service', { env });
  const jobs = new Stack(app, 'Jobs', { env });
  const fn = (stack: Stack, id: string, functionName?: string) =>
    new LambdaFunction(stack, id, {
      runtime: Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: Code.fromInline('export const handler = () => {}'),
      ...(functionName ? { functionName } : {}),
    });
  const consumer = fn(service, 'Consumer');
  const api = fn(service, 'Api', 'charge');
  const way =
    "its generated name in this stack's alarms would make each stack depend on the other. Give it a `functionName`, give its records a `name` and list that, or monitor it from its own stack (new IdempotencyMonitoring(stack, id, table, { functions })).";
  // Monitoring first: attaching the watched function, or another of its stack, is refused.
  const table = new IdempotencyTable(data, 'Idempotency');
  table.addMonitoring({ functions: [consumer, api] });
  for (const attached of [consumer, api]) {
    expect(() => table.attachFunction(attached)).toThrow(
      new TypeError(
        `IdempotencyTable.attachFunction: attaching ${attached.node.path} makes its stack Service read this table's name from the stack Data, whose monitoring watches the function Service/Consumer of Service: ${way}`,
      ),
    );
  }
  // Refused before anything changed: no environment, no grant.
  expect(consumer.node.tryFindChild('ServiceRole')?.node.tryFindChild('DefaultPolicy')).toBeUndefined();
  expect(() => table.attachSqsConsumer(api, new Queue(service, 'Orders'))).toThrow(TypeError);
  table.attachFunction(fn(jobs, 'Nightly'));
  // Attached first: listing a generated name of a stack that reads the table's name for another function is refused too.
  const other = new IdempotencyTable(data, 'Other');
  const worker = fn(jobs, 'Worker', 'worker');
  other.attachFunction(worker);
  expect(() => other.addMonitoring({ functions: [fn(jobs, 'Report')] })).toThrow(
    new TypeError(
      `IdempotencyTable.addMonitoring: the function Jobs/Report is in the stack Jobs, which reads this table's name from the stack Data (for Jobs/Worker): ${way}`,
    ),
  );
  other.addMonitoring({ functions: [worker] });
  expect(() => app.synth()).not.toThrow();
});

test("a function of a stack nested in the table's stack is watched under its generated name: the nested stack reads the table's name as a parameter, the table's stack its name as an output, no cycle", () => {
  const app = new App();
  const data = new Stack(app, 'Data');
  const table = new IdempotencyTable(data, 'Idempotency');
  const inner = new NestedStack(new NestedStack(data, 'Service'), 'Workers');
  const fn = (stack: Stack, id: string) =>
    new LambdaFunction(stack, id, { runtime: Runtime.NODEJS_22_X, handler: 'index.handler', code: Code.fromInline('export const handler = () => {}') });
  const consumer = fn(inner, 'Consumer');
  table.attachFunction(consumer);
  table.addMonitoring({ functions: [consumer] });
  expect(() => app.synth()).not.toThrow();
  Template.fromStack(data).resourceCountIs('AWS::CloudWatch::Alarm', 3);
  // Sibling nested stacks each read the other: still refused.
  const other = new Stack(app, 'Other');
  const records = new IdempotencyTable(new NestedStack(other, 'Data'), 'Idempotency');
  const sibling = fn(new NestedStack(other, 'Service'), 'Consumer');
  records.attachFunction(sibling);
  expect(() => records.addMonitoring({ functions: [sibling] })).toThrow(
    /the function Other\/Service\/Consumer is in the stack Other\/Service, which reads this table's name/,
  );
});

test('a SingletonFunction is watched under the functionName written for the one function of its uuid: of another stack that reads the table, it is not refused as a generated name', () => {
  const app = new App();
  const data = new Stack(app, 'Data');
  const service = new Stack(app, 'Service');
  const table = new IdempotencyTable(data, 'Idempotency');
  const worker = new SingletonFunction(service, 'Worker', {
    uuid: 'b1c2',
    functionName: 'worker',
    runtime: Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: Code.fromInline('export const handler = () => {}'),
  });
  table.attachFunction(worker);
  table.addMonitoring({ functions: [worker] });
  expect(() => app.synth()).not.toThrow();
  Template.fromStack(data).allResourcesProperties('AWS::CloudWatch::Alarm', { Dimensions: [{ Name: 'Function', Value: 'worker' }] });
});

describe('the demo stack', () => {
  // Skip esbuild here: these tests read the template; test/integration/bundles.test.ts runs the bundles.
  const synth = (props: PaymentsStackProps = {}) => {
    const stack = new PaymentsStack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'PaymentsDemo', props);
    return { stack, template: Template.fromStack(stack) };
  };
  const { stack, template } = synth();
  const ref = (construct: IConstruct) => stack.getLogicalId(construct.node.defaultChild as CfnElement);

  test('watches both record namespaces, alarms to a topic, and its functions write EMF metrics', () => {
    const widgets = dashboardWidgets(template);
    const namespaces = new Set(
      widgets
        .flatMap((widget) => (widget.properties.metrics ?? []) as unknown[][])
        .filter((m) => m[2] === 'Function')
        .map((m) => m[3]),
    );
    expect([...namespaces].sort()).toEqual(['payments-api', 'payments-consumer']);
    template.resourceCountIs('AWS::CloudWatch::Alarm', 7); // 3 per namespace, and the dead-letter queue's
    template.allResourcesProperties('AWS::CloudWatch::Alarm', { AlarmActions: [{ Ref: ref(stack.alarmTopic) }] });
    template.hasOutput('DashboardName', { Value: { Ref: ref(stack.monitoring.dashboard) } });
    template.hasOutput('AlarmTopicArn', { Value: { Ref: ref(stack.alarmTopic) } });
  });

  test("the alarm topic's policy (enforceSSL's) lets the account's alarms publish: a topic policy replaces SNS's default one, which did", () => {
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [{ Ref: ref(stack.alarmTopic) }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 'sns:Publish', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({ Effect: 'Allow', Action: 'sns:Publish', Principal: { Service: 'cloudwatch.amazonaws.com' } }),
        ]),
      },
    });
  });

  test('an order message in the dead-letter queue (failed 5 times, or a changed order) raises an alarm', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [ref(stack.deadLetterQueue), 'QueueName'] } }],
      Statistic: 'Maximum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [{ Ref: ref(stack.alarmTopic) }],
    });
  });

  test('POST /idempotency-keys is served by a function that reads the signing secret, and nothing else', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: 'POST /idempotency-keys', Target: Match.anyValue() });
    const integrations = template.findResources('AWS::ApiGatewayV2::Integration', {
      Properties: { IntegrationUri: { 'Fn::GetAtt': [ref(stack.keyFunction), 'Arn'] } },
    });
    expect(Object.keys(integrations)).toHaveLength(1);
    template.hasResourceProperties('AWS::SecretsManager::Secret', { GenerateSecretString: { PasswordLength: 64, ExcludePunctuation: true } });
    const keyFunction = template.toJSON().Resources[ref(stack.keyFunction)].Properties;
    expect(keyFunction.Environment.Variables.IDEMPOTENCY_KEY_SECRET_ID).toEqual({ Ref: ref(stack.keySecret) });
    expect(keyFunction.Layers).toEqual([{ 'Fn::FindInMap': [expect.stringMatching(/^Paramsandsecretslayer/), { Ref: 'AWS::Region' }, '1x0x103xarm64'] }]);
    const policies = Object.values(template.findResources('AWS::IAM::Policy')).filter((policy) =>
      JSON.stringify(policy.Properties.Roles).includes(ref(stack.keyFunction.role!)),
    );
    const actions = policies.flatMap((policy) => policy.Properties.PolicyDocument.Statement.flatMap((s: { Action: string | string[] }) => s.Action));
    // Besides writing its own log group (test/infra/payments-stack.test.ts).
    expect(actions.sort()).toEqual(['logs:CreateLogStream', 'logs:PutLogEvents', 'secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue']);
  });

  test('the payment API takes any key by default, and only issued keys with requireIssuedKeys', () => {
    const payment = (t: Template, s: PaymentsStack) => t.toJSON().Resources[s.getLogicalId(s.paymentFunction.node.defaultChild as CfnElement)].Properties;
    expect(payment(template, stack).Environment.Variables).not.toHaveProperty('IDEMPOTENCY_KEY_SECRET_ID');
    const required = synth({ requireIssuedKeys: true });
    expect(payment(required.template, required.stack).Environment.Variables.IDEMPOTENCY_KEY_SECRET_ID).toEqual({
      Ref: required.stack.getLogicalId(required.stack.keySecret.node.defaultChild as CfnElement),
    });
  });
});

test('a period one minute over 7 days is refused at synth: the limit is 7 days, not a whole day past it', () => {
  const table = new IdempotencyTable(new Stack(new App(), 'JustOverWeek'), 'Idempotency');
  expect(() => table.addMonitoring({ functions: ['api'], period: Duration.minutes(7 * 24 * 60 + 1) })).toThrow(
    'IdempotencyTable.addMonitoring: `period` must be at most 7 days: CloudWatch refuses an alarm evaluated over a longer time (got 10081 min).',
  );
});

test('a metric namespace known only at deploy time (a CloudFormation parameter) is not judged at synth: the alarms read it', () => {
  const stack = new Stack(new App(), 'DeployTime');
  const metricNamespace = new CfnParameter(stack, 'MetricNamespace', { type: 'String' }).valueAsString;
  const table = new IdempotencyTable(stack, 'Idempotency');
  expect(() => table.addMonitoring({ functions: ['api'], metricNamespace })).not.toThrow();
  Template.fromStack(stack).hasResourceProperties('AWS::CloudWatch::Alarm', { Namespace: { Ref: 'MetricNamespace' } });
});

test("a record namespace known only at deploy time (a CloudFormation parameter) is monitored: its alarms read it, as a literal one's do", () => {
  const stack = new Stack(new App(), 'DeployTimeNamespace');
  const namespace = new CfnParameter(stack, 'RecordNamespace', { type: 'String' }).valueAsString;
  const table = new IdempotencyTable(stack, 'Idempotency');
  table.addMonitoring({ functions: [namespace, 'payments-consumer'] });
  const template = Template.fromStack(stack);
  const alarmsOf = (value: unknown) =>
    Object.keys(template.findResources('AWS::CloudWatch::Alarm', { Properties: { Dimensions: [{ Name: 'Function', Value: value }] } }));
  expect(alarmsOf('payments-consumer').length).toBeGreaterThan(0);
  expect(alarmsOf({ Ref: 'RecordNamespace' })).toHaveLength(alarmsOf('payments-consumer').length);
  // The refusal names what the user wrote, not the token's placeholder text.
  expect(() => new IdempotencyTable(stack, 'Again').addMonitoring({ functions: [namespace, namespace] })).toThrow(
    new TypeError("IdempotencyTable.addMonitoring: the same deploy-time record namespace (one token, such as a parameter's value) is listed twice."),
  );
});
