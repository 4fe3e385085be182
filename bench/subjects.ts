/**
 * The subjects under test: one handler, one event shape, one Lambda context, made idempotent by our
 * middleware or by Powertools' (`makeHandlerIdempotent`), or left bare. Both libraries get the same
 * settings: the whole event is the key (the default of both), 24 h retention, no payload validation.
 */

import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { makeHandlerIdempotent } from '@aws-lambda-powertools/idempotency/middleware';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { FUNCTION_NAME } from './env.js';
import { DynamoDBStore, idempotency } from './library.js';

export type Library = 'ours' | 'powertools';
export const LIBRARIES: readonly Library[] = ['ours', 'powertools'];
export const LABEL: Record<Library, string> = { ours: 'lambda-idempotency', powertools: 'Powertools 2.35.0' };

export const RETENTION_SECONDS = 86_400;

export interface OrderLine {
  readonly sku: string;
  readonly quantity: number;
  readonly unitPrice: number;
  readonly description: string;
}

export interface OrderEvent {
  readonly orderId: string;
  readonly customerId: string;
  readonly currency: string;
  readonly lines: readonly OrderLine[];
  /** Bench control: the handler throws. */
  readonly fail?: boolean;
  /** Bench control: the handler waits on this gate (see {@link holdGate}). */
  readonly hold?: string;
  /** Bench control: the response echoes the order lines (a large response). */
  readonly echo?: boolean;
  /** Bench control: the handler takes this long (a downstream call), ms. */
  readonly workMillis?: number;
}

export interface OrderResponse {
  readonly statusCode: number;
  readonly body: string;
}

/** A structured event whose JSON is about `bytes` long: many small members, as in an order. */
export function makeEvent(orderId: string, bytes: number): OrderEvent {
  const lines: OrderLine[] = [];
  const event = { orderId, customerId: 'customer-0042', currency: 'EUR', lines };
  let size = JSON.stringify(event).length;
  for (let i = 0; size < bytes; i++) {
    const line = { sku: `SKU-${100000 + i}`, quantity: 1 + (i % 7), unitPrice: 199 + ((i * 37) % 5000), description: `Item ${i} in aisle ${i % 13}` };
    lines.push(line);
    size += JSON.stringify(line).length + 1;
  }
  return event;
}

interface Gate {
  readonly entered: Promise<void>;
  enter(): void;
  readonly released: Promise<void>;
  release(): void;
}
const gates = new Map<string, Gate>();

/** A gate a handler waits on while it holds the record (for in-progress rejections). */
export function holdGate(id: string): Gate {
  let enter!: () => void;
  let release!: () => void;
  const entered = new Promise<void>((resolve) => (enter = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  const gate = { entered, enter, released, release };
  gates.set(id, gate);
  return gate;
}

export interface HandlerState {
  executions: number;
}

/** The business handler both libraries wrap: counts executions, answers a small JSON response. */
export function makeBusinessHandler(state: HandlerState) {
  return async (event: OrderEvent): Promise<OrderResponse> => {
    state.executions++;
    if (event.hold) {
      const gate = gates.get(event.hold);
      gate?.enter();
      await gate?.released;
    }
    if (event.workMillis) await new Promise((resolve) => setTimeout(resolve, event.workMillis));
    if (event.fail) throw new Error('business failure');
    const body = event.echo ? { orderId: event.orderId, status: 'accepted', lines: event.lines } : { orderId: event.orderId, status: 'accepted' };
    return { statusCode: 201, body: JSON.stringify(body) };
  };
}

/** A Lambda context as the runtime passes it (30 s left). */
export function lambdaContext(): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: FUNCTION_NAME,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${FUNCTION_NAME}`,
    memoryLimitInMB: '1024',
    awsRequestId: 'bench-request',
    logGroupName: `/aws/lambda/${FUNCTION_NAME}`,
    logStreamName: 'bench',
    getRemainingTimeInMillis: () => 30_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

export type Handler = (event: OrderEvent, context: Context) => Promise<OrderResponse>;

export interface Subject {
  readonly handler: Handler;
  readonly state: HandlerState;
}

export interface SubjectOptions {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Local cache of completed records: our `cacheSize`, Powertools' `useLocalCache` + `maxLocalCacheSize`. */
  readonly cacheSize?: number;
}

export function bareSubject(): Subject {
  const state = { executions: 0 };
  return { handler: middy<OrderEvent, OrderResponse, Error, Context>(makeBusinessHandler(state)), state };
}

export function oursSubject(options: SubjectOptions): Subject {
  const state = { executions: 0 };
  const store = new DynamoDBStore({ tableName: options.tableName, client: options.client });
  const handler = middy<OrderEvent, OrderResponse, Error, Context>(makeBusinessHandler(state)).use(
    idempotency<OrderEvent, OrderResponse>({ store, expiresAfterSeconds: RETENTION_SECONDS, ...(options.cacheSize ? { cacheSize: options.cacheSize } : {}) }),
  );
  return { handler, state };
}

export function powertoolsSubject(options: SubjectOptions): Subject {
  const state = { executions: 0 };
  // One persistence layer per subject: Powertools configures a layer once, on its first request.
  const persistenceStore = new DynamoDBPersistenceLayer({ tableName: options.tableName, awsSdkV3Client: options.client });
  // Built once, as Powertools' docs do; without it the middleware builds a new config per request.
  const config = new IdempotencyConfig({
    expiresAfterSeconds: RETENTION_SECONDS,
    ...(options.cacheSize ? { useLocalCache: true, maxLocalCacheSize: options.cacheSize } : {}),
  });
  const handler = middy<OrderEvent, OrderResponse, Error, Context>(makeBusinessHandler(state)).use(makeHandlerIdempotent({ persistenceStore, config }));
  return { handler, state };
}

export function subject(library: Library, options: SubjectOptions): Subject {
  return library === 'ours' ? oursSubject(options) : powertoolsSubject(options);
}

/** Our errors carry a stable `code`; Powertools' are told apart by class name. */
export function errorCode(error: unknown): string {
  const e = error as { name?: unknown; code?: unknown } | null;
  if (typeof e?.code === 'string' && e.name === 'IdempotencyError') return e.code;
  return typeof e?.name === 'string' ? e.name : 'unknown';
}
