/** Configuration of the demo functions, from the environment the CDK stack sets. */
import { cloudWatchLines } from '../../lib/index.js';
import { readKeySecrets } from './key-secrets.js';
import type { FunctionOptions } from './wiring.js';

export interface FunctionEnvironment {
  readonly idempotencyTable: string;
  readonly paymentsTable: string;
  /** Set by `IdempotencyTable.attachFunction`; the synth-time checks use the same value. */
  readonly expiresAfterSeconds: number | undefined;
  /** The Secrets Manager secret that signs idempotency keys, when the API requires issued keys. */
  readonly keySecretId: string | undefined;
}

export function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`Environment variable ${name} is not set; the CDK stack sets it on the function.`);
  return value;
}

export function readEnvironment(): FunctionEnvironment {
  const retention = process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS;
  const expiresAfterSeconds = retention ? Number(retention) : undefined;
  if (expiresAfterSeconds !== undefined && !(Number.isInteger(expiresAfterSeconds) && expiresAfterSeconds > 0)) {
    throw new Error(`IDEMPOTENCY_EXPIRES_AFTER_SECONDS must be a whole number of seconds (got ${JSON.stringify(retention)}).`);
  }
  return {
    idempotencyTable: required('IDEMPOTENCY_TABLE'),
    paymentsTable: required('PAYMENTS_TABLE'),
    expiresAfterSeconds,
    keySecretId: process.env.IDEMPOTENCY_KEY_SECRET_ID || undefined,
  };
}

/**
 * A Lambda entry point configured by `configure` on its first invocation and reused after. Not at
 * import: the demo and the tests import the functions' modules without that environment. A failed
 * configuration is tried again by the next invocation.
 */
export function configureOnce<E extends unknown[], R>(configure: () => Promise<(...event: E) => Promise<R>>): (...event: E) => Promise<R> {
  let configured: Promise<(...event: E) => Promise<R>> | undefined;
  return async (...event) => {
    configured ??= configure().catch((error: unknown) => {
      configured = undefined;
      throw error;
    });
    return (await configured)(...event);
  };
}

/**
 * The Lambda entry point of a function built by `create`, from the stack's environment: tables,
 * retention, key-signing secrets when set, and the library's EMF metrics (for the dashboard).
 */
export function handlerFromEnvironment<E, C, R>(
  create: (options: FunctionOptions) => (event: E, context: C) => Promise<R>,
): (event: E, context: C) => Promise<R> {
  return configureOnce(async () => {
    const env = readEnvironment();
    return create({
      idempotencyTable: env.idempotencyTable,
      paymentsTable: env.paymentsTable,
      ...(env.expiresAfterSeconds === undefined ? {} : { expiresAfterSeconds: env.expiresAfterSeconds }),
      ...(env.keySecretId === undefined ? {} : { keySecrets: await readKeySecrets(env.keySecretId) }),
      observability: cloudWatchLines(),
    });
  });
}
