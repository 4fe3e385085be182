import type { ALBEvent, APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import { IdempotencyError } from './errors.js';
import { decodedContent } from './http-encoding.js';
import { canonicalJsonText } from './json-text.js';

/** API Gateway REST (v1), HTTP API (v2) and Function URL events. */
export type HttpEvent = APIGatewayProxyEvent | APIGatewayProxyEventV2;

/** Every event `httpIdempotency` serves: {@link HttpEvent}s and Application Load Balancer requests. */
export type AnyHttpEvent = HttpEvent | ALBEvent;

/*
 * What an HTTP request says about idempotency: its key, its scope (method, route, caller) and its
 * fingerprint (method, path, query, body).
 */

const HEADER = 'idempotency-key';
const MAX_KEY_LENGTH = 255;

/**
 * Why a header holds no valid key, one fixed sentence per rule: the 400's `detail` says which one
 * the client broke, and never quotes the header itself. @internal
 */
export const BAD_KEY = {
  twice: 'The Idempotency-Key header must be sent once.',
  notString: 'The Idempotency-Key header must be a string.',
  length: `The Idempotency-Key header must be 1 to ${MAX_KEY_LENGTH} characters long.`,
  characters: 'The Idempotency-Key header must be visible ASCII characters (or a quoted string).',
  comma:
    'The Idempotency-Key header holds a comma outside a quoted string: a header sent twice arrives joined by a comma, so a key with a comma must be sent quoted.',
  sfString: 'The Idempotency-Key header is not a valid structured-field string.',
} as const;

/**
 * `value` without the spaces and horizontal tabs around it, the only whitespace a header value may
 * carry around its content; in one pass, as a header of any size is read before its length is checked.
 */
function withoutOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === ' ' || value[start] === '\t')) start++;
  while (end > start && (value[end - 1] === ' ' || value[end - 1] === '\t')) end--;
  return value.slice(start, end);
}

/**
 * The `Idempotency-Key` value: a bare token or a structured-field string (RFC 8941); `undefined`
 * when absent. HTTP APIs and Function URLs join a header sent twice into one value with commas,
 * so a comma outside a quoted string is read as a second key, never as part of one.
 * @internal
 */
export function readIdempotencyKey(event: AnyHttpEvent): string | undefined {
  let raw: unknown;
  const seen = new Set<unknown>();
  for (const [name, value] of Object.entries(event.headers ?? {})) {
    if (name.toLowerCase() !== HEADER || value === undefined || value === null) continue;
    seen.add((raw = value));
  }
  // Sent twice, under one name or under names that differ only in case. An ALB target group with
  // multi-value headers enabled sends `multiValueHeaders` alone (a middleware may add `headers`
  // without the key): the key is read there.
  let count = 0;
  const inHeaders = seen.size > 0;
  const multi = (event as APIGatewayProxyEvent).multiValueHeaders;
  for (const [name, values] of Object.entries(multi ?? {})) {
    if (name.toLowerCase() !== HEADER || !Array.isArray(values)) continue;
    count += values.length;
    if (!inHeaders) for (const value of values) seen.add((raw = value));
  }
  if (count > 1 || seen.size > 1) throw new IdempotencyError('INVALID_KEY', BAD_KEY.twice);
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'string') throw new IdempotencyError('INVALID_KEY', BAD_KEY.notString);
  const value = withoutOws(raw);
  const key = value.startsWith('"') ? sfString(value) : bareToken(value);
  if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new IdempotencyError('INVALID_KEY', BAD_KEY.length);
  }
  return key;
}

function bareToken(value: string): string {
  if (/[^\x21-\x7e]/.test(value)) {
    throw new IdempotencyError('INVALID_KEY', BAD_KEY.characters);
  }
  if (value.includes(',')) {
    throw new IdempotencyError('INVALID_KEY', BAD_KEY.comma);
  }
  return value;
}

/** Decodes a whole header value that is one sf-string: `\` escapes only `"` and `\`, nothing may follow the closing quote. */
function sfString(value: string): string {
  let key = '';
  for (let i = 1; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\') {
      const next = value[++i];
      if (next !== '"' && next !== '\\') break;
      key += next;
    } else if (c === '"') {
      if (i === value.length - 1) return key;
      break; // more after the string: a second key (a header sent twice), parameters, or a stray quote
    } else if (c < ' ' || c > '~') break;
    else key += c;
  }
  throw new IdempotencyError('INVALID_KEY', BAD_KEY.sfString);
}

export const isV2 = (event: AnyHttpEvent): event is APIGatewayProxyEventV2 => (event as APIGatewayProxyEventV2).version === '2.0';

/** An Application Load Balancer request: its context names the target group, nothing else. @internal */
export const isAlb = (event: AnyHttpEvent): event is ALBEvent => {
  const context: unknown = event.requestContext;
  return (
    typeof context === 'object' && context !== null && typeof (context as { elb?: unknown }).elb === 'object' && (context as { elb?: unknown }).elb !== null
  );
};

/**
 * The key value an HTTP request's record is hashed from: the one place its shape is written, for
 * the middleware's key selector and for the operations tools that address a record by request.
 * It trusts its arguments (the method already upper case): callers check what they did not build.
 * @internal
 */
export const httpKeyValueOf = (key: string, method: string, route: string, caller: string | null) => ({ key, method, route, caller });

/**
 * Method and route template (`<METHOD> <path>` when there is no template, as for Function URLs and
 * Application Load Balancers, whose path arrives as the client sent it). @internal
 */
export function route(event: AnyHttpEvent): [method: string, route: string, path: string] {
  // Optional chaining: other events (VPC Lattice, a queue's batch, a direct invocation with the
  // payload `null`) must get the sentence below, not a crash.
  const raw: unknown = event === null || event === undefined ? undefined : isV2(event) ? event.requestContext?.http?.method : event.httpMethod;
  if (typeof raw !== 'string') {
    throw new TypeError(
      'httpIdempotency: the event is not an API Gateway REST or HTTP API, Function URL or Application Load Balancer request (it has neither `httpMethod` nor `requestContext.http.method`).',
    );
  }
  const method = raw.toUpperCase();
  if (isV2(event)) {
    const template = event.routeKey && event.routeKey !== '$default' ? event.routeKey : `${method} ${event.rawPath}`;
    return [method, template, event.rawPath];
  }
  if (isAlb(event)) return [method, `${method} ${event.path}`, event.path];
  return [method, event.resource ?? event.path, event.path];
}

/**
 * Query parameters by name, values in order. For HTTP APIs and Function URLs, the raw text of each
 * name and value: decoding would make different bytes equal (every invalid UTF-8 escape decodes to
 * U+FFFD). REST APIs deliver the parameters decoded, `+` as a space. An Application Load Balancer
 * delivers them as the client encoded them: they are decoded the way REST APIs decode them, so a
 * retry that spells a space `+` instead of `%20` is the same request; a name or value that is not
 * UTF-8 once decoded keeps its raw text, marked so that no decoded text can equal it.
 * @internal
 */
export function query(event: AnyHttpEvent): Record<string, Array<string | { readonly raw: string }>> {
  // No prototype: parameters named `__proto__` or `constructor` are parameters like any other.
  const out: Record<string, Array<string | { readonly raw: string }>> = Object.create(null);
  if (isV2(event)) {
    for (const pair of (event.rawQueryString ?? '').split('&')) {
      if (pair === '') continue;
      const at = pair.indexOf('=');
      (out[at < 0 ? pair : pair.slice(0, at)] ??= []).push(at < 0 ? '' : pair.slice(at + 1));
    }
    return out;
  }
  // An event holds the parameters in one or both fields; http-event-normalizer adds an empty
  // `multiValueQueryStringParameters` to a load balancer's event that holds them in the other.
  const multi = event.multiValueQueryStringParameters;
  const lists: Array<[name: string, values: string[]]> =
    multi && Object.keys(multi).length > 0
      ? Object.entries(multi).map(([name, values]) => [name, [...(values ?? [])]])
      : Object.entries(event.queryStringParameters ?? {}).flatMap(([name, value]) => (value === undefined ? [] : [[name, [value]]]));
  if (!isAlb(event)) {
    for (const [name, values] of lists) out[name] = values;
    return out;
  }
  for (const [name, values] of lists) {
    const decoded = formDecoded(name);
    // Two spellings of one name (`a%5B%5D` and `a[]`) are one parameter. A name that does not decode
    // keeps its raw text behind a lone low surrogate, which no decoded (well-formed) text starts with.
    (out[typeof decoded === 'string' ? decoded : `\udc00${name}`] ??= []).push(...values.map(formDecoded));
  }
  return out;
}

/** `text` as a form decoder reads it (`+` is a space, `%XX` a byte, UTF-8); `{ raw }` when that fails. */
function formDecoded(text: string): string | { readonly raw: string } {
  if (typeof text !== 'string') return { raw: String(text) }; // not what a load balancer sends: never a crash
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    return { raw: text };
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The text of `bytes`, or `undefined` when they are not UTF-8 (decoding would make them U+FFFD). */
function utf8(bytes: Buffer): string | undefined {
  try {
    return UTF8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** The last value of the header `name` (lower case), wherever the event carries it. */
function headerOf(event: AnyHttpEvent, name: string): string | undefined {
  let found: unknown;
  for (const [field, value] of Object.entries(event.headers ?? {})) if (field.toLowerCase() === name) found = value;
  for (const [field, values] of Object.entries((event as APIGatewayProxyEvent).multiValueHeaders ?? {})) {
    if (found === undefined && field.toLowerCase() === name && Array.isArray(values)) found = values.at(-1);
  }
  return typeof found === 'string' ? found : undefined;
}

/**
 * Every value of the list header `name` (lower case), joined by commas as HTTP joins repeated list
 * fields: from `multiValueHeaders` when the event has them (REST APIs and load balancers keep only
 * the last value in `headers`), else from `headers`; `undefined` when absent. @internal
 */
export function headerList(event: AnyHttpEvent, name: string): string | undefined {
  const lists = Object.entries((event as APIGatewayProxyEvent).multiValueHeaders ?? {}).filter(([field]) => field.toLowerCase() === name);
  const values =
    lists.length > 0
      ? lists.flatMap(([, list]) => list ?? [])
      : Object.entries(event.headers ?? {})
          .filter(([field]) => field.toLowerCase() === name)
          .map(([, value]) => value);
  const texts = values.filter((value): value is string => typeof value === 'string');
  return texts.length > 0 ? texts.join(', ') : undefined;
}

/** The boundary of a `multipart/*` Content-Type (RFC 2046); `undefined` for any other. */
function multipartBoundary(event: AnyHttpEvent): string | undefined {
  const [type, ...parameters] = (headerOf(event, 'content-type') ?? '').split(';');
  if (!type!.trim().toLowerCase().startsWith('multipart/')) return undefined;
  for (const parameter of parameters) {
    const at = parameter.indexOf('=');
    if (parameter.slice(0, at).trim().toLowerCase() !== 'boundary') continue;
    const value = parameter.slice(at + 1).trim();
    const boundary = value.length > 1 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
    return boundary === '' ? undefined : boundary;
  }
  return undefined;
}

const CRLF = Buffer.from('\r\n');

/**
 * A multipart body as the bytes between its delimiters (`CRLF--boundary`, the first one possibly
 * at the very start): a client draws a new boundary each time it encodes a form, so a resent form
 * differs only there. Any parser reads two bodies with the same pieces alike, as the boundary
 * appears nowhere else in them. `undefined` when the boundary does not occur.
 */
function multipartPieces(bytes: Buffer, boundary: string): string[] | undefined {
  const delimiter = Buffer.from(`\r\n--${boundary}`, 'utf8');
  const text = Buffer.concat([CRLF, bytes]);
  const pieces: string[] = [];
  let from = 0;
  for (let at = text.indexOf(delimiter); at >= 0; at = text.indexOf(delimiter, from)) {
    pieces.push(text.subarray(from, at).toString('base64'));
    from = at + delimiter.length;
  }
  return pieces.length === 0 ? undefined : [...pieces, text.subarray(from).toString('base64')];
}

/**
 * The request body for the fingerprint. JSON by its canonical text (whitespace and member order do
 * not matter, numbers are exact); a multipart body by its pieces between boundaries, whatever the
 * boundary; anything else, JSON nested deeper than 200 levels and invalid UTF-8 by its bytes,
 * whether or not API Gateway base64-encoded them. A body sent with a `Content-Encoding` (gzip,
 * x-gzip, deflate, br) counts by its decoded content.
 * @internal
 */
export function body(event: AnyHttpEvent): unknown {
  if (event.body === undefined || event.body === null) return null;
  if (typeof event.body !== 'string') {
    throw new TypeError(
      'httpIdempotency: the request body is not the text Lambda delivered (a middleware used before httpIdempotency, such as http-json-body-parser, parsed it): use httpIdempotency first.',
    );
  }
  // A string with a lone surrogate has no UTF-8 form: Buffer would write every one as U+FFFD.
  if (!event.isBase64Encoded && /\p{Cs}/u.test(event.body)) return { utf16: Buffer.from(event.body, 'utf16le').toString('base64') };
  const sent = event.isBase64Encoded ? Buffer.from(event.body, 'base64') : undefined;
  // A compressed body by its content: compressed anew for a retry, its bytes may differ.
  const bytes = (sent && decodedContent(sent, headerOf(event, 'content-encoding'))) ?? sent;
  const boundary = multipartBoundary(event);
  const multipart = boundary === undefined ? undefined : multipartPieces(bytes ?? Buffer.from(event.body, 'utf8'), boundary);
  if (multipart !== undefined) return { multipart };
  const text = bytes ? utf8(bytes) : event.body;
  const json = text === undefined ? undefined : canonicalJsonText(text);
  return json === undefined ? { bytes: (bytes ?? Buffer.from(event.body, 'utf8')).toString('base64') } : { json };
}
