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

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function serve(client: DynamoDBClient, tables: DemoTables, port: number): Promise<Server> {
  const handler = createPaymentHandler({ ...tables, client });
  // A secret per run: keys issued by this server are valid Idempotency-Keys (the local API, like the deployed default, takes any key).
  const issueKey = createKeyHandler({ secret: randomBytes(32) });
  const server = createServer(async (request, response) => {
    try {
      if (`${request.method} ${request.url}` === KEY_ROUTE) {
        const result = await issueKey();
        response.writeHead(result.statusCode ?? 200, result.headers as Record<string, string>).end(`${result.body}\n`);
        return;
      }
      const body = await readBody(request);
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
        response.writeHead(400, { 'Content-Type': 'application/json' }).end('{"message":"Bad Request"}\n');
        return;
      }
      if (!event) {
        response.writeHead(404, { 'Content-Type': 'application/json' }).end('{"message":"Not Found"}\n');
        return;
      }
      const result = await handler(event, lambdaContext('payments-api'));
      const headers = Object.fromEntries(Object.entries(result.headers ?? {}).map(([k, v]) => [k, String(v)]));
      response.writeHead(result.statusCode ?? 200, headers).end(`${result.body ?? ''}\n`);
      console.log(`${request.method} ${request.url} → ${result.statusCode}${headers['Idempotent-Replayed'] ? ' (replayed)' : ''}`);
    } catch (error) {
      // What API Gateway answers when the function fails.
      console.error(error);
      response.writeHead(500, { 'Content-Type': 'application/json' }).end('{"message":"Internal Server Error"}\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return server;
}
