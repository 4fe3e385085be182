import * as zlib from 'node:zlib';
import type { HttpResult } from './http.js';
import { BYTES, isStreamBytes } from './streamed-response.js';

/*
 * A response compressed for the first caller (`@middy/http-content-encoding` after the handler, say)
 * is stored compressed, and the key does not hold `Accept-Encoding`: a duplicate is the same request
 * however its client decodes. So a replay is re-coded for the duplicate's client when that client
 * does not accept the stored coding: the same representation, bytes it can decode.
 */

type Transcoder = (bytes: Buffer, options?: zlib.ZlibOptions | zlib.BrotliOptions) => Buffer;

/**
 * More than any answer Lambda sends (6 MB, 200 MB streamed): a body that decodes further could
 * never reach the client decoded, and a few kilobytes of br can decode to gigabytes. Decoding stops
 * there, and the body is replayed as stored, as one that does not decode.
 */
const MAX_DECODED_BYTES = 256 * 1024 * 1024;

/** Node.js 20 has no zstd; a response stored in it is replayed as stored there. */
const optional = (name: string): Transcoder | undefined => (zlib as unknown as Record<string, Transcoder | undefined>)[name];

/** Decoders of the content codings (RFC 9110 §8.4.1) Node.js can read, by name. */
const DECODERS: Readonly<Record<string, Transcoder | undefined>> = {
  br: zlib.brotliDecompressSync,
  gzip: zlib.gunzipSync,
  'x-gzip': zlib.gunzipSync,
  deflate: zlib.inflateSync,
  zstd: optional('zstdDecompressSync'),
};

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * How far a request body is decoded for its fingerprint: a client that compresses its body anew on a
 * retry may write other bytes for the same content (gzip stamps the time of compression in its
 * header), but a few kilobytes may decode to gigabytes. Past this, the body counts by its bytes as sent.
 */
const MAX_DECODED_REQUEST_BYTES = 32 * 1024 * 1024;

/**
 * The codings of request bodies that are decoded: those every supported Node.js reads (not zstd,
 * which Node.js 20 lacks: a body's fingerprint must not change with the runtime).
 */
const REQUEST_CODINGS = new Set(['br', 'gzip', 'x-gzip', 'deflate']);

/**
 * A request body's content under its `Content-Encoding` (one coding, RFC 9110 §8.4), or `undefined`
 * when there is none to undo, or the body is not exactly one encoded content: it does not decode
 * within `MAX_DECODED_REQUEST_BYTES`, or bytes follow the end of the compressed data (which the
 * decoder would leave unread, so two bodies that differ there would read alike). @internal
 */
export function decodedContent(bytes: Buffer, contentEncoding: string | undefined): Buffer | undefined {
  const coding = contentEncoding?.trim().toLowerCase();
  const decode = coding !== undefined && REQUEST_CODINGS.has(coding) ? DECODERS[coding] : undefined;
  if (decode === undefined) return undefined;
  try {
    const { buffer, engine } = decode(bytes, { maxOutputLength: MAX_DECODED_REQUEST_BYTES, info: true }) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    return engine.bytesWritten === bytes.length ? buffer : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The weight (q-value) the `Accept-Encoding` field value `accepted` gives the coding `coding`
 * (RFC 9110 §12.5.3). A request without the field accepts no coding but identity here: a client
 * that sends none gets an uncompressed first answer from the middlewares that compress, and may
 * not decode any other.
 */
export function acceptance(accepted: string | undefined, coding: string): number {
  if (accepted === undefined) return coding === 'identity' ? 1 : 0;
  const wanted = coding === 'x-gzip' ? 'gzip' : coding;
  let exact: number | undefined;
  let any: number | undefined;
  for (const item of accepted.split(',')) {
    const [name = '', ...parameters] = item.split(';').map((part) => part.trim().toLowerCase());
    const q = parameters.find((parameter) => parameter.startsWith('q='));
    const weight = q === undefined ? 1 : Number(q.slice(2));
    const value = Number.isFinite(weight) ? weight : 0;
    if ((name === 'x-gzip' ? 'gzip' : name) === wanted) exact = Math.max(exact ?? 0, value);
    else if (name === '*') any = value;
  }
  return exact ?? any ?? (wanted === 'identity' ? 1 : 0);
}

/** The field of `fields` named `name` (lower case), in any case. @internal */
export const fieldOf = (fields: Readonly<Record<string, unknown>> | undefined, name: string): string | undefined =>
  Object.keys(fields ?? {}).find((field) => field.toLowerCase() === name);

/**
 * The list of `multiValueHeaders` named `name` (lower case), in any case, with the name it has there:
 * `undefined` without one, or when it is not a list (null, which the type forbids but a handler can
 * return). @internal
 */
export function listOf(
  multiValueHeaders: Readonly<Record<string, unknown>> | undefined,
  name: string,
): { readonly field: string; readonly values: ReadonlyArray<string | number | boolean> } | undefined {
  const field = fieldOf(multiValueHeaders, name);
  const values: unknown = field === undefined ? undefined : multiValueHeaders![field];
  return field !== undefined && Array.isArray(values) ? { field, values } : undefined;
}

/** `fields` without those named in `names` (lower case), in any case. @internal */
export const withoutFields = <T>(fields: Record<string, T> | undefined, names: readonly string[]): Record<string, T> | undefined =>
  fields && Object.fromEntries(Object.entries(fields).filter(([field]) => !names.includes(field.toLowerCase())));

/** Bytes in the stored form of a stream's bytes, which a replay sends through the response stream as they are. */
const asStreamed = (bytes: Buffer): Partial<HttpResult> => ({ body: { [BYTES]: bytes.toString('base64') } as unknown as string });

/**
 * The body's bytes, and how to write other bytes back in the same form. A `streamed` answer's are
 * written as stream bytes, whatever its body was: the response stream sends a string as its UTF-8
 * and knows no `isBase64Encoded`, so a base64 body would reach the client as base64 text.
 */
function bytesOf(result: HttpResult, streamed: boolean): [Buffer, (bytes: Buffer, coded: boolean) => Partial<HttpResult>] | undefined {
  const { body } = result;
  if (isStreamBytes(body)) return [Buffer.from(body[BYTES], 'base64'), asStreamed];
  if (typeof body !== 'string') return undefined;
  const bytes = result.isBase64Encoded ? Buffer.from(body, 'base64') : Buffer.from(body, 'utf8');
  if (streamed) return [bytes, asStreamed];
  return [
    bytes,
    (recoded, coded) => {
      const text = coded ? undefined : textOf(recoded);
      return text === undefined ? { body: recoded.toString('base64'), isBase64Encoded: true } : { body: text, isBase64Encoded: false };
    },
  ];
}

const textOf = (bytes: Buffer): string | undefined => {
  try {
    return UTF8.decode(bytes);
  } catch {
    return undefined;
  }
};

/**
 * `result` as the client that sent `accepted` (its `Accept-Encoding`) can decode it: as stored when
 * it has no content coding or one the client accepts; otherwise decoded, and sent in gzip when the
 * client accepts gzip, else without a coding (identity). A coding Node.js cannot decode (or several
 * codings, bytes that do not decode, or decode to more than any answer holds) leaves it as stored:
 * nothing else holds its content. A `streamed` answer's (Lambda response streaming) re-coded body
 * is sent as stream bytes.
 * @internal
 */
export function forAcceptEncoding(result: HttpResult, accepted: string | undefined, streamed = false): HttpResult {
  const { headers, multiValueHeaders } = result;
  const field = fieldOf(headers, 'content-encoding');
  const list = listOf(multiValueHeaders, 'content-encoding')?.values ?? [];
  const codings = [...list, ...(field === undefined || list.length > 0 ? [] : [headers![field]])].flatMap((value) =>
    String(value)
      .split(',')
      .map((item) => item.trim().toLowerCase())
      .filter((item) => item !== '' && item !== 'identity'),
  );
  if (codings.length !== 1) return result;
  const [coding] = codings as [string];
  if (acceptance(accepted, coding) > 0) return result;
  const decode = Object.hasOwn(DECODERS, coding) ? DECODERS[coding] : undefined;
  const body = bytesOf(result, streamed);
  if (decode === undefined || body === undefined) return result;
  const [stored, written] = body;
  let decoded: Buffer;
  try {
    decoded = decode(stored, { maxOutputLength: MAX_DECODED_BYTES });
  } catch {
    return result;
  }
  const gzip = acceptance(accepted, 'gzip') > 0;
  // Content-Length and the digests counted the stored bytes (API Gateway sets its own length, but a
  // handler may have); a strong ETag names the stored representation, of which this is another
  // coding with the same content: weak (RFC 9110 §8.8.3).
  const stale = ['content-encoding', 'content-length', 'content-md5', 'content-digest', 'repr-digest', 'digest'];
  const weak = (tag: unknown) => (typeof tag === 'string' && tag.trimStart().startsWith('"') ? `W/${tag.trimStart()}` : tag);
  const recoded = <T>(fields: Record<string, T> | undefined): Record<string, T> | undefined =>
    fields &&
    Object.fromEntries(
      Object.entries(withoutFields(fields, stale)!).map(([name, value]) => [
        name,
        name.toLowerCase() !== 'etag' ? value : ((Array.isArray(value) ? value.map(weak) : weak(value)) as T),
      ]),
    );
  return {
    ...result,
    headers: { ...recoded(headers), ...(gzip ? { 'Content-Encoding': 'gzip' } : {}) },
    ...(multiValueHeaders ? { multiValueHeaders: recoded(multiValueHeaders) } : {}),
    ...written(gzip ? zlib.gzipSync(decoded) : decoded, gzip),
  };
}
