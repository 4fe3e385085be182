/**
 * Lambda response streaming as a middy handler meets it: the runtime's `awslambda` global
 * (`streamifyResponse` marks the handler; `HttpResponseStream.from` sends the prelude of
 * `{ statusCode, headers }` before the body) and a response stream that keeps what is written.
 */
import { Readable, Writable } from 'node:stream';
import { executionModeStreamifyResponse } from '@middy/core/StreamifyResponse';
import type { Context } from 'aws-lambda';
import { middyMajor } from './middy.js';

/** What a client of a streaming function receives: the prelude (when sent) and the body's bytes. */
export class ResponseStream extends Writable {
  readonly chunks: Buffer[] = [];
  prelude: unknown;

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    done();
  }

  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const runtime = {
  streamifyResponse: <T>(handler: T): T => handler,
  HttpResponseStream: {
    from(stream: ResponseStream, prelude: unknown): ResponseStream {
      stream.prelude = prelude;
      return stream;
    },
  },
};
// The AWS SDK's invoke store may have created the global already (the runtime's has both).
const global = globalThis as unknown as { awslambda?: Partial<typeof runtime> };
global.awslambda ??= {};
global.awslambda.streamifyResponse ??= runtime.streamifyResponse;
global.awslambda.HttpResponseStream ??= runtime.HttpResponseStream;

/** The middy options of response-streaming mode on the major the test runs on. */
export const streamingMode = (middyMajor === 7 ? { executionMode: executionModeStreamifyResponse } : { streamifyResponse: true }) as object;

type StreamingHandler = (event: unknown, stream: ResponseStream, context: Context) => Promise<unknown>;

/** Invokes a streaming middy handler as the runtime does: what the client received, or the invocation's error. */
export async function invokeStreaming(handler: unknown, event: unknown, context: Context, stream = new ResponseStream()): Promise<ResponseStream> {
  await (handler as StreamingHandler)(event, stream, context);
  return stream;
}

/** A stream still being produced: it sends `sent` at once, and its last chunk when the test settles `rest`. */
export const heldStream = (rest: Promise<string>, ...sent: string[]): Readable =>
  Readable.from(
    (async function* () {
      yield* sent;
      yield await rest;
    })(),
  );
