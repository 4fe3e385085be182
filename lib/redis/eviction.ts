import { IdempotencyError } from '../errors.js';
import type { Connection } from './connection.js';

/**
 * Under any `maxmemory-policy` but `noeviction`, Redis may drop a live record when memory runs
 * short (the `volatile-*` policies pick exactly keys with a TTL, which every record has), and the
 * next duplicate runs again. The policy is read with `INFO memory` (ElastiCache forbids `CONFIG
 * GET`), on every primary of a cluster. A client that passed is not asked again; a refusal is
 * asked again on the next claim, so fixing the policy needs no restart.
 */
const passed = new WeakSet<object>();

const policyOf = (info: string): string | undefined => /^maxmemory_policy:(\S+)/m.exec(info)?.[1];

/** @internal */
export async function assertNoEviction(client: object, connection: Connection): Promise<void> {
  if (passed.has(client)) return;
  const policies = (await connection.memoryInfo()).map(policyOf);
  const other = policies.find((policy) => policy !== undefined && policy !== 'noeviction');
  if (other === undefined && policies.length > 0 && !policies.includes(undefined)) {
    passed.add(client);
    return;
  }
  const found = other === undefined ? 'not reported by INFO memory' : `'${other}'`;
  throw new IdempotencyError(
    'STORE_FAILURE',
    `RedisStore claims only on servers whose maxmemory-policy is 'noeviction' (here: ${found}): any other policy may evict a live record ` +
      `and let a duplicate run again. Set maxmemory-policy to noeviction (an ElastiCache parameter group), or pass \`allowEviction: true\` ` +
      'if you accept that risk.',
  );
}
