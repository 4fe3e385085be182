/**
 * Milliseconds until a store drops a key by itself; `undefined` when it never will.
 *
 * @example
 * ```ts
 * const ttlOf: TtlOf = async (key) => {
 *   const ttl = await redis.pttl(`idempotency:${key}`); // -1: no TTL, -2: no key
 *   return ttl === -1 ? undefined : Math.max(0, ttl);
 * };
 * ```
 */
export type TtlOf = (key: string) => Promise<number | undefined>;
