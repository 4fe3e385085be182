/** Configuration of the demo functions, from the environment the CDK stack sets. */
import type { FunctionOptions } from './wiring.js';

export interface FunctionEnvironment {
  readonly idempotencyTable: string;
  readonly paymentsTable: string;
  /** Set by `IdempotencyTable.attachFunction`; the synth-time checks use the same value. */
  readonly expiresAfterSeconds: number | undefined;
}

function required(name: string): string {
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
  return { idempotencyTable: required('IDEMPOTENCY_TABLE'), paymentsTable: required('PAYMENTS_TABLE'), expiresAfterSeconds };
}

/**
 * The Lambda entry point of a function built by `create`, configured from the environment on its
 * first invocation and reused after. Not at import: the demo and the tests import the functions'
 * modules without that environment.
 */
export function handlerFromEnvironment<E, C, R>(create: (options: FunctionOptions) => (event: E, context: C) => R): (event: E, context: C) => R {
  let configured: ((event: E, context: C) => R) | undefined;
  return (event, context) => {
    if (configured === undefined) {
      const env = readEnvironment();
      configured = create({
        idempotencyTable: env.idempotencyTable,
        paymentsTable: env.paymentsTable,
        ...(env.expiresAfterSeconds === undefined ? {} : { expiresAfterSeconds: env.expiresAfterSeconds }),
      });
    }
    return configured(event, context);
  };
}
