/**
 * Model-based test of the record state machine (fast-check commands) against DynamoDB Local behind
 * the fault layer: random interleavings of calls, handler completions, failures and crashes, clock
 * advances, and store faults on the claim / complete / release a command makes — once (the SDK retry
 * absorbs it, lost responses included) or on every attempt (the SDK gives up; the store sends a
 * completion or a release again), or a refusal no retry changes (a missing grant). A simple model
 * predicts every caller's outcome and every record; the real system must agree, command by command.
 *
 * What the model encodes: a key runs only when it has no record, its record's retention ended, or
 * its INPROGRESS lease ended; otherwise a COMPLETED record replays its stored response and an
 * INPROGRESS one answers IN_PROGRESS; completion and release apply only for the current owner.
 */
import fc from 'fast-check';
import { IdempotencyError, makeIdempotent } from '../../lib/index.js';
import { endpoint, recordId, useFreshTable } from '../support/dynamodb.js';
import { type Fault, faultyClient } from '../support/faults.js';
import { type Gate, gate } from '../support/gate.js';
import { HandlerError, type Settled, scanRecords } from '../support/invariants.js';

const T0 = 1_700_000_000_000;
const LEASE_MS = 3_000;
const RETENTION_S = 10;
const KEYS = ['a', 'b'] as const;
type Key = (typeof KEYS)[number];
type Operation = 'PutItem' | 'UpdateItem' | 'DeleteItem';

const { client, faults } = faultyClient(endpoint());
const { client: inspect, tableName, store } = useFreshTable({ storeClient: client });
afterAll(() => client.destroy());

// ---------------------------------------------------------------------------------------------
// The model

type ModelRecord =
  | { readonly status: 'INPROGRESS'; readonly exec: number; readonly leaseUntil: number; readonly expiresAt: number }
  | { readonly status: 'COMPLETED'; readonly response: string; readonly expiresAt: number };

/** A fault on the request a command makes. */
interface InjectedFault {
  readonly name: keyof typeof FAULTS;
  /** Every attempt fails: the SDK gives up. Otherwise only the first, and the SDK's retry absorbs it (a refusal excepted: it is not retried). */
  readonly persistent: boolean;
}

const FAULTS = {
  throttle: { kind: 'throttle' },
  'server-error': { kind: 'server-error' },
  'server-error-after-write': { kind: 'server-error', applied: true },
  reset: { kind: 'reset' },
  'lost-response': { kind: 'drop-response' },
  refused: { kind: 'refuse' },
} satisfies Record<string, Fault>;

/**
 * Arms the fault for the command's next request; says whether the server applies that request,
 * whether the SDK gives up on it, and whether it is refused (neither the SDK nor the store sends it again).
 */
function arm(
  operation: Operation,
  fault: InjectedFault | undefined,
): { readonly applied: boolean; readonly persistent: boolean; readonly refused: boolean } | undefined {
  if (fault === undefined) return undefined;
  const spec: Fault = FAULTS[fault.name];
  faults.schedule({ operations: [operation], fault: spec, attempts: fault.persistent ? 'all' : 1 });
  const refused = spec.kind === 'refuse';
  return {
    applied: spec.kind === 'drop-response' || (spec.kind === 'server-error' && spec.applied === true),
    persistent: fault.persistent || refused,
    refused,
  };
}

const describeFault = (fault: InjectedFault | undefined): string => (fault ? `, ${fault.name}${fault.persistent ? ' on every attempt' : ' once'}` : '');

interface Model {
  now: number;
  readonly records: Map<Key, ModelRecord>;
  /** Executions in progress, by id, with their key. */
  readonly running: Map<number, Key>;
  nextExec: number;
}

const result = (key: Key, exec: number) => ({ key, exec });

// ---------------------------------------------------------------------------------------------
// The real system: makeIdempotent on a DynamoDBStore whose client passes through the fault layer

interface Real {
  readonly call: (key: Key) => Promise<{ readonly entered: number } | { readonly settled: Settled }>;
  readonly finish: (exec: number, how: 'ok' | 'throw') => Promise<Settled>;
  readonly crash: (exec: number) => void;
  readonly clock: { now: number };
}

let runs = 0;

function realSystem(name: string): Real {
  const clock = { now: T0 };
  const held = new Map<number, { gate: Gate<'ok' | 'throw'>; settled: Promise<Settled> }>();
  let nextExec = 0;
  let onEnter: ((exec: number) => void) | undefined;
  const fn = makeIdempotent(
    async (key: Key) => {
      const exec = nextExec++;
      const how = gate<'ok' | 'throw'>();
      held.set(exec, { gate: how, settled: undefined as never });
      onEnter?.(exec);
      if ((await how.promise) === 'throw') throw new HandlerError(key, exec);
      return result(key, exec);
    },
    // Each call stands for another process: no in-process single-flight.
    {
      store,
      name,
      leaseSeconds: LEASE_MS / 1000,
      expiresAfterSeconds: RETENTION_S,
      now: () => clock.now,
      singleFlight: false,
      logger: { warn: () => undefined },
    },
  );
  const settle = (promise: Promise<unknown>): Promise<Settled> =>
    promise.then(
      (value) => ({ kind: 'value', value }),
      (error: unknown) => ({ kind: 'error', error }),
    );
  return {
    clock,
    async call(key) {
      const entered = gate<number>();
      onEnter = entered.open;
      const settled = settle(fn(key));
      const first = await Promise.race([settled.then((s) => ({ settled: s })), entered.promise.then((exec) => ({ entered: exec }))]);
      onEnter = undefined;
      if ('entered' in first) held.get(first.entered)!.settled = settled;
      return first;
    },
    async finish(exec, how) {
      const { gate: g, settled } = held.get(exec)!;
      held.delete(exec);
      g.open(how);
      return settled;
    },
    crash(exec) {
      held.delete(exec); // the invocation never returns; its gate is never opened
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Commands

const seconds = (ms: number): number => Math.floor(ms / 1000);

function expectError(settled: Settled | undefined, check: (error: unknown) => void): void {
  expect(settled?.kind).toBe('error');
  check((settled as { error: unknown }).error);
}

class CallCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly key: Key,
    readonly injected: InjectedFault | undefined,
  ) {}
  check = (): boolean => true;
  async run(model: Model, real: Real): Promise<void> {
    const record = model.records.get(this.key);
    const fault = arm('PutItem', this.injected);
    const claimable = record === undefined || record.expiresAt < seconds(model.now) || (record.status === 'INPROGRESS' && record.leaseUntil < model.now);
    const outcome = await real.call(this.key);

    if (fault?.persistent) {
      // The SDK gave up: the function did not run; an applied claim is released by its owner right away.
      expectError('settled' in outcome ? outcome.settled : undefined, (error) => expect(error).toMatchObject({ code: 'STORE_FAILURE' }));
      if (fault.applied && claimable) model.records.delete(this.key);
      return;
    }
    if (claimable) {
      expect(outcome).toEqual({ entered: model.nextExec });
      model.records.set(this.key, this.claimed(model, model.nextExec));
      model.running.set(model.nextExec++, this.key);
      return;
    }
    const settled = 'settled' in outcome ? outcome.settled : undefined;
    if (record!.status === 'COMPLETED') {
      expect(settled).toEqual({ kind: 'value', value: JSON.parse(record!.response) });
    } else {
      const retryAfterSeconds = Math.max(1, Math.ceil((record!.leaseUntil - model.now) / 1000));
      expectError(settled, (error) => {
        expect(error).toBeInstanceOf(IdempotencyError);
        expect(error).toMatchObject({ code: 'IN_PROGRESS', retryAfterSeconds });
      });
    }
  }
  private claimed(model: Model, exec: number): ModelRecord {
    const leaseUntil = model.now + LEASE_MS;
    return { status: 'INPROGRESS', exec, leaseUntil, expiresAt: Math.max(seconds(model.now) + RETENTION_S, Math.ceil(leaseUntil / 1000)) };
  }
  toString = (): string => `call(${this.key}${describeFault(this.injected)})`;
}

class FinishCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly pick: number,
    readonly how: 'ok' | 'throw',
    readonly injected: InjectedFault | undefined,
  ) {}
  check = (model: Readonly<Model>): boolean => model.running.size > 0;
  async run(model: Model, real: Real): Promise<void> {
    const exec = [...model.running.keys()].sort((x, y) => x - y)[this.pick % model.running.size]!;
    const key = model.running.get(exec)!;
    model.running.delete(exec);
    const record = model.records.get(key);
    const owner = record?.status === 'INPROGRESS' && record.exec === exec;
    const fault = arm(this.how === 'ok' ? 'UpdateItem' : 'DeleteItem', this.injected);
    // Only a refusal fails a completion or a release: the store sends one the SDK gave up on for a
    // cause that passes again (unfaulted), as if the SDK's retry had absorbed it.
    const givenUp = fault?.refused === true;
    // A request that never reached DynamoDB on any attempt changes nothing; otherwise the fenced write applies for the owner only.
    const applies = owner && !(givenUp && !fault.applied);
    const settled = await real.finish(exec, this.how);

    if (this.how === 'throw') {
      expectError(settled, (error) => expect(error).toEqual(new HandlerError(key, exec)));
      if (applies) model.records.delete(key);
      return;
    }
    if (applies) model.records.set(key, { status: 'COMPLETED', response: JSON.stringify(result(key, exec)), expiresAt: seconds(model.now) + RETENTION_S });
    if (owner || givenUp) {
      // Its own result (a refused completion is logged, its result still wins); a completion sent
      // again that met another attempt's record (or none) is SUPERSEDED, as one the SDK's retry sent.
      expect(settled).toEqual({ kind: 'value', value: result(key, exec) });
    } else {
      expectError(settled, (error) => expect(error).toMatchObject({ code: 'SUPERSEDED' }));
    }
  }
  toString = (): string => `finish(#${this.pick}, ${this.how}${describeFault(this.injected)})`;
}

class CrashCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number) {}
  check = (model: Readonly<Model>): boolean => model.running.size > 0;
  async run(model: Model, real: Real): Promise<void> {
    const exec = [...model.running.keys()].sort((x, y) => x - y)[this.pick % model.running.size]!;
    model.running.delete(exec);
    real.crash(exec);
  }
  toString = (): string => `crash(#${this.pick})`;
}

class AdvanceCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly millis: number) {}
  check = (): boolean => true;
  async run(model: Model, real: Real): Promise<void> {
    model.now += this.millis;
    real.clock.now = model.now;
  }
  toString = (): string => `advance(${this.millis} ms)`;
}

/** Moves the clock exactly onto a record's lease or retention boundary: the last instant it holds, or the first after. */
class BoundaryCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly pick: number,
    readonly boundary: 'lease' | 'retention',
    readonly after: boolean,
  ) {}
  check = (model: Readonly<Model>): boolean => this.targets(model).length > 0;
  async run(model: Model, real: Real): Promise<void> {
    const targets = this.targets(model);
    model.now = targets[this.pick % targets.length]!;
    real.clock.now = model.now;
  }
  /** A lease holds while leaseUntil >= now; a retention while expiresAt >= floor(now / 1000). */
  private targets(model: Readonly<Model>): number[] {
    return [...model.records.values()]
      .map((record) =>
        this.boundary === 'lease'
          ? record.status === 'INPROGRESS'
            ? record.leaseUntil + (this.after ? 1 : 0)
            : Number.NaN
          : (record.expiresAt + 1) * 1000 - (this.after ? 0 : 1),
      )
      .filter((target) => target > model.now)
      .sort((x, y) => x - y);
  }
  toString = (): string => `to${this.after ? ' just after' : ''} the ${this.boundary} end of record #${this.pick}`;
}

/** Half the requests get no fault; the rest one of each kind, once or on every attempt. */
const injected: fc.Arbitrary<InjectedFault | undefined> = fc.option(
  fc.record({ name: fc.constantFrom(...(Object.keys(FAULTS) as Array<keyof typeof FAULTS>)), persistent: fc.boolean() }),
  { nil: undefined, freq: 2 },
);

const boundaries = fc
  .tuple(fc.nat(), fc.constantFrom('lease' as const, 'retention' as const), fc.boolean())
  .map(([pick, boundary, after]) => new BoundaryCommand(pick, boundary, after));

// Arbitraries listed twice are drawn twice as often.
const commands = fc.commands(
  [
    fc.tuple(fc.constantFrom(...KEYS), injected).map(([key, fault]) => new CallCommand(key, fault)),
    fc.tuple(fc.constantFrom(...KEYS), injected).map(([key, fault]) => new CallCommand(key, fault)),
    fc.tuple(fc.nat(), fc.constantFrom('ok' as const, 'throw' as const), injected).map(([pick, how, fault]) => new FinishCommand(pick, how, fault)),
    fc.tuple(fc.nat(), fc.constantFrom('ok' as const, 'throw' as const), injected).map(([pick, how, fault]) => new FinishCommand(pick, how, fault)),
    fc.nat().map((pick) => new CrashCommand(pick)),
    // Mostly whole seconds, so that advances land exactly on lease and retention boundaries.
    fc
      .oneof(
        { arbitrary: fc.constantFrom(1_000, 2_000, LEASE_MS, RETENTION_S * 1000, (RETENTION_S + 1) * 1000), weight: 3 },
        { arbitrary: fc.constantFrom(1, 999, LEASE_MS - 1, LEASE_MS + 1), weight: 1 },
        { arbitrary: fc.integer({ min: 1, max: (RETENTION_S + 1) * 1000 }), weight: 1 },
      )
      .map((millis) => new AdvanceCommand(millis)),
    boundaries,
    boundaries,
  ],
  { maxCommands: 40, size: 'max' },
);

/**
 * Interleavings that random draws rarely reach (a stale attempt ending after another took its record
 * over needs a takeover and then the older attempt picked to finish), run first with every seed.
 */
const call = (key: Key = 'a') => new CallCommand(key, undefined);
const finish = (pick: number, how: 'ok' | 'throw' = 'ok') => new FinishCommand(pick, how, undefined);
const toLeaseEnd = (after: boolean) => new BoundaryCommand(0, 'lease', after);
const toRetentionEnd = (after: boolean) => new BoundaryCommand(0, 'retention', after);
const races: Array<[Array<fc.AsyncCommand<Model, Real>>]> = [
  // A stale completion while the new owner runs, then the new owner completes.
  [[call(), toLeaseEnd(true), call(), finish(0), finish(0)]],
  // A stale completion after the new owner completed: its response stays.
  [[call(), toLeaseEnd(true), call(), finish(1), finish(0)]],
  // A stale failure while the new owner runs, then the new owner completes.
  [[call(), toLeaseEnd(true), call(), finish(0, 'throw'), finish(0)]],
  // At its lease's last millisecond the record is still held, and its owner completes it.
  [[call(), toLeaseEnd(false), call(), finish(0), call()]],
  // A COMPLETED record replays until its retention's last second, and runs again after it.
  [[call(), finish(0), toRetentionEnd(false), call(), toRetentionEnd(true), call(), finish(0)]],
];

test('random interleavings of calls, completions, failures, crashes, clock advances and faults agree with the model', async () => {
  await fc.assert(
    fc.asyncProperty(commands, async (cmds) => {
      faults.clear();
      const name = `model-${++runs}`;
      const model: Model = { now: T0, records: new Map(), running: new Map(), nextExec: 0 };
      await fc.asyncModelRun(() => ({ model, real: realSystem(name) }), cmds);

      // The table holds exactly what the model says.
      const stored = await scanRecords(inspect, tableName, `${name}#`);
      const expected = KEYS.flatMap((key) => {
        const record = model.records.get(key);
        if (!record) return [];
        return [
          {
            id: recordId(name, key),
            status: record.status,
            ...(record.status === 'COMPLETED' ? { response: record.response } : { leaseUntil: record.leaseUntil }),
          },
        ];
      });
      expect(
        stored
          .map((r) => ({ id: r.id, status: r.status, ...(r.status === 'COMPLETED' ? { response: r.response } : { leaseUntil: r.leaseUntil }) }))
          .sort((x, y) => x.id.localeCompare(y.id)),
      ).toEqual(expected.sort((x, y) => x.id.localeCompare(y.id)));
    }),
    // Pinned, so every run checks the same interleavings; FC_SEED explores others.
    { numRuns: 25, seed: Number(process.env.FC_SEED ?? 20_240_607), examples: races },
  );
});
