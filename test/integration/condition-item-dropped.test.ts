/**
 * A client whose refusals come back without the item that refused them: a middleware, DAX or a
 * proxy in front of DynamoDB that drops `ReturnValuesOnConditionCheckFailure` (DynamoDB then answers
 * a refused write with no item, as it answers one for an item that does not exist). The store reads
 * the record that refused it instead, so a duplicate replays or answers IN_PROGRESS, and a
 * completion that did not apply is never answered as one that did.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import { DynamoDBStore, describeStoreFailure, makeIdempotent, transaction } from '../../lib/index.js';
import { endpoint, readItem, recordId, testClient, useBusinessTable, useFreshTable } from '../support/dynamodb.js';
import { faultyClient } from '../support/faults.js';
import { rejection } from '../support/rejections.js';

/** `client`, its requests sent without the parameters named (in each action of a transaction too). */
function dropping(client: DynamoDBClient, parameters: readonly string[]): DynamoDBClient {
  const without = (input: Record<string, unknown>) => Object.fromEntries(Object.entries(input).filter(([name]) => !parameters.includes(name)));
  client.middlewareStack.add(
    (next) => async (args) => {
      const input = args.input as Record<string, unknown> & { TransactItems?: Array<Record<string, Record<string, unknown>>> };
      const items = input.TransactItems?.map((action) => Object.fromEntries(Object.entries(action).map(([kind, body]) => [kind, without(body)])));
      return next({ ...args, input: { ...without(input), ...(items === undefined ? {} : { TransactItems: items }) } });
    },
    { step: 'initialize', name: 'dropConditionItem' },
  );
  return client;
}

const front = dropping(testClient(), ['ReturnValuesOnConditionCheckFailure']);
const { tableName, client: admin } = useFreshTable({ prefix: 'condition-item', storeClient: front });
const bizTable = useBusinessTable(admin);
const full = new DynamoDBStore({ tableName, client: front });
const lean = new LeanDynamoDBStore({ tableName, client: front });
/** A store that sees every refused item: another attempt's. */
const other = new DynamoDBStore({ tableName, client: admin });
/** `front` behind the fault layer: the read of a refused write's record (an `UpdateItem` that updates nothing) can be refused. */
const { client: faultyFront, faults } = faultyClient(endpoint());
dropping(faultyFront, ['ReturnValuesOnConditionCheckFailure']);
const faultyStore = new LeanDynamoDBStore({ tableName, client: faultyFront });
/** The read `refusingItem` sends after a refusal that came without the item. */
const isRecordRead = (request: { body: Record<string, unknown> }) => request.body.UpdateExpression === undefined;
afterEach(() => {
  faults.clear();
});
afterAll(() => {
  front.destroy();
  faultyFront.destroy();
});

const T0 = 1_700_000_000_000;
const LEASE_MS = 10_000;
let seq = 0;

/** Moves `clock` past this attempt's lease, and has another attempt take the record `key` over there. */
async function takeOverAfterLease(key: string, clock: { t: number }): Promise<void> {
  clock.t = T0 + LEASE_MS + 1;
  await other.claim({ key, owner: 'takeover', now: clock.t, leaseUntil: clock.t + LEASE_MS, expiresAt: Math.floor(clock.t / 1000) + 3600 });
}

describe.each([
  ['DynamoDBStore', full],
  ['the lean DynamoDBStore', lean],
] as const)('%s behind a client that drops the refused item', (_name, store) => {
  test('a duplicate of a completed call replays its outcome; the function ran once', async () => {
    let runs = 0;
    const once = makeIdempotent(async (_key: string) => ({ run: ++runs }), { store, name: `dropped${++seq}`, singleFlight: false });
    expect(await once('k')).toEqual({ run: 1 });
    expect(await once('k')).toEqual({ run: 1 });
    expect(runs).toBe(1);
  });

  test('a duplicate while another attempt holds the key: IN_PROGRESS, the holder left alone', async () => {
    const name = `dropped${++seq}`;
    const key = recordId(name, 'k');
    await other.claim({ key, owner: 'holder', now: Date.now(), leaseUntil: Date.now() + 60_000, expiresAt: Math.floor(Date.now() / 1000) + 3600 });
    let runs = 0;
    const once = makeIdempotent(async (_key: string) => ++runs, { store, name, singleFlight: false });
    expect((await rejection(once('k'))).code).toBe('IN_PROGRESS');
    expect(runs).toBe(0);
    expect(await readItem(admin, tableName, key)).toMatchObject({ status: { S: 'INPROGRESS' }, owner: { S: 'holder' } });
  });

  test('a completion refused because another attempt took the record over: SUPERSEDED with its holder, not a success', async () => {
    const name = `dropped${++seq}`;
    const key = recordId(name, 'k');
    const clock = { t: T0 };
    const once = makeIdempotent(
      async (_key: string) => {
        // This attempt outlives its lease, and another takes the record over.
        await takeOverAfterLease(key, clock);
        return 'ran';
      },
      { store, name, now: () => clock.t, leaseSeconds: LEASE_MS / 1000, singleFlight: false, logger: { warn: () => {} } },
    );
    const error = await rejection(once('k'));
    expect({ code: error.code, holder: error.record?.owner }).toEqual({ code: 'SUPERSEDED', holder: 'takeover' });
    expect(await readItem(admin, tableName, key)).toMatchObject({ status: { S: 'INPROGRESS' }, owner: { S: 'takeover' } });
  });
});

describe('a refusal without the item whose read of the record fails', () => {
  /** A call that outlives its lease and whose record another attempt takes over, with its warnings and events. */
  function takenOver(fn: () => string) {
    const name = `dropped${++seq}`;
    const key = recordId(name, 'k');
    const clock = { t: T0 };
    const warnings: string[] = [];
    const events: string[] = [];
    const once = makeIdempotent(
      async (_key: string) => {
        await takeOverAfterLease(key, clock);
        faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'refuse' }, where: isRecordRead });
        return fn();
      },
      {
        store: faultyStore,
        name,
        now: () => clock.t,
        leaseSeconds: LEASE_MS / 1000,
        singleFlight: false,
        logger: { warn: (line) => void warnings.push(line) },
        observability: (event: string) => void events.push(event),
      },
    );
    return { once, key, warnings, events };
  }

  /** The warning's message and its `error`, for a refused `write` whose record read was refused. */
  const refusedUnread = (message: string, write: string) => ({
    message: `lambda-idempotency: ${message}`,
    error: `AccessDeniedException reading the record after a refused ${write}: this attempt holds it no more (taken over, deleted, or completed by this call)`,
  });

  test("a completion: the caller gets the call's result; the warning says the completion was refused, not only that the record stays INPROGRESS", async () => {
    const { once, key, warnings, events } = takenOver(() => 'ran');
    expect(await once('k')).toBe('ran');
    expect(faults.injected).toEqual([{ operation: 'UpdateItem', attempt: 1, kind: 'refuse' }]);
    expect(warnings.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining(
        refusedUnread(
          'could not mark the record COMPLETED; unless the write applied all the same or was refused (see `error`), it stays INPROGRESS until its lease ends',
          'completion',
        ),
      ),
    ]);
    expect(events.filter((event) => event === 'bookkeepingFailure')).toHaveLength(1);
    expect(await readItem(admin, tableName, key)).toMatchObject({ status: { S: 'INPROGRESS' }, owner: { S: 'takeover' } });
  });

  test("a release: the caller gets the function's error; the warning says the release was refused, not only that the record stays INPROGRESS", async () => {
    const { once, key, warnings } = takenOver(() => {
      throw new Error('boom');
    });
    await expect(once('k')).rejects.toThrow('boom');
    expect(faults.injected).toEqual([{ operation: 'UpdateItem', attempt: 1, kind: 'refuse' }]);
    expect(warnings.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining(
        refusedUnread('could not release the record; unless the release was refused (see `error`), it stays INPROGRESS until its lease ends', 'release'),
      ),
    ]);
    expect(await readItem(admin, tableName, key)).toMatchObject({ status: { S: 'INPROGRESS' }, owner: { S: 'takeover' } });
  });
});

test("a transaction() commit refused because another attempt took the record over: SUPERSEDED with its holder; none of the call's writes", async () => {
  const name = `dropped${++seq}`;
  const key = recordId(name, 't1');
  const clock = { t: T0 };
  const charge = makeIdempotent(
    async (id: string) => {
      transaction().put({ TableName: bizTable, Item: { id, paid: true } });
      await takeOverAfterLease(key, clock);
      return 'ran';
    },
    { store: full, name, transactions: true, now: () => clock.t, leaseSeconds: LEASE_MS / 1000, singleFlight: false },
  );
  const error = await rejection(charge('t1'));
  expect({ code: error.code, holder: error.record?.owner }).toEqual({ code: 'SUPERSEDED', holder: 'takeover' });
  expect(await readItem(admin, bizTable, 't1')).toBeUndefined();
});

test("an atomic duplicate replays the first call's outcome, also when its run fails on the first call's effect (read from the record); only the first call's writes are committed", async () => {
  let runs = 0;
  const charge = makeIdempotent(
    async (id: string) => {
      runs++;
      // The third run meets the first call's effect: not final, so it commits nothing and reads the record.
      if (runs > 2) throw new Error('already charged');
      transaction().put({ TableName: bizTable, Item: { id, run: runs } });
      return { run: runs };
    },
    { store: full, name: `dropped${++seq}`, atomic: true, singleFlight: false },
  );
  expect(await charge('a1')).toEqual({ run: 1 });
  expect(await charge('a1')).toEqual({ run: 1 });
  expect(await charge('a1')).toEqual({ run: 1 });
  expect(runs).toBe(3);
  expect(await readItem(admin, bizTable, 'a1')).toMatchObject({ run: { N: '1' } });
});

test('an atomic commit refused twice by a record gone each time it is read (claimed and released meanwhile): STORE_FAILURE saying so, not a malformed record to forget', async () => {
  const churning = dropping(testClient(), ['ReturnValuesOnConditionCheckFailure']);
  const name = `dropped${++seq}`;
  const key = recordId(name, 'c1');
  // Before each commit another attempt claims the key; before each read of the record that refused it, that record is gone.
  churning.middlewareStack.add(
    (next) => async (args) => {
      const input = args.input as { TransactItems?: unknown; UpdateExpression?: unknown; Key?: unknown };
      if (input.TransactItems !== undefined) {
        await other.claim({ key, owner: 'churn', now: Date.now(), leaseUntil: Date.now() + 60_000, expiresAt: Math.floor(Date.now() / 1000) + 3600 });
      } else if (input.Key !== undefined && input.UpdateExpression === undefined) {
        await other.forget(key);
      }
      return next(args);
    },
    { step: 'initialize', name: 'churnRecord' },
  );
  try {
    let runs = 0;
    const charge = makeIdempotent(async (_id: string) => ++runs, {
      store: new DynamoDBStore({ tableName, client: churning }),
      name,
      atomic: true,
      singleFlight: false,
      logger: { warn: () => {} },
    });
    const error = await rejection(charge('c1'));
    expect(error.code).toBe('STORE_FAILURE');
    expect(error.message).toMatch(/nothing was written/);
    expect((error.cause as Error).message).toBe(
      `DynamoDB refused the commit of ${key} twice, and the record that refused it was gone each time it was read: other attempts claimed and released it meanwhile.`,
    );
    expect(runs).toBe(1);
  } finally {
    churning.destroy();
  }
});

test("forget after a 500 the SDK retried, whose retry's condition fails on a record that is still there: not deleted, and reported so", async () => {
  const name = `dropped${++seq}`;
  const key = recordId(name, 'k');
  const done = makeIdempotent(async (_key: string) => 'ran', { store: other, name, singleFlight: false });
  expect(await done('k')).toBe('ran');
  // The first attempt is answered 500 (not applied); the SDK's retry is refused: the record is COMPLETED, not INPROGRESS.
  faults.schedule({ operations: ['DeleteItem'], fault: { kind: 'server-error' } });
  const store = new DynamoDBStore({ tableName, client: faultyFront });
  expect(await store.forget(key, 'INPROGRESS')).toBe(false);
  expect(faults.attemptsOf('DeleteItem')).toBe(2);
  expect(await readItem(admin, tableName, key)).toMatchObject({ status: { S: 'COMPLETED' } });
});

test('a claim refused without the item, whose read of the record is throttled on every attempt: STORE_FAILURE, the function does not run, and no release is sent (the claim applied nothing)', async () => {
  const name = `dropped${++seq}`;
  const key = recordId(name, 'k');
  await other.claim({ key, owner: 'holder', now: Date.now(), leaseUntil: Date.now() + 60_000, expiresAt: Math.floor(Date.now() / 1000) + 3600 });
  faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'throttle' }, attempts: 'all', where: isRecordRead });
  let runs = 0;
  const once = makeIdempotent(async (_key: string) => ++runs, { store: faultyStore, name, singleFlight: false, logger: { warn: () => {} } });
  const error = await rejection(once('k'));
  expect(error.code).toBe('STORE_FAILURE');
  expect(describeStoreFailure(error.cause)).toBe('ProvisionedThroughputExceededException');
  expect(runs).toBe(0);
  expect([faults.attemptsOf('PutItem'), faults.attemptsOf('UpdateItem'), faults.attemptsOf('DeleteItem')]).toEqual([1, 3, 0]);
  expect(await readItem(admin, tableName, key)).toMatchObject({ status: { S: 'INPROGRESS' }, owner: { S: 'holder' } });
});

test('a client that drops the returned item of every write: STORE_FAILURE naming the dropped parameter, the function does not run', async () => {
  const blind = dropping(testClient(), ['ReturnValuesOnConditionCheckFailure', 'ReturnValues']);
  try {
    const store = new LeanDynamoDBStore({ tableName, client: blind });
    let runs = 0;
    const name = `dropped${++seq}`;
    const once = makeIdempotent(async (_key: string) => ++runs, { store: other, name, singleFlight: false });
    const blindOnce = makeIdempotent(async (_key: string) => ++runs, { store, name, singleFlight: false });
    expect(await once('k')).toBe(1);
    const error = await rejection(blindOnce('k'));
    expect(error.code).toBe('STORE_FAILURE');
    expect(describeStoreFailure(error.cause)).toBe('ConditionalCheckFailedException');
    expect(error.message).toMatch(/ReturnValuesOnConditionCheckFailure/);
    expect(runs).toBe(1);
  } finally {
    blind.destroy();
  }
});
