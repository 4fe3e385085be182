import type { MiddlewareObj, Request } from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { IdempotencyEngine, type IdempotencyOptions } from './engine.js';
import { IdempotencyError, type IdempotencyErrorCode, isIdempotencyError } from './errors.js';
import { canonicalJson } from './key.js';
import { assertOptions } from './options.js';
import { RequestAttempts } from './request-attempts.js';

/** API Gateway REST (v1), HTTP API (v2) and Function URL events. */
export type HttpEvent = APIGatewayProxyEvent | APIGatewayProxyEventV2;

/** A proxy result (v1 or v2); v2 handlers may also return a plain value, sent as JSON with status 200. */
export interface HttpResult {
  statusCode?: number;
  headers?: Record<string, string | number | boolean>;
  multiValueHeaders?: Record<string, Array<string | number | boolean>>;
  cookies?: string[];
  body?: string;
  isBase64Encoded?: boolean;
}

export interface HttpIdempotencyOptions
  extends Pick<
    IdempotencyOptions<HttpEvent, Context>,
    'store' | 'name' | 'expiresAfterSeconds' | 'cacheSize' | 'now' | 'logger' | 'isFinalError' | 'errorFields' | 'atomic' | 'transactions' | 'observability'
  > {
  /** Reject requests without an `Idempotency-Key` header (400); when false they run without idempotency. @default true */
  readonly required?: boolean;
  /**
   * The caller identity that scopes keys, so one tenant can never replay another's response.
   * @default the authorizer principal, JWT `sub`, IAM user ARN or API key id the event carries
   */
  readonly scope?: (event: HttpEvent) => string | undefined;
  /** Upper bound of the `Retry-After` answered with a 409. @default 60 */
  readonly maxRetryAfterSeconds?: number;
  /** Which results are final: stored and replayed. Others release the key. @default below 500, except 408, 425 and 429 */
  readonly isFinalResponse?: (result: HttpResult) => boolean;
}

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

const isV2 = (event: HttpEvent): event is APIGatewayProxyEventV2 => (event as APIGatewayProxyEventV2).version === '2.0';

/** Method and route template (the actual path when there is no template, as for Function URLs). @internal */
function route(event: HttpEvent): [method: string, route: string, path: string] {
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

function query(event: HttpEvent): Record<string, string[]> {
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
function body(event: HttpEvent): unknown {
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

const PROBLEMS: Partial<Record<IdempotencyErrorCode, [status: number, title: string]>> = {
  KEY_MISSING: [400, 'Idempotency-Key is missing'],
  INVALID_KEY: [400, 'Idempotency-Key is invalid'],
  PAYLOAD_MISMATCH: [422, 'Idempotency-Key is already used'],
  IN_PROGRESS: [409, 'A request with this Idempotency-Key is being processed'],
  SUPERSEDED: [409, 'A newer attempt with this Idempotency-Key took over'],
  RESPONSE_NOT_STORED: [409, 'A request with this Idempotency-Key completed, but its response was not kept'],
  STORE_FAILURE: [503, 'Idempotency store unavailable'],
  COMMIT_FAILED: [503, 'The outcome of this request is not known yet'],
  TRANSACTION_CONDITION_FAILED: [409, 'The request conflicts with the current state'],
};

const DETAILS: Partial<Record<IdempotencyErrorCode, string>> = {
  KEY_MISSING: 'This operation requires an Idempotency-Key header.',
  INVALID_KEY: 'The Idempotency-Key header must be 1 to 255 visible ASCII characters, sent once.',
  PAYLOAD_MISMATCH: 'This Idempotency-Key was used with a different request; use a new key for a new request.',
  IN_PROGRESS: 'The original request is still in progress; retry after the time given in Retry-After.',
  SUPERSEDED: 'This attempt ran past its deadline and a retry took over; the retry carries the outcome.',
  RESPONSE_NOT_STORED: 'The original request completed, but its response was too large to keep; it will not be run again.',
  STORE_FAILURE: 'The request was not processed; retry later.',
  COMMIT_FAILED: 'The request may or may not have been applied; retry with the same Idempotency-Key after Retry-After to get its outcome.',
  TRANSACTION_CONDITION_FAILED: 'A condition of this request was not met; nothing was written.',
};

/** An RFC 9457 problem response for an idempotency rejection. @internal */
export function problem(error: IdempotencyError, maxRetryAfterSeconds: number): HttpResult | undefined {
  const entry = PROBLEMS[error.code];
  if (!entry) return undefined;
  const [status, title] = entry;
  const headers: Record<string, string> = { 'Content-Type': 'application/problem+json' };
  if (error.code === 'IN_PROGRESS') headers['Retry-After'] = String(Math.min(error.retryAfterSeconds ?? 1, maxRetryAfterSeconds));
  if (error.code === 'STORE_FAILURE') headers['Retry-After'] = '1';
  if (error.code === 'COMMIT_FAILED') headers['Retry-After'] = String(maxRetryAfterSeconds);
  return { statusCode: status, headers, body: JSON.stringify({ type: 'about:blank', title, status, detail: DETAILS[error.code] }) };
}

const normalize = (result: unknown): HttpResult =>
  result !== null && typeof result === 'object' && 'statusCode' in result
    ? (result as HttpResult)
    : { statusCode: 200, headers: { 'Content-Type': 'application/json' }, body: typeof result === 'string' ? result : JSON.stringify(result) };

/** Stands for a 5xx result: not final, never stored. */
const serverError = new Error('non-final HTTP result');

/** Statuses that ask the client to retry the same request: storing them would refuse every retry. */
const RETRYABLE = new Set([408, 425, 429]);

const defaultIsFinal = (result: HttpResult): boolean => {
  const status = result.statusCode ?? 200;
  return status < 500 && !RETRYABLE.has(status);
};

/**
 * Middy middleware implementing the `Idempotency-Key` header (IETF httpapi draft) for API Gateway
 * REST and HTTP APIs and Function URLs. Keys are scoped by method, route and caller identity; a
 * duplicate gets the stored response with `Idempotent-Replayed: true`; a different payload under
 * the same key gets 422, a request still in progress 409 with `Retry-After`, a missing or invalid
 * key 400, an unreachable store 503, all as `application/problem+json`. Results below 500 are
 * stored, except 408, 425 and 429; those, 5xx results and thrown errors release the key so the
 * client can retry.
 *
 * @example
 * ```ts
 * export const handler = middy(createPayment).use(httpIdempotency({ store }));
 * ```
 */
export function httpIdempotency(options: HttpIdempotencyOptions): MiddlewareObj<HttpEvent, unknown, Error, Context> {
  assertOptions('httpIdempotency', options, [
    'store', 'name', 'expiresAfterSeconds', 'cacheSize', 'now', 'logger', 'isFinalError', 'errorFields', 'atomic', 'transactions', 'observability',
    'required', 'scope', 'maxRetryAfterSeconds', 'isFinalResponse',
  ]);
  const { required = true, scope = callerIdentity, maxRetryAfterSeconds = 60, isFinalResponse = defaultIsFinal, ...common } = options;
  if (typeof required !== 'boolean') throw new TypeError('httpIdempotency: `required` must be a boolean.');
  if (typeof scope !== 'function') throw new TypeError('httpIdempotency: `scope` must be a function.');
  if (typeof isFinalResponse !== 'function') throw new TypeError('httpIdempotency: `isFinalResponse` must be a function.');
  if (!Number.isInteger(maxRetryAfterSeconds) || maxRetryAfterSeconds < 1) {
    throw new TypeError('httpIdempotency: `maxRetryAfterSeconds` must be a whole number of seconds, 1 or more.');
  }
  const { isFinalError } = common;
  if (isFinalError !== undefined && typeof isFinalError !== 'function') throw new TypeError('httpIdempotency: `isFinalError` must be a function.');
  const engine = new IdempotencyEngine<HttpEvent, Context>('httpIdempotency', {
    ...common,
    // A 5xx result is never final, whatever `isFinalError` says of errors.
    ...(isFinalError ? { isFinalError: (error: unknown) => error !== serverError && isFinalError(error) } : {}),
    onMissingKey: required ? 'throw' : 'skip',
    key: (event) => {
      const key = readIdempotencyKey(event);
      if (key === undefined) return undefined;
      const [method, template] = route(event);
      return { key, method, route: template, caller: scope(event) ?? null };
    },
    fingerprint: (event) => {
      const [method, , path] = route(event);
      return { method, path, query: query(event), body: body(event) };
    },
  });
  const attempts = new RequestAttempts();
  const replayed = (result: unknown): HttpResult => {
    const stored = normalize(result);
    return { ...stored, headers: { ...stored.headers, 'Idempotent-Replayed': 'true' } };
  };
  const rejection = (error: unknown): HttpResult | undefined => {
    // The key selector's own rejection (an invalid header) arrives as the cause.
    const cause = (error as { cause?: unknown } | null)?.cause;
    const rejected = cause instanceof IdempotencyError ? cause : error;
    return rejected instanceof IdempotencyError ? problem(rejected, maxRetryAfterSeconds) : undefined;
  };

  const httpIdempotencyBefore = async (request: Request<HttpEvent, unknown, Error, Context>): Promise<void> => {
    const writes = attempts.open(engine.transactional);
    let begin;
    try {
      begin = await engine.begin(request.event, request.context, writes);
    } catch (error) {
      // A non-idempotency error the key selector wraps (a throwing `scope`) is a server fault, not the client's key: no 400.
      const cause = (error as { cause?: unknown } | null)?.cause;
      if (isIdempotencyError(error, 'INVALID_KEY') && cause !== undefined && !(cause instanceof IdempotencyError)) throw cause;
      const response = rejection(error);
      if (response === undefined) throw error;
      request.earlyResponse = response;
      return;
    }
    if (begin.kind === 'run') attempts.hold(request, begin.attempt);
    else if (begin.kind === 'replay') request.earlyResponse = replayed(begin.response);
  };

  const httpIdempotencyAfter = async (request: Request<HttpEvent, unknown, Error, Context>): Promise<void> => {
    const attempt = attempts.take(request);
    if (attempt === undefined) return;
    // Not final (5xx): the key is released so that the client can retry.
    let final: boolean;
    try {
      final = isFinalResponse(normalize(request.response));
    } catch (error) {
      // A result that cannot be sent (a BigInt, a cycle, too deep for JSON): released like a thrown error.
      await attempt.fail(error);
      throw error;
    }
    const outcome = final ? await attempt.complete(request.response) : await attempt.fail(serverError);
    if (outcome.kind === 'value') request.response = outcome.replayed ? replayed(outcome.value) : outcome.value;
    else if (outcome.error !== serverError) {
      const response = rejection(outcome.error);
      if (response === undefined) throw outcome.error;
      request.response = response;
    }
  };

  const httpIdempotencyOnError = (request: Request<HttpEvent, unknown, Error, Context>): Promise<void> => attempts.fail(request);

  return { before: httpIdempotencyBefore, after: httpIdempotencyAfter, onError: httpIdempotencyOnError };
}
