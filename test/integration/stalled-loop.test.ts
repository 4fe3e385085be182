/**
 * An event loop held past a store call's bound does not fail a request the store answered in time.
 * A long synchronous task (a large `JSON.stringify`, a 128 MB function's throttled CPU) can hold the
 * loop while the answer waits in the socket; Node runs expired timers before it reads sockets, so
 * each bound lets that answer be read before it fails the call. Real clients and servers, real
 * timers: the stall starts once the claim is on the wire and lasts until the server has applied it
 * (asked by another process) and the bound has passed.
 */
import type { Context } from 'aws-lambda';
import { makeIdempotent } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { lambdaContext } from '../../lib/testing/index.js';
import { endpoint, readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { CLIENT_KINDS, inspector, redisPort } from '../support/redis.js';
import { askElsewhere, stallOnWrite } from '../support/stall.js';

describe('RedisStore, timeoutMillis', () => {
  const BOUND = 300;
  const raw = inspector();
  afterAll(() => raw.disconnect());

  for (const kind of CLIENT_KINDS) {
    test(`${kind.name}: a claim answered while the event loop was held past the bound succeeds, and holds the record`, async () => {
      const { client, close } = await kind.open();
      const keyPrefix = `stall-${kind.name}-${Date.now()}:`;
      const store = new RedisStore({ client, keyPrefix, timeoutMillis: BOUND });
      const now = Date.now();
      const claim = () => ({ owner: 'a', now, leaseUntil: now + 60_000, expiresAt: Math.floor(now / 1000) + 60 });
      // Connected, eviction checked (once per client), under a bound a loaded machine meets: the next claim is one write.
      await new RedisStore({ client, keyPrefix, timeoutMillis: 10_000 }).claim({ key: 'warm', ...claim() });
      const key = `${keyPrefix}k`;
      const stall = stallOnWrite(key, BOUND + 200, () => askElsewhere(redisPort(), `EXISTS ${key}\r\nQUIT\r\n`).startsWith(':1'));
      try {
        const claimed = await store.claim({ key: 'k', ...claim() });
        expect(stall.stalled()).toBeGreaterThan(BOUND);
        expect(claimed).toMatchObject({ claimed: true });
        expect(await raw.hget(key, 'status')).toBe('INPROGRESS');
      } finally {
        stall.restore();
        await close();
      }
    });
  }
});

describe('DynamoDBStore, the Lambda deadline', () => {
  const table = useFreshTable();

  /** Whether DynamoDB Local holds item `id`, read consistently over raw HTTP (DynamoDB Local checks no signature). */
  const heldElsewhere = (id: string) => {
    const body = JSON.stringify({ TableName: table.tableName, Key: { id: { S: id } }, ConsistentRead: true });
    const { host, port } = new URL(endpoint());
    const request = [
      'POST / HTTP/1.1',
      `Host: ${host}`,
      'Content-Type: application/x-amz-json-1.0',
      'X-Amz-Target: DynamoDB_20120810.GetItem',
      'Authorization: AWS4-HMAC-SHA256 Credential=local/20260101/local/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
      `Content-Length: ${Buffer.byteLength(body)}`,
      'Connection: close',
      '',
      body,
    ].join('\r\n');
    return askElsewhere(Number(port), request).includes('"Item"');
  };

  test('a claim answered while the event loop was held past its request bound succeeds: the function runs once', async () => {
    let runs = 0;
    const charge = makeIdempotent(async (id: string, _context: Context) => (runs++, `charged ${id}`), {
      store: table.store,
      name: 'stalled-loop',
      key: (id) => id,
    });
    await charge('warm', lambdaContext({ remainingMillis: 60_000 })); // the client's connection is open
    runs = 0;
    // 1.5 s left: the claim must answer by 1.4 s; the loop is held 1.6 s once the claim is sent.
    const stall = stallOnWrite('DynamoDB_20120810.PutItem', 1_600, () => heldElsewhere(recordId('stalled-loop', 'order-1')));
    try {
      const settled = await charge('order-1', lambdaContext({ remainingMillis: 1_500 })).then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      );
      expect(stall.stalled()).toBeGreaterThan(1_400);
      expect(settled).toEqual({ value: 'charged order-1' });
      expect(runs).toBe(1);
    } finally {
      stall.restore();
    }
    // Completed, with the function's result: a retry replays it instead of running it again.
    expect(await readItem(table.client, table.tableName, recordId('stalled-loop', 'order-1'))).toMatchObject({
      status: { S: 'COMPLETED' },
      response: { S: JSON.stringify('charged order-1') },
    });
  });
});
