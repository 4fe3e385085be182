/**
 * `lambda-idempotency/redis`: the record protocol on Redis, Valkey, ElastiCache or MemoryDB, with
 * an ioredis 5 or node-redis 5 client of your own. Neither client is a dependency of the library.
 */

export type { IORedisClient, NodeRedisClient, NodeRedisCluster, RedisClient } from './connection.js';
export type { RedisStoreOptions } from './redis-store.js';
export { RedisStore } from './redis-store.js';
export type { ReplicaWait } from './scripts.js';
