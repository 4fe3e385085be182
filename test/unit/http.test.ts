import middy from '@middy/core';
import type { ALBEvent, APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import fc from 'fast-check';
import { IdempotencyError, type IdempotencyErrorCode } from '../../lib/errors.js';
import { type HttpEvent, httpIdempotency, problem, readIdempotencyKey } from '../../lib/http.js';
import { issueIdempotencyKey } from '../../lib/signed-keys.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { albEvent } from '../support/identity-events.js';
import { lambdaContext } from '../support/lambda.js';

/** The parts of a v1 event the header parser reads. */
const v1 = (headers: Record<string, string>, multiValueHeaders?: Record<string, string[]>): HttpEvent =>
  ({
    httpMethod: 'POST',
    resource: '/orders',
    path: '/orders',
    headers,
    multiValueHeaders: multiValueHeaders ?? Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, [value]])),
    requestContext: {},
  }) as unknown as APIGatewayProxyEvent;

const v2 = (headers: Record<string, string>): HttpEvent =>
  ({ version: '2.0', routeKey: 'POST /orders', rawPath: '/orders', rawQueryString: '', headers, requestContext: {} }) as unknown as APIGatewayProxyEventV2;

const codeOf = (fn: () => unknown): IdempotencyErrorCode | undefined => {
  try {
    fn();
  } catch (error) {
    if (error instanceof IdempotencyError) return error.code;
    throw error;
  }
  return undefined;
};

describe('readIdempotencyKey', () => {
  test.each([
    ['a bare token', 'order-7f3a', 'order-7f3a'],
    ['a UUID', '8e03978e-40d5-43e8-bc93-6894a57f9324', '8e03978e-40d5-43e8-bc93-6894a57f9324'],
    ['a quoted string', '"8e03978e-40d5"', '8e03978e-40d5'],
    ['a quoted string with a space', '"order 1"', 'order 1'],
    ['a quoted string with escapes', '"a\\"b\\\\c"', 'a"b\\c'],
    ['surrounding whitespace', '  k-1 ', 'k-1'],
    ['every visible ASCII character but the comma', "!#$%&'()*+-./09:;<=>?@AZ[\\]^_`az{|}~", "!#$%&'()*+-./09:;<=>?@AZ[\\]^_`az{|}~"],
    ['a quote and a backslash inside a bare token', 'a"b\\c', 'a"b\\c'],
    ['a comma inside a quoted string', '"a,b"', 'a,b'],
    ['an escaped backslash at the end of a quoted string', '"a\\\\"', 'a\\'],
    ['a tab around a quoted string', '\t"k 1"\t', 'k 1'],
    ['255 characters', 'x'.repeat(255), 'x'.repeat(255)],
    ['255 characters, quoted', `"${'x'.repeat(255)}"`, 'x'.repeat(255)],
  ])('reads %s', (_, header, key) => {
    expect(readIdempotencyKey(v1({ 'Idempotency-Key': header }))).toBe(key);
    expect(readIdempotencyKey(v2({ 'idempotency-key': header }))).toBe(key);
  });

  test.each([
    ['empty', ''],
    ['only spaces', '   '],
    ['empty quoted', '""'],
    ['256 characters', 'x'.repeat(256)],
    ['256 characters, quoted', `"${'x'.repeat(256)}"`],
    ['a control character', 'k\u0000'],
    ['DEL', 'k\u007f1'],
    ['a tab', 'k\t1'],
    ['a newline inside quotes', '"k\n1"'],
    ['DEL inside quotes', '"k\u007f1"'],
    ['non-ASCII', 'ключ'],
    ['non-ASCII, quoted', '"clé"'],
    ['a space in a bare token', 'k 1'],
    ['an unescaped quote inside quotes', '"a"b"'],
    // HTTP APIs and Function URLs join a header sent twice with a comma.
    ['two bare tokens joined by a comma', 'k1,k2'],
    ['two bare tokens joined by a comma and a space', 'k1, k2'],
    ['two quoted strings joined by a comma', '"k1","k2"'],
    ['a quoted string, then a bare token', '"k1",k2'],
    ['a bare token, then a quoted string', 'k1,"k2"'],
    ['a quoted string with a comma, then another key', '"a,b",c'],
    ['the same key twice, joined', 'k1,k1'],
    ['a lone comma', ','],
    // Invalid sf-strings: they would alias other keys.
    ['an escape at the end of a quoted string', '"a\\"'],
    ['a backslash before a letter', '"a\\b"'],
    ['a lone escaped quote', '"\\"'],
    ['an unterminated quoted string', '"abc'],
    ['a lone quote', '"'],
    ['a quoted string with parameters', '"abc";v=1'],
    ['a non-breaking space around the key', '\u00a0k-1'],
  ])('rejects %s with INVALID_KEY', (_, header) => {
    expect(codeOf(() => readIdempotencyKey(v1({ 'Idempotency-Key': header })))).toBe('INVALID_KEY');
    expect(codeOf(() => readIdempotencyKey(v2({ 'idempotency-key': header })))).toBe('INVALID_KEY');
  });

  test('rejects 256 KB of spaces between two characters with INVALID_KEY at once: the header is trimmed in one pass before its length is checked', () => {
    // A trim quadratic in the header's size (a regular expression anchored at its end) takes tens of
    // seconds on this one. Jest cannot time a synchronous test out, so the time is asserted.
    const header = `a${' '.repeat(1 << 18)}b`;
    const started = performance.now();
    expect(codeOf(() => readIdempotencyKey(v1({ 'Idempotency-Key': header })))).toBe('INVALID_KEY');
    expect(codeOf(() => readIdempotencyKey(v2({ 'idempotency-key': header })))).toBe('INVALID_KEY');
    expect(performance.now() - started).toBeLessThan(5_000); // about 3 ms; quadratic, over a minute
  });

  test('finds the header whatever the case of its name', () => {
    for (const name of ['Idempotency-Key', 'idempotency-key', 'IDEMPOTENCY-KEY', 'iDeMpOtEnCy-KeY']) {
      expect(readIdempotencyKey(v1({ [name]: 'k-1' }))).toBe('k-1');
    }
  });

  test('answers undefined without the header', () => {
    expect(readIdempotencyKey(v1({ 'Content-Type': 'application/json' }))).toBeUndefined();
    expect(readIdempotencyKey(v2({}))).toBeUndefined();
    expect(readIdempotencyKey({ ...v1({}), headers: null, multiValueHeaders: null } as unknown as HttpEvent)).toBeUndefined();
  });

  test('rejects a header sent twice', () => {
    expect(codeOf(() => readIdempotencyKey(v1({ 'Idempotency-Key': 'b' }, { 'Idempotency-Key': ['a', 'b'] })))).toBe('INVALID_KEY');
    expect(codeOf(() => readIdempotencyKey(v1({ 'Idempotency-Key': 'b' }, { 'Idempotency-Key': ['b', 'b'] })))).toBe('INVALID_KEY');
    expect(codeOf(() => readIdempotencyKey(v1({ 'Idempotency-Key': 'a', 'idempotency-key': 'b' })))).toBe('INVALID_KEY');
  });
});

describe('readIdempotencyKey on Application Load Balancer requests', () => {
  test.each([false, true])('finds the key in lower-case header names, under `headers` or `multiValueHeaders` alone (multi-value: %s)', (multiValue) => {
    const event = albEvent({ key: '"k 1"', multiValue });
    expect(multiValue ? event.headers : event.multiValueHeaders).toBeUndefined();
    expect(readIdempotencyKey(event)).toBe('k 1');
    expect(readIdempotencyKey(albEvent({ multiValue }))).toBeUndefined();
  });

  test('with multi-value headers, finds the key also when a middleware gave the event a `headers` object without it', () => {
    const event = { ...albEvent({ key: 'k-1', multiValue: true }), headers: {} } as ALBEvent;
    expect(readIdempotencyKey(event)).toBe('k-1');
    expect(readIdempotencyKey({ ...event, headers: { accept: 'application/json' } })).toBe('k-1');
  });

  test('with multi-value headers, rejects a key sent twice, also under names that differ in case, and a non-string', () => {
    expect(codeOf(() => readIdempotencyKey(albEvent({ headers: { 'idempotency-key': ['k-1', 'k-1'] }, multiValue: true })))).toBe('INVALID_KEY');
    const mixed = albEvent({ key: 'k-1', headers: { 'Idempotency-Key': 'k-2' }, multiValue: true });
    expect(codeOf(() => readIdempotencyKey(mixed))).toBe('INVALID_KEY');
    const odd = { ...albEvent({ multiValue: true }), multiValueHeaders: { 'idempotency-key': [42] } } as unknown as ALBEvent;
    expect(codeOf(() => readIdempotencyKey(odd))).toBe('INVALID_KEY');
  });
});

describe('readIdempotencyKey never lets two header values alias one key', () => {
  /** The one quoted form of a key (RFC 8941 escapes only `"` and `\`). */
  const quoted = (key: string) => `"${key.replace(/[\\"]/g, '\\$&')}"`;
  const read = (value: string) => {
    try {
      return readIdempotencyKey(v2({ 'idempotency-key': value }));
    } catch (error) {
      if (error instanceof IdempotencyError && error.code === 'INVALID_KEY') return undefined;
      throw error;
    }
  };
  // The characters that matter to the grammar, and a few that do not.
  const value = fc.string({ unit: fc.constantFrom('"', '\\', ',', ';', ' ', '\t', 'a', 'b', '=', '\u00e9'), maxLength: 12 });

  test('an accepted value is the key itself (a bare token) or its one quoted form: nothing else decodes to it', () => {
    fc.assert(
      fc.property(value, (header) => {
        const key = read(header);
        if (key === undefined) return;
        const trimmed = header.replace(/^[ \t]+|[ \t]+$/g, '');
        expect(trimmed === key ? !key.includes(',') && !key.startsWith('"') : trimmed === quoted(key)).toBe(true);
      }),
      { numRuns: 2000, seed: 20_250_115 },
    );
  });

  test('every key of 1 to 255 visible characters (or spaces) reads back from its quoted form', () => {
    const key = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 255 });
    fc.assert(
      fc.property(key, (k) => {
        expect(read(quoted(k))).toBe(k);
      }),
      { numRuns: 500, seed: 20_250_115 },
    );
  });
});

describe('problem', () => {
  test.each([
    ['KEY_MISSING', 400],
    ['INVALID_KEY', 400],
    ['PAYLOAD_MISMATCH', 422],
    ['IN_PROGRESS', 409],
    ['RESPONSE_NOT_STORED', 409],
    ['ERROR_NOT_STORED', 409],
    ['STORE_FAILURE', 503],
  ] as const)('maps %s to %i as application/problem+json', (code, status) => {
    const response = problem(new IdempotencyError(code, 'internal message'), 60)!;
    expect(response.statusCode).toBe(status);
    expect(response.headers?.['Content-Type']).toBe('application/problem+json');
    const body = JSON.parse(response.body!) as Record<string, unknown>;
    expect(body).toEqual({ type: 'about:blank', title: expect.any(String), status, detail: expect.any(String) });
    // The internal message is not the public detail.
    expect(response.body).not.toContain('internal message');
  });

  test('a request whose final error was not kept is told it failed, not that it completed', () => {
    const body = JSON.parse(problem(new IdempotencyError('ERROR_NOT_STORED', 'x'), 60)!.body!) as Record<string, unknown>;
    expect([body.title, body.detail]).toEqual([
      'A request with this Idempotency-Key failed, and its error was not kept',
      'The original request failed for good, but its error could not be kept; it will not be run again.',
    ]);
  });

  test('gives a 409 Retry-After in delta-seconds, capped', () => {
    const inProgress = (seconds: number) => new IdempotencyError('IN_PROGRESS', 'busy', { retryAfterSeconds: seconds });
    expect(problem(inProgress(12), 60)?.headers?.['Retry-After']).toBe('12');
    expect(problem(inProgress(900), 60)?.headers?.['Retry-After']).toBe('60');
    expect(problem(inProgress(900), 5)?.headers?.['Retry-After']).toBe('5');
    expect(problem(new IdempotencyError('PAYLOAD_MISMATCH', 'x'), 60)?.headers).not.toHaveProperty('Retry-After');
  });

  test('extra headers never add a second Content-Type or Retry-After, whatever the case of their names; others are kept', () => {
    const inProgress = new IdempotencyError('IN_PROGRESS', 'busy', { retryAfterSeconds: 3 });
    expect(problem(inProgress, 60, { 'content-type': 'text/html', 'RETRY-AFTER': '999', vary: 'Origin' })?.headers).toEqual({
      'Content-Type': 'application/problem+json',
      'Retry-After': '3',
      vary: 'Origin',
    });
    // A 422 sets no Retry-After of its own: one given is kept.
    expect(problem(new IdempotencyError('PAYLOAD_MISMATCH', 'x'), 60, { 'retry-after': '5' })?.headers).toEqual({
      'Content-Type': 'application/problem+json',
      'retry-after': '5',
    });
  });

  test('with CORS headers, exposes Retry-After to the other origin (not a CORS-safelisted header), after any header already exposed', () => {
    const inProgress = new IdempotencyError('IN_PROGRESS', 'busy', { retryAfterSeconds: 3 });
    expect(problem(inProgress, 60, { 'Access-Control-Allow-Origin': 'https://shop.example' })?.headers).toMatchObject({
      'Access-Control-Expose-Headers': 'Retry-After',
    });
    expect(
      problem(inProgress, 60, { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'X-Request-Id' })?.headers?.[
        'access-control-expose-headers'
      ],
    ).toBe('X-Request-Id, Retry-After');
    expect(problem(inProgress, 60, { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': 'retry-after' })?.headers).toMatchObject({
      'Access-Control-Expose-Headers': 'retry-after',
    });
    // Without CORS headers, or without Retry-After, nothing to expose.
    expect(problem(inProgress, 60)?.headers).not.toHaveProperty('Access-Control-Expose-Headers');
    expect(problem(new IdempotencyError('PAYLOAD_MISMATCH', 'x'), 60, { 'Access-Control-Allow-Origin': '*' })?.headers).not.toHaveProperty(
      'Access-Control-Expose-Headers',
    );
  });

  test.each([
    ['a request in progress whose time left is not known: 1 s', new IdempotencyError('IN_PROGRESS', 'busy'), 409, '1'],
    ['a transaction conflict: its time, capped', new IdempotencyError('TRANSACTION_CONFLICT', 'x', { retryAfterSeconds: 90 }), 503, '30'],
    ['a conflict whose time is not known: 1 s', new IdempotencyError('TRANSACTION_CONFLICT', 'x'), 503, '1'],
    ['an unreachable store: 1 s', new IdempotencyError('STORE_FAILURE', 'x'), 503, '1'],
    ['a commit settled as not applied: at once', new IdempotencyError('COMMIT_FAILED', 'x', { retryAfterSeconds: 0 }), 503, '0'],
  ])('says when to retry %s', (_label, error, status, retryAfter) => {
    const answer = problem(error, 30);
    expect([answer?.statusCode, answer?.headers?.['Retry-After']]).toEqual([status, retryAfter]);
  });

  test('answers undefined for a code that is no client-facing rejection (a server bug: 500)', () => {
    expect(problem(new IdempotencyError('TRANSACTION_INVALID', 'x'), 60)).toBeUndefined();
  });

  test('a failed commit known not applied says nothing was written; one whose outcome is unknown, that it may have applied', () => {
    const body = (answer: ReturnType<typeof problem>) => JSON.parse(answer!.body as string);
    expect(body(problem(new IdempotencyError('COMMIT_FAILED', 'x', { retryAfterSeconds: 1 }), 30))).toEqual({
      type: 'about:blank',
      title: 'The request was not applied',
      status: 503,
      detail: 'Nothing was written; retry with the same Idempotency-Key after Retry-After.',
    });
    expect(body(problem(new IdempotencyError('COMMIT_FAILED', 'x'), 30))).toMatchObject({
      title: 'The outcome of this request is not known yet',
      detail: expect.stringMatching(/^The request may or may not have been applied;/),
    });
  });

  test('an unknown commit outcome is a 503 with Retry-After; a failed business condition a 409', () => {
    const unknown = problem(new IdempotencyError('COMMIT_FAILED', 'x'), 30);
    expect(unknown?.statusCode).toBe(503);
    expect(unknown?.headers?.['Retry-After']).toBe('30');
    expect(problem(new IdempotencyError('TRANSACTION_CONDITION_FAILED', 'x'), 30)?.statusCode).toBe(409);
  });
});

describe('the 400 for a bad Idempotency-Key', () => {
  const detailFor = async (headers: Record<string, string>, signed = false) => {
    const secret = 'k'.repeat(32);
    const handler = middy(async () => ({ statusCode: 201 })).use(
      httpIdempotency({ store: new InMemoryStore(), ...(signed ? { signedKeys: { secrets: [secret] } } : {}) }),
    );
    const result = (await handler(v1(headers), lambdaContext('orders'))) as { statusCode: number; body: string };
    expect(result.statusCode).toBe(400);
    return (JSON.parse(result.body) as { detail: string }).detail;
  };

  test('says which rule the header broke, in a fixed sentence that never quotes the header', async () => {
    const details = [
      await detailFor({ 'idempotency-key': '' }),
      await detailFor({ 'idempotency-key': 'x'.repeat(256) }),
      await detailFor({ 'idempotency-key': 'clé<script>' }),
      await detailFor({ 'idempotency-key': 'a<script>,b' }),
      await detailFor({ 'idempotency-key': 'k', 'Idempotency-Key': 'k2<script>' }),
      await detailFor({ 'idempotency-key': '"a"<script>' }),
    ];
    expect(details).toEqual([
      'The Idempotency-Key header must be 1 to 255 characters long.',
      'The Idempotency-Key header must be 1 to 255 characters long.',
      'The Idempotency-Key header must be visible ASCII characters (or a quoted string).',
      expect.stringMatching(/^The Idempotency-Key header holds a comma outside a quoted string/),
      'The Idempotency-Key header must be sent once.',
      'The Idempotency-Key header is not a valid structured-field string.',
    ]);
    for (const detail of details) expect(detail).not.toContain('<script>');
  });

  test('with `signedKeys`, tells a key this API did not issue from one whose issue time is ahead of its clock', async () => {
    const secret = 'k'.repeat(32);
    expect(await detailFor({ 'idempotency-key': 'order-1' }, true)).toMatch(/^The Idempotency-Key was not issued by this API/);
    const ahead = issueIdempotencyKey({ secret, now: () => Date.now() + 3_600_000 });
    expect(await detailFor({ 'idempotency-key': ahead }, true)).toMatch(/^The Idempotency-Key's issue time is in the future/);
  });
});

test('`maxRetryAfterSeconds` is a whole number of seconds, 1 or more: a Retry-After of 0 would send every client back at once', () => {
  const store = new InMemoryStore();
  for (const bad of [0, -1, 1.5]) {
    expect(() => httpIdempotency({ store, maxRetryAfterSeconds: bad })).toThrow(
      new TypeError(`httpIdempotency: \`maxRetryAfterSeconds\` must be a whole number of seconds, 1 or more (got ${bad}).`),
    );
  }
  expect(() => httpIdempotency({ store, maxRetryAfterSeconds: 1 })).not.toThrow();
});
