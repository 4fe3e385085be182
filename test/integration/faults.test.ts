/**
 * Fault injection at every step of claim → run → complete | release, against DynamoDB Local behind
 * the fault layer: throttling, 500s (before and after the server applied the write), connection
 * resets, lost responses and latency spikes, each once (the SDK's retry absorbs it) and on every
 * attempt (the SDK gives up). After each run the invariants are checked (test/support/invariants.ts),
 * then a recovery pass with a clock beyond the lease proves that no record is stuck.
 */
import type { Context } from 'aws-lambda';
import { IdempotencyError, makeIdempotent } from '../../lib/index.js';
import { lambdaContext as testingContext } from '../../lib/testing/index.js';
import { endpoint, readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { type Fault, faultyClient } from '../support/faults.js';
import { gate, Turnstile } from '../support/gate.js';
import { HandlerError, Ledger, scanRecords } from '../support/invariants.js';

const T0 = 1_700_000_000_000;
const LEASE_SECONDS = 10;
const KEYS = ['k0', 'k1', 'k2', 'k3'];
/** With a crashing handler, the first invocation for these keys never returns. */
const CRASHING_KEYS = ['k0', 'k1'];
const { client, faults } = faultyClient(endpoint());
const { client: inspect, tableName, store } = useFreshTable({ storeClient: client });
afterEach(() => {
  faults.clear();
});
afterAll(() => client.destroy());

type Step = 'claim' | 'complete' | 'release';
const OPERATION: Record<Step, string> = { claim: 'PutItem', complete: 'UpdateItem', release: 'DeleteItem' };

const STORE_FAULTS: ReadonlyArray<[string, Fault]> = [
  ['throttling (ProvisionedThroughputExceeded)', { kind: 'throttle', exception: 'ProvisionedThroughputExceededException' }],
  ['throttling (ThrottlingException)', { kind: 'throttle', exception: 'ThrottlingException' }],
  ['a 500 before the write', { kind: 'server-error' }],
  ['a 500 after the write', { kind: 'server-error', applied: true }],
  ['a connection reset before sending', { kind: 'reset' }],
  ['a response lost after the write', { kind: 'drop-response', error: 'TimeoutError' }],
  ['a latency spike', { kind: 'latency', millis: 25 }],
];

type HandlerFault = 'none' | 'throws first' | 'slow' | 'crashes first';

interface Scenario {
  readonly handler: HandlerFault;
  /** The store fault, its operation, and whether every attempt gets it. */
  readonly store?: { readonly operation: string; readonly fault: Fault; readonly persistent: boolean };
}

const FAULTED_REQUESTS = 2;
let scenarios = 0;

/**
 * Four keys; a concurrent wave of two calls per key, then one more call per key; then the
 * invariants; then, with the clock past the lease and no faults, one call per key that must settle
 * every record as COMPLETED.
 */
async function run(scenario: Scenario): Promise<{ ledger: Ledger; warnings: string[] }> {
  const name = `faults-${++scenarios}`;
  const clock = { now: T0 };
  const ledger = new Ledger();
  const warnings: string[] = [];
  const fn = makeIdempotent(
    async (input: { key: string; call: number }) => {
      const execution = ledger.start(input.key, input.call);
      if (scenario.handler === 'slow') await new Promise((resolve) => setTimeout(resolve, 20));
      if (scenario.handler === 'crashes first' && execution.index === 0 && CRASHING_KEYS.includes(input.key)) {
        await new Promise(() => undefined); // the Lambda died: this invocation never returns
      }
      if (scenario.handler === 'throws first' && execution.index === 0) ledger.fail(execution);
      return ledger.succeed(execution, { key: input.key, execution: execution.index, call: input.call });
    },
    // Each call stands for another process: no in-process single-flight.
    {
      store,
      name,
      key: (input) => input.key,
      leaseSeconds: LEASE_SECONDS,
      now: () => clock.now,
      singleFlight: false,
      logger: { warn: (line) => warnings.push(line) },
    },
  );
  const call = (key: string) => ledger.call(key, (id) => fn({ key, call: id }));

  if (scenario.store) {
    const { operation, fault, persistent } = scenario.store;
    faults.schedule({ operations: [operation], fault, requests: FAULTED_REQUESTS, attempts: persistent ? 'all' : 1 });
  }
  // The first wave: two concurrent calls per key. A crashed invocation never settles, so the wave
  // waits for the others only.
  const wave = KEYS.flatMap((key) => [call(key), call(key)]);
  const crashes = scenario.handler === 'crashes first' ? CRASHING_KEYS.length : 0;
  const waveSettled = gate();
  let settled = 0;
  for (const promise of wave) void promise.then(() => ++settled === wave.length - crashes && waveSettled.open());
  await waveSettled.promise;
  // The second wave: one more call per key.
  await Promise.all(KEYS.map(call));

  const violations = ledger.violations();
  const recordIdOf = new Map(KEYS.map((key) => [recordId(name, key), key]));
  const leaseEnd = T0 + LEASE_SECONDS * 1000;
  const mayLeaveInProgress = scenario.handler === 'crashes first' || scenario.store?.persistent === true;
  const records = await scanRecords(inspect, tableName, `${name}#`);
  violations.push(...ledger.recordViolations(records, (id) => recordIdOf.get(id), leaseEnd, mayLeaveInProgress));
  expect(violations).toEqual([]);

  // Recovery: past every lease and without faults, each key settles: a COMPLETED record replays
  // without running, an INPROGRESS or missing one runs once.
  const injected = faults.injected.length;
  faults.clear();
  clock.now = leaseEnd + 1;
  const before = new Map(records.map((r) => [recordIdOf.get(r.id)!, r.status]));
  for (const key of KEYS) {
    const executions = ledger.executionsOf(key).length;
    const { settled } = await call(key);
    expect(settled?.kind).toBe('value');
    expect(ledger.executionsOf(key).length - executions).toBe(before.get(key) === 'COMPLETED' ? 0 : 1);
  }
  const after = await scanRecords(inspect, tableName, `${name}#`);
  expect(after.map((r) => r.status)).toEqual(KEYS.map(() => 'COMPLETED'));
  // The SDK makes three attempts of a request it retries; a latency spike is one, a refusal is not retried.
  const retried = scenario.store?.fault.kind !== 'latency' && scenario.store?.fault.kind !== 'refuse';
  if (scenario.store) expect(injected).toBe(scenario.store.persistent && retried ? FAULTED_REQUESTS * 3 : FAULTED_REQUESTS);
  return { ledger, warnings };
}

describe.each(['claim', 'complete', 'release'] as const)('a fault at %s', (step) => {
  const handler: HandlerFault = step === 'release' ? 'throws first' : 'none';

  test.each(STORE_FAULTS)('%s, once: the SDK retry absorbs it and every call ends as without faults', async (_label, fault) => {
    const { ledger, warnings } = await run({ handler, store: { operation: OPERATION[step], fault, persistent: false } });
    const outcomes = ledger.outcomes();
    expect(outcomes).not.toHaveProperty('STORE_FAILURE');
    expect(warnings).toEqual([]);
    // Every key succeeded exactly once before the recovery pass, which only replayed.
    for (const key of KEYS) expect(ledger.executionsOf(key).filter((e) => e.outcome === 'ok')).toHaveLength(1);
  });

  test.each(STORE_FAULTS.filter(([, fault]) => fault.kind !== 'latency'))(
    '%s, on every attempt: typed errors or the result, nothing stuck',
    async (_label, fault) => {
      const { ledger, warnings } = await run({ handler, store: { operation: OPERATION[step], fault, persistent: true } });
      const outcomes = ledger.outcomes();
      if (step === 'claim') {
        // Fail closed: the faulted claims ran nothing and said so.
        expect(outcomes.STORE_FAILURE).toBe(FAULTED_REQUESTS);
        expect(warnings).toEqual([]);
      } else {
        // The store sent each completion or release the SDK gave up on again, and DynamoDB took it
        // (or it met its own COMPLETED record, or no item, applied before its answer was lost): as
        // without faults.
        expect(outcomes).not.toHaveProperty('STORE_FAILURE');
        expect(warnings).toEqual([]);
        for (const key of KEYS) expect(ledger.executionsOf(key).filter((e) => e.outcome === 'ok')).toHaveLength(1);
      }
    },
  );

  test('a refusal no resend changes (AccessDeniedException), sent once: typed errors or the result, nothing stuck', async () => {
    const { ledger, warnings } = await run({ handler, store: { operation: OPERATION[step], fault: { kind: 'refuse' }, persistent: true } });
    const outcomes = ledger.outcomes();
    if (step === 'claim') {
      expect(outcomes.STORE_FAILURE).toBe(FAULTED_REQUESTS);
      expect(warnings).toEqual([]);
    } else {
      // The handler ran; its outcome reached the caller; the bookkeeping failure was logged, not thrown.
      expect(outcomes).not.toHaveProperty('STORE_FAILURE');
      expect(warnings).toHaveLength(FAULTED_REQUESTS);
      for (const line of warnings) expect(JSON.parse(line)).toMatchObject({ level: 'WARN', namespace: expect.stringMatching(/^faults-/) });
    }
  });
});

describe('a fault while the handler runs', () => {
  test.each(['throws first', 'slow', 'crashes first'] as const)('the handler %s: invariants hold and the keys recover', async (handler) => {
    const { ledger } = await run({ handler });
    if (handler === 'throws first') expect(ledger.outcomes()['handler error']).toBe(KEYS.length);
    if (handler === 'crashes first') expect(ledger.outcomes()['never settled']).toBe(CRASHING_KEYS.length);
  });
});

describe('latency spikes, held by gates', () => {
  const heldOnce = (name: string) => {
    const turnstile = new Turnstile<() => string>();
    // Each call stands for another process: no in-process single-flight.
    const fn = makeIdempotent(async (_key: string) => (await turnstile.enter())(), { store, name, now: () => T0, singleFlight: false });
    return { turnstile, fn, item: () => readItem(inspect, tableName, recordId(name, 'k')) };
  };

  /** Holds the next request of `operation` until the returned gate opens; `arrived` says when it is held. */
  const spike = (operation: string) => {
    const arrived = gate();
    const release = gate();
    faults.schedule({ operations: [operation], fault: { kind: 'latency', until: release.promise }, where: () => (arrived.open(), true) });
    return { arrived: arrived.promise, release: () => release.open() };
  };

  test('at claim: a duplicate overtakes the slow claim and runs; the slow claim then meets its record and runs nothing', async () => {
    const { turnstile, fn } = heldOnce('spike-claim');
    const slow = spike('PutItem');
    const a = fn('k');
    await slow.arrived;
    const b = fn('k');
    const holder = await turnstile.next();
    slow.release();
    await expect(a).rejects.toMatchObject({ code: 'IN_PROGRESS' });
    holder.open(() => 'B');
    expect(await b).toBe('B');
    expect(await fn('k')).toBe('B');
    expect(turnstile.count).toBe(1);
  });

  test('at complete: a duplicate during the spike is IN_PROGRESS, one after it replays', async () => {
    const { turnstile, fn } = heldOnce('spike-complete');
    const slow = spike('UpdateItem');
    const a = fn('k');
    (await turnstile.next()).open(() => 'A');
    await slow.arrived;
    const during = await fn('k').catch((error: unknown) => error);
    expect(during).toBeInstanceOf(IdempotencyError);
    expect(during).toMatchObject({ code: 'IN_PROGRESS' });
    slow.release();
    expect(await a).toBe('A');
    expect(await fn('k')).toBe('A');
    expect(turnstile.count).toBe(1);
  });

  test('at release: a duplicate during the spike is IN_PROGRESS, one after it runs', async () => {
    const { turnstile, fn, item } = heldOnce('spike-release');
    const slow = spike('DeleteItem');
    const failure = new HandlerError('k', 0);
    const a = fn('k');
    (await turnstile.next()).open(() => {
      throw failure;
    });
    await slow.arrived;
    await expect(fn('k')).rejects.toMatchObject({ code: 'IN_PROGRESS' });
    slow.release();
    await expect(a).rejects.toBe(failure);
    expect(await item()).toBeUndefined();
    const c = fn('k');
    (await turnstile.next()).open(() => 'C');
    expect(await c).toBe('C');
    expect(turnstile.count).toBe(2);
  });
});

describe('single-flight: in-process duplicates of a leader the store fails', () => {
  const inProcess = (name: string) => {
    const turnstile = new Turnstile<() => string>();
    const warnings: string[] = [];
    const fn = makeIdempotent(async (_key: string, __?: Context) => (await turnstile.enter())(), {
      store,
      name,
      logger: { warn: (line) => warnings.push(line) },
    });
    /** The value of a call, or the code of its rejection. */
    const call = (context?: Context) =>
      fn('k', context).then(
        (value) => value,
        (error: IdempotencyError) => error.code,
      );
    return { turnstile, call, warnings };
  };

  test('a claim the store fails fails its followers alike: one claim for them all, not one each in turn', async () => {
    faults.schedule({ operations: ['PutItem'], fault: { kind: 'throttle' }, requests: 5, attempts: 'all' });
    const { turnstile, call } = inProcess('flight-claim-fails');
    const calls = Array.from({ length: 5 }, () => call());
    expect(await Promise.all(calls)).toEqual(Array.from({ length: 5 }, () => 'STORE_FAILURE'));
    expect(faults.attemptsOf('PutItem')).toBe(3); // one claim, and the SDK's retries of it
    expect(turnstile.count).toBe(0);
  });

  test("a claim given up on at the leader's own deadline leaves its followers to claim on their own time", async () => {
    const held = gate();
    faults.schedule({ operations: ['PutItem'], fault: { kind: 'latency', until: held.promise } });
    const name = 'flight-claim-deadline';
    const { turnstile, call } = inProcess(name);
    const leader = call(testingContext({ functionName: name, remainingMillis: 50 }));
    const follower = call(testingContext({ functionName: name, remainingMillis: 60_000 }));
    // The leader gives its unanswered claim up (after a second, the least a request gets) and fails closed.
    expect(await leader).toBe('STORE_FAILURE');
    void turnstile.next().then((arrival) => arrival.open(() => 'follower'));
    expect(await follower).toBe('follower');
    held.open();
  });

  test("a completion the store fails still answers the followers with the leader's value: the function runs once", async () => {
    faults.schedule({ operations: ['UpdateItem'], fault: { kind: 'refuse' } });
    const { turnstile, call, warnings } = inProcess('flight-complete-fails');
    const calls = Array.from({ length: 5 }, () => call());
    (await turnstile.next()).open(() => 'once');
    expect(await Promise.all(calls)).toEqual(Array.from({ length: 5 }, () => 'once'));
    expect(turnstile.count).toBe(1);
    expect(warnings).toHaveLength(1);
  });
});
