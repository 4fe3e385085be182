/** What the payment API and the SQS consumer are both built from: their options, the store and the payment service. */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStore, type IdempotencyListener, type IdempotencyLogger, type SigningSecret } from '../../lib/index.js';
import { type PaymentProvider, PaymentService } from './payment-service.js';

export interface FunctionOptions {
  readonly idempotencyTable: string;
  readonly paymentsTable: string;
  /** @default a new `DynamoDBClient` from the environment, each request attempt bounded */
  readonly client?: DynamoDBClient;
  /** @default the simulated provider */
  readonly provider?: PaymentProvider;
  /** Record retention, seconds. @default the library's (24 h) */
  readonly expiresAfterSeconds?: number;
  /** Clock, epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /** Where the library reports bookkeeping failures and poison records, and the payment API its 5xx answers' causes. @default console */
  readonly logger?: IdempotencyLogger;
  /** Where the library's events go. @default off (EMF metrics in Lambda, for the dashboard) */
  readonly observability?: IdempotencyListener;
  /** The payment API accepts only keys issued with one of these secrets (current first). @default any key */
  readonly keySecrets?: readonly SigningSecret[];
}

/** The idempotency store and the payment service, on one client: the given one, or one from the environment. */
export function paymentsBackend(options: FunctionOptions): { readonly store: DynamoDBStore; readonly service: PaymentService } {
  // The SDK sets no timeouts: a request never answered would hold the call until the Lambda times out.
  // The store's own client's bounds: `requestTimeout` ends once a reply's headers have come, and
  // `socketTimeout` bounds a reply whose body stops coming (a connection dropped silently mid-reply).
  const client =
    options.client ??
    new DynamoDBClient({ requestHandler: { connectionTimeout: 1_000, requestTimeout: 2_000, throwOnRequestTimeout: true, socketTimeout: 2_000 } });
  const service = new PaymentService({
    client,
    tableName: options.paymentsTable,
    ...(options.provider ? { provider: options.provider } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  return { store: new DynamoDBStore({ tableName: options.idempotencyTable, client }), service };
}

/** The options the functions hand on to the library, each only when set, so the library's default holds otherwise. */
export function libraryOptions(options: FunctionOptions): {
  expiresAfterSeconds?: number;
  now?: () => number;
  logger?: IdempotencyLogger;
  observability?: IdempotencyListener;
} {
  return {
    ...(options.observability ? { observability: options.observability } : {}),
    ...(options.expiresAfterSeconds === undefined ? {} : { expiresAfterSeconds: options.expiresAfterSeconds }),
    ...(options.now ? { now: options.now } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  };
}
