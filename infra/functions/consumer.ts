/**
 * The SQS consumer: each message asks to charge an order (`{ orderId, amount, currency }`). Messages
 * are keyed by `orderId`, so a producer's resend (a new message id) and SQS's own redeliveries
 * charge once; a message with the order id of another amount or currency fails as a payload
 * mismatch; failed messages are reported as `batchItemFailures` and come back alone. A resend
 * after the record retention runs again: it finds the order's payment and charges nothing; with
 * another amount or currency it fails (`PAYMENT_KEY_REUSED`). An order the payment API paid, or is
 * paying, fails too (`ORDER_ALREADY_PAID`, `ORDER_BEING_PAID`), without a charge.
 */
import type { Context, SQSEvent } from 'aws-lambda';
import { idempotentBatch } from '../../lib/index.js';
import { handlerFromEnvironment } from './environment.js';
import { PaymentError } from './payment-service.js';
import { RECORD_NAMESPACES } from './routes.js';
import { type FunctionOptions, libraryOptions, paymentsBackend } from './wiring.js';

export type ConsumerHandlerOptions = FunctionOptions;

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
  const { store, service } = paymentsBackend(options);
  return idempotentBatch<OrderMessage>(
    async (message) => {
      if (typeof message.orderId !== 'string') throw new TypeError('An order message needs an orderId.');
      const payment = await service.createPayment(message);
      return { paymentId: payment.paymentId };
    },
    {
      store,
      name: RECORD_NAMESPACES.consumer,
      key: (message) => message?.orderId,
      // The same order id with another amount or currency is no resend: it fails (PAYLOAD_MISMATCH)
      // and reaches the dead-letter queue, instead of being acknowledged as charged.
      fingerprint: (message) => [message?.amount, message?.currency],
      // A declined charge is the order's outcome: kept, so the redeliveries fail without asking the
      // processor again (which might charge the card this time) and the message reaches the dead-letter queue.
      isFinalError: (error) => error instanceof PaymentError && error.code === 'CHARGE_DECLINED',
      ...libraryOptions(options),
    },
  );
}

/** The Lambda entry point: tables and retention from `IDEMPOTENCY_TABLE`, `PAYMENTS_TABLE`, `IDEMPOTENCY_EXPIRES_AFTER_SECONDS`. */
export const handler: ConsumerHandler = handlerFromEnvironment(createConsumerHandler);
