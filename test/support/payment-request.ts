import middy from '@middy/core';
import type { APIGatewayProxyEventV2WithJWTAuthorizer } from 'aws-lambda';
import { toHttpApiEvent } from '../../demo/http-event.js';
import { type HttpEvent, type HttpIdempotencyOptions, httpIdempotency } from '../../lib/index.js';

/** A `POST /payments` request (a valid payment) as an HTTP API sends it, with a JWT authorizer's `sub` when `caller` is given. */
export function paymentRequest(idempotencyKey: string, caller?: string): HttpEvent {
  const event = toHttpApiEvent({
    method: 'POST',
    url: '/payments',
    headers: { 'idempotency-key': idempotencyKey, 'content-type': 'application/json' },
    body: '{"amount":1200,"currency":"EUR"}',
  })!;
  if (caller === undefined) return event;
  const authorizer = { principalId: '', integrationLatency: 0, jwt: { claims: { sub: caller }, scopes: [] } };
  return { ...event, requestContext: { ...event.requestContext, authorizer } } satisfies APIGatewayProxyEventV2WithJWTAuthorizer;
}

/**
 * A `POST /payments` handler behind `httpIdempotency(options)`: it pays with the request's
 * Idempotency-Key and answers 201 with what `pay` returned. `calls()` counts the handler's runs.
 */
export function paymentHandler(
  pay: (idempotencyKey: string) => Promise<unknown>,
  options: HttpIdempotencyOptions,
  middyOptions: { timeoutEarlyInMillis?: number } = {},
) {
  let calls = 0;
  const handler = middy(async (event: HttpEvent) => {
    calls++;
    return { statusCode: 201, body: JSON.stringify(await pay(event.headers['idempotency-key']!)) };
  }, middyOptions).use(httpIdempotency(options));
  return { handler, calls: () => calls };
}
