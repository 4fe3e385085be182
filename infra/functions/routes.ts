/** The payment API's routes, as API Gateway route keys: the stack, the handler and the demo's HTTP adapter share them. */
export const PAYMENT_ROUTES = {
  createPayment: 'POST /payments',
  // The Location a created payment answers with; `{id}` as in the refund route, one name per path segment.
  getPayment: 'GET /payments/{id}',
  refundPayment: 'POST /payments/{id}/refunds',
} as const;

export type PaymentRouteKey = (typeof PAYMENT_ROUTES)[keyof typeof PAYMENT_ROUTES];

/** The route that issues signed idempotency keys, served by its own function (it takes no key itself). */
export const KEY_ROUTE = 'POST /idempotency-keys';

/** The record namespaces (`name` option) of the demo functions: their code and the stack's dashboard share them. */
export const RECORD_NAMESPACES = {
  paymentApi: 'payments-api',
  consumer: 'payments-consumer',
} as const;
