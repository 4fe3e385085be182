import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import { IdempotencyError, type IdempotencyErrorCode } from '../../lib/errors.js';
import { type HttpEvent, callerIdentity, problem, readIdempotencyKey } from '../../lib/http.js';

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
    ['every visible ASCII character', '!#$%&\'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~', '!#$%&\'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~'],
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
    ['non-ASCII', 'ключ'],
    ['non-ASCII, quoted', '"clé"'],
    ['a space in a bare token', 'k 1'],
    ['an unescaped quote inside quotes', '"a"b"'],
  ])('rejects %s with INVALID_KEY', (_, header) => {
    expect(codeOf(() => readIdempotencyKey(v1({ 'Idempotency-Key': header })))).toBe('INVALID_KEY');
    expect(codeOf(() => readIdempotencyKey(v2({ 'idempotency-key': header })))).toBe('INVALID_KEY');
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

describe('callerIdentity', () => {
  const withContext = (requestContext: object): HttpEvent => ({ ...v1({}), requestContext }) as unknown as HttpEvent;

  test.each([
    ['a v2 JWT authorizer', { authorizer: { jwt: { claims: { sub: 'user-1' }, scopes: [] } } }, 'user-1'],
    ['a v1 Cognito authorizer', { authorizer: { claims: { sub: 'user-2', email: 'a@example.com' } } }, 'user-2'],
    ['a v1 Lambda authorizer', { authorizer: { principalId: 'tenant-3', integrationLatency: 4 } }, 'tenant-3'],
    ['a v2 Lambda authorizer context', { authorizer: { lambda: { principalId: 'tenant-4' } } }, 'tenant-4'],
    ['a v2 IAM authorizer', { authorizer: { iam: { userArn: 'arn:aws:iam::123456789012:user/alice' } } }, 'arn:aws:iam::123456789012:user/alice'],
    ['a v1 IAM caller', { authorizer: null, identity: { userArn: 'arn:aws:iam::123456789012:user/bob', apiKeyId: null } }, 'arn:aws:iam::123456789012:user/bob'],
    ['a v1 API key', { authorizer: null, identity: { apiKeyId: 'k9x8c7', userArn: null, cognitoIdentityId: null } }, 'k9x8c7'],
    ['nothing', { authorizer: null, identity: { apiKeyId: null, userArn: null } }, undefined],
    ['an empty principal', { authorizer: { principalId: '' } }, undefined],
  ])('reads %s', (_, requestContext, identity) => {
    expect(callerIdentity(withContext(requestContext))).toBe(identity);
  });
});

describe('problem', () => {
  test.each([
    ['KEY_MISSING', 400],
    ['INVALID_KEY', 400],
    ['PAYLOAD_MISMATCH', 422],
    ['IN_PROGRESS', 409],
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

  test('gives a 409 Retry-After in delta-seconds, capped', () => {
    const inProgress = (seconds: number) => new IdempotencyError('IN_PROGRESS', 'busy', { retryAfterSeconds: seconds });
    expect(problem(inProgress(12), 60)?.headers?.['Retry-After']).toBe('12');
    expect(problem(inProgress(900), 60)?.headers?.['Retry-After']).toBe('60');
    expect(problem(inProgress(900), 5)?.headers?.['Retry-After']).toBe('5');
    expect(problem(new IdempotencyError('PAYLOAD_MISMATCH', 'x'), 60)?.headers).not.toHaveProperty('Retry-After');
  });

  test('answers undefined for a code that is no client-facing rejection (a server bug: 500)', () => {
    expect(problem(new IdempotencyError('TRANSACTION_INVALID', 'x'), 60)).toBeUndefined();
  });

  test('an unknown commit outcome is a 503 with Retry-After; a failed business condition a 409', () => {
    const unknown = problem(new IdempotencyError('COMMIT_FAILED', 'x'), 30);
    expect(unknown?.statusCode).toBe(503);
    expect(unknown?.headers?.['Retry-After']).toBe('30');
    expect(problem(new IdempotencyError('TRANSACTION_CONDITION_FAILED', 'x'), 30)?.statusCode).toBe(409);
  });
});
