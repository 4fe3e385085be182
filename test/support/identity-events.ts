/**
 * HTTP events as API Gateway REST APIs (v1), HTTP APIs (v2), Function URLs and Application Load
 * Balancers deliver them, one per way of telling who the caller is. A caller is a tenant and a
 * user; `token` counts the caller's token refreshes (or new credentials, or renewed certificates):
 * every value that describes one token rather than its holder changes with it, as it does in AWS.
 */
import type { ALBEvent, APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import type { HttpEvent } from '../../lib/index.js';

export interface Caller {
  readonly tenant: string;
  readonly user: string;
  /** @default 1 */
  readonly token?: number;
}

export interface HttpRequest {
  /** The Idempotency-Key header; none when absent. */
  readonly key?: string;
  /** @default '{"amount":1000}' */
  readonly body?: string;
  readonly isBase64Encoded?: boolean;
  /** Raw query string (v2, and an ALB's parameters as the client encoded them) or its parameters (v1). */
  readonly query?: string;
  /** The Content-Type header. @default 'application/json' when there is a body */
  readonly contentType?: string;
}

/** The APIs whose events say who calls. */
export type GatewayApi = 'rest' | 'http' | 'url';
/** `alb`: an ALB target group with default headers; `alb-multi`: with multi-value headers enabled. */
export type Api = GatewayApi | 'alb' | 'alb-multi';

export interface IdentityShape {
  readonly name: string;
  readonly api: GatewayApi;
  /** The requestContext members that say who calls (`authorizer`, `identity`, `authentication`). */
  readonly context: (caller: Caller) => Record<string, unknown>;
}

const EPOCH = 1_736_942_400; // 2025-01-15T12:00:00Z
const ISSUED = (caller: Caller) => EPOCH + (caller.token ?? 1) * 3600;
const token = (caller: Caller) => caller.token ?? 1;
/** One stable user id per (tenant, user), as an IdP would assign. */
const sub = (caller: Caller) => `${caller.user}-0f1e2d3c`;
const account = (caller: Caller) => (caller.tenant === 'tenant-a' ? '111111111111' : caller.tenant === 'tenant-b' ? '222222222222' : '333333333333');

/** A REST API's identity block with nothing in it but the address and agent, as for an open API. */
export const noRestIdentity = (caller?: Caller): Record<string, unknown> => ({
  accessKey: null,
  accountId: null,
  apiKey: null,
  apiKeyId: null,
  caller: null,
  clientCert: null,
  cognitoAuthenticationProvider: null,
  cognitoAuthenticationType: null,
  cognitoIdentityId: null,
  cognitoIdentityPoolId: null,
  principalOrgId: null,
  // The caller's address and agent change between retries: they identify nobody.
  sourceIp: `203.0.113.${caller ? token(caller) : 7}`,
  user: null,
  userAgent: `client/${caller ? token(caller) : 1}`,
  userArn: null,
});

const certificate = (caller: Caller) => ({
  clientCertPem: `-----BEGIN CERTIFICATE-----\nMIIC${caller.tenant}${token(caller)}\n-----END CERTIFICATE-----`,
  subjectDN: `CN=${caller.user},O=${caller.tenant}`,
  issuerDN: 'CN=Example Private CA,O=Example',
  serialNumber: `0a:${token(caller)}`,
  validity: { notBefore: `Jan ${token(caller)} 00:00:00 2025 GMT`, notAfter: `Jan ${token(caller)} 00:00:00 2026 GMT` },
});

const iamCaller = (caller: Caller, userArn: string, userId: string, cognitoIdentity: unknown) => ({
  accessKey: `ASIA${String(token(caller)).padStart(16, 'X')}`,
  accountId: account(caller),
  callerId: userId,
  cognitoIdentity,
  principalOrgId: null,
  userArn,
  userId,
});

/** The claims every Entra ID token carries: its tenant, the user's object id, its times and its per-token ids. */
const entraIdClaims = (c: Caller) => ({
  aud: 'api://orders',
  tid: c.tenant,
  oid: sub(c),
  sub: sub(c),
  iat: ISSUED(c),
  nbf: ISSUED(c),
  exp: ISSUED(c) + 3600,
  aio: `aio-${token(c)}`,
  rh: `rh-${token(c)}`,
  uti: `uti-${token(c)}`,
});

/** Every way these APIs tell who calls; each identifies a (tenant, user), whatever the token. */
export const IDENTITY_SHAPES: readonly IdentityShape[] = [
  {
    // AWS's sample authorizer: the principal is the constant 'user'; the tenant is in the context (strings, as REST APIs pass them).
    name: 'REST API, Lambda authorizer with a constant principal and the tenant in its context',
    api: 'rest',
    context: (c) => ({
      authorizer: {
        principalId: 'user',
        integrationLatency: 10 + token(c),
        stringKey: 'value',
        numberKey: '1',
        booleanKey: 'true',
        tenantId: c.tenant,
        userId: c.user,
      },
      identity: noRestIdentity(c),
    }),
  },
  {
    name: 'REST API, Lambda authorizer whose context copies the token claims',
    api: 'rest',
    context: (c) => ({
      authorizer: {
        principalId: sub(c),
        integrationLatency: 3,
        tenant: c.tenant,
        iat: String(ISSUED(c)),
        exp: String(ISSUED(c) + 3600),
        jti: `jti-${token(c)}`,
      },
      identity: noRestIdentity(c),
    }),
  },
  {
    name: 'REST API, Cognito user pool authorizer (id token claims)',
    api: 'rest',
    context: (c) => ({
      authorizer: {
        claims: {
          sub: sub(c),
          'cognito:username': c.user,
          email: `${c.user}@example.com`,
          email_verified: 'true',
          'custom:tenant_id': c.tenant,
          iss: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example',
          aud: 'client-app',
          token_use: 'id',
          auth_time: String(ISSUED(c)),
          iat: String(ISSUED(c)),
          exp: String(ISSUED(c) + 3600),
          event_id: `event-${token(c)}`,
          origin_jti: `origin-${token(c)}`,
          jti: `jti-${token(c)}`,
        },
      },
      identity: noRestIdentity(c),
    }),
  },
  {
    name: 'REST API, IAM authorization (an assumed role per tenant)',
    api: 'rest',
    context: (c) => ({
      authorizer: null,
      identity: {
        ...noRestIdentity(c),
        accessKey: `ASIA${String(token(c)).padStart(16, 'X')}`,
        accountId: account(c),
        caller: `AROAEXAMPLE:${c.user}`,
        user: `AROAEXAMPLE:${c.user}`,
        userArn: `arn:aws:sts::${account(c)}:assumed-role/orders-client/${c.user}`,
      },
    }),
  },
  {
    // Every user of the pool assumes the same role: only the Cognito identity tells them apart.
    name: 'REST API, IAM authorization with a Cognito identity pool',
    api: 'rest',
    context: (c) => ({
      authorizer: null,
      identity: {
        ...noRestIdentity(c),
        accessKey: `ASIA${String(token(c)).padStart(16, 'X')}`,
        accountId: '123456789012',
        caller: 'AROAEXAMPLE:CognitoIdentityCredentials',
        user: 'AROAEXAMPLE:CognitoIdentityCredentials',
        userArn: 'arn:aws:sts::123456789012:assumed-role/Cognito_OrdersAuth_Role/CognitoIdentityCredentials',
        cognitoAuthenticationType: 'authenticated',
        cognitoAuthenticationProvider: `cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example,cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example:CognitoSignIn:${sub(c)}-${c.tenant}`,
        cognitoIdentityId: `eu-west-1:${c.tenant}-${sub(c)}`,
        cognitoIdentityPoolId: 'eu-west-1:pool-0001',
      },
    }),
  },
  {
    name: 'REST API, API key',
    api: 'rest',
    context: (c) => ({ authorizer: null, identity: { ...noRestIdentity(c), apiKey: `key-value-${c.tenant}-${c.user}`, apiKeyId: `${c.tenant}-${c.user}` } }),
  },
  {
    name: 'REST API, mutual TLS',
    api: 'rest',
    context: (c) => ({ authorizer: null, identity: { ...noRestIdentity(c), clientCert: certificate(c) } }),
  },
  {
    name: 'HTTP API, JWT authorizer (Cognito access token)',
    api: 'http',
    context: (c) => ({
      authorizer: {
        principalId: '',
        integrationLatency: 0,
        jwt: {
          claims: {
            sub: sub(c),
            username: c.user,
            'custom:tenant': c.tenant,
            client_id: 'client-app',
            token_use: 'access',
            scope: 'orders/write',
            iss: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example',
            version: '2',
            auth_time: String(ISSUED(c)),
            iat: String(ISSUED(c)),
            exp: String(ISSUED(c) + 3600),
            jti: `jti-${token(c)}`,
            origin_jti: `origin-${token(c)}`,
            event_id: `event-${token(c)}`,
          },
          scopes: ['orders/write'],
        },
      },
    }),
  },
  {
    // One person may belong to two tenants: the same subject, a different tenant id.
    name: 'HTTP API, JWT authorizer (Entra ID: the same subject in two tenants)',
    api: 'http',
    context: (c) => ({
      authorizer: {
        jwt: {
          claims: { ...entraIdClaims(c), iss: `https://login.microsoftonline.com/${c.tenant}/v2.0`, azp: 'client-app', ver: '2.0' },
          scopes: null,
        },
      },
    }),
  },
  {
    // An Entra ID v1.0 access token also says where and how its sign-in happened: the client's
    // address (`ipaddr`, `in_corp`, `fwd`), the methods and level (`amr`, `acr`) and the password's
    // expiry counted from `iat` (`pwd_exp`). A client that moves to another network, or signs in
    // again with another factor, refreshes its token with other values; it is the same caller.
    name: 'HTTP API, JWT authorizer (Entra ID v1.0 access token: sign-in address and methods)',
    api: 'http',
    context: (c) => ({
      authorizer: {
        jwt: {
          claims: {
            ...entraIdClaims(c),
            iss: `https://sts.windows.net/${c.tenant}/`,
            appid: 'client-app',
            ver: '1.0',
            ipaddr: `198.51.100.${token(c)}`,
            fwd: `192.0.2.${token(c)}`,
            in_corp: token(c) % 2 === 1 ? 'true' : 'false',
            amr: token(c) % 2 === 1 ? ['pwd'] : ['pwd', 'mfa'],
            acr: String(token(c) % 2),
            pwd_exp: String(86_400 - token(c)),
          },
          scopes: null,
        },
      },
    }),
  },
  {
    // Payload format 1.0 puts a JWT authorizer's output beside the REST API's identity block, flat:
    // `authorizer: { claims, scopes }`, every claim a string (as an Auth0 tenant's access token arrives).
    name: 'HTTP API with payload format 1.0, JWT authorizer (claims, scopes null)',
    api: 'rest',
    context: (c) => ({
      authorizer: {
        claims: {
          aud: 'orders.api',
          azp: 'client-app',
          gty: 'password',
          iss: `https://${c.tenant}.auth0.example/`,
          scope: 'orders:write',
          sub: `auth0|${sub(c)}`,
          iat: String(ISSUED(c)),
          exp: String(ISSUED(c) + 3600),
        },
        scopes: null,
      },
      identity: noRestIdentity(c),
      stage: '$default',
    }),
  },
  {
    name: 'HTTP API with payload format 1.0, JWT authorizer (claims and scopes)',
    api: 'rest',
    context: (c) => ({
      authorizer: {
        claims: {
          sub: sub(c),
          'custom:tenant': c.tenant,
          client_id: 'client-app',
          token_use: 'access',
          auth_time: String(ISSUED(c)),
          iat: String(ISSUED(c)),
          exp: String(ISSUED(c) + 3600),
          jti: `jti-${token(c)}`,
        },
        scopes: ['orders/write'],
      },
      identity: noRestIdentity(c),
      stage: '$default',
    }),
  },
  {
    name: 'HTTP API, Lambda authorizer with a simple response (no principal, the tenant in its context)',
    api: 'http',
    context: (c) => ({ authorizer: { lambda: { tenantId: c.tenant, userId: c.user } } }),
  },
  {
    name: 'HTTP API, Lambda authorizer whose context copies the token claims',
    api: 'http',
    context: (c) => ({
      authorizer: {
        lambda: { principalId: 'user', tenant: c.tenant, user: c.user, iat: ISSUED(c), exp: ISSUED(c) + 3600, jti: `jti-${token(c)}`, auth_time: ISSUED(c) },
      },
    }),
  },
  {
    name: 'HTTP API, IAM authorizer',
    api: 'http',
    context: (c) => ({
      authorizer: { iam: iamCaller(c, `arn:aws:sts::${account(c)}:assumed-role/orders-client/${c.user}`, `AROAEXAMPLE:${c.user}`, null) },
    }),
  },
  {
    name: 'HTTP API, IAM authorizer with a Cognito identity pool',
    api: 'http',
    context: (c) => ({
      authorizer: {
        iam: iamCaller(
          c,
          'arn:aws:sts::123456789012:assumed-role/Cognito_OrdersAuth_Role/CognitoIdentityCredentials',
          'AROAEXAMPLE:CognitoIdentityCredentials',
          {
            amr: ['authenticated', 'cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example'],
            identityId: `eu-west-1:${c.tenant}-${sub(c)}`,
            identityPoolId: 'eu-west-1:pool-0001',
          },
        ),
      },
    }),
  },
  {
    name: 'HTTP API, mutual TLS',
    api: 'http',
    context: (c) => ({ authentication: { clientCert: certificate(c) } }),
  },
  {
    name: 'Function URL, AWS_IAM auth',
    api: 'url',
    context: (c) => ({ authorizer: { iam: iamCaller(c, `arn:aws:iam::${account(c)}:user/${c.user}`, `AIDAEXAMPLE${c.user}`, null) } }),
  },
];

/** Requests that carry an authorizer saying nothing that tells one caller from another. */
export const SILENT_AUTHORIZERS: ReadonlyArray<readonly [name: string, api: GatewayApi, context: Record<string, unknown>]> = [
  [
    'REST API, Lambda authorizer with an empty principal and no context',
    'rest',
    { authorizer: { principalId: '', integrationLatency: 4 }, identity: noRestIdentity() },
  ],
  ['HTTP API, Lambda authorizer with a simple response and no context', 'http', { authorizer: { lambda: null } }],
  ['HTTP API, Lambda authorizer with an empty context', 'http', { authorizer: { lambda: {} } }],
  [
    'HTTP API, JWT authorizer with only per-token claims',
    'http',
    { authorizer: { jwt: { claims: { iat: EPOCH, exp: EPOCH + 3600, jti: 'j' }, scopes: null } } },
  ],
  [
    'HTTP API with payload format 1.0, JWT authorizer with only per-token claims',
    'rest',
    { authorizer: { claims: { iat: String(EPOCH), exp: String(EPOCH + 3600), jti: 'j' }, scopes: null }, identity: noRestIdentity(), stage: '$default' },
  ],
  ['HTTP API, JWT authorizer with only per-token claims and an empty list of scopes', 'http', { authorizer: { jwt: { claims: { jti: 'j' }, scopes: [] } } }],
  ['an empty authorizer', 'http', { authorizer: {} }],
];

/** Requests with no authorizer and no identity: open APIs. */
export const ANONYMOUS: ReadonlyArray<readonly [name: string, api: GatewayApi, context: Record<string, unknown>]> = [
  ['REST API, no authorization', 'rest', { authorizer: null, identity: noRestIdentity() }],
  ['REST API, no authorizer member at all', 'rest', { identity: noRestIdentity() }],
  // AWS's documented example of payload format 1.0: the JWT authorizer's place, empty, on a route without one
  // (events captured from such routes have no authorizer member, the case above).
  ['HTTP API with payload format 1.0, no authorization', 'rest', { authorizer: { claims: null, scopes: null }, identity: noRestIdentity(), stage: '$default' }],
  ['HTTP API, no authorization', 'http', {}],
  ['Function URL, auth type NONE', 'url', {}],
];

/** What the target group of `albEvent` says. */
export const TARGET_GROUP_ARN = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/orders/6d0ecf831eec9f09';

export interface AlbRequest extends HttpRequest {
  /** @default 'POST' */
  readonly method?: string;
  /** @default '/orders' */
  readonly path?: string;
  /** More headers, by lower-case name; a list for a header sent more than once. */
  readonly headers?: Readonly<Record<string, string | readonly string[]>>;
  /** The target group's `lambda.multi_value_headers.enabled`. @default false */
  readonly multiValue?: boolean;
}

/**
 * A request as an Application Load Balancer sends it (AWS's "Lambda functions as targets" page):
 * header names in lower case; query names and values as the client encoded them, never decoded;
 * with multi-value headers enabled every header and parameter as a list under `multiValueHeaders`
 * and `multiValueQueryStringParameters`, otherwise only the last value of each under `headers` and
 * `queryStringParameters`. No body arrives as an empty string.
 */
export function albEvent(request: AlbRequest = {}): ALBEvent {
  const method = request.method ?? 'POST';
  const body = request.body ?? (method === 'GET' || method === 'HEAD' ? '' : '{"amount":1000}');
  const headers: Record<string, string[]> = {
    accept: ['application/json'],
    'accept-language': ['en-US,en;q=0.8'],
    ...(body === '' ? {} : { 'content-type': [request.contentType ?? 'application/json'] }),
    host: ['orders-1234567890.eu-west-1.elb.amazonaws.com'],
    'user-agent': ['curl/8.5.0'],
    'x-amzn-trace-id': ['Root=1-6787a3c0-0123456789abcdef01234567'],
    'x-forwarded-for': ['203.0.113.7'],
    'x-forwarded-port': ['443'],
    'x-forwarded-proto': ['https'],
  };
  if (request.key !== undefined) headers['idempotency-key'] = [request.key];
  for (const [name, value] of Object.entries(request.headers ?? {})) headers[name] = typeof value === 'string' ? [value] : [...value];
  const query: Record<string, string[]> = Object.create(null);
  for (const pair of (request.query ?? '').split('&')) {
    if (pair === '') continue;
    const at = pair.indexOf('=');
    (query[at < 0 ? pair : pair.slice(0, at)] ??= []).push(at < 0 ? '' : pair.slice(at + 1));
  }
  const last = (lists: Record<string, string[]>) => Object.fromEntries(Object.entries(lists).map(([name, values]) => [name, values.at(-1)!]));
  return {
    requestContext: { elb: { targetGroupArn: TARGET_GROUP_ARN } },
    httpMethod: method,
    path: request.path ?? '/orders',
    ...(request.multiValue
      ? { multiValueQueryStringParameters: { ...query }, multiValueHeaders: headers }
      : { queryStringParameters: last(query), headers: last(headers) }),
    body,
    isBase64Encoded: request.isBase64Encoded ?? false,
  };
}

/** An event of `api` whose requestContext carries `context` (an ALB event carries only its target group). */
export function httpEvent(api: GatewayApi, context: Record<string, unknown>, request?: HttpRequest): HttpEvent;
export function httpEvent(api: Api, context: Record<string, unknown>, request?: HttpRequest): HttpEvent | ALBEvent;
export function httpEvent(api: Api, context: Record<string, unknown>, request: HttpRequest = {}): HttpEvent | ALBEvent {
  if (api === 'alb' || api === 'alb-multi') return albEvent({ ...request, multiValue: api === 'alb-multi' });
  const body = request.body ?? '{"amount":1000}';
  if (api === 'rest') {
    const headers: Record<string, string> = {
      'Content-Type': request.contentType ?? 'application/json',
      Host: 'a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com',
    };
    if (request.key !== undefined) headers['Idempotency-Key'] = request.key;
    const query = new URLSearchParams(request.query ?? '');
    const names = [...new Set(query.keys())];
    const event: APIGatewayProxyEvent = {
      resource: '/orders',
      path: '/orders',
      httpMethod: 'POST',
      headers,
      multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, [value]])),
      queryStringParameters: names.length ? Object.fromEntries(names.map((name) => [name, query.getAll(name).at(-1)!])) : null,
      multiValueQueryStringParameters: names.length ? Object.fromEntries(names.map((name) => [name, query.getAll(name)])) : null,
      pathParameters: null,
      stageVariables: null,
      requestContext: {
        accountId: '123456789012',
        apiId: 'a1b2c3d4e5',
        protocol: 'HTTP/1.1',
        httpMethod: 'POST',
        path: '/prod/orders',
        stage: 'prod',
        requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
        requestTimeEpoch: EPOCH * 1000,
        resourceId: 'x1y2z3',
        resourcePath: '/orders',
        ...context,
      } as unknown as APIGatewayProxyEvent['requestContext'],
      body,
      isBase64Encoded: request.isBase64Encoded ?? false,
    };
    return event;
  }
  const domainName = api === 'url' ? 'abcdefghij.lambda-url.eu-west-1.on.aws' : 'q1w2e3r4t5.execute-api.eu-west-1.amazonaws.com';
  const routeKey = api === 'url' ? '$default' : 'POST /orders';
  const headers: Record<string, string> = { 'content-type': request.contentType ?? 'application/json', host: domainName };
  if (request.key !== undefined) headers['idempotency-key'] = request.key;
  const event: APIGatewayProxyEventV2 = {
    version: '2.0',
    routeKey,
    rawPath: '/orders',
    rawQueryString: request.query ?? '',
    headers,
    requestContext: {
      accountId: api === 'url' ? 'anonymous' : '123456789012',
      apiId: api === 'url' ? 'abcdefghij' : 'q1w2e3r4t5',
      domainName,
      domainPrefix: domainName.split('.')[0]!,
      http: { method: 'POST', path: '/orders', protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'client/1' },
      requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
      routeKey,
      stage: '$default',
      time: '15/Jan/2025:12:00:00 +0000',
      timeEpoch: EPOCH * 1000,
      ...context,
    },
    body,
    isBase64Encoded: request.isBase64Encoded ?? false,
  };
  return event;
}

/** The event `caller` sends through `shape`. */
export const eventFor = (shape: IdentityShape, caller: Caller, request: HttpRequest = {}): HttpEvent => httpEvent(shape.api, shape.context(caller), request);
