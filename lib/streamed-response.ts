import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/*
 * Responses of middy's response-streaming mode (Lambda response streaming): the handler returns a
 * Node.js Readable or a web ReadableStream, alone or as the `body` of `{ statusCode, headers, body }`.
 * A stream can be read once, and its JSON form (`{}` or its internal state) is not its bytes, so
 * the middleware reads it to its end first: the record stores the bytes, this caller gets them as
 * middy would have sent them, and a duplicate gets the same bytes again. UTF-8 text (JSON, NDJSON,
 * server-sent events, HTML) is stored as a string, which middy writes as the same bytes; other
 * bytes are stored as base64 in a one-member object that is turned back into a stream on replay, and
 * so is the body of a response that names a `Content-Encoding`, whatever its bytes spell.
 * A handler's own response of that shape (or of the shape that escapes it) is stored escaped, in a
 * one-member object of its own, and replayed as it was: the middleware cannot tell whether middy
 * runs in streaming mode, and outside it any object may come back.
 * So is text that middy would not write as the same bytes: it writes a long string in slices of
 * 16,384 UTF-16 units, and a character of two units (an emoji) cut by a slice goes out as two
 * U+FFFD replacement characters.
 */

/** The member that marks stored bytes of a stream that are not UTF-8 text. @internal */
export const BYTES = 'lambda-idempotency:stream-base64';

/** The member that holds a handler's own value that has one of the two stored shapes, so that it is replayed as it is. */
const ESCAPED = 'lambda-idempotency:value';

type Body = Readable | ReadableStream;

type Members = { readonly [name: string]: unknown };

const isObject = (value: unknown): value is Members => value !== null && typeof value === 'object';

/** A web ReadableStream, or a Node.js Readable as middy tells one: by its `_readableState`. @internal */
export const isStream = (value: unknown): value is Body =>
  value instanceof ReadableStream || (isObject(value) && '_readableState' in value && typeof value.pipe === 'function');

/** The `{ statusCode, headers, body }` form, whose body is sent after a prelude of the rest. */
const isHttpResponse = (value: unknown): value is Members & { readonly body?: unknown } => isObject(value) && 'statusCode' in value;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The UTF-16 units middy (6 and 7) writes a string body in at a time. */
const MIDDY_SLICE = 16_384;

/** Whether middy's slices of `text` cut a surrogate pair in two (see above). */
function slicedApart(text: string): boolean {
  for (let end = MIDDY_SLICE; end < text.length; end += MIDDY_SLICE) {
    const unit = text.charCodeAt(end - 1);
    if (unit >= 0xd800 && unit <= 0xdbff) return true;
  }
  return false;
}

/**
 * A chunk's bytes as the response stream writes them: a string as UTF-8, any view (a typed array of
 * wider elements, a DataView) as the bytes it covers, not its elements cut to bytes.
 */
function bytesOf(chunk: unknown): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (ArrayBuffer.isView(chunk)) return Buffer.from(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  throw new TypeError(`A streamed response can only send strings and bytes, but the stream gave ${chunk === null ? 'null' : typeof chunk}.`);
}

/** How many chunks of a stream are joined into one Buffer while it is read. */
const JOINED_CHUNKS = 1024;

/**
 * Whether a response names a content coding: its body is then bytes, whatever they spell. Stored as
 * text, a replay re-coded for a duplicate's `Accept-Encoding` would be base64 text, which the response
 * stream sends as it is (brotli makes an empty body the single byte `;`).
 */
const isCoded = (response: Members): boolean =>
  [response.headers, response.multiValueHeaders].some(
    (fields) =>
      isObject(fields) &&
      Object.entries(fields).some(([name, value]) => name.toLowerCase() === 'content-encoding' && !/^[\s,]*(?:identity[\s,]*)*$/i.test(String(value))),
  );

/** A stream's bytes, as text when they are UTF-8 that middy writes as they are (and not `coded`), else as the stored form of bytes. */
async function contentOf(stream: Body, coded = false): Promise<string | { readonly [BYTES]: string }> {
  const chunks: Buffer[] = [];
  // A Buffer per chunk costs about a hundred bytes besides its own: a stream of tokens of a few bytes
  // each would be held as thirty times its size. Recent chunks are joined into one as they come.
  let recent: Buffer[] = [];
  // Read as middy sends it, through a pipeline: that also reads the streams of libraries that
  // predate async iteration (readable-stream 2, through2 2), which are not async iterables.
  const collect = new Writable({
    objectMode: true,
    write(chunk: unknown, _encoding, done) {
      try {
        recent.push(bytesOf(chunk));
        if (recent.length === JOINED_CHUNKS) {
          chunks.push(Buffer.concat(recent));
          recent = [];
        }
        done();
      } catch (error) {
        done(error as Error);
      }
    },
  });
  await pipeline(stream, collect);
  const bytes = Buffer.concat([...chunks, ...recent]);
  let text: string | undefined;
  try {
    text = coded ? undefined : utf8.decode(bytes);
  } catch {
    text = undefined;
  }
  return text === undefined || slicedApart(text) ? { [BYTES]: bytes.toString('base64') } : text;
}

/**
 * The response with any stream in it read to its end (see above); any other response as it is.
 * A stream that fails rejects with its error: the handler's response failed. @internal
 */
export async function readStreams(response: unknown): Promise<unknown> {
  if (isStream(response)) return contentOf(response);
  if (isHttpResponse(response)) {
    if (isStream(response.body)) return { ...response, body: await contentOf(response.body, isCoded(response)) };
    if (isStored(response.body)) return { ...response, body: { [ESCAPED]: response.body } };
  }
  return isStored(response) ? { [ESCAPED]: response } : response;
}

/** An object whose only member is `member`. */
const isOnly = (value: unknown, member: string): value is Members =>
  isObject(value) && !Array.isArray(value) && Object.keys(value).length === 1 && Object.hasOwn(value, member);

/** Whether a stored response is the stored form of a stream's bytes that are not text. @internal */
export const isStreamBytes = (value: unknown): value is { readonly [BYTES]: string } => isOnly(value, BYTES) && typeof value[BYTES] === 'string';

/** A value of a shape that replay would not give back as it is: stored escaped. */
const isStored = (value: unknown): boolean => isStreamBytes(value) || isOnly(value, ESCAPED);

/** A stored value as the handler returned it, where it was stored escaped; any other value as it is. @internal */
export const unescaped = (stored: unknown): unknown => (isOnly(stored, ESCAPED) ? stored[ESCAPED] : stored);

const streamOf = (stored: { readonly [BYTES]: string }): Readable => Readable.from([Buffer.from(stored[BYTES], 'base64')]);

/** A stored response with its stored stream bytes a stream again; any other response as it is. @internal */
export function reviveStreams(stored: unknown): unknown {
  if (isStreamBytes(stored)) return streamOf(stored);
  if (isHttpResponse(stored)) {
    if (isStreamBytes(stored.body)) return { ...stored, body: streamOf(stored.body) };
    if (isOnly(stored.body, ESCAPED)) return { ...stored, body: stored.body[ESCAPED] };
  }
  return unescaped(stored);
}
