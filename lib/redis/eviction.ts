import { detailStoreFailure, IdempotencyError } from '../errors.js';
import { type Connection, replyText } from './connection.js';

/**
 * Under any `maxmemory-policy` but `noeviction`, Redis may drop a live record when memory runs
 * short (the `volatile-*` policies pick exactly keys with a TTL, which every record has), and the
 * next duplicate runs again. The policy is read with `INFO memory` (ElastiCache forbids `CONFIG
 * GET`), on every primary of a cluster. A client that passed is not asked again; a refusal is
 * asked again on the next claim, so fixing the policy needs no restart. An ACL that refuses INFO
 * (`-@dangerous`, the usual application user), or a server whose operator renamed INFO away
 * (`rename-command INFO ""`), leaves the policy unknown: that refusal says so and names the way
 * out, as an evicting policy's does, rather than pass on a bare NOPERM or "unknown command".
 */
const passed = new WeakSet<object>();

const policyOf = (info: string): string | undefined => /^maxmemory_policy:(\S+)/m.exec(info)?.[1];

const refusal = (found: string, cause?: unknown): IdempotencyError => {
  const detail =
    `RedisStore claims only on servers whose maxmemory-policy is 'noeviction' (here: ${found}): any other policy may evict a live record ` +
    'and let a duplicate run again. Set maxmemory-policy to noeviction (node-based ElastiCache, MemoryDB: in the parameter group), or pass ' +
    '`allowEviction: true`, which skips this check, where the operator guarantees noeviction or you accept that risk (docs/redis.md)';
  const error = new IdempotencyError('STORE_FAILURE', `${detail}.`, { cause });
  // The claim's STORE_FAILURE, which wraps this one, says all of it, not `(STORE_FAILURE)`.
  detailStoreFailure(error, detail);
  return error;
};

/** @internal */
export async function assertNoEviction(client: object, connection: Connection): Promise<void> {
  if (passed.has(client)) return;
  const policies = (
    await connection.memoryInfo().catch((error: unknown) => {
      const message = replyText(error);
      if (message.startsWith('NOPERM')) {
        throw refusal(`unknown: INFO was refused (${message}); grant the user \`+info\` to let it be read`, error);
      }
      if (/^ERR unknown command/i.test(message)) {
        throw refusal(`unknown: the server has no INFO command (${message}), renamed or disabled by its operator`, error);
      }
      throw error;
    })
  ).map(policyOf);
  const other = policies.find((policy) => policy !== undefined && policy !== 'noeviction');
  if (other === undefined && policies.length > 0 && !policies.includes(undefined)) {
    passed.add(client);
    return;
  }
  throw refusal(other === undefined ? 'not reported by INFO memory' : `'${other}'`);
}
