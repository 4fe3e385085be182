/** Builds API Gateway HTTP API (payload v2) events, as API Gateway would for the payment API's routes. */

import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { PAYMENT_ROUTES } from '../infra/functions/routes.js';

export interface HttpRequest {
  readonly method: string;
  /** Path with an optional query string, e.g. `/payments?x=1`. */
  readonly url: string;
  readonly headers?: Record<string, string | string[] | undefined>;
  readonly body?: string;
  readonly sourceIp?: string;
}

interface Route {
  readonly routeKey: string;
  readonly method: string;
  readonly pattern: RegExp;
  readonly names: string[];
}

const ROUTES: Route[] = Object.values(PAYMENT_ROUTES).map((routeKey) => {
  const [method, template] = routeKey.split(' ') as [string, string];
  const names: string[] = [];
  const source = template
    .split('/')
    .map((segment) => {
      const parameter = /^\{(\w+)\}$/.exec(segment);
      if (!parameter) return segment.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
      names.push(parameter[1]!);
      return '([^/]+)';
    })
    .join('/');
  return { routeKey, method, pattern: new RegExp(`^${source}$`), names };
});

/** The API Gateway event for `request`, or `undefined` when no route matches (API Gateway answers 404 itself). */
export function toHttpApiEvent(request: HttpRequest): APIGatewayProxyEventV2 | undefined {
  const [rawPath = '/', rawQueryString = ''] = request.url.split('?', 2) as [string?, string?];
  const method = request.method.toUpperCase();
  for (const route of ROUTES) {
    const match = route.method === method ? route.pattern.exec(rawPath) : null;
    if (!match) continue;
    const pathParameters = Object.fromEntries(route.names.map((name, i) => [name, decodeURIComponent(match[i + 1]!)]));
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers ?? {})) {
      if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(',') : value;
    }
    const now = new Date();
    return {
      version: '2.0',
      routeKey: route.routeKey,
      rawPath,
      rawQueryString,
      headers,
      ...(route.names.length ? { pathParameters } : {}),
      ...(rawQueryString ? { queryStringParameters: Object.fromEntries(new URLSearchParams(rawQueryString)) } : {}),
      requestContext: {
        accountId: '000000000000',
        apiId: 'local',
        domainName: headers.host ?? '127.0.0.1',
        domainPrefix: 'local',
        http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: request.sourceIp ?? '127.0.0.1', userAgent: headers['user-agent'] ?? '' },
        requestId: randomUUID(),
        routeKey: route.routeKey,
        stage: '$default',
        time: now.toUTCString(),
        timeEpoch: now.getTime(),
      },
      ...(request.body === undefined || request.body === '' ? {} : { body: request.body }),
      isBase64Encoded: false,
    };
  }
  return undefined;
}
