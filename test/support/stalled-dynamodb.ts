/**
 * DynamoDB Local behind a loopback proxy a test can stall (a VPC without a route to DynamoDB, a
 * connection dropped silently: connections stay open and nothing is forwarded), and how a test
 * checks that a call answers before its Lambda deadline all the same.
 */
import { jest } from '@jest/globals';
import { delay } from '../../lib/deadline.js';
import { endpoint } from './dynamodb.js';
import { TcpProxy } from './tcp-proxy.js';

/**
 * Points the environment the SDK reads in Lambda (endpoint, Region, credentials, one attempt per
 * request, so that a test waits for one timeout only) at a proxy in front of DynamoDB Local, for
 * the tests of the calling file; each test ends with the proxy forwarding again.
 */
export function useStalledDynamoDB(): {
  stall(): void;
  swallowed(connections?: number): Promise<void>;
  cutRepliesShort(replies?: number): void;
  restore(): Promise<void>;
} {
  let proxy: TcpProxy | undefined;
  const ENVIRONMENT = ['AWS_ENDPOINT_URL_DYNAMODB', 'AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_MAX_ATTEMPTS'];
  const saved = Object.fromEntries(ENVIRONMENT.map((name) => [name, process.env[name]]));
  beforeAll(async () => {
    proxy = await TcpProxy.start(Number(new URL(endpoint()).port));
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${proxy.port}`,
      AWS_REGION: 'local',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_MAX_ATTEMPTS: '1',
    });
  });
  afterEach(() => proxy?.restore());
  afterAll(async () => {
    await proxy?.cut();
    for (const [name, value] of Object.entries(saved)) value === undefined ? delete process.env[name] : (process.env[name] = value);
  });
  return {
    stall: () => proxy!.stall(),
    swallowed: (connections) => proxy!.swallowed(connections),
    cutRepliesShort: (replies) => proxy!.cutRepliesShort(replies),
    restore: () => proxy!.restore(),
  };
}

/**
 * The time left of the invocations that give a Lambda context. Each store request gets at least
 * 1 s under a stub context, so a request that starts more than `REMAINING - 1_100` ms into the
 * invocation may outlive its deadline: that margin (1.4 s) is what a loaded test machine may take
 * to start one.
 */
export const REMAINING = 2_500;

/**
 * A call gives up on a store request a tenth of its time left, at most 100 ms, before its deadline,
 * so that it still has time to send its answer. The tests hold it to half of that: a call that gave
 * up only at the deadline itself would answer too late for Lambda, and fails them.
 */
const ANSWER_TIME = 50;

/**
 * How `call` settles, or 'deadline passed' if it has not `ANSWER_TIME` before the Lambda deadline
 * (`remaining` ms from now, `REMAINING` unless given). The call's own bound is a timer due before
 * that one (for requests started within the margin above), and all it does after it is settle
 * promises. The deadline is the library's own `delay`, so that when the loop was held past both
 * (a loaded machine) it ends one turn late as the bound does, and the bound still settles first.
 */
export const byDeadline = <T>(call: Promise<T>, remaining = REMAINING): Promise<{ value: T } | { error: unknown } | 'deadline passed'> =>
  Promise.race([
    call.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ),
    delay(remaining - ANSWER_TIME).elapsed.then(() => 'deadline passed' as const),
  ]);

/**
 * Runs `test` on a fake clock (timers, `Date`, `performance.now()`), which stands still until a
 * test moves it with {@link byDeadlineOnClock}: the bounds and the deadline are the same timers as
 * in real time, fired in the same order, without waiting seconds for them. I/O (and the
 * `setImmediate`, `nextTick` and microtask queues it drives) stays real.
 */
export async function onFakeClock<T>(test: () => Promise<T>): Promise<T> {
  jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate', 'clearImmediate'] });
  try {
    return await test();
  } finally {
    jest.useRealTimers();
  }
}

/**
 * Once `stuck` settles (the request a call waits on is in flight and will not be answered, or the
 * call is otherwise known to wait), moves the clock of {@link onFakeClock} `remaining` ms on, to
 * the Lambda deadline, firing each timer due on the way (a call's own bound before the deadline's
 * of {@link byDeadline}) with a turn of the real event loop after each. A call that settles first
 * (`settled`: one that no longer waits on its request) needs no clock moved.
 */
export async function moveToDeadline(stuck: Promise<unknown>, settled: Promise<unknown>, remaining = REMAINING): Promise<void> {
  await Promise.race([stuck, settled]);
  await jest.advanceTimersByTimeAsync(remaining);
}

/** {@link byDeadline} on the clock of {@link onFakeClock}, moved by {@link moveToDeadline}. */
export async function byDeadlineOnClock<T>(call: Promise<T>, stuck: Promise<unknown>, remaining = REMAINING): ReturnType<typeof byDeadline<T>> {
  const settled = byDeadline(call, remaining);
  await moveToDeadline(stuck, settled, remaining);
  return settled;
}
