import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import { HttpApi, HttpMethod } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { BillingMode, Table } from 'aws-cdk-lib/aws-dynamodb';
import { Architecture, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { fileURLToPath } from 'node:url';
import { IdempotencyTable, tablePropsFromSchema } from '../lib/cdk/index.js';
import { PAYMENT_ROUTES } from './functions/routes.js';
import { paymentsTableSchema } from './payments-schema.js';

const projectRoot = fileURLToPath(new URL('..', import.meta.url));
const functionsDir = fileURLToPath(new URL('./functions/', import.meta.url));

/** Lambda timeout of both functions; the queue's visibility timeout is 6× this (AWS's recommendation). */
const FUNCTION_TIMEOUT = Duration.seconds(10);

export interface PaymentsStackProps extends StackProps {
  /**
   * How long idempotency records are kept.
   * @default Duration.hours(24)
   */
  readonly recordRetention?: Duration;
}

/**
 * The demo payment service: an HTTP API (`POST /payments`, `POST /payments/{id}/refunds`) and an SQS
 * queue of order charges, both idempotent through one {@link IdempotencyTable}.
 */
export class PaymentsStack extends Stack {
  public readonly idempotencyTable: IdempotencyTable;
  public readonly paymentsTable: Table;
  public readonly paymentFunction: NodejsFunction;
  public readonly consumerFunction: NodejsFunction;
  public readonly queue: Queue;
  public readonly deadLetterQueue: Queue;
  public readonly api: HttpApi;

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

    this.paymentFunction = this.demoFunction('PaymentFunction', 'payment.ts');
    this.consumerFunction = this.demoFunction('ConsumerFunction', 'consumer.ts');
    // The service writes payments with conditional PutItem / UpdateItem only: it never reads first.
    this.paymentsTable.grant(this.paymentFunction, 'dynamodb:PutItem', 'dynamodb:UpdateItem');
    this.paymentsTable.grant(this.consumerFunction, 'dynamodb:PutItem');

    this.idempotencyTable.attachFunction(this.paymentFunction);
    this.api = new HttpApi(this, 'Api', { description: 'Idempotent payments (send an Idempotency-Key header)' });
    const integration = new HttpLambdaIntegration('PaymentIntegration', this.paymentFunction);
    for (const routeKey of Object.values(PAYMENT_ROUTES)) {
      const [method, path] = routeKey.split(' ') as [keyof typeof HttpMethod, string];
      this.api.addRoutes({ path, methods: [HttpMethod[method]], integration });
    }

    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', { retentionPeriod: Duration.days(14), enforceSSL: true });
    this.queue = new Queue(this, 'OrderQueue', {
      visibilityTimeout: Duration.seconds(6 * FUNCTION_TIMEOUT.toSeconds()),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: 5 },
      enforceSSL: true,
    });
    this.idempotencyTable.attachSqsConsumer(this.consumerFunction, this.queue, {
      batchSize: 10,
      maxBatchingWindow: Duration.seconds(1),
    });

    new CfnOutput(this, 'ApiUrl', { value: this.api.apiEndpoint, description: 'Base URL of the payment API' });
    new CfnOutput(this, 'QueueUrl', { value: this.queue.queueUrl, description: 'Send { orderId, amount, currency } messages here' });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'IdempotencyTableName', { value: this.idempotencyTable.table.tableName });
    new CfnOutput(this, 'PaymentsTableName', { value: this.paymentsTable.tableName });
  }

  private demoFunction(id: string, file: string): NodejsFunction {
    return new NodejsFunction(this, id, {
      entry: `${functionsDir}${file}`,
      handler: 'handler',
      projectRoot,
      depsLockFilePath: `${projectRoot}package-lock.json`,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: 512,
      timeout: FUNCTION_TIMEOUT,
      environment: { PAYMENTS_TABLE: this.paymentsTable.tableName, NODE_OPTIONS: '--enable-source-maps' },
      logGroup: new LogGroup(this, `${id}Logs`, { retention: RetentionDays.ONE_WEEK, removalPolicy: RemovalPolicy.DESTROY }),
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
    });
  }
}
