/**
 * `forget` on Redis when its answer is lost: ioredis sends a command again after it reconnects
 * (unless `maxRetriesPerRequest` is 0), so a delete that Redis applied meets no record the second
 * time. That is this forget's own delete: `true`, as `DynamoDBStore` counts a delete the SDK sent
 * again. A client that fails the command instead (the fail-fast settings, node-redis) throws: the
 * outcome is unknown, never "nothing deleted".
 */
import { Redis } from 'ioredis';
import { RedisStore } from '../../lib/redis/index.js';
import { CLIENT_KINDS, type ClientKind, forgetWithAnswerLost, inspector, nextReady, PREVIOUS_CLIENT_KINDS, redisPort } from '../support/redis.js';
import { TcpProxy } from '../support/tcp-proxy.js';

const raw = inspector();
afterAll(() => raw.disconnect());

/** ioredis as many applications configure it: it resends, after reconnecting, the commands the lost connection left unanswered. */
const RESENDING: ClientKind = {
  name: 'ioredis',
  open: async (url) => {
    const client = new Redis(url!, { maxRetriesPerRequest: 1, connectTimeout: 1000, retryStrategy: () => 50 });
    return { client, close: async () => void client.disconnect() };
  },
};

const KINDS: ReadonlyArray<readonly [string, ClientKind]> = [
  ['ioredis resending unanswered commands (maxRetriesPerRequest: 1)', RESENDING],
  ...[...CLIENT_KINDS, ...PREVIOUS_CLIENT_KINDS].map((kind) => [`${kind.name}, failing fast`, kind] as const),
];

describe.each(KINDS)('%s', (name, kind) => {
  let proxy: TcpProxy;
  let opened: Awaited<ReturnType<ClientKind['open']>>;
  beforeAll(async () => {
    proxy = await TcpProxy.start(redisPort());
    opened = await kind.open(proxy.url);
  });
  afterAll(async () => {
    await opened.close();
    await proxy.cut();
  });

  test.each([
    ['any record', undefined, undefined],
    ['only while INPROGRESS', 'INPROGRESS', undefined],
    ['only the attempt whose lease ends then', 'INPROGRESS', 4_000_000_000_000],
  ] as const)(
    'a forget (%s) applied whose answer was lost to a reset connection: deleted (true) or unknown (thrown), never "nothing deleted"',
    async (_what, onlyIf, leaseUntil) => {
      const keyPrefix = `forget-lost-${name.replace(/\W+/g, '-')}-${onlyIf ?? 'any'}-${leaseUntil ?? 'none'}:`;
      const store = new RedisStore({ client: opened.client, keyPrefix, timeoutMillis: 10_000 });
      const now = Date.now();
      await store.claim({ key: 'k', owner: 'o', leaseUntil: leaseUntil ?? now + 60_000, expiresAt: Math.floor(now / 1000) + 600, now });
      await store.forget('absent'); // FORGET in the script cache: its EVALSHA's NOSCRIPT answer is not the one lost
      const ready = nextReady(opened.client); // after the reset
      const outcome = await forgetWithAnswerLost(
        proxy,
        () => store.forget('k', onlyIf, leaseUntil),
        async () => (await raw.exists(`${keyPrefix}k`)) === 0,
      );
      await ready;
      expect(outcome).not.toEqual({ deleted: false });
      if (kind === RESENDING) expect(outcome).toEqual({ deleted: true });
    },
  );
});
