import type { APIGatewayProxyEventV2WithJWTAuthorizer } from 'aws-lambda';
import { toHttpApiEvent } from '../../demo/http-event.js';
import type { HttpEvent } from '../../lib/index.js';

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
