import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import { IdempotencyError } from './errors.js';
import { canonicalJson } from './key.js';

/** API Gateway REST (v1), HTTP API (v2) and Function URL events. */
export type HttpEvent = APIGatewayProxyEvent | APIGatewayProxyEventV2;

/*
 * What an HTTP request says about idempotency: its key, its scope (method, route, caller) and its
 * fingerprint (method, path, query, body).
 */

const HEADER = 'idempotency-key';
const MAX_KEY_LENGTH = 255;

/** The `Idempotency-Key` value: a bare token or a structured-field string; `undefined` when absent. @internal */
export function readIdempotencyKey(event: HttpEvent): string | undefined {
  let raw: string | undefined;
  const seen = new Set<string>();
  for (const [name, value] of Object.entries(event.headers ?? {})) {
    if (name.toLowerCase() !== HEADER || value === undefined || value === null) continue;
    if (typeof value !== 'string') throw new IdempotencyError('INVALID_KEY', 'The Idempotency-Key header must be a string.');
    seen.add((raw = value));
  }
  // Sent twice, under one name or under names that differ only in case.
  let count = 0;
  const multi = (event as APIGatewayProxyEvent).multiValueHeaders;
  for (const [name, values] of Object.entries(multi ?? {})) if (name.toLowerCase() === HEADER) count += values?.length ?? 0;
  if (count > 1 || seen.size > 1) throw new IdempotencyError('INVALID_KEY', 'The Idempotency-Key header must be sent once.');
  if (raw === undefined) return undefined;
  let key = raw.trim();
  if (key.length >= 2 && key.startsWith('"') && key.endsWith('"')) {
    key = key.slice(1, -1);
    if (/(^|[^\\])(\\\\)*"/.test(key) || /[^\x20-\x7e]/.test(key)) {
      throw new IdempotencyError('INVALID_KEY', 'The Idempotency-Key header is not a valid structured-field string.');
    }
    key = key.replace(/\\(["\\])/g, '$1');
  } else if (/[^\x21-\x7e]/.test(key)) {
    throw new IdempotencyError('INVALID_KEY', 'The Idempotency-Key header must be visible ASCII characters (or a quoted string).');
  }
  if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new IdempotencyError('INVALID_KEY', `The Idempotency-Key header must be 1 to ${MAX_KEY_LENGTH} characters long.`);
  }
  return key;
}

export const isV2 = (event: HttpEvent): event is APIGatewayProxyEventV2 => (event as APIGatewayProxyEventV2).version === '2.0';

/** Method and route template (the actual path when there is no template, as for Function URLs). @internal */
export function route(event: HttpEvent): [method: string, route: string, path: string] {
  if (isV2(event)) {
    const method = event.requestContext.http.method.toUpperCase();
    const template = event.routeKey && event.routeKey !== '$default' ? event.routeKey : `${method} ${event.rawPath}`;
    return [method, template, event.rawPath];
  }
  return [event.httpMethod.toUpperCase(), event.resource ?? event.path, event.path];
}

/** The caller identity the event carries, if any. @internal */
export function callerIdentity(event: HttpEvent): string | undefined {
  const ctx = event.requestContext as unknown as Record<string, unknown> & {
    authorizer?: Record<string, unknown> & {
      principalId?: string;
      claims?: { sub?: string };
      jwt?: { claims?: { sub?: string } };
      lambda?: { principalId?: string; sub?: string };
      iam?: { userArn?: string; userId?: string };
    };
    identity?: { apiKeyId?: string; cognitoIdentityId?: string; userArn?: string };
  };
  const a = ctx.authorizer;
  const id =
    a?.jwt?.claims?.sub ?? a?.claims?.sub ?? a?.lambda?.principalId ?? a?.lambda?.sub ?? a?.principalId ?? a?.iam?.userArn ??
    ctx.identity?.cognitoIdentityId ?? ctx.identity?.userArn ?? ctx.identity?.apiKeyId;
  return typeof id === 'string' && id.length > 0 ? id : undefined;
}

export function query(event: HttpEvent): Record<string, string[]> {
  // No prototype: parameters named `__proto__` or `constructor` are parameters like any other.
  const out: Record<string, string[]> = Object.create(null);
  if (isV2(event)) {
    for (const [name, value] of new URLSearchParams(event.rawQueryString ?? '')) (out[name] ??= []).push(value);
  } else if (event.multiValueQueryStringParameters) {
    for (const [name, values] of Object.entries(event.multiValueQueryStringParameters)) out[name] = [...(values ?? [])];
  } else {
    for (const [name, value] of Object.entries(event.queryStringParameters ?? {})) if (value !== undefined) out[name] = [value];
  }
  return out;
}

/** The request body for the fingerprint: JSON parsed (whitespace and member order do not matter), base64 decoded. */
export function body(event: HttpEvent): unknown {
  if (event.body === undefined || event.body === null) return null;
  const bytes = Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8');
  try {
    // Canonical here, so a body JSON parses but cannot hash (nested too deep) falls back to its bytes
    // instead of being reported as an invalid Idempotency-Key.
    return { json: canonicalJson(JSON.parse(bytes.toString('utf8'))) ?? null };
  } catch {
    // The same bytes give the same fingerprint whether or not API Gateway base64-encoded them.
    return { bytes: bytes.toString('base64') };
  }
}

