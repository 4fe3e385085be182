/**
 * The types of `httpIdempotency`, checked by `tsc --noEmit` (part of `npm test`): code written for
 * API Gateway events compiles unchanged (`HttpEvent` still narrows to its two members), and ALB
 * users opt in with `httpIdempotency<ALBEvent>`, which asks for a `scope`. A line that stops
 * compiling, or an `@ts-expect-error` that stops erring, fails the type-check.
 */
import middy, { type MiddlewareObj } from '@middy/core';
import type { ALBEvent, ALBResult, APIGatewayProxyEvent, APIGatewayProxyEventV2, APIGatewayProxyResultV2, Context } from 'aws-lambda';
import { callerIdentity, type HttpEvent, type HttpIdempotencyOptions, type HttpScope, httpIdempotency } from '../../lib/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';

const store = new InMemoryStore();

// Existing code: a scope that narrows HttpEvent on v1 / v2, options and middleware typed as before.
const tenantOf = (event: HttpEvent): string | undefined =>
  'version' in event && event.version === '2.0' ? event.headers['x-tenant-id'] : (event as APIGatewayProxyEvent).headers['X-Tenant-Id'];
const scope: HttpScope = tenantOf;
const options: HttpIdempotencyOptions = { store, scope, problemHeaders: (event) => ({ 'X-Path': 'rawPath' in event ? event.rawPath : event.path }) };
const forApiGateway: MiddlewareObj<HttpEvent, unknown, Error, Context> = httpIdempotency(options);
const inferred = httpIdempotency({ store, scope: (event) => callerIdentity(event) ?? event.headers?.['x-tenant-id'] });
const v2Handler = middy(async (_event: APIGatewayProxyEventV2): Promise<APIGatewayProxyResultV2> => ({ statusCode: 201 })).use(httpIdempotency({ store }));

// ALB: opted into with the type parameter; the scope gets ALB events.
const forAlb: MiddlewareObj<ALBEvent, unknown, Error, Context> = httpIdempotency<ALBEvent>({
  store,
  scope: (event) => event.multiValueHeaders?.['x-tenant-id']?.[0] ?? event.headers?.['x-tenant-id'],
});
const albHandler = middy(async (_event: ALBEvent): Promise<ALBResult> => ({ statusCode: 201, statusDescription: '201 Created' })).use(
  httpIdempotency<ALBEvent>({ store, scope: 'shared' }),
);
// One function behind both: the scope narrows the union.
const both = httpIdempotency<HttpEvent | ALBEvent>({
  store,
  scope: (event) => ('elb' in event.requestContext ? 'alb-caller' : callerIdentity(event as HttpEvent)),
});

// @ts-expect-error An ALB event carries no caller identity the library can trust: `scope` is required.
httpIdempotency<ALBEvent>({ store });
// @ts-expect-error So it is for a function behind both.
httpIdempotency<HttpEvent | ALBEvent>({ store });
// @ts-expect-error A scope given as `undefined` is none.
httpIdempotency<ALBEvent>({ store, scope: undefined });
// A scope written for ALB events is enough to make the middleware one for ALB events.
const inferredAlb: MiddlewareObj<ALBEvent, unknown, Error, Context> = httpIdempotency({ store, scope: (event: ALBEvent) => event.path });
// In `.use([...])`, which takes middlewares of any event, the options are those of API Gateway events (no `scope` asked for) and the chain stays typed.
const inArray = middy<APIGatewayProxyEventV2, APIGatewayProxyResultV2>()
  .use([httpIdempotency({ store })])
  .handler(async (event) => {
    // @ts-expect-error The handler's event is not `any`.
    void event.rawPth;
    return { statusCode: 201, body: event.rawPath };
  });
// A helper generic in the event, which always gives a scope, passes its options on as they are.
const withHttpIdempotency = <TEvent extends HttpEvent | ALBEvent>(options: HttpIdempotencyOptions<TEvent> & { readonly scope: HttpScope<TEvent> }) =>
  middy<TEvent>().use(httpIdempotency<TEvent>(options));
const viaHelper = withHttpIdempotency<APIGatewayProxyEvent>({ store, scope: 'shared' });
const albViaHelper = withHttpIdempotency<ALBEvent>({ store, scope: (event) => event.path });
// @ts-expect-error `HttpEvent` was not widened: an ALB event is not one.
const notHttpEvent: HttpEvent = {} as ALBEvent;

test('the declarations above are middlewares (their types are what this file checks)', () => {
  for (const middleware of [forApiGateway, inferred, forAlb, inferredAlb, both]) expect(typeof middleware.before).toBe('function');
  expect(typeof v2Handler).toBe('function');
  expect(typeof inArray).toBe('function');
  for (const handler of [viaHelper, albViaHelper]) expect(typeof handler).toBe('function');
  expect(typeof albHandler).toBe('function');
  expect(notHttpEvent).toEqual({});
});
