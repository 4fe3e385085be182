import { isIdempotencyError } from './errors.js';
import { type AnyHttpEvent, type HttpEvent, headerList, isAlb, isV2 } from './http-request.js';
import { canonicalJson } from './key.js';

/*
 * Who sent an HTTP request, as API Gateway and Function URLs report it. A tenant must never replay
 * another tenant's response, so the caller is everything the request says about its sender (the
 * authorizer's principal, claims and context, the IAM caller, the API key, the client certificate),
 * minus the values that describe one token rather than its holder: those change on every token
 * refresh, and a retry with a fresh token must still find its record.
 */

/**
 * JWT claims of one token or one sign-in session (RFC 7519, OpenID Connect, Cognito, Entra ID): its
 * times, ids and hashes, and where and how the sign-in happened (the client's address, the methods
 * and level of authentication, the authentication contexts an Entra ID step-up satisfied, Entra
 * ID's password expiry counted from `iat`), which a client that changes networks, signs in again
 * with another factor or passes a step-up refreshes with other values.
 */
const PER_TOKEN_CLAIMS = new Set([
  'iat',
  'exp',
  'nbf',
  'jti',
  'auth_time',
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
  'amr',
  'acr',
  'acrs',
  'ipaddr',
  'fwd',
  'in_corp',
  'pwd_exp',
]);

/**
 * In a Lambda authorizer's context the names mean what its author chose, so only names that mean
 * "this token" in every convention are dropped (a `sid` there may be a site id that tells tenants apart).
 */
const PER_TOKEN_CONTEXT = new Set(['iat', 'exp', 'nbf', 'jti', 'auth_time', 'integrationLatency']);

/**
 * Claims that list a token's scopes: a set, whose order does not matter (RFC 6749, section 3.3), as a
 * space-separated string (`scope`, Entra ID's `scp`) or a list (Okta's `scp`, which an HTTP API JWT
 * authorizer passes on as the text `[a b]`).
 */
const SCOPE_CLAIMS = new Set(['scope', 'scp']);

/** IAM caller fields that name the principal (the access key changes with every set of temporary credentials). */
const IAM_FIELDS = ['accountId', 'callerId', 'principalOrgId', 'userArn', 'userId'];
const COGNITO_IDENTITY_FIELDS = ['identityId', 'identityPoolId'];

/** REST API `requestContext.identity` fields that name the caller (not its address, agent or access key). */
const REST_IDENTITY_FIELDS = [
  'accountId',
  'apiKeyId',
  'caller',
  'cognitoAuthenticationProvider',
  'cognitoAuthenticationType',
  'cognitoIdentityId',
  'cognitoIdentityPoolId',
  'principalOrgId',
  'user',
  'userArn',
];

/** A certificate renewed for the same subject by the same issuer is the same caller. */
const CERTIFICATE_FIELDS = ['subjectDN', 'issuerDN'];

type Json = Record<string, unknown>;

const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

const pick = (value: unknown, names: readonly string[]): Json | undefined =>
  isRecord(value) ? Object.fromEntries(names.map((name) => [name, value[name]])) : undefined;

/** `value` without the members named in `names`; anything but an object as it is. */
const without = (value: unknown, names: ReadonlySet<string>): unknown =>
  isRecord(value) ? Object.fromEntries(Object.entries(value).filter(([name]) => !names.has(name))) : value;

/** What remains once empty strings, nulls and empty objects or arrays are removed; `undefined` when nothing does. */
function substance(value: unknown): unknown {
  if (value === undefined || value === null || value === '') return undefined;
  if (Array.isArray(value)) {
    const items = value.map(substance).filter((item) => item !== undefined);
    return items.length > 0 ? items : undefined;
  }
  if (!isRecord(value)) return value;
  const members = Object.entries(value).flatMap(([name, member]) => {
    const kept = substance(member);
    return kept === undefined ? [] : [[name, kept] as const];
  });
  return members.length > 0 ? Object.fromEntries(members) : undefined;
}

/**
 * Scopes as a set: each once, in one order, in the form they came in (a space-separated string, the
 * `[a b]` text an HTTP API JWT authorizer makes of a claim that is a list, or a list); anything else
 * as it is. A refreshed token may list the same scopes in another order.
 */
function scopeSet(value: unknown): unknown {
  // Okta's `scp` list reaches the function through an HTTP API JWT authorizer as `[a b]`.
  const bracketed = typeof value === 'string' && value.startsWith('[') && value.endsWith(']');
  const names = typeof value === 'string' ? (bracketed ? value.slice(1, -1) : value).split(' ') : value;
  if (!Array.isArray(names) || !names.every((name): name is string => typeof name === 'string')) return value;
  const set = [...new Set(names.filter((name) => name !== ''))].sort();
  if (typeof value !== 'string') return set;
  return bracketed ? `[${set.join(' ')}]` : set.join(' ');
}

/** The claims of a token that describe its holder: without the per-token ones, its scopes as a set. */
function holderClaims(claims: unknown): unknown {
  const kept = without(claims, PER_TOKEN_CLAIMS);
  return isRecord(kept) ? Object.fromEntries(Object.entries(kept).map(([name, value]) => [name, SCOPE_CLAIMS.has(name) ? scopeSet(value) : value])) : kept;
}

function fromAuthorizer(authorizer: unknown): unknown {
  if (!isRecord(authorizer)) return authorizer;
  const out: Json = {};
  for (const [name, value] of Object.entries(authorizer)) {
    if (name === 'jwt' && isRecord(value)) out.jwt = { claims: holderClaims(value.claims), scopes: scopeSet(value.scopes) };
    else if (name === 'claims') out.claims = holderClaims(value);
    // An HTTP API JWT authorizer's scopes in payload format 1.0 (a REST Lambda authorizer's context holds no lists).
    else if (name === 'scopes' && Array.isArray(value)) out.scopes = scopeSet(value);
    else if (name === 'iam' && isRecord(value)) out.iam = { ...pick(value, IAM_FIELDS), cognitoIdentity: pick(value.cognitoIdentity, COGNITO_IDENTITY_FIELDS) };
    else if (name === 'lambda') out.lambda = without(value, PER_TOKEN_CONTEXT);
    else if (!PER_TOKEN_CONTEXT.has(name)) out[name] = value; // a REST Lambda authorizer: principalId and context, side by side
  }
  return out;
}

/**
 * The caller identity an API Gateway (REST or HTTP API) or Function URL event carries: a canonical
 * JSON text of the authorizer's principal, claims and context (without per-token values such as
 * `iat`, `exp` or `jti`, its scopes as a set), the IAM caller, the API key id and the client certificate's subject and
 * issuer; `undefined` when the event carries none of these. Equal for every request of one caller,
 * whatever its token; different for callers that differ in anything their authorizer says of them.
 * The text is a JSON object (`{…}`): a `scope` that falls back to a value the client sends must mark
 * that value, or a client could send a caller's identity text and share that caller's records.
 *
 * @example
 * ```ts
 * // Scope keys by the caller, and anonymous callers by a tenant header, marked so that it never equals an identity.
 * // A REST API's header names keep the case the client sent (an HTTP API's are lower case).
 * const tenantHeader = (headers: Record<string, string | undefined> | null) =>
 *   Object.entries(headers ?? {}).find(([name]) => name.toLowerCase() === 'x-tenant')?.[1] ?? '';
 * httpIdempotency({ store, scope: (event) => callerIdentity(event) ?? `anonymous:${tenantHeader(event.headers)}` });
 * ```
 */
export function callerIdentity(event: HttpEvent): string | undefined {
  const context = (event as { requestContext?: unknown }).requestContext;
  if (!isRecord(context)) return undefined;
  const identity = isRecord(context.identity) ? context.identity : undefined;
  const authentication = isRecord(context.authentication) ? context.authentication : undefined;
  const facts = substance({
    authorizer: fromAuthorizer(context.authorizer),
    identity: pick(identity, REST_IDENTITY_FIELDS),
    clientCert: pick(identity?.clientCert ?? authentication?.clientCert, CERTIFICATE_FIELDS),
  });
  return facts === undefined ? undefined : canonicalJson(facts);
}

/**
 * The `scope` option of `httpIdempotency`: a function that returns the caller of a request, as
 * something the request proves (an authorizer's output, a claim your code verified), or 'shared'
 * for keys shared by all callers. `TEvent` is the event type the middleware serves.
 *
 * @example
 * ```ts
 * // The tenant a REST API's Lambda authorizer verified, never a header that any client can set.
 * const byTenant: HttpScope<APIGatewayProxyEvent> = (event) => event.requestContext.authorizer?.tenantId;
 * const global: HttpScope = 'shared';
 * ```
 */
export type HttpScope<TEvent = HttpEvent> = ((event: TEvent) => string | undefined) | 'shared';

/**
 * The request carries credentials of its own (an `Authorization` or `Cookie` header, or the
 * `cookies` of an HTTP API or Function URL event): a function that verifies them itself knows a
 * caller that API Gateway and Lambda do not report. Only whether they are there counts. @internal
 */
export const carriesCredentials = (event: AnyHttpEvent): boolean =>
  Boolean(headerList(event, 'authorization') || headerList(event, 'cookie') || (isV2(event) && event.cookies?.length));

/**
 * The request's caller, `caller` (its {@link callerIdentity}), is its REST API key and nothing else:
 * one API key often serves every user of an app, which the function then authenticates itself, and
 * API Gateway does not authenticate callers with it. @internal
 */
export function identifiedByApiKeyOnly(event: AnyHttpEvent, caller: string): boolean {
  const context: unknown = event.requestContext;
  const identity = isRecord(context) ? context.identity : undefined;
  const apiKeyId = isRecord(identity) ? identity.apiKeyId : undefined;
  return typeof apiKeyId === 'string' && apiKeyId !== '' && caller === canonicalJson({ identity: { apiKeyId } });
}

/**
 * An HTTP API's payload format 1.0 carries `authorizer: { claims: null, scopes: null }` on a route
 * without an authorizer: the place a JWT authorizer's output would go, empty. It says there is no
 * authorizer, not that one identified nobody.
 */
const isNoJwtAuthorizer = (authorizer: unknown): boolean =>
  isRecord(authorizer) &&
  Object.keys(authorizer).length > 0 &&
  Object.entries(authorizer).every(([name, value]) => (name === 'claims' || name === 'scopes') && value === null);

/**
 * The caller part of a request's key. With a function, what it returns (`undefined`: shared);
 * with 'shared', nobody; by default the {@link callerIdentity}, shared only when the request
 * carries no authorizer and no identity at all. An authorizer that says nothing identifying is a
 * configuration the library cannot make safe by itself: a `TypeError`, before anything runs. So is
 * an Application Load Balancer request: its only identity is what the load balancer's
 * authentication puts in headers, `x-amzn-oidc-identity` in plain text and only `x-amzn-oidc-data`
 * signed (AWS asks that the signature and its signer be verified before any claim is trusted), and
 * a request the load balancer did not authenticate (another rule, or `allow` for unauthenticated
 * users) carries whatever headers of those names the client sent.
 * @internal
 */
export function callerOf<TEvent extends AnyHttpEvent>(scope: HttpScope<TEvent> | undefined): (event: TEvent) => string | null {
  if (scope === 'shared') return () => null;
  if (scope !== undefined) {
    return (event) => {
      let caller: unknown;
      try {
        caller = scope(event);
      } catch (error) {
        // Answered as it is, the scope's own IdempotencyError (a `hashKey` of a claim the request
        // lacks) would be a 400 that blames the client's valid key: it is a fault of the server.
        if (isIdempotencyError(error)) throw new TypeError(`httpIdempotency: \`scope\` threw an IdempotencyError (${error.code}).`, { cause: error });
        throw error;
      }
      // Hashed, the promise of an async scope would be refused as the client's key (a 400).
      if (caller instanceof Promise) {
        caller.catch(() => undefined);
        throw new TypeError("httpIdempotency: `scope` returned a promise: it must return the caller's identity (or undefined) synchronously.");
      }
      return (caller as string | undefined) ?? null;
    };
  }
  return (event) => {
    if (isAlb(event)) {
      throw new TypeError(
        'httpIdempotency: an Application Load Balancer request says nothing about its caller that the load balancer vouches for ' +
          "(a client can send x-amzn-oidc-identity itself), so its Idempotency-Key cannot be scoped to one caller by default. Set `scope` to a function that returns the caller from claims your code has verified (x-amzn-oidc-data), or to 'shared' " +
          "if every caller may replay every other caller's responses.",
      );
    }
    const caller = callerIdentity(event);
    if (caller !== undefined) return caller;
    const authorizer = isRecord(event.requestContext) ? (event.requestContext as { authorizer?: unknown }).authorizer : undefined;
    if (authorizer === undefined || authorizer === null || isNoJwtAuthorizer(authorizer)) return null;
    throw new TypeError(
      'httpIdempotency: the request carries an authorizer (requestContext.authorizer), but nothing in it identifies the caller, so its ' +
        "Idempotency-Key cannot be scoped to one caller. Set `scope` to a function that returns the caller's identity, or to 'shared' " +
        "if every caller may replay every other caller's responses.",
    );
  };
}
