import { fileURLToPath } from 'node:url';
import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import { HttpApi, HttpMethod } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { type Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { BillingMode, Table } from 'aws-cdk-lib/aws-dynamodb';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, ParamsAndSecretsLayerVersion, ParamsAndSecretsVersions, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { type IdempotencyMonitoring, IdempotencyTable, tablePropsFromSchema } from '../lib/cdk/index.js';
import { KEY_ROUTE, PAYMENT_ROUTES, RECORD_NAMESPACES } from './functions/routes.js';
import { paymentsTableSchema } from './payments-schema.js';

const projectRoot = fileURLToPath(new URL('..', import.meta.url));
const functionsDir = fileURLToPath(new URL('./functions/', import.meta.url));

/** Lambda timeout of both functions; the queue's visibility timeout is 6× this (AWS's recommendation). */
const FUNCTION_TIMEOUT = Duration.seconds(10);
/** How long Lambda gathers messages for one batch of the consumer. */
const BATCHING_WINDOW = Duration.seconds(1);

export interface PaymentsStackProps extends StackProps {
  /**
   * How long idempotency records are kept.
   * @default Duration.hours(24)
   */
  readonly recordRetention?: Duration;
  /**
   * Whether the payment API accepts only keys issued by `POST /idempotency-keys` (others get a 400).
   * @default false - any key the client chooses
   */
  readonly requireIssuedKeys?: boolean;
}

/**
 * The demo payment service: an HTTP API (`POST /payments`, `GET /payments/{id}`,
 * `POST /payments/{id}/refunds`, and `POST /idempotency-keys` for signed keys) and an SQS queue of order charges, both idempotent
 * through one {@link IdempotencyTable}, with a dashboard and alarms on the library's metrics.
 */
export class PaymentsStack extends Stack {
  public readonly idempotencyTable: IdempotencyTable;
  public readonly paymentsTable: Table;
  public readonly paymentFunction: NodejsFunction;
  public readonly consumerFunction: NodejsFunction;
  public readonly queue: Queue;
  public readonly deadLetterQueue: Queue;
  public readonly api: HttpApi;
  /** Issues signed idempotency keys at `POST /idempotency-keys`. */
  public readonly keyFunction: NodejsFunction;
  /** The secret that signs idempotency keys; rotate it and keys of the previous version stay valid until the next rotation. */
  public readonly keySecret: Secret;
  public readonly monitoring: IdempotencyMonitoring;
  /** Where the idempotency alarms are sent: subscribe to it. */
  public readonly alarmTopic: Topic;
  /**
   * Fires when an order message reaches the dead-letter queue: it wrote no payment, but its order may
   * be charged (a charge made but never answered, or an earlier message of the same order id).
   */
  public readonly deadLetterAlarm: Alarm;

  constructor(scope: Construct, id: string, props: PaymentsStackProps = {}) {
    super(scope, id, { description: 'lambda-idempotency demo: idempotent payment API and order queue', ...props });

    // A demo: the tables go with the stack. Keep the default (RETAIN) in production.
    this.idempotencyTable = new IdempotencyTable(this, 'Idempotency', {
      ...(props.recordRetention ? { expiresAfter: props.recordRetention } : {}),
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.paymentsTable = new Table(this, 'Payments', {
      ...tablePropsFromSchema(paymentsTableSchema),
      billingMode: BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.keySecret = new Secret(this, 'IdempotencyKeySecret', {
      description: 'Signs the idempotency keys the payment API issues (HMAC-SHA-256)',
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.paymentFunction = this.demoFunction('PaymentFunction', 'payment.ts', props.requireIssuedKeys === true);
    this.consumerFunction = this.demoFunction('ConsumerFunction', 'consumer.ts');
    this.keyFunction = this.demoFunction('KeyFunction', 'keys.ts', true);
    // The service writes payments with conditional PutItem / UpdateItem only. GetItem serves
    // GET /payments/{id}, the read of a charge's payment, which a request sent again after its
    // record expired made already, and the read of the payment an order is bound to, which tells a
    // paid order from one being paid; neither function may scan or query the payments.
    this.paymentsTable.grant(this.paymentFunction, 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem');
    this.paymentsTable.grant(this.consumerFunction, 'dynamodb:GetItem', 'dynamodb:PutItem');
    for (const fn of [this.paymentFunction, this.consumerFunction]) fn.addEnvironment('PAYMENTS_TABLE', this.paymentsTable.tableName);

    this.idempotencyTable.attachFunction(this.paymentFunction);
    this.api = new HttpApi(this, 'Api', { description: 'Idempotent payments (send an Idempotency-Key header)' });
    const integration = new HttpLambdaIntegration('PaymentIntegration', this.paymentFunction);
    for (const routeKey of Object.values(PAYMENT_ROUTES)) {
      const [method, path] = routeKey.split(' ') as [keyof typeof HttpMethod, string];
      this.api.addRoutes({ path, methods: [HttpMethod[method]], integration });
    }
    const [keyMethod, keyPath] = KEY_ROUTE.split(' ') as [keyof typeof HttpMethod, string];
    this.api.addRoutes({ path: keyPath, methods: [HttpMethod[keyMethod]], integration: new HttpLambdaIntegration('KeyIntegration', this.keyFunction) });

    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', { retentionPeriod: Duration.days(14), enforceSSL: true });
    this.queue = new Queue(this, 'OrderQueue', {
      // AWS's recommendation: 6 × the function timeout, plus the batching window during which received messages wait.
      visibilityTimeout: Duration.seconds(6 * FUNCTION_TIMEOUT.toSeconds() + BATCHING_WINDOW.toSeconds()),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: 5 },
      enforceSSL: true,
    });
    this.idempotencyTable.attachSqsConsumer(this.consumerFunction, this.queue, {
      batchSize: 10,
      maxBatchingWindow: BATCHING_WINDOW,
    });

    this.alarmTopic = new Topic(this, 'AlarmTopic', { displayName: 'Idempotency alarms of the payments demo', enforceSSL: true });
    this.monitoring = this.idempotencyTable.addMonitoring({
      functions: [RECORD_NAMESPACES.paymentApi, RECORD_NAMESPACES.consumer],
      alarmTopic: this.alarmTopic,
    });

    // A message there failed every receive (or is a changed order: a payload mismatch within the record
    // retention, PAYMENT_KEY_REUSED after it): it wrote no payment, but a charge whose processor call
    // failed without a decline may have been made, and a changed order was charged by its first message.
    this.deadLetterAlarm = this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5) }).createAlarm(this, 'DeadLetterAlarm', {
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
      alarmDescription:
        'Order messages reached the dead-letter queue: they failed every receive, or repeat an order id with another amount. They wrote no payment, but the order may be charged: a charge whose processor call failed without a decline may have been made, and an order id repeated with another amount was charged by its first message. Check the payments table and the processor (the charge key is the same for every message of an order id) before charging again.',
    });
    this.deadLetterAlarm.addAlarmAction(new SnsAction(this.alarmTopic));
    this.deadLetterAlarm.addOkAction(new SnsAction(this.alarmTopic));

    new CfnOutput(this, 'ApiUrl', { value: this.api.apiEndpoint, description: 'Base URL of the payment API' });
    new CfnOutput(this, 'QueueUrl', { value: this.queue.queueUrl, description: 'Send { orderId, amount, currency } messages here' });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'IdempotencyTableName', { value: this.idempotencyTable.table.tableName });
    new CfnOutput(this, 'PaymentsTableName', { value: this.paymentsTable.tableName });
    new CfnOutput(this, 'DashboardName', { value: this.monitoring.dashboard.dashboardName });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarmTopic.topicArn, description: 'Subscribe to receive the idempotency alarms' });
  }

  /** A demo function; with `signsKeys`, it reads the key-signing secret through the Parameters and Secrets extension. */
  private demoFunction(id: string, file: string, signsKeys = false): NodejsFunction {
    const logGroup = new LogGroup(this, `${id}Logs`, { retention: RetentionDays.ONE_WEEK, removalPolicy: RemovalPolicy.DESTROY });
    // Not the default role's AWSLambdaBasicExecutionRole, which lets the function write to every
    // log group of the account: this one may write to its own log group alone.
    const role = new Role(this, `${id}Role`, { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
    logGroup.grantWrite(role);
    const fn = new NodejsFunction(this, id, {
      entry: `${functionsDir}${file}`,
      handler: 'handler',
      projectRoot,
      depsLockFilePath: `${projectRoot}package-lock.json`,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: 512,
      timeout: FUNCTION_TIMEOUT,
      environment: { NODE_OPTIONS: '--enable-source-maps' },
      logGroup,
      role,
      bundling: {
        format: OutputFormat.ESM,
        target: 'node24',
        platform: 'node',
        mainFields: ['module', 'main'],
        // The Lambda runtime provides the AWS SDK v3; the bundle uses it, as the library expects.
        externalModules: ['@aws-sdk/*'],
        minify: true,
        sourceMap: true,
      },
      ...(signsKeys ? { paramsAndSecrets: ParamsAndSecretsLayerVersion.fromVersion(ParamsAndSecretsVersions.V1_0_103) } : {}),
    });
    if (signsKeys) {
      fn.addEnvironment('IDEMPOTENCY_KEY_SECRET_ID', this.keySecret.secretArn);
      this.keySecret.grantRead(fn);
    }
    return fn;
  }
}
