/** `lambda-idempotency/testing`: the Lambda context and the manual clock users build their tests on. */
import { jest } from '@jest/globals';
import type { Context } from 'aws-lambda';
import { lambdaContext, manualClock } from '../../lib/testing/index.js';

const T0 = Date.parse('2030-01-02T03:04:05Z');

describe('manualClock', () => {
  test('stands still until advanced, and advance returns the new time', () => {
    const clock = manualClock(T0);
    expect([clock.now(), clock.now()]).toEqual([T0, T0]);
    expect(clock.advance(1_500)).toBe(T0 + 1_500);
    expect(clock.advance(0)).toBe(T0 + 1_500);
    expect(clock.now()).toBe(T0 + 1_500);
  });

  test('now is bound, so it can be handed over as a `now` option', () => {
    const { now, advance } = manualClock(new Date(T0));
    advance(7);
    expect(now()).toBe(T0 + 7);
  });

  test('starts at the real time by default, so records on a real table with TTL are not swept as expired', () => {
    const before = Date.now();
    const started = manualClock().now();
    expect(started).toBeGreaterThanOrEqual(before);
    expect(started).toBeLessThanOrEqual(Date.now());
  });

  test('rejects a start that is no time and steps that go back or nowhere, with sentences', () => {
    expect(() => manualClock(Number.NaN)).toThrow(new TypeError('manualClock: `start` must be a Date or a finite number of epoch milliseconds (got NaN).'));
    expect(() => manualClock(new Date('not a date'))).toThrow(TypeError);
    expect(() => manualClock('2030' as unknown as number)).toThrow(TypeError);
    const clock = manualClock(T0);
    expect(() => clock.advance(-1)).toThrow(new TypeError('manualClock: advance() takes a finite number of milliseconds, 0 or more (got -1).'));
    expect(() => clock.advance(Number.POSITIVE_INFINITY)).toThrow(TypeError);
    expect(clock.now()).toBe(T0);
  });

  test('stays within the range of a Date, so every reader of the clock can make one of it', () => {
    expect(() => manualClock(8.64e15 + 1)).toThrow(
      new TypeError('manualClock: `start` 8640000000000001 is outside the range of a Date (±8.64e15 epoch milliseconds).'),
    );
    const clock = manualClock(T0);
    expect(() => clock.advance(1e300)).toThrow(new TypeError('manualClock: advance(1e+300) would move the clock past the last time a Date can hold.'));
    expect(clock.now()).toBe(T0);
    expect(clock.advance(8.64e15 - T0)).toBe(8.64e15);
    expect(new Date(clock.now()).toISOString()).toBe('+275760-09-13T00:00:00.000Z');
  });

  test('starts no earlier than the first time a Date can hold, and at it exactly if told', () => {
    expect(() => manualClock(-8.64e15 - 1)).toThrow(
      new TypeError('manualClock: `start` -8640000000000001 is outside the range of a Date (±8.64e15 epoch milliseconds).'),
    );
    expect(new Date(manualClock(-8.64e15).now()).toISOString()).toBe('-271821-04-20T00:00:00.000Z');
  });
});

describe('lambdaContext', () => {
  test('the deadline follows the injected clock and stops at 0', () => {
    const clock = manualClock(T0);
    const context = lambdaContext({ remainingMillis: 3_000, now: clock.now });
    expect(context.getRemainingTimeInMillis()).toBe(3_000);
    clock.advance(1_250);
    expect(context.getRemainingTimeInMillis()).toBe(1_750);
    clock.advance(5_000);
    expect(context.getRemainingTimeInMillis()).toBe(0);
  });

  test('is a complete Context, shaped as the runtime makes it, with defaults', () => {
    const context: Context = lambdaContext({ now: () => T0 });
    expect(context).toEqual({
      callbackWaitsForEmptyEventLoop: true,
      functionName: 'test-function',
      functionVersion: '$LATEST',
      invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:test-function',
      memoryLimitInMB: '128',
      awsRequestId: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
      logGroupName: '/aws/lambda/test-function',
      logStreamName: expect.stringMatching(/^2030\/01\/02\/\[\$LATEST\][0-9a-f]{32}$/),
      getRemainingTimeInMillis: expect.any(Function),
      done: expect.any(Function),
      fail: expect.any(Function),
      succeed: expect.any(Function),
    });
    expect(context.getRemainingTimeInMillis()).toBe(30_000);
  });

  test('names the function everywhere the runtime does, and each context is a new invocation', () => {
    const first = lambdaContext({ functionName: 'payments' });
    const second = lambdaContext({ functionName: 'payments' });
    expect(first.functionName).toBe('payments');
    expect(first.invokedFunctionArn).toMatch(/:function:payments$/);
    expect(first.logGroupName).toBe('/aws/lambda/payments');
    expect(first.awsRequestId).not.toBe(second.awsRequestId);
  });

  test('takes a deadline already reached (remainingMillis 0), as an invocation at its last moment has', () => {
    expect(lambdaContext({ remainingMillis: 0, now: () => T0 }).getRemainingTimeInMillis()).toBe(0);
  });

  test('refuses a clock outside the range of a Date on either side with its sentence, never a RangeError from inside', () => {
    for (const start of [-8.64e15 - 1, 8.64e15 + 1]) {
      expect(() => lambdaContext({ now: () => start })).toThrow(
        new TypeError(`lambdaContext: \`now\` must return epoch milliseconds, a finite number within the range of a Date (±8.64e15) (got ${start}).`),
      );
    }
    expect(lambdaContext({ remainingMillis: 5, now: () => -8.64e15 }).getRemainingTimeInMillis()).toBe(5);
  });

  test('follows the real clock by default', () => {
    const context = lambdaContext({ remainingMillis: 60_000 });
    expect(context.getRemainingTimeInMillis()).toBeLessThanOrEqual(60_000);
    expect(context.getRemainingTimeInMillis()).toBeGreaterThan(50_000);
  });

  test('by default reads Date.now() at every call, as the library does, so fake timers installed later drive its deadline too', () => {
    const context = lambdaContext({ remainingMillis: 60_000 });
    try {
      jest.useFakeTimers({ now: Date.now() + 60_001 });
      expect(context.getRemainingTimeInMillis()).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });

  test('callback-style methods throw: an async handler returns or throws instead', () => {
    const context = lambdaContext();
    expect(() => context.done()).toThrow('context.done() belongs to callback-style handlers: an async handler returns or throws instead.');
    expect(() => context.fail('no')).toThrow(/^context\.fail\(\)/);
    expect(() => context.succeed('yes')).toThrow(/^context\.succeed\(\)/);
  });

  test('rejects unknown and bad options with sentences', () => {
    expect(() => lambdaContext({ functionname: 'x' } as never)).toThrow(
      new TypeError('lambdaContext: unknown option `functionname`. Known options: functionName, remainingMillis, now, tenantId.'),
    );
    expect(() => lambdaContext({ functionName: '' })).toThrow(new TypeError('lambdaContext: `functionName` must be a non-empty string.'));
    expect(() => lambdaContext({ remainingMillis: -1 })).toThrow(
      new TypeError('lambdaContext: `remainingMillis` must be a finite number, 0 or more (got -1).'),
    );
    expect(() => lambdaContext({ remainingMillis: Number.NaN })).toThrow(TypeError);
    expect(() => lambdaContext({ now: 5 as unknown as () => number })).toThrow(
      new TypeError('lambdaContext: `now` must be a function returning epoch milliseconds.'),
    );
    expect(() => lambdaContext(null as never)).toThrow(new TypeError('lambdaContext: options must be an object.'));
    expect(() => lambdaContext({ now: () => Number.NaN })).toThrow(
      new TypeError('lambdaContext: `now` must return epoch milliseconds, a finite number within the range of a Date (±8.64e15) (got NaN).'),
    );
    expect(() => lambdaContext({ now: (() => new Date(T0)) as never })).toThrow(
      /^lambdaContext: `now` must return epoch milliseconds, a finite number within the range of a Date \(±8\.64e15\) \(got /,
    );
    expect(() => lambdaContext({ now: (() => '2030') as never })).toThrow(TypeError);
    expect(() => lambdaContext({ tenantId: '' })).toThrow(new TypeError('lambdaContext: `tenantId` must be a non-empty string.'));
  });

  test.each([
    // '#' ends the namespace in a record key: the `name` option refuses it, and no Lambda function has it.
    ['a#b', '"a#b"'],
    ['orders.v2', '"orders.v2"'],
    ['my function', '"my function"'],
    ['a'.repeat(65), `"${'a'.repeat(65)}"`],
  ])('refuses a functionName Lambda never gives a function (%s)', (functionName, got) => {
    expect(() => lambdaContext({ functionName })).toThrow(
      new TypeError(`lambdaContext: \`functionName\` must be a name Lambda gives a function: 1 to 64 letters, digits, '-' or '_' (got ${got}).`),
    );
  });

  test('accepts every function name Lambda accepts, up to 64 characters', () => {
    for (const functionName of ['a', 'Orders_2024-prod', 'a'.repeat(64)]) expect(lambdaContext({ functionName }).functionName).toBe(functionName);
  });

  test('carries a tenant id as the runtime does in tenant isolation mode, and none by default', () => {
    expect(lambdaContext({ tenantId: 'blue' })).toMatchObject({ tenantId: 'blue' });
    expect('tenantId' in lambdaContext()).toBe(false);
  });
});
