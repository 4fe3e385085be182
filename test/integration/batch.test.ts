import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { runInNewContext } from 'node:vm';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { DynamoDBRecord, DynamoDBStreamEvent, KinesisStreamEvent, KinesisStreamRecord, SQSEvent, SQSRecord } from 'aws-lambda';
import {
  type BatchEvent,
  type BatchRecord,
  type BatchResponse,
  cloudWatchLines,
  DynamoDBStore,
  hashKey,
  type IdempotencyStore,
  type IdempotentBatchOptions,
  idempotentBatch,
  makeIdempotent,
  type PipesBatchEvent,
  type RecordHandler,
  type StreamChange,
  transaction,
} from '../../lib/index.js';
import { manualClock, lambdaContext as timedContext } from '../../lib/testing/index.js';
import { consumerClock, consumerContext, failuresOf, ids, quiet, useConsumerTables } from '../support/batch-consumer.js';
import {
  ACCOUNT,
  kinesisRecord,
  kinesisSequence,
  type Order,
  piped,
  QUEUE_ARN,
  REGION,
  redelivered,
  SENT,
  sqsEvent,
  sqsRecord,
  streamRecord,
  streamSequence,
} from '../support/batch-events.js';
import { readItem, recordId, scanItems, unreachableClient } from '../support/dynamodb.js';
import { flush, gate } from '../support/gate.js';
import { collectingLogger, omittedMessage } from '../support/warnings.js';

// ---------------------------------------------------------------------------------------------
// Harness

let tableName: string;
let store: DynamoDBStore;
const client = useConsumerTables('batch', (fresh) => ({ tableName, store } = fresh));
const clock = consumerClock;

interface Call {
  readonly message: unknown;
  readonly record: BatchRecord;
}

/** A batch handler whose record function is `fn`, with a log of every call (in call order). */
function consumer<T>(fn: RecordHandler<T, unknown>, options: Partial<IdempotentBatchOptions<T>> = {}) {
  const calls: Call[] = [];
  const handler = idempotentBatch<T>(
    async (message, record, context) => {
      calls.push({ message, record });
      return fn(message, record, context);
    },
    { store, now: clock, logger: quiet(), ...options },
  );
  return { handler, calls, invoke: (event: SQSEvent | KinesisStreamEvent | DynamoDBStreamEvent) => handler(event, consumerContext()) };
}

const orderIdOf = (call: Call) => (call.message as Order).orderId;

const records = () => scanItems(client, tableName);

/** The test's store, except that the first `method` call rejects with `error` (a write whose outcome a real server cannot fail on demand). */
function failingOnce(method: 'complete' | 'release', error: Error): IdempotencyStore {
  let failed = false;
  const fault = <T>(send: () => Promise<T>): Promise<T> => {
    if (failed) return send();
    failed = true;
    return Promise.reject(error);
  };
  return {
    claim: (request) => store.claim(request),
    complete: (request) => (method === 'complete' ? fault(() => store.complete(request)) : store.complete(request)),
    release: (request) => (method === 'release' ? fault(() => store.release(request)) : store.release(request)),
  };
}

/** Yields to the event loop `turns` times: lets other records' I/O interleave, without sleeping. */
async function turns(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await flush();
}

class PaymentDeclined extends Error {
  override readonly name = 'PaymentDeclined';
}

// ---------------------------------------------------------------------------------------------

describe('SQS standard queue', () => {
  test('in-batch duplicates run once, a poison message and a failure are reported; the redelivered batch re-runs only the failure', async () => {
    const failing = new Set(['o-4']);
    const orders = consumer<Order>((order) => {
      if (failing.delete(order.orderId)) throw new Error('payment provider timed out');
      return { charged: order.orderId };
    });
    const first = sqsRecord({ orderId: 'o-1', amount: 100 });
    const resent = sqsRecord({ orderId: 'o-1', amount: 100 }); // a producer's resend: same body, new message id
    const poison = sqsRecord('{"orderId":"o-3",');
    const failure = sqsRecord({ orderId: 'o-4', amount: 400 });
    const last = sqsRecord({ orderId: 'o-5', amount: 500 });
    const batch = [first, resent, poison, failure, last];

    expect(failuresOf(await orders.invoke(sqsEvent(batch)))).toEqual(ids(poison, failure));
    expect(orders.calls.map(orderIdOf).sort()).toEqual(['o-1', 'o-4', 'o-5']);
    // The record function gets the parsed body and the raw record.
    const o1 = orders.calls.find((call) => orderIdOf(call) === 'o-1')!;
    expect(o1.message).toEqual({ orderId: 'o-1', amount: 100 });
    expect([first.messageId, resent.messageId]).toContain((o1.record as SQSRecord).messageId);
    expect((await records()).map((item) => item.status?.S)).toEqual(['COMPLETED', 'COMPLETED']);

    const redelivery = batch.map(redelivered);
    expect(failuresOf(await orders.invoke(sqsEvent(redelivery)))).toEqual(ids(poison));
    expect(orders.calls.map(orderIdOf).sort()).toEqual(['o-1', 'o-4', 'o-4', 'o-5']);
    expect(await records()).toHaveLength(3);

    // And once more: nothing runs again.
    expect(failuresOf(await orders.invoke(sqsEvent(batch.map(redelivered))))).toEqual(ids(poison));
    expect(orders.calls).toHaveLength(4);
  });

  test('in-batch duplicates share a failure: one execution, both reported', async () => {
    const orders = consumer<Order>(
      () => {
        throw new PaymentDeclined('card declined');
      },
      { throwOnFullBatchFailure: false },
    );
    const a = sqsRecord({ orderId: 'o-1' });
    const b = sqsRecord({ orderId: 'o-1' });
    const other = sqsRecord({ orderId: 'o-2' });
    expect(failuresOf(await orders.invoke(sqsEvent([a, other, b])))).toEqual(ids(a, other, b));
    expect(orders.calls.map(orderIdOf).sort()).toEqual(['o-1', 'o-2']);
    expect(await records()).toEqual([]); // failures release their records
  });

  test('a message received twice in one batch (same messageId, a new receipt handle) runs once and, when it fails, is named once', async () => {
    const orders = consumer<Order>((order) => {
      if (order.orderId === 'o-bad') throw new PaymentDeclined('card declined');
      return order.orderId;
    });
    const good = sqsRecord({ orderId: 'o-1' });
    const bad = sqsRecord({ orderId: 'o-bad' });
    const batch = [good, bad, redelivered(good), redelivered(bad)];
    expect(await orders.invoke(sqsEvent(batch))).toStrictEqual({ batchItemFailures: [{ itemIdentifier: bad.messageId }] });
    expect(orders.calls.map(orderIdOf).sort()).toEqual(['o-1', 'o-bad']);
  });

  test('logs a poison message without its payload and never runs it', async () => {
    const logger = quiet();
    const orders = consumer<Order>(() => 'ok', { logger });
    const poison = sqsRecord('card=4111111111111111&cvc=123');
    const fine = sqsRecord({ orderId: 'o-1' });
    expect(failuresOf(await orders.invoke(sqsEvent([poison, fine])))).toEqual(ids(poison));
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1']);
    expect(logger.lines).toHaveLength(1);
    const line = JSON.parse(logger.lines[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 'ERROR', itemIdentifier: poison.messageId });
    expect(logger.lines[0]).not.toMatch(/4111111111111111|cvc|card=/);
  });

  test('logs why each other record failed, by its type or code, never its payload or its error message: the answer names the records only', async () => {
    const entered = gate();
    const release = gate();
    const keyed = { key: (order: Order) => order.orderId, fingerprint: (order: Order) => order.amount };
    // Another container of the function, running o-2.
    const holder = consumer<Order>(async () => {
      entered.open();
      await release.promise;
    }, keyed);
    const logger = quiet();
    const orders = consumer<Order>(
      (order) => {
        if (order.orderId === 'o-1') throw new PaymentDeclined('card 4111111111111111 declined');
      },
      { logger, ...keyed },
    );
    const declined = sqsRecord({ orderId: 'o-1', amount: 10 });
    const twin = sqsRecord({ orderId: 'o-1', amount: 10 });
    const held = sqsRecord({ orderId: 'o-2', amount: 20 });
    const fine = sqsRecord({ orderId: 'o-3', amount: 30 });
    const conflict = sqsRecord({ orderId: 'o-3', amount: 31 });
    const holding = holder.invoke(sqsEvent([held]));
    try {
      await entered.promise;
      const response = await orders.invoke(sqsEvent([declined, twin, redelivered(held), fine, conflict]));
      expect(failuresOf(response).sort()).toEqual(ids(declined, twin, held, conflict).sort());
    } finally {
      release.open();
      await holding;
    }
    const lines = logger.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const byRecord = Object.fromEntries(lines.map(({ itemIdentifier, level, reason }) => [itemIdentifier, [level, reason]]));
    expect(byRecord).toEqual({
      [declined.messageId]: ['ERROR', 'the record function threw (PaymentDeclined)'],
      [twin.messageId]: ['ERROR', 'an in-batch duplicate of this record failed before it (not run)'],
      [held.messageId]: ['WARN', expect.stringMatching(/^IN_PROGRESS: /)],
      [conflict.messageId]: ['ERROR', expect.stringMatching(/^PAYLOAD_MISMATCH: /)],
    });
    expect(lines.every((line) => line.message === 'lambda-idempotency: record reported as failed')).toBe(true);
    expect(logger.lines.join('\n')).not.toMatch(/4111|declined|amount/);
  });

  test('logs a stored final error met again as stored, and an error the library met before running the record function (a `now` that returns a Date) as that', async () => {
    const logger = quiet();
    const declining = consumer<Order>(
      () => {
        throw new PaymentDeclined('card declined');
      },
      { logger, isFinalError: (error) => error instanceof PaymentDeclined, throwOnFullBatchFailure: false },
    );
    const declined = sqsRecord({ orderId: 'o-1' });
    await declining.invoke(sqsEvent([declined]));
    await declining.invoke(sqsEvent([redelivered(declined)]));
    const misclocked = consumer<Order>(() => 'charged', { logger, now: () => new Date(clock()) as unknown as number, throwOnFullBatchFailure: false });
    const message = sqsRecord({ orderId: 'o-2' });
    expect(failuresOf(await misclocked.invoke(sqsEvent([message])))).toEqual(ids(message));
    expect(misclocked.calls).toEqual([]);
    expect(logger.lines.map((line) => (JSON.parse(line) as { reason: unknown }).reason)).toEqual([
      'the record function threw (PaymentDeclined)',
      'the error an earlier attempt stored as final, not run again (PaymentDeclined)',
      'the idempotent call failed before the record function ran (TypeError)',
    ]);
  });

  test('a logger that throws, or rejects, while logging a poison message changes no outcome: the poison record fails, the others succeed', async () => {
    const unhandled: unknown[] = [];
    const track = (reason: unknown) => void unhandled.push(reason);
    process.on('unhandledRejection', track);
    try {
      const closed = () => {
        throw new Error('log sink closed');
      };
      const down = async () => Promise.reject(new Error('log endpoint down'));
      for (const [kind, logger] of Object.entries({ throws: { warn: closed, error: closed }, rejects: { warn: down, error: down } })) {
        const orders = consumer<Order>(() => 'ok', { logger });
        const poison = sqsRecord('card=4111111111111111&cvc=123');
        const fine = ['o-1', 'o-2', 'o-3'].map((orderId) => sqsRecord({ orderId: `${kind}-${orderId}` }));
        expect(failuresOf(await orders.invoke(sqsEvent([poison, ...fine])))).toEqual(ids(poison));
        expect(orders.calls).toHaveLength(3);
      }
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', track);
    }
  });

  test('observability: each record that meets the store is one event under its own record id (a miss, an in-batch duplicate a replay), a poison record none; no line names a payload or an item', async () => {
    const written: string[] = [];
    const orders = consumer<Order>(
      (order) => {
        if (order.orderId === 'o-2') throw new Error('declined 4111');
        return 'ok';
      },
      { key: (order) => order.orderId, observability: cloudWatchLines({ logs: true, write: (line) => void written.push(line) }) },
    );
    const first = sqsRecord({ orderId: 'o-1', amount: 4111 });
    const twin = sqsRecord({ orderId: 'o-1', amount: 4111 });
    const failing = sqsRecord({ orderId: 'o-2', amount: 4111 });
    const poison = sqsRecord('card=4111111111111111');
    expect(failuresOf(await orders.invoke(sqsEvent([first, twin, failing, poison])))).toEqual(ids(failing, poison));
    const logs = written.map((line) => JSON.parse(line)).filter((line) => line.event !== undefined);
    const line = (event: string, orderId: string) => ({
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      level: 'INFO',
      message: `lambda-idempotency: ${event}`,
      event,
      function: 'order-consumer',
      recordId: `order-consumer#${hashKey(orderId)}`,
    });
    // Records run concurrently: their lines' order is not the batch's.
    expect(logs).toHaveLength(3);
    expect(logs).toEqual(expect.arrayContaining([line('miss', 'o-1'), line('miss', 'o-2'), line('replay', 'o-1')]));
    expect(written).toHaveLength(6); // an EMF line beside each log line
    expect(written.join('\n')).not.toMatch(/4111|o-1|o-2|amount|messageId|itemIdentifier/);
  });

  test('a business `key` dedupes different bodies of one order, across batches; a message without it is poison', async () => {
    const orders = consumer<Order>((order) => ({ shipped: order.orderId }), { key: (order) => order.orderId });
    const a = sqsRecord({ orderId: 'o-1', amount: 100, sentAt: 1 });
    const b = sqsRecord({ orderId: 'o-1', amount: 100, sentAt: 2 });
    const noKey = sqsRecord({ amount: 5 } as unknown as Order);
    expect(failuresOf(await orders.invoke(sqsEvent([a, b, noKey])))).toEqual(ids(noKey));
    expect(failuresOf(await orders.invoke(sqsEvent([sqsRecord({ orderId: 'o-1', amount: 100, sentAt: 3 })])))).toEqual([]);
    expect(orders.calls.map((call) => (call.message as Order).sentAt)).toEqual([1]);
    expect(await records()).toHaveLength(1);
  });

  test('throws the batch back whole, and runs none, when the store is unreachable; reports every record with throwOnFullBatchFailure: false', async () => {
    const unreachable = await unreachableClient();
    try {
      const unreachableStore = new DynamoDBStore({ tableName, client: unreachable });
      const batch = [sqsRecord({ orderId: 'o-1' }), sqsRecord({ orderId: 'o-2' }), sqsRecord({ orderId: 'o-1' })];
      const fifo = [sqsRecord({ orderId: 'o-1' }, { groupId: 'g1' }), sqsRecord({ orderId: 'o-2' }, { groupId: 'g2' })];
      const thrown = consumer<Order>(() => 'ok', { store: unreachableStore });
      for (const event of [sqsEvent(batch), sqsEvent(fifo)]) {
        const error = await thrown.invoke(event).then(
          () => undefined,
          (failure: unknown) => failure,
        );
        expect(error).toBeInstanceOf(AggregateError);
        // The in-batch duplicate fails unrun with the first one's failure: one store error per distinct record.
        expect((error as AggregateError).errors.map((cause: unknown) => (cause as { code?: unknown }).code)).toContain('STORE_FAILURE');
        expect((error as AggregateError).message).toBe(
          `idempotentBatch: every record of the batch failed (${event.Records.length}); the batch is thrown back to be retried whole.`,
        );
      }
      const reported = consumer<Order>(() => 'ok', { store: unreachableStore, throwOnFullBatchFailure: false });
      expect(failuresOf(await reported.invoke(sqsEvent(batch)))).toEqual(ids(...batch));
      expect(failuresOf(await reported.invoke(sqsEvent(fifo)))).toEqual(ids(...fifo));
      expect([...thrown.calls, ...reported.calls]).toEqual([]);
    } finally {
      unreachable.destroy();
    }
  });

  test('reports a record held by a concurrent consumer as failed, never acknowledged, and replays it once that one completes', async () => {
    const entered = gate();
    const release = gate();
    const effects: string[] = [];
    // Two containers of the same function.
    const slow = consumer<Order>(async (order) => {
      entered.open();
      await release.promise;
      effects.push(order.orderId);
    });
    const fast = consumer<Order>((order) => void effects.push(order.orderId));
    const held = sqsRecord({ orderId: 'o-1' });
    const other = sqsRecord({ orderId: 'o-2' });

    const slowBatch = slow.invoke(sqsEvent([held]));
    try {
      await entered.promise;
      // SQS hands the message to another consumer (its visibility timeout ran out).
      expect(failuresOf(await fast.invoke(sqsEvent([redelivered(held), other])))).toEqual(ids(held));
      expect(effects).toEqual(['o-2']);
      const item = (await records()).find((record) => record.status?.S === 'INPROGRESS');
      expect(item).toBeDefined();
    } finally {
      release.open();
    }
    expect(failuresOf(await slowBatch)).toEqual([]);
    expect(failuresOf(await fast.invoke(sqsEvent([redelivered(held)])))).toEqual([]);
    expect(effects.sort()).toEqual(['o-1', 'o-2']);
    expect(fast.calls.map(orderIdOf)).toEqual(['o-2']);
  });

  test('runs at most `concurrency` records at once', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const wave = gate();
    const orders = consumer<Order>(
      async () => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        if (inFlight === 3) wave.open();
        await wave.promise;
        await turns(5);
        inFlight--;
      },
      { concurrency: 3 },
    );
    const batch = Array.from({ length: 10 }, (_, i) => sqsRecord({ orderId: `o-${i}` }));
    expect(failuresOf(await orders.invoke(sqsEvent(batch)))).toEqual([]);
    expect(orders.calls).toHaveLength(10);
    expect(maxInFlight).toBe(3);
  });

  test('runs at most 10 records at once by default: the 11th is claimed only once one of the first 10 has ended', async () => {
    let claims = 0;
    let claimsAtTen = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    const wave = gate();
    const counted: IdempotencyStore = {
      claim: (request) => (claims++, store.claim(request)),
      complete: (request) => store.complete(request),
      release: (request) => store.release(request),
    };
    const orders = consumer<Order>(
      async () => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        // The first wave: later records bring the count back to 10 as earlier ones end.
        if (inFlight === 10 && claimsAtTen === 0) {
          claimsAtTen = claims;
          wave.open();
        }
        await wave.promise;
        await turns(5);
        inFlight--;
      },
      { store: counted },
    );
    const batch = Array.from({ length: 25 }, (_, i) => sqsRecord({ orderId: `default-${i}` }));
    expect(failuresOf(await orders.invoke(sqsEvent(batch)))).toEqual([]);
    expect(orders.calls).toHaveLength(25);
    expect([claimsAtTen, maxInFlight]).toEqual([10, 10]);
  });

  test('a record without an `eventSourceARN` (built by hand, as in a unit test) is read as from a standard queue: a failure holds back no other record', async () => {
    const orders = consumer<Order>((order) => {
      if (order.orderId === 'o-1') throw new Error('inventory service unavailable');
    });
    const batch = [1, 2, 3].map((n) => {
      const { eventSourceARN: _, ...record } = sqsRecord({ orderId: `o-${n}` });
      return record as SQSRecord;
    });
    expect(failuresOf(await orders.invoke(sqsEvent(batch)))).toEqual(ids(batch[0]!));
    expect(orders.calls.map(orderIdOf).sort()).toEqual(['o-1', 'o-2', 'o-3']);
  });
});

describe('SQS FIFO queue', () => {
  test('after a failure, the rest of its group is reported unprocessed; other groups run on, each in order', async () => {
    const failing = new Set(['a-2']);
    const order: string[] = [];
    const orders = consumer<Order>(async (message) => {
      // Earlier records take longer: a group run out of order would finish out of order.
      await turns(Number(message.amount));
      order.push(message.orderId);
      if (failing.delete(message.orderId)) throw new Error('inventory service unavailable');
    });
    const a = [1, 2, 3, 4].map((n) => sqsRecord({ orderId: `a-${n}`, amount: 40 - n * 10 }, { groupId: 'customer-a' }));
    const b = [1, 2, 3].map((n) => sqsRecord({ orderId: `b-${n}`, amount: 30 - n * 10 }, { groupId: 'customer-b' }));
    const c = [sqsRecord('{"orderId":', { groupId: 'customer-c' }), sqsRecord({ orderId: 'c-2', amount: 0 }, { groupId: 'customer-c' })];
    // Interleaved as a FIFO batch may arrive.
    const batch = [a[0]!, b[0]!, c[0]!, a[1]!, b[1]!, a[2]!, c[1]!, b[2]!, a[3]!];

    const response = await orders.invoke(sqsEvent(batch));
    expect(failuresOf(response)).toEqual(ids(c[0]!, a[1]!, a[2]!, c[1]!, a[3]!));
    const ran = (prefix: string) => order.filter((id) => id.startsWith(prefix));
    expect(ran('a-')).toEqual(['a-1', 'a-2']);
    expect(ran('b-')).toEqual(['b-1', 'b-2', 'b-3']);
    expect(ran('c-')).toEqual([]);

    // The failed records come back, in order; the poison message still blocks only its group.
    const again = [a[1]!, a[2]!, a[3]!, c[0]!, c[1]!].map(redelivered);
    expect(failuresOf(await orders.invoke(sqsEvent(again)))).toEqual(ids(c[0]!, c[1]!));
    expect(ran('a-')).toEqual(['a-1', 'a-2', 'a-2', 'a-3', 'a-4']);
    expect(ran('c-')).toEqual([]);
  });

  test('runs up to `concurrency` message groups side by side, each group one record at a time', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const running = new Set<string>();
    const overlapping: string[] = [];
    const wave = gate();
    const orders = consumer<Order>(
      async (order) => {
        const group = order.orderId.slice(0, 1);
        if (running.has(group)) overlapping.push(group);
        running.add(group);
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        // A record waits for one of another group: groups run one after another never get past the first.
        if (inFlight === 2) wave.open();
        await wave.promise;
        await turns(5);
        running.delete(group);
        inFlight--;
      },
      { concurrency: 2 },
    );
    const batch = ['a', 'b', 'c'].flatMap((group) => [1, 2].map((n) => sqsRecord({ orderId: `${group}-${n}` }, { groupId: group })));
    expect(failuresOf(await orders.invoke(sqsEvent(batch)))).toEqual([]);
    expect(orders.calls).toHaveLength(6);
    expect(maxInFlight).toBe(2);
    expect(overlapping).toEqual([]);
  });

  test('a record already done in an earlier delivery is still held back behind a failure of its group: reported, then replayed after it, never run twice', async () => {
    const failing = new Set(['a-1']);
    const orders = consumer<Order>((order) => {
      if (failing.delete(order.orderId)) throw new Error('inventory service unavailable');
    });
    // a-2 was done before (a producer's resend of it, in another group, ran in an earlier batch).
    expect(failuresOf(await orders.invoke(sqsEvent([sqsRecord({ orderId: 'a-2' }, { groupId: 'b' })])))).toEqual([]);
    const group = [1, 2, 3].map((n) => sqsRecord({ orderId: `a-${n}` }, { groupId: 'a' }));
    const other = sqsRecord({ orderId: 'c-1' }, { groupId: 'c' });
    expect(failuresOf(await orders.invoke(sqsEvent([...group, other])))).toEqual(ids(...group));
    expect(failuresOf(await orders.invoke(sqsEvent(group.map(redelivered))))).toEqual([]);
    expect(orders.calls.map(orderIdOf).sort()).toEqual(['a-1', 'a-1', 'a-2', 'a-3', 'c-1']);
  });

  test('a fair queue (standard, its messages carrying a MessageGroupId) keeps no order: a failure holds back nothing of its group', async () => {
    const orders = consumer<Order>((order) => {
      if (order.orderId === 'a-1') throw new Error('inventory service unavailable');
    });
    const fair = [1, 2, 3].map((n) => {
      const record = sqsRecord({ orderId: `a-${n}` }, { groupId: 'tenant-a' });
      return { ...record, eventSourceARN: QUEUE_ARN };
    });
    expect(failuresOf(await orders.invoke(sqsEvent(fair)))).toEqual(ids(fair[0]!));
    expect(orders.calls.map(orderIdOf).sort()).toEqual(['a-1', 'a-2', 'a-3']);
  });
});

describe('Kinesis', () => {
  test('runs records in order, reports the first failure and runs nothing after it', async () => {
    const failing = new Set(['o-3']);
    const orders = consumer<Order>(async (order) => {
      await turns(10 - Number(order.amount));
      if (failing.delete(order.orderId)) throw new Error('warehouse API returned 503');
    });
    const batch = [1, 2, 3, 4, 5].map((n) => kinesisRecord({ orderId: `o-${n}`, amount: n }, n));
    const response = await orders.invoke({ Records: batch });
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: kinesisSequence(3) }] });
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-3']);
    // The decoded data, and the raw record.
    expect(orders.calls[0]!.message).toEqual({ orderId: 'o-1', amount: 1 });
    expect((orders.calls[0]!.record as KinesisStreamRecord).kinesis.sequenceNumber).toBe(kinesisSequence(1));

    // Lambda retries from the failed record; a retry of the whole batch replays the done ones.
    expect(failuresOf(await orders.invoke({ Records: batch }))).toEqual([]);
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-3', 'o-3', 'o-4', 'o-5']);
  });

  test('throws the batch back whole, and runs none, when the store is unreachable; reports the first record with throwOnFullBatchFailure: false', async () => {
    const unreachable = await unreachableClient();
    try {
      const unreachableStore = new DynamoDBStore({ tableName, client: unreachable });
      const batch = [1, 2, 3].map((n) => kinesisRecord({ orderId: `o-${n}` }, n));
      const thrown = consumer<Order>(() => 'ok', { store: unreachableStore });
      await expect(thrown.invoke({ Records: batch })).rejects.toThrow(AggregateError);
      const orders = consumer<Order>(() => 'ok', { store: unreachableStore, throwOnFullBatchFailure: false });
      expect(failuresOf(await orders.invoke({ Records: batch }))).toEqual([kinesisSequence(1)]);
      expect([...thrown.calls, ...orders.calls]).toEqual([]);
    } finally {
      unreachable.destroy();
    }
  });

  test('a poison record is the failure the shard stops at', async () => {
    const orders = consumer<Order>(() => 'ok');
    const batch = [kinesisRecord({ orderId: 'o-1' }, 1), kinesisRecord('\u0000\u0001binary', 2), kinesisRecord({ orderId: 'o-3' }, 3)];
    expect(failuresOf(await orders.invoke({ Records: batch }))).toEqual([kinesisSequence(2)]);
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1']);
  });
});

describe('DynamoDB Streams', () => {
  test('a change without an eventID (its key by default) is poison, logged as a change whose key is missing, not as an empty message', async () => {
    const logger = quiet();
    const orders = consumer<StreamChange>(() => 'ok', { logger });
    const { eventID: _, ...unnamed } = streamRecord(2, 'ord-2', 'PAID');
    const batch = [streamRecord(1, 'ord-1', 'PAID'), unnamed, streamRecord(3, 'ord-3', 'PAID')];
    expect(failuresOf(await orders.invoke({ Records: batch }))).toEqual([streamSequence(2)]);
    expect(orders.calls).toHaveLength(1);
    expect(logger.lines.map((line) => JSON.parse(line) as unknown)).toEqual([
      expect.objectContaining({ level: 'ERROR', itemIdentifier: streamSequence(2), reason: expect.stringMatching(/^KEY_MISSING: (?!.*whole message)/) }),
    ]);
  });

  test('passes the unmarshalled change, runs in order, reports the first failure and runs nothing after it', async () => {
    const failing = new Set(['ord-2']);
    const orders = consumer<StreamChange>((change) => {
      const orderId = change.newImage?.orderId as string;
      if (failing.delete(orderId)) throw new Error('email service unavailable');
    });
    const batch = [streamRecord(1, 'ord-1', 'PAID'), streamRecord(2, 'ord-2', 'PAID'), streamRecord(3, 'ord-3', 'NEW', 'INSERT')];
    expect(await orders.invoke({ Records: batch })).toEqual({ batchItemFailures: [{ itemIdentifier: streamSequence(2) }] });
    expect(orders.calls).toHaveLength(2);
    expect(orders.calls[0]!.message).toEqual({
      eventName: 'MODIFY',
      keys: { pk: 'ORDER#ord-1' },
      newImage: { pk: 'ORDER#ord-1', orderId: 'ord-1', status: 'PAID', total: 1999, lines: [{ sku: 'A-1', qty: 2 }], paid: true },
      oldImage: { pk: 'ORDER#ord-1', orderId: 'ord-1', status: 'PENDING', total: 1999, lines: [{ sku: 'A-1', qty: 2 }], paid: false },
    });
    expect((orders.calls[1]!.record as DynamoDBRecord).dynamodb?.SequenceNumber).toBe(streamSequence(2));

    expect(failuresOf(await orders.invoke({ Records: batch.slice(1) }))).toEqual([]);
    expect(orders.calls.map((call) => (call.message as StreamChange).newImage?.orderId)).toEqual(['ord-1', 'ord-2', 'ord-2', 'ord-3']);
  });

  test('a set attribute (SS, NS, BS) arrives as a Set, which a key cannot hold: a fingerprint selecting it is poison logged as INVALID_KEY; spread and sorted, it keys the change', async () => {
    const tagged = (n: number, tags: string[]): DynamoDBRecord => {
      const record = streamRecord(n, `ord-${n}`, 'PAID');
      record.dynamodb!.NewImage!.tags = { SS: tags };
      return record;
    };
    const logger = quiet();
    const whole = consumer<StreamChange>(() => 'ok', { logger, fingerprint: (change) => change.newImage, throwOnFullBatchFailure: false });
    const first = tagged(1, ['gift', 'express']);
    expect(failuresOf(await whole.invoke({ Records: [first] }))).toEqual([streamSequence(1)]);
    expect(whole.calls).toEqual([]);
    expect(logger.lines.join('\n')).toMatch(/INVALID_KEY/);

    const sorted = consumer<StreamChange>(() => 'ok', {
      fingerprint: (change) => ({ ...change.newImage, tags: [...((change.newImage?.tags as Set<string> | undefined) ?? [])].sort() }),
    });
    expect(failuresOf(await sorted.invoke({ Records: [first] }))).toEqual([]);
    expect(sorted.calls.map((call) => (call.message as StreamChange).newImage?.tags)).toEqual([new Set(['gift', 'express'])]);
  });
});

describe('concurrent consumers', () => {
  test('on overlapping batches, with redelivery of the failures until none are left, each record takes effect exactly once', async () => {
    const orderIds = Array.from({ length: 12 }, (_, i) => `o-${i}`);
    const messages = new Map(orderIds.map((orderId) => [orderId, sqsRecord({ orderId, amount: 10 })]));
    const pick = (...indexes: number[]) => indexes.map((i) => messages.get(`o-${i}`)!);
    // Three containers of one function, each given an overlapping batch (every message twice), and
    // a producer's resend inside the first batch.
    const batches = [
      [...pick(0, 1, 2, 3, 4, 5, 6, 7), sqsRecord({ orderId: 'o-2', amount: 10 })],
      pick(4, 5, 6, 7, 8, 9, 10, 11),
      pick(0, 1, 2, 3, 8, 9, 10, 11),
    ];

    // Hold every record function until all claims of the first round are decided, so that every
    // overlapping record meets a record held by the other consumer.
    const expectedClaims = 8 + 8 + 8;
    let claims = 0;
    const allClaimed = gate();
    const counting: IdempotencyStore = {
      claim: async (request) => {
        const result = await store.claim(request);
        if (++claims === expectedClaims) allClaimed.open();
        return result;
      },
      complete: (request) => store.complete(request),
      release: (request) => store.release(request),
    };
    const effects = new Map<string, number>();
    const failOnce = new Set(['o-5', 'o-9']);
    const containers = batches.map(() =>
      consumer<Order>(
        async (order) => {
          await allClaimed.promise;
          await turns(3);
          if (failOnce.delete(order.orderId)) throw new Error('ledger write timed out');
          effects.set(order.orderId, (effects.get(order.orderId) ?? 0) + 1);
        },
        { store: counting },
      ),
    );

    let deliveries: SQSRecord[][] = batches;
    let rounds = 0;
    /** Round one: which containers acknowledged each order. */
    const acknowledgedBy = new Map<string, Set<number>>(orderIds.map((orderId) => [orderId, new Set()]));
    while (deliveries.some((batch) => batch.length > 0)) {
      if (++rounds > 6) throw new Error(`still failing after ${rounds - 1} rounds: ${JSON.stringify(deliveries.map((b) => b.length))}`);
      // An invocation that throws (no record of its batch succeeded) gets the whole batch back, as from Lambda.
      const everyRecord = (batch: SQSRecord[]): BatchResponse => ({ batchItemFailures: batch.map((record) => ({ itemIdentifier: record.messageId })) });
      const responses = await Promise.all(
        containers.map((container, i) =>
          container.invoke(sqsEvent(deliveries[i]!)).catch((error: unknown) => {
            if (!(error instanceof AggregateError)) throw error;
            return everyRecord(deliveries[i]!);
          }),
        ),
      );
      deliveries = responses.map((response, i) => {
        const failed = new Set(failuresOf(response));
        if (rounds === 1) {
          for (const record of deliveries[i]!) if (!failed.has(record.messageId)) acknowledgedBy.get((JSON.parse(record.body) as Order).orderId)!.add(i);
        }
        return deliveries[i]!.filter((record) => failed.has(record.messageId)).map(redelivered);
      });
    }

    expect(Object.fromEntries(effects)).toEqual(Object.fromEntries(orderIds.map((orderId) => [orderId, 1])));
    // Round one: each order was claimed by one container; the other container met it in progress
    // and reported it instead of acknowledging it. The two failing orders were acknowledged by none.
    expect(Object.fromEntries([...acknowledgedBy].map(([orderId, by]) => [orderId, by.size]))).toEqual(
      Object.fromEntries(orderIds.map((orderId) => [orderId, orderId === 'o-5' || orderId === 'o-9' ? 0 : 1])),
    );
    expect(rounds).toBeGreaterThan(1);
    const stored = await records();
    expect(stored).toHaveLength(12);
    expect(stored.every((item) => item.status?.S === 'COMPLETED')).toBe(true);
    expect(await readItem(client, tableName, stored[0]!.id!.S!)).toMatchObject({ status: { S: 'COMPLETED' } });
  });
});

test('a message its fingerprint cannot read (the selector throws, or selects a BigInt) is poison: logged with the reason, never its payload, never claimed or run', async () => {
  const logger = quiet();
  const orders = consumer<{ orderId: string; amount?: { cents: number } }>(() => 'charged', {
    logger,
    key: (order) => order.orderId,
    fingerprint: (order) => (order.orderId === 'o-big' ? BigInt(order.amount!.cents) : order.amount!.cents),
  });
  const noAmount = sqsRecord({ orderId: 'o-4111111111111111' } as Order);
  const big = sqsRecord({ orderId: 'o-big', amount: { cents: 5 } } as unknown as Order);
  const fine = sqsRecord({ orderId: 'o-1', amount: { cents: 100 } } as unknown as Order);
  expect(failuresOf(await orders.invoke(sqsEvent([noAmount, big, fine])))).toEqual(ids(noAmount, big));
  expect(orders.calls.map(orderIdOf)).toEqual(['o-1']);
  expect((await records()).map((item) => item.status?.S)).toEqual(['COMPLETED']);
  expect(logger.lines.map((line) => JSON.parse(line) as unknown)).toEqual([
    {
      level: 'ERROR',
      message: 'lambda-idempotency: poison record reported as failed',
      itemIdentifier: noAmount.messageId,
      reason: 'fingerprint: INVALID_KEY: The fingerprint selector threw.',
    },
    {
      level: 'ERROR',
      message: 'lambda-idempotency: poison record reported as failed',
      itemIdentifier: big.messageId,
      reason: expect.stringMatching(/^fingerprint: INVALID_KEY: .*BigInt/),
    },
  ]);
  expect(logger.lines.join('\n')).not.toMatch(/4111111111111111|cents/);
});

test('a message its fingerprint cannot read fails alone: an in-batch duplicate of its key whose fingerprint reads runs, as a message of its own', async () => {
  const orders = consumer<{ orderId: string; amount?: { cents: number } }>(() => 'charged', {
    key: (order) => order.orderId,
    fingerprint: (order) => order.amount!.cents,
  });
  const noAmount = sqsRecord({ orderId: 'o-1' } as Order);
  const paid = sqsRecord({ orderId: 'o-1', amount: { cents: 100 } } as unknown as Order);
  expect(failuresOf(await orders.invoke(sqsEvent([noAmount, paid])))).toEqual(ids(noAmount));
  expect(orders.calls.map((call) => call.record)).toEqual([paid]);
  expect((await records()).map((item) => item.status?.S)).toEqual(['COMPLETED']);
});

test('a record function whose own nested idempotent call cannot key its input (INVALID_KEY) fails its record without logging the message as poison: the message is not at fault', async () => {
  const logger = quiet();
  // The nested call is keyed by a value the record function computes: a BigInt, which canonical JSON refuses.
  const reserve = makeIdempotent(async (ref: { id: bigint }) => String(ref.id), { store, name: 'reserve', key: (ref) => ref.id, now: clock, logger: quiet() });
  const orders = consumer<Order>((order) => (order.orderId === 'o-1' ? reserve({ id: BigInt(order.amount ?? 0) }) : 'nothing to reserve'), {
    logger,
    key: (order) => order.orderId,
    fingerprint: (order) => order.amount,
  });
  const message = sqsRecord({ orderId: 'o-1', amount: 100 });
  const other = sqsRecord({ orderId: 'o-2', amount: 5 });
  expect(failuresOf(await orders.invoke(sqsEvent([message, other])))).toEqual(ids(message));
  expect(orders.calls.map(orderIdOf).sort()).toEqual(['o-1', 'o-2']);
  // The record function's failure, not the message's.
  expect(logger.lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
    expect.objectContaining({
      message: 'lambda-idempotency: record reported as failed',
      itemIdentifier: message.messageId,
      reason: 'the record function threw (IdempotencyError INVALID_KEY)',
    }),
  ]);
});

/** Runs o-1 twice and o-2 through `fn`, whose o-1 fails with a nested call's `code`: both o-1 are reported, the twin unrun, and logged so. */
async function expectTwinFailedUnrun(fn: RecordHandler<Order, unknown>, code: string): Promise<void> {
  const logger = quiet();
  const orders = consumer<Order>(fn, { logger, key: (order) => order.orderId });
  const [message, twin] = [sqsRecord({ orderId: 'o-1', amount: 100 }), sqsRecord({ orderId: 'o-1', amount: 100 })];
  const other = sqsRecord({ orderId: 'o-2', amount: 5 });
  expect(failuresOf(await orders.invoke(sqsEvent([message, twin, other])))).toEqual(ids(message, twin));
  expect(orders.calls.map(orderIdOf).sort()).toEqual(['o-1', 'o-2']);
  expect(logger.lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
    expect.objectContaining({ itemIdentifier: message.messageId, reason: `the record function threw (IdempotencyError ${code})` }),
    expect.objectContaining({ itemIdentifier: twin.messageId, reason: 'an in-batch duplicate of this record failed before it (not run)' }),
  ]);
}

test("a record function's own nested rejection (INVALID_KEY) fails the record's in-batch duplicate unrun, as any failure of the record function does", async () => {
  const reserve = makeIdempotent(async (ref: { id: bigint }) => String(ref.id), { store, name: 'reserve', key: (ref) => ref.id, now: clock, logger: quiet() });
  await expectTwinFailedUnrun((order) => (order.orderId === 'o-1' ? reserve({ id: BigInt(order.amount ?? 0) }) : 'nothing to reserve'), 'INVALID_KEY');
});

test("a record function's own nested PAYLOAD_MISMATCH fails the record's in-batch duplicate unrun: the conflict is the nested call's, not a rejection of this message", async () => {
  const reserve = makeIdempotent(async (order: Order) => order.orderId, {
    store,
    name: 'reserve',
    key: (order) => order.orderId,
    fingerprint: (order) => order.amount,
    now: clock,
    logger: quiet(),
  });
  await reserve({ orderId: 'o-1', amount: 1 });
  await expectTwinFailedUnrun((order) => reserve(order), 'PAYLOAD_MISMATCH');
});

test('a business key with a fingerprint: the same orderId with another amount is reported failed, never run', async () => {
  let runs = 0;
  const logger = quiet();
  const handler = idempotentBatch(
    async (_order: Order) => {
      runs++;
    },
    { store, name: `fingerprinted-${randomUUID()}`, key: (order) => order.orderId, fingerprint: (order) => order.amount, logger },
  );
  const first = sqsRecord({ orderId: 'o-fp', amount: 100 });
  expect(failuresOf(await handler(sqsEvent([first]), consumerContext()))).toEqual([]);
  const resend = sqsRecord({ orderId: 'o-fp', amount: 100 });
  const changed = sqsRecord({ orderId: 'o-fp', amount: 999 });
  expect(failuresOf(await handler(sqsEvent([resend, changed]), consumerContext()))).toEqual([changed.messageId]);
  expect(runs).toBe(1);
  expect(logger.lines.map((line) => JSON.parse(line))).toEqual([
    expect.objectContaining({ level: 'ERROR', itemIdentifier: changed.messageId, reason: expect.stringMatching(/^PAYLOAD_MISMATCH: /) }),
  ]);
});

test('DynamoDB Streams: a change repeated later (same images, another eventID) runs again; a redelivered event does not', async () => {
  const { invoke, calls } = consumer(async () => undefined);
  const first = streamRecord(1, 'o-again', 'PAID');
  const repeated = { ...streamRecord(3, 'o-again', 'PAID'), eventID: 'another-event' };
  expect(failuresOf(await invoke({ Records: [first] }))).toEqual([]);
  expect(failuresOf(await invoke({ Records: [first, repeated] }))).toEqual([]);
  expect(calls.map((call) => call.record)).toEqual([first, repeated]);
});

test('DynamoDB Streams: numbers past double precision arrive as their exact text, never as a poison record or a log of their value', async () => {
  const logger = quiet();
  const { invoke, calls } = consumer(async () => undefined, { logger });
  const record = streamRecord(1, 'o-big', 'PAID');
  record.dynamodb!.NewImage!.snowflake = { N: '1234567890123456789' };
  record.dynamodb!.NewImage!.amount = { N: '98765432109876543210.55' };
  expect(failuresOf(await invoke({ Records: [record] }))).toEqual([]);
  expect((calls[0]!.message as { newImage: Record<string, unknown> }).newImage).toMatchObject({
    snowflake: '1234567890123456789',
    amount: '98765432109876543210.55',
    total: 1999,
  });
  expect(logger.lines).toEqual([]);
});

test('DynamoDB Streams: numbers a double holds exactly arrive as numbers, also those JavaScript writes with an exponent (satoshis, 1e21)', async () => {
  const { invoke, calls } = consumer(async () => undefined);
  const record = streamRecord(1, 'o-small', 'PAID');
  // DynamoDB writes every number as a plain decimal, never with an exponent.
  record.dynamodb!.NewImage!.btc = { N: '0.00000001' };
  record.dynamodb!.NewImage!.rate = { N: '-0.0000025' };
  record.dynamodb!.NewImage!.huge = { N: '1000000000000000000000' };
  record.dynamodb!.NewImage!.inexact = { N: '0.00000000000000000000000000000000000000000000000000000000001000000000000000000001' };
  expect(failuresOf(await invoke({ Records: [record] }))).toEqual([]);
  expect((calls[0]!.message as { newImage: Record<string, unknown> }).newImage).toMatchObject({
    btc: 1e-8,
    rate: -2.5e-6,
    huge: 1e21,
    inexact: '0.00000000000000000000000000000000000000000000000000000000001000000000000000000001',
  });
});

test('a batch that mixes event sources (an event source mapping delivers one) is refused with a TypeError that says so, before any record runs', async () => {
  const { invoke, calls } = consumer(async () => undefined);
  for (const [mixed, sources] of [
    [[sqsRecord({ orderId: 'o-mixed-1' }), kinesisRecord({ orderId: 'o-mixed-2' }, 1)], 'aws:sqs and aws:kinesis'],
    [[kinesisRecord({ orderId: 'o-mixed-3' }, 2), sqsRecord({ orderId: 'o-mixed-4' })], 'aws:kinesis and aws:sqs'],
  ] as const) {
    await expect(invoke({ Records: mixed } as unknown as SQSEvent)).rejects.toThrow(
      new TypeError(`idempotentBatch: the batch mixes records of ${sources}; an event source mapping or a pipe delivers records of one source.`),
    );
  }
  expect(calls).toEqual([]);
  expect(await records()).toEqual([]);
});

describe.each([
  ['SQS', (body: string, n: number) => sqsRecord(body, { messageId: `m-exact-${n}` })],
  ['Kinesis', (body: string, n: number) => kinesisRecord(body, 100 + n)],
] as const)('%s: numbers in a JSON message', (_, recordOf) => {
  test('two messages that differ only in a digit past double precision are two messages: both run, each with its exact number', async () => {
    const { invoke, calls } = consumer(async () => undefined);
    const snowflakes = ['1234567890123456789', '1234567890123456788'];
    for (const [n, id] of snowflakes.entries()) {
      expect(failuresOf(await invoke({ Records: [recordOf(`{"orderId":${id},"amount":10}`, n)] } as SQSEvent))).toEqual([]);
    }
    expect(calls.map((call) => call.message)).toEqual(snowflakes.map((orderId) => ({ orderId, amount: 10 })));
    expect(await records()).toHaveLength(2);
  });

  test('numbers a double holds exactly stay numbers, however they are written; strings that hold digits stay as sent', async () => {
    const { invoke, calls } = consumer(async () => undefined);
    const body = '{"a":1.0,"b":1e2,"c":0.1,"d":-0,"e":1E-7,"f":"9007199254740993","g":"q\\"9007199254740993","h":[9007199254740993,2.50]}';
    expect(failuresOf(await invoke({ Records: [recordOf(body, 9)] } as SQSEvent))).toEqual([]);
    expect(calls[0]!.message).toEqual({ a: 1, b: 100, c: 0.1, d: -0, e: 1e-7, f: '9007199254740993', g: 'q"9007199254740993', h: ['9007199254740993', 2.5] });
  });
});

test('without a namespace (no `name`, no function name, no AWS_LAMBDA_FUNCTION_NAME) the batch fails with the TypeError that says so, not as poison records', async () => {
  const logger = quiet();
  let runs = 0;
  const handler = idempotentBatch(() => void runs++, { store, logger });
  const context = { ...consumerContext(), functionName: '' };
  await expect(handler(sqsEvent([sqsRecord({ orderId: 'o-unnamed' })]), context)).rejects.toThrow(
    new TypeError('No namespace for idempotency records: set the `name` option (no Lambda context or AWS_LAMBDA_FUNCTION_NAME).'),
  );
  expect(runs).toBe(0);
  expect(logger.lines).toEqual([]);
});

test.each([
  [
    'an Amazon MSK (Kafka) event',
    {
      eventSource: 'aws:kafka',
      eventSourceArn: `arn:aws:kafka:${REGION}:${ACCOUNT}:cluster/orders/abc`,
      records: { 'orders-0': [{ topic: 'orders', partition: 0, offset: 15, value: 'e30=' }] },
    },
    ' (its eventSource is "aws:kafka")',
  ],
  [
    'a self-managed Kafka event',
    { eventSource: 'SelfManagedKafka', bootstrapServers: 'b-1:9092', records: { 'orders-0': [{ topic: 'orders', partition: 0, offset: 15, value: 'e30=' }] } },
    ' (its eventSource is "SelfManagedKafka")',
  ],
  [
    'an Amazon MQ event',
    { eventSource: 'aws:mq', eventSourceArn: `arn:aws:mq:${REGION}:${ACCOUNT}:broker:orders:b-1`, messages: [{ messageID: 'ID:1', data: 'e30=' }] },
    ' (its eventSource is "aws:mq")',
  ],
  ['no event', undefined, ''],
])('%s, which has no Records, is refused with a TypeError that names its source, never acknowledged as an empty batch', async (_, event, named) => {
  const { handler, calls } = consumer(async () => undefined);
  await expect(handler(event as unknown as SQSEvent, consumerContext())).rejects.toThrow(
    new TypeError(
      `idempotentBatch: the event${named} has no \`Records\` array and is no array of records: expected an SQS, Kinesis or DynamoDB Streams event, from an event source mapping or an EventBridge pipe.`,
    ),
  );
  expect(calls).toEqual([]);
  // An empty Records array is an empty batch.
  expect(await handler({ Records: [] }, consumerContext())).toEqual({ batchItemFailures: [] });
});

test('an SNS event (a topic subscribed to the function itself) is refused with a TypeError that names its source, which SNS spells `EventSource`', async () => {
  const { handler, calls } = consumer(async () => undefined);
  const sns = {
    Records: [
      {
        EventSource: 'aws:sns',
        EventVersion: '1.0',
        EventSubscriptionArn: `arn:aws:sns:${REGION}:${ACCOUNT}:orders:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55`,
        Sns: { Type: 'Notification', MessageId: randomUUID(), TopicArn: `arn:aws:sns:${REGION}:${ACCOUNT}:orders`, Message: '{"orderId":"o-1"}' },
      },
    ],
  };
  await expect(handler(sns as unknown as SQSEvent, consumerContext())).rejects.toThrow(
    new TypeError('idempotentBatch: unsupported event source "aws:sns": expected SQS, Kinesis or DynamoDB Streams records.'),
  );
  expect(calls).toEqual([]);
  expect(await records()).toEqual([]);
});

describe('a batch in which no record succeeded', () => {
  test('a FIFO batch whose every message group failed at its first record: the AggregateError says how many failed and that the others were held back, unrun', async () => {
    const batch = ['a', 'b'].flatMap((group) => [1, 2, 3].map((n) => sqsRecord({ orderId: `held-${group}-${n}` }, { groupId: group })));
    const orders = consumer<Order>(() => {
      throw new Error('payment gateway down');
    });
    const error = await orders.invoke(sqsEvent(batch)).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(AggregateError);
    expect((error as AggregateError).errors).toHaveLength(2);
    expect((error as AggregateError).message).toBe(
      'idempotentBatch: no record of the batch succeeded (6): 2 failed, the others were held back behind a failure of their message group; the batch is thrown back to be retried whole.',
    );
    expect(orders.calls.map((call) => (call.message as Order).orderId).sort()).toEqual(['held-a-1', 'held-b-1']);
  });

  /** The handler's outcome: its answer, or the error it threw. */
  const settle = (promise: Promise<BatchResponse>): Promise<{ response?: BatchResponse; error?: unknown }> =>
    promise.then(
      (response) => ({ response }),
      (error: unknown) => ({ error }),
    );

  test("is thrown back whole (an AggregateError of the records' errors), so an event source without reportBatchItemFailures retries it instead of deleting it", async () => {
    const orders = consumer<Order>((order) => {
      throw new PaymentDeclined(`declined ${order.orderId}`);
    });
    const batch = [sqsRecord({ orderId: 'o-1' }), sqsRecord({ orderId: 'o-2' })];
    const { error } = await settle(orders.invoke(sqsEvent(batch)));
    expect(error).toBeInstanceOf(AggregateError);
    expect((error as AggregateError).errors.map((cause: unknown) => (cause as Error).message).sort()).toEqual(['declined o-1', 'declined o-2']);
    expect(orders.calls.map(orderIdOf).sort()).toEqual(['o-1', 'o-2']);
    expect(await records()).toEqual([]); // the failures released their records: the retry runs them
  });

  test('one success is enough for the usual answer: the failed records are reported, nothing is thrown', async () => {
    const orders = consumer<Order>((order) => {
      if (order.orderId !== 'o-2') throw new PaymentDeclined('declined');
      return 'shipped';
    });
    const batch = [sqsRecord({ orderId: 'o-1' }), sqsRecord({ orderId: 'o-2' }), sqsRecord({ orderId: 'o-3' })];
    expect(await settle(orders.invoke(sqsEvent(batch)))).toEqual({
      response: { batchItemFailures: ids(batch[0]!, batch[2]!).map((itemIdentifier) => ({ itemIdentifier })) },
    });
  });

  test('a batch of poison records only is thrown back with their reasons, never their payloads', async () => {
    const orders = consumer<Order>(() => 'ok');
    const { error } = await settle(orders.invoke(sqsEvent([sqsRecord('card=4111111111111111'), sqsRecord('{"orderId":')])));
    expect((error as AggregateError).errors.map((cause: unknown) => (cause as Error).message)).toEqual(['unparseable payload', 'unparseable payload']);
    expect(String((error as AggregateError).errors)).not.toMatch(/4111111111111111/);
    expect(orders.calls).toEqual([]);
  });

  test('FIFO: a failure at the head of the only group leaves nothing processed: thrown back', async () => {
    const orders = consumer<Order>((order) => {
      if (order.orderId === 'o-1') throw new PaymentDeclined('declined');
      return 'ok';
    });
    const group = [sqsRecord({ orderId: 'o-1' }, { groupId: 'g' }), sqsRecord({ orderId: 'o-2' }, { groupId: 'g' })];
    expect(await settle(orders.invoke(sqsEvent(group)))).toEqual({ error: expect.any(AggregateError) });
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1']);
    const twoGroups = [...group, sqsRecord({ orderId: 'o-3' }, { groupId: 'h' })];
    expect(await settle(orders.invoke(sqsEvent(twoGroups)))).toEqual({
      response: { batchItemFailures: ids(group[0]!, group[1]!).map((itemIdentifier) => ({ itemIdentifier })) },
    });
  });

  test('streams: a failure of the first record is thrown back; of a later one, reported as the point to resume from', async () => {
    const orders = consumer<Order>((order) => {
      if (order.orderId === 'o-1') throw new PaymentDeclined('declined');
      return 'ok';
    });
    const first = [1, 2].map((n) => kinesisRecord({ orderId: `o-${n}` }, n));
    expect(await settle(orders.invoke({ Records: first }))).toEqual({ error: expect.any(AggregateError) });
    const later = [kinesisRecord({ orderId: 'o-2' }, 2), kinesisRecord({ orderId: 'o-1' }, 3)];
    expect(await settle(orders.invoke({ Records: later }))).toEqual({ response: { batchItemFailures: [{ itemIdentifier: kinesisSequence(3) }] } });
    const stream = consumer<StreamChange>(() => {
      throw new PaymentDeclined('declined');
    });
    expect(await settle(stream.invoke({ Records: [streamRecord(1, 'ord-1', 'PAID')] }))).toEqual({ error: expect.any(AggregateError) });
  });

  test('streams: the error thrown when the first record fails names that record, not every record of the batch, as failed', async () => {
    const orders = consumer<Order>((order) => {
      if (order.orderId === 'o-1') throw new PaymentDeclined('declined');
      return 'ok';
    });
    const batch = [1, 2, 3].map((n) => kinesisRecord({ orderId: `o-${n}` }, n));
    const { error } = await settle(orders.invoke({ Records: batch }));
    expect(error).toBeInstanceOf(AggregateError);
    expect((error as AggregateError).errors).toEqual([expect.any(PaymentDeclined)]);
    expect((error as AggregateError).message).toBe(
      'idempotentBatch: the first record of the stream batch failed, and nothing after it ran (3 records); the batch is thrown back to be retried whole.',
    );
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1']);
  });

  test('streams: a batch of one record that failed is thrown back as a batch whose every record failed, not as one cut short after its first', async () => {
    const orders = consumer<Order>(() => {
      throw new PaymentDeclined('declined');
    });
    const { error } = await settle(orders.invoke({ Records: [kinesisRecord({ orderId: 'o-1' }, 1)] }));
    expect((error as AggregateError).message).toBe('idempotentBatch: every record of the batch failed (1); the batch is thrown back to be retried whole.');
  });

  test('throwOnFullBatchFailure must be a boolean', () => {
    expect(() => idempotentBatch(() => 'ok', { store, throwOnFullBatchFailure: 'yes' as never })).toThrow(
      new TypeError('idempotentBatch: `throwOnFullBatchFailure` must be a boolean.'),
    );
  });

  test('a record function that throws an error of another realm (a vm context) has it logged by its name, as an Error', async () => {
    const logger = quiet();
    const orders = consumer<Order>(
      () => {
        throw runInNewContext('new RangeError("limit")');
      },
      { logger },
    );
    await orders.invoke(sqsEvent([sqsRecord({ orderId: 'o-realm' })])).catch(() => undefined);
    expect(logger.lines.map((line) => (JSON.parse(line) as { reason: string }).reason)).toEqual(['the record function threw (RangeError)']);
  });

  test('a record function that throws a value whose prototype cannot be read (a revoked Proxy) has it logged and thrown back as its own, not a TypeError of the batch', async () => {
    const revoked = () => {
      const { proxy, revoke } = Proxy.revocable({}, {});
      revoke();
      return proxy;
    };
    const trapped = new Proxy(new Error('declined'), {
      getPrototypeOf: () => {
        throw new Error('no prototype');
      },
    });
    const thrown = new Map<string, unknown>([
      ['o-revoked', revoked()],
      ['o-trapped', trapped],
    ]);
    const logger = quiet();
    const orders = consumer<Order>(
      (order) => {
        throw thrown.get(order.orderId);
      },
      { logger, concurrency: 1 },
    );
    const batch = [sqsRecord({ orderId: 'o-revoked' }), sqsRecord({ orderId: 'o-trapped' })];
    // Compared by identity: jest cannot print a value whose reads throw.
    const caught = await orders.invoke(sqsEvent(batch)).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(caught).toBeInstanceOf(AggregateError);
    const causes = (caught as AggregateError).errors;
    expect(causes.length === 2 && causes[0] === thrown.get('o-revoked') && causes[1] === thrown.get('o-trapped')).toBe(true);
    expect(logger.lines.map((line) => (JSON.parse(line) as { reason: string }).reason)).toEqual([
      'the record function threw (object)',
      'the record function threw (object)',
    ]);
    // Released: the redelivery runs again.
    await orders.invoke(sqsEvent(batch)).catch(() => undefined);
    expect(orders.calls.map(orderIdOf)).toEqual(['o-revoked', 'o-trapped', 'o-revoked', 'o-trapped']);
  });
});

describe('records a handler cannot report', () => {
  const missing: Array<[string, () => BatchRecord, string]> = [
    ['an SQS record without its messageId', () => ({ ...sqsRecord({ orderId: 'o-1' }), messageId: undefined }) as unknown as SQSRecord, 'messageId'],
    [
      'a Kinesis record without its sequence number',
      () => {
        const record = kinesisRecord({ orderId: 'o-1' }, 1);
        return { ...record, kinesis: { ...record.kinesis, sequenceNumber: '' } };
      },
      'kinesis.sequenceNumber',
    ],
    [
      'a Kinesis record without its `kinesis` part',
      () => ({ ...kinesisRecord({ orderId: 'o-1' }, 1), kinesis: undefined }) as unknown as KinesisStreamRecord,
      'kinesis.sequenceNumber',
    ],
    [
      'a DynamoDB Streams record without its sequence number',
      () => {
        const record = streamRecord(1, 'o-1', 'PAID');
        return { ...record, dynamodb: { ...record.dynamodb, SequenceNumber: undefined } };
      },
      'dynamodb.SequenceNumber',
    ],
  ];
  test.each(missing)('%s is refused with a TypeError that names the field, before any record runs', async (_, recordOf, field) => {
    const { invoke, calls } = consumer(async () => undefined);
    const record = recordOf();
    const good = sourceOfRecord(record);
    await expect(invoke({ Records: [good, record] } as SQSEvent)).rejects.toThrow(
      new TypeError(
        `idempotentBatch: record 1 has no \`${field}\`, the identifier a batch item failure reports: expected the records Lambda's event source mapping delivers.`,
      ),
    );
    expect(calls).toEqual([]);
    expect(await records()).toEqual([]);
  });

  test('a record that is not an object is refused with a TypeError, not a crash inside', async () => {
    const { invoke, calls } = consumer(async () => undefined);
    await expect(invoke({ Records: [null] } as unknown as SQSEvent)).rejects.toThrow(
      new TypeError('idempotentBatch: unsupported event source undefined: expected SQS, Kinesis or DynamoDB Streams records.'),
    );
    expect(calls).toEqual([]);
  });

  test.each([
    [
      'a Kinesis record without its data',
      () => ({ ...kinesisRecord({ orderId: 'o-1' }, 1), kinesis: { ...kinesisRecord({ orderId: 'o-1' }, 1).kinesis, data: undefined } }),
      'kinesis.data',
    ],
    ['an SQS record without its body', () => ({ ...sqsRecord({ orderId: 'o-1' }), body: undefined }), 'body'],
  ] as Array<[string, () => BatchRecord, string]>)(
    '%s is refused with a TypeError that says the member is missing, not that a middleware parsed it',
    async (_, recordOf, field) => {
      const { invoke, calls } = consumer(async () => undefined);
      const record = recordOf();
      await expect(invoke({ Records: [sourceOfRecord(record), record] } as SQSEvent)).rejects.toThrow(
        new TypeError(`idempotentBatch: record 1 has no \`${field}\`, the payload it carries: expected the records Lambda's event source mapping delivers.`),
      );
      expect(calls).toEqual([]);
      expect(await records()).toEqual([]);
    },
  );
});

/** A well-formed record of the same source as `record`. */
function sourceOfRecord(record: BatchRecord): BatchRecord {
  const source = (record as { eventSource: string }).eventSource;
  if (source === 'aws:sqs') return sqsRecord({ orderId: 'o-0' });
  if (source === 'aws:kinesis') return kinesisRecord({ orderId: 'o-0' }, 0);
  return streamRecord(0, 'o-0', 'PAID');
}

describe('a record whose effect already happened is never reported failed', () => {
  test('a handler result JSON cannot hold (a BigInt): its duplicates, in the batch and redelivered, succeed without running again', async () => {
    const orders = consumer<Order>(() => 10n);
    const first = sqsRecord({ orderId: 'o-big' });
    const resent = sqsRecord({ orderId: 'o-big' });
    expect(failuresOf(await orders.invoke(sqsEvent([first, resent])))).toEqual([]);
    expect(failuresOf(await orders.invoke(sqsEvent([redelivered(resent)])))).toEqual([]);
    expect(orders.calls).toHaveLength(1);
    expect((await records()).map((item) => item.status?.S)).toEqual(['COMPLETED']);
  });

  test('a handler result larger than a record holds (450 KB that gzip cannot shrink): the record completes without it; its duplicates, in the batch and redelivered, succeed unrun', async () => {
    const label = randomBytes(450 * 1024).toString('base64');
    const orders = consumer<Order>(() => label);
    const first = sqsRecord({ orderId: 'o-label' });
    const resent = sqsRecord({ orderId: 'o-label' });
    expect(failuresOf(await orders.invoke(sqsEvent([first, resent])))).toEqual([]);
    expect(failuresOf(await orders.invoke(sqsEvent([redelivered(first)])))).toEqual([]);
    expect(orders.calls).toHaveLength(1);
    expect((await records()).map((item) => [item.status?.S, item.response])).toEqual([['COMPLETED', undefined]]);
  });

  test('when the completion write fails after the handler succeeded, the in-batch duplicate succeeds unrun instead of coming back to run again after the lease', async () => {
    const flaky = failingOnce(
      'complete',
      Object.assign(new Error('Throughput exceeds the current capacity'), { name: 'ProvisionedThroughputExceededException' }),
    );
    const orders = consumer<Order>(() => 'charged', { store: flaky, key: (order) => order.orderId, fingerprint: (order) => order.amount });
    const first = sqsRecord({ orderId: 'o-1', amount: 100 });
    const resent = sqsRecord({ orderId: 'o-1', amount: 100 });
    // The same key with another payload is still refused.
    const changed = sqsRecord({ orderId: 'o-1', amount: 999 });
    const response = await orders.invoke(sqsEvent([first, resent, changed]));
    expect(failuresOf(response)).toEqual(ids(changed));
    expect(orders.calls).toHaveLength(1);
    // Its record stays INPROGRESS until the lease: a delivery in another invocation meets it as any other consumer would.
    const another = sqsRecord({ orderId: 'o-2', amount: 5 });
    expect(failuresOf(await orders.invoke(sqsEvent([redelivered(resent), another])))).toEqual(ids(resent));
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2']);
  });

  test('… also when a conflicting message (PAYLOAD_MISMATCH) comes between them: the conflict is its own, the duplicate after it still follows the success before it', async () => {
    const flaky = failingOnce(
      'complete',
      Object.assign(new Error('Throughput exceeds the current capacity'), { name: 'ProvisionedThroughputExceededException' }),
    );
    const orders = consumer<Order>(() => 'charged', {
      store: flaky,
      key: (order) => order.orderId,
      fingerprint: (order) => order.amount,
      throwOnFullBatchFailure: false,
    });
    const first = sqsRecord({ orderId: 'o-1', amount: 100 });
    const changed = sqsRecord({ orderId: 'o-1', amount: 999 });
    const resent = sqsRecord({ orderId: 'o-1', amount: 100 });
    // Reported failed, the resend would come back after its visibility timeout, past the lease, and charge again.
    expect(failuresOf(await orders.invoke(sqsEvent([first, changed, resent])))).toEqual(ids(changed));
    expect(orders.calls).toHaveLength(1);
    expect((await records()).map((item) => item.status?.S)).toEqual(['INPROGRESS']);
  });

  test("a record function that throws RESPONSE_NOT_STORED itself (a nested idempotent call's) is reported failed: its own work is not done", async () => {
    // The charge's result (a BigInt) cannot be stored: a repeated charge rejects with RESPONSE_NOT_STORED.
    const { logger, omitted } = collectingLogger();
    const charge = makeIdempotent(async (order: Order) => BigInt(order.amount ?? 0), {
      store,
      name: 'charge',
      key: (order) => order.orderId,
      now: clock,
      logger,
    });
    const warehouseDown = new Set(['o-1']);
    const shipped: string[] = [];
    const orders = consumer<Order>(async (order) => {
      await charge(order);
      if (warehouseDown.delete(order.orderId)) throw new Error('warehouse unavailable');
      shipped.push(order.orderId);
    });
    const message = sqsRecord({ orderId: 'o-1', amount: 100 });
    const other = sqsRecord({ orderId: 'o-2', amount: 5 });
    expect(failuresOf(await orders.invoke(sqsEvent([message, other])))).toEqual(ids(message));
    // Redelivered, the record function runs again and fails at the charge: never acknowledged unshipped.
    expect(failuresOf(await orders.invoke(sqsEvent([redelivered(message), sqsRecord({ orderId: 'o-3', amount: 7 })])))).toEqual(ids(message));
    expect(shipped.sort()).toEqual(['o-2', 'o-3']);
    expect(orders.calls.map(orderIdOf)).toEqual(expect.arrayContaining(['o-1', 'o-1']));
    // Each charge warned once, as its record completed without its result; the repeated one completed nothing.
    expect(
      omitted()
        .map((line) => [line.message, line.recordId])
        .sort(),
    ).toEqual(['o-1', 'o-2', 'o-3'].map((id) => [omittedMessage('json'), recordId('charge', id)]));
  });

  /** An atomic consumer whose record function counts each order's charge in `transaction()`, on the idempotency table. */
  function atomicCharges<T extends Order>(fn: (order: T) => unknown, options: Partial<IdempotentBatchOptions<T>> = {}) {
    const logger = quiet();
    const orders = consumer<T>(
      (order) => {
        transaction().update({
          TableName: tableName,
          Key: { id: `charges-${order.orderId}` },
          UpdateExpression: 'ADD n :one',
          ExpressionAttributeValues: { ':one': 1 },
        });
        return fn(order);
      },
      { atomic: true, key: (order) => order.orderId, throwOnFullBatchFailure: false, logger, ...options },
    );
    return { ...orders, logger, charges: async (orderId: string) => (await readItem(client, tableName, `charges-${orderId}`))?.n?.N };
  }

  test("atomic: true. In-batch duplicates run the pure record function again, and their commits meet the first one's record: its writes apply once, none is reported failed", async () => {
    const orders = atomicCharges(() => 'charged');
    const first = sqsRecord({ orderId: 'o-1', amount: 100 });
    const resent = sqsRecord({ orderId: 'o-1', amount: 100 });
    expect(failuresOf(await orders.invoke(sqsEvent([first, resent])))).toEqual([]);
    expect(orders.calls).toHaveLength(2);
    expect(await orders.charges('o-1')).toBe('1');
  });

  test('atomic: true. A conflicting message (PAYLOAD_MISMATCH, met at its commit) between two duplicates is its own: the duplicate after it replays the success before it', async () => {
    const orders = atomicCharges(() => 'charged', { fingerprint: (order) => order.amount });
    const first = sqsRecord({ orderId: 'o-1', amount: 100 });
    const changed = sqsRecord({ orderId: 'o-1', amount: 999 });
    const resent = sqsRecord({ orderId: 'o-1', amount: 100 });
    // Reported failed with its conflicting twin, the resend would come back with it on every redelivery, and reach the dead-letter queue done.
    expect(failuresOf(await orders.invoke(sqsEvent([first, changed, resent])))).toEqual(ids(changed));
    expect(orders.logger.lines.map((line) => JSON.parse(line).reason)).toEqual([
      'PAYLOAD_MISMATCH: This idempotency key was already used with a different payload.',
    ]);
    expect(await orders.charges('o-1')).toBe('1');
  });

  test("atomic: true. A duplicate whose run fails on the first one's effect, whose result could not be stored (RESPONSE_NOT_STORED), succeeds: the error is the record's, not the function's", async () => {
    const shipped = new Set<string>();
    const orders = atomicCharges((order) => {
      if (shipped.has(order.orderId)) throw new Error('already shipped');
      shipped.add(order.orderId);
      return 10n; // JSON cannot hold it: the record completes without it
    });
    const first = sqsRecord({ orderId: 'o-big' });
    const resent = sqsRecord({ orderId: 'o-big' });
    expect(failuresOf(await orders.invoke(sqsEvent([first, resent])))).toEqual([]);
    expect(failuresOf(await orders.invoke(sqsEvent([redelivered(resent)])))).toEqual([]);
    expect(orders.calls).toHaveLength(3);
    expect(await orders.charges('o-big')).toBe('1');
  });

  test("atomic: true. So does one whose run fails with a final error (isFinalError): the first one's record, whose result could not be stored, answers it", async () => {
    const shipped = new Set<string>();
    const orders = atomicCharges(
      (order) => {
        if (shipped.has(order.orderId)) throw new Error('already shipped');
        shipped.add(order.orderId);
        return 10n; // JSON cannot hold it: the record completes without it
      },
      { isFinalError: () => true },
    );
    const first = sqsRecord({ orderId: 'o-big' });
    const resent = sqsRecord({ orderId: 'o-big' });
    // Reported failed, the done message would come back on every redelivery and reach the dead-letter queue.
    expect(failuresOf(await orders.invoke(sqsEvent([first, resent])))).toEqual([]);
    expect(failuresOf(await orders.invoke(sqsEvent([redelivered(resent)])))).toEqual([]);
    expect(orders.calls).toHaveLength(3);
    expect(await orders.charges('o-big')).toBe('1');
  });
});

describe('event shapes AWS delivers that the other tests do not', () => {
  test('Kinesis and DynamoDB Streams tumbling windows: every response gives the window its state back, which Lambda requires (without it the invocation counts as failed)', async () => {
    const { invoke, calls } = consumer<Order>((order) => {
      if (order.orderId === 'o-bad') throw new Error('declined');
      return order.orderId;
    });
    const window = { start: '2026-12-02T07:04:00Z', end: '2026-12-02T07:06:00Z' };
    const windowed = (records: KinesisStreamRecord[], state: Record<string, unknown>, isFinalInvokeForWindow = false) =>
      ({
        Records: records,
        window,
        state,
        shardId: 'shardId-000000000003',
        eventSourceARN: records[0]?.eventSourceARN,
        isFinalInvokeForWindow,
        isWindowTerminatedEarly: false,
      }) as KinesisStreamEvent;
    const first = [kinesisRecord({ orderId: 'o-1' }, 1), kinesisRecord({ orderId: 'o-2' }, 2)];
    expect(await invoke(windowed(first, { orders: 7 }))).toEqual({ batchItemFailures: [], state: { orders: 7 } });
    // A redelivery replays, and still answers with the state.
    expect(await invoke(windowed(first, { orders: 7 }))).toEqual({ batchItemFailures: [], state: { orders: 7 } });
    const failing = [kinesisRecord({ orderId: 'o-3' }, 3), kinesisRecord({ orderId: 'o-bad' }, 4), kinesisRecord({ orderId: 'o-5' }, 5)];
    expect(await invoke(windowed(failing, { orders: 9 }))).toEqual({ batchItemFailures: [{ itemIdentifier: kinesisSequence(4) }], state: { orders: 9 } });
    // The window's last invocation may bring no records.
    expect(await invoke(windowed([], { orders: 10 }, true))).toEqual({ batchItemFailures: [], state: { orders: 10 } });
    // A DynamoDB Streams window too; an event without a window gets no state member.
    const change = streamRecord(6, 'o-6', 'PAID');
    const streams = consumer<StreamChange>(async () => undefined);
    expect(await streams.invoke({ Records: [change], window, state: {} } as DynamoDBStreamEvent)).toEqual({ batchItemFailures: [], state: {} });
    expect(await streams.invoke({ Records: [change] })).toStrictEqual({ batchItemFailures: [] });
    expect(calls.map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-3', 'o-bad']);
  });

  test('a tumbling window whose event brings no state object (null, absent) still gets a `state` back, an empty one: without it Lambda fails the invocation', async () => {
    const { invoke, calls } = consumer<Order>((order) => order.orderId);
    const window = { start: '2026-12-02T07:04:00Z', end: '2026-12-02T07:06:00Z' };
    const records = [kinesisRecord({ orderId: 'o-1' }, 1)];
    expect(await invoke({ Records: records, window, state: null } as unknown as KinesisStreamEvent)).toStrictEqual({ batchItemFailures: [], state: {} });
    // The replay, and the window's last invocation without records, answer the same.
    expect(await invoke({ Records: records, window } as unknown as KinesisStreamEvent)).toStrictEqual({ batchItemFailures: [], state: {} });
    expect(await invoke({ Records: [], window, state: null, isFinalInvokeForWindow: true } as unknown as KinesisStreamEvent)).toStrictEqual({
      batchItemFailures: [],
      state: {},
    });
    expect(calls.map(orderIdOf)).toEqual(['o-1']);
  });

  test('a tumbling window aggregated as docs/batch.md shows counts each record once, across a failure and the invocation that resumes from it', async () => {
    let declined = false;
    const { handler: orders, calls } = consumer<Order>(
      (order) => {
        if (order.orderId !== 'o-2' || declined) return order.orderId;
        declined = true;
        throw new PaymentDeclined('card declined');
      },
      { key: (order) => order.orderId },
    );
    // The wrapper of docs/batch.md, "Aggregating a tumbling window".
    const handler = async (event: KinesisStreamEvent & { state?: { shipped?: number } | null }, context = consumerContext()) => {
      const { batchItemFailures } = await orders(event, context);
      const failedAt = event.Records.findIndex((record) => record.kinesis.sequenceNumber === batchItemFailures[0]?.itemIdentifier);
      const done = failedAt === -1 ? event.Records.length : failedAt;
      return { batchItemFailures, state: { ...event.state, shipped: (event.state?.shipped ?? 0) + done } };
    };
    const window = { start: '2026-12-02T07:04:00Z', end: '2026-12-02T07:06:00Z' };
    const batch = [kinesisRecord({ orderId: 'o-1' }, 1), kinesisRecord({ orderId: 'o-2' }, 2), kinesisRecord({ orderId: 'o-3' }, 3)];
    const first = await handler({ Records: batch, window, state: null } as KinesisStreamEvent);
    expect(first).toEqual({ batchItemFailures: [{ itemIdentifier: kinesisSequence(2) }], state: { shipped: 1 } });
    // Lambda invokes again from the failure, with the state the answer gave.
    const resumed = await handler({ Records: batch.slice(1), window, state: first.state } as KinesisStreamEvent);
    expect(resumed).toEqual({ batchItemFailures: [], state: { shipped: 3 } });
    expect(calls.map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-2', 'o-3']);
  });

  test('DynamoDB Streams: REMOVE (old image only) and KEYS_ONLY (no images) records reach the handler with undefined images, each once', async () => {
    const { invoke, calls } = consumer<StreamChange>(async () => undefined);
    const removed = streamRecord(1, 'o-gone', 'PAID');
    removed.eventName = 'REMOVE';
    delete removed.dynamodb!.NewImage;
    const keysOnly = streamRecord(2, 'o-keys', 'PAID', 'INSERT');
    delete keysOnly.dynamodb!.NewImage;
    keysOnly.dynamodb!.StreamViewType = 'KEYS_ONLY';
    expect(failuresOf(await invoke({ Records: [removed, keysOnly] }))).toEqual([]);
    expect(failuresOf(await invoke({ Records: [removed, keysOnly] }))).toEqual([]);
    expect(calls.map((call) => call.message)).toEqual([
      { eventName: 'REMOVE', keys: { pk: 'ORDER#o-gone' }, newImage: undefined, oldImage: expect.objectContaining({ status: 'PENDING' }) },
      { eventName: 'INSERT', keys: { pk: 'ORDER#o-keys' }, newImage: undefined, oldImage: undefined },
    ]);
  });

  test("DynamoDB Streams: a TTL deletion is a REMOVE the record function tells by the raw record's userIdentity; NEW_IMAGE and OLD_IMAGE views bring one image each", async () => {
    const { invoke, calls } = consumer<StreamChange>(async () => undefined);
    const expired = streamRecord(1, 'o-expired', 'PAID');
    expired.eventName = 'REMOVE';
    delete expired.dynamodb!.NewImage;
    Object.assign(expired, { userIdentity: { type: 'Service', principalId: 'dynamodb.amazonaws.com' } });
    const newOnly = streamRecord(2, 'o-new', 'PAID');
    delete newOnly.dynamodb!.OldImage;
    newOnly.dynamodb!.StreamViewType = 'NEW_IMAGE';
    const oldOnly = streamRecord(3, 'o-old', 'PAID');
    delete oldOnly.dynamodb!.NewImage;
    oldOnly.dynamodb!.StreamViewType = 'OLD_IMAGE';
    expect(failuresOf(await invoke({ Records: [expired, newOnly, oldOnly] }))).toEqual([]);
    expect(calls.map((call) => (call.record as DynamoDBRecord & { userIdentity?: { principalId: string } }).userIdentity?.principalId)).toEqual([
      'dynamodb.amazonaws.com',
      undefined,
      undefined,
    ]);
    expect(
      calls.map(({ message }) => [(message as StreamChange).eventName, (message as StreamChange).newImage?.status, (message as StreamChange).oldImage?.status]),
    ).toEqual([
      ['REMOVE', undefined, 'PENDING'],
      ['MODIFY', 'PAID', undefined],
      ['MODIFY', undefined, 'PENDING'],
    ]);
  });

  test('a handler that throws something that is not an Error fails its record and frees it; one that returns undefined succeeds and replays', async () => {
    const thrown = new Set(['o-1']);
    const orders = consumer<Order>((order) => {
      if (thrown.delete(order.orderId)) throw 'declined'; // a string, not an Error
      return undefined;
    });
    const batch = [sqsRecord({ orderId: 'o-1' }), sqsRecord({ orderId: 'o-2' })];
    expect(failuresOf(await orders.invoke(sqsEvent(batch)))).toEqual(ids(batch[0]!));
    expect((await records()).map((item) => item.status?.S)).toEqual(['COMPLETED']);
    expect(failuresOf(await orders.invoke(sqsEvent(batch.map(redelivered))))).toEqual([]);
    expect(orders.calls.map(orderIdOf).sort()).toEqual(['o-1', 'o-1', 'o-2']);
    // Every record failed with a thrown string: the AggregateError carries it as it was thrown.
    const failing = consumer<Order>(() => {
      throw 'declined';
    });
    await expect(failing.invoke(sqsEvent([sqsRecord({ orderId: 'o-3' })]))).rejects.toMatchObject({ errors: ['declined'] });
    expect(await records()).toHaveLength(2);
  });
});

describe('failures of the bookkeeping around a failed record', () => {
  test("when the release after a failure fails, the record is still reported failed with the handler's own error, met IN_PROGRESS until its lease ends, and run again after it", async () => {
    let now = clock();
    const stuck = failingOnce('release', Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }));
    const failing = new Set(['o-1']);
    const orders = consumer<Order>(
      (order) => {
        if (failing.delete(order.orderId)) throw new PaymentDeclined('provider unavailable');
        return 'charged';
      },
      { store: stuck, now: () => now },
    );
    const message = sqsRecord({ orderId: 'o-1' });
    const error = await orders.invoke(sqsEvent([message])).catch((failure: unknown) => failure);
    expect((error as AggregateError).errors).toEqual([expect.any(PaymentDeclined)]);
    expect((await records()).map((item) => item.status?.S)).toEqual(['INPROGRESS']);
    // Redelivered within the lease (two minutes: the invocation's deadline): reported, not run.
    expect(failuresOf(await orders.invoke(sqsEvent([redelivered(message), sqsRecord({ orderId: 'o-2' })])))).toEqual(ids(message));
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2']);
    now += 120_000; // the lease's last millisecond: leaseSeconds (60 s) past, the deadline not
    expect(failuresOf(await orders.invoke(sqsEvent([redelivered(message), sqsRecord({ orderId: 'o-3' })])))).toEqual(ids(message));
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-3']);
    now += 1;
    expect(failuresOf(await orders.invoke(sqsEvent([redelivered(message)])))).toEqual([]);
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-3', 'o-1']);
  });

  test('a stored final error (isFinalError) fails the record, its in-batch duplicate and every redelivery, without running again', async () => {
    const orders = consumer<Order>(
      () => {
        throw new PaymentDeclined('card declined');
      },
      { isFinalError: (error) => error instanceof PaymentDeclined, throwOnFullBatchFailure: false },
    );
    const message = sqsRecord({ orderId: 'o-1' });
    const resent = sqsRecord({ orderId: 'o-1' });
    expect(failuresOf(await orders.invoke(sqsEvent([message, resent])))).toEqual(ids(message, resent));
    expect(failuresOf(await orders.invoke(sqsEvent([redelivered(message)])))).toEqual(ids(message));
    expect(orders.calls).toHaveLength(1);
    expect((await records()).map((item) => item.status?.S)).toEqual(['COMPLETED']);
  });
});

test('Kinesis: a KPL-aggregated record is not de-aggregated: it is a poison record, reported, logged as aggregated, and the shard stops at it', async () => {
  const logger = quiet();
  const orders = consumer<Order>(() => 'ok', { logger });
  // The KPL aggregation format starts with these magic bytes, then a protobuf message.
  const aggregated = kinesisRecord('', 2);
  aggregated.kinesis.data = Buffer.concat([Buffer.from([0xf3, 0x89, 0x9a, 0xc2]), Buffer.from('\u000a\u0001k\u001a\u0004\u0008\u0000\u001a\u0000')]).toString(
    'base64',
  );
  const batch = [kinesisRecord({ orderId: 'o-1' }, 1), aggregated, kinesisRecord({ orderId: 'o-3' }, 3)];
  expect(failuresOf(await orders.invoke({ Records: batch }))).toEqual([kinesisSequence(2)]);
  expect(orders.calls.map(orderIdOf)).toEqual(['o-1']);
  // Named for what it is (its bytes are no UTF-8 either), so an operator looks at the producer, not at an encoding.
  expect(JSON.parse(logger.lines[0]!)).toMatchObject({
    itemIdentifier: kinesisSequence(2),
    reason: 'unparseable payload: a KPL-aggregated record (de-aggregate it in the `parse` option)',
  });
});

test('Kinesis: gzip-compressed data (what a CloudWatch Logs subscription writes) is poison named for what it is, and a `parse` that decompresses it runs each record once', async () => {
  const logger = quiet();
  const orders = consumer<Order>(() => 'ok', { logger });
  const gzipped = (n: number, order: Order) => {
    const record = kinesisRecord('', n);
    record.kinesis.data = gzipSync(JSON.stringify(order)).toString('base64');
    return record;
  };
  const batch = [kinesisRecord({ orderId: 'o-1' }, 1), gzipped(2, { orderId: 'o-2' }), gzipped(3, { orderId: 'o-3' })];
  expect(failuresOf(await orders.invoke({ Records: batch }))).toEqual([kinesisSequence(2)]);
  expect(orders.calls.map(orderIdOf)).toEqual(['o-1']);
  // Its bytes are no UTF-8 either; named for what they are, the log points at the compression, not at an encoding.
  expect(JSON.parse(logger.lines[0]!)).toMatchObject({
    itemIdentifier: kinesisSequence(2),
    reason: 'unparseable payload: gzip-compressed data, as a CloudWatch Logs subscription writes it (decompress it in the `parse` option)',
  });
  const decompressing = consumer<Order>(() => 'ok', {
    parse: (record) => JSON.parse(gunzipSync(Buffer.from((record as KinesisStreamRecord).kinesis.data, 'base64')).toString('utf8')) as Order,
  });
  expect(failuresOf(await decompressing.invoke({ Records: batch.slice(1) }))).toEqual([]);
  expect(decompressing.calls.map(orderIdOf)).toEqual(['o-2', 'o-3']);
});

test('Kinesis: data that is not UTF-8 (JSON a producer wrote in Latin-1) is poison, never decoded lossily: two messages that differ only in such bytes are never taken for one', async () => {
  const logger = quiet();
  const orders = consumer<{ customer: string }>(() => 'ok', { logger });
  const latin1 = (n: number, customer: string) => {
    const record = kinesisRecord('', n);
    record.kinesis.data = Buffer.from(JSON.stringify({ customer }), 'latin1').toString('base64');
    return record;
  };
  // Decoded with replacement characters, both would read {"customer":"Jos\ufffd"}: one key, the second never run.
  const batch = [kinesisRecord({ orderId: 'o-1' }, 1), latin1(2, 'Jos\u00e9'), latin1(3, 'Jos\u00e8')];
  expect(failuresOf(await orders.invoke({ Records: batch }))).toEqual([kinesisSequence(2)]);
  expect(orders.calls).toHaveLength(1);
  expect(JSON.parse(logger.lines[0]!)).toMatchObject({ itemIdentifier: kinesisSequence(2), reason: 'unparseable payload: data that is not UTF-8' });
  expect(logger.lines[0]).not.toMatch(/Jos/);
});

test('Kinesis: data that starts with a UTF-8 byte order mark (as .NET writes it) is the same message as without it: one key, one fingerprint, one run', async () => {
  const orders = consumer<Order>(() => 'ok', { key: (order) => order.orderId, fingerprint: (order) => order });
  const withBom = (n: number) => {
    const record = kinesisRecord('', n);
    record.kinesis.data = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ orderId: 'o-1', amount: 10 }))]).toString('base64');
    return record;
  };
  expect(failuresOf(await orders.invoke({ Records: [withBom(1)] }))).toEqual([]);
  // The producer's retry without the mark replays: a different fingerprint would be PAYLOAD_MISMATCH, a different key a second run.
  expect(failuresOf(await orders.invoke({ Records: [kinesisRecord({ orderId: 'o-1', amount: 10 }, 2), withBom(3)] }))).toEqual([]);
  expect(orders.calls.map((call) => call.message)).toEqual([{ orderId: 'o-1', amount: 10 }]);
  expect(await records()).toHaveLength(1);
});

test('SQS: a body that starts with a byte order mark (U+FEFF) is the same message as without it: one key, one fingerprint, one run', async () => {
  const orders = consumer<Order>(() => 'ok', { key: (order) => order.orderId, fingerprint: (order) => order });
  const text = JSON.stringify({ orderId: 'o-1', amount: 10 });
  expect(failuresOf(await orders.invoke(sqsEvent([sqsRecord(`\uFEFF${text}`)])))).toEqual([]);
  expect(failuresOf(await orders.invoke(sqsEvent([sqsRecord(text), sqsRecord(`\uFEFF${text}`)])))).toEqual([]);
  expect(orders.calls.map((call) => call.message)).toEqual([{ orderId: 'o-1', amount: 10 }]);
  expect(await records()).toHaveLength(1);
});

test('a byte order mark is only dropped where the library decodes the record itself: a `parse` option receives the data as sent', async () => {
  const seen: string[] = [];
  const orders = consumer<Order>(() => 'ok', {
    parse: (record) => {
      const body = (record as SQSRecord).body;
      seen.push(body);
      return JSON.parse(body.replace(/^\uFEFF/, '')) as Order;
    },
  });
  expect(failuresOf(await orders.invoke(sqsEvent([sqsRecord('\uFEFF{"orderId":"o-1"}')])))).toEqual([]);
  expect(seen).toEqual(['\uFEFF{"orderId":"o-1"}']);
});

test('FIFO: twins in two groups, in crossed order, run once each and every record succeeds; a twin of a failure in another group fails unrun', async () => {
  const failing = new Set(['o-bad']);
  const orders = consumer<Order>(async (order) => {
    await turns(3);
    if (failing.delete(order.orderId)) throw new PaymentDeclined('declined');
  });
  const a = [sqsRecord({ orderId: 'o-1' }, { groupId: 'a' }), sqsRecord({ orderId: 'o-2' }, { groupId: 'a' })];
  const b = [sqsRecord({ orderId: 'o-2' }, { groupId: 'b' }), sqsRecord({ orderId: 'o-1' }, { groupId: 'b' })];
  const c = [sqsRecord({ orderId: 'o-bad' }, { groupId: 'c' })];
  const d = [
    sqsRecord({ orderId: 'o-3' }, { groupId: 'd' }),
    sqsRecord({ orderId: 'o-bad' }, { groupId: 'd' }),
    sqsRecord({ orderId: 'o-4' }, { groupId: 'd' }),
  ];
  const response = await orders.invoke(sqsEvent([a[0]!, b[0]!, c[0]!, d[0]!, a[1]!, b[1]!, d[1]!, d[2]!]));
  expect(failuresOf(response)).toEqual(ids(c[0]!, d[1]!, d[2]!));
  expect(orders.calls.map(orderIdOf).sort()).toEqual(['o-1', 'o-2', 'o-3', 'o-bad']);
});

describe("near the invocation's deadline", () => {
  /**
   * A consumer on a clock that moves only when a record takes time: each record takes `millis`, and
   * the invocation has `remaining` left. Lambda ends an invocation at its deadline as a failure of
   * the whole batch: the records done come back, the shard's retry quota is spent.
   */
  function timed(millis: number, options: Partial<IdempotentBatchOptions<Order>> = {}) {
    const time = manualClock(SENT);
    const orders = consumer<Order>(
      (order) => {
        time.advance(millis);
        return order.orderId;
      },
      { now: time.now, ...options },
    );
    const invoke = (event: BatchEvent | PipesBatchEvent, remaining: number) =>
      orders.handler(event, timedContext({ functionName: 'order-consumer', remainingMillis: remaining, now: time.now }));
    return { ...orders, invoke };
  }

  test('a stream record is not started with less time left than the slowest record took: the batch answers, and Lambda resumes from it', async () => {
    const orders = timed(3_000);
    const batch = [1, 2, 3, 4, 5].map((n) => kinesisRecord({ orderId: `o-${n}` }, n));
    // 10 s: three records of 3 s fit, the fourth would run into the deadline.
    expect(await orders.invoke({ Records: batch }, 10_000)).toEqual({ batchItemFailures: [{ itemIdentifier: kinesisSequence(4) }] });
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-3']);
    expect(failuresOf(await orders.invoke({ Records: batch.slice(3) }, 10_000))).toEqual([]);
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-3', 'o-4', 'o-5']);
  });

  test('a record is not started when, run as long as the slowest, it would leave less than the time kept for the answer (a tenth of the time left, at most 100 ms): middy answers 5 ms before the deadline', async () => {
    const orders = timed(3_000);
    const batch = [1, 2, 3].map((n) => kinesisRecord({ orderId: `o-${n}` }, n));
    // 3,003 ms left for the third record: run as long as the others, it would end 3 ms before the
    // deadline, after middy's early timeout had failed the whole batch, with no time to answer.
    expect(await orders.invoke({ Records: batch }, 9_003)).toEqual({ batchItemFailures: [{ itemIdentifier: kinesisSequence(3) }] });
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2']);
    // With 3,400 ms left for it, it starts: it ends 400 ms before the deadline.
    const later = [4, 5, 6].map((n) => kinesisRecord({ orderId: `o-${n}` }, n));
    expect(failuresOf(await orders.invoke({ Records: later }, 9_400))).toEqual([]);
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-4', 'o-5', 'o-6']);
  });

  test('a record is not started when, run as long as the slowest, it would end just as the time kept for the answer begins: more time than that must be left', async () => {
    const orders = timed(3_000);
    const batch = [1, 2, 3].map((n) => kinesisRecord({ orderId: `o-${n}` }, n));
    // 3,100 ms left for the third record: 100 ms are kept for the answer, leaving 3,000 ms, no more than each record took.
    expect(await orders.invoke({ Records: batch }, 9_100)).toEqual({ batchItemFailures: [{ itemIdentifier: kinesisSequence(3) }] });
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2']);
  });

  test('the warning for a stream batch cut short counts every record not started, the one reported and those after it', async () => {
    const logger = quiet();
    const orders = timed(3_000, { logger });
    const batch = [1, 2, 3, 4, 5].map((n) => kinesisRecord({ orderId: `o-${n}` }, n));
    expect(failuresOf(await orders.invoke({ Records: batch }, 10_000))).toEqual([kinesisSequence(4)]);
    expect(logger.lines.map((line) => JSON.parse(line) as unknown)).toEqual([
      expect.objectContaining({ level: 'WARN', notStarted: 2, message: expect.stringContaining('deadline') }),
    ]);
  });

  test('a record is not started with less time left than the slowest record of the batch took, even after faster ones', async () => {
    const time = manualClock(SENT);
    // Each order takes its amount in milliseconds.
    const orders = consumer<Order>(
      (order) => {
        time.advance(Number(order.amount));
        return order.orderId;
      },
      { now: time.now },
    );
    const batch = [4_000, 1_000, 1_000, 1_000, 1_000].map((amount, n) => kinesisRecord({ orderId: `o-${n + 1}`, amount }, n + 1));
    const context = timedContext({ functionName: 'order-consumer', remainingMillis: 10_000, now: time.now });
    // After 6 s, 4 s are left: no more than the first record took, so the fourth does not start.
    expect(failuresOf(await orders.handler({ Records: batch }, context))).toEqual([kinesisSequence(4)]);
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-3']);
  });

  test('through an EventBridge pipe, the stream records not started are named, every one, by eventID', async () => {
    const orders = timed(3_000);
    const batch = [1, 2, 3, 4, 5].map((n) => piped(kinesisRecord({ orderId: `o-${n}` }, n)));
    expect(failuresOf(await orders.invoke(batch, 10_000))).toEqual(batch.slice(3).map((record) => record.eventID));
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-3']);
  });

  test('queue records not started in time are reported (FIFO: with the rest of their group); the started ones are done and never run again', async () => {
    const logger = quiet();
    const standard = timed(3_000, { concurrency: 1, logger });
    const batch = [1, 2, 3, 4, 5].map((n) => sqsRecord({ orderId: `o-${n}` }));
    expect(failuresOf(await standard.invoke(sqsEvent(batch), 7_000))).toEqual(ids(...batch.slice(2)));
    expect(standard.calls.map(orderIdOf)).toEqual(['o-1', 'o-2']);
    expect(logger.lines.map((line) => JSON.parse(line) as unknown)).toEqual([
      expect.objectContaining({ level: 'WARN', notStarted: 3, message: expect.stringContaining('deadline') }),
    ]);
    expect(failuresOf(await standard.invoke(sqsEvent(batch.map(redelivered)), 60_000))).toEqual([]);
    expect(standard.calls.map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-3', 'o-4', 'o-5']);

    const fifoLogger = quiet();
    const fifo = timed(3_000, { concurrency: 1, logger: fifoLogger });
    const a = [1, 2, 3].map((n) => sqsRecord({ orderId: `a-${n}` }, { groupId: 'a' }));
    const b = [sqsRecord({ orderId: 'b-1' }, { groupId: 'b' })];
    expect(failuresOf(await fifo.invoke(sqsEvent([a[0]!, b[0]!, a[1]!, a[2]!]), 7_000))).toEqual(ids(b[0]!, a[2]!));
    expect(fifo.calls.map(orderIdOf)).toEqual(['a-1', 'a-2']);
    // Each group's first record not started counts, with the rest of its group.
    expect(fifoLogger.lines.map((line) => JSON.parse(line) as unknown)).toEqual([expect.objectContaining({ level: 'WARN', notStarted: 2 })]);
  });

  test('a queue batch of 10,000 cut short by the deadline reports the records not started in one pass, without judging each against the time left (one by one, they held the event loop past the deadline, with the records still running)', async () => {
    const logger = quiet();
    const time = manualClock(SENT);
    // Each record takes 3 s, once all 10 have started side by side (whatever the order in which the
    // store answers their claims): together they use up the 7 s left.
    let running = 0;
    let allStarted!: () => void;
    const started = new Promise<void>((resolve) => {
      allStarted = resolve;
    });
    const orders = consumer<Order>(
      async (order) => {
        if (++running === 10) allStarted();
        await started;
        time.advance(3_000);
        return order.orderId;
      },
      { now: time.now, logger },
    );
    const batch = Array.from({ length: 10_000 }, (_, n) => sqsRecord({ orderId: `o-${n + 1}` }));
    const context = timedContext({ functionName: 'order-consumer', remainingMillis: 7_000, now: time.now });
    const timeLeft = context.getRemainingTimeInMillis;
    let reads = 0;
    context.getRemainingTimeInMillis = () => {
      reads += 1;
      return timeLeft();
    };
    const answer = await orders.handler(sqsEvent(batch), context);
    expect(orders.calls).toHaveLength(10);
    expect(failuresOf(answer)).toEqual(ids(...batch.slice(10)));
    expect(logger.lines.map((line) => JSON.parse(line) as unknown)).toEqual([expect.objectContaining({ level: 'WARN', notStarted: 9_990 })]);
    // A read for each record not started (9,990) is the work that, with an error built for each,
    // held the event loop for 100-300 ms after the cut-off on a batch of this size.
    expect(reads).toBeLessThan(1_000);
  });

  test('a message received twice in one batch, its first copy done and its second not started by the deadline, is done: not named, and the batch is not thrown back', async () => {
    const logger = quiet();
    const standard = timed(3_000, { concurrency: 1, logger });
    const [a, b] = [1, 2].map((n) => sqsRecord({ orderId: `o-${n}` }));
    // 7 s: a and b run, the second copy of a is not started with 1 s left. Its message is done.
    expect(await standard.invoke(sqsEvent([a!, b!, redelivered(a!)]), 7_000)).toStrictEqual({ batchItemFailures: [] });
    // Nothing is reported failed, so no warning counts the copy as a record not started.
    expect(logger.lines).toEqual([]);
    // Alone with its second copy, the message done is no batch in which no record succeeded.
    const c = sqsRecord({ orderId: 'o-3' });
    expect(await standard.invoke(sqsEvent([c, redelivered(c)]), 4_000)).toStrictEqual({ batchItemFailures: [] });
    expect(standard.calls.map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-3']);
  });

  test('a FIFO group cut short by the deadline counts every record of it not started in the warning, not only the first', async () => {
    const logger = quiet();
    const fifo = timed(3_000, { concurrency: 1, logger });
    const a = [1, 2].map((n) => sqsRecord({ orderId: `a-${n}` }, { groupId: 'a' }));
    const b = [1, 2, 3].map((n) => sqsRecord({ orderId: `b-${n}` }, { groupId: 'b' }));
    // Group a takes 6 s of the 7 s left: group b does not start.
    expect(failuresOf(await fifo.invoke(sqsEvent([...a, ...b]), 7_000))).toEqual(ids(...b));
    expect(fifo.calls.map(orderIdOf)).toEqual(['a-1', 'a-2']);
    expect(logger.lines.map((line) => JSON.parse(line) as unknown)).toEqual([expect.objectContaining({ level: 'WARN', notStarted: 3 })]);
  });

  test('a single record left unstarted by the deadline is warned of too', async () => {
    const logger = quiet();
    const orders = timed(3_000, { logger });
    const batch = [1, 2, 3, 4].map((n) => kinesisRecord({ orderId: `o-${n}` }, n));
    expect(failuresOf(await orders.invoke({ Records: batch }, 10_000))).toEqual([kinesisSequence(4)]);
    expect(logger.lines.map((line) => JSON.parse(line) as unknown)).toEqual([
      expect.objectContaining({ level: 'WARN', notStarted: 1, message: expect.stringContaining('deadline') }),
    ]);
  });

  test('with records running side by side, one still running counts for as long as it has run: no record starts with less time left than that', async () => {
    const time = manualClock(SENT);
    const calls: string[] = [];
    const othersDecided = gate();
    let completed = 0;
    // Once the fifth short record is done, the other worker decides on the next one within the same
    // turn of the event loop; the slow record finishes only after that turn.
    const counting: IdempotencyStore = {
      claim: (request) => store.claim(request),
      release: (request) => store.release(request),
      complete: async (request) => {
        const result = await store.complete(request);
        if (++completed === 5) void flush().then(() => othersDecided.open());
        return result;
      },
    };
    const handler = idempotentBatch<Order>(
      async (order) => {
        calls.push(order.orderId);
        if (order.orderId === 'slow') await othersDecided.promise;
        else time.advance(1_000);
      },
      { store: counting, now: time.now, concurrency: 2, logger: quiet() },
    );
    const batch = [sqsRecord({ orderId: 'slow' }), ...[1, 2, 3, 4, 5, 6, 7, 8].map((n) => sqsRecord({ orderId: `o-${n}` }))];
    const response = await handler(sqsEvent(batch), timedContext({ functionName: 'order-consumer', remainingMillis: 10_000, now: time.now }));
    // After o-5, 5 s are left and the slow record has run 5 s: a record like it would run into the deadline.
    // (The slow record and o-1 start side by side: their calls come in either order.)
    expect(calls.filter((orderId) => orderId !== 'slow')).toEqual(['o-1', 'o-2', 'o-3', 'o-4', 'o-5']);
    expect(calls).toContain('slow');
    expect(failuresOf(response)).toEqual(ids(...batch.slice(6)));
  });

  test("after a crash mid-batch, a stream's retry replays the records done, reports the one that was running until its lease (the crashed invocation's deadline) ends, then runs it and the rest", async () => {
    const time = manualClock(SENT);
    // 90 s left: the lease ends at this deadline, not after leaseSeconds (60 s by default).
    const context = () => timedContext({ functionName: 'order-consumer', remainingMillis: 90_000, now: time.now });
    const crashed = gate();
    // The first execution environment dies while o-2 runs: its invocation never answers.
    const dying = consumer<Order>(
      (order) => {
        if (order.orderId === 'o-2') crashed.open();
        return order.orderId === 'o-2' ? new Promise(() => undefined) : order.orderId;
      },
      { now: time.now },
    );
    const next = consumer<Order>((order) => order.orderId, { now: time.now });
    const batch = [1, 2, 3].map((n) => kinesisRecord({ orderId: `o-${n}` }, n));
    void dying.handler({ Records: batch }, context());
    await crashed.promise;
    // Lambda retries the batch in a new environment: o-1 replays, o-2 is held by the dead attempt until its deadline.
    time.advance(2_000);
    expect(failuresOf(await next.handler({ Records: batch }, context()))).toEqual([kinesisSequence(2)]);
    time.advance(58_001); // leaseSeconds past: the lease is the deadline, so o-2 is still the dead attempt's
    expect(failuresOf(await next.handler({ Records: batch }, context()))).toEqual([kinesisSequence(2)]);
    time.advance(29_999); // the dead attempt's deadline, 90 s after it began: the lease's last millisecond
    expect(failuresOf(await next.handler({ Records: batch }, context()))).toEqual([kinesisSequence(2)]);
    time.advance(1);
    expect(failuresOf(await next.handler({ Records: batch.slice(1) }, context()))).toEqual([]);
    expect([...dying.calls, ...next.calls].map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-2', 'o-3']);
  });

  test('the first record always starts; a context whose time left reads 0 sets no deadline, as for leases (a stub in a unit test)', async () => {
    const orders = timed(3_000);
    const batch = [1, 2, 3].map((n) => kinesisRecord({ orderId: `o-${n}` }, n));
    expect(failuresOf(await orders.invoke({ Records: batch.slice(0, 1) }, 1))).toEqual([]);
    expect(failuresOf(await orders.invoke({ Records: batch }, 0))).toEqual([]);
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2', 'o-3']);
  });

  test('a context that read time left when the batch began and reads 0 now is past its deadline, not without one: nothing more starts', async () => {
    const orders = timed(3_000);
    const batch = [1, 2, 3].map((n) => kinesisRecord({ orderId: `o-${n}` }, n));
    expect(failuresOf(await orders.invoke({ Records: batch }, 1))).toEqual([kinesisSequence(2)]);
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1']);
  });
});

test('Kinesis: a resend later in the shard replays the first without running again', async () => {
  const orders = consumer<Order>(() => 'ok');
  const batch = [kinesisRecord({ orderId: 'o-1' }, 1), kinesisRecord({ orderId: 'o-2' }, 2), kinesisRecord({ orderId: 'o-1' }, 3)];
  expect(failuresOf(await orders.invoke({ Records: batch }))).toEqual([]);
  expect(orders.calls.map(orderIdOf)).toEqual(['o-1', 'o-2']);
});

describe('the `parse` option: payloads that are not JSON', () => {
  /** An order sent as a CSV line, `orderId,amount`. */
  const csv = (line: string): Order => {
    const [orderId, amount] = line.split(',');
    return { orderId: orderId!, amount: Number(amount) };
  };

  test('SQS text bodies: each parsed message runs once, keyed by what parse returns; a redelivery replays; without parse they are poison', async () => {
    const orders = consumer<Order>(() => 'ok', { parse: (record) => csv((record as SQSRecord).body) });
    const [a, b, twin] = [sqsRecord('o-1,1999'), sqsRecord('o-2,500'), sqsRecord('o-1,1999')];
    expect(failuresOf(await orders.invoke(sqsEvent([a, b, twin])))).toEqual([]);
    expect(failuresOf(await orders.invoke(sqsEvent([redelivered(b)])))).toEqual([]);
    // A standard queue runs its records concurrently: the order of the calls is not the batch's.
    expect(orders.calls.map((call) => call.message as Order).sort((x, y) => x.orderId.localeCompare(y.orderId))).toEqual([
      { orderId: 'o-1', amount: 1999 },
      { orderId: 'o-2', amount: 500 },
    ]);
    expect((await records()).map((item) => item.status?.S)).toEqual(['COMPLETED', 'COMPLETED']);

    const unparsed = consumer<Order>(() => 'ok');
    const text = sqsRecord('o-3,1');
    expect(failuresOf(await unparsed.invoke(sqsEvent([text, sqsRecord({ orderId: 'o-4' })])))).toEqual(ids(text));
    expect(unparsed.calls.map(orderIdOf)).toEqual(['o-4']);
  });

  test('Kinesis binary data: bytes UTF-8 cannot hold stay distinct messages (no lossy decoding); the same bytes resent run once', async () => {
    const bytes = (...values: number[]) => Buffer.from([0x0a, 0x03, ...values]).toString('base64');
    const orders = consumer<Buffer>(() => 'ok', { parse: (record) => Buffer.from((record as KinesisStreamRecord).kinesis.data, 'base64') });
    const batch = [kinesisRecord('', 1), kinesisRecord('', 2), kinesisRecord('', 3)];
    // 0xff and 0xfe are both invalid UTF-8: decoded as text, both would be U+FFFD, one key.
    [batch[0]!.kinesis.data, batch[1]!.kinesis.data, batch[2]!.kinesis.data] = [bytes(0xff), bytes(0xfe), bytes(0xff)];
    expect(failuresOf(await orders.invoke({ Records: batch }))).toEqual([]);
    expect(orders.calls.map((call) => (call.message as Buffer).toString('hex'))).toEqual(['0a03ff', '0a03fe']);
  });

  test('Kinesis binary data is keyed by its bytes: a Buffer and a Uint8Array of the same 1 MB are one message, an empty one is poison', async () => {
    const megabyte = Buffer.alloc(1024 * 1024, 0xa5);
    const view = (record: BatchRecord) => Buffer.from((record as KinesisStreamRecord).kinesis.data, 'base64');
    // The resend's bytes arrive as a Uint8Array over a larger buffer (as a decoder's output may).
    const orders = consumer<Uint8Array>(() => 'ok', {
      parse: (record) => (record === batch[0] ? view(record) : new Uint8Array([0, ...view(record), 0]).subarray(1, -1)),
    });
    const batch = [kinesisRecord('', 1), kinesisRecord('', 2), kinesisRecord('', 3)];
    [batch[0]!.kinesis.data, batch[1]!.kinesis.data] = [megabyte.toString('base64'), megabyte.toString('base64')];
    expect(failuresOf(await orders.invoke({ Records: batch }))).toEqual([batch[2]!.kinesis.sequenceNumber]);
    expect(orders.calls).toHaveLength(1);
    const hash = createHash('sha256')
      .update(JSON.stringify(megabyte.toString('base64')))
      .digest('base64url');
    expect((await records()).map((item) => item.id?.S)).toEqual([`order-consumer#${hash}`]);
  });
});

test('a message of null members is a message, keyed by default; a `key` whose parts are all missing makes it poison', async () => {
  const byDefault = consumer<Order>(() => 'ok');
  const empty = sqsRecord(JSON.stringify({ orderId: null, amount: null }));
  expect(failuresOf(await byDefault.invoke(sqsEvent([empty, sqsRecord({ orderId: 'o-1' })])))).toEqual([]);
  // Parts a message may lack are selected as null: an undefined part would make every message poison.
  const composite = consumer<Order>(() => 'ok', { key: (order) => ({ orderId: order.orderId ?? null, amount: order.amount ?? null }), logger: quiet() });
  const unkeyed = sqsRecord(JSON.stringify({ sentAt: 1 }));
  expect(failuresOf(await composite.invoke(sqsEvent([unkeyed, sqsRecord({ orderId: 'o-2' })])))).toEqual(ids(unkeyed));
  // A standard queue's records run side by side: in either order.
  expect(new Set(byDefault.calls.map(orderIdOf))).toEqual(new Set(['o-1', null]));
  expect(byDefault.calls).toHaveLength(2);
  expect(composite.calls.map(orderIdOf)).toEqual(['o-2']);
});

describe('the `parse` option: what it returns and throws', () => {
  test('a record it throws for is poison: reported with the error type only (never the payload or message), never run, and the others run', async () => {
    const logger = quiet();
    const orders = consumer<Order>(() => 'ok', {
      logger,
      parse: (record) => {
        const body = (record as SQSRecord).body;
        if (body.startsWith('<')) throw new RangeError(`cannot read ${body}`);
        return { orderId: body };
      },
    });
    const xml = sqsRecord('<order id="o-secret"/>');
    const plain = sqsRecord('o-1');
    expect(failuresOf(await orders.invoke(sqsEvent([xml, plain])))).toEqual(ids(xml));
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1']);
    expect(logger.lines).toHaveLength(1);
    expect(JSON.parse(logger.lines[0]!)).toEqual({
      level: 'ERROR',
      message: 'lambda-idempotency: poison record reported as failed',
      itemIdentifier: xml.messageId,
      reason: 'the parse option threw (RangeError)',
    });
    expect(logger.lines[0]).not.toContain('secret');
  });

  test('a record it throws for fails the rest of its FIFO group and stops a stream; with `key` and `fingerprint` a changed CSV line is PAYLOAD_MISMATCH', async () => {
    const text = (record: BatchRecord) =>
      'body' in record ? record.body : Buffer.from((record as KinesisStreamRecord).kinesis.data, 'base64').toString('utf8');
    const orders = consumer<Order>(() => 'ok', {
      parse: (record) => {
        const [orderId, amount] = text(record).split(',');
        if (amount === undefined) throw new SyntaxError('no amount');
        return { orderId: orderId!, amount: Number(amount) };
      },
      key: (order) => order.orderId,
      fingerprint: (order) => order.amount,
    });
    const group = [sqsRecord('o-1,1', { groupId: 'g' }), sqsRecord('o-2', { groupId: 'g' }), sqsRecord('o-3,3', { groupId: 'g' })];
    const other = sqsRecord('o-4,4', { groupId: 'h' });
    expect(failuresOf(await orders.invoke(sqsEvent([...group, other])))).toEqual(ids(group[1]!, group[2]!));
    const stream = [kinesisRecord('o-5,5', 1), kinesisRecord('o-6', 2), kinesisRecord('o-7,7', 3)];
    expect(failuresOf(await orders.invoke({ Records: stream }))).toEqual([kinesisSequence(2)]);
    const changed = sqsRecord('o-1,999');
    expect(failuresOf(await orders.invoke(sqsEvent([sqsRecord('o-1,1'), changed, sqsRecord('o-8,8')])))).toEqual(ids(changed));
    expect(orders.calls.map(orderIdOf).sort()).toEqual(['o-1', 'o-4', 'o-5', 'o-8']);
  });

  test('what it does to the record moves nothing: the FIFO group and the stream change are read before it runs', async () => {
    // A parse that tidies the record it reads (here: too much) still leaves each record where it was delivered.
    const tidy = consumer<Order>(
      (order) => {
        if (order.orderId === 'o-fail') throw new Error('declined');
        return 'ok';
      },
      {
        parse: (record) => {
          if ('body' in record) {
            record.attributes.MessageGroupId = 'orders';
            return { orderId: record.body };
          }
          const change = record as DynamoDBRecord;
          change.eventID = 'tidied';
          return { orderId: change.dynamodb!.Keys!.pk!.S! };
        },
      },
    );
    const failing = sqsRecord('o-fail', { groupId: 'g1' });
    const other = sqsRecord('o-other', { groupId: 'g2' });
    expect(failuresOf(await tidy.invoke(sqsEvent([failing, other])))).toEqual(ids(failing));
    const changes = [streamRecord(1, 'o-twice', 'PAID'), streamRecord(2, 'o-twice', 'SHIPPED')];
    expect(failuresOf(await tidy.invoke({ Records: changes }))).toEqual([]);
    // Two groups run side by side: in either order.
    expect(tidy.calls.map(orderIdOf).sort()).toEqual(['ORDER#o-twice', 'ORDER#o-twice', 'o-fail', 'o-other']);
  });

  test('a thrown value that is not an Error is reported by its type, never by a `name` it carries, nor an Error by a name that is free text or cannot be read', async () => {
    const logger = quiet();
    const thrown = new Map<string, unknown>([
      ['text', 'card=4111111111111111'],
      ['nothing', null],
      ['order', { name: 'Ada Lovelace', card: '4111111111111111' }],
      // An Error whose name is free text, and one whose name cannot be read: named `Error`, and the batch goes on.
      ['declined', Object.assign(new Error('declined'), { name: 'Declined card 4111111111111111' })],
      [
        'unreadable',
        Object.defineProperty(new Error('declined'), 'name', {
          get() {
            throw new Error('name getter');
          },
        }),
      ],
    ]);
    const orders = consumer<Order>(() => 'ok', {
      logger,
      parse: (record) => {
        const body = (record as SQSRecord).body;
        if (thrown.has(body)) throw thrown.get(body);
        return { orderId: body };
      },
      concurrency: 1,
    });
    const poison = [...thrown.keys()].map((body) => sqsRecord(body));
    expect(failuresOf(await orders.invoke(sqsEvent([...poison, sqsRecord('o-1')])))).toEqual(ids(...poison));
    expect(orders.calls.map(orderIdOf)).toEqual(['o-1']);
    expect(logger.lines.map((line) => (JSON.parse(line) as { reason: string }).reason)).toEqual([
      'the parse option threw (string)',
      'the parse option threw (null)',
      'the parse option threw (object)',
      'the parse option threw (Error)',
      'the parse option threw (Error)',
    ]);
    expect(logger.lines.join('\n')).not.toMatch(/4111111111111111|Ada/);
  });

  test('a promise (an async parse) is refused with a TypeError before any record runs or is claimed, and its rejection is never unhandled', async () => {
    const calls: unknown[] = [];
    const handler = idempotentBatch<Order>((order) => void calls.push(order), {
      store,
      now: clock,
      logger: quiet(),
      parse: (async () => {
        throw new Error('fetched nothing');
      }) as unknown as (record: BatchRecord) => Order,
    });
    const unhandled: unknown[] = [];
    const listener = (reason: unknown) => void unhandled.push(reason);
    process.on('unhandledRejection', listener);
    try {
      await expect(handler(sqsEvent([sqsRecord('o-1'), sqsRecord('o-2')]), consumerContext())).rejects.toThrow(
        new TypeError('idempotentBatch: the parse option returned a promise: it must return the message itself, synchronously.'),
      );
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('unhandledRejection', listener);
    }
    expect(unhandled).toEqual([]);
    expect(calls).toEqual([]);
    expect(await records()).toEqual([]);
  });

  test('a message canonical JSON refuses (a Map, a function, a BigInt) is poison whose reason names the value type, never its content', async () => {
    const logger = quiet();
    const refused = new Map<string, unknown>([
      ['map', new Map([['card', '4111111111111111']])],
      ['function', () => '4111111111111111'],
      ['bigint', 4111111111111111n],
    ]);
    const orders = consumer<unknown>(() => 'ok', { logger, parse: (record) => refused.get((record as SQSRecord).body), throwOnFullBatchFailure: false });
    const poison = [...refused.keys()].map((body) => sqsRecord(body));
    expect(failuresOf(await orders.invoke(sqsEvent(poison)))).toEqual(ids(...poison));
    expect(logger.lines.map((line) => (JSON.parse(line) as { reason: string }).reason)).toEqual(
      ['a Map', 'a function', 'a BigInt'].map((what) => `INVALID_KEY: The idempotency key holds ${what}, which JSON cannot represent faithfully.`),
    );
    expect(logger.lines.join('\n')).not.toMatch(/4111111111111111/);
    expect(orders.calls).toEqual([]);
  });

  test("a refused value deep in a message is logged without its path: the path is made of the message's member names, which may be data (an account keyed by its holder's email)", async () => {
    const logger = quiet();
    const orders = consumer<unknown>(() => 'ok', {
      logger,
      // A member name may even hold the words that follow the path in the message.
      parse: () => ({ balances: { 'eve, which JSON lists@example.com': 12n } }),
      throwOnFullBatchFailure: false,
    });
    const message = sqsRecord('o-1');
    expect(failuresOf(await orders.invoke(sqsEvent([message])))).toEqual(ids(message));
    expect(JSON.parse(logger.lines[0]!)).toMatchObject({ reason: 'INVALID_KEY: The idempotency key holds a BigInt, which JSON cannot represent faithfully.' });
    expect(logger.lines.join('\n')).not.toMatch(/example\.com|balances/);
    // Thrown to a caller, the same error keeps its path: there it points the caller at its own value.
    expect(() => hashKey({ balances: { 'ada@example.com': 12n } })).toThrow(
      'The idempotency key holds a BigInt at $.balances.ada@example.com, which JSON cannot represent faithfully.',
    );
  });

  test('a thenable that is not a Promise is refused the same way, without calling its `then` (a query builder would run its query)', async () => {
    const thens: unknown[] = [];
    // biome-ignore lint/suspicious/noThenProperty: the value under test is a thenable that is not a Promise
    const lazy = { then: (resolve: (value: Order) => void) => void thens.push(resolve) };
    const orders = consumer<Order>(() => 'ok', { parse: () => lazy as unknown as Order });
    await expect(orders.invoke(sqsEvent([sqsRecord('o-1')]))).rejects.toThrow(TypeError);
    await new Promise((resolve) => setImmediate(resolve));
    expect(thens).toEqual([]);
    expect(orders.calls).toEqual([]);
  });

  test('a message that is missing (undefined, null, empty text or bytes) is poison whose reason names parse', async () => {
    const logger = quiet();
    const missing = new Map<string, unknown>([
      ['undefined', undefined],
      ['null', null],
      ['text', ''],
      ['bytes', new Uint8Array()],
    ]);
    const orders = consumer<unknown>(() => 'ok', {
      logger,
      parse: (record) => {
        const { body } = record as SQSRecord;
        return missing.has(body) ? missing.get(body) : body;
      },
    });
    const poison = [...missing.keys()].map((body) => sqsRecord(body));
    expect(failuresOf(await orders.invoke(sqsEvent([...poison, sqsRecord('o-1')])))).toEqual(ids(...poison));
    expect(orders.calls.map((call) => call.message)).toEqual(['o-1']);
    expect(logger.lines.map((line) => (JSON.parse(line) as { reason: string }).reason)).toEqual(
      poison.map(() => 'KEY_MISSING: the parse option returned no message (undefined, null or empty)'),
    );
  });

  test('an SQS or Kinesis message whose JSON is null or empty text is poison whose reason names the default key, not a selector', async () => {
    const logger = quiet();
    const orders = consumer<unknown>(() => 'ok', { logger });
    const poison = [sqsRecord('null'), sqsRecord('""')];
    expect(failuresOf(await orders.invoke(sqsEvent([...poison, sqsRecord({ orderId: 'o-1' })])))).toEqual(ids(...poison));
    const stream = [kinesisRecord({ orderId: 'o-2' }, 1), kinesisRecord('null', 2)];
    const kinesis = consumer<unknown>(() => 'ok', { logger });
    expect(failuresOf(await kinesis.invoke({ Records: stream }))).toEqual([kinesisSequence(2)]);
    expect(logger.lines.map((line) => (JSON.parse(line) as { reason: string }).reason)).toEqual(
      [...poison, stream[1]].map(() => 'KEY_MISSING: the message holds no value (its JSON is null or empty), and the default key is the whole message'),
    );
  });

  test('DynamoDB Streams: the handler gets what parse returns; the key is still the eventID', async () => {
    const seen: unknown[] = [];
    const handler = idempotentBatch<string | undefined>((status) => void seen.push(status), {
      store,
      now: clock,
      logger: quiet(),
      parse: (record) => (record as DynamoDBRecord).dynamodb?.NewImage?.status?.S,
    });
    const paid = streamRecord(1, 'o-1', 'PAID');
    // The same status in another change is another event: it runs; the same event redelivered does not.
    const batch = [paid, streamRecord(2, 'o-2', 'PAID'), paid];
    expect(failuresOf(await handler({ Records: batch }, consumerContext()))).toEqual([]);
    expect(seen).toEqual(['PAID', 'PAID']);
  });

  test('types (checked by tsc): the message type comes from the record function, or from a parse whose record is annotated', () => {
    const fromParse = idempotentBatch((order) => order.orderId, {
      store,
      parse: (record: BatchRecord) => ({ orderId: (record as SQSRecord).body, amount: 1 }),
      key: (order) => order.orderId,
      fingerprint: (order) => order.amount,
    });
    const fromHandler = idempotentBatch(async (order: Order) => order.orderId, { store, parse: (record) => ({ orderId: (record as SQSRecord).body }) });
    const wrongType = idempotentBatch(async (order: Order) => order.orderId, {
      store,
      // @ts-expect-error parse returns what the record function takes
      parse: (record) => (record as SQSRecord).body,
    });
    expect([fromParse, fromHandler, wrongType].map((handler) => typeof handler)).toEqual(['function', 'function', 'function']);
  });

  test('must be a function', () => {
    expect(() => idempotentBatch(() => undefined, { store, parse: 'json' as unknown as () => unknown })).toThrow(
      new TypeError('idempotentBatch: `parse` must be a function.'),
    );
  });
});

test("message attributes are no part of the default key: equal bodies with another `type` attribute run once, the second replaying the first's outcome; a key that selects the attribute runs both", async () => {
  const typed = (type: string, orderId: string): SQSRecord => ({
    ...sqsRecord({ orderId }),
    messageAttributes: { type: { stringValue: type, stringListValues: [], binaryListValues: [], dataType: 'String' } },
  });
  const typeOf = (record: BatchRecord) => ('messageAttributes' in record ? (record.messageAttributes.type?.stringValue ?? null) : null);
  const byBody = consumer<Order>((order, record) => `${typeOf(record)} ${order.orderId}`);
  expect(failuresOf(await byBody.invoke(sqsEvent([typed('created', 'o-1'), typed('cancelled', 'o-1')])))).toEqual([]);
  expect(byBody.calls.map((call) => typeOf(call.record))).toEqual(['created']);

  const byType = consumer<Order>((order, record) => `${typeOf(record)} ${order.orderId}`, { key: (message, record) => [typeOf(record), message] });
  expect(failuresOf(await byType.invoke(sqsEvent([typed('created', 'o-2'), typed('cancelled', 'o-2')])))).toEqual([]);
  expect(byType.calls.map((call) => typeOf(call.record)).sort()).toEqual(['cancelled', 'created']);
});

test('SNS to SQS without raw delivery: a resend is a new envelope (id, time, signature) and runs again by default; keyed by the payload it runs once', async () => {
  /** The envelope SNS puts on a subscribed queue, as a new publish of `order` makes it. */
  const snsEnvelope = (order: Order, n: number) =>
    JSON.stringify({
      Type: 'Notification',
      MessageId: randomUUID(),
      TopicArn: `arn:aws:sns:${REGION}:${ACCOUNT}:orders`,
      Message: JSON.stringify(order),
      Timestamp: new Date(SENT + n * 1000).toISOString(),
      SignatureVersion: '1',
      Signature: Buffer.from(randomUUID()).toString('base64'),
    });
  const publishes = () => sqsEvent([sqsRecord(snsEnvelope({ orderId: 'o-1', amount: 1999 }, 1)), sqsRecord(snsEnvelope({ orderId: 'o-1', amount: 1999 }, 2))]);
  const byEnvelope = consumer<{ Message: string }>(() => 'ok', { name: 'by-envelope' });
  expect(failuresOf(await byEnvelope.invoke(publishes()))).toEqual([]);
  expect(byEnvelope.calls).toHaveLength(2);
  const byPayload = consumer<{ Message: string }>(() => 'ok', { name: 'by-payload', key: (envelope) => (JSON.parse(envelope.Message) as Order).orderId });
  expect(failuresOf(await byPayload.invoke(publishes()))).toEqual([]);
  expect(byPayload.calls).toHaveLength(1);
});

test('S3 event notifications through SQS: a notification S3 delivers twice runs once; the s3:TestEvent S3 sends when notifications are set up reaches the record function like any message', async () => {
  /** The notification S3 puts on a queue for a new object (one record per message). */
  const notification = (key: string, sequencer: string) =>
    JSON.stringify({
      Records: [
        {
          eventVersion: '2.1',
          eventSource: 'aws:s3',
          awsRegion: REGION,
          eventTime: new Date(SENT).toISOString(),
          eventName: 'ObjectCreated:Put',
          userIdentity: { principalId: 'AWS:AROAEXAMPLEID:uploader' },
          requestParameters: { sourceIPAddress: '203.0.113.7' },
          responseElements: { 'x-amz-request-id': 'C3D13FE58DE4C810', 'x-amz-id-2': 'FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD' },
          s3: {
            s3SchemaVersion: '1.0',
            configurationId: 'invoices-uploaded',
            bucket: { name: 'invoices', ownerIdentity: { principalId: 'A3NL1KOZZKExample' }, arn: 'arn:aws:s3:::invoices' },
            object: { key, size: 1024, eTag: 'd41d8cd98f00b204e9800998ecf8427e', sequencer },
          },
        },
      ],
    });
  const testEvent = JSON.stringify({
    Service: 'Amazon S3',
    Event: 's3:TestEvent',
    Time: new Date(SENT).toISOString(),
    Bucket: 'invoices',
    RequestId: '5582815E1AEA5ADF',
    HostId: '8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE',
  });
  type S3Message = { Records?: Array<{ s3: { object: { key: string } } }>; Event?: string };
  const uploaded = sqsRecord(notification('2026/invoice-1.pdf', '0055AED6DCD90281E5'));
  const again = sqsRecord(notification('2026/invoice-1.pdf', '0055AED6DCD90281E5')); // S3 delivers at least once
  const other = sqsRecord(notification('2026/invoice-2.pdf', '0055AED6DCD90281E6'));
  const test = sqsRecord(testEvent);
  const batch = sqsEvent([test, uploaded, again, other]);
  // A record function that assumes `Records` fails the test event, which then comes back until the dead-letter queue takes it.
  const naive = consumer<S3Message>((message) => message.Records!.map((record) => record.s3.object.key), { name: 'naive' });
  expect(failuresOf(await naive.invoke(batch))).toEqual(ids(test));
  const careful = consumer<S3Message>((message) => (message.Event === 's3:TestEvent' ? 'ignored' : message.Records!.map((record) => record.s3.object.key)), {
    name: 'careful',
  });
  expect(failuresOf(await careful.invoke(batch))).toEqual([]);
  expect(careful.calls.map((call) => (call.message as S3Message).Records?.[0]?.s3.object.key ?? (call.message as S3Message).Event).sort()).toEqual([
    '2026/invoice-1.pdf',
    '2026/invoice-2.pdf',
    's3:TestEvent',
  ]);
});
