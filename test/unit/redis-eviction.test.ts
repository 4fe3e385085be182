/**
 * The eviction check on what a server's `INFO memory` reports, for what redis-server itself never
 * answers (a compatible server or proxy that omits the policy, or a cluster with no primary listed).
 * What redis-server answers (each policy, an ACL that refuses INFO) is tested on a real server in
 * test/stores/redis.test.ts.
 */
import { IdempotencyError } from '../../lib/index.js';
import type { Connection } from '../../lib/redis/connection.js';
import { assertNoEviction } from '../../lib/redis/eviction.js';

/** A connection whose primaries answer `INFO memory` with `infos`; every other command fails the test. */
const answering = (...infos: string[]): Connection => ({
  send: () => Promise.reject(new Error('unexpected command')),
  sendAll: () => Promise.reject(new Error('unexpected commands')),
  memoryInfo: async () => infos,
  reconnected: async () => false,
  watchLoss: () => () => false,
});

const memory = (policy?: string) => `# Memory\r\nused_memory:1000\r\n${policy === undefined ? '' : `maxmemory_policy:${policy}\r\n`}maxmemory:0\r\n`;

test('every primary reports noeviction: the check passes', async () => {
  await expect(assertNoEviction({}, answering(memory('noeviction'), memory('noeviction')))).resolves.toBeUndefined();
});

test.each([
  ['one server that does not report its policy', [memory()]],
  ['a cluster where one primary of two does not report it', [memory('noeviction'), memory()]],
  ['no primary at all', []],
])('%s: STORE_FAILURE, the policy "not reported by INFO memory"', async (_, infos) => {
  const error = await assertNoEviction({}, answering(...infos)).catch((thrown: unknown) => thrown);
  expect(error).toBeInstanceOf(IdempotencyError);
  expect([(error as IdempotencyError).code, (error as Error).message]).toEqual([
    'STORE_FAILURE',
    expect.stringContaining('(here: not reported by INFO memory)'),
  ]);
});
