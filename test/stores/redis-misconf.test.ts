/**
 * A server that cannot save to disk: with `stop-writes-on-bgsave-error` (the default) and save
 * points set, a failed RDB save makes Redis refuse every write with MISCONF until a save succeeds
 * (a full or read-only disk, a fork that failed for memory). A record script meets it at its first
 * write, so it writes nothing. Claims fail closed, reads of live records still answer, and a
 * completion refused so leaves the record INPROGRESS until its lease: the log line names MISCONF,
 * not only the client's error class. Here the failed save is a `dir` the server cannot write (/proc).
 */
import { makeIdempotent } from '../../lib/index.js';
import type { RedisClient } from '../../lib/redis/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { type RedisServer, startRedisServer } from '../../tools/redis-server.js';
import { CLIENT_KINDS, inspector } from '../support/redis.js';
import { rejection } from '../support/rejections.js';

let server: RedisServer;
beforeAll(async () => {
  // `dir` is a protected setting since Redis 7; a save point makes a failed save stop writes.
  server = await startRedisServer({ extraArgs: ['--enable-protected-configs', 'yes', '--save', '3600 1'] });
});
afterAll(() => server.stop());

/** Makes the server's next save fail, so that it refuses writes (MISCONF), or lets it save again. */
async function savesFail(fail: boolean): Promise<void> {
  const admin = inspector(server.url);
  try {
    await admin.config('SET', 'dir', fail ? '/proc' : '/tmp');
    await admin.bgsave();
    const status = fail ? 'err' : 'ok';
    while (!new RegExp(`rdb_bgsave_in_progress:0[\\s\\S]*rdb_last_bgsave_status:${status}`).test(await admin.info('persistence'))) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    admin.disconnect();
  }
}

for (const kind of CLIENT_KINDS) {
  test(`${kind.name}: writes refused with MISCONF fail closed, a refused completion's warning names MISCONF, and live records still answer`, async () => {
    const { client, close } = await kind.open(server.url);
    const raw = inspector(server.url);
    const warnings: Array<Record<string, unknown>> = [];
    const prefix = `misconf-${kind.name}:`;
    try {
      let calls = 0;
      const make = (store: RedisStore) =>
        makeIdempotent(
          async (id: string) => {
            calls++;
            if (id === 'stuck') await savesFail(true);
            return `${id} ${calls}`;
          },
          { store, name: 'pay', logger: { warn: (line) => void warnings.push(JSON.parse(line)) } },
        );
      const pay = make(new RedisStore({ client: client as RedisClient, keyPrefix: prefix, timeoutMillis: 1000 }));
      expect(await pay('done')).toBe('done 1');
      // The function ran; its completion was refused: the caller gets its answer, and the log says why.
      expect(await pay('stuck')).toBe('stuck 2');
      expect(warnings).toEqual([expect.objectContaining({ message: expect.stringMatching(/could not mark the record COMPLETED/), error: 'MISCONF' })]);
      const statuses = await Promise.all((await raw.keys(`${prefix}*`)).map((key) => raw.hget(key, 'status')));
      expect(statuses.sort()).toEqual(['COMPLETED', 'INPROGRESS']);
      // A claim that would write fails closed, naming the refusal.
      const refused = await rejection(pay('new'));
      expect([refused.code, refused.message, (refused.cause as Error).message]).toEqual([
        'STORE_FAILURE',
        expect.stringContaining('(MISCONF)'),
        expect.stringMatching(/^MISCONF/),
      ]);
      // Claims that only read answer: the held record, the completed one (another execution environment's store, without the local cache).
      const again = make(new RedisStore({ client: client as RedisClient, keyPrefix: prefix, timeoutMillis: 1000 }));
      expect((await rejection(again('stuck'))).code).toBe('IN_PROGRESS');
      expect(await again('done')).toBe('done 1');
      expect(calls).toBe(2);
    } finally {
      await savesFail(false);
      raw.disconnect();
      await close();
    }
  });
}
