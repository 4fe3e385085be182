import type { MiddlewareObj, Request } from '@middy/core';
import type { Context } from 'aws-lambda';
import { IdempotencyEngine, type IdempotencyOptions } from './engine.js';
import { IdempotencyError, type IdempotencyErrorCode, isIdempotencyError } from './errors.js';
import { assertOptions } from './options.js';
import { RequestAttempts } from './request-attempts.js';

import { type HttpEvent, body, callerIdentity, query, readIdempotencyKey, route } from './http-request.js';

export type { HttpEvent } from './http-request.js';
/** Re-exported for the unit tests. @internal */
export { callerIdentity, readIdempotencyKey } from './http-request.js';

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
