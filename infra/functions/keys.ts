/**
 * `POST /idempotency-keys`: issues a fresh signed idempotency key. A client asks for one before a
 * payment and sends it as the `Idempotency-Key` of that payment and of its retries; a payment API
 * that requires issued keys refuses any other key with a 400.
 */
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { issueIdempotencyKey, type SigningSecret } from '../../lib/index.js';
import { configureOnce, required } from './environment.js';
import { readKeySecrets } from './key-secrets.js';

export type KeyHandler = () => Promise<APIGatewayProxyStructuredResultV2>;

/**
 * Builds the handler; the demo and the tests pass the secret, Lambda reads it from Secrets Manager.
 *
 * @example
 * ```ts
 * const handler = createKeyHandler({ secret: randomBytes(32) });
 * ```
 */
export function createKeyHandler(options: { readonly secret: SigningSecret }): KeyHandler {
  issueIdempotencyKey({ secret: options.secret }); // a bad secret fails here, not on the first request
  return async () => ({
    statusCode: 201,
    // Each response carries a new key: no cache may hand one key to two clients.
    headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' },
    body: JSON.stringify({ key: issueIdempotencyKey({ secret: options.secret }) }),
  });
}

/** The Lambda entry point: the secret named by `IDEMPOTENCY_KEY_SECRET_ID`, read once per execution environment. */
export const handler: KeyHandler = configureOnce(async () => {
  const [current] = await readKeySecrets(required('IDEMPOTENCY_KEY_SECRET_ID'));
  return createKeyHandler({ secret: current! });
});
