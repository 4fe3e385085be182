/**
 * Section 9: Redis. Our middleware on RedisStore, the same middleware on DynamoDBStore (DynamoDB
 * Local), and Powertools' middleware on its cache persistence layer (`CachePersistenceLayer`, which
 * takes a node-redis client) on the same redis-server: requests per call (Redis commands counted
 * at each client, DynamoDB requests by an SDK middleware), end-to-end latency and
 * client CPU per call, the subjects alternating call by call. Both Redis subjects use one node-redis
 * client each, with the same settings.
 */
import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { CachePersistenceLayer } from '@aws-lambda-powertools/idempotency/cache';
import { makeHandlerIdempotent } from '@aws-lambda-powertools/idempotency/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { createClient } from 'redis';
import { idempotency, RedisStore } from './library.js';
import { benchClient } from './local.js';
import { enterProcessState } from './process-state.js';
import { RequestCounter } from './request-counter.js';
import { measureCall, rotation, type Summary, summarize } from './stats.js';
import {
  type Handler,
  lambdaContext,
  makeBusinessHandler,
  makeEvent,
  type OrderEvent,
  type OrderResponse,
  oursSubject,
  RETENTION_SECONDS,
} from './subjects.js';

export const REDIS_SUBJECTS = ['redis', 'dynamodb', 'powertools'] as const;
export type RedisSubject = (typeof REDIS_SUBJECTS)[number];
export const REDIS_LABEL: Record<RedisSubject, string> = {
  redis: 'ours, RedisStore',
  dynamodb: 'ours, DynamoDBStore',
  powertools: 'Powertools, CachePersistenceLayer',
};

export interface RedisComparison {
  readonly redisVersion: string;
  readonly eventBytes: number;
  /** The requests one call made, by subject and scenario (Redis commands or DynamoDB operations). */
  readonly requests: Record<RedisSubject, { first: string[]; replay: string[] }>;
  readonly first: Record<RedisSubject, Summary>;
  readonly replay: Record<RedisSubject, Summary>;
  readonly firstCpu: Record<RedisSubject, Summary>;
  readonly replayCpu: Record<RedisSubject, Summary>;
}

/** The same client settings for both Redis subjects: fail fast, as the README recommends. */
const failFastClient = (url: string) => createClient({ url, disableOfflineQueue: true, socket: { connectTimeout: 2000, reconnectStrategy: () => 200 } });

type NodeRedis = ReturnType<typeof failFastClient>;

async function nodeRedis(url: string): Promise<NodeRedis> {
  const client = failFastClient(url);
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/**
 * Records the name of every command `client` sends (its own `sendCommand`, which node-redis's
 * command methods also go through). Counted at the client: the server's commandstats would also
 * count the commands a script runs. Benchmark tooling: the library never touches a client this way.
 */
function countCommands(client: NodeRedis): string[] {
  const sent: string[] = [];
  // Command methods send through the client's inner instance (`_self`), which the client inherits from.
  const inner = (client as unknown as { _self?: NodeRedis })._self ?? client;
  const send = inner.sendCommand.bind(inner);
  Object.defineProperty(inner, 'sendCommand', {
    value: (args: Parameters<NodeRedis['sendCommand']>[0], options?: Parameters<NodeRedis['sendCommand']>[1]) => {
      sent.push(String(args[0]).toUpperCase());
      return send(args, options);
    },
  });
  return sent;
}

function redisHandler(store: InstanceType<typeof RedisStore>): Handler {
  return middy<OrderEvent, OrderResponse, Error, Context>(makeBusinessHandler({ executions: 0 })).use(
    idempotency<OrderEvent, OrderResponse>({ store, expiresAfterSeconds: RETENTION_SECONDS }),
  );
}

function powertoolsCacheHandler(client: NodeRedis): Handler {
  const persistenceStore = new CachePersistenceLayer({ client });
  const config = new IdempotencyConfig({ expiresAfterSeconds: RETENTION_SECONDS });
  return middy<OrderEvent, OrderResponse, Error, Context>(makeBusinessHandler({ executions: 0 })).use(makeHandlerIdempotent({ persistenceStore, config }));
}

export async function measureRedis(redisUrl: string, dynamodbEndpoint: string, tableName: string, warmup: number, samples: number): Promise<RedisComparison> {
  const [admin, ours, theirs] = await Promise.all([nodeRedis(redisUrl), nodeRedis(redisUrl), nodeRedis(redisUrl)]);
  const sent = { redis: countCommands(ours), powertools: countCommands(theirs) };
  const dynamodb = benchClient(dynamodbEndpoint);
  const counter = new RequestCounter().attach(dynamodb, 'id');
  const handlers: Record<RedisSubject, Handler> = {
    redis: redisHandler(new RedisStore({ client: ours, keyPrefix: 'bench:' })),
    dynamodb: oursSubject({ client: dynamodb, tableName }).handler,
    powertools: powertoolsCacheHandler(theirs),
  };
  const context = lambdaContext();
  const base = makeEvent('redis', 1024);
  const run = Date.now().toString(36);

  // Requests per call: one first call and one replay per subject, counted where each store sees them,
  // after a first call that leaves each client as a warm Lambda has it (ours has read the eviction policy).
  const requests = {} as RedisComparison['requests'];
  for (const subject of REDIS_SUBJECTS) {
    await handlers[subject]({ ...base, orderId: `redis-warm-${run}-${subject}` }, context);
    const event = { ...base, orderId: `redis-count-${run}-${subject}` };
    const counted = async (call: () => Promise<unknown>): Promise<string[]> => {
      if (subject === 'dynamodb') {
        const mark = counter.mark();
        await call();
        return counter.since(mark).map((r) => r.operation);
      }
      const log = sent[subject];
      const mark = log.length;
      await call();
      return log.slice(mark);
    };
    const first = await counted(() => handlers[subject](event, context));
    const replay = await counted(() => handlers[subject]({ ...event }, context));
    requests[subject] = { first, replay };
  }

  const times: Record<string, number[]> = {};
  const record = (name: string, value: number) => (times[name] ??= []).push(value);
  for (let round = 0; round < warmup + samples; round++) {
    for (const subject of rotation(REDIS_SUBJECTS, round)) {
      enterProcessState(subject === 'powertools' ? 'other' : 'ours');
      const event = { ...base, orderId: `redis-${run}-${round}` };
      const first = await measureCall(() => handlers[subject](event, context));
      const replay = await measureCall(() => handlers[subject]({ ...event }, context));
      if (round < warmup) continue;
      record(`first ${subject}`, first.wall);
      record(`first cpu ${subject}`, first.cpu);
      record(`replay ${subject}`, replay.wall);
      record(`replay cpu ${subject}`, replay.cpu);
    }
  }
  const redisVersion = /redis_version:(\S+)/.exec(String(await admin.sendCommand(['INFO', 'server'])))?.[1] ?? 'unknown';
  for (const client of [admin, ours, theirs]) client.destroy();
  dynamodb.destroy();
  enterProcessState('other');
  const pick = (kind: string) => Object.fromEntries(REDIS_SUBJECTS.map((s) => [s, summarize(times[`${kind} ${s}`]!)])) as Record<RedisSubject, Summary>;
  return {
    redisVersion,
    eventBytes: JSON.stringify(base).length,
    requests,
    first: pick('first'),
    replay: pick('replay'),
    firstCpu: pick('first cpu'),
    replayCpu: pick('replay cpu'),
  };
}
