/**
 * The record protocol as Lua scripts: each operation is one script on one key, so it is atomic on
 * a single server and runs on the key's primary in a cluster. A record is a hash whose fields carry
 * the names of `IdempotencyRecord`; the caller's clock (`now`) judges leases and retention,
 * as DynamoDB's conditions do, and the key's own expiry is the retention, never earlier than the
 * lease, so Redis forgets a record by itself and no key lives forever. That expiry is set as the
 * time left by the caller's clock (PEXPIRE), never as an instant (PEXPIREAT): the server's clock
 * would otherwise decide it, and a caller behind it (a test's clock, a skewed host) would see its
 * records vanish at once.
 *
 * A claim or completion that finds the caller's own record, already written (the script sent again
 * after its answer was lost, or a durable execution's replay), writes it again unchanged and says so
 * (`{2, record}`): the replication stream is ordered, so once a replica acknowledges that write
 * (`WAIT`), it has the first one too, which may never have reached it. A script that only read the
 * record would give `WAIT` nothing of its own to count, and it would answer at once. It deletes
 * the `status` field and sets it again, in that order: on a full node Redis refuses a script
 * whose first write may grow memory (HSET), but lets one that has already written go on.
 */
import { createHash } from 'node:crypto';
import { type Connection, replyText } from './connection.js';

/** A Lua script and its SHA-1, for `EVALSHA`. */
export interface Script {
  readonly source: string;
  readonly sha: string;
  /**
   * Sent by its source alone (`EVAL`): a script that runs only after a failure is seldom in the
   * server's cache, and its `NOSCRIPT` round trip could end the call's bound before the script is sent.
   */
  readonly bySource?: boolean;
}

/**
 * A script that first asks the server's ACL (`redis.acl_check_cmd`, Redis 7 and Valkey) whether the
 * caller may run each of `commands` (with their arguments, for the arity check) on the key, and
 * names every one refused: a command refused halfway would leave what the script wrote before it (a record whose PEXPIRE was
 * refused never expires), and Redis's error for it names a script line, not the command. Where the
 * check is missing (Redis 6), the script runs as it is.
 */
const script = (commands: readonly (readonly string[])[], body: string, bySource = false): Script => {
  const checks = commands.map(([command, ...args]) => `{'${command}', KEYS[1]${args.map((arg) => `, '${arg}'`).join('')}}`).join(', ');
  const source = `
if redis.acl_check_cmd then
  local refused = {}
  for _, command in ipairs({${checks}}) do
    if not redis.acl_check_cmd(unpack(command)) then refused[#refused + 1] = "'" .. string.lower(command[1]) .. "'" end
  end
  if #refused > 0 then
    return redis.error_reply('NOPERM this user has no permissions to run ' .. table.concat(refused, ', ') .. ", which RedisStore's scripts run on their key: grant the user every command docs/redis.md lists")
  end
end${body}`;
  return { source, sha: createHash('sha1').update(source).digest('hex'), ...(bySource ? { bySource } : {}) };
};

/**
 * KEYS[1] the record; ARGV: owner, leaseUntil, expiresAt, now (ms), the key's time to live (ms),
 * the store's key (without the prefix: the record names it, since two stores whose prefixes overlap
 * can share one Redis key), fingerprint (optional). Claimable: no record, or `expiresAt < floor(now / 1000)`, or INPROGRESS
 * with `leaseUntil < now`; an INPROGRESS record without a lease stays until its retention. A record
 * without `expiresAt` (written by hand, or by an older version) first gets the claim's, or its lease's
 * end if later (as `adoptedRetention` in lib/store.ts), and a TTL to match: it is then read as any
 * record, and held no longer. One with `expiresAt` but no TTL (copied with HSET, or PERSIST) gets
 * the TTL its retention and lease give it, as a key of this store has: Redis would never forget it.
 * A TTL counted from a hand-written value is capped at 2^53 - 1 ms, and a retention taken from a
 * hand-written lease at 2^53 - 1 s (Lua's `%d` of a number past 2^63 is undefined: a negative TTL
 * deletes the key, and a negative retention would let the next claim take a held record over).
 * The TTL is the script's last write to the key: PEXPIRE deletes at once a key whose expiry it
 * finds already past, and Redis 7.0 reads its clock twice for it (a 1 ms TTL given across a
 * millisecond's edge), so a write after it would leave a new hash without a TTL.
 * Replies `{1, previous record without its outcome (response, final error)}`, `{2, live record}` when that is the
 * caller's own INPROGRESS record (written again unchanged), or `{0, live record}`.
 */
export const CLAIM = script(
  [['HGETALL'], ['HSET', 'f', 'v'], ['HDEL', 'f'], ['DEL'], ['PTTL'], ['PEXPIRE', '1']],
  `
local record = redis.call('HGETALL', KEYS[1])
if #record > 0 then
  local fields = {}
  for i = 1, #record, 2 do fields[record[i]] = record[i + 1] end
  local now = tonumber(ARGV[4])
  local leaseUntil = tonumber(fields.leaseUntil)
  local expiresAt = tonumber(fields.expiresAt)
  local adopt = fields.expiresAt == nil
  if adopt then
    expiresAt = tonumber(ARGV[3])
    if leaseUntil ~= nil and math.ceil(leaseUntil / 1000) > expiresAt then expiresAt = math.min(math.ceil(leaseUntil / 1000), 9007199254740991) end
    fields.expiresAt = string.format('%d', expiresAt)
    redis.call('HSET', KEYS[1], 'expiresAt', fields.expiresAt)
  end
  local ttl = nil
  if expiresAt ~= nil and expiresAt == expiresAt and (adopt or redis.call('PTTL', KEYS[1]) == -1) then
    local ends = (expiresAt + 1) * 1000 - 1
    if leaseUntil ~= nil and leaseUntil > ends then ends = leaseUntil end
    ttl = string.format('%d', math.max(1, math.min(math.ceil(ends - now), 9007199254740991)))
    if adopt then record = redis.call('HGETALL', KEYS[1]) end
  end
  local expired = expiresAt ~= nil and expiresAt < math.floor(now / 1000)
  local lapsed = fields.status == 'INPROGRESS' and leaseUntil ~= nil and leaseUntil < now
  if not (expired or lapsed) then
    local reply = 0
    if fields.owner == ARGV[1] and fields.status == 'INPROGRESS' then
      redis.call('HDEL', KEYS[1], 'status')
      redis.call('HSET', KEYS[1], 'status', 'INPROGRESS')
      reply = 2
    end
    if ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
    return {reply, record}
  end
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'status', 'INPROGRESS', 'owner', ARGV[1], 'leaseUntil', ARGV[2], 'expiresAt', ARGV[3])
if ARGV[6] then redis.call('HSET', KEYS[1], 'key', ARGV[6]) end
if ARGV[7] then redis.call('HSET', KEYS[1], 'fingerprint', ARGV[7]) end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local previous = {}
local outcome = {response = true, responseBase64 = true, error = true, errorBase64 = true}
for i = 1, #record, 2 do
  if not outcome[record[i]] then
    previous[#previous + 1] = record[i]
    previous[#previous + 1] = record[i + 1]
  end
end
return {1, previous}
`,
);

/**
 * KEYS[1]; ARGV: owner, expiresAt, the key's time to live (ms), then field/value pairs of the
 * outcome. Applies only while the record is INPROGRESS and held by `owner`; the fingerprint stays.
 * Replies `{1}`, `{2, current record}` when that is `owner`'s COMPLETED record (written again
 * unchanged), or `{0, current record}` (empty when there is none). That record found without a TTL
 * (made persistent by hand) gets one back, as a completion gives it, or to its own retention if
 * later: the script writes it again, and no write leaves a key that Redis never forgets.
 */
export const COMPLETE = script(
  [['HMGET', 'f'], ['HSET', 'f', 'v'], ['HDEL', 'f'], ['HGETALL'], ['PTTL'], ['PEXPIRE', '1']],
  `
local held = redis.call('HMGET', KEYS[1], 'owner', 'status', 'expiresAt')
if held[1] == ARGV[1] and held[2] == 'COMPLETED' then
  redis.call('HDEL', KEYS[1], 'status')
  redis.call('HSET', KEYS[1], 'status', 'COMPLETED')
  if redis.call('PTTL', KEYS[1]) == -1 then
    local ttl = tonumber(ARGV[3])
    local expiresAt = tonumber(held[3])
    if expiresAt ~= nil and expiresAt > tonumber(ARGV[2]) then ttl = ttl + (expiresAt - tonumber(ARGV[2])) * 1000 end
    redis.call('PEXPIRE', KEYS[1], string.format('%d', math.max(1, math.min(math.ceil(ttl), 9007199254740991))))
  end
  return {2, redis.call('HGETALL', KEYS[1])}
end
if held[1] ~= ARGV[1] or held[2] ~= 'INPROGRESS' then return {0, redis.call('HGETALL', KEYS[1])} end
redis.call('HDEL', KEYS[1], 'leaseUntil')
redis.call('HSET', KEYS[1], 'status', 'COMPLETED', 'expiresAt', ARGV[2], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1}
`,
);

/** KEYS[1]; ARGV: owner. Deletes the record only while it is INPROGRESS and held by `owner`. */
export const RELEASE = script(
  [['HMGET', 'f'], ['HGETALL'], ['DEL']],
  `
local held = redis.call('HMGET', KEYS[1], 'owner', 'status')
if held[1] ~= ARGV[1] or held[2] ~= 'INPROGRESS' then return {0, redis.call('HGETALL', KEYS[1])} end
redis.call('DEL', KEYS[1])
return {1}
`,
  true,
);

/**
 * KEYS[1]; ARGV: status ('' for any), leaseUntil ('' for any), the store's key. Deletes the record,
 * only while it has that status, and only while its lease ends exactly at `leaseUntil`, when given;
 * never a record written for another key (another store's, whose prefix overlaps the caller's). A key
 * that is not a hash has none of them: only a forget without conditions deletes it. Replies 1 when it
 * deleted the key, 0 when it kept it, -1 when there is none (a forget sent again after its answer
 * was lost finds its own delete so).
 */
export const FORGET = script(
  [['TYPE'], ['HMGET', 'f'], ['DEL']],
  `
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' then
  if kind == 'none' then return -1 end
  if ARGV[1] ~= '' or ARGV[2] ~= '' then return 0 end
  return redis.call('DEL', KEYS[1])
end
local held = redis.call('HMGET', KEYS[1], 'status', 'leaseUntil', 'key')
if held[3] and held[3] ~= ARGV[3] then return 0 end
if ARGV[1] ~= '' and held[1] ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' and (held[1] ~= 'INPROGRESS' or tonumber(held[2]) ~= tonumber(ARGV[2])) then return 0 end
return redis.call('DEL', KEYS[1])
`,
);

const isNoScript = (error: unknown): boolean => replyText(error).startsWith('NOSCRIPT');

/**
 * Replicas that must acknowledge each write before it counts, within a time limit (Redis `WAIT`).
 *
 * @example
 * ```ts
 * new RedisStore({ client, waitForReplicas: { replicas: 1, timeoutMillis: 50 } });
 * ```
 */
export interface ReplicaWait {
  readonly replicas: number;
  readonly timeoutMillis: number;
}

/** The script wrote: `{1, …}` or `{2, …}` (the caller's own record again) from the record scripts, 1 from FORGET; as a number or its text (ioredis's `stringNumbers`). */
const wrote = (reply: unknown): boolean => Number(Array.isArray(reply) ? reply[0] : reply) > 0;

/** A script and then WAIT on the same primary (in one round trip where the client allows); fails if a write reached too few replicas. */
async function runAndWait(connection: Connection, command: readonly string[], key: string, wait: ReplicaWait): Promise<unknown> {
  const [reply, acked] = await connection.sendAll(key, [command, ['WAIT', String(wait.replicas), String(wait.timeoutMillis)]]);
  if (!reply!.ok) throw reply!.error;
  // A refused write changed nothing, so there is nothing to lose in a failover. One that found the
  // caller's own record wrote it again: the first write may not be on any replica yet.
  if (!wrote(reply!.value)) return reply!.value;
  if (!acked!.ok) throw acked!.error;
  if (Number(acked!.value) < wait.replicas) {
    // Named, because a log line names a store failure by its error's name, never its message.
    throw Object.assign(
      new Error(
        `Only ${acked!.value} of ${wait.replicas} replicas acknowledged the write within ${wait.timeoutMillis} ms: the primary has it, but a failover could lose it.`,
      ),
      { name: 'ReplicaWaitTimeout' },
    );
  }
  return reply!.value;
}

/**
 * Runs a script by its hash and, when the server does not know it (first use, a restart, SCRIPT
 * FLUSH, another node of the cluster), by its source, which also caches it; one marked `bySource`,
 * by its source at once. Redis names the
 * condition with the reply's first word, `NOSCRIPT`, whichever client carries it. With `wait`,
 * a write counts only once enough replicas have it.
 * @internal
 */
export async function runScript(
  connection: Connection,
  { source, sha, bySource }: Script,
  key: string,
  args: readonly string[],
  wait?: ReplicaWait,
): Promise<unknown> {
  const send = (command: readonly string[]) => (wait === undefined ? connection.send(key, command) : runAndWait(connection, command, key, wait));
  if (bySource) return send(['EVAL', source, '1', key, ...args]);
  try {
    return await send(['EVALSHA', sha, '1', key, ...args]);
  } catch (error) {
    if (!isNoScript(error)) throw error;
    return send(['EVAL', source, '1', key, ...args]);
  }
}
