/**
 * Exactly-once effects against a real DynamoDB Local: the call's own writes commit in one
 * `TransactWriteItems` with its COMPLETED record (or, with `atomic: true`, with the claim itself).
 * Requests are counted by a middleware on the SDK client, which also injects network faults around
 * the commit; clocks are injected and handlers are held at gates, so nothing sleeps.
 */
import { randomBytes } from 'node:crypto';
import {
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  type TransactWriteItem,
  type TransactWriteItemsCommandInput,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { NumberValue } from '@aws-sdk/lib-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import middy from '@middy/core';
import {
  DynamoDBStore,
  httpIdempotency,
  type IdempotencyError,
  type IdempotencyEvent,
  type IdempotencyOptions,
  idempotency,
  type LambdaContextLike,
  makeIdempotent,
  type Transaction,
  transaction,
  transition,
} from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { createTable } from '../../tools/tables.js';
import { dropTable, freshTable, readItem, recordId, testClient, unreachableClient } from '../support/dynamodb.js';
import { flush, gate, Turnstile } from '../support/gate.js';
import { lambdaContext } from '../support/lambda.js';
import { ioredisClient } from '../support/redis.js';
import { rejection, thrown } from '../support/rejections.js';

const T0 = 1_700_000_000_000;
const LEASE_MS = 10_000;

/** Faults of the next `TransactWriteItems`: never sent; applied but the answer lost (with or without the SDK's own retry). */
type Fault = 'beforeSend' | 'responseLost' | 'responseLostSdkRetries';

const networkError = (): Error => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

/** A client of the run's DynamoDB Local that records every command the library sends and can fail one commit. */
class Probe {
  readonly client: DynamoDBClient = testClient();
  /** Command names, one per `send` (the SDK's own retries of a request are not counted). */
  readonly commands: string[] = [];
  /** The `TransactItems` of each commit sent. */
  readonly commits: TransactWriteItem[][] = [];
  /** The ClientRequestToken of each TransactWriteItems on the wire, SDK retries included. */
  readonly wireTokens: string[] = [];
  fault: Fault | undefined;
  /** The next `UpdateItem` (an atomic call's read of its record) never reaches DynamoDB either. */
  readLost = false;
  /**
   * Every `DeleteItem` is refused for a cause no resend changes (a missing grant).
   */
  releaseRefused = false;

  constructor() {
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        this.commands.push(context.commandName!);
        if (context.commandName === 'UpdateItemCommand' && this.readLost) {
          this.readLost = false;
          throw networkError();
        }
        if (context.commandName === 'DeleteItemCommand' && this.releaseRefused) {
          throw Object.assign(new Error('User is not authorized to perform: dynamodb:DeleteItem'), { name: 'AccessDeniedException' });
        }
        if (context.commandName !== 'TransactWriteItemsCommand') return next(args);
        this.commits.push((args.input as TransactWriteItemsCommandInput).TransactItems!);
        if (this.take('beforeSend')) throw networkError();
        const output = await next(args);
        if (this.take('responseLost')) throw networkError();
        return output;
      },
      { step: 'initialize', name: 'probe' },
    );
    // Inside the SDK's retry loop: the request was applied, the answer is lost, and the SDK sends
    // the same serialized request again, with the same ClientRequestToken.
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'TransactWriteItemsCommand') return next(args);
        // The SDK's request body is bytes (a Uint8Array, or text in older SDKs): read it as bytes, not through its string methods.
        const sent = (args.request as { body: Uint8Array | string }).body;
        const text = typeof sent === 'string' ? sent : new TextDecoder().decode(sent);
        const body = JSON.parse(text) as { ClientRequestToken?: string };
        this.wireTokens.push(body.ClientRequestToken!);
        const output = await next(args);
        if (this.take('responseLostSdkRetries')) throw networkError();
        return output;
      },
      { step: 'deserialize', priority: 'high', name: 'probeInsideRetries' },
    );
    probes.push(this);
  }

  /** Commands sent since the last call. */
  drain(): string[] {
    return this.commands.splice(0);
  }

  private take(fault: Fault): boolean {
    if (this.fault !== fault) return false;
    this.fault = undefined;
    return true;
  }
}

const probes: Probe[] = [];
const admin = testClient();
let idemTable: string;
let bizTable: string;

beforeAll(async () => {
  [idemTable, bizTable] = await Promise.all([freshTable(admin), freshTable(admin, 'biz')]);
});
afterAll(async () => {
  for (const probe of probes) probe.client.destroy();
  await Promise.all([dropTable(admin, idemTable), dropTable(admin, bizTable)]);
  admin.destroy();
});

let seq = 0;
const uniqueName = (prefix: string): string => `${prefix}${++seq}`;
const record = (id: string) => readItem(admin, idemTable, id);
const bizItem = (id: string) => readItem(admin, bizTable, id);
/** How many times an increment was applied (0 when the counter item does not exist). */
const applied = async (id: string): Promise<number> => Number((await bizItem(id))?.n?.N ?? 0);

const increment = (id: string) => ({
  TableName: bizTable,
  Key: { id },
  UpdateExpression: 'ADD #n :one',
  ExpressionAttributeNames: { '#n': 'n' },
  ExpressionAttributeValues: { ':one': 1 },
});

/**
 * A reservation under `name` that counts one more reservation and checks that `<name>-stock` exists,
 * in the call's transaction; `runs`: how often its function ran.
 */
/**
 * A function with a catch-all `isFinalError` that adds each of `faults`' writes in turn, each refused
 * as it is added (`refused` checks the call's rejection), then the correct one: every fault must send
 * only the claim and its release and leave no record, so the corrected code runs and commits once.
 */
async function refusedAsAdded(
  label: string,
  faults: Array<(tx: Transaction, name: string) => unknown>,
  refused: (call: Promise<unknown>) => Promise<void>,
): Promise<void> {
  const probe = new Probe();
  const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
  const name = uniqueName(label);
  let fault: ((tx: Transaction, name: string) => unknown) | undefined;
  let runs = 0;
  const fn = makeIdempotent(
    async (_id: string) => {
      runs++;
      const tx = transaction();
      if (fault !== undefined) fault(tx, name);
      else tx.update(increment(`${name}-counter`));
      return 'ok';
    },
    { store, name, now: () => T0, isFinalError: () => true },
  );
  for (fault of faults) {
    await refused(fn('k'));
    expect(probe.drain()).toEqual(['PutItemCommand', 'DeleteItemCommand']);
    expect(await record(recordId(name, 'k'))).toBeUndefined();
  }
  // The corrected code runs and commits, rather than meet the stored fault of the code before it.
  fault = undefined;
  expect(await fn('k')).toBe('ok');
  expect(runs).toBe(faults.length + 1);
  expect(await applied(`${name}-counter`)).toBe(1);
}

function stockReservation(name: string, options: Pick<IdempotencyOptions<{ id: string }>, 'store' | 'transactions' | 'isFinalError'>) {
  let runs = 0;
  const reserve = makeIdempotent(
    async (_input: { id: string }) => {
      runs++;
      transaction()
        .update(increment(`${name}-reservations`))
        .conditionCheck({ TableName: bizTable, Key: { id: `${name}-stock` }, ConditionExpression: 'attribute_exists(id)' });
      return 'reserved';
    },
    { ...options, name, key: (input) => input.id, now: () => T0 },
  );
  return { reserve, runs: () => runs };
}

interface Charge {
  readonly id: string;
  readonly amount: number;
}

/** What a held handler does when the test lets it go on. */
type Step = 'return' | Error;

/**
 * A charge function made idempotent: it puts the payment and increments a charge counter in the
 * call's transaction, then (with `hold`) waits at the turnstile where the test decides its fate.
 */
function chargeFixture(options: Partial<IdempotencyOptions<Charge, LambdaContextLike>> & { hold?: boolean } = {}) {
  const { hold = false, ...engineOptions } = options;
  const probe = new Probe();
  const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
  const name = uniqueName('charge');
  const clock = { t: T0 };
  const turnstile = new Turnstile<Step>();
  const fences: string[] = [];
  const charge = makeIdempotent(
    async (input: Charge) => {
      const tx = transaction();
      fences.push(tx.fence);
      tx.put({ TableName: bizTable, Item: { id: `${name}-payment-${input.id}`, amount: input.amount, fence: tx.fence } });
      tx.update(increment(`${name}-charges-${input.id}`));
      if (hold) {
        const step = await turnstile.enter();
        if (step instanceof Error) throw step;
      }
      return { paid: input.id, run: fences.length };
    },
    // Each call stands for another process: no in-process single-flight.
    { store, transactions: true, name, key: (input) => input.id, now: () => clock.t, leaseSeconds: LEASE_MS / 1000, singleFlight: false, ...engineOptions },
  );
  return {
    probe,
    name,
    clock,
    turnstile,
    fences,
    charge,
    recordId: (id: string) => recordId(name, id),
    /** How many times the charge of `id` was applied. */
    charges: (id: string) => applied(`${name}-charges-${id}`),
    payment: (id: string) => bizItem(`${name}-payment-${id}`),
  };
}

describe('transaction() scope', () => {
  test('outside an idempotent call it throws a TypeError that says so', () => {
    expect(() => transaction()).toThrow(TypeError);
    expect(() => transaction()).toThrow(/^transaction\(\) was called outside an idempotent call/);
  });

  test.each(['InMemoryStore', 'RedisStore'])(
    'on %s, which cannot commit writes, a write added in a call throws a TypeError that says so, nothing is written, and the key is released',
    async (kind) => {
      const redis = kind === 'RedisStore' ? ioredisClient() : undefined;
      try {
        const store = redis === undefined ? new InMemoryStore() : new RedisStore({ client: redis, keyPrefix: `${idemTable}:` });
        let runs = 0;
        const fn = makeIdempotent(
          async (id: string) => {
            runs++;
            transaction().put({ TableName: bizTable, Item: { id: `refused-${kind}-${id}` } });
            return 'charged';
          },
          { store, name: `refused-${kind}` },
        );
        for (const attempt of [1, 2]) {
          expect(await thrown(fn('k'))).toEqual(
            new TypeError(
              "transaction(): the store of this idempotent call cannot commit writes with its record; use the DynamoDBStore of 'lambda-idempotency'.",
            ),
          );
          expect(runs).toBe(attempt); // released: the retry runs again
        }
        expect(await bizItem(`refused-${kind}-k`)).toBeUndefined();
      } finally {
        redis?.disconnect();
      }
    },
  );

  test('a collector kept past the end of its call refuses further writes, and nothing is added to the commit', async () => {
    const probe = new Probe();
    const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
    let kept: Transaction | undefined;
    const fn = makeIdempotent(
      async (id: string) => {
        kept = transaction();
        kept.update(increment(`kept-${id}`));
        return id;
      },
      { store, transactions: true, name: uniqueName('kept') },
    );
    await fn('a');
    expect(() => kept!.put({ TableName: bizTable, Item: { id: 'late' } })).toThrow(/already ended/);
    expect(() => transaction()).toThrow(/outside an idempotent call/);
    expect(probe.commits).toHaveLength(1);
    expect(probe.commits[0]).toHaveLength(2);
    expect(await bizItem('late')).toBeUndefined();
  });
  test("work a call left running that asks for transaction() once the call ended gets a TypeError, not the ended call's collector or key", async () => {
    const store = new DynamoDBStore({ tableName: idemTable, client: testClient() });
    const later = gate();
    let left: Promise<unknown> | undefined;
    const fn = makeIdempotent(
      async (id: string) => {
        // Not awaited: it runs on in this call's async context after the call returned.
        left = later.promise.then(() => {
          try {
            return transaction().key;
          } catch (error) {
            return error;
          }
        });
        return id;
      },
      { store, transactions: true, name: uniqueName('left-running') },
    );
    await fn('a');
    later.open();
    expect(await left).toEqual(new TypeError('transaction(): this idempotent call has already ended; its transaction is committed or discarded.'));
  });
});

describe('transactional completion', () => {
  test('makeIdempotent: the writes and the COMPLETED record commit in one TransactWriteItems (claim + commit = 2 requests); a duplicate replays with 1', async () => {
    const f = chargeFixture();
    const result = await f.charge({ id: 'p1', amount: 100 });
    expect(result).toEqual({ paid: 'p1', run: 1 });
    expect(f.probe.drain()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand']);
    const [commit] = f.probe.commits;
    expect(commit).toHaveLength(3);
    expect(commit![0]!.Update).toMatchObject({
      TableName: idemTable,
      Key: { id: { S: f.recordId('p1') } },
      ConditionExpression: '#owner = :owner AND #status = :inprogress',
    });
    expect(commit![1]!.Put).toMatchObject({ TableName: bizTable, Item: { id: { S: `${f.name}-payment-p1` }, amount: { N: '100' } } });
    expect(commit![2]!.Update).toMatchObject({ TableName: bizTable, Key: { id: { S: `${f.name}-charges-p1` } } });

    expect(await record(f.recordId('p1'))).toMatchObject({ status: { S: 'COMPLETED' }, owner: { S: f.fences[0] }, response: { S: '{"paid":"p1","run":1}' } });
    expect(await f.payment('p1')).toMatchObject({ amount: { N: '100' }, fence: { S: f.fences[0] } });
    expect(await f.charges('p1')).toBe(1);

    expect(await f.charge({ id: 'p1', amount: 100 })).toEqual({ paid: 'p1', run: 1 });
    expect(f.probe.drain()).toEqual(['PutItemCommand']);
    expect(f.fences).toHaveLength(1);
    expect(await f.charges('p1')).toBe(1);
  });

  test("middy: the handler's writes commit with the record in one TransactWriteItems; a duplicate replays without running", async () => {
    const probe = new Probe();
    const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
    const functionName = uniqueName('mw');
    let runs = 0;
    const handler = middy(async (event: Charge) => {
      runs++;
      transaction()
        .put({ TableName: bizTable, Item: { id: `${functionName}-payment-${event.id}`, amount: event.amount } })
        .update(increment(`${functionName}-charges-${event.id}`));
      return { paid: event.id };
    }).use(idempotency({ store, transactions: true, key: (event: Charge) => event.id, now: () => T0 }));

    expect(await handler({ id: 'm1', amount: 5 }, lambdaContext(functionName, LEASE_MS))).toEqual({ paid: 'm1' });
    expect(probe.drain()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand']);
    expect(probe.commits[0]!.map((item) => Object.keys(item)[0])).toEqual(['Update', 'Put', 'Update']);
    expect(await record(recordId(functionName, 'm1'))).toMatchObject({ status: { S: 'COMPLETED' } });
    expect(await bizItem(`${functionName}-payment-m1`)).toMatchObject({ amount: { N: '5' } });

    expect(await handler({ id: 'm1', amount: 5 }, lambdaContext(functionName, LEASE_MS))).toEqual({ paid: 'm1' });
    expect(probe.drain()).toEqual(['PutItemCommand']);
    expect(runs).toBe(1);
    expect(await applied(`${functionName}-charges-m1`)).toBe(1);
    expect(() => transaction()).toThrow(/outside an idempotent call/);
  });

  test.each(['middy', 'makeIdempotent'] as const)('%s: concurrent calls each collect into their own transaction', async (entry) => {
    const probe = new Probe();
    const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
    const turnstile = new Turnstile<void>();
    const namespace = uniqueName('conc');
    const body = async (event: { id: string; writes: number }) => {
      const tx = transaction();
      await turnstile.enter();
      // Resumed after both calls are inside: any shared collector would now mix their writes.
      for (let i = 0; i < event.writes; i++) tx.put({ TableName: bizTable, Item: { id: `${namespace}-${event.id}-${i}` } });
      expect(transaction()).toBe(tx);
      return tx.fence;
    };
    const options = { store, transactions: true, key: (event: { id: string }) => event.id, now: () => T0 };
    const handler = middy(body).use(idempotency(options));
    const call =
      entry === 'middy'
        ? (event: { id: string; writes: number }) => handler(event, lambdaContext(namespace, LEASE_MS))
        : makeIdempotent(body, { ...options, name: namespace });
    const a = call({ id: 'a', writes: 1 });
    const b = call({ id: 'b', writes: 2 });
    const first = await turnstile.next();
    const second = await turnstile.next();
    second.open();
    await flush();
    first.open();
    const [fenceA, fenceB] = await Promise.all([a, b]);

    expect(fenceA).not.toBe(fenceB);
    expect(probe.commits.map((commit) => commit.length).sort()).toEqual([2, 3]);
    for (const commit of probe.commits) {
      const owner = commit[0]!.Update!.ExpressionAttributeValues![':owner']!.S;
      const id = owner === fenceA ? 'a' : 'b';
      expect(commit.slice(1).map((item) => item.Put!.Item!.id!.S)).toEqual(id === 'a' ? [`${namespace}-a-0`] : [`${namespace}-b-0`, `${namespace}-b-1`]);
    }
    expect(await record(recordId(namespace, 'a'))).toMatchObject({ owner: { S: fenceA } });
    expect(await record(recordId(namespace, 'b'))).toMatchObject({ owner: { S: fenceB } });
  });

  test('a failed business condition: TRANSACTION_CONDITION_FAILED naming the write and its table (in fields: an HTTP error handler may send the message, a 409, to the client), nothing written, the record released', async () => {
    const probe = new Probe();
    const name = uniqueName('cond');
    const { reserve, runs } = stockReservation(name, { store: new DynamoDBStore({ tableName: idemTable, client: probe.client }), transactions: true });
    const error = await rejection(reserve({ id: 'r1' }));
    expect(error.code).toBe('TRANSACTION_CONDITION_FAILED');
    expect(error.actionIndex).toBe(1);
    expect(error.tableName).toBe(bizTable);
    expect([error.statusCode, error.expose, error.message.includes(bizTable)]).toEqual([409, true, false]);
    expect(probe.drain()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand', 'DeleteItemCommand']);
    expect(await applied(`${name}-reservations`)).toBe(0);
    expect(await record(recordId(name, 'r1'))).toBeUndefined();

    // Released: once the condition holds, a retry runs again and commits.
    await admin.send(new PutItemCommand({ TableName: bizTable, Item: { id: { S: `${name}-stock` } } }));
    expect(await reserve({ id: 'r1' })).toBe('reserved');
    expect(runs()).toBe(2);
    expect(await applied(`${name}-reservations`)).toBe(1);
  });

  test('a failed business condition releases the key even when isFinalError keeps every error: the result is discarded, a retry runs again', async () => {
    const name = uniqueName('cond-final');
    const { reserve, runs } = stockReservation(name, { store: new DynamoDBStore({ tableName: idemTable, client: admin }), isFinalError: () => true });
    expect((await rejection(reserve({ id: 'r1' }))).code).toBe('TRANSACTION_CONDITION_FAILED');
    expect(await record(recordId(name, 'r1'))).toBeUndefined();
    expect((await rejection(reserve({ id: 'r1' }))).code).toBe('TRANSACTION_CONDITION_FAILED');
    expect(runs()).toBe(2);
    expect(await applied(`${name}-reservations`)).toBe(0);
  });

  test.each(['the stale attempt commits last', 'the stale attempt commits first'] as const)(
    'two attempts racing across a lease takeover charge exactly once (%s)',
    async (order) => {
      const f = chargeFixture({ hold: true });
      const stale = f.charge({ id: 'race', amount: 10 });
      const staleGate = await f.turnstile.next(); // writes collected, then stuck past its lease
      f.clock.t = T0 + LEASE_MS + 1;
      const fresh = f.charge({ id: 'race', amount: 10 });
      const freshGate = await f.turnstile.next();
      expect(f.fences).toHaveLength(2);
      expect(f.fences[1]).not.toBe(f.fences[0]);
      expect(await record(f.recordId('race'))).toMatchObject({ status: { S: 'INPROGRESS' }, owner: { S: f.fences[1] } });

      let staleError: IdempotencyError;
      if (order === 'the stale attempt commits last') {
        freshGate.open('return');
        expect(await fresh).toEqual({ paid: 'race', run: 2 });
        staleGate.open('return');
        staleError = await rejection(stale);
      } else {
        staleGate.open('return');
        staleError = await rejection(stale);
        expect(await f.charges('race')).toBe(0);
        freshGate.open('return');
        expect(await fresh).toEqual({ paid: 'race', run: 2 });
      }
      expect(staleError.code).toBe('SUPERSEDED');
      expect(await f.charges('race')).toBe(1);
      expect(await f.payment('race')).toMatchObject({ fence: { S: f.fences[1] } });
      expect(await record(f.recordId('race'))).toMatchObject({ status: { S: 'COMPLETED' }, owner: { S: f.fences[1] } });
      // The stale attempt's commit was sent and refused as a whole.
      expect(f.probe.commits).toHaveLength(2);
    },
  );

  test("both our record's condition and a business condition refused: DynamoDB reports both, and the record's refusal wins (the other attempt's record, nothing written)", async () => {
    const store = new DynamoDBStore({ tableName: idemTable, client: admin });
    const key = recordId(uniqueName('both'), 'k');
    const expiresAt = T0 / 1000 + 86_400;
    await store.claim({ key, owner: 'other', leaseUntil: T0 + LEASE_MS, expiresAt, now: T0 });
    const counter = uniqueName('both-counter');
    const writes: TransactWriteItem[] = [
      { Update: { TableName: bizTable, Key: { id: { S: counter } }, UpdateExpression: 'ADD n :one', ExpressionAttributeValues: { ':one': { N: '1' } } } },
      { ConditionCheck: { TableName: bizTable, Key: { id: { S: `${counter}-absent` } }, ConditionExpression: 'attribute_exists(id)' } },
    ];
    const result = await store.completeWithWrites({ key, owner: 'mine', expiresAt, response: '1' }, writes);
    expect(result).toStrictEqual({ completed: false, record: { key, status: 'INPROGRESS', owner: 'other', expiresAt, leaseUntil: T0 + LEASE_MS } });
    expect(await applied(counter)).toBe(0);
  });

  test('limits: a 100th write and a second write on one item (its key, or a put of an item holding it) are TRANSACTION_INVALID as they are added; two puts of one item, which name no key, are refused by DynamoDB; the record is released each time', async () => {
    const probe = new Probe();
    const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
    const name = uniqueName('limits');
    let runs = 0;
    const fn = makeIdempotent(
      async (input: { id: string; writes: number; twice?: 'update' | 'put' | 'updateThenPut' }) => {
        runs++;
        const tx = transaction();
        for (let i = 0; i < input.writes; i++) tx.put({ TableName: bizTable, Item: { id: `${name}-${input.id}-${i}` } });
        if (input.twice === 'update') tx.update(increment(`${name}-${input.id}-0`));
        if (input.twice === 'updateThenPut') {
          tx.update(increment(`${name}-${input.id}-0`));
          tx.put({ TableName: bizTable, Item: { id: `${name}-${input.id}-0`, again: true } });
        }
        if (input.twice === 'put') tx.put({ TableName: bizTable, Item: { id: `${name}-${input.id}-0`, again: true } });
        return 'ok';
      },
      { store, transactions: true, name, key: (input) => input.id, now: () => T0 },
    );

    const tooMany = await rejection(fn({ id: 'many', writes: 100 })); // + the record = 101 actions
    expect(tooMany).toMatchObject({ code: 'TRANSACTION_INVALID', actionIndex: 99, tableName: bizTable });
    expect(tooMany.message).toBe(
      'TRANSACTION_INVALID: transaction(): a call commits at most 99 writes (its record is the 100th action DynamoDB takes in one transaction); write 99 is one too many.',
    );
    // Refused before anything is sent: the claim, then its release.
    expect(probe.drain()).toEqual(['PutItemCommand', 'DeleteItemCommand']);
    expect(await record(recordId(name, 'many'))).toBeUndefined();
    expect(await bizItem(`${name}-many-0`)).toBeUndefined();

    const sameItem = await rejection(fn({ id: 'twice', writes: 1, twice: 'update' }));
    expect(sameItem).toMatchObject({ code: 'TRANSACTION_INVALID', actionIndex: 1, tableName: bizTable });
    expect(sameItem.message).toMatch(/^TRANSACTION_INVALID: transaction\(\): write 1 is on the item of write 0/);
    expect(probe.drain()).toEqual(['PutItemCommand', 'DeleteItemCommand']);
    expect(await record(recordId(name, 'twice'))).toBeUndefined();
    expect(await bizItem(`${name}-twice-0`)).toBeUndefined();

    // A put after a write naming its key: the put's item holds that key.
    const putOnKey = await rejection(fn({ id: 'keyed', writes: 0, twice: 'updateThenPut' }));
    expect(putOnKey).toMatchObject({ code: 'TRANSACTION_INVALID', actionIndex: 1, tableName: bizTable });
    expect(putOnKey.message).toMatch(/^TRANSACTION_INVALID: transaction\(\): write 1 is on the item of write 0/);
    expect(probe.drain()).toEqual(['PutItemCommand', 'DeleteItemCommand']);
    expect(await record(recordId(name, 'keyed'))).toBeUndefined();
    expect(await bizItem(`${name}-keyed-0`)).toBeUndefined();

    const samePut = await rejection(fn({ id: 'puts', writes: 1, twice: 'put' }));
    expect(samePut.code).toBe('TRANSACTION_INVALID');
    expect(samePut.message).toMatch(/multiple operations on one item/);
    expect(probe.drain()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand', 'DeleteItemCommand']);
    expect(await record(recordId(name, 'puts'))).toBeUndefined();
    expect(await bizItem(`${name}-puts-0`)).toBeUndefined();

    // The limit counts the record: 99 writes + the record = 100 actions commit.
    expect(await fn({ id: 'many', writes: 99 })).toBe('ok');
    expect(runs).toBe(5);
    expect(await bizItem(`${name}-many-98`)).toBeDefined();
  });

  test('limits: a TRANSACTION_INVALID a write throws as it is added is never stored, whatever isFinalError says: the key is released, and the corrected code runs', async () => {
    await refusedAsAdded('invalid-final', [(tx, name) => tx.update(increment(`${name}-counter`)).update(increment(`${name}-counter`))], async (call) =>
      expect(await rejection(call)).toMatchObject({ code: 'TRANSACTION_INVALID', actionIndex: 1 }),
    );
  });

  test('limits: a TypeError a write throws as it is added (a `Key` holding undefined, a value DynamoDB cannot store, a missing `UpdateExpression`, a malformed transition()) is never stored, whatever isFinalError says: the key is released, and the corrected code runs', async () => {
    await refusedAsAdded(
      'typeerror-final',
      [
        (tx, name) => tx.update({ ...increment(`${name}-counter`), Key: { id: undefined } }),
        (tx, name) => tx.put({ TableName: bizTable, Item: { id: `${name}-item`, at: new Date(T0) } }),
        (tx, name) => tx.update({ ...increment(`${name}-counter`), UpdateExpression: undefined as unknown as string }),
        (tx, name) => tx.update(transition({ TableName: bizTable, Key: { id: `${name}-item` }, from: 'PAID', to: 'REFUNDED', set: { note: undefined } })),
      ],
      async (call) => expect(await thrown(call)).toBeInstanceOf(TypeError),
    );
  });

  test('a parameter a write does not take (a misspelt `conditionExpression`, a `Key` on a put, an `UpdateExpression` on a delete) is a TypeError as the write is added, never a write without the guard it meant: the key is released, and the corrected code runs', async () => {
    const unknown = (action: string, parameter: string) => async (call: Promise<unknown>) => {
      const error = await thrown(call);
      expect(error).toBeInstanceOf(TypeError);
      expect(error.message).toMatch(new RegExp(`^transaction\\(\\)\\.${action}: unknown parameter \`${parameter}\``));
    };
    await refusedAsAdded(
      'misspelt-condition',
      [(tx, name) => tx.put({ TableName: bizTable, Item: { id: `${name}-once` }, conditionExpression: 'attribute_not_exists(id)' } as never)],
      unknown('put', 'conditionExpression'),
    );
    await refusedAsAdded(
      'put-key',
      [(tx, name) => tx.put({ TableName: bizTable, Item: { id: `${name}-once` }, Key: { id: `${name}-once` } } as never)],
      unknown('put', 'Key'),
    );
    await refusedAsAdded(
      'delete-update',
      [(tx, name) => tx.delete({ TableName: bizTable, Key: { id: `${name}-once` }, UpdateExpression: 'SET n = :n' } as never)],
      unknown('delete', 'UpdateExpression'),
    );
  });

  test('the answer parameters of a single-item command spread into a write (ReturnValues, ReturnConsumedCapacity, ReturnItemCollectionMetrics) are left out, as a transaction action has no answer of its own: the write commits', async () => {
    const probe = new Probe();
    const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
    const name = uniqueName('answer-only');
    const answerOnly = { ReturnValues: 'ALL_OLD', ReturnConsumedCapacity: 'TOTAL', ReturnItemCollectionMetrics: 'SIZE' } as const;
    const once = makeIdempotent(
      async (_id: string) => {
        transaction()
          .put({ TableName: bizTable, Item: { id: `${name}-item`, n: 1 }, ...answerOnly } as never)
          .update({ ...increment(`${name}-counter`), ...answerOnly } as never);
        return 'written';
      },
      { store, name, now: () => T0 },
    );
    expect(await once('k')).toBe('written');
    const actions = probe.commits[0]!.slice(1);
    expect(actions.map((action) => Object.keys(action.Put ?? action.Update ?? {}).filter((key) => key.startsWith('Return')))).toEqual([[], []]);
    expect(await applied(`${name}-counter`)).toBe(1);
    expect(await applied(`${name}-item`)).toBe(1);
  });

  test("ReturnValuesOnConditionCheckFailure: 'ALL_OLD' on a write is sent: its failed condition is TRANSACTION_CONDITION_FAILED naming it, the item it met in the cause's cancellation reason; nothing written, the key released", async () => {
    const probe = new Probe();
    const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
    const name = uniqueName('rv-old');
    await admin.send(new PutItemCommand({ TableName: bizTable, Item: { id: { S: `${name}-payment` }, status: { S: 'REFUNDED' } } }));
    const refund = makeIdempotent(
      async (_id: string) => {
        transaction()
          .update(increment(`${name}-counter`))
          .update({
            TableName: bizTable,
            Key: { id: `${name}-payment` },
            UpdateExpression: 'SET #s = :to',
            ConditionExpression: '#s = :from',
            ExpressionAttributeNames: { '#s': 'status' },
            ExpressionAttributeValues: { ':to': 'REFUNDED', ':from': 'PAID' },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          });
        return 'refunded';
      },
      { store, name, now: () => T0 },
    );
    const error = await rejection(refund('k'));
    expect(error).toMatchObject({ code: 'TRANSACTION_CONDITION_FAILED', actionIndex: 1, tableName: bizTable });
    expect(probe.commits[0]![2]!.Update!.ReturnValuesOnConditionCheckFailure).toBe('ALL_OLD');
    const reasons = (error.cause as { CancellationReasons: { Code: string; Item?: unknown }[] }).CancellationReasons;
    expect(reasons[error.actionIndex! + 1]).toEqual({
      Code: 'ConditionalCheckFailed',
      Message: expect.any(String),
      Item: marshall({ id: `${name}-payment`, status: 'REFUNDED' }),
    });
    expect(probe.drain()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand', 'DeleteItemCommand']);
    expect(await applied(`${name}-counter`)).toBe(0);
    expect(await record(recordId(name, 'k'))).toBeUndefined();
  });

  test('limits: an ExpressionAttributeValues value undefined where the expression uses it is TRANSACTION_INVALID as the write is added, never stored, whatever isFinalError says: the key is released, as by the commit DynamoDB would refuse, and the corrected code runs', async () => {
    await refusedAsAdded(
      'undefined-value',
      [(tx, name) => tx.update({ ...increment(`${name}-counter`), ExpressionAttributeValues: { ':one': undefined } })],
      async (call) => expect(await rejection(call)).toMatchObject({ code: 'TRANSACTION_INVALID', actionIndex: 0, tableName: bizTable }),
    );
  });

  test("a write on the call's own record (a put of an item holding its key, an update, a delete, a condition check) is TRANSACTION_INVALID as it is added: no commit is sent, the key is released; another item of the idempotency table commits", async () => {
    const probe = new Probe();
    const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
    const name = uniqueName('own-record');
    const writes: Record<string, (tx: Transaction) => unknown> = {
      put: (tx) => tx.put({ TableName: idemTable, Item: { id: tx.key, note: 'mine' } }),
      update: (tx) =>
        tx.update({
          TableName: idemTable,
          Key: { id: tx.key },
          UpdateExpression: 'SET #n = :n',
          ExpressionAttributeNames: { '#n': 'note' },
          ExpressionAttributeValues: { ':n': 'mine' },
        }),
      delete: (tx) => tx.delete({ TableName: idemTable, Key: { id: tx.key } }),
      conditionCheck: (tx) => tx.conditionCheck({ TableName: idemTable, Key: { id: tx.key }, ConditionExpression: 'attribute_exists(id)' }),
      other: (tx) => tx.put({ TableName: idemTable, Item: { id: `${tx.key}-note`, note: 'mine' } }),
    };
    let runs = 0;
    const fn = makeIdempotent(
      async (write: string) => {
        runs++;
        const tx = transaction().update(increment(`${name}-${write}`));
        writes[write]!(tx);
        return 'ok';
      },
      { store, name, now: () => T0 },
    );
    for (const write of ['put', 'update', 'delete', 'conditionCheck']) {
      const refused = await rejection(fn(write));
      expect(refused).toMatchObject({ code: 'TRANSACTION_INVALID', actionIndex: 1, tableName: idemTable });
      expect(refused.message).toBe(
        "TRANSACTION_INVALID: transaction(): write 1 is on the item of this call's idempotency record, which its commit writes (DynamoDB takes one action per item in a transaction): keep the call's data in another item.",
      );
      // Refused before anything is sent: the claim, then its release.
      expect(probe.drain()).toEqual(['PutItemCommand', 'DeleteItemCommand']);
      expect(await record(recordId(name, write))).toBeUndefined();
      expect(await applied(`${name}-${write}`)).toBe(0);
    }
    expect(await fn('other')).toBe('ok');
    expect(runs).toBe(5);
    expect(await record(`${recordId(name, 'other')}-note`)).toEqual({ id: { S: `${recordId(name, 'other')}-note` }, note: { S: 'mine' } });
    expect(await record(recordId(name, 'other'))).toMatchObject({ status: { S: 'COMPLETED' } });
  });

  test("atomic: true, on a table whose key attribute is renamed (attributes.key): a write on the call's own record, named by that attribute, is TRANSACTION_INVALID as it is added, and nothing is committed", async () => {
    const table = `${uniqueName('renamed')}-${Date.now()}`;
    await createTable(admin, table, { partitionKey: { name: 'pk', type: 'S' } });
    try {
      const probe = new Probe();
      const store = new DynamoDBStore({ tableName: table, client: probe.client, attributes: { key: 'pk' } });
      const name = uniqueName('renamed-record');
      const fn = makeIdempotent(
        async (id: string) => {
          transaction()
            .put({ TableName: bizTable, Item: { id: `${name}-${id}` } })
            .delete({ TableName: table, Key: { pk: transaction().key } });
          return 'ok';
        },
        { store, name, atomic: true, now: () => T0 },
      );
      const refused = await rejection(fn('a'));
      expect(refused).toMatchObject({ code: 'TRANSACTION_INVALID', actionIndex: 1, tableName: table });
      expect(probe.commits).toHaveLength(0);
      const stored = await admin.send(new GetItemCommand({ TableName: table, Key: { pk: { S: recordId(name, 'a') } }, ConsistentRead: true }));
      expect(stored.Item).toBeUndefined();
      expect(await bizItem(`${name}-a`)).toBeUndefined();
    } finally {
      await dropTable(admin, table);
    }
  });

  test("a nested call's writes are judged against its own record, the outer call's against the outer record: each refuses a write on its own as it is added, and both commit their other writes", async () => {
    const store = new DynamoDBStore({ tableName: idemTable, client: testClient() });
    const name = uniqueName('nested-record');
    const refusals: Record<string, unknown> = {};
    const onOwnRecord = (who: string) => {
      const tx = transaction();
      try {
        tx.update({
          TableName: idemTable,
          Key: { id: tx.key },
          UpdateExpression: 'SET #n = :n',
          ExpressionAttributeNames: { '#n': 'note' },
          ExpressionAttributeValues: { ':n': who },
        });
      } catch (error) {
        refusals[who] = error;
      }
      tx.update(increment(`${name}-${who}`));
    };
    const inner = makeIdempotent(
      async (id: string) => {
        onOwnRecord('inner');
        return `inner ${id}`;
      },
      { store, name: `${name}-inner`, now: () => T0 },
    );
    const outer = makeIdempotent(
      async (id: string) => {
        const answer = await inner(id);
        onOwnRecord('outer');
        return answer;
      },
      { store, name: `${name}-outer`, now: () => T0 },
    );
    expect(await outer('n1')).toBe('inner n1');
    expect(refusals).toEqual({
      inner: expect.objectContaining({ code: 'TRANSACTION_INVALID', actionIndex: 0 }),
      outer: expect.objectContaining({ code: 'TRANSACTION_INVALID', actionIndex: 0 }),
    });
    expect([await applied(`${name}-inner`), await applied(`${name}-outer`)]).toEqual([1, 1]);
    for (const who of ['inner', 'outer']) {
      const item = await record(recordId(`${name}-${who}`, 'n1'));
      expect(item).toMatchObject({ status: { S: 'COMPLETED' } });
      expect(item?.note).toBeUndefined();
    }
  });

  test("a nested call's write on the record of the call it is nested in (a delete, a put of an item holding its key) is TRANSACTION_INVALID as it is added, a condition check on it commits: the outer record is neither removed nor replaced, and both complete", async () => {
    const store = new DynamoDBStore({ tableName: idemTable, client: testClient() });
    const name = uniqueName('nested-outer-record');
    const refusals: unknown[] = [];
    let outerKey = '';
    let runs = 0;
    const inner = makeIdempotent(
      async (id: string) => {
        const tx = transaction();
        for (const write of [
          () => tx.delete({ TableName: idemTable, Key: { id: outerKey } }),
          () => tx.put({ TableName: idemTable, Item: { id: outerKey, status: 'COMPLETED' } }),
        ]) {
          try {
            write();
          } catch (error) {
            refusals.push(error);
          }
        }
        // A condition on it changes nothing: the inner call commits only while the outer one holds its record.
        tx.conditionCheck({
          TableName: idemTable,
          Key: { id: outerKey },
          ConditionExpression: '#s = :held',
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: { ':held': 'INPROGRESS' },
        });
        tx.update(increment(`${name}-inner`));
        return `inner ${id}`;
      },
      { store, name: `${name}-inner`, now: () => T0 },
    );
    const outer = makeIdempotent(
      async (id: string) => {
        runs++;
        outerKey = transaction().key;
        return inner(id);
      },
      { store, name: `${name}-outer`, now: () => T0 },
    );
    expect(await outer('n1')).toBe('inner n1');
    expect(refusals).toEqual([
      expect.objectContaining({ code: 'TRANSACTION_INVALID', actionIndex: 0, message: expect.stringMatching(/record of a call this one is nested in/) }),
      expect.objectContaining({ code: 'TRANSACTION_INVALID', actionIndex: 0, message: expect.stringMatching(/record of a call this one is nested in/) }),
    ]);
    expect(await applied(`${name}-inner`)).toBe(1);
    expect(await record(outerKey)).toMatchObject({ status: { S: 'COMPLETED' } });
    expect(await record(recordId(`${name}-inner`, 'n1'))).toMatchObject({ status: { S: 'COMPLETED' } });
    expect(await outer('n1')).toBe('inner n1');
    expect(runs).toBe(1);
  });

  test('writes on distinct items whose numeric keys differ only past a double\'s precision (BigInt keys) commit; one number written two ways ("5", "5.0") is one item', async () => {
    const numbers = `${uniqueName('num')}-${Date.now()}`;
    await createTable(admin, numbers, { partitionKey: { name: 'id', type: 'N' } });
    try {
      const store = new DynamoDBStore({ tableName: idemTable, client: testClient() });
      const name = uniqueName('numeric-keys');
      const set = (id: bigint | number | NumberValue) => ({
        TableName: numbers,
        Key: { id },
        UpdateExpression: 'SET #n = :n',
        ExpressionAttributeNames: { '#n': 'n' },
        ExpressionAttributeValues: { ':n': 1 },
      });
      const fn = makeIdempotent(
        async (input: string) => {
          const tx = transaction();
          if (input === 'big')
            tx.update(set(12345678901234567890n))
              .update(set(12345678901234567891n))
              .put({ TableName: numbers, Item: { id: 12345678901234567892n } });
          else tx.update(set(5)).update(set(NumberValue.from('5.0')));
          return 'ok';
        },
        { store, name, now: () => T0 },
      );
      expect(await fn('big')).toBe('ok');
      const read = async (id: string) => (await admin.send(new GetItemCommand({ TableName: numbers, Key: { id: { N: id } }, ConsistentRead: true }))).Item;
      expect(await read('12345678901234567890')).toBeDefined();
      expect(await read('12345678901234567891')).toBeDefined();
      expect(await read('12345678901234567892')).toBeDefined();
      const same = await rejection(fn('same'));
      expect(same).toMatchObject({ code: 'TRANSACTION_INVALID', actionIndex: 1 });
      expect(same.message).toMatch(/^TRANSACTION_INVALID: transaction\(\): write 1 is on the item of write 0/);
    } finally {
      await dropTable(admin, numbers);
    }
  });

  test("a write DynamoDB refuses on its own (a key of the wrong type): TRANSACTION_INVALID naming the write, its table and DynamoDB's reason; nothing written, the record released", async () => {
    const store = new DynamoDBStore({ tableName: idemTable, client: testClient() });
    const name = uniqueName('invalid-write');
    const fn = makeIdempotent(
      async (_id: string) => {
        transaction()
          .update(increment(`${name}-counter`))
          .update({
            TableName: bizTable,
            Key: { id: 7 },
            UpdateExpression: 'SET #n = :n',
            ExpressionAttributeNames: { '#n': 'n' },
            ExpressionAttributeValues: { ':n': 1 },
          });
        return 'ok';
      },
      { store, name, now: () => T0 },
    );
    const error = await rejection(fn('w1'));
    expect(error.code).toBe('TRANSACTION_INVALID');
    expect([error.actionIndex, error.tableName]).toEqual([1, bizTable]);
    expect(error.message).toMatch(
      /^TRANSACTION_INVALID: DynamoDB refused transaction write 1: ValidationError \(.*Type mismatch for key.*\); nothing was written\.$/,
    );
    expect(error.message.includes(bizTable)).toBe(false);
    expect(await applied(`${name}-counter`)).toBe(0);
    expect(await record(recordId(name, 'w1'))).toBeUndefined();
  });

  test.each([false, true])(
    'atomic: %s; a key given as a bare value, or names given as an array, is a TypeError as the write is added, not a commit DynamoDB cannot read (COMMIT_FAILED)',
    async (atomic) => {
      const store = new DynamoDBStore({ tableName: idemTable, client: testClient() });
      const name = uniqueName('bare-key');
      const refused: unknown[] = [];
      const fn = makeIdempotent(
        async (id: string) => {
          const tx = transaction().update(increment(`${name}-counter`));
          for (const write of [
            () => tx.delete({ TableName: bizTable, Key: `${name}-${id}` as never }),
            () => tx.conditionCheck({ TableName: bizTable, Key: 7 as never, ConditionExpression: 'attribute_exists(id)' }),
            () =>
              tx.put({
                TableName: bizTable,
                Item: { id: `${name}-put` },
                ConditionExpression: 'attribute_not_exists(#i)',
                ExpressionAttributeNames: ['id'] as never,
              }),
          ]) {
            try {
              write();
            } catch (error) {
              refused.push(error);
            }
          }
          return 'ok';
        },
        { store, name, atomic, now: () => T0 },
      );
      expect(await fn('w1')).toBe('ok');
      expect(refused.map((error) => (error instanceof TypeError ? (error as Error).message : error))).toEqual([
        "transaction().delete: `Key` must be an object of attribute names and values ({ id: 'p-1' }).",
        "transaction().conditionCheck: `Key` must be an object of attribute names and values ({ id: 'p-1' }).",
        "transaction().put: `ExpressionAttributeNames` must be an object of placeholders and attribute names ({ '#s': 'status' }).",
      ]);
      expect(await applied(`${name}-counter`)).toBe(1);
      expect((await record(recordId(name, 'w1')))?.status?.S).toBe('COMPLETED');
    },
  );

  test("a write of an item over 400 KB: TRANSACTION_INVALID naming the write, its table and DynamoDB's reason; nothing written, the record released", async () => {
    const store = new DynamoDBStore({ tableName: idemTable, client: testClient() });
    const name = uniqueName('large-write');
    const fn = makeIdempotent(
      async (_id: string) => {
        transaction()
          .update(increment(`${name}-counter`))
          .put({ TableName: bizTable, Item: { id: `${name}-large`, blob: 'x'.repeat(410 * 1024) } });
        return 'ok';
      },
      { store, name, now: () => T0 },
    );
    const error = await rejection(fn('w1'));
    expect(error.code).toBe('TRANSACTION_INVALID');
    expect([error.actionIndex, error.tableName]).toEqual([1, bizTable]);
    expect(error.message).toMatch(/^TRANSACTION_INVALID: DynamoDB refused transaction write 1: .*size.*; nothing was written\.$/i);
    expect(error.message.includes(bizTable)).toBe(false);
    expect(await applied(`${name}-counter`)).toBe(0);
    expect(await record(recordId(name, 'w1'))).toBeUndefined();
  });

  test('a result that is not stored (an HTTP 5xx or 429, released for a retry) discards the writes; a stored 4xx commits them with the record', async () => {
    const store = new DynamoDBStore({ tableName: idemTable, client: testClient() });
    const name = uniqueName('http-writes');
    const runs: string[] = [];
    const handler = middy(async (event: { body: string }) => {
      runs.push(event.body);
      transaction().update(increment(`${name}-${event.body}`));
      return { statusCode: Number(event.body) };
    }).use(httpIdempotency({ store, name, now: () => T0 }));
    const request = (status: string) => ({
      httpMethod: 'POST',
      path: '/pay',
      headers: { 'Idempotency-Key': `key-${status}` },
      body: status,
      requestContext: {},
    });
    for (const status of ['503', '429', '400']) expect(await handler(request(status) as never, lambdaContext(name))).toEqual({ statusCode: Number(status) });
    expect([await applied(`${name}-503`), await applied(`${name}-429`), await applied(`${name}-400`)]).toEqual([0, 0, 1]);
    // Released: a retry runs again (and its writes commit once it answers a result that is stored); the 400 replays.
    await handler(request('503') as never, lambdaContext(name));
    await handler(request('400') as never, lambdaContext(name));
    expect(runs).toEqual(['503', '429', '400', '503']);
  });
  test('a result an isFinalResponse says is not final (a 200) discards the writes and releases the key, as a 5xx does', async () => {
    const store = new DynamoDBStore({ tableName: idemTable, client: testClient() });
    const name = uniqueName('not-final-writes');
    let runs = 0;
    const handler = middy(async () => {
      runs++;
      transaction().update(increment(`${name}-counter`));
      return { statusCode: 200, body: 'pending' };
    }).use(httpIdempotency({ store, name, now: () => T0, isFinalResponse: () => false }));
    const request = { httpMethod: 'POST', path: '/pay', headers: { 'Idempotency-Key': 'k1' }, body: '{}', requestContext: {} };
    for (const attempt of [1, 2]) {
      expect(await handler(request as never, lambdaContext(name))).toMatchObject({ statusCode: 200, body: 'pending' });
      expect(runs).toBe(attempt);
    }
    expect(await applied(`${name}-counter`)).toBe(0);
  });
});

describe('crash injection: the business effect exists 0 or 1 times, never 2', () => {
  test('the handler throws after collecting its writes: nothing written, released; a retry runs once', async () => {
    const f = chargeFixture({ hold: true });
    const first = f.charge({ id: 'c1', amount: 1 });
    (await f.turnstile.next()).open(new Error('boom after collecting'));
    expect((await thrown(first)).message).toBe('boom after collecting');
    expect(await f.charges('c1')).toBe(0);
    expect(await record(f.recordId('c1'))).toBeUndefined();

    const retry = f.charge({ id: 'c1', amount: 1 });
    (await f.turnstile.next()).open('return');
    expect(await retry).toEqual({ paid: 'c1', run: 2 });
    expect(await f.charges('c1')).toBe(1);
  });

  test('the commit never reaches DynamoDB: COMMIT_FAILED saying nothing was written, and the record is released (its fenced delete leaves the commit nothing to apply to): a retry runs at once', async () => {
    const f = chargeFixture();
    f.probe.fault = 'beforeSend';
    const error = await rejection(f.charge({ id: 'c2', amount: 1 }));
    expect(error.code).toBe('COMMIT_FAILED');
    expect(error.message).toMatch(/nothing was written/);
    expect((error.cause as { code?: string }).code).toBe('ECONNRESET');
    expect(f.probe.drain()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand', 'DeleteItemCommand']);
    expect(await record(f.recordId('c2'))).toBeUndefined();
    expect(await f.charges('c2')).toBe(0);

    expect(await f.charge({ id: 'c2', amount: 1 })).toEqual({ paid: 'c2', run: 2 });
    expect(await f.charges('c2')).toBe(1);
  });

  test('the commit never reaches DynamoDB, and the release is refused: COMMIT_FAILED, the record stays INPROGRESS; after the lease a retry runs once', async () => {
    const warnings: string[] = [];
    const f = chargeFixture({ logger: { warn: (message) => void warnings.push(message) } });
    f.probe.fault = 'beforeSend';
    f.probe.releaseRefused = true;
    const error = await rejection(f.charge({ id: 'c2b', amount: 1 }));
    expect(error.code).toBe('COMMIT_FAILED');
    expect(error.message).toMatch(/may or may not be applied/);
    expect(warnings).toEqual([
      expect.stringContaining(
        'could not release the record after an unanswered commit; unless the release was refused (see `error`), it stays INPROGRESS until its lease ends, or is COMPLETED if the commit applied',
      ),
    ]);
    expect(f.probe.drain()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand', 'DeleteItemCommand']);
    expect(await record(f.recordId('c2b'))).toMatchObject({ status: { S: 'INPROGRESS' }, owner: { S: f.fences[0] } });

    f.clock.t = T0 + LEASE_MS; // not yet past the lease
    expect((await rejection(f.charge({ id: 'c2b', amount: 1 }))).code).toBe('IN_PROGRESS');
    expect(f.fences).toHaveLength(1);

    f.clock.t = T0 + LEASE_MS + 1;
    expect(await f.charge({ id: 'c2b', amount: 1 })).toEqual({ paid: 'c2b', run: 2 });
    expect(await f.charges('c2b')).toBe(1);
  });

  test('the commit is applied but its answer is lost, and the release is refused: COMMIT_FAILED, and the warning does not say the COMPLETED record is INPROGRESS', async () => {
    const warnings: string[] = [];
    const f = chargeFixture({ logger: { warn: (message) => void warnings.push(message) } });
    f.probe.fault = 'responseLost';
    f.probe.releaseRefused = true;
    const error = await rejection(f.charge({ id: 'c3b', amount: 1 }));
    expect(error.code).toBe('COMMIT_FAILED');
    expect(error.message).toMatch(/may or may not be applied/);
    expect(await record(f.recordId('c3b'))).toMatchObject({ status: { S: 'COMPLETED' }, owner: { S: f.fences[0] } });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('or is COMPLETED if the commit applied');
    expect(warnings[0]).not.toContain('could not release the record; unless the release was refused');
  });

  test("the commit is applied but its answer is lost: the fenced release meets the call's own COMPLETED record, so the caller gets its result; every retry replays; the effect exists once", async () => {
    const f = chargeFixture();
    f.probe.fault = 'responseLost';
    expect(await f.charge({ id: 'c3', amount: 1 })).toEqual({ paid: 'c3', run: 1 });
    expect(f.probe.drain()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand', 'DeleteItemCommand']);
    expect(await f.charges('c3')).toBe(1);
    expect(await record(f.recordId('c3'))).toMatchObject({ status: { S: 'COMPLETED' }, owner: { S: f.fences[0] } });

    expect(await f.charge({ id: 'c3', amount: 1 })).toEqual({ paid: 'c3', run: 1 });
    f.clock.t = T0 + LEASE_MS + 1;
    expect(await f.charge({ id: 'c3', amount: 1 })).toEqual({ paid: 'c3', run: 1 });
    expect(f.fences).toHaveLength(1);
    expect(await f.charges('c3')).toBe(1);
  });

  test('the commit is applied, its answer lost and the SDK resends it: the same ClientRequestToken applies nothing twice', async () => {
    const f = chargeFixture();
    f.probe.fault = 'responseLostSdkRetries';
    expect(await f.charge({ id: 'c4', amount: 1 })).toEqual({ paid: 'c4', run: 1 });
    expect(f.probe.fault).toBeUndefined(); // the fault fired
    expect(f.probe.drain()).toEqual(['PutItemCommand', 'TransactWriteItemsCommand']);
    expect(f.probe.wireTokens).toHaveLength(2);
    expect(f.probe.wireTokens[1]).toBe(f.probe.wireTokens[0]);
    expect(await f.charges('c4')).toBe(1);
    expect(await record(f.recordId('c4'))).toMatchObject({ status: { S: 'COMPLETED' } });
  });

  test('the process dies after collecting its writes: nothing written; after the lease a retry runs once; should the dead attempt wake, it is SUPERSEDED', async () => {
    const f = chargeFixture({ hold: true });
    const zombie = f.charge({ id: 'c5', amount: 1 });
    const zombieGate = await f.turnstile.next(); // never let go: the attempt is abandoned
    expect(await f.charges('c5')).toBe(0);
    expect(await record(f.recordId('c5'))).toMatchObject({ status: { S: 'INPROGRESS' }, leaseUntil: { N: String(T0 + LEASE_MS) } });

    expect((await rejection(f.charge({ id: 'c5', amount: 1 }))).code).toBe('IN_PROGRESS');
    f.clock.t = T0 + LEASE_MS + 1;
    const retry = f.charge({ id: 'c5', amount: 1 });
    (await f.turnstile.next()).open('return');
    expect(await retry).toEqual({ paid: 'c5', run: 2 });
    expect(await f.charges('c5')).toBe(1);

    zombieGate.open('return');
    expect((await rejection(zombie)).code).toBe('SUPERSEDED');
    expect(await f.charges('c5')).toBe(1);
    expect(await f.charge({ id: 'c5', amount: 1 })).toEqual({ paid: 'c5', run: 2 });
  });
});

class NotRefundable extends Error {
  override readonly name = 'NotRefundable';
}

type Refund = { readonly id: string; readonly amount?: number };

/**
 * An atomic refund (PAID → REFUNDED) of the fixture's payment whose run reads the payment first:
 * not pure, a duplicate's run fails on the first call's effect (NotRefundable, final only when
 * `isFinalError` says so). Each `refund` is another process (no shared single-flight).
 */
async function refundFixture(options: Partial<IdempotencyOptions<Refund, LambdaContextLike>> = {}) {
  const probe = new Probe();
  const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
  const name = uniqueName('atomicread');
  const paymentId = `${name}-payment`;
  const setPayment = (status: string) => admin.send(new PutItemCommand({ TableName: bizTable, Item: marshall({ id: paymentId, status }) }));
  await setPayment('PAID');
  const clock = { t: T0 };
  const events: IdempotencyEvent[] = [];
  const warnings: string[] = [];
  const fixture = {
    probe,
    store,
    name,
    clock,
    events,
    warnings,
    setPayment,
    runs: 0,
    /** Awaited by every run before it reads the payment, when set. */
    hold: undefined as Promise<unknown> | undefined,
    body: async () => {
      const run = ++fixture.runs;
      await fixture.hold;
      if ((await bizItem(paymentId))?.status?.S !== 'PAID') throw new NotRefundable('not refundable');
      transaction().update(transition({ TableName: bizTable, Key: { id: paymentId }, from: 'PAID', to: 'REFUNDED' }));
      return { refunded: run };
    },
    refund: (more: Partial<IdempotencyOptions<Refund, LambdaContextLike>> = {}) =>
      makeIdempotent(async (_input: Refund) => fixture.body(), {
        store,
        name,
        atomic: true,
        key: (input) => input.id,
        now: () => clock.t,
        observability: (event) => void events.push(event),
        logger: { warn: (line: string) => void warnings.push(line) },
        ...options,
        ...more,
      }),
  };
  return fixture;
}

describe('atomic: true (one round trip)', () => {
  test('first call is exactly 1 request; a duplicate is 1 request and replays the stored response; the writes apply once', async () => {
    const f = chargeFixture({ atomic: true });
    expect(await f.charge({ id: 'a1', amount: 7 })).toEqual({ paid: 'a1', run: 1 });
    expect(f.probe.drain()).toEqual(['TransactWriteItemsCommand']);
    expect(f.probe.commits[0]!.map((item) => Object.keys(item)[0])).toEqual(['Put', 'Put', 'Update']);
    const stored = await record(f.recordId('a1'));
    expect(stored).toMatchObject({ status: { S: 'COMPLETED' }, owner: { S: f.fences[0] }, response: { S: '{"paid":"a1","run":1}' } });
    expect(stored!.leaseUntil).toBeUndefined();
    expect(await f.charges('a1')).toBe(1);

    // The handler runs again (it must be pure) but its result and writes are discarded.
    expect(await f.charge({ id: 'a1', amount: 7 })).toEqual({ paid: 'a1', run: 1 });
    expect(f.probe.drain()).toEqual(['TransactWriteItemsCommand']);
    expect(f.fences).toHaveLength(2);
    expect(await f.charges('a1')).toBe(1);
    expect(await f.payment('a1')).toMatchObject({ fence: { S: f.fences[0] } });
  });

  test('a commit that replaces an INPROGRESS record past its lease (a crashed non-atomic attempt) counts as a miss: a transaction returns no item it replaced', async () => {
    const events: string[] = [];
    const f = chargeFixture({ atomic: true, observability: (event: string) => void events.push(event) });
    const crashed = new DynamoDBStore({ tableName: idemTable, client: admin });
    await crashed.claim({ key: f.recordId('a1'), owner: 'crashed', now: T0 - LEASE_MS - 1, leaseUntil: T0 - 1, expiresAt: Math.floor(T0 / 1000) + 3600 });
    expect(await f.charge({ id: 'a1', amount: 7 })).toEqual({ paid: 'a1', run: 1 });
    expect(await record(f.recordId('a1'))).toMatchObject({ status: { S: 'COMPLETED' }, owner: { S: f.fences[0] } });
    expect(events).toEqual(['miss']);
  });

  test("a duplicate that starts before the first call's record expires gets its stored response, though the record expires while it runs: its commit is judged at its start", async () => {
    const f = chargeFixture({ atomic: true, hold: true });
    const first = f.charge({ id: 'a1', amount: 7 });
    (await f.turnstile.next()).open('return');
    expect(await first).toEqual({ paid: 'a1', run: 1 });
    // The record is kept 86,400 s from T0; the duplicate starts one second before that.
    f.clock.t = T0 + 86_399_000;
    const duplicate = f.charge({ id: 'a1', amount: 7 });
    const inside = await f.turnstile.next();
    f.clock.t = T0 + 86_401_000;
    inside.open('return');
    expect(await duplicate).toEqual({ paid: 'a1', run: 1 });
    expect(await f.charges('a1')).toBe(1);
  });

  test("a duplicate whose run fails on the first call's effect gets the first call's stored response: a final error through its commit, another error through one read of the record", async () => {
    const f = await refundFixture();
    expect(await f.refund()({ id: 'r1' })).toEqual({ refunded: 1 });
    f.probe.drain();
    // Final: its commit (the record alone) meets the first call's record, whose response the caller gets.
    expect(await f.refund({ isFinalError: (error) => error instanceof NotRefundable })({ id: 'r1' })).toEqual({ refunded: 1 });
    expect(f.probe.drain()).toEqual(['TransactWriteItemsCommand']);
    // Not final: nothing to commit; one strongly consistent read finds the record, replayed as a commit would have.
    expect(await f.refund()({ id: 'r1' })).toEqual({ refunded: 1 });
    expect(f.probe.drain()).toEqual(['UpdateItemCommand']);
    expect(f.events).toEqual(['miss', 'replay', 'replay']);
    expect(f.runs).toBe(3);
    expect(f.warnings).toEqual([]);
    // A stored final error is replayed as such.
    const declined = await refundFixture();
    const decline = declined.refund({ isFinalError: (error) => error instanceof NotRefundable });
    await declined.setPayment('REFUNDED');
    expect(await thrown(decline({ id: 'r2' }))).toBeInstanceOf(NotRefundable);
    const replayed = await thrown(declined.refund()({ id: 'r2' }));
    expect(replayed).not.toBeInstanceOf(NotRefundable);
    expect([replayed.name, replayed.message]).toEqual(['NotRefundable', 'not refundable']);
  });

  test("a duplicate whose run fails on the first call's effect in the last second of the record's retention still gets its stored response, as its commit would; from the next second, its own error", async () => {
    const f = await refundFixture();
    expect(await f.refund()({ id: 'r1' })).toEqual({ refunded: 1 });
    const { expiresAt } = (await f.store.read(recordId(f.name, 'r1')))!;
    // Claims take a record over only once its retention second has passed (`expiration < now`, in seconds).
    f.clock.t = expiresAt * 1000 + 999;
    expect(await f.refund()({ id: 'r1' })).toEqual({ refunded: 1 });
    f.clock.t = (expiresAt + 1) * 1000;
    expect(await thrown(f.refund()({ id: 'r1' }))).toBeInstanceOf(NotRefundable);
    expect(f.runs).toBe(3);
  });

  test("a duplicate whose run fails on the first call's effect, when the first call's response could not be stored, gets RESPONSE_NOT_STORED, whether its error is final or not", async () => {
    const f = await refundFixture();
    const body = f.body;
    f.body = async () => ({ ...(await body()), amount: 10n }); // JSON cannot hold it: the record completes without the response
    expect(await f.refund()({ id: 'r1' })).toMatchObject({ refunded: 1 });
    f.probe.drain();
    // Final: its commit (the record alone) meets the first call's record, which says the call succeeded.
    expect((await rejection(f.refund({ isFinalError: (error) => error instanceof NotRefundable })({ id: 'r1' }))).code).toBe('RESPONSE_NOT_STORED');
    expect(f.probe.drain()).toEqual(['TransactWriteItemsCommand']);
    // Not final: one read finds the same record.
    expect((await rejection(f.refund()({ id: 'r1' }))).code).toBe('RESPONSE_NOT_STORED');
    expect(f.probe.drain()).toEqual(['UpdateItemCommand']);
    expect(f.runs).toBe(3);
  });

  test('a run that fails with no COMPLETED record to replay (none, or one past its retention) gets its own error; nothing is written', async () => {
    const f = await refundFixture();
    await f.setPayment('REFUNDED'); // by another path: no record of this key
    const error = await thrown(f.refund()({ id: 'r1' }));
    expect(error).toBeInstanceOf(NotRefundable);
    expect(f.probe.drain()).toEqual(['UpdateItemCommand']);
    expect(await record(recordId(f.name, 'r1'))).toBeUndefined();
    expect(f.events).toEqual([]);

    // A record past its retention is none: a commit would have replaced it.
    await f.setPayment('PAID');
    expect(await f.refund()({ id: 'r2' })).toEqual({ refunded: 2 });
    f.clock.t = T0 + 86_401_000;
    expect(await thrown(f.refund()({ id: 'r2' }))).toBeInstanceOf(NotRefundable);
    expect(f.probe.drain()).toEqual(['TransactWriteItemsCommand', 'UpdateItemCommand']);
    expect(f.events).toEqual(['miss']);
  });

  test("a read of the record that fails never hides the function's error: the caller gets it, and a warning names the record", async () => {
    const f = await refundFixture();
    expect(await f.refund()({ id: 'r1' })).toEqual({ refunded: 1 });
    f.probe.drain();
    f.probe.readLost = true;
    expect(await thrown(f.refund()({ id: 'r1' }))).toBeInstanceOf(NotRefundable);
    expect(f.probe.drain()).toEqual(['UpdateItemCommand']);
    expect(f.warnings.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({
        level: 'WARN',
        recordId: recordId(f.name, 'r1'),
        error: 'ECONNRESET',
        message: expect.stringContaining('could not read the record'),
      }),
    ]);
    expect(f.events).toEqual(['miss']);
    // The record is intact: the next duplicate replays.
    expect(await f.refund()({ id: 'r1' })).toEqual({ refunded: 1 });

    // A stored response that is not JSON (an item edited by hand) is the store's failure, not this call's answer.
    await admin.send(
      new UpdateItemCommand({
        TableName: idemTable,
        Key: { id: { S: recordId(f.name, 'r1') } },
        UpdateExpression: 'SET #response = :text',
        ExpressionAttributeNames: { '#response': 'response' },
        ExpressionAttributeValues: { ':text': { S: 'not json' } },
      }),
    );
    f.warnings.length = 0;
    expect(await thrown(f.refund()({ id: 'r1' }))).toBeInstanceOf(NotRefundable);
    expect(f.warnings.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({ recordId: recordId(f.name, 'r1'), message: expect.stringContaining("could not read the record's stored outcome") }),
    ]);
  });

  test("a run that fails meeting another payload's record gets PAYLOAD_MISMATCH, as the commit of a run that succeeds would", async () => {
    const f = await refundFixture({ fingerprint: (input) => input.amount });
    expect(await f.refund()({ id: 'r1', amount: 1 })).toEqual({ refunded: 1 });
    f.probe.drain();
    expect(await rejection(f.refund()({ id: 'r1', amount: 2 }))).toMatchObject({ code: 'PAYLOAD_MISMATCH' });
    expect(f.probe.drain()).toEqual(['UpdateItemCommand']);
    expect(f.events).toEqual(['miss', 'payloadMismatch']);
  });

  test("a run that fails with a final error and whose commit meets another payload's record gets PAYLOAD_MISMATCH too, not its own error", async () => {
    const f = await refundFixture({ fingerprint: (input) => input.amount, isFinalError: (error) => error instanceof NotRefundable });
    expect(await f.refund()({ id: 'r1', amount: 1 })).toEqual({ refunded: 1 });
    f.probe.drain();
    expect(await rejection(f.refund()({ id: 'r1', amount: 2 }))).toMatchObject({ code: 'PAYLOAD_MISMATCH' });
    // The final error's commit met the record: no read besides.
    expect(f.probe.drain()).toEqual(['TransactWriteItemsCommand']);
    expect(f.events).toEqual(['miss', 'payloadMismatch']);
    // The same payload replays the stored response, as ever.
    expect(await f.refund()({ id: 'r1', amount: 1 })).toEqual({ refunded: 1 });
  });

  test("middy and httpIdempotency: a run that fails meeting another payload's record gets PAYLOAD_MISMATCH (HTTP: 422), as makeIdempotent does", async () => {
    const f = await refundFixture();
    const handler = middy(f.body).use(
      idempotency({ store: f.store, key: (event: Refund) => event.id, fingerprint: (event: Refund) => event.amount, atomic: true, now: () => T0 }),
    );
    const functionName = uniqueName('mwmismatch');
    expect(await handler({ id: 'm1', amount: 1 }, lambdaContext(functionName, LEASE_MS))).toEqual({ refunded: 1 });
    expect(await rejection(handler({ id: 'm1', amount: 2 }, lambdaContext(functionName, LEASE_MS)))).toMatchObject({ code: 'PAYLOAD_MISMATCH' });
    // Without another payload's record, the handler's own error.
    await expect(handler({ id: 'm2', amount: 1 }, lambdaContext(functionName, LEASE_MS))).rejects.toThrow(NotRefundable);

    const http = await refundFixture();
    const api = middy(async () => ({ statusCode: 201, body: JSON.stringify(await http.body()) })).use(
      httpIdempotency({ store: http.store, name: http.name, atomic: true, now: () => T0 }),
    );
    const request = (body: string) => ({ httpMethod: 'POST', path: '/refunds', headers: { 'Idempotency-Key': 'hm' }, body, requestContext: {} }) as never;
    expect(((await api(request('{"amount":1}'), lambdaContext(http.name))) as { statusCode: number }).statusCode).toBe(201);
    const other = (await api(request('{"amount":2}'), lambdaContext(http.name))) as { statusCode: number; headers?: Record<string, string> };
    expect([other.statusCode, other.headers?.['Content-Type']]).toEqual([422, 'application/problem+json']);
  });

  test('in-process duplicates of an atomic call whose run fails answer from the record their leader read: one run, one read', async () => {
    const f = await refundFixture();
    expect(await f.refund()({ id: 'r1' })).toEqual({ refunded: 1 });
    f.probe.drain();
    const held = gate();
    f.hold = held.promise;
    const once = f.refund();
    const calls = [once({ id: 'r1' }), once({ id: 'r1' }), once({ id: 'r1' })];
    await flush();
    held.open();
    expect(await Promise.all(calls)).toEqual([{ refunded: 1 }, { refunded: 1 }, { refunded: 1 }]);
    expect(f.runs).toBe(2);
    expect(f.probe.drain()).toEqual(['UpdateItemCommand']);
  });

  test("middy and httpIdempotency: a duplicate whose run throws on the first call's effect gets the stored response (HTTP: Idempotent-Replayed)", async () => {
    const f = await refundFixture();
    const functionName = uniqueName('mwread');
    const handler = middy(f.body).use(idempotency({ store: f.store, key: (event: Refund) => event.id, atomic: true, now: () => T0 }));
    expect(await handler({ id: 'm1' }, lambdaContext(functionName, LEASE_MS))).toEqual({ refunded: 1 });
    f.probe.drain();
    expect(await handler({ id: 'm1' }, lambdaContext(functionName, LEASE_MS))).toEqual({ refunded: 1 });
    expect(f.probe.drain()).toEqual(['UpdateItemCommand']);

    const http = await refundFixture();
    const api = middy(async () => ({ statusCode: 201, body: JSON.stringify(await http.body()) })).use(
      httpIdempotency({ store: http.store, name: http.name, atomic: true, now: () => T0 }),
    );
    const request = { httpMethod: 'POST', path: '/refunds', headers: { 'Idempotency-Key': 'h1' }, body: '{}', requestContext: {} };
    const first = (await api(request as never, lambdaContext(http.name))) as { statusCode: number; body: string; headers?: Record<string, string> };
    expect([first.statusCode, first.body, first.headers?.['Idempotent-Replayed']]).toEqual([201, '{"refunded":1}', undefined]);
    http.probe.drain();
    const again = (await api(request as never, lambdaContext(http.name))) as { statusCode: number; body: string; headers?: Record<string, string> };
    expect([again.statusCode, again.body, again.headers?.['Idempotent-Replayed']]).toEqual([201, '{"refunded":1}', 'true']);
    expect(http.probe.drain()).toEqual(['UpdateItemCommand']);
    expect(http.runs).toBe(2);
  });

  test("middy and httpIdempotency: a duplicate whose run throws on the first call's effect, when the first call's response could not be stored, gets RESPONSE_NOT_STORED (HTTP: a 409), as makeIdempotent does", async () => {
    const f = await refundFixture();
    const quiet = { warn: () => undefined };
    const handler = middy(async (_event: Refund) => ({ ...(await f.body()), amount: 10n })).use(
      idempotency({ store: f.store, key: (event: Refund) => event.id, atomic: true, now: () => T0, logger: quiet }),
    );
    const context = lambdaContext(uniqueName('mwomitted'), LEASE_MS);
    expect(await handler({ id: 'm1' }, context)).toMatchObject({ refunded: 1 });
    f.probe.drain();
    expect((await rejection(handler({ id: 'm1' }, context))).code).toBe('RESPONSE_NOT_STORED');
    expect(f.probe.drain()).toEqual(['UpdateItemCommand']);

    const http = await refundFixture();
    const blob = randomBytes(450 * 1024).toString('base64'); // larger than the item even compressed
    const api = middy(async () => ({ statusCode: 201, body: JSON.stringify({ ...(await http.body()), blob }) })).use(
      httpIdempotency({ store: http.store, name: http.name, atomic: true, now: () => T0, logger: quiet }),
    );
    const request = { httpMethod: 'POST', path: '/refunds', headers: { 'Idempotency-Key': 'h1' }, body: '{}', requestContext: {} };
    expect(((await api(request as never, lambdaContext(http.name))) as { statusCode: number }).statusCode).toBe(201);
    http.probe.drain();
    const again = (await api(request as never, lambdaContext(http.name))) as { statusCode: number; body: string };
    expect([again.statusCode, JSON.parse(again.body).status]).toEqual([409, 409]);
    expect(http.probe.drain()).toEqual(['UpdateItemCommand']);
    expect(http.runs).toBe(2);
  });

  test("middy: a duplicate whose run throws gets the stored response also when a middleware's onError answers the error", async () => {
    const f = await refundFixture();
    const functionName = uniqueName('mwanswered');
    // An error answer returned from onError (middy's own API Gateway timeout example does this), which makes middy skip idempotency's onError.
    const handler = middy(f.body)
      .use(idempotency({ store: f.store, key: (event: Refund) => event.id, atomic: true, now: () => T0 }))
      .use({ onError: () => ({ statusCode: 500, body: 'refund failed' }) });
    expect(await handler({ id: 'm1' }, lambdaContext(functionName, LEASE_MS))).toEqual({ refunded: 1 });
    f.probe.drain();
    expect(await handler({ id: 'm1' }, lambdaContext(functionName, LEASE_MS))).toEqual({ refunded: 1 });
    expect(f.probe.drain()).toEqual(['UpdateItemCommand']);
    expect(f.runs).toBe(2);
    // Without a record to answer from, the middleware's answer to the handler's error.
    expect(await handler({ id: 'm2' }, lambdaContext(functionName, LEASE_MS))).toEqual({ statusCode: 500, body: 'refund failed' });
  });

  test("httpIdempotency: a duplicate whose handler answers a 5xx of its own on the first call's effect gets the stored response; with no record, its 5xx", async () => {
    const f = await refundFixture();
    // A handler that answers its errors instead of throwing them, as many HTTP handlers do.
    const api = middy(async () => {
      try {
        return { statusCode: 201, body: JSON.stringify(await f.body()) };
      } catch {
        return { statusCode: 500, body: 'not refundable' };
      }
    }).use(httpIdempotency({ store: f.store, name: f.name, atomic: true, now: () => T0 }));
    type Answer = { statusCode: number; body: string; headers?: Record<string, string> };
    const request = (key: string) => ({ httpMethod: 'POST', path: '/refunds', headers: { 'Idempotency-Key': key }, body: '{}', requestContext: {} }) as never;
    const first = (await api(request('h5'), lambdaContext(f.name))) as Answer;
    expect([first.statusCode, first.body]).toEqual([201, '{"refunded":1}']);
    f.probe.drain();
    const again = (await api(request('h5'), lambdaContext(f.name))) as Answer;
    expect([again.statusCode, again.body, again.headers?.['Idempotent-Replayed']]).toEqual([201, '{"refunded":1}', 'true']);
    expect(f.probe.drain()).toEqual(['UpdateItemCommand']);
    // Another key meets no record: the handler's own 5xx, nothing written.
    const other = (await api(request('h6'), lambdaContext(f.name))) as Answer;
    expect([other.statusCode, other.body]).toEqual([500, 'not refundable']);
    expect(f.probe.drain()).toEqual(['UpdateItemCommand']);
    expect(f.runs).toBe(3);
  });

  test('concurrent atomic duplicates: one set of writes, and every caller gets the same stored response', async () => {
    const f = chargeFixture({ atomic: true, hold: true });
    const calls = [0, 1, 2].map(() => f.charge({ id: 'a2', amount: 3 }));
    const gates = [await f.turnstile.next(), await f.turnstile.next(), await f.turnstile.next()];
    for (const g of gates) g.open('return'); // all three commits race
    const results = await Promise.all(calls);
    expect(new Set(results.map((result) => JSON.stringify(result))).size).toBe(1);
    expect(await f.charges('a2')).toBe(1);
    const winner = (await record(f.recordId('a2')))!.owner!.S;
    expect(await f.payment('a2')).toMatchObject({ fence: { S: winner } });
    expect(f.probe.commands.every((command) => command === 'TransactWriteItemsCommand')).toBe(true);
  });

  test("a call nested in its own key's call runs and commits; the outer call's commit is cancelled and returns the inner call's stored result", async () => {
    let runs = 0;
    const store = new DynamoDBStore({ client: admin, tableName: idemTable });
    const self = makeIdempotent(
      async (order: { id: string }): Promise<{ run: number }> => {
        const run = ++runs;
        if (run === 1) await self(order);
        return { run };
      },
      { store, name: uniqueName('atomic-self'), atomic: true },
    );
    expect(await self({ id: 'n1' })).toEqual({ run: 2 });
    expect(runs).toBe(2);
    // A later duplicate runs the (pure) function again, and gets the stored result.
    expect(await self({ id: 'n1' })).toEqual({ run: 2 });
  });

  test('observability: the call that commits is a miss, a duplicate a replay, as outside atomic mode', async () => {
    const events: IdempotencyEvent[] = [];
    const store = new DynamoDBStore({ client: admin, tableName: idemTable });
    const once = makeIdempotent(async (order: { id: string }) => ({ paid: order.id }), {
      store,
      name: uniqueName('atomic-events'),
      atomic: true,
      observability: (event) => void events.push(event),
    });
    expect(await once({ id: 'e1' })).toEqual({ paid: 'e1' });
    expect(await once({ id: 'e1' })).toEqual({ paid: 'e1' });
    expect(events).toEqual(['miss', 'replay']);

    // The commit is the claim: a table that cannot be reached is a store failure, for the StoreFailures alarm.
    const down = await unreachableClient();
    const failing = makeIdempotent(async (order: { id: string }) => ({ paid: order.id }), {
      store: new DynamoDBStore({ client: down, tableName: idemTable }),
      name: uniqueName('atomic-down'),
      atomic: true,
      observability: (event) => void events.push(event),
    });
    expect(await rejection(failing({ id: 'e2' }))).toMatchObject({ code: 'COMMIT_FAILED' });
    expect(events).toEqual(['miss', 'replay', 'storeFailure']);
    down.destroy();
  });

  test("an in-process duplicate waits for an atomic leader only until the leader's lease, then runs and commits itself", async () => {
    const f = chargeFixture({ atomic: true, hold: true, singleFlight: true });
    const leader = f.charge({ id: 'a3', amount: 4 });
    const stuck = await f.turnstile.next();
    f.clock.t += LEASE_MS + 1;
    const duplicate = f.charge({ id: 'a3', amount: 4 });
    (await f.turnstile.next()).open('return');
    expect(await duplicate).toEqual({ paid: 'a3', run: 2 });
    // The leader wakes at last: its commit is refused, and it gets the stored response.
    stuck.open('return');
    expect(await leader).toEqual({ paid: 'a3', run: 2 });
    expect(await f.charges('a3')).toBe(1);
  }, 10_000);

  test("in-process duplicates of an atomic call whose commit meets another payload's record answer from that record: the function runs once, not once per duplicate", async () => {
    const store = new DynamoDBStore({ client: admin, tableName: idemTable });
    const options = {
      store,
      name: uniqueName('atomic-flight-mismatch'),
      atomic: true,
      key: (order: Order) => order.id,
      fingerprint: (order: Order) => order.amount,
    };
    type Order = { id: string; amount: number };
    expect(await makeIdempotent(async (order: Order) => ({ paid: order.amount }), options)({ id: 'm1', amount: 1 })).toEqual({ paid: 1 });
    const held = gate();
    let runs = 0;
    const once = makeIdempotent(async (order: Order) => {
      runs++;
      await held.promise;
      return { paid: order.amount };
    }, options);
    const calls = [2, 2, 2, 1].map((amount) =>
      once({ id: 'm1', amount }).then(
        (value) => value,
        (error: IdempotencyError) => error.code,
      ),
    );
    held.open();
    // Each duplicate gets what its own commit would have met: the stored response, or PAYLOAD_MISMATCH.
    expect(await Promise.all(calls)).toEqual(['PAYLOAD_MISMATCH', 'PAYLOAD_MISMATCH', 'PAYLOAD_MISMATCH', { paid: 1 }]);
    expect(runs).toBe(1);
  });

  test('middy with atomic: true: 1 request on the first call and 1 on the replay', async () => {
    const probe = new Probe();
    const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
    const functionName = uniqueName('mwatomic');
    let runs = 0;
    const handler = middy(async (event: { id: string }) => {
      transaction().update(increment(`${functionName}-${event.id}`));
      return { run: ++runs };
    }).use(idempotency({ store, transactions: true, key: (event: { id: string }) => event.id, atomic: true, now: () => T0 }));
    expect(await handler({ id: 'x' }, lambdaContext(functionName, LEASE_MS))).toEqual({ run: 1 });
    expect(probe.drain()).toEqual(['TransactWriteItemsCommand']);
    expect(await handler({ id: 'x' }, lambdaContext(functionName, LEASE_MS))).toEqual({ run: 1 });
    expect(probe.drain()).toEqual(['TransactWriteItemsCommand']);
    expect(runs).toBe(2);
    expect(await applied(`${functionName}-x`)).toBe(1);
  });
});

class CardDeclined extends Error {
  override readonly name = 'CardDeclined';
  readonly code = 'DECLINED';
  readonly statusCode = 402;
  readonly internal = 'not for replay';
}

const isFinalError = (error: unknown): boolean => error instanceof CardDeclined;

describe('final errors (isFinalError)', () => {
  test('a final error is stored with its writes discarded, and replayed to duplicates (name, message, code, selected fields) without running again', async () => {
    const f = chargeFixture({ hold: true, isFinalError, errorFields: ['statusCode'] });
    const first = f.charge({ id: 'd1', amount: 1 });
    (await f.turnstile.next()).open(new CardDeclined('card declined: insufficient funds'));
    const original = await thrown(first);
    expect(original).toBeInstanceOf(CardDeclined); // the first caller gets its own error
    expect(f.probe.drain()).toEqual(['PutItemCommand', 'UpdateItemCommand']);
    expect(f.probe.commits).toEqual([]);
    expect(await f.charges('d1')).toBe(0);
    expect(await f.payment('d1')).toBeUndefined();
    expect(await record(f.recordId('d1'))).toMatchObject({ status: { S: 'COMPLETED' } });

    const replayed = await thrown(f.charge({ id: 'd1', amount: 1 }));
    expect(replayed).toBeInstanceOf(Error);
    expect(replayed.name).toBe('CardDeclined');
    expect(replayed.message).toBe('card declined: insufficient funds');
    expect(replayed.code).toBe('DECLINED');
    expect(replayed.statusCode).toBe(402);
    expect(replayed.internal).toBeUndefined();
    expect(f.probe.drain()).toEqual(['PutItemCommand']);
    expect(f.fences).toHaveLength(1);
  });

  test('atomic: a final error is stored in the one request, and a duplicate gets it even when its own run succeeds', async () => {
    let decline = true;
    const probe = new Probe();
    const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
    const name = uniqueName('atomicfinal');
    const pay = makeIdempotent(
      async (id: string) => {
        transaction().update(increment(`${name}-${id}`));
        if (decline) throw new CardDeclined('declined');
        return 'paid';
      },
      { store, transactions: true, name, atomic: true, isFinalError, errorFields: ['statusCode'], now: () => T0 },
    );
    expect(await thrown(pay('x'))).toBeInstanceOf(CardDeclined);
    expect(probe.drain()).toEqual(['TransactWriteItemsCommand']);
    expect(probe.commits[0]).toHaveLength(1); // the record alone: the collected write is discarded
    expect(await applied(`${name}-x`)).toBe(0);

    decline = false;
    const replayed = await thrown(pay('x'));
    expect(replayed).not.toBeInstanceOf(CardDeclined);
    expect({ name: replayed.name, message: replayed.message, code: replayed.code, statusCode: replayed.statusCode }).toEqual({
      name: 'CardDeclined',
      message: 'declined',
      code: 'DECLINED',
      statusCode: 402,
    });
    expect(probe.drain()).toEqual(['TransactWriteItemsCommand']);
    expect(await applied(`${name}-x`)).toBe(0);
  });

  test('middy: a final error is replayed to a duplicate without running the handler', async () => {
    const probe = new Probe();
    const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
    let runs = 0;
    const handler = middy(async (_event: { id: string }) => {
      runs++;
      throw new CardDeclined('declined by middy');
    }).use(idempotency({ store, transactions: true, key: (event: { id: string }) => event.id, isFinalError, now: () => T0 }));
    const context = lambdaContext(uniqueName('mwfinal'), LEASE_MS);
    expect(await thrown(handler({ id: 'z' }, context))).toBeInstanceOf(CardDeclined);
    const replayed = await thrown(handler({ id: 'z' }, context));
    expect([replayed.name, replayed.message, replayed.code]).toEqual(['CardDeclined', 'declined by middy', 'DECLINED']);
    expect(runs).toBe(1);
  });

  test('a transient error releases the record: nothing stored, a retry runs again', async () => {
    const f = chargeFixture({ hold: true, isFinalError });
    const first = f.charge({ id: 'd2', amount: 1 });
    (await f.turnstile.next()).open(Object.assign(new Error('provider timeout'), { code: 'ETIMEDOUT' }));
    expect((await thrown(first)).message).toBe('provider timeout');
    expect(f.probe.drain()).toEqual(['PutItemCommand', 'DeleteItemCommand']);
    expect(await record(f.recordId('d2'))).toBeUndefined();

    const retry = f.charge({ id: 'd2', amount: 1 });
    (await f.turnstile.next()).open('return');
    expect(await retry).toEqual({ paid: 'd2', run: 2 });
    expect(await f.charges('d2')).toBe(1);
  });
});

describe('fence and downstream keys', () => {
  test('the fence is the owner on the record and changes on takeover; downstream keys stay the same per logical request and label', async () => {
    const probe = new Probe();
    const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
    const name = uniqueName('fence');
    const clock = { t: T0 };
    const turnstile = new Turnstile<Step>();
    const seen: { fence: string; provider: string; ledger: string; unlabelled: string }[] = [];
    const fn = makeIdempotent(
      async (_id: string) => {
        const tx = transaction();
        seen.push({ fence: tx.fence, provider: tx.downstreamKey('provider'), ledger: tx.downstreamKey('ledger'), unlabelled: tx.downstreamKey() });
        const step = await turnstile.enter();
        if (step instanceof Error) throw step;
        return tx.fence;
      },
      { store, transactions: true, name, now: () => clock.t, leaseSeconds: LEASE_MS / 1000 },
    );

    // 1: fails transiently (released); 2: retry, stalls past its lease; 3: takes over and completes.
    const first = fn('k');
    (await turnstile.next()).open(new Error('transient'));
    await thrown(first);
    const stalled = fn('k');
    const stalledGate = await turnstile.next();
    expect(await record(recordId(name, 'k'))).toMatchObject({ owner: { S: seen[1]!.fence } });
    clock.t = T0 + LEASE_MS + 1;
    const takeover = fn('k');
    (await turnstile.next()).open('return');
    expect(await takeover).toBe(seen[2]!.fence);
    expect(await record(recordId(name, 'k'))).toMatchObject({ status: { S: 'COMPLETED' }, owner: { S: seen[2]!.fence } });
    stalledGate.open('return');
    await rejection(stalled);

    expect(new Set(seen.map((s) => s.fence)).size).toBe(3);
    for (const label of ['provider', 'ledger', 'unlabelled'] as const) expect(new Set(seen.map((s) => s[label])).size).toBe(1);
    expect(new Set([seen[0]!.provider, seen[0]!.ledger, seen[0]!.unlabelled]).size).toBe(3);

    // Another logical request gets other keys.
    const other = fn('other');
    (await turnstile.next()).open('return');
    await other;
    expect(seen[3]!.provider).not.toBe(seen[0]!.provider);
    expect(seen[3]!.provider).toMatch(/^[\w-]{43}$/); // SHA-256, base64url: reveals nothing of the key
  });
});

describe('transition()', () => {
  async function payment(id: string, item: Record<string, unknown>): Promise<void> {
    await admin.send(new PutItemCommand({ TableName: bizTable, Item: marshall({ id, ...item }) }));
  }

  /** A refund endpoint: the idempotency key is the refund request id; the transition guards the payment. */
  function refunds() {
    const probe = new Probe();
    const store = new DynamoDBStore({ tableName: idemTable, client: probe.client });
    const name = uniqueName('refund');
    let runs = 0;
    const refund = makeIdempotent(
      async (request: { requestId: string; update: Parameters<typeof transition>[0] }) => {
        runs++;
        transaction().update(transition(request.update));
        return { refunded: request.requestId };
      },
      { store, transactions: true, name, key: (request) => request.requestId, now: () => T0 },
    );
    return { refund, runs: () => runs, probe, recordId: (id: string) => recordId(name, id) };
  }

  test('PAID → REFUNDED applies once; a second identical refund fails its condition and changes nothing', async () => {
    const id = uniqueName('pay-');
    await payment(id, { status: 'PAID', amount: 100 });
    const r = refunds();
    const params = { TableName: bizTable, Key: { id }, from: 'PAID', to: 'REFUNDED', set: { refundedAt: T0 } } as const;
    expect(await r.refund({ requestId: `${id}-r1`, update: params })).toEqual({ refunded: `${id}-r1` });
    expect(await bizItem(id)).toMatchObject({ status: { S: 'REFUNDED' }, refundedAt: { N: String(T0) } });
    // The same request again is a replay; a new request for the same refund fails the guard.
    expect(await r.refund({ requestId: `${id}-r1`, update: params })).toEqual({ refunded: `${id}-r1` });
    const error = await rejection(r.refund({ requestId: `${id}-r2`, update: { ...params, set: { refundedAt: T0 + 1 } } }));
    expect(error.code).toBe('TRANSACTION_CONDITION_FAILED');
    expect(error.actionIndex).toBe(0);
    expect(error.tableName).toBe(bizTable);
    expect(await record(r.recordId(`${id}-r2`))).toBeUndefined(); // released
    expect(await bizItem(id)).toMatchObject({ status: { S: 'REFUNDED' }, refundedAt: { N: String(T0) } });
    expect(r.runs()).toBe(2);
  });

  test('an out-of-order event (from a state the item is not in, or no item yet) is rejected; in order it applies', async () => {
    const id = uniqueName('order-');
    const r = refunds();
    const paid = { TableName: bizTable, Key: { id }, from: 'CREATED', to: 'PAID' } as const;
    expect((await rejection(r.refund({ requestId: `${id}-paid-early`, update: paid }))).code).toBe('TRANSACTION_CONDITION_FAILED');
    expect(await bizItem(id)).toBeUndefined(); // no item was created by the update

    await payment(id, { status: 'CREATED' });
    const shipped = { TableName: bizTable, Key: { id }, from: 'PAID', to: 'SHIPPED' } as const;
    expect((await rejection(r.refund({ requestId: `${id}-ship-early`, update: shipped }))).code).toBe('TRANSACTION_CONDITION_FAILED');
    expect(await bizItem(id)).toMatchObject({ status: { S: 'CREATED' } });

    await r.refund({ requestId: `${id}-paid`, update: paid });
    await r.refund({ requestId: `${id}-ship`, update: shipped });
    expect(await bizItem(id)).toMatchObject({ status: { S: 'SHIPPED' } });
  });

  test('version: the update applies only at the expected version and increments it', async () => {
    const id = uniqueName('ver-');
    await payment(id, { status: 'PAID', version: 3 });
    const r = refunds();
    const at = (expected: number) => ({ TableName: bizTable, Key: { id }, from: ['PAID', 'DISPUTED'], to: 'DISPUTED', version: { expected } });
    expect((await rejection(r.refund({ requestId: `${id}-stale`, update: at(2) }))).code).toBe('TRANSACTION_CONDITION_FAILED');
    expect(await bizItem(id)).toMatchObject({ status: { S: 'PAID' }, version: { N: '3' } });
    await r.refund({ requestId: `${id}-ok`, update: at(3) });
    expect(await bizItem(id)).toMatchObject({ status: { S: 'DISPUTED' }, version: { N: '4' } });
    expect((await rejection(r.refund({ requestId: `${id}-again`, update: at(3) }))).code).toBe('TRANSACTION_CONDITION_FAILED');
    expect(await bizItem(id)).toMatchObject({ version: { N: '4' } });
  });

  test('partial refunds: add with a guard (refunded + amount <= paid amount) never over-refunds', async () => {
    const id = uniqueName('partial-');
    const amount = 100;
    await payment(id, { status: 'PAID', amount });
    const r = refunds();
    // DynamoDB conditions have no arithmetic: `refunded + x <= amount` is written as `refunded <= amount - x`.
    const refundOf = (x: number) => ({
      TableName: bizTable,
      Key: { id },
      from: ['PAID', 'PARTIALLY_REFUNDED'],
      to: 'PARTIALLY_REFUNDED',
      add: { refunded: x },
      condition: { expression: 'attribute_not_exists(#refunded) OR #refunded <= :limit', names: { '#refunded': 'refunded' }, values: { ':limit': amount - x } },
    });
    await r.refund({ requestId: `${id}-60`, update: refundOf(60) });
    expect(await bizItem(id)).toMatchObject({ status: { S: 'PARTIALLY_REFUNDED' }, refunded: { N: '60' } });
    expect((await rejection(r.refund({ requestId: `${id}-50`, update: refundOf(50) }))).code).toBe('TRANSACTION_CONDITION_FAILED');
    expect(await bizItem(id)).toMatchObject({ refunded: { N: '60' } });
    await r.refund({ requestId: `${id}-60`, update: refundOf(60) }); // a duplicate of the first: replayed, not re-applied
    await r.refund({ requestId: `${id}-40`, update: refundOf(40) });
    expect(await bizItem(id)).toMatchObject({ refunded: { N: '100' } });
    expect((await rejection(r.refund({ requestId: `${id}-1`, update: refundOf(1) }))).code).toBe('TRANSACTION_CONDITION_FAILED');
    expect(await bizItem(id)).toMatchObject({ refunded: { N: '100' } });
  });

  // A request body's amount arrives as text ("40") as easily as a number; DynamoDB adds only numbers
  // (and sets), and would refuse the update only at the commit, once the function moved the money.
  test.each([
    ['a string', '40'],
    ['an array', [40]],
    ['a boolean', true],
  ])('an amount to add given as %s is a TypeError from transition(), inside the function, not a refused commit', async (_, amount) => {
    const id = uniqueName('text-');
    await payment(id, { status: 'PAID', amount: 100 });
    const r = refunds();
    const update = { TableName: bizTable, Key: { id }, from: 'PAID', to: 'PARTIALLY_REFUNDED', add: { refunded: amount as never } };
    const error = await thrown(r.refund({ requestId: `${id}-r1`, update }));
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toMatch(
      /^transition: `add\.refunded` must be a finite number \(or a bigint or NumberValue\), or a non-empty set to add to a set attribute/,
    );
    expect(r.probe.commands).not.toContain('TransactWriteItemsCommand');
    expect(await bizItem(id)).toMatchObject({ status: { S: 'PAID' } });
  });

  // DynamoDB refuses a placeholder an expression uses but no map defines, and one a map defines
  // that no expression uses, only at the commit, once the function has run (and moved the money).
  test.each([
    ['a value placeholder it uses but does not define', { expression: '#r <= :limit', names: { '#r': 'refunded' } }, /`:limit`/],
    ['a name placeholder it uses but does not define', { expression: '#r <= :limit', values: { ':limit': 60 } }, /`#r`/],
    ['a value it does not use', { expression: 'attribute_exists(#r)', names: { '#r': 'refunded' }, values: { ':limit': 60 } }, /`:limit`/],
    ['a name it does not use', { expression: 'attribute_exists(refunded)', names: { '#r': 'refunded' } }, /`#r`/],
    ['its values under a misspelt name (`value`)', { expression: '#r <= :limit', names: { '#r': 'refunded' }, value: { ':limit': 60 } }, /`condition\.value`/],
  ])('a condition with %s is a TypeError from transition(), inside the function, not a refused commit', async (_, condition, message) => {
    const id = uniqueName('cond-');
    await payment(id, { status: 'PAID', amount: 100 });
    const r = refunds();
    const update = { TableName: bizTable, Key: { id }, from: 'PAID', to: 'PARTIALLY_REFUNDED', add: { refunded: 40 }, condition: condition as never };
    const error = await thrown(r.refund({ requestId: `${id}-r1`, update }));
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toMatch(/^transition: /);
    expect(error.message).toMatch(message);
    expect(r.probe.commands).not.toContain('TransactWriteItemsCommand');
    expect(await bizItem(id)).toMatchObject({ status: { S: 'PAID' } });
  });

  // Numbers beyond a double's precision reach DynamoDB as a bigint or a NumberValue, which the marshaller takes as numbers.
  test.each([
    ['a bigint', 9_007_199_254_740_993n, '9007199254740993'],
    ['a NumberValue', NumberValue.from('12345678901234567890.5'), '12345678901234567890.5'],
  ])('an amount to add given as %s is added at the commit, to the digit', async (_, amount, digits) => {
    const id = uniqueName('big-');
    await payment(id, { status: 'PAID', amount: 100 });
    const r = refunds();
    const update = { TableName: bizTable, Key: { id }, from: 'PAID', to: 'PARTIALLY_REFUNDED', add: { refunded: amount as never } };
    await r.refund({ requestId: `${id}-r1`, update });
    expect(await bizItem(id)).toMatchObject({ status: { S: 'PARTIALLY_REFUNDED' }, refunded: { N: digits } });
  });
});
