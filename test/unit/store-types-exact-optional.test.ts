/**
 * A user's project that sets `exactOptionalPropertyTypes` (a strict option outside `strict`): the
 * shipped stores are `IdempotencyStore`s there (a test that passes an `InMemoryStore` where the
 * handler takes an `IdempotencyStore`, or the handler module that passes a `DynamoDBStore`, compiles
 * there too), and options may be given as `undefined`, which every entry point reads as absent.
 */
import ts from 'typescript';
import { ROOT } from '../docs/snippets.js';
import { COMPILER_OPTIONS } from '../docs/type-check.js';

const STORES_FILE = `${ROOT}/.exact-optional/stores.ts`;
const STORES_CODE = `
import type {
  ClaimCompletedRequest,
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  CompleteResult,
  IdempotencyRecord,
  IdempotencyStore,
  RecordItem,
  RecordStatus,
  RecordSummary,
  ReleaseRequest,
  ReleaseResult,
} from 'lambda-idempotency';
import type { TransactWriteItem } from '@aws-sdk/client-dynamodb';
import { DynamoDBStore } from 'lambda-idempotency';
import { RedisStore } from 'lambda-idempotency/redis';
import { InMemoryStore } from 'lambda-idempotency/testing';
import { Cluster, Redis } from 'ioredis';
import { Cluster as Cluster5 } from 'ioredis5';
// The oldest ioredis the peer range accepts (its pipeline() takes [name, ...args] tuples; a module of CommonJS with a default export only, so its Redis is .default).
import RedisOldest, { Cluster as ClusterOldest } from 'ioredis-oldest';
import { createClient, createCluster } from 'redis';

export const stores: IdempotencyStore[] = [new InMemoryStore(), new DynamoDBStore({ tableName: 'idempotency' }), null as unknown as RedisStore];

/** Every client docs/redis.md names, down to the oldest the peer ranges accept, is a RedisStore's client there too (ioredis declares the host and port of a Cluster node as possibly undefined). */
export const redisStores: IdempotencyStore[] = [
  new RedisStore({ client: new Redis({ lazyConnect: true }) }),
  new RedisStore({ client: new Cluster([], { lazyConnect: true }) }),
  new RedisStore({ client: new Cluster5([], { lazyConnect: true }) }),
  new RedisStore({ client: new RedisOldest.default({ lazyConnect: true }) }),
  new RedisStore({ client: new ClusterOldest([], { lazyConnect: true }) }),
  new RedisStore({ client: createClient() }),
  new RedisStore({ client: createCluster({ rootNodes: [] }) }),
];

/**
 * A user's store with every optional member too (docs/stores.md), each parameter typed by its name
 * in 'lambda-idempotency', as a store written in its own module declares them.
 */
export const complete: IdempotencyStore = {
  claim: async (_request: ClaimRequest): Promise<ClaimResult> => ({ claimed: true }),
  complete: async (_request: CompleteRequest): Promise<CompleteResult> => ({ completed: true, responseStored: true }),
  release: async (_request: ReleaseRequest): Promise<ReleaseResult> => ({ released: true }),
  completeWithWrites: async (_request: CompleteRequest, _writes: readonly TransactWriteItem[]): Promise<CompleteResult> => ({ completed: true, responseStored: true }),
  claimCompleted: async (_request: ClaimCompletedRequest, _writes: readonly TransactWriteItem[]): Promise<ClaimResult> => ({ claimed: true }),
  recordItem: (key: string): RecordItem => ({ TableName: 'records', Key: { id: { S: key } } }),
  read: async (_key: string, _expiresAt?: number): Promise<IdempotencyRecord | undefined> => undefined,
  inspect: async (_key: string): Promise<RecordSummary | undefined> => undefined,
  forget: async (_key: string, _onlyIf?: RecordStatus, _leaseUntil?: number): Promise<boolean> => false,
  forgetChecksLease: true,
};

/** A user's store with only the members the interface requires. */
export const own: IdempotencyStore = {
  claim: async () => ({ claimed: true }),
  complete: async () => ({ completed: true, responseStored: true }),
  release: async () => ({ released: true }),
};
`;

const OPTIONS_FILE = `${ROOT}/.exact-optional/options.ts`;
const OPTIONS_CODE = `
import {
  cloudWatchLines,
  DynamoDBStore,
  forgetRecord,
  httpIdempotency,
  IdempotencyError,
  idempotency,
  idempotentBatch,
  issueIdempotencyKey,
  makeIdempotent,
  recordIdOf,
  transaction,
  transition,
  verifyIdempotencyKey,
} from 'lambda-idempotency';
import { DynamoDBStore as LeanDynamoDBStore } from 'lambda-idempotency/dynamodb';
import { idempotency as leanIdempotency } from 'lambda-idempotency/middy';
import { RedisStore } from 'lambda-idempotency/redis';
import { InMemoryStore, lambdaContext, storeContract } from 'lambda-idempotency/testing';
import { createClient } from 'redis';
import type { HttpResult } from 'lambda-idempotency';
import type { ALBResult, APIGatewayProxyResult, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';

/** Settings read from the environment or a config file: each one may be missing. */
declare const config: { table?: string; name?: string; ttl?: number; cacheSize?: number; prefix?: string; keyAttribute?: string; logger?: { warn(message: string): void } };
const { table, name, ttl, cacheSize, prefix, keyAttribute, logger } = config;

// An attribute name left undefined is the default (docs/options.md).
const store = new DynamoDBStore({ tableName: table, expiresAfterSeconds: ttl, attributes: { key: keyAttribute, status: undefined } });
export const lean = new LeanDynamoDBStore({ tableName: table, compressAboveBytes: undefined, attributes: { key: keyAttribute } });
export const redis = new RedisStore({ client: createClient(), keyPrefix: prefix, timeoutMillis: undefined });
export const memory = new InMemoryStore({ expiresAfterSeconds: ttl });
export const context = lambdaContext({ functionName: name, remainingMillis: undefined });
export const middleware = idempotency({ store, name, expiresAfterSeconds: ttl, cacheSize, logger, key: undefined });
export const leanMiddleware = leanIdempotency({ store, name, observability: undefined });
export const fn = makeIdempotent(async (id: string) => id, { store, name: 'fn', expiresAfterSeconds: ttl, fingerprint: undefined });
export const http = httpIdempotency({ store, name, scope: undefined, maxRetryAfterSeconds: undefined });
export const batch = idempotentBatch(async () => undefined, { store, name, concurrency: undefined, parse: undefined });
export const signed = httpIdempotency({ store, signedKeys: { secrets: ['s'], maxAgeSeconds: ttl } });
export const listener = cloudWatchLines({ metrics: undefined, metricNamespace: name });
export const key = issueIdempotencyKey({ secret: 's', now: undefined });
export const verified = verifyIdempotencyKey(key, ['s'], { maxAgeSeconds: ttl, now: undefined });
export const id = recordIdOf({ name: 'charge', key: 'p-1', tenant: name });
export const forgotten = forgetRecord({ store, name: 'charge', key: 'p-1', onlyIf: undefined, leaseUntil: undefined });
export const checks = storeContract(() => memory, { ttlOf: undefined, writeRecord: undefined });
// A store of its own throws the errors its contract names, with the fields it has (an SDK write's table may be undefined).
export const refused = (index: number | undefined, write: { readonly TableName?: string | undefined }, after: number | undefined) =>
  new IdempotencyError('TRANSACTION_CONDITION_FAILED', 'refused', { actionIndex: index, tableName: write.TableName, retryAfterSeconds: after, record: undefined });
// A rule of its own for httpIdempotency, unit-tested on what each kind of HTTP handler returns.
const isFinalResponse = (result: HttpResult) => (result.statusCode ?? 200) < 500;
declare const v1: APIGatewayProxyResult, v2: APIGatewayProxyStructuredResultV2, alb: ALBResult;
export const finals = [isFinalResponse(v1), isFinalResponse(v2), isFinalResponse(alb)];
export const ruled = httpIdempotency({ store, isFinalResponse });
export const writes = () =>
  transaction()
    .update(transition({ TableName: 't', Key: { id: 'p-1' }, from: 'PAID', to: 'REFUNDED', attribute: undefined, version: undefined, condition: undefined }))
    .put({ TableName: 't', Item: { id: 'r-1' }, ConditionExpression: undefined, ExpressionAttributeValues: undefined });
`;

const FILES = new Map([
  [STORES_FILE, STORES_CODE],
  [OPTIONS_FILE, OPTIONS_CODE],
]);

/** The messages of each user file, all compiled in one program as a strict project would. */
function compile(): Map<string, string[]> {
  const options: ts.CompilerOptions = { ...COMPILER_OPTIONS, exactOptionalPropertyTypes: true };
  const host = ts.createCompilerHost(options, true);
  const { fileExists, readFile, getSourceFile } = host;
  host.fileExists = (path) => FILES.has(path) || fileExists.call(host, path);
  host.readFile = (path) => FILES.get(path) ?? readFile.call(host, path);
  host.getSourceFile = (path, version, onError, shouldCreate) => {
    const code = FILES.get(path);
    return code === undefined ? getSourceFile.call(host, path, version, onError, shouldCreate) : ts.createSourceFile(path, code, version, true);
  };
  host.getCurrentDirectory = () => ROOT;
  const program = ts.createProgram({ rootNames: [...FILES.keys()], options, host });
  return new Map(
    [...FILES.keys()].map((path) => {
      const file = program.getSourceFile(path)!;
      const diagnostics = [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)];
      return [path, diagnostics.map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'))];
    }),
  );
}

let messages: Map<string, string[]>;
beforeAll(() => {
  messages = compile();
});

test('InMemoryStore, DynamoDBStore and RedisStore (on each Redis client), and a store of its own with every optional member typed by the names the package exports, are IdempotencyStores under exactOptionalPropertyTypes', () => {
  expect(messages.get(STORES_FILE)).toEqual([]);
});

test('every entry point and store takes an option given as undefined, and an isFinalResponse rule takes what API Gateway (v1, v2) and ALB handlers return, under exactOptionalPropertyTypes', () => {
  expect(messages.get(OPTIONS_FILE)).toEqual([]);
});
