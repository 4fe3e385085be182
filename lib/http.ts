import type { MiddlewareObj } from '@middy/core';
import type { ALBEvent, Context } from 'aws-lambda';
import { isResumable } from './call-errors.js';
import { IdempotencyEngine, type IdempotencyOptions } from './engine.js';
import { errorTypeOf, HTTP_STATUS, IdempotencyError, type IdempotencyErrorCode, isIdempotencyError, MAX_RETRY_AFTER_SECONDS } from './errors.js';
import { callerOf, carriesCredentials, type HttpScope, identifiedByApiKeyOnly } from './http-caller.js';
import { fieldOf, forAcceptEncoding, listOf, withoutFields } from './http-encoding.js';
import { type AnyHttpEvent, BAD_KEY, body, type HttpEvent, headerList, httpKeyValueOf, isAlb, isV2, query, readIdempotencyKey, route } from './http-request.js';
import { idempotencyHooks } from './middy-hooks.js';
import { observeAny } from './observability.js';
import {
  anyValue,
  checkOptions,
  isBoolean,
  isFunction,
  logLine,
  type OptionCheck,
  optionChecks,
  type SharedOptionName,
  sharedOptionsExcept,
  validateOptions,
  wholeNumber,
} from './options.js';
import { type KeyVerdict, keyVerifier, MAX_AGE, retentionKeyLimit, type SigningSecret } from './signed-keys.js';
import { BYTES, isStream, isStreamBytes, unescaped } from './streamed-response.js';

export { callerIdentity, type HttpScope } from './http-caller.js';
export type { HttpEvent } from './http-request.js';
/** Re-exported for the unit tests. @internal */
export { readIdempotencyKey } from './http-request.js';

/**
 * A proxy result (v1 or v2) or an Application Load Balancer's result; v2 handlers may also return a
 * plain value, sent as JSON with status 200.
 */
export interface HttpResult {
  statusCode?: number | undefined;
  /** The status line an Application Load Balancer sends, e.g. `201 Created`. */
  statusDescription?: string | undefined;
  headers?: Record<string, string | number | boolean> | undefined;
  multiValueHeaders?: Record<string, Array<string | number | boolean>> | undefined;
  cookies?: string[] | undefined;
  body?: string | undefined;
  isBase64Encoded?: boolean | undefined;
}

/** The shared options `httpIdempotency` derives from the request itself. */
const HTTP_DERIVED = ['key', 'fingerprint', 'onMissingKey', 'leaseSeconds'] as const satisfies readonly SharedOptionName[];

/**
 * The options of `httpIdempotency`. `TEvent` is the event type it serves: API Gateway and Function
 * URL events by default; `ALBEvent` (or `HttpEvent | ALBEvent`) behind an Application Load Balancer.
 */
export interface HttpIdempotencyOptions<TEvent extends HttpEvent | ALBEvent = HttpEvent>
  extends Omit<IdempotencyOptions<TEvent, Context>, (typeof HTTP_DERIVED)[number]> {
  /**
   * Reject requests without an `Idempotency-Key` header (400); when false they run without idempotency.
   * GET, HEAD, OPTIONS and TRACE requests always run without idempotency, whatever their header holds.
   * @default true
   */
  readonly required?: boolean | undefined;
  /**
   * The caller identity that scopes keys, so one tenant can never replay another's response: a
   * function of the event (a request it returns `undefined` for shares keys with every other such
   * request), or 'shared' for keys shared by all callers (an API with a single caller, or none).
   * @default the {@link callerIdentity} the event carries; shared when it carries no authorizer and
   * no identity at all; a `TypeError` when it carries an authorizer that identifies nobody, and for
   * every Application Load Balancer request, whose headers a client can forge (set `scope`). A
   * request with a key that carries credentials API Gateway and Lambda do not report (an
   * `Authorization` or `Cookie` header a function verifies itself) and no identity, or none but a
   * REST API key, logs one warning per middleware instance that its keys are shared (by every
   * caller of that API key): set `scope` to the caller the function verifies, or to 'shared' (or
   * `callerIdentity`, for an API key) to keep sharing them.
   */
  readonly scope?: HttpScope<TEvent> | undefined;
  /**
   * Upper bound of the `Retry-After` answered with a 409 (`IN_PROGRESS`) or a 503 (`TRANSACTION_CONFLICT`,
   * `COMMIT_FAILED`; a `STORE_FAILURE`'s is always 1). A whole number of seconds, 1 or more. @default 60
   */
  readonly maxRetryAfterSeconds?: number | undefined;
  /**
   * Which results are final: stored and replayed. Others release the key. Must return `true` or
   * `false`, synchronously: for anything else (a throw too) a warning is logged and the default rule decides.
   * @default below 500, except 401, 403, 408, 425, 429 and a 4xx with a `Retry-After` header
   */
  readonly isFinalResponse?: ((result: HttpResult) => boolean) | undefined;
  /**
   * Accept only keys issued by `issueIdempotencyKey` with one of `secrets` (the current secret
   * first, then those still accepted during a rotation); any other key gets a 400 and nothing runs.
   * A key `maxAgeSeconds` old runs nothing, so that it never outlives its record: it gets the
   * answer of the record its first use made while that lives, else a 400. The limit
   * defaults to, and may not exceed, the retention less 5 minutes allowed for clock skew (less half
   * the retention when that is shorter). Keys issued before keys carried their issue time never
   * expire: rotating the secret retires them.
   * @default any key the client chooses
   */
  readonly signedKeys?: { readonly secrets: readonly SigningSecret[]; readonly maxAgeSeconds?: number | undefined } | undefined;
  /**
   * Headers added to the answers `httpIdempotency` gives itself (400, 409, 422, 503), which no
   * other middleware's `after` sees: CORS headers, say, so that a browser on another origin can
   * read a 409 and its `Retry-After`. An object, or a function of the request's event (that may return `undefined`: none). The answer's
   * own `Content-Type` and `Retry-After` replace theirs, whatever the case of the names.
   * @default none
   */
  readonly problemHeaders?: Readonly<Record<string, string>> | ((event: TEvent) => Readonly<Record<string, string>> | undefined) | undefined;
  /**
   * The function answers through Lambda response streaming (middy's streaming execution mode). A
   * string or nothing returned without `{ statusCode }` then reaches the client as the response
   * stream sends it, a 200 of type `application/octet-stream`, and so does every replay, instead of
   * the JSON 200 an HTTP API makes of such a result when the response is not streamed. A stream
   * returned alone is sent that way with or without this option.
   * @default false
   */
  readonly responseStreaming?: boolean | undefined;
}

/** An Application Load Balancer request has no default caller identity: TypeScript asks for `scope`. */
type ScopeRequiredFor<TEvent> = [ALBEvent] extends [TEvent] ? { readonly scope: HttpScope<TEvent> } : unknown;

// An array's entries would be headers named by their index ('0: Access-Control-Allow-Origin: *'); a promise has none.
const isHeaderObject = (value: unknown): value is Readonly<Record<string, string>> =>
  typeof value === 'object' &&
  value !== null &&
  !Array.isArray(value) &&
  typeof (value as Partial<PromiseLike<unknown>>).then !== 'function' &&
  Object.values(value).every((header) => typeof header === 'string');

/**
 * What an option's function answered instead of what it must, named for a warning: `object` names
 * an object; a promise's rejection is caught, never unhandled.
 */
function answerNamed(value: unknown, object: string): string {
  if (typeof (value as PromiseLike<unknown> | null)?.then === 'function') {
    (value as PromiseLike<unknown>).then(undefined, () => undefined);
    return 'a promise';
  }
  return typeof value === 'object' && value !== null ? object : String(value);
}

const HTTP_OPTIONS = optionChecks(sharedOptionsExcept(HTTP_DERIVED), {
  required: (value) => (typeof value === 'boolean' ? undefined : 'must be a boolean'),
  scope: (value) => (typeof value === 'function' || value === 'shared' ? undefined : "must be a function or 'shared'"),
  maxRetryAfterSeconds: wholeNumber(1, 'seconds'),
  problemHeaders: (value) =>
    typeof value === 'function' || isHeaderObject(value)
      ? undefined
      : 'must be an object of header names to strings, or a function of the event that returns one',
  isFinalResponse: isFunction,
  responseStreaming: isBoolean,
  // Its members are checked from their own table, once it is known to be an object.
  signedKeys: (value) => (value !== null && typeof value === 'object' ? undefined : 'must be an object with `secrets`'),
});

const SIGNED_KEYS_OPTIONS = {
  // Checked, with each secret, when the verifier is made.
  secrets: anyValue,
  maxAgeSeconds: MAX_AGE,
} satisfies { readonly [K in keyof NonNullable<HttpIdempotencyOptions['signedKeys']>]-?: OptionCheck };

/** The reason phrases (RFC 9110) of the statuses `problem` answers, for an ALB's status line. */
const REASONS: Readonly<Record<number, string>> = { 400: 'Bad Request', 409: 'Conflict', 422: 'Unprocessable Content', 503: 'Service Unavailable' };

/** The title of each code's problem answer; its status is the code's {@link HTTP_STATUS}. */
const TITLES: Partial<Record<IdempotencyErrorCode, string>> = {
  KEY_MISSING: 'Idempotency-Key is missing',
  INVALID_KEY: 'Idempotency-Key is invalid',
  PAYLOAD_MISMATCH: 'Idempotency-Key is already used',
  IN_PROGRESS: 'A request with this Idempotency-Key is being processed',
  SUPERSEDED: 'A newer attempt with this Idempotency-Key took over',
  RESPONSE_NOT_STORED: 'A request with this Idempotency-Key completed, but its response was not kept',
  ERROR_NOT_STORED: 'A request with this Idempotency-Key failed, and its error was not kept',
  STORE_FAILURE: 'Idempotency store unavailable',
  COMMIT_FAILED: 'The outcome of this request is not known yet',
  TRANSACTION_CONFLICT: 'The request met concurrent changes and was not applied',
  TRANSACTION_CONDITION_FAILED: 'The request conflicts with the current state',
};

const DETAILS: Partial<Record<IdempotencyErrorCode, string>> = {
  KEY_MISSING: 'This operation requires an Idempotency-Key header.',
  INVALID_KEY: 'The Idempotency-Key header is not valid.',
  PAYLOAD_MISMATCH: 'This Idempotency-Key was used with a different request; use a new key for a new request.',
  IN_PROGRESS: 'The original request is still in progress; retry after the time given in Retry-After.',
  SUPERSEDED: 'This attempt ran past its deadline and a retry took over; the retry carries the outcome.',
  RESPONSE_NOT_STORED: 'The original request completed, but its response could not be kept; it will not be run again.',
  ERROR_NOT_STORED: 'The original request failed for good, but its error could not be kept; it will not be run again.',
  STORE_FAILURE: 'The request was not processed; retry later.',
  COMMIT_FAILED: 'The request may or may not have been applied; retry with the same Idempotency-Key after Retry-After to get its outcome.',
  TRANSACTION_CONFLICT: 'Nothing was written; retry with the same Idempotency-Key after Retry-After.',
  TRANSACTION_CONDITION_FAILED: 'A condition of this request was not met; nothing was written.',
};

/** The answer to a `COMMIT_FAILED` known not applied: its writes were never committed and the key is free. */
const SETTLED_COMMIT = {
  title: 'The request was not applied',
  detail: 'Nothing was written; retry with the same Idempotency-Key after Retry-After.',
};

/** Why an issued-keys API refuses a key, by verdict. */
const REFUSED: Record<Exclude<KeyVerdict, 'issued'>, string> = {
  forged: 'The Idempotency-Key was not issued by this API: ask it for a key.',
  expired: 'The Idempotency-Key has expired: ask this API for a new key.',
  early: "The Idempotency-Key's issue time is in the future: the clocks of the servers that issue and accept keys differ.",
};

/**
 * The rule a refused key broke, which its 400 gives as `detail`: one of the fixed sentences the
 * header checks throw, so no other message (and nothing the client sent) reaches the answer.
 */
const KEY_RULES = new Set([...Object.values(BAD_KEY), ...Object.values(REFUSED)].map((reason) => `INVALID_KEY: ${reason}`));

const lists = (value: unknown, name: string): boolean =>
  String(value)
    .split(',')
    .some((item) => item.trim().toLowerCase() === name.toLowerCase());

/**
 * `result` with headers that let a script on another origin read the header `name`, when it carries
 * CORS headers: a browser shows it only the CORS-safelisted headers, and neither `Retry-After` nor
 * `Idempotent-Replayed` is one. A REST API merges `headers` and `multiValueHeaders` into one list,
 * so either may carry them; the name joins the list in `multiValueHeaders` when there is one.
 */
function exposing(result: HttpResult, name: string): HttpResult {
  const { headers = {}, multiValueHeaders } = result;
  const ORIGIN = 'access-control-allow-origin';
  if (fieldOf(headers, ORIGIN) === undefined && fieldOf(multiValueHeaders, ORIGIN) === undefined) return result;
  const EXPOSE = 'access-control-expose-headers';
  const field = fieldOf(headers, EXPOSE);
  const listed = listOf(multiValueHeaders, EXPOSE);
  if ((field !== undefined && lists(headers[field], name)) || listed?.values.some((value) => lists(value, name))) return result;
  if (listed !== undefined) return { ...result, multiValueHeaders: { ...multiValueHeaders, [listed.field]: [...listed.values, name] } };
  const value = field === undefined ? '' : String(headers[field]).trim();
  return { ...result, headers: { ...headers, [field ?? 'Access-Control-Expose-Headers']: value === '' ? name : `${value}, ${name}` } };
}

/** An RFC 9457 problem response for an idempotency rejection. @internal */
export function problem(error: IdempotencyError, maxRetryAfterSeconds: number, extraHeaders?: Readonly<Record<string, string>>): HttpResult | undefined {
  // A failed commit whose record was released since (its `retryAfterSeconds`) is known not applied.
  const settled = error.code === 'COMMIT_FAILED' && error.retryAfterSeconds !== undefined;
  const status = HTTP_STATUS[error.code];
  const rule = KEY_RULES.has(error.message) ? error.message.slice('INVALID_KEY: '.length) : undefined;
  const { title, detail } = settled ? SETTLED_COMMIT : { title: TITLES[error.code], detail: rule ?? DETAILS[error.code] };
  if (status === undefined || title === undefined) return undefined;
  const own: Record<string, string> = { 'Content-Type': 'application/problem+json' };
  if (error.code === 'IN_PROGRESS' || error.code === 'TRANSACTION_CONFLICT')
    own['Retry-After'] = String(Math.min(error.retryAfterSeconds ?? 1, maxRetryAfterSeconds));
  if (error.code === 'STORE_FAILURE') own['Retry-After'] = '1';
  // A commit settled as not applied can be retried at once; an unknown one once its lease has passed.
  if (error.code === 'COMMIT_FAILED') own['Retry-After'] = String(Math.min(error.retryAfterSeconds ?? maxRetryAfterSeconds, maxRetryAfterSeconds));
  // Header names are case-insensitive: an extra `content-type` next to ours would send two.
  const names = Object.keys(own).map((name) => name.toLowerCase());
  const headers = { ...withoutFields(extraHeaders, names), ...own };
  const answer = { statusCode: status, headers, body: JSON.stringify({ type: 'about:blank', title, status, detail }) };
  return own['Retry-After'] === undefined ? answer : exposing(answer, 'Retry-After');
}

/**
 * `result` as an Application Load Balancer reads it: with multi-value headers enabled on the target
 * group (the request then carries `multiValueHeaders`) it reads `multiValueHeaders` only, otherwise
 * `headers` only, so every header goes to the one it reads. A header in both, whatever the case of
 * its name in each, keeps the value of the one read; one moved to `headers` keeps its last value,
 * as the load balancer does with a request's headers.
 */
function forAlb(result: HttpResult, event: ALBEvent): HttpResult {
  const { headers, multiValueHeaders, ...rest } = result;
  const namesIn = (fields: object | undefined) => Object.keys(fields ?? {}).map((name) => name.toLowerCase());
  if (event.multiValueHeaders) {
    const moved = withoutFields(headers, namesIn(multiValueHeaders));
    const lists = Object.fromEntries(Object.entries(moved ?? {}).map(([name, value]) => [name, [value]]));
    return { ...rest, multiValueHeaders: { ...lists, ...multiValueHeaders } };
  }
  // A list that is not one (null, which the type forbids but a handler can return) moves nothing.
  const last = Object.entries(withoutFields(multiValueHeaders, namesIn(headers)) ?? {}).flatMap(([name, values]: [string, unknown]) =>
    Array.isArray(values) && values.length > 0 ? [[name, values.at(-1) as string | number | boolean]] : [],
  );
  return { ...rest, headers: { ...Object.fromEntries(last), ...headers } };
}

/**
 * A stored answer as a duplicate of `event` gets it: with one `Idempotent-Replayed` field (none when
 * the answer is the request's `own`), in the header field the request's source reads.
 */
function replayedAs(proxy: HttpResult, event: AnyHttpEvent, own: boolean): HttpResult {
  // One field, whatever a stored response copied from an upstream API carried under that name.
  const unmarked = { ...proxy, headers: withoutFields(proxy.headers, ['idempotent-replayed']) };
  if (proxy.multiValueHeaders !== undefined) unmarked.multiValueHeaders = withoutFields(proxy.multiValueHeaders, ['idempotent-replayed']);
  // The durable execution's own answer, sent again after it was lost, is no replay of another's.
  const replayed = own ? unmarked : exposing({ ...unmarked, headers: { ...unmarked.headers, 'Idempotent-Replayed': 'true' } }, 'Idempotent-Replayed');
  return isAlb(event) ? forAlb(replayed, event as ALBEvent) : replayed;
}

/** The middleware's own answer as the request's source reads it; an ALB's with its status line. */
const answerFor = (answer: HttpResult, event: AnyHttpEvent): HttpResult =>
  isAlb(event)
    ? forAlb({ ...answer, statusDescription: `${answer.statusCode} ${REASONS[answer.statusCode!] ?? ''}`.trim(), isBase64Encoded: false }, event)
    : answer;

const isProxyResult = (result: unknown): result is HttpResult => result !== null && typeof result === 'object' && 'statusCode' in result;

/**
 * A result as an HTTP API reads it. The Node.js runtime sends `undefined` as `null`, which the
 * API answers with the body `null`: so does the replay.
 */
const normalize = (result: unknown): HttpResult =>
  isProxyResult(result)
    ? result
    : isStreamBytes(result)
      ? { statusCode: 200, body: result as unknown as string }
      : {
          statusCode: 200,
          headers: { 'Content-Type': 'application/json' },
          body: typeof result === 'string' ? result : JSON.stringify(unescaped(result) ?? null),
        };

/**
 * A result as Lambda response streaming sends it: middy writes a string, or nothing (as an empty
 * body), without a prelude, which the response stream sends as a 200 of its default type. Given
 * that prelude, the first caller gets the same, and a replay's prelude carries Idempotent-Replayed.
 */
const streamedAsSent = (result: unknown): unknown =>
  typeof result === 'string' || result === undefined || result === null ? withoutPrelude(result ?? '') : result;

/** What the response stream sends for a body written without a prelude. */
const withoutPrelude = (body: unknown): HttpResult => ({ statusCode: 200, headers: { 'Content-Type': 'application/octet-stream' }, body: body as string });

/** A result as `isFinalResponse` reads it: stored stream bytes as a base64 body, as API Gateway carries binary bodies. */
function checked(result: HttpResult): HttpResult {
  if (isStreamBytes(result.body)) return { ...result, body: (result.body as { [BYTES]: string })[BYTES], isBase64Encoded: true };
  const body = unescaped(result.body);
  return body === result.body ? result : { ...result, body: body as string };
}

/**
 * A body no API sends as it is (an object, say): a middleware used before `httpIdempotency`
 * (http-response-serializer) must be turning it into text, and a replay, answered before that
 * middleware runs, will not be.
 */
const unsentBody = (result: unknown): boolean =>
  isProxyResult(result) && result.body !== undefined && result.body !== null && typeof result.body !== 'string' && !isStreamBytes(result.body);

/**
 * Lambda sends a proxy result as JSON: one JSON cannot hold (a BigInt header, a cyclic body) fails
 * the invocation as a thrown error does, and is released as one is (a plain value fails in
 * `normalize`), instead of completing a record whose duplicates get a 409 for a request whose
 * caller got no answer. A text body is left out of the check: it always serializes.
 */
function sendable(result: unknown): void {
  if (!isProxyResult(result)) return;
  const text = typeof result.body === 'string' || isStreamBytes(result.body);
  JSON.stringify(text ? { ...result, body: undefined } : result);
}

/** The largest answer a function sends without response streaming: Lambda's limit on a synchronous response. */
const MAX_BUFFERED_ANSWER_BYTES = 6 * 1024 * 1024;
/** The largest answer an Application Load Balancer takes from a function. */
const MAX_ALB_ANSWER_BYTES = 1024 * 1024;

/** Methods that are safe (RFC 9110): they run without idempotency, whatever their `Idempotency-Key` header holds. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/**
 * Statuses that ask the client to send the request again (401 and 403: with new or different
 * credentials, or once access is granted, RFC 9110 §15.5.2 and §15.5.4): storing them would refuse
 * every retry. None of them reports an effect.
 */
const RETRYABLE = new Set([401, 403, 408, 425, 429]);

/**
 * A client error that says when to send the request again (`Retry-After`, RFC 9110 §10.2.3: a 409
 * while another request holds a lock, a 413 or 423 that will pass) reports a passing condition, not
 * an outcome: stored, it would answer every retry after the condition had cleared. With a 2xx or 3xx
 * the field says when to poll the operation or follow the redirect: that answer is final.
 */
const asksToRetry = (result: HttpResult): boolean =>
  [result.headers, result.multiValueHeaders].some((fields) => {
    const field = fieldOf(fields, 'retry-after');
    const value: unknown = field === undefined ? undefined : fields![field];
    // API Gateway sends no header for an empty list of values.
    return value !== undefined && value !== null && !(Array.isArray(value) && value.length === 0);
  });

const defaultIsFinal = (result: HttpResult): boolean => {
  // A status written as text ("429") is what API Gateway reads it as: its number.
  const status = Number(result.statusCode ?? 200);
  return status < 500 && !RETRYABLE.has(status) && !(status >= 400 && asksToRetry(result));
};

/**
 * Middy middleware implementing the `Idempotency-Key` header (IETF httpapi draft) for API Gateway
 * REST and HTTP APIs and Function URLs, and, as `httpIdempotency<ALBEvent>` with a `scope`, for
 * Application Load Balancers. Keys are scoped by method, route and caller identity; a
 * duplicate gets the stored response with `Idempotent-Replayed: true` (a body stored compressed in a
 * coding the duplicate's `Accept-Encoding` refuses is sent in gzip or uncompressed); a different payload under
 * the same key gets 422, a request still in progress 409 with `Retry-After`, a missing or invalid
 * key 400, an unreachable store 503, all as `application/problem+json`. Results below 500 are
 * stored, except 401, 403, 408, 425, 429 and a 4xx with `Retry-After`; those, 5xx results and thrown
 * errors release the key so the client can retry. GET, HEAD, OPTIONS and TRACE requests run without idempotency, whatever their
 * header holds: never replayed, never refused for it.
 *
 * @example
 * ```ts
 * export const handler = middy(createPayment).use(httpIdempotency({ store }));
 * ```
 */
// `NoInfer`: in `.use([...])`, which takes middlewares of any event, the event is not inferred as `any`
// from the result; the options keep `TEvent` as it is, so a helper generic in the event passes them on.
export function httpIdempotency<TEvent extends HttpEvent | ALBEvent = HttpEvent>(
  options: HttpIdempotencyOptions<TEvent> & ScopeRequiredFor<TEvent>,
): MiddlewareObj<NoInfer<TEvent>, unknown, Error, Context> {
  validateOptions('httpIdempotency', options, HTTP_OPTIONS);
  if (options.signedKeys !== undefined) checkOptions('httpIdempotency', options.signedKeys, SIGNED_KEYS_OPTIONS, [], 'signedKeys');
  const {
    required = true,
    scope,
    maxRetryAfterSeconds = MAX_RETRY_AFTER_SECONDS,
    isFinalResponse = defaultIsFinal,
    signedKeys,
    problemHeaders,
    responseStreaming = false,
    ...common
  } = options as HttpIdempotencyOptions<TEvent>;
  // An object is copied, as the options are read once: one changed afterwards (for another API) changes nothing here.
  const fixedHeaders = problemHeaders === undefined || typeof problemHeaders === 'function' ? undefined : { ...problemHeaders };
  // A function's answer is checked as the object is: anything else (a promise, an array) is logged, and the answer goes without it.
  const headersFor =
    typeof problemHeaders === 'function'
      ? (event: TEvent): Readonly<Record<string, string>> | undefined => {
          const headers: unknown = problemHeaders(event);
          // Nothing for this request (CORS headers only for a request with an Origin, say).
          if (headers === undefined || isHeaderObject(headers)) return headers;
          const got = answerNamed(headers, Array.isArray(headers) ? 'an array' : 'an object with a value that is not a string');
          logLine(
            common.logger ?? console,
            'warn',
            `httpIdempotency: \`problemHeaders\` must return an object of header names to strings, synchronously (got ${got}); the answer was sent without its headers.`,
          );
          return undefined;
        }
      : () => fixedHeaders;
  let warnedBody = false;
  /** Says once that replays will not be what the first caller got: the order of the middlewares is wrong. */
  const checkBody = (result: unknown): void => {
    if (warnedBody || !unsentBody(result)) return;
    warnedBody = true;
    logLine(
      common.logger ?? console,
      'warn',
      'httpIdempotency stored a response whose body is not text. If a middleware used before httpIdempotency (such as http-response-serializer) turns it into text, a duplicate will not get that text: middy runs no `after` hook for an answer given in a `before` hook, and the replay is one. Use httpIdempotency first.',
    );
  };
  // Only the default scope may leave a caller unseen: 'shared' and a function are the user's choice.
  let credentialWarningDue = scope === undefined;
  /**
   * Says once that a request the function may authenticate itself shares its keys with every caller,
   * or with every caller of its API key (the only identity it carries).
   */
  const checkCredentials = (event: TEvent, who: string | null): void => {
    if (!credentialWarningDue) return;
    const byApiKey = who !== null && identifiedByApiKeyOnly(event, who);
    if ((who !== null && !byApiKey) || !carriesCredentials(event)) return;
    credentialWarningDue = false;
    logLine(
      common.logger ?? console,
      'warn',
      byApiKey
        ? "httpIdempotency got a request with credentials (an Authorization or Cookie header) that API Gateway and Lambda do not report, whose only identity is its API key, so its Idempotency-Key is shared by all callers of that API key (often every user of an app): a caller who sends another caller's key with the same request gets the other's stored response. Set `scope` to return the caller your function verifies, or to `(event) => callerIdentity(event)` to keep scoping keys by API key and silence this warning."
        : "httpIdempotency got a request with credentials (an Authorization or Cookie header) that API Gateway and Lambda do not report, so its Idempotency-Key is shared by all callers: a caller who sends another caller's key with the same request gets the other's stored response. Set `scope` to return the caller your function verifies, or to 'shared' to keep sharing keys and silence this warning.",
    );
  };
  const caller = callerOf(scope);
  /** Requests whose key is past its age limit: refused unless its record answers them. */
  const expired = new WeakSet<object>();
  const engine = new IdempotencyEngine<TEvent, Context>(
    'httpIdempotency',
    {
      ...common,
      onMissingKey: 'skip',
      key: (event) => {
        // The mark is this request's alone: one event object sent again (without its key, say) is judged afresh.
        expired.delete(event);
        const [method, template] = route(event);
        // A safe method changes nothing to repeat: it runs without idempotency whatever its header
        // holds (a client may send its key on every request, a status poll included), so that it
        // always gets a fresh answer; and a CORS preflight can never carry the header.
        if (SAFE_METHODS.has(method)) return undefined;
        const key = readIdempotencyKey(event);
        if (key === undefined) {
          if (required) throw new IdempotencyError('KEY_MISSING', 'The Idempotency-Key header is missing.');
          return undefined;
        }
        const verdict = verify?.(key) ?? 'issued';
        // A key past its age limit is refused only where no record answers it (see `refuse`): a
        // record it made on first use still replays, so a client whose answer was lost learns it,
        // instead of being sent for a new key to run the request again.
        if (verdict !== 'issued' && verdict !== 'expired') throw new IdempotencyError('INVALID_KEY', REFUSED[verdict]);
        if (verdict === 'expired') expired.add(event);
        const who = caller(event);
        // Unscoped by default, or scoped by an API key alone: a caller the function authenticates itself is invisible here.
        checkCredentials(event, who);
        return httpKeyValueOf(key, method, template, who);
      },
      fingerprint: (event) => {
        const [method, , path] = route(event);
        return { method, path, query: query(event), body: body(event) };
      },
    },
    observeAny,
    // The key is the request's own, not a user's selection: a part an event lacks (the resource of
    // a REST event built by hand) leaves the key scoped by the rest, as it always has.
    false,
  );
  // After the engine: keys expire by the retention it keeps records for.
  const where = 'httpIdempotency `signedKeys`';
  const verify = signedKeys && keyVerifier(where, signedKeys.secrets, retentionKeyLimit(where, engine.retentionSeconds, signedKeys.maxAgeSeconds, engine.now));
  // The hooks object itself: its `before` is read by each `.use()`.
  const hooks = idempotencyHooks(engine, {
    replay: (stored, event, own) => {
      // A record kept before `responseStreaming` was set holds a returned string as it was.
      const result = responseStreaming ? streamedAsSent(stored) : stored;
      // Only HTTP APIs of payload format 2.0 and Function URLs send a plain value as a 200; REST APIs,
      // payload format 1.0, load balancers and middy's streaming mode (any value but a string or a
      // stream) answer it with an error of their own, which a retry must get again, not a success nobody received.
      if (!isProxyResult(result) && (responseStreaming || !isV2(event as AnyHttpEvent))) return result;
      const proxy = normalize(result);
      // Stored compressed for the first caller's client, re-coded for this one's when it must be.
      const recoded = forAcceptEncoding(proxy, headerList(event as AnyHttpEvent, 'accept-encoding'), responseStreaming);
      // Each answer as sent must fit what Lambda sends (a streamed one has room for any), or it fails on every retry.
      const limit = isAlb(event as AnyHttpEvent) ? MAX_ALB_ANSWER_BYTES : MAX_BUFFERED_ANSWER_BYTES;
      const fits = (answer: HttpResult): boolean => responseStreaming || isStreamBytes(answer.body) || Buffer.byteLength(JSON.stringify(answer)) <= limit;
      const answer = replayedAs(recoded, event as AnyHttpEvent, own);
      if (fits(answer)) return answer;
      // A body compressed well below that limit can decode to far more, while a client that sent no
      // `Accept-Encoding` accepts any coding (RFC 9110 §12.5.3): the stored bytes.
      if (recoded !== proxy) {
        const asStored = replayedAs(proxy, event as AnyHttpEvent, own);
        if (fits(asStored)) return asStored;
      }
      // The first caller's answer fit, but not with `Idempotent-Replayed`, nor a plain value made a
      // proxy result (whose body JSON escapes again): the duplicate gets that answer as it was, unmarked.
      return isProxyResult(result) ? replayedAs(proxy, event as AnyHttpEvent, true) : result;
    },
    // Not final (5xx, 401, 403, 408, 425, 429, a 4xx with Retry-After): the key is released so that the client can retry.
    ending: (response, returned) => {
      // A stream returned without a prelude is sent as a 200 of the response stream's default type
      // (see streamedAsSent), and so is a string once the function says it streams.
      const result = isStream(returned) ? withoutPrelude(response) : responseStreaming ? streamedAsSent(response) : response;
      checkBody(result);
      sendable(result);
      const read = checked(normalize(result));
      let final: unknown;
      let threw = false;
      try {
        final = isFinalResponse(read);
      } catch (error) {
        threw = true;
        final = error;
      }
      // Anything but a boolean (a promise, a branch returning nothing, a throw) is no answer: the function
      // has run, so the default rule decides (a 200 is stored and never runs twice, a 503 is released).
      if (threw || typeof final !== 'boolean') {
        const got = threw ? 'an error' : answerNamed(final, 'an object');
        // Its name only: a message may quote the response (a JSON.parse of the body).
        const error = threw ? { error: errorTypeOf(final) } : {};
        final = defaultIsFinal(read);
        logLine(
          common.logger ?? console,
          'warn',
          `httpIdempotency: \`isFinalResponse\` must return true or false, synchronously (got ${got}); the default rule took this response (${read.statusCode}) as ${final ? 'final' : 'not final'}.`,
          error,
        );
      }
      return { kind: 'return', value: result, final: final as boolean, answeredNonFinal: !final };
    },
    // No record answered a key past its age limit (none is left, or an atomic call reads none before
    // it runs): it would run again, so it is refused (400), its claim released.
    refuse: (event) => {
      if (!expired.has(event as object)) return undefined;
      const refusal = new IdempotencyError('INVALID_KEY', REFUSED.expired);
      return () => answerFor(problem(refusal, maxRetryAfterSeconds, headersFor(event as TEvent))!, event as AnyHttpEvent);
    },
    reject: (error, event) => {
      // A claim or commit the store failed in a durable execution ends the invocation, not the
      // execution (isUnrecoverableInvocation), and keeps the execution's record for the invocation
      // that resumes it. Answered (503), it would end the execution with the record still held: the
      // client told "not processed" after its steps ran, and every retry a 409 until the durable
      // lease ends, then run again.
      if (isResumable(error)) return undefined;
      // The key selector's own rejection (an invalid header) arrives as the cause; any other
      // INVALID_KEY is a server fault, not the client's key: no 400 blaming its header. A throwing
      // `scope` is thrown as its error; a `scope` value that cannot be hashed (NaN, a BigInt) and an
      // invocation's tenant id UTF-8 cannot write come without a cause, and are thrown as they are.
      const cause = isIdempotencyError(error) ? error.cause : undefined;
      if (isIdempotencyError(error, 'INVALID_KEY') && !isIdempotencyError(cause)) throw cause ?? error;
      const rejected = isIdempotencyError(cause) ? cause : error;
      const response = isIdempotencyError(rejected) ? problem(rejected, maxRetryAfterSeconds, headersFor(event as TEvent)) : undefined;
      return response === undefined ? undefined : { response: answerFor(response, event as AnyHttpEvent) };
    },
  });
  return hooks as MiddlewareObj<TEvent, unknown, Error, Context>;
}
