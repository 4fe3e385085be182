/**
 * An idempotent call made in a durable handler's body (given the execution's durable context) is
 * made again on every replay; once its record is COMPLETED, it answers from it without running its
 * function. Durable operations of that function (`ctx.step`, `ctx.wait`) are then not made on the
 * replay, and the SDK, which numbers a context's operations in the order they are made, finds the
 * operations after the call one place off: the execution fails as non-deterministic. The same holds
 * for the records of `idempotentBatch` in a durable handler. Inside a child context
 * (`runInChildContext`, the items of `map`), the call's operations are checkpointed with the child
 * context, which the SDK replays without running it: the call is made once. A call given no
 * context is an ordinary call, whose outcome a replay past its retention no longer finds.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { type DurableContext, withDurableExecution } from '@aws/durable-execution-sdk-js';
import middy from '@middy/core';
import type { SQSEvent } from 'aws-lambda';
import { cloudWatchLines, idempotency, idempotentBatch, makeIdempotent } from '../../lib/index.js';
import { sqsRecord } from '../support/batch-events.js';
import { advanceRunnerClock, executionError, middyDurableMode, runExecution, runnerWait, startExecution, useDurableRunner } from '../support/durable.js';
import { readItem, recordId, useFreshTable } from '../support/dynamodb.js';

const { client, store, tableName } = useFreshTable({ prefix: 'durable-replayed' });
useDurableRunner();

const CALLBACK = 'approval';
const NON_DETERMINISTIC = { errorType: 'NonDeterministicExecutionError', errorMessage: expect.stringMatching(/Non-deterministic execution/) };

/** An idempotent charge whose function makes its effect in a step of the durable context it is given. */
function chargeInStep(charges: string[]) {
  return makeIdempotent(
    async (orderId: string, ctx: DurableContext) =>
      ctx.step('charge', async () => {
        charges.push(orderId);
        return `charged ${orderId}`;
      }),
    { store, name: `charge-${randomUUID()}` },
  );
}

/** How the body makes an idempotent charge, given the execution's durable context. */
type Charge = (orderId: string, ctx: DurableContext) => Promise<string>;

/**
 * An idempotent charge that collects the events it counts and the orders it charges; `wrap` makes
 * another wrapper of it (another engine, one name), as a body that makes its wrapper where it calls it.
 */
function countedCharge(label: string, options: { readonly cacheSize?: number; readonly atomic?: boolean } = {}) {
  const events: string[] = [];
  const charges: string[] = [];
  const name = `${label}-${randomUUID()}`;
  const wrap = () =>
    makeIdempotent(async (orderId: string, _ctx: DurableContext) => (charges.push(orderId), `charged ${orderId}`), {
      store,
      name,
      observability: (event) => void events.push(event),
      ...options,
    });
  return { charge: wrap(), wrap, events, charges };
}

type CountedCharge = ReturnType<typeof countedCharge>;

/** A body that charges, waits on a callback, then ships in a step; `charge` is how the body makes the idempotent call. */
function fulfilment(ships: string[], charge: Charge) {
  return withDurableExecution(async (orderId: string, ctx: DurableContext) => {
    const charged = await charge(orderId, ctx);
    await ctx.waitForCallback(CALLBACK, async () => undefined);
    const shipped = await ctx.step('ship', async () => {
      ships.push(orderId);
      return `shipped ${orderId}`;
    });
    return [charged, shipped];
  });
}

async function approved(handler: ReturnType<typeof fulfilment>, orderId: string) {
  const execution = startExecution<string[]>(handler, orderId, CALLBACK);
  await execution.suspended();
  await execution.resume('approved');
  return execution.result;
}

test("a call in the body given the durable context, whose function runs a step, completed before the execution suspends: the replay does not make the call's step, and the execution fails as non-deterministic", async () => {
  const charges: string[] = [];
  const ships: string[] = [];
  const charge = chargeInStep(charges);
  const execution = await approved(fulfilment(ships, charge), randomUUID());
  expect(execution.getStatus()).toBe('FAILED');
  expect(executionError(execution)).toEqual(NON_DETERMINISTIC);
  expect(charges).toHaveLength(1);
});

test('the same call inside runInChildContext: the replay returns the child context’s checkpoint, the charge and the shipment each run once, and another execution replays the charge', async () => {
  const charges: string[] = [];
  const ships: string[] = [];
  const charge = chargeInStep(charges);
  const handler = fulfilment(ships, (orderId, ctx) => ctx.runInChildContext('charge', (child) => charge(orderId, child)));
  const orderId = randomUUID();
  const execution = await approved(handler, orderId);
  expect(execution.getStatus()).toBe('SUCCEEDED');
  expect(execution.getResult()).toEqual([`charged ${orderId}`, `shipped ${orderId}`]);
  const second = await approved(handler, orderId);
  expect(second.getStatus()).toBe('SUCCEEDED');
  expect(second.getResult()).toEqual([`charged ${orderId}`, `shipped ${orderId}`]);
  expect(charges).toEqual([orderId]);
  expect(ships).toEqual([orderId, orderId]);
});

test.each([
  ['replay', {}],
  ['cacheReplay', { cacheSize: 10 }],
])(
  'a call in the body given the durable context counts one miss however often its execution resumes: its own outcome, met again on a replay, is no %s event; another execution meets it as one',
  async (kind, cache) => {
    const { charge, events, charges } = countedCharge('counted', cache);
    const handler = fulfilment([], charge);
    const orderId = randomUUID();
    const execution = await approved(handler, orderId);
    expect(execution.getStatus()).toBe('SUCCEEDED');
    // The call was made twice (before and after the suspension), as the execution it belongs to.
    expect(events).toEqual(['miss']);
    const other = await approved(handler, orderId);
    expect(other.getResult()).toEqual(execution.getResult());
    expect(events).toEqual(['miss', kind, kind]);
    expect(charges).toEqual([orderId]);
  },
);

class CardDeclined extends Error {
  override readonly name = 'CardDeclined';
}

// The execution makes the call again on every replay, and must take the same branch on each: the
// first invocation gets the outcome as the replays get it from the record (as the SDK hands back a
// step's result through its serdes on the first run too), not the function's own value or error.
test.each(['result', 'final error'] as const)(
  'a call in the body given the durable context answers its first invocation as it answers the replays: its %s in the stored form',
  async (outcome) => {
    const seen: string[] = [];
    const book = makeIdempotent(
      async (_orderId: string, _ctx: DurableContext) => {
        if (outcome === 'final error') throw new CardDeclined('card declined');
        return { bookedAt: new Date(0) };
      },
      { store, name: `book-${randomUUID()}`, isFinalError: (error) => error instanceof CardDeclined },
    );
    const handler = withDurableExecution(async (orderId: string, ctx: DurableContext) => {
      const answer = await book(orderId, ctx).then(
        (booking) => (booking.bookedAt instanceof Date ? 'a Date' : typeof booking.bookedAt),
        (error: unknown) => (error instanceof CardDeclined ? 'a CardDeclined' : `an ${(error as Error).constructor.name} named ${(error as Error).name}`),
      );
      seen.push(answer);
      await ctx.wait('settle', runnerWait(30));
      return answer;
    });
    const execution = await runExecution<string>(handler, randomUUID());
    expect(execution.getInvocations().length).toBeGreaterThanOrEqual(2);
    const stored = outcome === 'result' ? 'string' : 'an Error named CardDeclined';
    expect(seen).toEqual(seen.map(() => stored));
  },
);

// A result the record cannot keep completes it without the result (RESPONSE_NOT_STORED for
// duplicates). The first invocation gets RESPONSE_NOT_STORED too, as the replays do: going on with
// the result, it would run the steps after the call on a branch the replay after a suspension leaves.
test.each([
  ['too large for the record', () => ({ report: randomBytes(600_000).toString('base64') })],
  ['JSON cannot hold (a BigInt)', () => ({ report: 1n })],
] as const)(
  'a call in the body given the durable context whose result is %s: every invocation of the execution, the first included, gets RESPONSE_NOT_STORED',
  async (_, result) => {
    const seen: string[] = [];
    const runs: string[] = [];
    const report = makeIdempotent(async (orderId: string, _ctx: DurableContext) => (runs.push(orderId), result()), {
      store,
      name: `report-${randomUUID()}`,
      logger: { warn: () => undefined },
    });
    const handler = withDurableExecution(async (orderId: string, ctx: DurableContext) => {
      const answer = await report(orderId, ctx).then(
        () => 'the report',
        (error: unknown) => (error as Error).message.split(':')[0]!,
      );
      seen.push(answer);
      await ctx.wait('settle', runnerWait(30));
      return answer;
    });
    const orderId = randomUUID();
    const execution = await runExecution<string>(handler, orderId);
    expect(execution.getInvocations().length).toBeGreaterThanOrEqual(2);
    expect(seen).toEqual(seen.map(() => 'RESPONSE_NOT_STORED'));
    expect(runs).toEqual([orderId]);
  },
);

const oneAfterTheOther = (charge: Charge) => async (orderId: string, ctx: DurableContext) => (await charge(orderId, ctx), charge(orderId, ctx));

test.each([
  [
    'at once',
    ({ charge }: CountedCharge) =>
      async (orderId: string, ctx: DurableContext) =>
        (await Promise.all([charge(orderId, ctx), charge(orderId, ctx)]))[1]!,
  ],
  ['one after the other', ({ charge }: CountedCharge) => oneAfterTheOther(charge)],
  // Two engines of one name: the claims an invocation made are the process's, not the engine's.
  ['one after the other, each with a wrapper made where it is called', ({ wrap }: CountedCharge) => oneAfterTheOther((orderId, ctx) => wrap()(orderId, ctx))],
] as const)(
  'two calls with one key made %s in the body count one miss and one replay (the second follows or replays the first): made again on a replay, where both meet the execution’s own outcome, they count nothing more',
  async (_, twice) => {
    const counted = countedCharge('counted-twice');
    const { events, charges } = counted;
    const handler = fulfilment([], twice(counted));
    const orderId = randomUUID();
    const execution = startExecution<string[]>(handler, orderId, CALLBACK);
    await execution.suspended();
    expect(events).toEqual(['miss', 'replay']);
    await execution.resume('approved');
    expect((await execution.result).getStatus()).toBe('SUCCEEDED');
    expect(events).toEqual(['miss', 'replay']);
    expect(charges).toEqual([orderId]);
  },
);

// Held: on a later invocation, a duplicate met for the first time (made after the point where the
// execution suspended) cannot be told from one made again as the execution replays its body; both
// meet the execution's own outcome, and neither counts.
test.failing('a duplicate first made after the execution resumed (after the suspension) counts one replay', async () => {
  const { charge, events, charges } = countedCharge('counted-after-resume');
  const handler = withDurableExecution(async (orderId: string, ctx: DurableContext) => {
    await charge(orderId, ctx);
    await ctx.waitForCallback(CALLBACK, async () => undefined);
    return charge(orderId, ctx);
  });
  const orderId = randomUUID();
  const execution = startExecution<string>(handler, orderId, CALLBACK);
  await execution.suspended();
  expect(events).toEqual(['miss']);
  await execution.resume('approved');
  expect((await execution.result).getStatus()).toBe('SUCCEEDED');
  expect(events).toEqual(['miss', 'replay']);
  expect(charges).toEqual([orderId]);
});

// Held: an atomic call's commit that meets its execution's own record cannot tell an earlier
// invocation's commit from its own commit applied by a retried request, and counts a miss on each.
test.failing('an atomic call in the body counts one miss however often its execution resumes', async () => {
  const { charge, events } = countedCharge('counted-atomic', { atomic: true });
  const execution = await approved(fulfilment([], charge), randomUUID());
  expect(execution.getStatus()).toBe('SUCCEEDED');
  expect(events).toEqual(['miss']);
});

// Only a call given the durable context belongs to the execution (the SDK gives no sign that tells
// the body from a step's code): one given none is an ordinary call, kept for its retention.
test("a call in the body given no context, inside the handler's own idempotent call, completed before a suspension that outlasts its retention: the replay runs its function again", async () => {
  const charges: string[] = [];
  const charge = makeIdempotent(
    async (orderId: string) => {
      charges.push(orderId);
      return `charged ${orderId}`;
    },
    { store, name: `no-context-${randomUUID()}`, expiresAfterSeconds: 60 },
  );
  const handler = withDurableExecution(
    makeIdempotent(
      async (orderId: string, ctx: DurableContext) => {
        const charged = await charge(orderId);
        await ctx.waitForCallback(CALLBACK, async () => undefined);
        return charged;
      },
      { store, name: `fulfil-${randomUUID()}`, durableLeaseSeconds: 3_600 },
    ),
  );
  const orderId = randomUUID();
  const execution = startExecution<string>(handler, orderId, CALLBACK);
  await execution.suspended();
  await advanceRunnerClock(2 * 60_000);
  await execution.resume('approved');
  expect((await execution.result).getStatus()).toBe('SUCCEEDED');
  expect(charges).toEqual([orderId, orderId]);
});

interface Shipment {
  readonly orderId: string;
  readonly wait?: { readonly seconds: number };
}

describe('the records of an SQS batch in a durable handler, one of which suspends the execution', () => {
  const batchOf = (shipments: Shipment[]): SQSEvent => ({ Records: shipments.map((shipment) => sqsRecord(shipment as never)) });
  /** A record's work: a charge in a step, then, for one record, a wait that suspends the execution. */
  const work = (charges: string[]) => async (shipment: Shipment, ctx: DurableContext) => {
    const charged = await ctx.step('charge', async () => {
      charges.push(shipment.orderId);
      return `charged ${shipment.orderId}`;
    });
    if (shipment.wait) await ctx.wait('settle', shipment.wait);
    return charged;
  };

  test('idempotentBatch as the durable handler: the replay skips the completed record’s step, and the execution fails as non-deterministic', async () => {
    const charges: string[] = [];
    const record = work(charges);
    const batch = idempotentBatch<Shipment>((shipment, _record, context) => record(shipment, context as unknown as DurableContext), {
      store,
      name: `batch-${randomUUID()}`,
      key: (shipment) => shipment.orderId,
      concurrency: 1,
    });
    const handler = withDurableExecution(batch as unknown as (event: SQSEvent, ctx: DurableContext) => Promise<unknown>);
    const execution = await runExecution(handler, batchOf([{ orderId: randomUUID() }, { orderId: randomUUID(), wait: runnerWait(30) }]));
    expect(execution.getStatus()).toBe('FAILED');
    expect(executionError(execution)).toEqual(NON_DETERMINISTIC);
  });

  test('idempotentBatch takes durableLeaseSeconds, as idempotency() does: its records in a durable handler hold their keys that long, not the whole retention', async () => {
    const leases: number[] = [];
    const name = `batch-lease-${randomUUID()}`;
    const batch = idempotentBatch<Shipment>(
      async (shipment) => {
        const held = await readItem(client, tableName, recordId(name, shipment.orderId));
        leases.push(Math.round((Number(held!.leaseUntil!.N) - Date.now()) / 1000));
      },
      // Longer than the runner's 15-minute invocation: no lease ends before the invocation that writes it.
      { store, name, key: (shipment) => shipment.orderId, expiresAfterSeconds: 7_200, durableLeaseSeconds: 1_800 },
    );
    const handler = withDurableExecution(batch as unknown as (event: SQSEvent, ctx: DurableContext) => Promise<unknown>);
    const execution = await runExecution(handler, batchOf([{ orderId: randomUUID() }]));
    expect(execution.getStatus()).toBe('SUCCEEDED');
    expect(leases).toHaveLength(1);
    expect(leases[0]).toBeGreaterThan(1_790);
    expect(leases[0]).toBeLessThanOrEqual(1_800);
  });

  test('ctx.map over the records, each an idempotent call given its item’s context: each record is charged once, and a redelivery replays them', async () => {
    const charges: string[] = [];
    const shipOnce = makeIdempotent(work(charges), { store, name: `map-${randomUUID()}`, key: (shipment) => shipment.orderId });
    const handler = withDurableExecution(async (event: SQSEvent, ctx: DurableContext) => {
      const shipments = event.Records.map((record) => JSON.parse(record.body) as Shipment);
      const results = await ctx.map('records', shipments, (child, shipment) => shipOnce(shipment, child));
      return results.getResults();
    });
    const shipments = [{ orderId: randomUUID() }, { orderId: randomUUID(), wait: runnerWait(30) }];
    const execution = await runExecution<string[]>(handler, batchOf(shipments));
    expect(execution.getStatus()).toBe('SUCCEEDED');
    const charged = shipments.map((shipment) => `charged ${shipment.orderId}`);
    expect(execution.getResult()).toEqual(charged);
    const redelivery = await runExecution<string[]>(handler, batchOf(shipments));
    expect(redelivery.getResult()).toEqual(charged);
    expect(charges.sort()).toEqual(shipments.map((shipment) => shipment.orderId).sort());
  });
});

/** `cloudWatchLines({ logs: true })` writing into a list, read back as `<metric> <recordId>` and `<event> <recordId>`. */
function cloudWatchList() {
  const written: Array<Record<string, unknown>> = [];
  const observability = cloudWatchLines({ logs: true, write: (line) => void written.push(JSON.parse(line) as Record<string, unknown>) });
  const metric = (line: Record<string, unknown>) =>
    (line._aws as { CloudWatchMetrics: Array<{ Metrics: Array<{ Name: string }> }> }).CloudWatchMetrics[0]!.Metrics[0]!.Name;
  return {
    observability,
    written,
    metrics: () => written.filter((line) => line._aws !== undefined).map((line) => `${metric(line)} ${String(line.Function)}`),
    events: () => written.filter((line) => line._aws === undefined).map((line) => `${String(line.event)} ${String(line.recordId)}`),
  };
}

test('middy durable mode writes one Misses line for an execution however often it resumes, an InProgressRejections line for another execution meanwhile, and a Replays line for one after it', async () => {
  const { observability, metrics, events, written } = cloudWatchList();
  const name = `middy-counted-${randomUUID()}`;
  const handler = middy<string, string, Error, DurableContext>(middyDurableMode)
    .use(idempotency<string, string>({ store, name, key: (orderId) => orderId, observability }))
    .handler(async (orderId, ctx) => {
      await ctx.waitForCallback(CALLBACK, async () => undefined);
      return ctx.step('ship', async () => `shipped ${orderId}`);
    }) as unknown as Parameters<typeof startExecution>[0];
  const orderId = randomUUID();
  const execution = startExecution<string>(handler, orderId, CALLBACK);
  await execution.suspended();
  const meanwhile = await runExecution(handler, orderId);
  expect(executionError(meanwhile)).toMatchObject({ errorMessage: expect.stringMatching(/^IN_PROGRESS/) });
  await execution.resume('approved');
  expect((await execution.result).getResult()).toBe(`shipped ${orderId}`);
  const after = await runExecution<string>(handler, orderId);
  expect(after.getResult()).toBe(`shipped ${orderId}`);
  expect(metrics()).toEqual([`Misses ${name}`, `InProgressRejections ${name}`, `Replays ${name}`]);
  const id = recordId(name, orderId);
  expect(events()).toEqual([`miss ${id}`, `inProgress ${id}`, `replay ${id}`]);
  expect(JSON.stringify(written)).not.toContain(orderId);
});

test('idempotentBatch in a durable handler that suspends after it: one Misses line a record and a Replays line for its duplicate in the batch, none more when the execution resumes; a redelivery one Replays line a record in each of its invocations', async () => {
  const { observability, metrics } = cloudWatchList();
  const name = `batch-counted-${randomUUID()}`;
  const runs: string[] = [];
  const batch = idempotentBatch<Shipment>(async (shipment) => void runs.push(shipment.orderId), {
    store,
    name,
    key: (shipment) => shipment.orderId,
    observability,
  });
  const handler = withDurableExecution(async (event: SQSEvent, ctx: DurableContext) => {
    const answer = await batch(event, ctx as never);
    await ctx.waitForCallback(CALLBACK, async () => undefined);
    return answer;
  });
  const [first, second] = [randomUUID(), randomUUID()];
  const event: SQSEvent = { Records: [first, second, first].map((orderId) => sqsRecord({ orderId } as never)) };
  const execution = startExecution(handler, event, CALLBACK);
  await execution.suspended();
  expect(metrics().sort()).toEqual([`Misses ${name}`, `Misses ${name}`, `Replays ${name}`]);
  await execution.resume('approved');
  expect((await execution.result).getResult()).toEqual({ batchItemFailures: [] });
  expect(metrics().sort()).toEqual([`Misses ${name}`, `Misses ${name}`, `Replays ${name}`]);
  const redelivery = startExecution(handler, event, CALLBACK);
  await redelivery.suspended();
  await redelivery.resume('approved');
  expect((await redelivery.result).getResult()).toEqual({ batchItemFailures: [] });
  // Another execution meets the records in each of its two invocations, as a call in the body does.
  expect(metrics().sort()).toEqual([`Misses ${name}`, `Misses ${name}`, ...Array.from({ length: 7 }, () => `Replays ${name}`)]);
  expect(runs.sort()).toEqual([first, second].sort());
});
