/**
 * The two Redis clients Lambda users have, behind one small surface: send a command (routed by its
 * key in a cluster), read the eviction policy of every primary, wait for a client that is still
 * connecting or reconnecting. Nothing here changes the user's client: no `defineCommand`, no scripts
 * registered on it, and no listeners left past the client's next event.
 */

import { isUtf8 } from 'node:buffer';
import { delay, timeLimit } from '../deadline.js';
import { detailStoreFailure } from '../errors.js';

type Listener = (...args: unknown[]) => void;

/** An ioredis 5 or 6 `Redis` or `Cluster`. */
export interface IORedisClient {
  readonly status: string;
  /** `Redis` only: its connection, which stops being writable as soon as it starts closing. */
  readonly stream?: { readonly writable: boolean };
  call(command: string, ...args: string[]): Promise<unknown>;
  connect(): Promise<void>;
  once(event: string, listener: Listener): unknown;
  removeListener(event: string, listener: Listener): unknown;
  /** Commands as `[name, ...args]`: ioredis 5.0 declares them so, later versions as `unknown[][]`. */
  pipeline(commands: Array<[name: string, ...args: string[]]>): { exec(): Promise<Array<[error: Error | null, result: unknown]> | null> };
  /**
   * `Cluster` only: the cluster's nodes, each with its address. ioredis declares the address's parts
   * `string | undefined`, so they say `| undefined` too: a `Cluster` is a client under `exactOptionalPropertyTypes`.
   */
  nodes?(
    role: 'master' | 'all',
  ): Array<
    IORedisClient & { readonly options: { readonly host?: string | undefined; readonly port?: number | undefined; readonly keyPrefix?: string | undefined } }
  >;
  /** The client's own settings: its `keyPrefix`, which ioredis puts before every key it sends. */
  readonly options?: { readonly keyPrefix?: string | undefined };
  /** `Cluster` only: reads the slot map again. */
  refreshSlotsCache?(callback: (error?: Error | null) => void): void;
}

/** A node-redis 5 or 6 client (`createClient()`), connected or connecting. */
export interface NodeRedisClient {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  sendCommand(args: readonly string[]): Promise<unknown>;
  once(event: string, listener: Listener): unknown;
  removeListener(event: string, listener: Listener): unknown;
}

/** A node-redis 5 or 6 cluster (`createCluster()`), connected. */
export interface NodeRedisCluster {
  readonly isOpen: boolean;
  /** Each primary, with its client once one was opened to it. */
  readonly masters: ReadonlyArray<{ readonly client?: NodeRedisClient }>;
  /** Each of the 16384 slots, with its primary. */
  readonly slots: ReadonlyArray<{ readonly master: { readonly client?: NodeRedisClient } } | undefined>;
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]): Promise<unknown>;
  nodeClient(node: never): NodeRedisClient | Promise<NodeRedisClient>;
}

/**
 * Any client `RedisStore` accepts: ioredis 5 or 6 `Redis` or `Cluster`, node-redis 5 or 6 client or cluster.
 *
 * @example
 * ```ts
 * const client: RedisClient = new Redis(url, { maxRetriesPerRequest: 0, enableOfflineQueue: false });
 * ```
 */
export type RedisClient = IORedisClient | NodeRedisClient | NodeRedisCluster;

/** One reply of {@link Connection.sendAll}: a value, or the error Redis answered. @internal */
export type Reply = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

/** @internal */
export interface Connection {
  /** Sends one command; `key` routes it to the key's primary in a cluster. */
  send(key: string, args: readonly string[]): Promise<unknown>;
  /**
   * Sends commands in order to `key`'s primary (keyless ones follow it), in one round trip where the
   * client allows. Commands redirected (MOVED, ASK) are sent again only while `inTime()` holds.
   */
  sendAll(key: string, commands: ReadonlyArray<readonly string[]>, inTime?: () => boolean): Promise<Reply[]>;
  /** The `INFO memory` text of every primary. */
  memoryInfo(): Promise<string[]>;
  /**
   * After a failed call on `key`: `true` once a client that lost its connection, or is closing it,
   * is ready again (a node-redis cluster: a node that serves `key`'s slot, its primary back or the
   * replica a failover promoted); `false` at once when
   * its connection is still open (the failure was something else), or after `millis` without it.
   * ioredis still reads ready while a connection closes: one the server closed, or one its
   * `reconnectOnError` closes after a READONLY reply (a primary a failover demoted while keeping
   * its connections), to open another where the endpoint now points.
   */
  reconnected(key: string, millis: number): Promise<boolean>;
  /**
   * Starts watching the client: the function returned tells whether it has lost a connection since.
   * A command in flight then may have run twice: ioredis sends the commands a lost connection left
   * unanswered again once it has reconnected (unless `maxRetriesPerRequest` is 0); an ioredis
   * `Cluster` sends them again once a node's connection has closed, to the slot's primary as it reads
   * the slot map again (`retryDelayOnFailover`, whatever `maxRetriesPerRequest` says), while another
   * node is connected. node-redis fails them instead: always `false`.
   */
  watchLoss(): () => boolean;
}

const isIORedis = (client: object): client is IORedisClient =>
  typeof (client as IORedisClient).call === 'function' && typeof (client as IORedisClient).status === 'string';
const isNodeCluster = (client: object): client is NodeRedisCluster => 'masters' in client && typeof (client as NodeRedisCluster).nodeClient === 'function';
const isNodeClient = (client: object): client is NodeRedisClient =>
  typeof (client as NodeRedisClient).sendCommand === 'function' && typeof (client as NodeRedisClient).isReady === 'boolean';

/**
 * A node-redis Sentinel (`createSentinel()`): it has a client's `isReady` and a `sendCommand`, but
 * one whose first argument says whether the command reads only, so a client's call would fail on
 * every command. @internal
 */
export const isNodeSentinel = (client: unknown): boolean =>
  client !== null && typeof client === 'object' && typeof (client as { getSentinelNode?: unknown }).getSentinelNode === 'function';

/**
 * The client's own `keyPrefix` that the store must put before its keys itself: node-redis 6's
 * (`createClient({ keyPrefix })`, `createCluster({ keyPrefix })`), which node-redis applies to its
 * command methods but not to `sendCommand`, the way the store sends. ioredis puts its own before
 * the keys of every command: `''` for it, as for a client without one. A prefix that is not UTF-8
 * text is a `TypeError`: the store's keys are text. @internal
 */
export function ownKeyPrefix(client: RedisClient): string {
  if (isIORedis(client)) return '';
  // node-redis 6's own reading of the option (node-redis 5 has none, and ignores a `keyPrefix` given to it).
  const prefix: unknown = (client as { readonly _keyPrefix?: unknown })._keyPrefix;
  if (prefix === undefined || prefix === null || prefix === '') return '';
  if (typeof prefix === 'string') return prefix;
  const text = Buffer.isBuffer(prefix) && isUtf8(prefix) ? prefix.toString('utf8') : undefined;
  if (text === undefined) throw new TypeError("RedisStore: the client's keyPrefix is not UTF-8 text; give the store its prefix as `keyPrefix` instead.");
  return text;
}

/** True when `client` looks like one of the supported clients. @internal */
export function isRedisClient(client: unknown): client is RedisClient {
  return client !== null && typeof client === 'object' && !isNodeSentinel(client) && (isIORedis(client) || isNodeCluster(client) || isNodeClient(client));
}

type Event = 'ready' | 'error' | 'close' | 'end' | '-node';
/** What a connecting client's wait ends at (node-redis has no `close`). */
const ANY: readonly Event[] = ['ready', 'error', 'close', 'end'];
/** What a reconnection's wait ends at: a failed attempt is followed by another, unless `end` comes. */
const READY_OR_END: readonly Event[] = ['ready', 'end'];
/** A lost connection, as an ioredis `Redis` tells it (a `Cluster`'s node included). */
const CLOSED: readonly Event[] = ['close'];
/** A lost connection, as an ioredis `Cluster` tells it: one of its nodes' connections ended. */
const NODE_ENDED: readonly Event[] = ['-node'];

/**
 * {@link Connection.watchLoss} of an ioredis client. A `Cluster` emits no `close` while another
 * node is connected: the `close` of each node it has is watched, which a node that reconnects
 * (`clusterNodeRetryStrategy`) emits too, and its `-node`, which a node it connects to later
 * (a MOVED reply's) emits when that one's connection ends, as it does by default.
 */
function lossOf(client: IORedisClient): () => boolean {
  const watches =
    client.nodes === undefined ? [lossWatch(client, CLOSED)] : [lossWatch(client, NODE_ENDED), ...client.nodes('all').map((node) => lossWatch(node, CLOSED))];
  return () => watches.some((watch) => watch.lost);
}

/** What each wait of {@link nextEvent} that a loss is watched through has seen: `lost` from its event on. */
const losses = new WeakMap<Promise<unknown>, { lost: boolean }>();

/**
 * The loss that the client's next event of `events` tells, shared by every call that watches for it
 * meanwhile: one reaction to the wait, not one per call, which a client that never loses its
 * connection would hold, each call's, for as long as it lives.
 */
function lossWatch(client: IORedisClient, events: readonly Event[]): { readonly lost: boolean } {
  const next = nextEvent(client, events);
  const known = losses.get(next);
  if (known !== undefined) return known;
  const watch = { lost: false };
  losses.set(next, watch);
  void next.then(() => {
    watch.lost = true;
  });
  return watch;
}

/** The next of each list of events that calls wait for, per client. */
const nextEvents = new WeakMap<object, Map<readonly Event[], Promise<readonly [Event, unknown]>>>();

/**
 * The client's next event of `events`, with what came with it. Every call waiting meanwhile shares
 * one listener per event, removed at the first of them: a listener each would pass Node's limit
 * of 10 and warn.
 */
function nextEvent(client: IORedisClient | NodeRedisClient, events: readonly Event[]): Promise<readonly [Event, unknown]> {
  let waits = nextEvents.get(client);
  if (waits === undefined) nextEvents.set(client, (waits = new Map()));
  let next = waits.get(events);
  if (next === undefined) {
    const pending = waits;
    next = new Promise((resolve) => {
      const listeners = events.map((event) => {
        const listener: Listener = (argument) => {
          for (const [i, e] of events.entries()) client.removeListener(e, listeners[i]!);
          pending.delete(events);
          resolve([event, argument]);
        };
        client.once(event, listener);
        return listener;
      });
    });
    waits.set(events, next);
  }
  return next;
}

/** Resolves at the client's next `ready`, rejects at its next `error`, `close` or `end`. */
async function whenReady(client: IORedisClient | NodeRedisClient): Promise<void> {
  const [event, argument] = await nextEvent(client, ANY);
  if (event !== 'ready') throw argument instanceof Error ? argument : new Error(`The Redis connection ended (${event}) before it was ready.`);
}

/**
 * `true` at the client's next `ready`, however many attempts fail before it; `false` at `end` or
 * after `millis`. Listening for those two only: ioredis emits `end` in the tick after the `close`
 * before it, before a wait that ended at `close` could listen again.
 */
async function readyAgain(client: IORedisClient | NodeRedisClient, millis: number): Promise<boolean> {
  const expiry = delay(millis);
  try {
    const next = await Promise.race([nextEvent(client, READY_OR_END), expiry.elapsed]);
    return next?.[0] === 'ready';
  } finally {
    expiry.cancel();
  }
}

/**
 * ioredis: a client made with `lazyConnect` is connected, one still connecting (or about to
 * reconnect after a lost connection) is awaited, until that attempt succeeds or fails, as
 * node-redis's own reconnection is: without the offline queue, a command sent meanwhile would fail
 * at once, the release of a claim whose answer the reset lost among them, which left the key held
 * until its lease with nothing running.
 */
async function ioredisReady(client: IORedisClient): Promise<void> {
  // `connect()` moves the status to 'connecting' at once, so concurrent calls share one connection;
  // its rejection is the `error` that `whenReady` reports.
  if (client.status === 'wait') client.connect().catch(() => undefined);
  if (client.status === 'connecting' || client.status === 'connect' || client.status === 'reconnecting') await whenReady(client).catch(withoutInfo);
}

/**
 * ioredis's ready check is INFO: on a server whose operator renamed it away, every connection
 * fails that check and the client never becomes ready, whatever `allowEviction` says. Named, with
 * the setting that avoids it, rather than a bare "unknown command" on every call.
 */
function withoutInfo(error: unknown): never {
  const message = replyText(error);
  if (!/^ERR unknown command .info/i.test(message)) throw error;
  throw saidWhole(
    new Error(
      `ioredis never became ready: its ready check sends INFO, which this server does not have (${message.trim()}). ` +
        'Create the client with `enableReadyCheck: false`; the store reads the eviction policy with INFO too: see `allowEviction`.',
      { cause: error },
    ),
  );
}

/** `error`, whose message this library wrote (no key or payload), said whole by the STORE_FAILURE that wraps it. */
const saidWhole = (error: Error): Error => {
  detailStoreFailure(error, error.message.replace(/\.$/, ''));
  return error;
};

/** The text of a thrown value: a server's error reply (`NOPERM …`, `ERR unknown command …`) as either client words it. */
export const replyText = (error: unknown): string => String((error as { message?: unknown } | null)?.message);

const notConnected = (kind: string): Error =>
  saidWhole(new Error(`The node-redis ${kind} is not connected: call \`await client.connect()\` first (RedisStore never opens or closes your client).`));

async function nodeReady(client: NodeRedisClient): Promise<void> {
  if (!client.isOpen) throw notConnected('client');
  if (!client.isReady) await whenReady(client);
}

/**
 * A node-redis cluster knows no primary before its `connect()` has answered: it would send nothing,
 * and the eviction check, reading no primary's policy, would refuse every claim for its policy. A
 * command on `key` whose primary is reconnecting waits for that attempt, as a client's does: sent
 * meanwhile, it would fail unsent (the release of a claim whose answer a reset lost among them).
 */
async function nodeClusterReady(client: NodeRedisCluster, key?: string): Promise<void> {
  if (!client.isOpen || client.masters.length === 0) throw notConnected('cluster');
  const primary = key === undefined ? undefined : client.slots[slotOf(key)]?.master.client;
  if (primary?.isOpen === true && !primary.isReady) await whenReady(primary);
}

const settle = async (replies: Array<Promise<unknown>>): Promise<Reply[]> =>
  (await Promise.allSettled(replies)).map((r) => (r.status === 'fulfilled' ? { ok: true, value: r.value } : { ok: false, error: r.reason }));

/** `connection` with each command sent through `around` (a wait before it for the client to take a command on `key`, a time limit on it). */
function sentThrough(connection: Connection, around: <T>(send: () => Promise<T>, key?: string) => Promise<T>): Connection {
  return {
    send: (key, args) => around(() => connection.send(key, args), key),
    sendAll: (key, commands) => around(() => connection.sendAll(key, commands), key),
    memoryInfo: () => around(() => connection.memoryInfo()),
    reconnected: (key, millis) => connection.reconnected(key, millis),
    watchLoss: () => connection.watchLoss(),
  };
}

/**
 * A client's commands for one store call that must end within `millis` of now, every step of it
 * included: waiting for a connecting client, the eviction check, a script sent again by its
 * source, a completion's wait for a reconnection and its resend. Each command is given what is
 * left of the bound (one still unanswered then may yet reach the server: an ambiguous write), a
 * wait for a reconnection at most that, and nothing is sent once it has run out, not even a
 * command that waited for a connecting client until then. Without `millis`, no limit. @internal
 */
export function connectionOf(client: RedisClient, millis?: number): Connection {
  return boundedConnection(commandsOf(client), millis);
}

/** {@link connectionOf} of commands made once ({@link commandsOf}): what a store does for each call. @internal */
export function boundedConnection([ready, connection]: ClientCommands, millis?: number): Connection {
  if (millis === undefined) {
    return sentThrough(connection, async (send, key) => {
      await ready(key);
      return send();
    });
  }
  const end = performance.now() + millis;
  const left = () => end - performance.now();
  const failure = () => new Error(`Redis did not answer within ${millis} ms (the store call's timeoutMillis).`);
  const within = <T>(send: () => Promise<T>, key?: string): Promise<T> => {
    if (left() <= 0) return Promise.reject(failure());
    const sent = async () => {
      await ready(key);
      if (left() <= 0) throw failure();
      return send();
    };
    return timeLimit(sent(), left(), failure);
  };
  return {
    ...sentThrough(connection, within),
    // A redirection answered near the bound is followed only within it: a write sent after the call
    // failed could apply after its caller, told of the failure, released the key, and hold it until its lease.
    sendAll: (key, commands) => within(() => connection.sendAll(key, commands, () => left() > 0), key),
    reconnected: async (key, wait) => left() > 0 && connection.reconnected(key, Math.min(wait, left())),
  };
}

type IORedisNode = ReturnType<NonNullable<IORedisClient['nodes']>>[number];

/**
 * An ioredis Cluster's connection to the node at `address` as the cluster announces it, made when
 * it has none, as ioredis does when it follows an ASK itself: a node added to take slots over holds
 * none until its first slot's migration ends, so the slot map names it nowhere. Behind a NAT the
 * address is the one the Cluster's `natMap` maps it to. Both are members ioredis does not declare;
 * without them, only the primaries of the slot map are looked through.
 */
function nodeAt(client: IORedisClient, address: string): IORedisNode | undefined {
  const cluster = client as IORedisClient & {
    natMapper?(address: string): { readonly host: string; readonly port: number };
    connectionPool?: { findOrCreate?(node: { readonly host: string; readonly port: number }): IORedisNode };
  };
  const at = address.lastIndexOf(':');
  const { host, port } = cluster.natMapper?.(address) ?? { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
  return (
    cluster.connectionPool?.findOrCreate?.({ host, port }) ?? client.nodes?.('master').find(({ options }) => options.host === host && options.port === port)
  );
}

/** How to know that a client can take a command (on `key`, when given), and its commands, sent once it can. @internal */
export type ClientCommands = readonly [ready: (key?: string) => Promise<void> | void, connection: Connection];

/** `client`'s {@link ClientCommands}: made once per store, each call bounded by {@link boundedConnection}. @internal */
export function commandsOf(client: RedisClient): ClientCommands {
  if (isIORedis(client)) {
    return [
      () => ioredisReady(client),
      {
        send: (_key, [command, ...args]) => client.call(command!, ...args),
        sendAll: async (_key, commands, inTime = () => true) => {
          // A cluster pipeline goes to the node of its first keyed command, keyless commands included.
          const send = async (to: IORedisClient, sent: ReadonlyArray<readonly string[]>): Promise<Reply[]> =>
            ((await to.pipeline(sent.map((command): [string, ...string[]] => ['call', ...command])).exec()) ?? []).map(([error, value]) =>
              error ? { ok: false, error } : { ok: true, value },
            );
          const replies = await send(client, commands);
          // ioredis follows no redirection of a pipeline that holds a write besides the failed one (WAIT).
          // Either ran nothing: send the commands where the redirection says, once.
          const redirection = replies.map((reply) => (reply.ok ? '' : String((reply.error as Error).message))).find((m) => /^(MOVED|ASK) /.test(m));
          if (!client.refreshSlotsCache || redirection === undefined) return replies;
          if (redirection.startsWith('ASK')) {
            // The slot is migrating and the key is on its new node already: ASKING lets that node run the next command.
            const node = nodeAt(client, redirection.split(' ')[2] ?? '');
            // A Cluster's own keyPrefix is not its nodes' (its `redisOptions.keyPrefix` is both): the
            // node is sent the keys with what the Cluster puts before them and it does not.
            const [prefix, nodePrefix] = [client.options?.keyPrefix ?? '', node?.options.keyPrefix ?? ''];
            if (node === undefined || !prefix.startsWith(nodePrefix)) return replies;
            await ioredisReady(node);
            const sent = commands.map((command) => prefixedKeys(command, prefix.slice(nodePrefix.length)));
            return inTime() ? (await send(node, [['ASKING'], ...sent])).slice(1) : replies;
          }
          // MOVED: ioredis does not learn that the slot moved, and every later call would meet MOVED again.
          await new Promise<void>((resolve) => client.refreshSlotsCache!(() => resolve()));
          return inTime() ? send(client, commands) : replies;
        },
        memoryInfo: () => {
          // A Cluster closed by the application has no nodes: asked itself, it answers with its own
          // error, where an empty list would read as a policy INFO did not report.
          const masters = client.nodes?.('master') ?? [];
          return Promise.all((masters.length > 0 ? masters : [client]).map(async (node) => String(await node.call('INFO', 'memory'))));
        },
        reconnected: (_key, millis) => {
          // Ready with a connection that no longer writes: it is closing, and a reconnection follows
          // (or `end`, when the application closed it or the retryStrategy gives up).
          const closing = client.status !== 'ready' || client.stream?.writable === false;
          return closing && client.status !== 'end' ? readyAgain(client, millis) : Promise.resolve(false);
        },
        watchLoss: () => lossOf(client),
      },
    ];
  }
  if (isNodeCluster(client)) {
    return [
      (key) => nodeClusterReady(client, key),
      {
        send: (key, args) => client.sendCommand(key, false, [...args]),
        // One after another: a command redirected (MOVED) is sent again to the slot's new primary,
        // and the commands after it (WAIT) must go there too, not to the primary it left. They go to
        // that primary's own client: sent through the cluster, node-redis 6 follows WAIT's command
        // tips (all_shards, agg_min), waits on every primary and answers with the lowest count, so
        // one shard without a replica in sync would fail every write on the others.
        sendAll: async (key, [first, ...after]) => {
          const replies = await settle([client.sendCommand(key, false, [...first!])]);
          for (const command of after) replies.push(...(await settle([slotPrimary(client, key).then((primary) => primary.sendCommand(command))])));
          return replies;
        },
        memoryInfo: () =>
          Promise.all(client.masters.map(async (master) => String(await (await client.nodeClient(master as never)).sendCommand(['INFO', 'memory'])))),
        reconnected: (key, millis) => slotServedAgain(client, slotOf(key), millis),
        watchLoss: () => () => false,
      },
    ];
  }
  return [
    () => nodeReady(client),
    {
      send: (_key, args) => client.sendCommand(args),
      // Sent together without waiting: node-redis writes them in order on its one connection.
      sendAll: (_key, commands) => settle(commands.map((command) => client.sendCommand(command))),
      memoryInfo: async () => [String(await client.sendCommand(['INFO', 'memory']))],
      // node-redis never reconnects on a reply (READONLY included): nothing to wait for while it is ready.
      reconnected: async (_key, millis) => (client.isReady || !client.isOpen ? false : readyAgain(client, millis)),
      watchLoss: () => () => false,
    },
  ];
}

/** An `EVAL` or `EVALSHA` command with `prefix` before each of its keys; any other command as it is. */
function prefixedKeys(command: readonly string[], prefix: string): readonly string[] {
  if (prefix === '' || !/^EVAL(SHA)?$/i.test(command[0]!)) return command;
  const keys = Number(command[2]);
  return command.map((arg, i) => (i >= 3 && i < 3 + keys ? prefix + arg : arg));
}

/** The client of the primary that serves `key`'s slot, as the cluster's slot map says (read again at each MOVED). */
async function slotPrimary(client: NodeRedisCluster, key: string): Promise<NodeRedisClient> {
  const primary = client.slots[slotOf(key)]?.master;
  if (primary === undefined) throw new Error(`No primary of the cluster serves the slot of ${key}.`);
  return client.nodeClient(primary as never);
}

/** node-redis 5 and 6, undocumented: the cluster's slot map, which `rediscover` reads again (from `startWith` first). */
const slotMapOf = (client: NodeRedisCluster) =>
  (client as unknown as { readonly _slots?: { rediscover?(startWith: NodeRedisClient): Promise<unknown> } })._slots;

/** How often a node-redis cluster is asked to read its slot map again while a key's primary is away. */
const REDISCOVER_MILLIS = 100;

/**
 * node-redis cluster, after a command on a key of `slot` failed: `true` once a node that serves
 * the slot is ready, `false` at once when the slot's primary was connected (the failure was
 * something else), or after `millis`. node-redis reconnects a primary's lost connection by itself
 * (and resends no command), but reads the slot map again only at a MOVED reply (6: also after a
 * node has been reconnecting for `topologyRefreshOnReconnectionAttemptStrategy`, 5 s by default):
 * a primary that a failover replaced never comes back, and its slots are served by the replica it
 * promoted. So the map is read again now, and every {@link REDISCOVER_MILLIS} while the slot's
 * primary is away, until the slot is served by a node that is ready: its old primary back, or the
 * promoted replica. Another primary, still away, is no reason to give up on a key it does not hold.
 * The map is read through `_slots.rediscover`, which node-redis 5 and 6 have but do not document;
 * without it, only the slot's primary is waited for.
 */
async function slotServedAgain(client: NodeRedisCluster, slot: number, millis: number): Promise<boolean> {
  const primary = () => client.slots[slot]?.master.client;
  const lost = primary();
  if (lost?.isOpen !== true || lost.isReady) return false;
  const expiry = delay(millis);
  const expired = expiry.elapsed.then(() => true);
  try {
    for (;;) {
      const node = primary();
      if (node?.isReady) return true;
      if (!client.isOpen) return false;
      const pause = delay(REDISCOVER_MILLIS);
      // Read from a primary still connected when there is one: the one away would be tried first, for as long as its connection takes to fail.
      const from = client.masters.find((master) => master.client?.isReady)?.client ?? node ?? lost;
      const reread = slotMapOf(client)
        ?.rediscover?.(from)
        .catch(() => undefined);
      const back = node?.isOpen ? nextEvent(node, READY_OR_END) : undefined;
      const over = await Promise.race([expired, pause.elapsed.then(() => reread), ...(back ? [back.then(() => false)] : [])]);
      pause.cancel();
      if (over) return false;
    }
  } finally {
    expiry.cancel();
  }
}

/**
 * The cluster slot of `key`, as Redis computes it: CRC16 (XMODEM) of its bytes, or of its hash tag
 * (what lies between its first `{` and the next `}`, when not empty), modulo 16384. @internal
 */
export function slotOf(key: string): number {
  const bytes = Buffer.from(key);
  const open = bytes.indexOf(0x7b);
  const close = open < 0 ? -1 : bytes.indexOf(0x7d, open + 1);
  let crc = 0;
  for (const byte of close > open + 1 ? bytes.subarray(open + 1, close) : bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = ((crc << 1) ^ (crc & 0x8000 ? 0x1021 : 0)) & 0xffff;
  }
  return crc % 16384;
}
