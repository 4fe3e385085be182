/**
 * `lambda-idempotency/redis`: the record protocol on Redis, Valkey, ElastiCache or MemoryDB, with
 * an ioredis or node-redis client (5 or 6) of your own. Neither client is a dependency of the library.
 */

export type { IORedisClient, NodeRedisClient, NodeRedisCluster, RedisClient } from './connection.js';
export type { RedisStoreOptions } from './redis-store.js';
export { RedisStore } from './redis-store.js';
export type { ReplicaWait } from './scripts.js';
