/**
 * Clients for the run's redis-server (started by the jest globalSetup), both kinds, configured to
 * fail fast as the README recommends; and what the tests read beside the store (TTLs, raw hashes).
 */
import { randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { Redis as Redis5 } from 'ioredis5';
import { createClient, type RedisClientOptions } from 'redis';
import { createClient as createClient5 } from 'redis5';
import type { RedisClient } from '../../lib/redis/index.js';
import { type RedisServer, startRedisServer } from '../../tools/redis-server.js';
import type { TcpProxy } from './tcp-proxy.js';

/** The port of the run's redis-server. */
export const redisPort = (): number => Number(new URL(redisUrl()).port);

export function redisUrl(): string {
  const value = process.env.REDIS_URL;
  if (!value) throw new Error('REDIS_URL is not set: the jest globalSetup starts redis-server.');
  return value;
}

/** ioredis settings that fail at once when the server is away, instead of queueing until the Lambda timeout (both majors). */
const IOREDIS_FAIL_FAST = { maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 1000, retryStrategy: () => 200 };

/** node-redis socket settings that fail fast the same way (both majors), beside `disableOfflineQueue: true`. */
export const NODE_REDIS_SOCKET = { connectTimeout: 1000, reconnectStrategy: () => 200 };

/** An ioredis client that fails at once when the server is away, instead of queueing until the Lambda timeout. */
export function ioredisClient(url = redisUrl(), options: RedisOptions = {}): Redis {
  return new Redis(url, { ...IOREDIS_FAIL_FAST, ...options });
}

/** A node-redis client, the same way; it still has to be connected. */
export type NodeRedis = ReturnType<typeof createClient>;

export function nodeRedisClient(url = redisUrl(), options: RedisClientOptions = {}): NodeRedis {
  const client = createClient({
    url,
    disableOfflineQueue: true,
    ...options,
    socket: { ...NODE_REDIS_SOCKET, ...options.socket },
  });
  // Without a listener, node-redis turns a connection error into an uncaught exception.
  client.on('error', () => undefined);
  return client;
}

/** A client a test opened, and how it closes it. */
export interface OpenedClient {
  readonly client: RedisClient;
  close(): void;
}

/** One way to make and close a client of each kind, for tests that run on both. */
export interface ClientKind {
  readonly name: 'ioredis' | 'node-redis' | 'ioredis 5' | 'node-redis 5';
  open(url?: string): Promise<{ client: RedisClient; close(): Promise<void> }>;
}

/** The current major versions (6) of both clients, which speak RESP3 unless told otherwise. */
export const CLIENT_KINDS: readonly ClientKind[] = [
  {
    name: 'ioredis',
    open: async (url) => {
      const client = ioredisClient(url);
      return { client, close: async () => void client.disconnect() };
    },
  },
  {
    name: 'node-redis',
    open: async (url) => {
      const client = nodeRedisClient(url);
      await client.connect();
      return { client, close: async () => void client.destroy() };
    },
  },
];

/** The previous major versions (5), RESP2 by default, which the peer ranges still allow, with the same fail-fast settings. */
export const PREVIOUS_CLIENT_KINDS: readonly ClientKind[] = [
  {
    name: 'ioredis 5',
    open: async (url = redisUrl()) => {
      const client = new Redis5(url, IOREDIS_FAIL_FAST);
      return { client, close: async () => void client.disconnect() };
    },
  },
  {
    name: 'node-redis 5',
    open: async (url = redisUrl()) => {
      const client = createClient5({ url, disableOfflineQueue: true, socket: NODE_REDIS_SOCKET });
      client.on('error', () => undefined);
      await client.connect();
      return { client, close: async () => void client.destroy() };
    },
  },
];

/**
 * A plain ioredis client for the test's own reads and writes beside the store. It connects at its
 * first command: one made where a file or a describe block is collected, whose tests a `-t` filter
 * then skips (their `afterAll` with them), holds no connection that would keep Jest from exiting.
 */
export function inspector(url = redisUrl()): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
}

/** Resolves at the client's next `ready` event (it has connected, or reconnected). */
export const nextReady = (client: object): Promise<void> =>
  new Promise((resolve) => (client as { once(event: string, listener: () => void): void }).once('ready', resolve));

/** Polls `read` until it answers something truthy or a non-empty array (a state the server reaches), and returns that. */
export async function until<T>(read: () => Promise<T>): Promise<T> {
  for (;;) {
    const value = await read();
    if (Array.isArray(value) ? value.length > 0 : value) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Resolves once the client is answered an error whose message matches `refusal` (`/^LOADING /`,
 * `/CLUSTERDOWN/`), as the store receives it. Each command it sends goes through its
 * `sendCommand` (ioredis's `call` and pipelines too), so the wrapper sees each reply; an ioredis
 * `Cluster`'s `call` settles only once the `Cluster` has stopped sending the command again itself.
 */
export function refusalTo(client: RedisClient, refusal: RegExp): Promise<void> {
  const target = client as unknown as { sendCommand(...args: unknown[]): unknown };
  const send = target.sendCommand.bind(target);
  return new Promise((resolve) => {
    target.sendCommand = (...args) => {
      const reply = send(...args);
      Promise.resolve(reply).catch((error: unknown) => {
        if (error instanceof Error && refusal.test(error.message)) resolve();
      });
      return reply;
    };
  });
}

/** Whether `refused` settles before `call` has (the client met the refusal while the call ran). */
export const before = (refused: Promise<void>, call: Promise<unknown>): Promise<boolean> =>
  Promise.race([
    refused.then(() => true),
    call.then(
      () => false,
      () => false,
    ),
  ]);

/**
 * Sends `forget` through `proxy` with its answer lost (the request reaches Redis, no reply comes
 * back): once `gone` says the server applied it, the proxy resets the connection and lets the client
 * connect again. What the forget then says: `{ deleted }`, or `{ error }`.
 */
export async function forgetWithAnswerLost(
  proxy: TcpProxy,
  forget: () => Promise<boolean>,
  gone: () => Promise<boolean>,
): Promise<{ deleted: boolean } | { error: unknown }> {
  proxy.loseReplies();
  const forgotten = forget().then(
    (deleted) => ({ deleted }),
    (error: unknown) => ({ error }),
  );
  await until(gone);
  await proxy.cut();
  await proxy.restore();
  return forgotten;
}

/**
 * The commands the server ran on `key` while `write` ran (its name lower-cased, then its other
 * arguments), in order, read from its MONITOR feed (commands a script runs included).
 */
export async function commandsOn(redis: Redis, key: string, write: () => Promise<unknown>): Promise<string[][]> {
  // Listened to before it connects: ioredis can read a line of the feed that arrives with MONITOR's own
  // OK, or after disconnect(), as a reply to no command ("Command queue state error"), and a busy server
  // (other test files run at once) sends such lines before `redis.monitor()` would have resolved. Such a
  // line comes from before the write or after it.
  const monitor = redis.duplicate({ monitor: true, lazyConnect: true });
  monitor.on('error', () => undefined);
  const monitoring = new Promise<void>((resolve) => monitor.once('monitoring', () => resolve()));
  await monitor.connect();
  await monitoring;
  const marker = `commands-on-${randomUUID()}`;
  let seen!: () => void;
  const fed = new Promise<void>((resolve) => {
    seen = resolve;
  });
  const commands: string[][] = [];
  monitor.on('monitor', (_time: string, args: string[]) => {
    const [name = '', ...rest] = args;
    if (rest[0] === key) commands.push([name.toLowerCase(), ...rest.slice(1)]);
    if (name.toLowerCase() === 'echo' && rest[0] === marker) seen();
  });
  try {
    await write();
    await redis.echo(marker); // fed to the monitor after every command the write made
    await fed;
    return commands;
  } finally {
    monitor.disconnect();
  }
}

/**
 * The times to live (ms) the server's PEXPIREs gave `key` while `write` ran, exactly, read from its
 * MONITOR feed (commands a script runs included). Bracketing the expiry with the test's clock would
 * let a key that dies a millisecond early pass whenever the write took a millisecond.
 */
export async function ttlsGiven(redis: Redis, key: string, write: () => Promise<unknown>): Promise<number[]> {
  const commands = await commandsOn(redis, key, write);
  return commands.filter(([name]) => name === 'pexpire').map(([, ttl]) => Number(ttl));
}

/** Milliseconds until `key` expires; `undefined` when it never will (PTTL -1). A missing key reads as 0. */
export async function pttl(redis: Redis, key: string): Promise<number | undefined> {
  const ttl = await redis.pttl(key);
  return ttl === -1 ? undefined : Math.max(0, ttl);
}

/** A primary and its replica, each a redis-server of its own, once the primary counts the replica in sync. */
export async function startPrimaryAndReplica(): Promise<[primary: RedisServer, replica: RedisServer]> {
  const primary = await startRedisServer();
  const replica = await startRedisServer({ replicaOf: primary.port });
  const admin = new Redis(primary.port, primary.host);
  try {
    while (!/slave0:.*state=online/.test(await admin.info('replication'))) await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    admin.disconnect();
  }
  return [primary, replica];
}
