/**
 * Who calls: every identity shape API Gateway REST APIs, HTTP APIs and Function URLs deliver tells
 * callers apart (tenants, and users within a tenant) and stays the same across token refreshes;
 * an authorizer that identifies nobody never silently means "everybody".
 */
import type { ALBEvent } from 'aws-lambda';
import fc from 'fast-check';
import { callerOf } from '../../lib/http-caller.js';
import { callerIdentity } from '../../lib/index.js';
import {
  ANONYMOUS,
  albEvent,
  type Caller,
  eventFor,
  type GatewayApi,
  httpEvent,
  IDENTITY_SHAPES,
  noRestIdentity,
  SILENT_AUTHORIZERS,
} from '../support/identity-events.js';

const RUNS = { numRuns: 300, seed: Number(process.env.FC_SEED ?? 20_250_115) };

const alice: Caller = { tenant: 'tenant-a', user: 'alice' };

describe.each(IDENTITY_SHAPES)('$name', (shape) => {
  const identity = (caller: Caller) => callerIdentity(eventFor(shape, caller));

  test('identifies the caller', () => {
    expect(identity(alice)).toEqual(expect.any(String));
  });

  test('the same caller with a refreshed token (new credentials, a renewed certificate) is the same caller', () => {
    expect(identity({ ...alice, token: 2 })).toBe(identity(alice));
    expect(identity({ ...alice, token: 97 })).toBe(identity(alice));
  });

  test('the same user name in another tenant is another caller', () => {
    expect(identity({ ...alice, tenant: 'tenant-b' })).not.toBe(identity(alice));
  });

  test('another user of the same tenant is another caller', () => {
    expect(identity({ ...alice, user: 'bob' })).not.toBe(identity(alice));
  });

  test('the default scope uses it', () => {
    expect(callerOf(undefined)(eventFor(shape, alice))).toBe(identity(alice));
  });
});

test('the same text from different sources is different callers: a principal never aliases an API key id, a subject or an IAM user', () => {
  const id = 'k9x8c7';
  const identities = [
    httpEvent('rest', { authorizer: { principalId: id }, identity: noRestIdentity() }),
    httpEvent('rest', { authorizer: null, identity: { ...noRestIdentity(), apiKeyId: id } }),
    httpEvent('rest', { authorizer: null, identity: { ...noRestIdentity(), userArn: id } }),
    httpEvent('rest', { authorizer: { claims: { sub: id } }, identity: noRestIdentity() }),
    httpEvent('http', { authorizer: { jwt: { claims: { sub: id }, scopes: null } } }),
    httpEvent('http', { authorizer: { lambda: { principalId: id } } }),
    httpEvent('http', { authorizer: { iam: { userArn: id } } }),
    httpEvent('http', { authentication: { clientCert: { subjectDN: id } } }),
  ].map(callerIdentity);
  expect(new Set(identities).size).toBe(identities.length);
});

test('a request that carries several identities (a Lambda authorizer and an API key, an authorizer and a client certificate) is told apart by each of them', () => {
  // AWS's sample Lambda authorizer returns the constant principal 'user'.
  const rest = (apiKeyId: string) => httpEvent('rest', { authorizer: { principalId: 'user' }, identity: { ...noRestIdentity(), apiKeyId } });
  expect(callerIdentity(rest('key-a'))).not.toBe(callerIdentity(rest('key-b')));
  expect(callerIdentity(rest('key-a'))).toBe(callerIdentity(rest('key-a')));
  const http = (subjectDN: string) =>
    httpEvent('http', { authorizer: { lambda: { principalId: 'user' } }, authentication: { clientCert: { subjectDN, issuerDN: 'CN=Example CA' } } });
  expect(callerIdentity(http('CN=alice'))).not.toBe(callerIdentity(http('CN=bob')));
});

test('a client certificate with the same subject from another certificate authority is another caller (mutual TLS on a REST API, an HTTP API)', () => {
  const subjectDN = 'CN=alice,O=tenant-a';
  const fromCa = (issuerDN: string) => [
    httpEvent('rest', { authorizer: null, identity: { ...noRestIdentity(), clientCert: { subjectDN, issuerDN } } }),
    httpEvent('http', { authentication: { clientCert: { subjectDN, issuerDN } } }),
  ];
  const ours = fromCa('CN=Example Private CA,O=Example').map(callerIdentity);
  const theirs = fromCa('CN=Partner CA,O=Partner').map(callerIdentity);
  for (const [index, identity] of ours.entries()) {
    expect(identity).toEqual(expect.any(String));
    expect(theirs[index]).not.toBe(identity);
  }
});

test('the identity is a canonical JSON text of what the authorizer says, pinned so that records written by one version are found by the next', () => {
  const [sample] = IDENTITY_SHAPES;
  expect(callerIdentity(eventFor(sample!, alice))).toBe(
    '{"authorizer":{"booleanKey":"true","numberKey":"1","principalId":"user","stringKey":"value","tenantId":"tenant-a","userId":"alice"}}',
  );
});

describe.each(SILENT_AUTHORIZERS)('%s', (_name, api, context) => {
  const event = httpEvent(api, context);

  test('identifies nobody', () => {
    expect(callerIdentity(event)).toBeUndefined();
  });

  test('the default scope refuses it with a TypeError that says what to configure, instead of sharing keys among callers', () => {
    expect(() => callerOf(undefined)(event)).toThrow(TypeError);
    expect(() => callerOf(undefined)(event)).toThrow(/authorizer.*`scope`.*'shared'/s);
  });

  test("with scope 'shared', every caller shares the key", () => {
    expect(callerOf('shared')(event)).toBeNull();
  });
});

describe.each(ANONYMOUS)('%s', (_name, api, context) => {
  test('identifies nobody, and the default scope shares keys among all callers (an open API has no callers to tell apart)', () => {
    const event = httpEvent(api, context);
    expect(callerIdentity(event)).toBeUndefined();
    expect(callerOf(undefined)(event)).toBeNull();
  });
});

test("'shared' shares keys even when the request identifies its caller", () => {
  for (const shape of IDENTITY_SHAPES) expect(callerOf('shared')(eventFor(shape, alice))).toBeNull();
});

test('a scope function decides alone: what it returns is the caller, `undefined` shares the key', () => {
  const [sample] = IDENTITY_SHAPES;
  expect(callerOf(() => 'acme')(eventFor(sample!, alice))).toBe('acme');
  const [, api, context] = SILENT_AUTHORIZERS[0]!;
  expect(callerOf(() => undefined)(httpEvent(api, context))).toBeNull();
});

describe.each([false, true])('an Application Load Balancer request (multi-value headers: %s)', (multiValue) => {
  // What ALB authentication adds: plain-text headers a client can also send, and claims signed by the load balancer.
  const oidc = { 'x-amzn-oidc-identity': 'alice-0f1e2d3c', 'x-amzn-oidc-accesstoken': 'eyJ.access.token', 'x-amzn-oidc-data': 'eyJ.claims.signature' };

  test('the default scope refuses it, even with ALB authentication headers: they can come from the client', () => {
    for (const headers of [{}, oidc]) {
      const event = albEvent({ key: 'k-1', headers, multiValue });
      expect(() => callerOf(undefined)(event)).toThrow(TypeError);
      expect(() => callerOf(undefined)(event)).toThrow(/Application Load Balancer.*x-amzn-oidc-identity.*`scope`.*'shared'/s);
    }
  });

  test("a scope function gets the event, and 'shared' shares the key", () => {
    const event = albEvent({ key: 'k-1', headers: { 'x-tenant-id': 'acme' }, multiValue });
    expect(callerOf<ALBEvent>((e) => e.headers?.['x-tenant-id'] ?? e.multiValueHeaders?.['x-tenant-id']?.[0])(event)).toBe('acme');
    expect(callerOf<ALBEvent>('shared')(event)).toBeNull();
  });
});

test("the caller's address and user agent identify nobody", () => {
  const open = (token: number) => httpEvent('rest', { authorizer: null, identity: noRestIdentity({ ...alice, token }) });
  expect(callerIdentity(open(1))).toBeUndefined();
  expect(callerIdentity(open(2))).toBeUndefined();
});

// ---------------------------------------------------------------------------------------------
// Properties: any context an authorizer may return

/** Names that describe one token (in claims: all of them; in a Lambda authorizer's context: the first six). */
const PER_TOKEN = [
  'iat',
  'exp',
  'nbf',
  'jti',
  'auth_time',
  'integrationLatency',
  'nonce',
  'at_hash',
  'c_hash',
  's_hash',
  'sid',
  'session_state',
  'event_id',
  'origin_jti',
  'uti',
  'aio',
  'rh',
];
const contextName = fc.string({ minLength: 1, maxLength: 8 }).filter((name) => !PER_TOKEN.includes(name) && name !== '__proto__');
const contextValue = fc.oneof(fc.string({ minLength: 1, maxLength: 6 }), fc.integer(), fc.boolean());
const context = fc.dictionary(contextName, contextValue, { minKeys: 1, maxKeys: 6 });
const perToken = fc.record({ iat: fc.integer(), exp: fc.integer(), nbf: fc.integer(), jti: fc.uuid(), auth_time: fc.integer() }, { requiredKeys: [] });

/** Where a context's members arrive, per API. */
const PLACES: ReadonlyArray<[name: string, wrap: (members: Record<string, unknown>) => HttpEventArgs]> = [
  [
    'a REST API Lambda authorizer',
    (members) => ['rest', { authorizer: { principalId: 'user', integrationLatency: 1, ...members }, identity: noRestIdentity() }],
  ],
  ['an HTTP API Lambda authorizer', (members) => ['http', { authorizer: { lambda: members } }]],
  ['HTTP API JWT claims', (members) => ['http', { authorizer: { jwt: { claims: members, scopes: null } } }]],
  ['REST API Cognito claims', (members) => ['rest', { authorizer: { claims: members }, identity: noRestIdentity() }]],
];
type HttpEventArgs = [GatewayApi, Record<string, unknown>];

describe.each(PLACES)('in %s', (_name, wrap) => {
  const identity = (members: Record<string, unknown>) => callerIdentity(httpEvent(...wrap(members)));

  test('two contexts that differ in any member are two callers', () => {
    fc.assert(
      fc.property(context, context, (a, b) => {
        fc.pre(JSON.stringify(Object.entries(a).sort()) !== JSON.stringify(Object.entries(b).sort()));
        expect(identity(a)).not.toBe(identity(b));
      }),
      RUNS,
    );
  });

  test('per-token members and member order never change the caller', () => {
    fc.assert(
      fc.property(context, perToken, (members, token) => {
        const reversed = Object.fromEntries(Object.entries(members).reverse());
        expect(identity({ ...token, ...reversed })).toBe(identity(members));
      }),
      RUNS,
    );
  });
});

describe('a JWT claim that describes one token or one sign-in session', () => {
  /** Every claim the identity leaves out of JWT and Cognito claims (a sign-in with another factor, on another network, refreshes them). */
  const PER_TOKEN_CLAIMS = [...PER_TOKEN.filter((name) => name !== 'integrationLatency'), ...['amr', 'acr', 'acrs', 'ipaddr', 'fwd', 'in_corp', 'pwd_exp']];
  const places: ReadonlyArray<[name: string, claimsEvent: (claims: Record<string, unknown>) => HttpEventArgs]> = [
    ['HTTP API JWT claims', (claims) => ['http', { authorizer: { jwt: { claims, scopes: ['orders/write'] } } }]],
    ['REST API Cognito claims', (claims) => ['rest', { authorizer: { claims }, identity: noRestIdentity() }]],
  ];

  test.each(places)('never changes the caller, in %s', (_name, claimsEvent) => {
    const identity = (claims: Record<string, unknown>) => callerIdentity(httpEvent(...claimsEvent({ sub: 'alice', ...claims })));
    for (const name of PER_TOKEN_CLAIMS) expect([name, identity({ [name]: 'session-2' })]).toEqual([name, identity({ [name]: 'session-1' })]);
  });

  test("in a Lambda authorizer's context means what its author chose: the same names tell callers apart (a `sid` may be a site)", () => {
    const identity = (context: Record<string, unknown>) => callerIdentity(httpEvent('http', { authorizer: { lambda: { principalId: 'alice', ...context } } }));
    for (const name of PER_TOKEN_CLAIMS.filter((claim) => !['iat', 'exp', 'nbf', 'jti', 'auth_time'].includes(claim))) {
      expect([name, identity({ [name]: 'site-2' })]).not.toEqual([name, identity({ [name]: 'site-1' })]);
    }
  });
});

test('an IAM caller with the same Cognito identity id in another identity pool is another caller', () => {
  const inPool = (identityPoolId: string) =>
    callerIdentity(
      httpEvent('http', { authorizer: { iam: { accountId: '123456789012', cognitoIdentity: { identityId: 'eu-west-1:alice', identityPoolId } } } }),
    );
  expect(inPool('eu-west-1:pool-a')).toEqual(expect.any(String));
  expect(inPool('eu-west-1:pool-b')).not.toBe(inPool('eu-west-1:pool-a'));
});

test('the scopes an HTTP API JWT authorizer grants are part of the caller: a token for other scopes is another caller', () => {
  const withScopes = (scopes: string[]) => callerIdentity(httpEvent('http', { authorizer: { jwt: { claims: { sub: 'client-1' }, scopes } } }));
  expect(withScopes(['orders/read'])).not.toBe(withScopes(['orders/write']));
});

describe("a token's scopes are a set (RFC 6749 §3.3: their order does not matter)", () => {
  /** Where a JWT authorizer reports a token's scopes, as the IdP listed them. */
  const places: ReadonlyArray<[name: string, event: (scopes: string[]) => HttpEventArgs]> = [
    ['HTTP API JWT scopes and `scope` claim', (s) => ['http', { authorizer: { jwt: { claims: { sub: 'alice', scope: s.join(' ') }, scopes: s } } }]],
    ['HTTP API JWT `scp` claim (Entra ID)', (s) => ['http', { authorizer: { jwt: { claims: { oid: 'alice', scp: s.join(' ') }, scopes: null } } }]],
    ['payload format 1.0 JWT scopes and claims', (s) => ['http', { authorizer: { claims: { sub: 'alice', scope: s.join(' ') }, scopes: s } }]],
    ['REST API Cognito claims', (s) => ['rest', { authorizer: { claims: { sub: 'alice', scope: s.join(' ') } }, identity: noRestIdentity() }]],
    ['a `scp` list (Okta)', (s) => ['rest', { authorizer: { claims: { sub: 'alice', scp: s } }, identity: noRestIdentity() }]],
    // An HTTP API JWT authorizer passes a claim that is a list as the text `[a b]`: Okta's `scp` arrives so.
    [
      'an HTTP API JWT `scp` list (Okta), as API Gateway passes it',
      (s) => ['http', { authorizer: { jwt: { claims: { sub: 'alice', scp: `[${s.join(' ')}]` }, scopes: s } } }],
    ],
  ];

  test.each(places)('a refreshed token that lists the same scopes in another order, or one twice, is the same caller: %s', (_name, event) => {
    const identity = (scopes: string[]) => callerIdentity(httpEvent(...event(scopes)));
    expect(identity(['orders/read', 'orders/write', 'openid'])).toBe(identity(['openid', 'orders/write', 'orders/read']));
    expect(identity(['orders/write', 'openid', 'orders/write'])).toBe(identity(['openid', 'orders/write']));
  });

  test.each(places)('a token with other scopes is another caller: %s', (_name, event) => {
    const identity = (scopes: string[]) => callerIdentity(httpEvent(...event(scopes)));
    expect(identity(['openid', 'orders/read'])).not.toBe(identity(['openid', 'orders/write']));
    expect(identity(['openid'])).not.toBe(identity(['openid', 'orders/write']));
  });

  test("in a Lambda authorizer's context, a `scope` means what its author chose: its text counts as sent", () => {
    const identity = (scope: string) => callerIdentity(httpEvent('http', { authorizer: { lambda: { principalId: 'alice', scope } } }));
    expect(identity('a b')).not.toBe(identity('b a'));
  });

  test("in a REST API Lambda authorizer's context, `scopes` is a value like any other: its text counts as sent", () => {
    const identity = (scopes: string) => callerIdentity(httpEvent('rest', { authorizer: { principalId: 'alice', scopes }, identity: noRestIdentity() }));
    expect(identity('a b')).not.toBe(identity('b a'));
    expect(identity('a a')).not.toBe(identity('a'));
  });

  test('a claim that opens with `[` but does not close it is a space-separated list: its last scope counts whole', () => {
    const identity = (scope: string) => callerIdentity(httpEvent('http', { authorizer: { jwt: { claims: { sub: 'alice', scope }, scopes: null } } }));
    expect(identity('[openid orders/read')).not.toBe(identity('[openid orders/reaX'));
    expect(identity('[openid orders/read')).toBe(identity('orders/read [openid'));
  });
});
