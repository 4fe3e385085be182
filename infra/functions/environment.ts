/** Configuration of the demo functions, from the environment the CDK stack sets. */
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
