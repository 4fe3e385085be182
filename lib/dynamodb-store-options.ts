import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { OutcomeEncryption, ResponseEncryption } from './encryption.js';
import { checkOptions, isNonEmptyString, type OptionCheck, wholeNumber } from './options.js';
import { DEFAULT_COMPRESS_ABOVE_BYTES, OUTCOME_OPTION_CHECKS } from './stored-outcome.js';

/** Attribute names of the idempotency table. The defaults match the CDK construct's table. */
export interface AttributeNames {
  /** Partition key (S). @default 'id' */
  readonly key: string;
  /** @default 'status' */
  readonly status: string;
  /** The table's TTL attribute, epoch seconds (N). @default 'expiration' */
  readonly expiration: string;
  /** @default 'leaseUntil' */
  readonly leaseUntil: string;
  /** @default 'owner' */
  readonly owner: string;
  /** @default 'fingerprint' */
  readonly fingerprint: string;
  /** S (JSON) or B (gzip of the JSON; sealed with `encryption`). @default 'response' */
  readonly response: string;
  /** @default 'responseOmitted' */
  readonly responseOmitted: string;
  /** Set, with `responseOmitted`, when what could not be stored was a final error (BOOL). @default 'errorOmitted' */
  readonly errorOmitted: string;
  /** A stored final error, S (JSON; B sealed with `encryption`). @default 'error' */
  readonly error: string;
  /** Id of the key that sealed the response or error, with `encryption`. @default 'keyId' */
  readonly keyId: string;
}

/**
 * The default attribute names.
 *
 * @example
 * ```ts
 * DEFAULT_ATTRIBUTE_NAMES.expiration; // 'expiration', the table's TTL attribute
 * ```
 */
export const DEFAULT_ATTRIBUTE_NAMES: AttributeNames = Object.freeze({
  key: 'id',
  status: 'status',
  expiration: 'expiration',
  leaseUntil: 'leaseUntil',
  owner: 'owner',
  fingerprint: 'fingerprint',
  response: 'response',
  responseOmitted: 'responseOmitted',
  errorOmitted: 'errorOmitted',
  error: 'error',
  keyId: 'keyId',
});

/**
 * The environment variables a store reads when its options leave the table or the retention out;
 * `IdempotencyTable.attachFunction` (CDK) sets both. @internal
 */
export const STORE_ENVIRONMENT = Object.freeze({ tableName: 'IDEMPOTENCY_TABLE', expiresAfterSeconds: 'IDEMPOTENCY_EXPIRES_AFTER_SECONDS' });

/**
 * The longest retention `IDEMPOTENCY_EXPIRES_AFTER_SECONDS` can name (15 digits, about 31 million
 * years): `IdempotencyTable` refuses a longer one at synth, which the store would refuse at every
 * cold start. @internal
 */
export const MAX_ENVIRONMENT_RETENTION_SECONDS = 999_999_999_999_999;

/**
 * Options of the `DynamoDBStore` from `lambda-idempotency/dynamodb`: those of the main entry's,
 * with `encryption` as the module only.
 *
 * @example
 * ```ts
 * const options: DynamoDBStoreOptions = { tableName: 'idempotency', encryption: aesGcmEncryption(keys) };
 * ```
 */
export interface LeanDynamoDBStoreOptions {
  /**
   * The table's name, or its ARN (a table of another account or Region: the client the store builds
   * sends to the ARN's Region; bring your own `client` for that Region when you pass one).
   * @default process.env.IDEMPOTENCY_TABLE
   */
  readonly tableName?: string | undefined;
  /**
   * Bound your own client's requests: the SDK sets no timeouts (`requestHandler: { connectionTimeout,
   * requestTimeout, throwOnRequestTimeout: true, socketTimeout }`; `requestTimeout` alone only logs,
   * and ends with the reply's headers: `socketTimeout` bounds a reply whose body stops coming).
   * @default a new `DynamoDBClient` with the environment's region (the ARN's, for a `tableName` given as one) and credentials, each request attempt bounded: 1 s to connect, 2 s in all, 2 s without a byte of the reply
   */
  readonly client?: DynamoDBClient | undefined;
  /**
   * Other names for the record's attributes, e.g. `{ key: 'pk' }` for a table keyed by `pk`; a name
   * left `undefined` (`{ key: process.env.KEY_ATTRIBUTE }`, unset) is the default.
   * @default {@link DEFAULT_ATTRIBUTE_NAMES}
   */
  readonly attributes?: { readonly [Field in keyof AttributeNames]?: string | undefined } | undefined;
  /** Responses whose JSON is larger than this many bytes (0 to 409600) are stored gzip-compressed. @default 32768 */
  readonly compressAboveBytes?: number | undefined;
  /** Encrypt stored responses and final errors at rest: `aesGcmEncryption(provider)` from `lambda-idempotency`. @default none */
  readonly encryption?: OutcomeEncryption | undefined;
  /**
   * Retention of records in seconds, for calls whose own `expiresAfterSeconds` is not set.
   * @default process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS when set, else the caller's default (86400)
   */
  readonly expiresAfterSeconds?: number | undefined;
}

/**
 * Options of `DynamoDBStore`.
 *
 * @example
 * ```ts
 * const options: DynamoDBStoreOptions = { tableName: 'idempotency', expiresAfterSeconds: 3600 };
 * ```
 */
export interface DynamoDBStoreOptions extends Omit<LeanDynamoDBStoreOptions, 'encryption'> {
  /**
   * Encrypt stored responses and final errors at rest: `aesGcmEncryption(provider)` (AES-256-GCM
   * with keys from your provider). The provider itself (`{ currentKey, keyById }`) is still taken,
   * and means the same: deprecated, pass `aesGcmEncryption(provider)`. @default none
   */
  readonly encryption?: OutcomeEncryption | ResponseEncryption | undefined;
}

/** The options with every default applied. @internal */
export interface ResolvedStoreOptions {
  readonly tableName: string;
  readonly client: DynamoDBClient | undefined;
  readonly attributes: AttributeNames;
  readonly compressAboveBytes: number;
  readonly encryption: OutcomeEncryption | undefined;
  readonly expiresAfterSeconds: number | undefined;
}

/** What DynamoDB accepts as a table name (the CDK construct checks its `tableName` by it too: CloudFormation would refuse others only at deploy time). @internal */
export const TABLE_NAME = /^[A-Za-z0-9_.-]{3,255}$/;

/**
 * A table's ARN, which DynamoDB takes wherever it takes the name (a table of another account or
 * Region), in any partition; not the ARN of its stream or of an index, which no item write takes.
 */
const TABLE_ARN = /^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:\d{12}:table\/[A-Za-z0-9_.-]{3,255}$/;

/** Every option of a `DynamoDBStore` and its check. */
const STORE_CHECKS: { readonly [K in keyof LeanDynamoDBStoreOptions]-?: OptionCheck } = {
  // DynamoDB refuses any other name on every request, as the store's failure on every call: refused here,
  // quoted, so that a space or a line end from configuration shows.
  tableName: (value) =>
    typeof value === 'string' && (TABLE_NAME.test(value) || TABLE_ARN.test(value))
      ? undefined
      : `must be the name of a DynamoDB table (3 to 255 letters, digits, '_', '-' or '.') or its ARN, arn:aws:dynamodb:<region>:<account>:table/<name> (got ${typeof value === 'string' ? JSON.stringify(value) : String(value)})`,
  client: (value) => (typeof (value as { send?: unknown } | null)?.send === 'function' ? undefined : 'must be a DynamoDBClient from @aws-sdk/client-dynamodb'),
  attributes: () => undefined, // checked name by name below
  ...OUTCOME_OPTION_CHECKS,
  expiresAfterSeconds: wholeNumber(1, 'seconds'),
};

const ATTRIBUTE_CHECKS: Readonly<Record<string, OptionCheck>> = Object.fromEntries(
  Object.keys(DEFAULT_ATTRIBUTE_NAMES).map((field) => [field, isNonEmptyString]),
);

/** Validates the options of a `DynamoDBStore` and fills the defaults (from the environment first). @internal */
export function resolveStoreOptions(options: LeanDynamoDBStoreOptions, env: Record<string, string | undefined> = process.env): ResolvedStoreOptions {
  checkOptions('DynamoDBStore', options, STORE_CHECKS);
  const tableName = options.tableName ?? env[STORE_ENVIRONMENT.tableName];
  if (tableName === undefined) {
    throw new TypeError(`DynamoDBStore: \`tableName\` is required: pass it, or set ${STORE_ENVIRONMENT.tableName} (IdempotencyTable.attachFunction sets it).`);
  }
  // A name from the environment is held to the option's check, and refused in its words.
  const problem = options.tableName === undefined ? STORE_CHECKS.tableName(tableName) : undefined;
  if (problem !== undefined) throw new TypeError(`DynamoDBStore: ${STORE_ENVIRONMENT.tableName} ${problem}.`);
  if (options.attributes !== undefined) checkOptions('DynamoDBStore attributes', options.attributes, ATTRIBUTE_CHECKS);
  // A name left `undefined` (`{ key: process.env.KEY_ATTRIBUTE }`, unset) is the default, as an option left `undefined` is:
  // spread as it is, it would name an attribute "undefined", or none in an expression.
  const renamed = Object.entries(options.attributes ?? {}).filter(([, name]) => name !== undefined);
  const attributes: AttributeNames = Object.freeze({ ...DEFAULT_ATTRIBUTE_NAMES, ...Object.fromEntries(renamed) });
  const named = new Map<string, keyof AttributeNames>();
  for (const field of Object.keys(attributes) as Array<keyof AttributeNames>) {
    const first = named.get(attributes[field]);
    if (first !== undefined) {
      throw new TypeError(
        `DynamoDBStore: every attribute name must be different: \`${first}\` and \`${field}\` are both named ${JSON.stringify(attributes[field])}; rename one of them in \`attributes\`.`,
      );
    }
    named.set(attributes[field], field);
  }
  return {
    tableName,
    client: options.client,
    attributes,
    compressAboveBytes: options.compressAboveBytes ?? DEFAULT_COMPRESS_ABOVE_BYTES,
    encryption: options.encryption,
    expiresAfterSeconds: options.expiresAfterSeconds ?? retentionFromEnvironment(env),
  };
}

/** The retention named by `IDEMPOTENCY_EXPIRES_AFTER_SECONDS`, if set. */
function retentionFromEnvironment(env: Record<string, string | undefined>): number | undefined {
  const text = env[STORE_ENVIRONMENT.expiresAfterSeconds];
  if (text === undefined) return undefined;
  const seconds = /^\d+$/.test(text) && Number(text) <= MAX_ENVIRONMENT_RETENTION_SECONDS ? Number(text) : Number.NaN;
  // Refused in the words of the option's check, which quotes the text as given.
  if (!(seconds >= 1)) throw new TypeError(`DynamoDBStore: ${STORE_ENVIRONMENT.expiresAfterSeconds} ${STORE_CHECKS.expiresAfterSeconds(text)}.`);
  return seconds;
}
