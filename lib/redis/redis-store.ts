import { delay } from '../deadline.js';
import { encryptionModule, encryptionOrKeyProvider, type OutcomeEncryption, type ResponseEncryption } from '../encryption.js';
import { detailStoreFailure, nameStoreFailure } from '../errors.js';
import { isWellFormed } from '../key.js';
import { assertKnownOptions, checkOptions, isBoolean, type OptionCheck } from '../options.js';
import { hashOf, outcomeFields, recordOf, refusalRecord, summaryOf } from '../record-hash.js';
import { malformedRecord, ResponseCodec, UnreadableRecordError } from '../response-codec.js';
import type {
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  CompleteResult,
  IdempotencyRecord,
  IdempotencyStore,
  RecordStatus,
  RecordSummary,
  ReleaseRequest,
  ReleaseResult,
} from '../store.js';
import { DEFAULT_COMPRESS_ABOVE_BYTES, OUTCOME_OPTION_CHECKS } from '../stored-outcome.js';
import {
  boundedConnection,
  type ClientCommands,
  type Connection,
  commandsOf,
  isNodeSentinel,
  isRedisClient,
  ownKeyPrefix,
  type RedisClient,
  replyText,
} from './connection.js';
import { assertNoEviction } from './eviction.js';
import { CLAIM, COMPLETE, FORGET, RELEASE, type ReplicaWait, runScript, type Script } from './scripts.js';

/**
 * Options of {@link RedisStore}.
 *
 * @example
 * ```ts
 * const options: RedisStoreOptions = { client, keyPrefix: 'payments:', timeoutMillis: 1000, waitForReplicas: { replicas: 1, timeoutMillis: 50 } };
 * ```
 */
export interface RedisStoreOptions {
  /**
   * An ioredis 5 or 6 `Redis` or `Cluster`, or a node-redis 5 or 6 client or cluster (not a Sentinel
   * from `createSentinel()`, which is refused), connected or still connecting (a node-redis cluster:
   * connected; until its `connect()` has answered, every call fails with `STORE_FAILURE` saying so). Configure it to fail fast (see docs/redis.md): with default settings both
   * clients queue commands during an outage, and the call waits for the Lambda timeout.
   */
  readonly client: RedisClient;
  /**
   * Prepended to every record key: text without lone surrogates (Redis would store each as U+FFFD, so two
   * such prefixes would share records). Do not put a `{hash tag}` in it: it would send every record to one shard.
   * @default 'idempotency:'
   */
  readonly keyPrefix?: string | undefined;
  /** Responses whose JSON is larger than this many bytes (0 to 409600) are stored gzip-compressed. @default 32768 */
  readonly compressAboveBytes?: number | undefined;
  /**
   * Encrypt stored responses and final errors at rest: `aesGcmEncryption(provider)` from
   * `lambda-idempotency` (AES-256-GCM with keys from your provider). The provider itself
   * (`{ currentKey, keyById }`) is still taken, and means the same: deprecated, pass
   * `aesGcmEncryption(provider)`. @default none
   */
  readonly encryption?: OutcomeEncryption | ResponseEncryption | undefined;
  /**
   * Claim even when the server's `maxmemory-policy` is not `noeviction`, or cannot be read (an ACL
   * that refuses `INFO`, a server whose `INFO` was renamed away): skips the check. Eviction can drop
   * a live record and let a duplicate run again: set this only where the operator guarantees
   * `noeviction` (ElastiCache Serverless: no data storage maximum; see docs/redis.md) or that risk
   * is accepted. @default false
   */
  readonly allowEviction?: boolean | undefined;
  /**
   * Each store call ends within this many milliseconds of its first request to Redis, whatever the
   * client does: every step of the call counts, together. Waiting for a connecting client, the
   * eviction check, a script sent again by its source, `WAIT` (`waitForReplicas`), and a
   * completion's or release's wait for a lost connection to come back and its resend all share the one bound;
   * what is still unanswered at it fails the call, and nothing is sent after it (a redirection the
   * client follows by itself inside one command excepted). Opening a stored response (your key
   * provider) is not a request to Redis and is not counted. node-redis's
   * command timeout stops counting once a command is written, so only this bounds a connection that
   * stops answering. A completion or release whose connection was lost waits for the client to reconnect
   * (on a node-redis cluster: for a node that serves the record's slot, its old primary or the
   * replica a failover promoted) for what is left of this bound (1000 ms without it), and is sent
   * again: the earlier its first attempt failed, the more time a reconnection gets. A whole number
   * from 1 to 2,147,483,647 (the longest Node timer).
   * @default none: the client's own timeouts
   */
  readonly timeoutMillis?: number | undefined;
  /**
   * Each write (claim, completion, release) counts only once this many replicas acknowledged it
   * (Redis `WAIT`), so that a failover does not lose it; otherwise the call fails (a claim with
   * `STORE_FAILURE`: the function does not run). Redis replication is asynchronous: without this, a
   * failover can lose an acknowledged claim. A claim or completion sent again after its answer was
   * lost, which finds the call's own record, counts only once the replicas have that record too.
   * `WAIT` narrows that window, it is not a consensus protocol; MemoryDB makes every write durable.
   * Both members are whole numbers from 1 to `Number.MAX_SAFE_INTEGER`; another member (a misspelt
   * `timeout`) is refused at construction.
   * @default none
   */
  readonly waitForReplicas?: ReplicaWait | undefined;
}

/** The longest delay a Node timer keeps (about 24.8 days). */
const MAX_TIMER_MILLIS = 2 ** 31 - 1;

/** The members of `waitForReplicas`. */
const REPLICA_WAIT_MEMBERS: readonly (keyof ReplicaWait)[] = ['replicas', 'timeoutMillis'];

/** Every option of a `RedisStore` and its check. */
const CHECKS: { readonly [K in keyof RedisStoreOptions]-?: OptionCheck } = {
  client: (value) =>
    isNodeSentinel(value)
      ? 'is a node-redis Sentinel (`createSentinel()`), which the store does not take: its commands have another form'
      : isRedisClient(value)
        ? undefined
        : 'must be an ioredis Redis or Cluster, or a node-redis client or cluster (version 5 or 6)',
  // UTF-8 has no form for a lone surrogate: Redis stores it as U+FFFD, so two such prefixes would be one.
  keyPrefix: (value) => (typeof value === 'string' && isWellFormed(value) ? undefined : 'must be a string without lone surrogates'),
  ...OUTCOME_OPTION_CHECKS,
  encryption: encryptionOrKeyProvider,
  allowEviction: isBoolean,
  // A Node timer longer than 2^31 - 1 ms fires at once: every call would fail at once.
  timeoutMillis: (value) =>
    Number.isInteger(value) && (value as number) >= 1 && (value as number) <= MAX_TIMER_MILLIS
      ? undefined
      : `must be a whole number of milliseconds, from 1 to ${MAX_TIMER_MILLIS}`,
  // Safe integers: a larger one is written in a form WAIT refuses, after every write it was to confirm.
  waitForReplicas: (value) => {
    const wait = value as Partial<ReplicaWait> | null;
    if (!(Number.isSafeInteger(wait?.replicas) && wait!.replicas! >= 1 && Number.isSafeInteger(wait!.timeoutMillis) && wait!.timeoutMillis! >= 1)) {
      return 'must be `{ replicas, timeoutMillis }`, two whole numbers from 1 to Number.MAX_SAFE_INTEGER';
    }
    // A misspelt member (`timeout`) would otherwise be dropped without a word.
    assertKnownOptions('RedisStore: `waitForReplicas`', wait!, REPLICA_WAIT_MEMBERS);
    return undefined;
  },
};
const WHERE = 'Redis';
/** Without `timeoutMillis`, how long a completion or release waits for a lost connection: a reconnection, not an outage. */
const RECONNECT_MILLIS = 1000;
/** How long a completion or release refused for now (LOADING, BUSY, CLUSTERDOWN, TRYAGAIN, NOREPLICAS) waits before it is sent again. */
const REFUSED_PAUSE_MILLIS = 50;

/** How an ioredis `Cluster` quotes the last reply after its redirections, before that reply's code. */
const CLUSTER_QUOTE = String.raw`(?:Too many Cluster redirections\. Last error: \w+: )?`;

/**
 * Replies that refuse a command before it runs, for a while: a server that restarted on its data
 * answers LOADING until it is loaded (node-redis reconnects and sends meanwhile; ioredis's ready
 * check waits); any server answers BUSY while another client's script runs past its
 * `busy-reply-threshold`; a cluster node answers CLUSTERDOWN while the cluster is down (a failed
 * primary not yet replaced by its replica, with `cluster-require-full-coverage`) or the key's slot
 * is served by no node, and TRYAGAIN while the slot is being trimmed (Redis 8); a primary set to
 * take writes only with replicas in sync (`min-replicas-to-write`) answers NOREPLICAS while too few
 * are, at a script's first write, so the script has written nothing. An ioredis
 * `Cluster` sends CLUSTERDOWN and TRYAGAIN again itself (`retryDelayOnClusterDown`,
 * `retryDelayOnTryAgain`) until its `maxRedirections`, then fails with an error that quotes the
 * last reply. That reply ran nothing; an attempt before it may have (a connection closed under
 * it), and a completion or release, fenced by its owner, applies once however often it is sent. Not
 * MASTERDOWN: only a replica answers it, and a write never runs there (once its link to its
 * primary is back, it answers READONLY).
 */
const REFUSED_FOR_NOW = new RegExp(`^${CLUSTER_QUOTE}(?:LOADING|BUSY|CLUSTERDOWN|TRYAGAIN|NOREPLICAS) `);
const refusedForNow = (error: unknown): boolean => REFUSED_FOR_NOW.test(replyText(error));

/**
 * The code that begins a server's error reply (`READONLY`, `MISCONF`, `OOM`, `NOREPLICAS`…), also
 * as an ioredis `Cluster` quotes the last one after its redirections.
 */
const REPLY_CODE = new RegExp(`^${CLUSTER_QUOTE}([A-Z][A-Z0-9_]{1,39})(?: |$)`);

/**
 * A request's failure, named in messages and log lines by the code of the server's reply when Redis
 * refused the command (only Redis's: a key provider's error is not a reply): both clients name every such reply alike (ioredis `ReplyError`, node-redis
 * `Error`), and a warning that the record stays INPROGRESS would not say whether the server is a
 * demoted primary (READONLY) or one that cannot save to disk (MISCONF).
 */
const named = (error: unknown): Promise<never> => {
  const code = REPLY_CODE.exec(replyText(error))?.[1];
  if (code !== undefined) nameStoreFailure(error, code);
  return Promise.reject(error);
};

/**
 * The key's time to live (ms) at the caller's `now` for a retention of `expiresAt` (epoch s) and
 * a lease: through the retention's last millisecond (a record stays live while its retention is not
 * before the caller's second), or the lease's if later. PEXPIRE takes whole milliseconds, and a
 * clock built on performance.now() has fractions. Checked before anything is sent: a script whose
 * PEXPIRE fails has already written its record, which would then never expire, and a time to live
 * that is not positive deletes the record the script just wrote.
 */
function timeToLive(now: number, expiresAt: number, leaseUntil = Number.NEGATIVE_INFINITY): string {
  const ttl = Math.ceil(Math.max((expiresAt + 1) * 1000 - 1, leaseUntil) - now);
  if (Number.isSafeInteger(ttl) && ttl >= 1) return String(ttl);
  const got = `(got expiresAt ${expiresAt}${leaseUntil === Number.NEGATIVE_INFINITY ? '' : `, leaseUntil ${leaseUntil}`}, now ${now})`;
  // A retention of Number.MAX_SAFE_INTEGER seconds, say: "forever" is a retention Redis cannot be given.
  if (ttl > Number.MAX_SAFE_INTEGER) {
    throw new TypeError(
      `RedisStore: a record's retention and lease must end within Number.MAX_SAFE_INTEGER milliseconds (about 285,000 years) of \`now\`, the longest time to live this store gives a key ${got}: lower \`expiresAfterSeconds\` or the lease.`,
    );
  }
  throw new TypeError(`RedisStore: a record's retention and lease must end after \`now\` ${got}.`);
}

/**
 * A key of another type than a hash where a record should be (another application's value under the
 * prefix) fails closed as any record this store did not write, naming how to remove it: Redis would
 * answer every operation on it with WRONGTYPE, and one without a TTL would hold the key forever.
 */
const notAHash = (key: string, error: unknown): unknown =>
  replyText(error).startsWith('WRONGTYPE') ? malformedRecord(key, WHERE, 'the key is not a hash', '. Remove it with forgetRecord') : error;

/** HGETALL's reply as `[field, value, …]`: RESP3 (node-redis 6 by default, 5 with `RESP: 3`) answers with a map, an object or a `Map`. */
const flatHash = (reply: unknown): unknown => {
  if (reply instanceof Map) return [...reply].flat();
  return Array.isArray(reply) || reply === null || typeof reply !== 'object' ? reply : Object.entries(reply).flat();
};

/**
 * `[applied, fields]` from a script's reply `{1|2|0, {field, value, …}?}` (2: the caller's own record, found and written again: not applied by this call).
 * The integer may arrive as text (ioredis's `stringNumbers`, a node-redis `typeMapping` of numbers to `String`).
 */
function verdict(reply: unknown): [boolean, unknown] {
  const first: unknown = Array.isArray(reply) ? reply[0] : undefined;
  const code = typeof first === 'number' || typeof first === 'string' ? Number(first) : Number.NaN;
  if (![0, 1, 2].includes(code) || first === '') throw new Error('Redis answered a record script with an unexpected reply.');
  return [code === 1, (reply as unknown[])[1] ?? []];
}

/**
 * The record protocol on Redis (or Valkey, ElastiCache, MemoryDB): claim, complete and release are
 * each one owner-fenced Lua script on one key (so Redis Cluster works), every key carries a TTL that
 * is the record's retention (never shorter than its lease), and the caller's clock judges leases
 * and retention, as in `DynamoDBStore`, and counts each TTL. A refused write returns the current record, so no
 * operation reads before it writes. Claims are refused unless the server's `maxmemory-policy` is
 * `noeviction`. No transactions: `atomic: true` is a `TypeError` at construction, and so is a
 * write added to `transaction()`, when it is added.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { RedisStore } from 'lambda-idempotency/redis';
 *
 * const client = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 2000 });
 * const store = new RedisStore({ client });
 * ```
 */
export class RedisStore implements IdempotencyStore {
  readonly keyPrefix: string;
  /** What comes before a record's key in Redis: a node-redis client's own `keyPrefix`, then `keyPrefix`. */
  private readonly recordPrefix: string;
  private readonly client: RedisClient;
  private readonly commands: ClientCommands;
  private readonly timeoutMillis: number | undefined;
  private readonly codec: ResponseCodec;
  private readonly allowEviction: boolean;
  private readonly wait: ReplicaWait | undefined;
  /** How long a completion or release waits for a lost connection to come back, at most (within `timeoutMillis`, what is left of it). */
  private readonly reconnectMillis: number;
  /** The failures of claims that a client may have sent again after a lost connection: one of them may have applied. */
  private readonly sentAgain = new WeakSet<object>();

  /** @deprecated Pass `encryption: aesGcmEncryption(provider)`: the key provider itself is the older shape of the option. */
  constructor(options: Omit<RedisStoreOptions, 'encryption'> & { readonly encryption: ResponseEncryption });
  constructor(options: RedisStoreOptions);
  constructor(options: RedisStoreOptions) {
    checkOptions('RedisStore', options, CHECKS, ['client']);
    const wait = options.waitForReplicas;
    this.wait = wait === undefined ? undefined : { replicas: wait.replicas, timeoutMillis: wait.timeoutMillis };
    this.client = options.client;
    this.commands = commandsOf(options.client);
    this.timeoutMillis = options.timeoutMillis;
    this.keyPrefix = options.keyPrefix ?? 'idempotency:';
    this.recordPrefix = ownKeyPrefix(options.client) + this.keyPrefix;
    this.codec = new ResponseCodec(options.compressAboveBytes ?? DEFAULT_COMPRESS_ABOVE_BYTES, encryptionModule(options.encryption));
    this.allowEviction = options.allowEviction === true;
    this.reconnectMillis = options.timeoutMillis ?? RECONNECT_MILLIS;
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const { key, owner, leaseUntil, expiresAt, now, fingerprint } = request;
    // The key outlives the retention only if the lease is longer: Redis must not forget a held record.
    // Checked before any request, the eviction check's included: a time to live no key can have is
    // the caller's mistake, whatever the server's policy.
    const args = [owner, String(leaseUntil), String(expiresAt), String(now), timeToLive(now, expiresAt, leaseUntil), key];
    if (fingerprint !== undefined) args.push(fingerprint);
    const connection = this.bounded();
    if (!this.allowEviction) await assertNoEviction(this.client, connection).catch(named);
    const lost = connection.watchLoss();
    const [claimed, fields] = await this.run(connection, CLAIM, key, args).catch((error: unknown) => {
      // A client that lost a connection meanwhile may have sent the claim again itself (an ioredis
      // `Cluster` does, and then quotes the last reply, CLUSTERDOWN say): an earlier attempt may have applied.
      if (lost() && error !== null && typeof error === 'object') this.sentAgain.add(error);
      throw error;
    });
    const record = hashOf(fields);
    // A replaced hash that was not a record (written by hand, say) is replaced like any other, as DynamoDBStore does.
    const previous = claimed && record !== undefined ? await recordOf(key, record, this.codec, WHERE, false).catch(() => undefined) : undefined;
    if (claimed) return previous === undefined ? { claimed: true } : { claimed: true, previous };
    if (record === undefined) throw new Error(`Redis refused the claim of ${key} without a record.`);
    if (record.key !== undefined && record.key !== key) throw this.foreign(key, record.key);
    return { claimed: false, record: await recordOf(key, record, this.codec, WHERE) };
  }

  async complete(request: CompleteRequest): Promise<CompleteResult> {
    const outcome = await outcomeFields(this.codec, request);
    const args = [request.owner, String(request.expiresAt), timeToLive(request.now ?? Date.now(), request.expiresAt), ...outcome.fields];
    const [completed, fields] = await this.write(this.bounded(), COMPLETE, request.key, args, request.resendBy);
    if (completed) return outcome.result;
    return { completed: false, record: await this.current(request.key, fields, request.owner) };
  }

  async release(request: ReleaseRequest): Promise<ReleaseResult> {
    // A release after the function ran waits for a lost connection as a completion does, also when
    // the client was already away as it was sent (the connection lost while the function ran). The
    // release of a failed claim waits only once it reached a ready client: one that could not send it
    // (the client away since the claim failed for that) would hold the call's failure for nothing.
    const afterClaim = 'claimFailure' in request;
    let sent = !afterClaim;
    const connection = afterClaim
      ? this.bounded(() => {
          sent = true;
        })
      : this.bounded();
    // After a claim refused for now, which ran nothing, it is sent once: sent again until the
    // refusal passes (a server loading its data, another client's script), it would only hold the
    // call's failure, and add to the load of a server that refuses every command. Not when the
    // client sent the claim again after a lost connection: the attempt before the refusal may have applied.
    const ranNothing = afterClaim && refusedForNow(request.claimFailure) && !this.sentAgain.has(request.claimFailure as object);
    const resendBy = ranNothing ? performance.now() : request.resendBy;
    const [released, fields] = await this.write(connection, RELEASE, request.key, [request.owner], resendBy, () => sent);
    return released ? { released: true } : { released: false, record: await this.current(request.key, fields) };
  }

  /** The record's state and sizes (the bytes stored, as `DynamoDBStore` reports them). */
  async inspect(key: string): Promise<RecordSummary | undefined> {
    const reply = await this.bounded()
      .send(this.recordPrefix + key, ['HGETALL', this.recordPrefix + key])
      .catch((error: unknown) => named(notAHash(key, error)));
    const record = hashOf(flatHash(reply));
    if (record?.key !== undefined && record.key !== key) throw this.foreign(key, record.key);
    return record === undefined ? undefined : summaryOf(key, record, WHERE);
  }

  /** `forget` honours `leaseUntil`, and never deletes a record written for another key (another store's, see {@link foreign}). */
  readonly forgetChecksLease = true;

  /**
   * Deletes the record, only while its status is `onlyIf` and its lease ends at `leaseUntil`, each
   * when given. `true` when this forget deleted it: also when it finds no record after the client
   * lost a connection while it was in flight (an ioredis `Cluster`: any of its nodes), since ioredis
   * then sends it again, and Redis may have applied the first (its answer lost), as `DynamoDBStore`
   * counts a delete the SDK sent again.
   */
  async forget(key: string, onlyIf?: RecordStatus, leaseUntil?: number): Promise<boolean> {
    const args = [onlyIf ?? '', leaseUntil === undefined ? '' : String(leaseUntil), key];
    const connection = this.bounded();
    const lost = connection.watchLoss();
    const reply = Number(await runScript(connection, FORGET, this.recordPrefix + key, args, this.wait).catch(named));
    return reply === 1 || (reply === -1 && lost());
  }

  /**
   * The connection for one call: every request of the call together ends within `timeoutMillis` from
   * now. `onSend` is told of each request handed to the client once it is ready.
   */
  private bounded(onSend?: () => void): Connection {
    if (onSend === undefined) return boundedConnection(this.commands, this.timeoutMillis);
    const [ready, connection] = this.commands;
    const told: Connection = {
      ...connection,
      send: (key, args) => {
        onSend();
        return connection.send(key, args);
      },
      sendAll: (key, commands, inTime) => {
        onSend();
        return connection.sendAll(key, commands, inTime);
      },
    };
    return boundedConnection([ready, told], this.timeoutMillis);
  }

  private async run(connection: Connection, script: Script, key: string, args: readonly string[]): Promise<[boolean, unknown]> {
    const reply = await runScript(connection, script, this.recordPrefix + key, args, this.wait).catch((error: unknown) => named(notAHash(key, error)));
    return verdict(reply);
  }

  /**
   * A completion ends a call whose function has run, and a release frees a key for its retries:
   * when the connection was lost under it (a failover, a node replaced), or a failover demoted its
   * primary (READONLY, which ioredis's `reconnectOnError` answers by reconnecting), it is sent once
   * more as soon as the client is ready again, as DynamoDBStore sends its own again, rather than
   * leave the record held until its lease (a duplicate after it would run the function again; until
   * it, every retry of a released call would meet `IN_PROGRESS`); both attempts and the wait between
   * them fit in the call's one `timeoutMillis`, so it still answers before the Lambda deadline. One
   * refused before it ran (LOADING, BUSY, CLUSTERDOWN, TRYAGAIN, NOREPLICAS) is sent again until the
   * server takes it, within the same bound, also once it was sent again after a reconnection (a
   * server restarted on its data answers LOADING until it has loaded it). A lost connection is
   * waited for only once the write `reached` a ready client (the release of a failed claim that could
   * not be sent, the client away since that claim failed, fails at once, as the claim did). Nothing is sent again
   * after `resendBy` (`performance.now()`), when the call must answer. Fenced by the owner, a script
   * applied twice changes nothing: a completion sent again meets its own COMPLETED record, a release
   * no record (released) or the record of the attempt that claimed the key since.
   */
  private async write(
    connection: Connection,
    script: Script,
    key: string,
    args: readonly string[],
    resendBy = Number.POSITIVE_INFINITY,
    reached = () => true,
  ): Promise<[boolean, unknown]> {
    const until = Math.min(performance.now() + this.reconnectMillis, resendBy);
    for (;;) {
      try {
        return await this.run(connection, script, key, args);
      } catch (error) {
        // Refused before it ran, for a while: sent again until the server takes it, within the bound.
        if (refusedForNow(error) && performance.now() + REFUSED_PAUSE_MILLIS < until) {
          await delay(REFUSED_PAUSE_MILLIS).elapsed;
          continue;
        }
        // The connection lost under it: sent again each time the client is ready again, within the
        // bound (an endpoint that still leads to a demoted primary after a failover answers READONLY
        // again, and ioredis's reconnectOnError reconnects once more); any other failure ends it at once.
        const wait = until - performance.now();
        if (wait <= 0 || !reached() || !(await connection.reconnected(this.recordPrefix + key, wait))) throw error;
      }
    }
  }

  /**
   * A live record another store wrote under the same Redis key (one prefix begins the other, and
   * the rest of the longer one begins the shorter one's namespace). Replayed, it would answer this
   * call with another function's response and never run this one. Records written before they
   * named their key cannot be told apart, and are read as this store's.
   */
  private foreign(key: string, other: string): UnreadableRecordError {
    const detail = `a live record under this call's Redis key was written by another store, whose keyPrefix overlaps this one's ('${this.keyPrefix}'): give stores on one server prefixes none of which begins another (docs/redis.md)`;
    const error = new UnreadableRecordError(`The idempotency record ${this.recordPrefix}${key} was written for the key '${other}', not '${key}': ${detail}.`);
    // The STORE_FAILURE that wraps it says why, without the keys (each holds a hash of the call's key).
    detailStoreFailure(error, detail);
    return error;
  }

  /** The record that refused a completion or release (see {@link refusalRecord}). */
  private async current(key: string, fields: unknown, owner?: string): Promise<IdempotencyRecord | undefined> {
    const record = hashOf(fields);
    return record === undefined ? undefined : refusalRecord(key, record, this.codec, WHERE, owner);
  }
}
