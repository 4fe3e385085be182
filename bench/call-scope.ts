/**
 * What the call scope costs. Every call of our middleware runs in an AsyncLocalStorage scope (so
 * that `transaction()` finds its call), and the storage stays enabled once a call has entered it.
 * On Node 20 an enabled storage keeps promise hooks on for every promise in the process, the SDK's
 * and a neighbouring library's included; Node 24 propagates the context with AsyncContextFrame
 * instead, without hooks. Measured here, interleaved, with the scope on and off:
 * - per awaited async call and per bare SDK `send` on the stand-in (the tax on all code);
 * - per bare middy call (no library) and per call of our real middleware on the stand-in, first
 *   call and replay. "Off" runs the same middleware with `AsyncLocalStorage`'s `run` and
 *   `enterWith` turned into pass-throughs (the handler here never calls `transaction()`), so the
 *   difference is the scope and nothing else.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { type AttributeValue, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { enterProcessState } from './process-state.js';
import { StandIn } from './stand-in.js';
import { measureCall, rotation, type Summary, summarize } from './stats.js';
import { bareSubject, lambdaContext, makeEvent, subject } from './subjects.js';

export interface OffOn {
  readonly off: Summary;
  readonly on: Summary;
}

/** Wall-clock and CPU µs (per awaited async call: ns) with the scope off and on. */
export interface CallScopeCost {
  readonly node: string;
  /** ns per awaited call of an empty async function. */
  readonly await: OffOn;
  readonly send: OffOn;
  readonly sendCpu: OffOn;
  readonly bareHandler: OffOn;
  readonly bareHandlerCpu: OffOn;
  readonly first: OffOn;
  readonly firstCpu: OffOn;
  readonly replay: OffOn;
  readonly replayCpu: OffOn;
}

type Item = Record<string, AttributeValue>;
type Run = (store: unknown, fn: (...args: unknown[]) => unknown, ...args: unknown[]) => unknown;
type EnterWith = (store: unknown) => void;

/** Makes every AsyncLocalStorage's `run` and `enterWith` pass-throughs while `on` is false; `restore` undoes it. */
function scopeSwitch(): { set(on: boolean): void; restore(): void } {
  const prototype = AsyncLocalStorage.prototype as unknown as { run: Run; enterWith: EnterWith };
  const { run, enterWith } = prototype;
  let on = true;
  // A flag test inside the methods rather than swapping them per sample: swapping prototype
  // methods would invalidate V8's inline caches on every switch, in both states.
  prototype.run = function (this: unknown, store, fn, ...args) {
    return on ? run.call(this, store, fn, ...args) : fn(...args);
  };
  prototype.enterWith = function (this: unknown, store) {
    if (on) enterWith.call(this, store);
  };
  return {
    set(value) {
      on = value;
      enterProcessState(on ? 'ours' : 'other');
    },
    restore() {
      prototype.run = run;
      prototype.enterWith = enterWith;
    },
  };
}

const AWAITS_PER_SAMPLE = 1000;
const nothing = async (): Promise<void> => undefined;

/** ns per awaited call of an empty async function, over one loop. */
async function awaitNanos(): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < AWAITS_PER_SAMPLE; i++) await nothing();
  return Number(process.hrtime.bigint() - start) / AWAITS_PER_SAMPLE;
}

export async function measureCallScope(replayItem: Item, warmup: number, samples: number): Promise<CallScopeCost> {
  const sendClient = new StandIn().client();
  const firstStandIn = new StandIn();
  const replayStandIn = new StandIn();
  replayStandIn.refusePutWith(replayItem);
  const first = subject('ours', { client: firstStandIn.client(), tableName: 'bench-stand-in' }).handler;
  const replay = subject('ours', { client: replayStandIn.client(), tableName: 'bench-stand-in' }).handler;
  const bare = bareSubject().handler;
  const context = lambdaContext();
  const event = makeEvent('scope', 1024);
  const put = () => new PutItemCommand({ TableName: 'bench-stand-in', Item: { id: { S: 'k' }, status: { S: 'INPROGRESS' } } });
  const times: Record<string, number[]> = {};
  const record = (name: string, value: number) => (times[name] ??= []).push(value);
  const scope = scopeSwitch();
  try {
    for (let round = 0; round < warmup + samples; round++) {
      for (const state of rotation(['off', 'on'], round)) {
        scope.set(state === 'on');
        const awaited = await awaitNanos();
        const send = await measureCall(() => sendClient.send(put()));
        const bareCall = await measureCall(() => bare({ ...event }, context));
        const firstCall = await measureCall(() => first({ ...event, orderId: `scope-${state}-${round}` }, context));
        const replayCall = await measureCall(() => replay({ ...event }, context));
        if (round < warmup) continue;
        record(`await ${state}`, awaited);
        for (const [name, call] of Object.entries({ send, bare: bareCall, first: firstCall, replay: replayCall })) {
          record(`${name} ${state}`, call.wall);
          record(`${name} cpu ${state}`, call.cpu);
        }
      }
    }
  } finally {
    scope.restore();
    enterProcessState('other');
    sendClient.destroy();
  }
  const pair = (name: string): OffOn => ({ off: summarize(times[`${name} off`]!), on: summarize(times[`${name} on`]!) });
  return {
    node: process.version,
    await: pair('await'),
    send: pair('send'),
    sendCpu: pair('send cpu'),
    bareHandler: pair('bare'),
    bareHandlerCpu: pair('bare cpu'),
    first: pair('first'),
    firstCpu: pair('first cpu'),
    replay: pair('replay'),
    replayCpu: pair('replay cpu'),
  };
}
