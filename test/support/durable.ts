/**
 * AWS's local runner for Lambda durable functions (`@aws/durable-execution-sdk-js-testing`), as the
 * durable tests use it: a checkpoint server in a worker thread, the handler run in process, and
 * `skipTime`, which replaces the global clock and timers with fake ones that skip every wait.
 *
 * How the runner's clock moves (measured with SDK 2.4.0 and runner 1.1.4): the checkpoint server
 * schedules the end of a `ctx.wait` on the real clock, and the fake clock jumps to that instant.
 * So a wait of W moves the fake clock to (real time at the wait + W), not by W: once the fake clock
 * is ahead of real time, a shorter wait moves it not at all, and the handler may then go on in the
 * same invocation instead of suspending. {@link runnerWait} gives the wait that moves the clock by
 * a given time from where it stands.
 *
 * The environment is set up once per file: each set-up starts a checkpoint worker thread that the
 * tear-down only unrefs (about 20 MB each).
 */

import { randomUUID } from 'node:crypto';
import { type DurableContext, type DurableLambdaHandler, withDurableExecution } from '@aws/durable-execution-sdk-js';
import {
  type DurableOperation,
  LocalDurableTestRunner,
  type TestResult,
  type TestResultError,
  WaitingOperationStatus,
} from '@aws/durable-execution-sdk-js-testing';
import { executionModeDurableContext } from '@middy/core/executionModeDurableContext';
import { gate } from './gate.js';

/** The real clock: `Date.now` as it was before the runner installed its fake one. */
const realNow = Date.now;

/**
 * middy's options for durable mode in these tests. middy arms its early-timeout timer (from
 * `node:timers`, so on the real clock) for the invocation's deadline, which the local runner says
 * is 15 minutes, and clears it only when the handler settles: a suspended invocation never does,
 * so the timer would hold the test process for 15 minutes.
 */
export const middyDurableMode = { executionMode: executionModeDurableContext, timeoutEarlyInMillis: 0 };

/** Sets the runner's environment up before the tests of the file and tears it down after them. */
export function useDurableRunner(): void {
  beforeAll(() => LocalDurableTestRunner.setupTestEnvironment({ skipTime: true }));
  afterAll(() => LocalDurableTestRunner.teardownTestEnvironment());
}

/**
 * The `ctx.wait` duration that moves the runner's clock `seconds` past where it stands now (and so
 * surely suspends the execution): the runner's lead over real time plus `seconds`. Computed by the
 * test and passed in the payload, so every replay waits the same.
 */
export function runnerWait(seconds: number): { seconds: number } {
  return { seconds: Math.ceil((Date.now() - realNow()) / 1000) + seconds };
}

/**
 * As in AWS, every invocation (the first, and each resume) gets a request id of its own: the local
 * runner passes all invocations of an execution the same `awsRequestId`.
 */
const ownRequestIds =
  (handler: DurableLambdaHandler): DurableLambdaHandler =>
  (event, context) =>
    handler(event, { ...context, awsRequestId: randomUUID() });

/** One durable execution started by the test; `result` settles when the execution ends. */
export interface StartedExecution<TResult> {
  readonly result: Promise<TestResult<TResult>>;
  /**
   * Resolves once the execution waits on its `waitForCallback` and its first invocation has
   * suspended (answered PENDING), so that `resume` surely starts a new invocation: a callback
   * completed while the first invocation still runs may let it go on instead of suspending.
   */
  suspended(): Promise<void>;
  /** Completes the `waitForCallback` with `value`; the execution resumes in a new invocation. */
  resume(value: unknown): Promise<void>;
}

/**
 * Starts a new durable execution of `handler` with `payload`, without waiting for its end.
 * `callbackName` names the `waitForCallback` the test will resume (watched from the start, so
 * the runner reports it as soon as it starts).
 */
export function startExecution<TResult = unknown>(handler: DurableLambdaHandler, payload: unknown, callbackName?: string): StartedExecution<TResult> {
  const firstAnswer = gate<unknown>();
  let invocations = 0;
  const tracked: DurableLambdaHandler = async (event, context) => {
    const first = invocations++ === 0;
    try {
      const answer = await handler(event, context);
      if (first) firstAnswer.open(answer);
      return answer;
    } catch (error) {
      if (first) firstAnswer.open(error);
      throw error;
    }
  };
  const runner = new LocalDurableTestRunner<TResult>({ handlerFunction: ownRequestIds(tracked) });
  const callback = callbackName === undefined ? undefined : runner.getOperation(callbackName).waitForData(WaitingOperationStatus.STARTED);
  const result = runner.run({ payload });
  const started = (): Promise<DurableOperation> => {
    if (callback === undefined) throw new Error('startExecution: name the callback to wait for');
    return callback;
  };
  return {
    result,
    suspended: async () => {
      await started();
      const answer = await firstAnswer.promise;
      if ((answer as { Status?: unknown } | null | undefined)?.Status !== 'PENDING') {
        throw new Error(`startExecution: the first invocation did not suspend; it answered ${String(JSON.stringify(answer))}`);
      }
    },
    resume: async (value) => void (await (await started()).sendCallbackSuccess(JSON.stringify(value))),
  };
}

/**
 * `handler` with every invocation reading `millis` left, as a function with a shorter timeout than
 * the runner's 15 minutes (or one near its deadline). A durable lease never ends before the
 * invocation that writes it: a test of a lease shorter than 15 minutes needs shorter invocations.
 */
export const withTimeLeft =
  (handler: DurableLambdaHandler, millis: number): DurableLambdaHandler =>
  (event, context) =>
    handler(event, { ...context, getRemainingTimeInMillis: () => millis });

/** Runs a durable execution of `handler` with `payload` to its end. */
export function runExecution<TResult = unknown>(handler: DurableLambdaHandler, payload: unknown): Promise<TestResult<TResult>> {
  return startExecution<TResult>(handler, payload).result;
}

const clockMover = withDurableExecution(async (event: { seconds: number }, ctx: DurableContext) => {
  await ctx.wait('advance-clock', { seconds: event.seconds });
});

/**
 * Moves the runner's clock (the fake `Date.now`) forward by at least `millis`, the way the runner
 * does it: a durable execution of its own waits long enough. Other executions stay as they are
 * (a suspended one stays suspended). Returns how far the clock moved.
 */
export async function advanceRunnerClock(millis: number): Promise<number> {
  const before = Date.now();
  const execution = await runExecution(clockMover, runnerWait(Math.ceil(millis / 1000)));
  if (execution.getStatus() !== 'SUCCEEDED') throw new Error(`the clock-moving execution ended ${execution.getStatus()}`);
  const moved = Date.now() - before;
  if (moved < millis) throw new Error(`the runner's clock moved ${moved} ms, less than ${millis} ms`);
  return moved;
}

/** The error of a failed execution, as the durable SDK serialises it: `{ errorType, errorMessage }`. */
export function executionError(execution: TestResult<unknown>): Pick<TestResultError, 'errorType' | 'errorMessage'> {
  const { errorType, errorMessage } = execution.getError();
  return { errorType, errorMessage };
}
