import { IdempotencyError, storeFailureDetail } from './errors.js';
import { httpKeyValueOf } from './http-request.js';
import { canonicalKey, isNamespace, isWellFormed, keyHash, MAX_RECORD_KEY_BYTES, recordKey } from './key.js';
import { anyValue, checkOptions, isNonEmptyString, type OptionCheck } from './options.js';
import { UnreadableRecordError } from './response-codec.js';
import type { IdempotencyStore, RecordStatus, RecordSummary } from './store.js';

/*
 * Operations tools: look at or remove the record of one key, addressed the way the engine
 * addresses it, so an operator never computes a hash by hand.
 */

/** The parts of an HTTP request that `httpIdempotency` keys its records by. */
export interface HttpRecordKey {
  /** The `Idempotency-Key` header value, unquoted. */
  readonly key: string;
  /** The request method, e.g. `POST` (case does not matter). */
  readonly method: string;
  /**
   * The route as the middleware sees it: the route key of an HTTP API (`POST /payments`; for its
   * `$default` route, `<METHOD> <path>` in payload format 2.0, `$default` in 1.0), the resource of a
   * REST API (`/payments/{id}`), or `<METHOD> <path>` for a Function URL or a load balancer. The
   * method that leads a route is upper-cased, as the middleware sees it (`post /payments` is
   * `POST /payments`).
   */
  readonly route: string;
  /** The caller identity that scoped the key; omit it for requests without one. */
  readonly caller?: string | undefined;
}

/**
 * Which record: the `name` (namespace) and the key value as the key selector returned it, the
 * parts of an HTTP request, or the record id (`<namespace>#<hash>`) as logs show it. `tenant`: the
 * tenant id of an invocation in Lambda's tenant isolation mode, whose records are its own.
 */
export type RecordAddress =
  | { readonly name: string; readonly key: unknown; readonly tenant?: string | undefined }
  | { readonly name: string; readonly http: HttpRecordKey; readonly tenant?: string | undefined }
  | { readonly id: string };

/** What `inspectRecord` reads: a {@link RecordAddress} and the store that keeps the record. */
export type InspectRecordOptions = RecordAddress & {
  readonly store: IdempotencyStore;
};

/** What `forgetRecord` deletes: a {@link RecordAddress}, the store that keeps the record, and the state it must still be in. */
export type ForgetRecordOptions = RecordAddress & {
  readonly store: IdempotencyStore;
  /** Delete only while the record has this status. @default any status */
  readonly onlyIf?: RecordStatus | undefined;
  /**
   * Delete only the attempt whose lease ends at this instant, epoch milliseconds, as
   * `inspectRecord` returned it: only while that attempt holds the record INPROGRESS, never a
   * call that took it over since. @default any attempt
   */
  readonly leaseUntil?: number | undefined;
};

/**
 * The key value `httpIdempotency` hashes for a request: its header key, method, route and caller.
 *
 * @example
 * ```ts
 * httpKeyValue({ key: 'k-1', method: 'post', route: 'POST /payments', caller: 'user-1' });
 * // { key: 'k-1', method: 'POST', route: 'POST /payments', caller: 'user-1' }
 * ```
 */
export function httpKeyValue(request: HttpRecordKey): { key: string; method: string; route: string; caller: string | null } {
  return keyValueOf(request, 'httpKeyValue');
}

/**
 * Every part of an HTTP record key and its check (no request the middleware keeps a record of has
 * an empty key, method or route). A misspelt one (`calller`) is refused: left out, it would address
 * the record of a request without it, and `forgetRecord` would delete that one.
 */
const HTTP_KEY_CHECKS = {
  key: isNonEmptyString,
  method: isNonEmptyString,
  route: isNonEmptyString,
  // A caller the middleware derives is a string or none: a number would hash as another record.
  caller: (value) => (typeof value === 'string' ? undefined : 'must be a string'),
} satisfies { readonly [K in keyof HttpRecordKey]-?: OptionCheck };

/** {@link httpKeyValue}, its errors naming `where` (and `member`, the option that holds the request). */
function keyValueOf(request: HttpRecordKey, where: string, member?: string): ReturnType<typeof httpKeyValue> {
  checkOptions(where, request, HTTP_KEY_CHECKS, ['key', 'method', 'route'], member);
  // A route's method arrives upper-cased (route keys, and the method the middleware upper-cases);
  // a REST API resource starts with '/' and is left as it is.
  const route = request.route.replace(/^[A-Za-z]+(?= \/)/, (method) => method.toUpperCase());
  return httpKeyValueOf(request.key, request.method.toUpperCase(), route, request.caller ?? null);
}

/**
 * The record id (`<namespace>#<hash>`) of an address, hashed exactly as the engine hashes a
 * selected key: SHA-256 of its canonical JSON.
 *
 * @example
 * ```ts
 * recordIdOf({ name: 'payments', key: { orderId: 'o-1' } }); // 'payments#…43 characters…'
 * ```
 */
export function recordIdOf(address: RecordAddress): string {
  return idOf(address, 'recordIdOf');
}

/** {@link recordIdOf}, the errors of an HTTP address naming `where`. */
function idOf(address: RecordAddress, where: string): string {
  if (address === null || typeof address !== 'object') throw new TypeError('A record address must be an object.');
  const given = (['id', 'key', 'http'] as const).filter((field) => field in address);
  if (given.length !== 1) throw new TypeError('Address a record by exactly one of `key` (with `name`), `http` (with `name`) or `id`.');
  if ('id' in address) {
    const { id } = address;
    if ((address as { name?: unknown }).name !== undefined) throw new TypeError('`id` already holds the namespace: leave out `name`.');
    // Beside an id a tenant scopes nothing: another tenant's record would be read or deleted.
    if ((address as { tenant?: unknown }).tenant !== undefined) throw new TypeError('`id` already holds the tenant: leave out `tenant`.');
    if (typeof id !== 'string' || id.indexOf('#') < 1 || id.endsWith('#')) {
      throw new TypeError('A record id must read `<namespace>#<hash>`, as the library logs it.');
    }
    // No record has a longer one: DynamoDB would refuse the request (a store failure), another store find nothing.
    const bytes = Buffer.byteLength(id);
    if (bytes > MAX_RECORD_KEY_BYTES) {
      throw new TypeError(`A record id takes at most 2,048 bytes of UTF-8, as the library makes them (this one has ${bytes.toLocaleString('en-US')}).`);
    }
    return id;
  }
  const { name } = address;
  if (!isNamespace(name)) {
    throw new TypeError(
      "`name` must be the records' namespace (the function name or the `name` option), a non-empty string without '#', at most 2,004 bytes of UTF-8, without lone surrogates.",
    );
  }
  const { tenant } = address;
  if (tenant !== undefined && (typeof tenant !== 'string' || tenant.length === 0 || !isWellFormed(tenant))) {
    throw new TypeError('`tenant` must be a non-empty string when given, without lone surrogates.');
  }
  const value = 'http' in address ? keyValueOf(address.http, where, 'http') : address.key;
  const canonical = canonicalKey(value);
  if (typeof canonical !== 'string') throw new IdempotencyError('KEY_MISSING', 'The key is missing (undefined, null or empty string): no record has it.');
  return recordKey(name, keyHash(canonical, tenant));
}

/** Every key of each member of a union (an address is one of three shapes). */
type KeysOf<T> = T extends unknown ? keyof T : never;

/**
 * Every option of `inspectRecord` and its check: the address is checked by `recordIdOf`, the store by
 * the method it must have. Every name is known, so that a misspelt one (`onlyif`) cannot turn a
 * conditional delete into an unconditional one.
 */
const INSPECT_OPTIONS = {
  store: anyValue,
  name: anyValue,
  key: anyValue,
  http: anyValue,
  id: anyValue,
  tenant: anyValue,
} satisfies { readonly [K in KeysOf<InspectRecordOptions>]-?: OptionCheck };

const FORGET_OPTIONS = {
  ...INSPECT_OPTIONS,
  onlyIf: (value) => (value === 'INPROGRESS' || value === 'COMPLETED' ? undefined : "must be 'INPROGRESS' or 'COMPLETED'"),
  leaseUntil: (value) => (Number.isFinite(value) ? undefined : 'must be the epoch milliseconds inspectRecord returned, a number'),
} satisfies { readonly [K in KeysOf<ForgetRecordOptions>]-?: OptionCheck };

function assertOptions(where: string, options: unknown, checks: Readonly<Record<string, OptionCheck>>): asserts options is object {
  if (options === null || typeof options !== 'object') throw new TypeError(`${where} takes an object: the \`store\` and the record's address.`);
  checkOptions(where, options, checks);
}

function assertSupports<M extends 'inspect' | 'forget'>(
  store: IdempotencyStore,
  method: M,
): asserts store is IdempotencyStore & Required<Pick<IdempotencyStore, M>> {
  if (typeof store?.[method] !== 'function') {
    throw new TypeError(
      `This store cannot ${method} records: it has no \`${method}\` method (the DynamoDBStore of 'lambda-idempotency', RedisStore and InMemoryStore have one).`,
    );
  }
}

/**
 * `request` to the store, whose failure (a table that does not exist or is keyed otherwise, a
 * missing grant, a timeout, an item that is no record) is a `STORE_FAILURE` that names it and says
 * `after`, what became of the record, with the store's error as its `cause`, as the engine's calls fail.
 */
async function storeCall<T>(store: IdempotencyStore, request: () => Promise<T>, after: string): Promise<T> {
  try {
    return await request();
  } catch (error) {
    if (error instanceof IdempotencyError) throw error;
    // An item that is no record: its error names it and the forget that removes it, which an operator needs whole.
    const message =
      error instanceof UnreadableRecordError ? error.message : `The idempotency store failed (${storeFailureDetail(error, store.tableName)}); ${after}.`;
    throw new IdempotencyError('STORE_FAILURE', message, { cause: error });
  }
}

/** A delete whose answer was lost may have been applied. */
const FORGET_FAILED = 'forgetRecord cannot tell whether the record was deleted: inspectRecord tells';

/**
 * What the store holds for one key: status, retention, lease end, whether a fingerprint, a
 * response or a final error is stored, their sizes, and the id of the key that sealed them
 * (`keyId`, with encryption). Never the response itself.
 * `undefined` when there is no record (an expired record not yet removed is returned). A store
 * that fails (or holds an item that is no record) throws a `STORE_FAILURE` whose `cause` is its error.
 *
 * @example
 * ```ts
 * const summary = await inspectRecord({ store, name: 'payments-consumer', key: 'order-1' });
 * if (summary?.status === 'INPROGRESS') console.log('held until', new Date(summary.leaseUntil!));
 * ```
 */
export async function inspectRecord(options: InspectRecordOptions): Promise<RecordSummary | undefined> {
  assertOptions('inspectRecord', options, INSPECT_OPTIONS);
  const { store } = options;
  assertSupports(store, 'inspect');
  const id = idOf(options, 'inspectRecord');
  return storeCall(store, () => store.inspect(id), 'inspectRecord read no record');
}

/**
 * Deletes the record of one key, so the next call with it runs again. With `onlyIf`, only while
 * the record has that status (`'INPROGRESS'` leaves alone a record that has completed meanwhile,
 * but deletes a live attempt as well as a stuck one). With `leaseUntil`, only while the attempt that `inspectRecord` showed holds
 * the record: a takeover needs that lease to have ended and sets a later one, so a call that took
 * the record over since keeps it and runs alone. Without either it deletes whatever the record
 * holds, a live attempt's too (whose handler may still be running), and an item the store cannot
 * read as a record. `true` when a record was deleted. A store that fails throws a `STORE_FAILURE`
 * whose `cause` is its error; a delete whose answer was lost may have been applied.
 *
 * @example
 * ```ts
 * const seen = await inspectRecord({ store, name: 'payments-consumer', key: 'order-1' });
 * if (seen?.status === 'INPROGRESS' && seen.leaseUntil! < Date.now()) {
 *   await forgetRecord({ store, name: 'payments-consumer', key: 'order-1', leaseUntil: seen.leaseUntil });
 * }
 * ```
 */
export async function forgetRecord(options: ForgetRecordOptions): Promise<boolean> {
  assertOptions('forgetRecord', options, FORGET_OPTIONS);
  const { store, onlyIf, leaseUntil } = options;
  assertSupports(store, 'forget');
  if (leaseUntil === undefined) {
    const id = idOf(options, 'forgetRecord');
    return storeCall(store, () => store.forget(id, onlyIf), FORGET_FAILED);
  }
  if (onlyIf === 'COMPLETED')
    throw new TypeError("`leaseUntil` names an INPROGRESS attempt: a COMPLETED record has no lease, so leave out `onlyIf: 'COMPLETED'`.");
  // A forget written without the parameter would ignore it and delete whichever attempt holds the record.
  if (store.forgetChecksLease !== true) {
    throw new TypeError(
      'This store cannot forget by lease: its `forget` does not declare `forgetChecksLease`, so it could delete an attempt that took the record over.',
    );
  }
  const id = idOf(options, 'forgetRecord');
  return storeCall(store, () => store.forget(id, 'INPROGRESS', leaseUntil), FORGET_FAILED);
}
