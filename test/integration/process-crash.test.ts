/**
 * Real Lambda processes dying, or frozen and thawed late, between two steps of the record protocol.
 * Each attempt is a child process (test/support/crash-process.ts) on the run's DynamoDB Local or
 * redis-server; the test stops it at a gate (before a store request is sent, or once its answer
 * came back but before the process read it) and kills it there with SIGKILL, or lets it go on after
 * its successor ran. Clocks are injected: the lease is the Lambda context's time left, and the test
 * moves each process's clock across its end. Nothing sleeps: every step waits for a message.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { CallSpec, Done, Gate, Outcome, ToChild, ToParent } from '../support/crash-process.js';
import { endpoint, readItem, recordId, useBusinessTable, useFreshTable } from '../support/dynamodb.js';
import { redisUrl } from '../support/redis.js';

const { client, tableName } = useFreshTable({ prefix: 'crash' });
const bizTable = useBusinessTable(client);
const redis = new Redis(redisUrl());
afterAll(() => redis.disconnect());

const T0 = 1_700_000_000_000;
/** The time left the Lambda context reads, so the lease: ms. */
const LEASE = 60_000;
const script = fileURLToPath(new URL('../support/crash-process.ts', import.meta.url));

/** One Lambda process: its calls, and what it reports, in order. */
class LambdaProcess {
  readonly child: ChildProcess;
  private readonly reports: ToParent[] = [];
  private readonly waiting: ((report: ToParent) => void)[] = [];
  private readonly exited: Promise<void>;
  /** Whether a call was started and has not reported its end, or the process was killed: not reusable. */
  private busy = false;
  private dead = false;

  constructor() {
    this.child = fork(script, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    this.child.on('message', (report: ToParent) => {
      const waiter = this.waiting.shift();
      if (waiter) waiter(report);
      else this.reports.push(report);
    });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  /** The next report; fails if the process exits first. */
  next(): Promise<ToParent> {
    const report = this.reports.shift();
    if (report) return Promise.resolve(report);
    return Promise.race([
      new Promise<ToParent>((resolve) => this.waiting.push(resolve)),
      this.exited.then((): never => {
        throw new Error('the process exited');
      }),
    ]);
  }

  private tell(message: ToChild): void {
    this.child.send(message);
  }

  /** Starts a call at `t`; `gate`, a gate the call stops at. */
  start(call: CallSpec, t: number): void {
    this.busy = true;
    this.tell({ type: 'call', call, t });
  }

  /** Reports up to and including the one `until` accepts; their list. */
  async until(accept: (report: ToParent) => boolean): Promise<ToParent[]> {
    const seen: ToParent[] = [];
    for (;;) {
      const report = await this.next();
      seen.push(report);
      if (accept(report)) return seen;
    }
  }

  /** Waits for the running call's end: what it ended with, and whether its function ran (in this process, since the last end). */
  async finish(): Promise<Done & { ran: boolean }> {
    const seen = await this.until((report) => report.type === 'done');
    this.busy = false;
    return { ...(seen.at(-1) as Done), ran: seen.some((report) => report.type === 'ran') };
  }

  /** Runs a call at `t` to its end: what it got, and whether its function ran. */
  async call(call: CallSpec, t: number): Promise<{ outcome: Outcome; ran: boolean }> {
    this.start(call, t);
    const { outcome, ran } = await this.finish();
    return { outcome, ran };
  }

  /** Waits until the running call is stopped at `at`. */
  async atGate(at: Gate): Promise<void> {
    const seen = await this.until((report) => report.type === 'gate' || report.type === 'done');
    expect(seen.at(-1)).toEqual({ type: 'gate', at });
  }

  clock(t: number): void {
    this.tell({ type: 'clock', t });
  }

  go(): void {
    this.tell({ type: 'go' });
  }

  /** Whether the process is idle, with nothing unread: another test may use it (each call builds its own store and function). */
  get reusable(): boolean {
    return !this.busy && !this.dead && this.reports.length === 0;
  }

  async kill(): Promise<void> {
    this.dead = true;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

// A process whose calls all ended is used again by a later test (starting one is most of a test's
// time); one killed, or left at a gate or mid-call, is not.
const processes: LambdaProcess[] = [];
const idle: LambdaProcess[] = [];
const lambdaProcess = (): LambdaProcess => {
  const started = idle.pop() ?? new LambdaProcess();
  processes.push(started);
  return started;
};
afterEach(async () => {
  const used = processes.splice(0);
  idle.push(...used.filter((started) => started.reusable));
  await Promise.all(used.filter((started) => !idle.includes(started)).map((started) => started.kill()));
});
afterAll(async () => {
  await Promise.all(idle.splice(0).map((started) => started.kill()));
});

type StoreKind = CallSpec['store'];

/** A call of one fresh function name and key on `store`; its record and its effect. */
function fixture(store: StoreKind, mode: CallSpec['mode'] = 'plain') {
  const name = `crash-${randomUUID()}`;
  const id = 'order-1';
  const spec: CallSpec = { store, endpoint: endpoint(), redisUrl: redisUrl(), tableName, bizTable, name, id, mode, remainingMillis: LEASE };
  const key = recordId(name, id);
  return {
    spec,
    /** The record as stored: status and owner, or none. */
    record: async (): Promise<{ status: string; owner: string } | undefined> => {
      if (store === 'redis') {
        const hash = await redis.hgetall(`${tableName}:${key}`);
        return hash.status === undefined ? undefined : { status: hash.status, owner: hash.owner! };
      }
      const item = await readItem(client, tableName, key);
      return item === undefined ? undefined : { status: item.status!.S!, owner: item.owner!.S! };
    },
    /** How many times the function's effect was applied. */
    effects: async (): Promise<number> => Number((await readItem(client, bizTable, `effect#${name}#${id}`))?.runs?.N ?? 0),
  };
}

/** A process of `f`'s call (with `more`) killed at `gate`: its pid. */
async function killedAt(f: ReturnType<typeof fixture>, gate: Gate, more: Partial<CallSpec> = {}): Promise<number | undefined> {
  const dead = lambdaProcess();
  dead.start({ ...f.spec, ...more, gate }, T0);
  await dead.atGate(gate);
  await dead.kill();
  return dead.child.pid;
}

/**
 * Holds a process of `f`'s call at `gate`, runs `successor` to its end in another process once the
 * lease has ended, then lets the frozen one go on with its clock past the lease: what each ended with.
 */
async function thawAfterSuccessor(f: ReturnType<typeof fixture>, gate: Gate, successor: Partial<CallSpec> = {}) {
  const frozen = lambdaProcess();
  frozen.start({ ...f.spec, gate }, T0);
  await frozen.atGate(gate);
  const next = lambdaProcess();
  const ran = await next.call({ ...f.spec, ...successor }, T0 + LEASE + 1);
  expect(ran.ran).toBe(true);
  const record = await f.record();
  frozen.clock(T0 + LEASE + 2);
  frozen.go();
  return { frozen, thawed: await frozen.finish(), successor: next, ran, record };
}

const inProgress = (retryIn: number): Outcome => ({
  error: {
    name: 'IdempotencyError',
    code: 'IN_PROGRESS',
    message: `IN_PROGRESS: Another attempt with this idempotency key is in progress; retry in ${retryIn} s.`,
  },
});
const code = (outcome: Outcome): string | undefined => ('error' in outcome ? outcome.error.code : undefined);

describe.each(['dynamodb', 'redis'] as const)('%s: a process that dies', (store) => {
  test.each(['claim:after', 'function'] as const)(
    'at %s: a duplicate is IN_PROGRESS while the lease lives (its last millisecond too), and runs once after it',
    async (gate) => {
      const f = fixture(store);
      await killedAt(f, gate);
      expect(await f.record()).toMatchObject({ status: 'INPROGRESS' });

      const duplicate = lambdaProcess();
      expect(await duplicate.call(f.spec, T0 + 1_000)).toEqual({ outcome: inProgress(59), ran: false });
      expect(await duplicate.call(f.spec, T0 + LEASE)).toEqual({ outcome: inProgress(1), ran: false });
      const after = await duplicate.call(f.spec, T0 + LEASE + 1);
      expect(after).toEqual({ outcome: { value: { ranBy: duplicate.child.pid } }, ran: true });
      expect(await duplicate.call(f.spec, T0 + LEASE + 2)).toEqual({ outcome: after.outcome, ran: false });
      expect(await f.effects()).toBe(1);
    },
  );

  test('after its completion applied, before it read the answer: every duplicate replays, at once and after the lease, and runs nothing', async () => {
    const f = fixture(store);
    const pid = await killedAt(f, 'complete:after');
    expect(await f.record()).toMatchObject({ status: 'COMPLETED' });

    const duplicate = lambdaProcess();
    expect(await duplicate.call(f.spec, T0 + 1)).toEqual({ outcome: { value: { ranBy: pid } }, ran: false });
    expect(await duplicate.call(f.spec, T0 + LEASE + 1)).toEqual({ outcome: { value: { ranBy: pid } }, ran: false });
    expect(await f.effects()).toBe(1);
  });

  test('before its release was sent (the function failed): a duplicate is IN_PROGRESS until the lease ends, then runs', async () => {
    const f = fixture(store);
    await killedAt(f, 'release:before', { fails: true });

    const duplicate = lambdaProcess();
    expect(await duplicate.call(f.spec, T0 + LEASE)).toEqual({ outcome: inProgress(1), ran: false });
    expect(await duplicate.call(f.spec, T0 + LEASE + 1)).toEqual({ outcome: { value: { ranBy: duplicate.child.pid } }, ran: true });
  });

  test('after its release applied (the function failed), before it read the answer: the key is free, and a duplicate runs at once', async () => {
    const f = fixture(store);
    await killedAt(f, 'release:after', { fails: true });
    expect(await f.record()).toBeUndefined();

    const duplicate = lambdaProcess();
    expect(await duplicate.call(f.spec, T0 + 1)).toEqual({ outcome: { value: { ranBy: duplicate.child.pid } }, ran: true });
  });
});

describe.each(['dynamodb', 'redis'] as const)('%s: a duplicate that waits for another process (waitForInProgressMillis)', (store) => {
  test('for one that dies: it takes over once the lease has ended, and runs once', async () => {
    const f = fixture(store);
    await killedAt(f, 'function');
    const waiting = lambdaProcess();
    waiting.start({ ...f.spec, waitMillis: 2 * LEASE, remainingMillis: 3 * LEASE }, T0 + 1);
    // Its clock passes the lease's last millisecond, which still holds the key, then the lease's end.
    waiting.clock(T0 + LEASE);
    waiting.clock(T0 + LEASE + 1);
    expect(await waiting.finish()).toMatchObject({ outcome: { value: { ranBy: waiting.child.pid } }, ran: true, events: ['takeover'] });
    expect(await f.effects()).toBe(1);
  });

  test('for one that completes: it replays its outcome and runs nothing', async () => {
    const f = fixture(store);
    const first = lambdaProcess();
    first.start({ ...f.spec, gate: 'function' }, T0);
    await first.atGate('function');

    const waiting = lambdaProcess();
    waiting.start({ ...f.spec, waitMillis: 2 * LEASE, remainingMillis: 3 * LEASE }, T0 + 1);
    first.go();
    await first.finish();
    expect(await waiting.finish()).toMatchObject({ outcome: { value: { ranBy: first.child.pid } }, ran: false, events: ['replay'] });
    expect(await f.effects()).toBe(1);
  });
});

describe.each(['dynamodb', 'redis'] as const)('%s: a process frozen and thawed after its lease ended', (store) => {
  test('before its completion: its successor ran and completed; the thawed completion is SUPERSEDED and leaves the record as the successor wrote it', async () => {
    const f = fixture(store);
    const { thawed, successor, ran, record } = await thawAfterSuccessor(f, 'complete:before');
    expect(ran.outcome).toEqual({ value: { ranBy: successor.child.pid } });
    expect(code(thawed.outcome)).toBe('SUPERSEDED');
    expect(thawed.events).toEqual(['miss', 'superseded']);
    expect(await f.record()).toEqual(record);
    expect(await successor.call(f.spec, T0 + LEASE + 3)).toEqual({ outcome: ran.outcome, ran: false });
  });

  test.each([
    ['before its completion: the thawed completion is SUPERSEDED', { gate: 'complete:before' }],
    ['in its function, which then fails: the thawed release deletes nothing', { gate: 'function', fails: true }],
  ] as const)('%s, while its successor still runs, and the successor completes', async (_, frozenAt) => {
    const f = fixture(store);
    const frozen = lambdaProcess();
    frozen.start({ ...f.spec, ...frozenAt }, T0);
    await frozen.atGate(frozenAt.gate);

    const successor = lambdaProcess();
    successor.start({ ...f.spec, gate: 'function' }, T0 + LEASE + 1);
    await successor.atGate('function');
    const held = await f.record();
    expect(held).toMatchObject({ status: 'INPROGRESS' });

    frozen.clock(T0 + LEASE + 2);
    frozen.go();
    const done = await frozen.finish();
    if ('fails' in frozenAt) expect(done.outcome).toEqual({ error: { name: 'Error', message: 'the function failed' } });
    else expect(code(done.outcome)).toBe('SUPERSEDED');
    expect(done.events).toEqual(['miss', 'superseded']);
    expect(await f.record()).toEqual(held);

    successor.go();
    expect((await successor.finish()).outcome).toEqual({ value: { ranBy: successor.child.pid } });
    expect(await f.record()).toEqual({ status: 'COMPLETED', owner: held!.owner });
  });

  test('before its claim was sent: the claim meets the record another process claimed meanwhile, held (IN_PROGRESS) or completed (its outcome), and its function does not run', async () => {
    const f = fixture(store);
    const [frozen, later] = [lambdaProcess(), lambdaProcess()];
    frozen.start({ ...f.spec, gate: 'claim:before' }, T0);
    later.start({ ...f.spec, gate: 'claim:before' }, T0);
    await frozen.atGate('claim:before');
    await later.atGate('claim:before');

    const other = lambdaProcess();
    other.start({ ...f.spec, gate: 'function' }, T0 + 1);
    await other.atGate('function');
    frozen.go();
    expect(await frozen.finish()).toMatchObject({ outcome: { error: { code: 'IN_PROGRESS' } }, ran: false });

    other.go();
    const value = { ranBy: other.child.pid };
    expect((await other.finish()).outcome).toEqual({ value });
    later.go();
    expect(await later.finish()).toMatchObject({ outcome: { value }, ran: false });
    expect(await f.effects()).toBe(1);
  });

  test('before its completion: its successor took over, failed and released the key; the thawed completion, which finds no record, says the attempt outlived its lease (Superseded), not that the record was deleted by hand or lost by the store', async () => {
    const f = fixture(store);
    const { frozen, thawed: done, ran, record } = await thawAfterSuccessor(f, 'complete:before', { fails: true });
    expect(ran.outcome).toMatchObject({ error: { message: 'the function failed' } });
    expect(record).toBeUndefined();
    // The function ran, and its caller gets its result; it is not stored, and the next call runs again.
    expect(done.outcome).toEqual({ value: { ranBy: frozen.child.pid } });
    expect(done.events).toEqual(['miss', 'superseded']);
    expect(done.warnings).toEqual([
      "lambda-idempotency: this attempt outlived its lease and its record was gone when it completed (taken over and released by another attempt, as a rule); the caller gets the call's outcome, which was not stored: the next call with its key runs again",
    ]);
    expect(await f.record()).toBeUndefined();
    expect(await f.effects()).toBe(2);
  });
});

describe('transaction(): a commit and its writes', () => {
  test.each(['transaction', 'atomic'] as const)(
    '%s: applied by a process that died before reading the answer: every duplicate replays, and the writes exist once',
    async (mode) => {
      const f = fixture('dynamodb', mode);
      const pid = await killedAt(f, 'commit:after');
      expect(await f.effects()).toBe(1);

      const duplicate = lambdaProcess();
      for (const t of [T0 + 1, T0 + LEASE + 1]) {
        const { outcome } = await duplicate.call(f.spec, t);
        expect(outcome).toEqual({ value: { ranBy: pid } });
      }
      expect(await f.effects()).toBe(1);
    },
  );

  test('transaction: never sent by a process that died: nothing written; a duplicate is IN_PROGRESS until the lease ends, then commits once', async () => {
    const f = fixture('dynamodb', 'transaction');
    await killedAt(f, 'commit:before');
    expect(await f.effects()).toBe(0);

    const duplicate = lambdaProcess();
    expect(await duplicate.call(f.spec, T0 + LEASE)).toEqual({ outcome: inProgress(1), ran: false });
    expect(await duplicate.call(f.spec, T0 + LEASE + 1)).toEqual({ outcome: { value: { ranBy: duplicate.child.pid } }, ran: true });
    expect(await f.effects()).toBe(1);
  });

  test('transaction: sent by a process thawed after its successor committed: SUPERSEDED, its writes never applied', async () => {
    const f = fixture('dynamodb', 'transaction');
    const { thawed, record } = await thawAfterSuccessor(f, 'commit:before');
    expect(code(thawed.outcome)).toBe('SUPERSEDED');
    expect(thawed.events).toEqual(['miss', 'superseded']);
    expect(await f.record()).toEqual(record);
    expect(await f.effects()).toBe(1);
  });

  test('transaction: sent by a process thawed after its successor took over, failed and released the key: SUPERSEDED, saying the attempt outlived its lease; its writes never applied', async () => {
    const f = fixture('dynamodb', 'transaction');
    const { thawed: done } = await thawAfterSuccessor(f, 'commit:before', { fails: true });
    expect(done.outcome).toEqual({
      error: {
        name: 'IdempotencyError',
        code: 'SUPERSEDED',
        message:
          'SUPERSEDED: This attempt outlived its lease and its record was gone when it ended (taken over and released by another attempt, as a rule), so none of its writes was committed and the next call with its key runs again; nothing was overwritten.',
      },
    });
    expect(done.events).toEqual(['miss', 'superseded']);
    expect(await f.record()).toBeUndefined();
    expect(await f.effects()).toBe(0);
  });

  test('atomic: sent by a process thawed after another committed: it replays that commit, its own writes never applied', async () => {
    const f = fixture('dynamodb', 'atomic');
    const { thawed, successor, ran } = await thawAfterSuccessor(f, 'commit:before');
    expect(ran.outcome).toEqual({ value: { ranBy: successor.child.pid } });
    expect(thawed).toMatchObject({ outcome: ran.outcome, events: ['replay'] });
    expect(await f.effects()).toBe(1);
  });
});
