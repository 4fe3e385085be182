/**
 * The SQS consumer: each message asks to charge an order (`{ orderId, amount, currency }`). Messages
 * are keyed by `orderId`, so a producer's resend (a new message id) and SQS's own redeliveries
 * charge once; failed messages are reported as `batchItemFailures` and come back alone.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Context, SQSEvent } from 'aws-lambda';
import { DynamoDBStore, type IdempotencyLogger, idempotentBatch } from '../../lib/index.js';
import { readEnvironment } from './environment.js';
import { type PaymentProvider, PaymentService } from './payment-service.js';

export interface ConsumerHandlerOptions {
  readonly idempotencyTable: string;
  readonly paymentsTable: string;
  /** @default a new `DynamoDBClient` from the environment */
  readonly client?: DynamoDBClient;
  /** @default the simulated provider */
  readonly provider?: PaymentProvider;
  /** Record retention, seconds. @default the library's (24 h) */
  readonly expiresAfterSeconds?: number;
  /** Clock, epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /** Where the library reports bookkeeping failures and poison records. @default console */
  readonly logger?: IdempotencyLogger;
}

export interface OrderMessage {
  readonly orderId: string;
  readonly amount: number;
  readonly currency: string;
}

export type ConsumerHandler = (event: SQSEvent, context: Context) => Promise<{ batchItemFailures: Array<{ itemIdentifier: string }> }>;

/**
 * Builds the handler; the demo and the tests inject a client, a provider and a clock.
 *
 * @example
 * ```ts
 * const handler = createConsumerHandler({ idempotencyTable: 'idempotency', paymentsTable: 'payments' });
 * ```
 */
export function createConsumerHandler(options: ConsumerHandlerOptions): ConsumerHandler {
  const client = options.client ?? new DynamoDBClient({});
  const service = new PaymentService({
    client,
    tableName: options.paymentsTable,
    ...(options.provider ? { provider: options.provider } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  const store = new DynamoDBStore({ tableName: options.idempotencyTable, client });
  return idempotentBatch<OrderMessage>(
    async (message) => {
      if (typeof message.orderId !== 'string') throw new TypeError('An order message needs an orderId.');
      const payment = await service.createPayment(message);
      return { paymentId: payment.paymentId };
    },
    {
      store,
      transactions: true, // the payment item commits with the record
      name: 'payments-consumer',
      key: (message) => message?.orderId,
      ...(options.expiresAfterSeconds === undefined ? {} : { expiresAfterSeconds: options.expiresAfterSeconds }),
      ...(options.now ? { now: options.now } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    },
  );
}

let configured: ConsumerHandler | undefined;

/** The Lambda entry point: tables and retention from `IDEMPOTENCY_TABLE`, `PAYMENTS_TABLE`, `IDEMPOTENCY_EXPIRES_AFTER_SECONDS`. */
export const handler: ConsumerHandler = (event, context) => {
  if (configured === undefined) {
    const env = readEnvironment();
    configured = createConsumerHandler({
      idempotencyTable: env.idempotencyTable,
      paymentsTable: env.paymentsTable,
      ...(env.expiresAfterSeconds === undefined ? {} : { expiresAfterSeconds: env.expiresAfterSeconds }),
    });
  }
  return configured(event, context);
};
