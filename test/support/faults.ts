/**
 * A fault-injecting HTTP layer between the AWS SDK and DynamoDB Local: a `requestHandler` that wraps
 * the SDK's own NodeHttpHandler and, per request attempt and by operation, throttles, answers 500,
 * refuses it (AccessDeniedException), resets the connection before sending, delays, or lets the
 * request reach DynamoDB Local and then loses its response (the ambiguous write: the server applied
 * it, the SDK sees a network error and retries). Throttling, refusals and 500s are real DynamoDB
 * JSON error responses, so the SDK's own deserializer and retry classification handle them exactly
 * as they would in AWS.
 *
 * Deterministic: faults come from explicit rules (the n-th matching request, its first k attempts)
 * or from a seeded PRNG. Test tooling, not part of the library.
 */

import { Readable } from 'node:stream';
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { LOCAL_CREDENTIALS } from '../../tools/dynamodb-local.js';

export type FaultKind = 'throttle' | 'server-error' | 'reset' | 'latency' | 'drop-response' | 'refuse';

export type Fault =
  /**
   * A 400 throttling error; the server did not apply the request. `TransactionConflictException`
   * is the refusal of a write to an item a transaction in flight holds, which the SDK does not retry.
   */
  | {
      readonly kind: 'throttle';
      readonly exception?: 'ProvisionedThroughputExceededException' | 'ThrottlingException' | 'RequestLimitExceeded' | 'TransactionConflictException';
    }
  /** A 400 refusal that passes on no retry (a missing grant): the server did not apply the request, and neither the SDK nor the store sends it again. */
  | { readonly kind: 'refuse' }
  /** A 500 InternalServerError, before the request reached the server or (`applied`) after it applied it. */
  | { readonly kind: 'server-error'; readonly applied?: boolean }
  /** The connection is reset before the request is sent. */
  | { readonly kind: 'reset' }
  /** The request is held for `millis`, or until `until` settles (a gate), then sent normally. */
  | { readonly kind: 'latency'; readonly millis?: number; readonly until?: Promise<unknown> }
  /** The request reaches DynamoDB Local and is applied; its response is lost (`ECONNRESET` or a `TimeoutError`). */
  | { readonly kind: 'drop-response'; readonly error?: 'ECONNRESET' | 'TimeoutError' };

/** The write operations of the record protocol. */
export const WRITE_OPERATIONS = ['PutItem', 'UpdateItem', 'DeleteItem', 'TransactWriteItems'] as const;

/** One attempt the layer saw. */
export interface FaultRequest {
  /** DynamoDB operation, e.g. `PutItem`. */
  readonly operation: string;
  /** 1 for the first attempt, 2 for the SDK's first retry… */
  readonly attempt: number;
  /** The SDK's invocation id: the same for every attempt of one `client.send`. */
  readonly invocation: string;
  /** The request's JSON body. */
  readonly body: Record<string, unknown>;
}

export interface FaultRule {
  /** Operations the rule applies to. @default the four write operations */
  readonly operations?: readonly string[];
  readonly fault: Fault;
  /** How many requests (SDK invocations) the rule selects. @default 1 */
  readonly requests?: number;
  /** How many consecutive attempts of a selected request get the fault, from the one that selected it. @default 1 */
  readonly attempts?: number | 'all';
  /** Matching requests to let through before selecting. @default 0 */
  readonly skip?: number;
  /** The attempt at which a request is selected: 2 picks the SDK's first retry. @default 1 */
  readonly attempt?: number;
  /** A further filter, e.g. on `attempt` or on the body's key. */
  readonly where?: (request: FaultRequest) => boolean;
}

export interface RandomFaults {
  readonly seed: number;
  /** Probability that an attempt gets a fault. */
  readonly rate: number;
  /** Relative weights of the kinds. @default each kind 1 (latency: a few ms) */
  readonly kinds?: Partial<Record<FaultKind, number>>;
  /** @default the four write operations */
  readonly operations?: readonly string[];
  /** Upper bound of a random latency spike. @default 20 */
  readonly maxLatencyMillis?: number;
}

/** One injected fault. */
export interface InjectedFault {
  readonly operation: string;
  readonly attempt: number;
  readonly kind: FaultKind;
}

/** A small, fast, seeded PRNG (mulberry32): the same seed gives the same sequence on every run. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface HttpRequestLike {
  headers: Record<string, string>;
  body?: unknown;
}
interface HttpResponseLike {
  statusCode: number;
  headers: Record<string, string>;
  body?: unknown;
}
/** The part of the SDK's NodeHttpHandler the layer uses. */
interface HttpHandlerLike {
  readonly metadata?: unknown;
  handle(request: HttpRequestLike, options?: unknown): Promise<{ response: HttpResponseLike }>;
  destroy?(): void;
  updateHttpClientConfig?(key: never, value: never): void;
  httpHandlerConfigs?(): unknown;
}

const header = (headers: Record<string, string>, name: string): string | undefined => {
  for (const [key, value] of Object.entries(headers)) if (key.toLowerCase() === name) return value;
  return undefined;
};

/** The JSON body: the SDK sends a string or UTF-8 bytes. */
function parseBody(body: unknown): Record<string, unknown> {
  const text =
    body instanceof Uint8Array ? Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8') : typeof body === 'string' ? body : '{}';
  return JSON.parse(text) as Record<string, unknown>;
}

const sleep = (millis: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, millis));

/** A DynamoDB JSON error response, as the real service sends it. */
function errorResponse(statusCode: number, type: string, message: string): { response: HttpResponseLike } {
  const body = Buffer.from(JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${type}`, message }));
  return {
    response: {
      statusCode,
      headers: { 'content-type': 'application/x-amz-json-1.0', 'content-length': String(body.byteLength), 'x-amzn-requestid': 'injected-fault' },
      body: Readable.from([body]),
    },
  };
}

function networkError(code: 'ECONNRESET' | 'TimeoutError'): Error {
  if (code === 'TimeoutError') return Object.assign(new Error('Connection timed out after the request was sent (injected)'), { name: 'TimeoutError' });
  return Object.assign(new Error('socket hang up (injected)'), { code: 'ECONNRESET' });
}

/** Reads and discards a real response body, so its socket goes back to the pool. */
async function drain(response: HttpResponseLike): Promise<void> {
  const body = response.body as NodeJS.ReadableStream | undefined;
  if (body && typeof (body as Readable).resume === 'function') {
    await new Promise<void>((resolve) => {
      (body as Readable)
        .once('end', resolve)
        .once('error', () => resolve())
        .once('close', resolve)
        .resume();
    });
  }
}

interface RuleState {
  readonly rule: FaultRule;
  seen: number;
  /** Selected invocations → attempts still to fault. */
  readonly selected: Map<string, number>;
}

/**
 * The fault layer: pass `injector` as a DynamoDBClient's `requestHandler` (see {@link faultyClient}).
 */
export class FaultInjector implements HttpHandlerLike {
  /** Every fault injected, in order. */
  readonly injected: InjectedFault[] = [];
  /** Every attempt seen, in order. */
  readonly attempts: Array<Omit<FaultRequest, 'body'>> = [];
  private readonly rules: RuleState[] = [];
  private random: (RandomFaults & { readonly next: () => number; readonly weights: Array<[FaultKind, number]> }) | undefined;

  constructor(private readonly inner: HttpHandlerLike) {}

  get metadata(): unknown {
    return this.inner.metadata;
  }

  /** Adds a rule; rules are tried in the order they were added, before any random fault. */
  schedule(rule: FaultRule): this {
    this.rules.push({ rule, seen: 0, selected: new Map() });
    return this;
  }

  /** Random faults from a seeded PRNG on every matching attempt no rule faulted. `undefined` turns them off. */
  randomly(options: RandomFaults | undefined): this {
    if (options === undefined) {
      this.random = undefined;
      return this;
    }
    const weights = Object.entries(options.kinds ?? { throttle: 1, 'server-error': 1, reset: 1, latency: 1, 'drop-response': 1 }).filter(
      ([, weight]) => (weight ?? 0) > 0,
    ) as Array<[FaultKind, number]>;
    this.random = { ...options, next: prng(options.seed), weights };
    return this;
  }

  /** Removes every rule and random fault, and empties the logs. */
  clear(): this {
    this.rules.length = 0;
    this.random = undefined;
    this.injected.length = 0;
    this.attempts.length = 0;
    return this;
  }

  /** Attempts seen of one operation. */
  attemptsOf(operation: string): number {
    return this.attempts.filter((a) => a.operation === operation).length;
  }

  async handle(request: HttpRequestLike, options?: unknown): Promise<{ response: HttpResponseLike }> {
    const operation = header(request.headers, 'x-amz-target')?.split('.').pop() ?? 'unknown';
    const attempt = Number(/attempt=(\d+)/.exec(header(request.headers, 'amz-sdk-request') ?? '')?.[1] ?? 1);
    const invocation = header(request.headers, 'amz-sdk-invocation-id') ?? '';
    this.attempts.push({ operation, attempt, invocation });
    const fault = this.pick(operation, attempt, invocation, request);
    if (fault === undefined) return this.inner.handle(request, options);
    this.injected.push({ operation, attempt, kind: fault.kind });
    switch (fault.kind) {
      case 'throttle': {
        const type = fault.exception ?? 'ProvisionedThroughputExceededException';
        const message =
          type === 'TransactionConflictException'
            ? 'Transaction is ongoing for the item (injected).'
            : 'The level of configured provisioned throughput for the table was exceeded (injected).';
        return errorResponse(400, type, message);
      }
      case 'refuse':
        return errorResponse(400, 'AccessDeniedException', `User is not authorized to perform: dynamodb:${operation} (injected).`);
      case 'server-error': {
        if (fault.applied) await drain((await this.inner.handle(request, options)).response);
        return errorResponse(500, 'InternalServerError', 'Internal server error (injected)');
      }
      case 'reset':
        throw networkError('ECONNRESET');
      case 'latency':
        await (fault.until ?? sleep(fault.millis ?? 5));
        return this.inner.handle(request, options);
      case 'drop-response': {
        const { response } = await this.inner.handle(request, options);
        await drain(response);
        throw networkError(fault.error ?? 'ECONNRESET');
      }
    }
  }

  destroy(): void {
    this.inner.destroy?.();
  }

  updateHttpClientConfig(key: never, value: never): void {
    this.inner.updateHttpClientConfig?.(key, value);
  }

  httpHandlerConfigs(): unknown {
    return this.inner.httpHandlerConfigs?.() ?? {};
  }

  private pick(operation: string, attempt: number, invocation: string, request: HttpRequestLike): Fault | undefined {
    let parsed: FaultRequest | undefined;
    const info = (): FaultRequest => (parsed ??= { operation, attempt, invocation, body: parseBody(request.body) });
    for (const state of this.rules) {
      const { rule } = state;
      if (!(rule.operations ?? WRITE_OPERATIONS).includes(operation)) continue;
      const remaining = state.selected.get(invocation);
      if (remaining !== undefined) {
        if (remaining > 0) {
          state.selected.set(invocation, remaining - 1);
          return rule.fault;
        }
        continue;
      }
      if (attempt !== (rule.attempt ?? 1) || (rule.where && !rule.where(info()))) continue;
      if (state.selected.size >= (rule.requests ?? 1)) continue;
      if (state.seen++ < (rule.skip ?? 0)) continue;
      const attempts = rule.attempts === 'all' ? Number.POSITIVE_INFINITY : (rule.attempts ?? 1);
      state.selected.set(invocation, attempts - 1);
      return rule.fault;
    }
    const random = this.random;
    if (random && (random.operations ?? WRITE_OPERATIONS).includes(operation) && random.next() < random.rate) {
      const total = random.weights.reduce((sum, [, weight]) => sum + weight, 0);
      let roll = random.next() * total;
      const kind = random.weights.find(([, weight]) => (roll -= weight) < 0)?.[0] ?? random.weights[0]![0];
      const coin = random.next();
      switch (kind) {
        case 'throttle':
          return { kind, exception: coin < 0.5 ? 'ProvisionedThroughputExceededException' : 'ThrottlingException' };
        case 'server-error':
          return { kind, applied: coin < 0.5 };
        case 'latency':
          return { kind, millis: 1 + Math.floor(coin * (random.maxLatencyMillis ?? 20)) };
        case 'drop-response':
          return { kind, error: coin < 0.5 ? 'ECONNRESET' : 'TimeoutError' };
        default:
          return { kind: 'reset' };
      }
    }
    return undefined;
  }
}

type RetryStrategyV2 = Extract<NonNullable<DynamoDBClientConfig['retryStrategy']>, { acquireInitialRetryToken: unknown }>;
type RetryToken = Awaited<ReturnType<RetryStrategyV2['acquireInitialRetryToken']>>;

/**
 * Retries what the SDK classifies as retryable (throttling, transient: timeouts, resets, 500s), up
 * to `maxAttempts` attempts, without backoff delay, so tests stay fast; the SDK's own retry
 * middleware and error classification are unchanged.
 */
export function immediateRetries(maxAttempts: number): RetryStrategyV2 {
  const token = (count: number): RetryToken => ({ getRetryCount: () => count, getRetryDelay: () => 0 });
  return {
    mode: 'standard',
    acquireInitialRetryToken: async () => token(0),
    refreshRetryTokenForRetry: async (previous, info) => {
      const count = previous.getRetryCount() + 1;
      if ((info.errorType !== 'THROTTLING' && info.errorType !== 'TRANSIENT') || count >= maxAttempts) throw new Error('no more retries');
      return token(count);
    },
    recordSuccess: () => undefined,
  } as RetryStrategyV2;
}

export interface FaultyClientOptions {
  /** @default 3 (the SDK default) */
  readonly maxAttempts?: number;
  /** `'immediate'`: {@link immediateRetries}; `'sdk'`: the SDK's standard strategy with its backoff. @default 'immediate' */
  readonly retries?: 'immediate' | 'sdk';
}

/** A DynamoDBClient for DynamoDB Local whose every request passes through a {@link FaultInjector}. */
export function faultyClient(endpoint: string, options: FaultyClientOptions = {}): { client: DynamoDBClient; faults: FaultInjector } {
  const maxAttempts = options.maxAttempts ?? 3;
  // The SDK's default NodeHttpHandler, taken from a plain client so the layer wraps exactly what production uses.
  const donor = new DynamoDBClient({ endpoint, region: 'local', credentials: LOCAL_CREDENTIALS });
  const faults = new FaultInjector(donor.config.requestHandler as unknown as HttpHandlerLike);
  const client = new DynamoDBClient({
    endpoint,
    region: 'local',
    credentials: LOCAL_CREDENTIALS,
    maxAttempts,
    requestHandler: faults as never,
    ...(options.retries === 'sdk' ? {} : { retryStrategy: immediateRetries(maxAttempts) }),
  });
  return { client, faults };
}
