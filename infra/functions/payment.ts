/**
 * The payment API behind `POST /payments`, `GET /payments/{id}` and `POST /payments/{id}/refunds`
 * (API Gateway HTTP API, payload v2). Every POST needs an `Idempotency-Key` header: a retried request
 * replays the first response instead of charging or refunding again. A GET changes nothing: it needs none, and ignores one.
 */
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { type HttpEvent, httpIdempotency, type IdempotencyLogger } from '../../lib/index.js';
import { handlerFromEnvironment } from './environment.js';
import { PaymentError, type PaymentErrorCode, type PaymentService } from './payment-service.js';
import { PAYMENT_ROUTES, RECORD_NAMESPACES } from './routes.js';
import { type FunctionOptions, libraryOptions, paymentsBackend } from './wiring.js';

export type PaymentHandlerOptions = FunctionOptions;

export type PaymentHandler = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;

const PROBLEMS: Record<PaymentErrorCode, [status: number, title: string]> = {
  INVALID_REQUEST: [400, 'Invalid request'],
  NOT_FOUND: [404, 'Payment not found'],
  CURRENCY_MISMATCH: [422, 'Refund currency differs from the payment'],
  REFUND_EXCEEDS_PAYMENT: [409, 'Refund exceeds the refundable amount'],
  PAYMENT_KEY_REUSED: [422, 'Idempotency-Key is already used'],
  REFUND_KEY_REUSED: [422, 'Idempotency-Key is already used'],
  CHARGE_DECLINED: [402, 'Payment declined'],
  REFUND_DECLINED: [402, 'Refund declined'],
  ORDER_ALREADY_PAID: [409, 'Order already paid'],
  ORDER_BEING_PAID: [409, 'Order being paid'],
  PROVIDER_FAILED: [502, 'Payment provider failed'],
  REFUND_INCOMPLETE: [503, 'Refund not completed'],
};

/** Answers that report a passing condition, not an outcome: a retry may succeed, so none is kept for its key. */
const RETRY_LATER: ReadonlySet<PaymentErrorCode> = new Set(['REFUND_INCOMPLETE', 'ORDER_BEING_PAID']);

const json = (statusCode: number, body: unknown, headers: Record<string, string> = {}): APIGatewayProxyStructuredResultV2 => ({
  statusCode,
  headers: { 'Content-Type': 'application/json', ...headers },
  body: JSON.stringify(body),
});

function problem(status: number, title: string, detail: string, headers: Record<string, string> = {}): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode: status,
    headers: { 'Content-Type': 'application/problem+json', ...headers },
    body: JSON.stringify({ type: 'about:blank', title, status, detail }),
  };
}

function parseBody(event: APIGatewayProxyEventV2): unknown {
  const text = event.isBase64Encoded && event.body ? Buffer.from(event.body, 'base64').toString('utf8') : (event.body ?? '');
  try {
    return JSON.parse(text);
  } catch {
    throw new PaymentError('INVALID_REQUEST', 'The request body must be JSON.');
  }
}

/** An error's message, with those of the errors it gathers (the provider's and the undo's). */
const messageOf = (error: unknown): string =>
  error instanceof AggregateError ? `${error.message}: ${error.errors.map(messageOf).join('; ')}` : error instanceof Error ? error.message : String(error);

async function route(service: PaymentService, event: APIGatewayProxyEventV2, logger: IdempotencyLogger): Promise<APIGatewayProxyStructuredResultV2> {
  try {
    switch (event.routeKey) {
      case PAYMENT_ROUTES.createPayment: {
        const payment = await service.createPayment(parseBody(event));
        return json(201, payment, { Location: `/payments/${payment.paymentId}` });
      }
      case PAYMENT_ROUTES.getPayment: {
        const paymentId = event.pathParameters?.id;
        if (!paymentId) return problem(404, 'Payment not found', 'No payment id in the path.');
        return json(200, await service.getPayment(paymentId));
      }
      case PAYMENT_ROUTES.refundPayment: {
        const paymentId = event.pathParameters?.id;
        if (!paymentId) return problem(404, 'Payment not found', 'No payment id in the path.');
        return json(201, await service.refund(paymentId, parseBody(event)));
      }
      default:
        return problem(404, 'Not found', `No route ${event.routeKey}.`);
    }
  } catch (error) {
    if (!(error instanceof PaymentError)) throw error;
    // 4xx answers are final and replayed to a retry; the 502 and 503 are not, so a retry runs again
    // (after a 503 it completes the refund that stayed recorded), nor is a 4xx with Retry-After.
    const [status, title] = PROBLEMS[error.code];
    // The answer says only what the caller may know; the operator needs the provider's own error.
    if (status >= 500) {
      const line = { level: 'ERROR', message: 'payment request failed', status, code: error.code, cause: messageOf(error.cause) };
      (logger.error ?? logger.warn).call(logger, JSON.stringify(line));
    }
    return problem(status, title, error.message, RETRY_LATER.has(error.code) ? { 'Retry-After': '1' } : {});
  }
}

/**
 * Builds the handler. The demo and the tests inject a client, a provider and a clock; Lambda uses
 * {@link handler}, configured from the environment the stack sets.
 *
 * @example
 * ```ts
 * const handler = createPaymentHandler({ idempotencyTable: 'idempotency', paymentsTable: 'payments' });
 * ```
 */
export function createPaymentHandler(options: PaymentHandlerOptions): PaymentHandler {
  const { store, service } = paymentsBackend(options);
  const logger = options.logger ?? console;
  return middy<HttpEvent, APIGatewayProxyStructuredResultV2, Error, Context>((event: HttpEvent) => route(service, event as APIGatewayProxyEventV2, logger)).use(
    httpIdempotency({
      store,
      // A fixed namespace: records survive a replacement of the function, which renames it.
      name: RECORD_NAMESPACES.paymentApi,
      ...(options.keySecrets ? { signedKeys: { secrets: options.keySecrets } } : {}),
      ...libraryOptions(options),
    }),
  ) as unknown as PaymentHandler;
}

/**
 * The Lambda entry point: tables and retention from `IDEMPOTENCY_TABLE`, `PAYMENTS_TABLE`,
 * `IDEMPOTENCY_EXPIRES_AFTER_SECONDS`; only issued keys when `IDEMPOTENCY_KEY_SECRET_ID` is set.
 */
export const handler: PaymentHandler = handlerFromEnvironment(createPaymentHandler);
