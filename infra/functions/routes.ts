/** The payment API's routes, as API Gateway route keys: the stack, the handler and the demo's HTTP adapter share them. */
export const PAYMENT_ROUTES = {
  createPayment: 'POST /payments',
  refundPayment: 'POST /payments/{id}/refunds',
} as const;

export type PaymentRouteKey = (typeof PAYMENT_ROUTES)[keyof typeof PAYMENT_ROUTES];
