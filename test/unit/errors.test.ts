/** Error codes and the names store failures are described by. */
import { PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { jest } from '@jest/globals';
import { storeFailureDetail } from '../../lib/errors.js';
import { problem } from '../../lib/http.js';
import { describeStoreFailure, IdempotencyError, type IdempotencyErrorCode, isIdempotencyError, makeIdempotent } from '../../lib/index.js';
import { serviceError, useMockedDynamoDB } from '../support/mocked-dynamodb.js';
import { rejection } from '../support/rejections.js';

const { ddb, store } = useMockedDynamoDB();

describe('describeStoreFailure', () => {
  test.each<[string, unknown, string]>([
    [
      'a DynamoDB exception: its name',
      serviceError('ResourceNotFoundException', 'Requested resource not found: Table: idem not found'),
      'ResourceNotFoundException',
    ],
    ['a missing grant', serviceError('AccessDeniedException', 'User: arn:aws:sts::1:assumed-role/r is not authorized'), 'AccessDeniedException'],
    ['an SDK timeout', Object.assign(new Error('timed out'), { name: 'TimeoutError' }), 'TimeoutError'],
    ['a network error: its system code', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'ECONNREFUSED'],
    ['an AggregateError of refused connections: the code', Object.assign(new AggregateError([], 'x'), { code: 'ECONNREFUSED' }), 'ECONNREFUSED'],
    ['a network error the SDK wrapped', new Error('AWS SDK error wrapper for Error: connect ECONNREFUSED 127.0.0.1:8000'), 'ECONNREFUSED'],
    ['the SDK without a Region: its fixed message', new Error('Region is missing'), 'Region is missing'],
    [
      'the SDK given credentials without their keys: its fixed message',
      new Error('Resolved credential object is not valid'),
      'Resolved credential object is not valid',
    ],
    [
      'the SDK refusing a Region: its fixed words, never the Region',
      new Error('Region not accepted: region="eu-west-1 " is not a valid hostname component.'),
      'Region not accepted',
    ],
    ['a TypeError', new TypeError('bad key'), 'TypeError'],
    ['an IdempotencyError: its code', new IdempotencyError('STORE_FAILURE', 'x'), 'STORE_FAILURE'],
    ['a plain Error', new Error('order 42 for alice@example.com'), 'Error'],
    ['a plain Error whose message holds a word shaped like a system code (never echoed)', new Error('card EXPIRED for order 42'), 'Error'],
    ['an AggregateError without a code: its name', new AggregateError([], 'x'), 'AggregateError'],
    ['a name that is free text (never echoed)', Object.assign(new Error('x'), { name: 'key alice@example.com' }), 'Error'],
    ['a code that is free text (never echoed)', Object.assign(new Error('x'), { code: 'Eve said hi' }), 'Error'],
    ['a string', 'boom', 'Error'],
    ['undefined', undefined, 'Error'],
    ['null', null, 'Error'],
    [
      'an error whose name cannot be read (a getter that throws)',
      Object.defineProperty(new Error('x'), 'name', {
        get() {
          throw new Error('name getter');
        },
      }),
      'Error',
    ],
    [
      'a proxy whose traps throw',
      new Proxy(
        {},
        {
          get() {
            throw new Error('trap');
          },
        },
      ),
      'Error',
    ],
  ])('%s', (_what, error, expected) => {
    expect(describeStoreFailure(error)).toBe(expected);
  });
});

test('STORE_FAILURE names the cause (a missing grant is not an outage), never the key or the payload', async () => {
  ddb.on(PutItemCommand).rejects(serviceError('AccessDeniedException', 'not authorized to perform dynamodb:PutItem'));
  let runs = 0;
  const fn = makeIdempotent(async (_: { orderId: string; email: string }) => ++runs, { store, name: 'orders', key: (input) => input.orderId });
  const error = await rejection(fn({ orderId: 'order-4242', email: 'alice@example.com' }));
  expect(error.code).toBe('STORE_FAILURE');
  expect(error.message).toBe('STORE_FAILURE: The idempotency store failed (AccessDeniedException); the function did not run.');
  expect(runs).toBe(0);
});

describe('a missing grant names the action and the table, as DynamoDB words it (role and reason left out)', () => {
  const TABLE = 'arn:aws:dynamodb:eu-west-1:123456789012:table/idem';
  const denied = (action: string) =>
    serviceError(
      'AccessDeniedException',
      `User: arn:aws:sts::123456789012:assumed-role/payments-role/payments is not authorized to perform: dynamodb:${action} on resource: ${TABLE} because no identity-based policy allows the dynamodb:${action} action`,
    );

  test('at the claim: STORE_FAILURE names dynamodb:PutItem on the table; describeStoreFailure still gives the name alone', async () => {
    ddb.on(PutItemCommand).rejects(denied('PutItem'));
    let runs = 0;
    const fn = makeIdempotent(async (_: string) => ++runs, { store, name: 'orders' });
    const error = await rejection(fn('order-1'));
    expect(error.message).toBe(`STORE_FAILURE: The idempotency store failed (AccessDeniedException: dynamodb:PutItem on ${TABLE}); the function did not run.`);
    expect(describeStoreFailure(error.cause)).toBe('AccessDeniedException');
    expect(runs).toBe(0);
  });

  test('at the completion: the warning names dynamodb:UpdateItem on the table', async () => {
    ddb.on(PutItemCommand).resolves({});
    ddb.on(UpdateItemCommand).rejects(denied('UpdateItem'));
    const logger = { warn: jest.fn<(message: string) => void>() };
    const fn = makeIdempotent(async (id: string) => ({ id }), { store, name: 'orders', logger });
    expect(await fn('order-2')).toEqual({ id: 'order-2' });
    expect(JSON.parse(logger.warn.mock.calls[0]![0])).toMatchObject({ error: `AccessDeniedException: dynamodb:UpdateItem on ${TABLE}` });
  });

  test.each(['arn:aws-cn:dynamodb:cn-north-1:123456789012:table/idem', 'arn:aws-us-gov:dynamodb:us-gov-west-1:123456789012:table/idem'])(
    'in another partition too: %s',
    (table) => {
      const error = serviceError(
        'AccessDeniedException',
        `User: r is not authorized to perform: dynamodb:PutItem on resource: ${table} because no policy allows it`,
      );
      expect(storeFailureDetail(error, 'idem')).toBe(`AccessDeniedException: dynamodb:PutItem on ${table}`);
    },
  );
});

describe('the message starts with the code, which is all a caller that sees only type and message (a durable execution) gets', () => {
  test('for every code, once', () => {
    expect(new IdempotencyError('KEY_MISSING', 'The key selector found no value.').message).toBe('KEY_MISSING: The key selector found no value.');
    expect(new IdempotencyError('COMMIT_FAILED', 'COMMIT_FAILED: already prefixed.').message).toBe('COMMIT_FAILED: already prefixed.');
    expect(new IdempotencyError('INVALID_KEY', 'KEY_MISSING: another code.').message).toBe('INVALID_KEY: KEY_MISSING: another code.');
  });
});

describe('TRANSACTION_CONFLICT as an HTTP answer', () => {
  test('503 with Retry-After: nothing was written, and the same request with the same key may be retried', () => {
    const answer = problem(new IdempotencyError('TRANSACTION_CONFLICT', 'x', { retryAfterSeconds: 1 }), 30);
    expect(answer?.statusCode).toBe(503);
    expect(answer?.headers?.['Retry-After']).toBe('1');
    expect(JSON.parse(answer!.body as string)).toMatchObject({
      status: 503,
      detail: 'Nothing was written; retry with the same Idempotency-Key after Retry-After.',
    });
  });
});

describe('the fields of an HTTP error, which @middy/http-error-handler answers with', () => {
  const rejected = (code: IdempotencyErrorCode, retryAfterSeconds?: number) =>
    new IdempotencyError(code, 'x', retryAfterSeconds === undefined ? {} : { retryAfterSeconds });

  test("each code's statusCode is the status httpIdempotency answers it with, except INVALID_KEY and TRANSACTION_INVALID (faults of the code: none)", () => {
    const codes: IdempotencyErrorCode[] = [
      'IN_PROGRESS',
      'PAYLOAD_MISMATCH',
      'KEY_MISSING',
      'INVALID_KEY',
      'STORE_FAILURE',
      'SUPERSEDED',
      'RESPONSE_NOT_STORED',
      'TRANSACTION_CONDITION_FAILED',
      'TRANSACTION_INVALID',
      'TRANSACTION_CONFLICT',
      'COMMIT_FAILED',
    ];
    const expected = {
      IN_PROGRESS: 409,
      PAYLOAD_MISMATCH: 422,
      KEY_MISSING: 400,
      INVALID_KEY: undefined,
      STORE_FAILURE: 503,
      SUPERSEDED: 409,
      RESPONSE_NOT_STORED: 409,
      TRANSACTION_CONDITION_FAILED: 409,
      TRANSACTION_INVALID: undefined,
      TRANSACTION_CONFLICT: 503,
      COMMIT_FAILED: 503,
    };
    expect(Object.fromEntries(codes.map((code) => [code, rejected(code).statusCode]))).toStrictEqual(expected);
    // What httpIdempotency answers each code with: the same status; no answer (the error goes on) to TRANSACTION_INVALID; and
    // 400 to INVALID_KEY, which it raises for an Idempotency-Key header it cannot read, a fault of the request there.
    expect(Object.fromEntries(codes.map((code) => [code, problem(rejected(code), 60)?.statusCode]))).toStrictEqual({ ...expected, INVALID_KEY: 400 });
  });

  test('expose: the message may reach the client for statuses below 500 only', () => {
    expect([rejected('IN_PROGRESS', 3), rejected('PAYLOAD_MISMATCH'), rejected('KEY_MISSING')].map((error) => error.expose)).toEqual([true, true, true]);
    expect(
      [rejected('STORE_FAILURE'), rejected('COMMIT_FAILED'), rejected('TRANSACTION_INVALID'), rejected('INVALID_KEY')].map((error) => error.expose),
    ).toEqual([false, false, false, false]);
  });

  test('headers: Retry-After when retryAfterSeconds is known, capped at 60 s as httpIdempotency caps it by default', () => {
    expect(rejected('IN_PROGRESS', 12).headers).toEqual({ 'Retry-After': '12' });
    expect(rejected('IN_PROGRESS', 900).headers).toEqual({ 'Retry-After': '60' });
    expect(rejected('TRANSACTION_CONFLICT', 1).headers).toEqual({ 'Retry-After': '1' });
    expect(rejected('PAYLOAD_MISMATCH').headers).toBeUndefined();
    expect(rejected('TRANSACTION_INVALID', 5).headers).toBeUndefined();
    expect(rejected('IN_PROGRESS', 900).retryAfterSeconds).toBe(900);
  });
});

test('isIdempotencyError: any IdempotencyError without a code, only that code with one', () => {
  const busy = new IdempotencyError('IN_PROGRESS', 'x', { retryAfterSeconds: 3 });
  expect([isIdempotencyError(busy), isIdempotencyError(busy, 'IN_PROGRESS'), isIdempotencyError(busy, 'STORE_FAILURE')]).toEqual([true, true, false]);
  expect([isIdempotencyError(new Error('IN_PROGRESS: x')), isIdempotencyError({ code: 'IN_PROGRESS' }, 'IN_PROGRESS')]).toEqual([false, false]);
});

/** A failure of the caller's own, next to the library's: what each branch of `isIdempotencyError` leaves is checked by tsc. */
type Failure = IdempotencyError | { readonly kind: 'timeout' };
function describeFailure(failure: Failure): string {
  if (isIdempotencyError(failure, 'IN_PROGRESS')) {
    const code: 'IN_PROGRESS' = failure.code; // narrowed to its code
    return `${code} ${failure.retryAfterSeconds}`;
  }
  // @ts-expect-error Where it is false, an IdempotencyError of another code may still be: `failure` is not narrowed to the caller's own.
  const own: { readonly kind: 'timeout' } = failure;
  return isIdempotencyError(failure) ? failure.code : own.kind;
}

test('isIdempotencyError never throws: a value whose prototype cannot be read (a revoked Proxy, a trap that throws) is not one', () => {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  const trapped = new Proxy(new Error('card declined'), {
    getPrototypeOf: () => {
      throw new Error('no prototype');
    },
  });
  expect([isIdempotencyError(proxy), isIdempotencyError(proxy, 'IN_PROGRESS'), isIdempotencyError(trapped)]).toEqual([false, false, false]);
});

test('isIdempotencyError with a code narrows to that code, and leaves the errors of other codes where it is false', () => {
  expect(describeFailure(new IdempotencyError('IN_PROGRESS', 'x', { retryAfterSeconds: 3 }))).toBe('IN_PROGRESS 3');
  expect(describeFailure(new IdempotencyError('STORE_FAILURE', 'x'))).toBe('STORE_FAILURE');
  expect(describeFailure({ kind: 'timeout' })).toBe('timeout');
});

test("isIdempotencyError as the callback of an array's filter, find, some or every (which pass each item's index second) tests for any IdempotencyError, as its type says", () => {
  // The errors of a batch that failed as a whole, an AggregateError's `errors`: the library's first.
  const errors: unknown[] = [new IdempotencyError('IN_PROGRESS', 'x'), new IdempotencyError('STORE_FAILURE', 'y'), new Error('card declined')];
  const found: IdempotencyError[] = errors.filter(isIdempotencyError);
  expect(found.map((error) => error.code)).toEqual(['IN_PROGRESS', 'STORE_FAILURE']);
  expect(errors.slice(1).find(isIdempotencyError)).toBe(errors[1]);
  expect([errors.slice(1).some(isIdempotencyError), errors.slice(0, 2).every(isIdempotencyError)]).toEqual([true, true]);
});

/** Typed as the function is (a wrapper, a mock): its parameters are still `(error, code?)`. */
const logged = (...args: Parameters<typeof isIdempotencyError>): boolean => isIdempotencyError(...args);

test('isIdempotencyError typed by its parameters takes the error alone, as it did before it narrowed by code', () => {
  expect([logged(new IdempotencyError('IN_PROGRESS', 'x')), logged(new Error('x')), logged(new IdempotencyError('IN_PROGRESS', 'x'), 'STORE_FAILURE')]).toEqual(
    [true, false, false],
  );
});
