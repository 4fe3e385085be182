/** `npm run demo -- --serve`: the payment API on 127.0.0.1, through an HTTP → API Gateway v2 adapter, over DynamoDB Local. */

import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createKeyHandler } from '../infra/functions/keys.js';
import { createPaymentHandler } from '../infra/functions/payment.js';
import { KEY_ROUTE } from '../infra/functions/routes.js';
import { toHttpApiEvent } from './http-event.js';
import type { DemoTables } from './scenarios.js';
import { lambdaContext } from './scenarios.js';

/**
 * The most a request body may hold: Lambda's quota for a synchronous invocation's request payload,
 * 6 MB, which binds before API Gateway's own 10 MB limit does (a larger body never reaches the
 * function). Without a bound, one client could make the process buffer until it runs out of memory.
 */
const MAX_BODY_BYTES = 6 * 1024 * 1024;

/**
 * The body as text, or `undefined` as soon as it exceeds {@link MAX_BODY_BYTES} (at once when its
 * Content-Length announces more): what was read is dropped and the rest is discarded, never buffered.
 */
function readBody(request: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    if (Number(request.headers['content-length']) > MAX_BODY_BYTES) return resolve(undefined);
    let chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) {
        chunks.push(chunk);
        return;
      }
      // The stream keeps flowing without a listener: the rest is dropped as it arrives until the
      // connection closes after the 413 (destroying the request would close it before the answer).
      request.off('data', onData);
      chunks = [];
      resolve(undefined);
    };
    request.on('data', onData);
    request.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.once('error', reject);
    request.once('close', () => reject(new Error('the client closed the connection before the end of its request body')));
  });
}

/** An answer of the server's own, an `application/problem+json` body like the payment API's. */
const problem = (status: number, title: string, detail: string) => ({
  headers: { 'Content-Type': 'application/problem+json' },
  body: `${JSON.stringify({ type: 'about:blank', title, status, detail })}\n`,
});

const TOO_LARGE = problem(
  413,
  'Content too large',
  `The request body exceeds ${MAX_BODY_BYTES} bytes (6 MB), the most Lambda accepts for a synchronous invocation.`,
);

/** Where the server writes one line per answered request, and the error of a request it answers with a 500. */
export interface ServerLog {
  log(line: string): void;
  error(error: unknown): void;
}

export async function serve(client: DynamoDBClient, tables: DemoTables, port: number, log: ServerLog = console): Promise<Server> {
  const handler = createPaymentHandler({ ...tables, client });
  // A secret per run: keys issued by this server are valid Idempotency-Keys (the local API, like the deployed default, takes any key).
  const issueKey = createKeyHandler({ secret: randomBytes(32) });
  const server = createServer(async (request, response) => {
    try {
      // API Gateway routes by the path alone: a query string does not change the route.
      if (`${request.method} ${(request.url ?? '/').split('?', 1)[0]}` === KEY_ROUTE) {
        const result = await issueKey();
        response.writeHead(result.statusCode ?? 200, result.headers as Record<string, string>).end(`${result.body}\n`);
        return;
      }
      const body = await readBody(request);
      if (body === undefined) {
        // Connection: close ends the connection once the answer is out, instead of reading the rest of the body to reach a next request.
        response.writeHead(413, { ...TOO_LARGE.headers, Connection: 'close' }).end(TOO_LARGE.body);
        return;
      }
      let event: ReturnType<typeof toHttpApiEvent>;
      try {
        event = toHttpApiEvent({
          method: request.method ?? 'GET',
          url: request.url ?? '/',
          headers: request.headers,
          body,
          ...(request.socket.remoteAddress ? { sourceIp: request.socket.remoteAddress } : {}),
        });
      } catch (error) {
        // A path parameter that does not decode (`%E0%A4%A`) is the client's error, as API Gateway answers it.
        if (!(error instanceof URIError)) throw error;
        const { headers, body } = problem(400, 'Bad request', 'The request path does not decode: a malformed percent-encoding.');
        response.writeHead(400, headers).end(body);
        return;
      }
      if (!event) {
        const { headers, body } = problem(404, 'Not found', `No route ${request.method} ${request.url}.`);
        response.writeHead(404, headers).end(body);
        return;
      }
      const result = await handler(event, lambdaContext('payments-api'));
      const headers = Object.fromEntries(Object.entries(result.headers ?? {}).map(([k, v]) => [k, String(v)]));
      response.writeHead(result.statusCode ?? 200, headers).end(`${result.body ?? ''}\n`);
      log.log(`${request.method} ${request.url} → ${result.statusCode}${headers['Idempotent-Replayed'] ? ' (replayed)' : ''}`);
    } catch (error) {
      // What API Gateway answers when the function fails.
      log.error(error);
      response.writeHead(500, { 'Content-Type': 'application/json' }).end('{"message":"Internal Server Error"}\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return server;
}
