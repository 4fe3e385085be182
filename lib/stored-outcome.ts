import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { DeadlineTimeout, timeLimit } from './deadline.js';
import type { AttributeNames } from './dynamodb-store-options.js';
import type { EncryptionKey, OutcomeEncryption, ResponseEncryption } from './encryption.js';
import type { OptionCheck } from './options.js';
import type { ResponseCodec } from './response-codec.js';

/** DynamoDB's item size limit; attribute names count with their values. */
export const ITEM_LIMIT_BYTES = 400 * 1024;

/** Responses whose JSON is larger are stored gzip-compressed, unless a store's options say otherwise. @internal */
export const DEFAULT_COMPRESS_ABOVE_BYTES = 32 * 1024;

/** An object, or a function object (a class with static methods), with a function under each name. */
const hasFunctions = (value: unknown, names: readonly string[]): boolean =>
  (typeof value === 'object' || typeof value === 'function') &&
  value !== null &&
  names.every((name) => typeof (value as Record<string, unknown>)[name] === 'function');

/** In a `u` regex a surrogate pair is one code point: only a lone surrogate is of category Cs. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * A key id a store can write and read back as it was: non-empty text without lone surrogates, which
 * have no UTF-8 form (stored as U+FFFD by Redis, it would name no key when read back). @internal
 */
export const isKeyId = (id: unknown): id is string => typeof id === 'string' && id.length > 0 && !LONE_SURROGATE.test(id);

/** A module's `overheadBytes`: every record's size counts it, so one below 0 would let a sealed outcome outgrow the item. */
const isOverhead = (value: unknown): boolean => Number.isSafeInteger(value) && (value as number) >= 0;

/** Has a module's functions (`currentKey`, `seal`, `open`): a module, whatever its `overheadBytes`. @internal */
export const isModuleShaped = (value: unknown): boolean => hasFunctions(value, ['currentKey', 'seal', 'open']);

/**
 * The two shapes of `encryption`, told apart by their members: the module (`aesGcmEncryption(provider)`,
 * or a value written to `OutcomeEncryption`) has `currentKey`, `seal` and `open` functions and an
 * `overheadBytes` that is a whole number, 0 or more; any other value with `currentKey` and `keyById`
 * functions, and not `seal` and `open` too, is a key provider. The module's members decide, so no value is both, and members a shape
 * does not name (a provider's own `open()`, a module's `keyById` helper) change nothing, as the types
 * allow them. Checked without any cipher code. @internal
 */
export const isOutcomeEncryption = (value: unknown): value is OutcomeEncryption =>
  isModuleShaped(value) && isOverhead((value as { overheadBytes?: unknown }).overheadBytes);

/**
 * A key provider, `{ currentKey, keyById }` (see {@link isOutcomeEncryption}); not a value with a
 * module's functions, whose `seal` would be ignored: a module with a `keyById` helper and a bad
 * `overheadBytes` is refused as a module. @internal
 */
export const isKeyProvider = (value: unknown): value is ResponseEncryption => hasFunctions(value, ['currentKey', 'keyById']) && !isModuleShaped(value);

/**
 * What is wrong with a value that has a module's functions but no `overheadBytes` it can be given
 * (a module written by hand), else `undefined`: told otherwise to use `aesGcmEncryption`, its author
 * would not learn which member is wrong. @internal
 */
export const overheadProblem = (value: unknown): string | undefined => {
  if (!isModuleShaped(value) || isOutcomeEncryption(value)) return undefined;
  const overhead = (value as { overheadBytes?: unknown }).overheadBytes;
  return `has \`seal\` and \`open\`, so its \`overheadBytes\` must be the bytes sealing adds, a whole number, 0 or more (got ${typeof overhead === 'string' ? JSON.stringify(overhead) : String(overhead)})`;
};

/**
 * The checks of the options every store that encodes outcomes takes (`DynamoDBStore`, `RedisStore`):
 * `encryption` is the module; the stores that still take a key provider itself widen this check. @internal
 */
export const OUTCOME_OPTION_CHECKS = {
  compressAboveBytes: (value) =>
    Number.isInteger(value) && (value as number) >= 0 && (value as number) <= ITEM_LIMIT_BYTES
      ? undefined
      : `must be a whole number of bytes from 0 to ${ITEM_LIMIT_BYTES} (an item holds at most 400 KB)`,
  encryption: (value) => {
    if (isOutcomeEncryption(value)) return undefined;
    if (isKeyProvider(value)) return "must be `aesGcmEncryption(provider)` from 'lambda-idempotency', not the key provider itself";
    return overheadProblem(value) ?? "must be made by `aesGcmEncryption(provider)` from 'lambda-idempotency'";
  },
} satisfies Readonly<Record<string, OptionCheck>>;

/** A stored final error shrunk to survive a refusal of unknown cause is at most this large. */
const SMALLEST_ERROR_BYTES = 1024;

/** Size of one attribute as DynamoDB counts it toward the item limit (numbers a little over: 1 byte a digit). @internal */
export function attributeSize(name: string, value: AttributeValue): number {
  const named = Buffer.byteLength(name);
  if (value.S !== undefined) return named + Buffer.byteLength(value.S);
  if (value.B !== undefined) return named + value.B.byteLength;
  if (value.N !== undefined) return named + value.N.length + 1;
  return named + 1; // BOOL, NULL
}

/** @internal */
export const itemSize = (item: Record<string, AttributeValue>): number =>
  Object.entries(item).reduce((sum, [name, value]) => sum + attributeSize(name, value), 0);

/** Room kept for the fingerprint a completion cannot see (the engine's: a SHA-256 in base64url, 43 bytes; 64 are kept, room for one in hex). */
const FINGERPRINT_ROOM: AttributeValue = { S: '0'.repeat(64) };

/** The names of the attributes a COMPLETED record holds besides its outcome. @internal */
export type RecordNames = Pick<AttributeNames, 'key' | 'status' | 'expiration' | 'owner' | 'fingerprint'>;

/**
 * Bytes a COMPLETED record leaves for its outcome, once its other attributes are counted: the
 * same room in every store, so each keeps the outcomes DynamoDB keeps. @internal
 */
export function outcomeBudget(names: RecordNames, request: { readonly key: string; readonly owner: string; readonly expiresAt: number }): number {
  const kept =
    attributeSize(names.key, { S: request.key }) +
    attributeSize(names.status, { S: 'COMPLETED' }) +
    attributeSize(names.expiration, { N: String(request.expiresAt) }) +
    attributeSize(names.owner, { S: request.owner }) +
    attributeSize(names.fingerprint, FINGERPRINT_ROOM);
  return ITEM_LIMIT_BYTES - kept;
}

/**
 * For summaries: `keyId` as stored with a record's outcome, when a stored value is sealed (bytes
 * beside a key id, as the codec reads them); `undefined` when nothing stored is encrypted. @internal
 */
export const sealedWith = (keyId: string | undefined, ...stored: Array<AttributeValue | undefined>): string | undefined =>
  keyId !== undefined && stored.some((value) => value?.B !== undefined) ? keyId : undefined;

/** The call's outcome as the record stores it. @internal */
export interface StoredOutcome {
  readonly response?: AttributeValue;
  readonly error?: AttributeValue;
  /** The key that sealed `response` and `error`, with encryption. */
  readonly keyId?: string;
  /** The call completed but its response (or its error) could not be stored. */
  readonly omitted: boolean;
  /** What could not be stored was a final error. */
  readonly errorOmitted?: boolean;
  /** Why the outcome could not be encrypted (the key provider's error), when that is why it was omitted. */
  readonly sealFailure?: unknown;
  /** The final error as stored, when it had to be cut short to fit. */
  readonly storedError?: string;
}

/** What a completion asks to store (a `CompleteRequest`'s outcome). @internal */
export interface Outcome {
  readonly key: string;
  readonly response: string | undefined;
  readonly responseOmitted?: boolean;
  readonly error?: string;
  /** When to stop waiting for the key (see `CompleteRequest.sealBy`). */
  readonly sealBy?: number;
}

/** The attribute names an outcome is stored under. @internal */
export interface OutcomeNames {
  readonly response: string;
  readonly error: string;
  readonly keyId: string;
  readonly responseOmitted: string;
}

/**
 * What a store's result reports of the stored outcome besides `responseStored`: the key provider's
 * error that kept it from being encrypted, and the final error as stored when it was cut short. @internal
 */
export const outcomeReport = (outcome: StoredOutcome): { readonly sealFailure?: unknown; readonly storedError?: string } => ({
  ...(outcome.sealFailure === undefined ? {} : { sealFailure: outcome.sealFailure }),
  ...(outcome.storedError === undefined ? {} : { storedError: outcome.storedError }),
});

/**
 * Encodes an outcome to fit in `budget` bytes (the item limit less the record's other attributes):
 * a response that does not fit is omitted, a final error that does not fit is truncated. When
 * the store was reachable and only the outcome cannot be stored (the key provider failed, the
 * response is too large), the record still completes: duplicates get `RESPONSE_NOT_STORED`
 * (`ERROR_NOT_STORED` for a final error) and the function never runs twice. `smallest` drops the response and shrinks the error to a minimum,
 * for an item DynamoDB refused for its size all the same. @internal
 */
export async function encodeOutcome(codec: ResponseCodec, names: OutcomeNames, outcome: Outcome, budget: number, smallest = false): Promise<StoredOutcome> {
  const json = outcome.responseOmitted || smallest ? undefined : outcome.response;
  const omittedSize = attributeSize(names.responseOmitted, { BOOL: true });
  let omitted = outcome.responseOmitted === true || (smallest && outcome.response !== undefined);
  if (json === undefined && outcome.error === undefined) return { omitted };
  // A final error lost is marked so: its duplicates must fail as the call did, not pass for a success.
  const lost = (stored: { omitted: boolean; sealFailure?: unknown }): StoredOutcome =>
    outcome.error === undefined ? stored : { ...stored, omitted: true, errorOmitted: true };
  let key: EncryptionKey | undefined;
  if (codec.encrypts) {
    try {
      key = await (outcome.sealBy === undefined
        ? codec.currentKey()
        : timeLimit(
            codec.currentKey(),
            outcome.sealBy - performance.now(),
            () => new DeadlineTimeout('The key provider did not answer in time for the record to complete before the Lambda deadline.'),
          ));
    } catch (failure) {
      // Throttled or hung KMS, a wrong-size key: nothing can be sealed, but the record can still complete.
      return lost({ omitted: true, sealFailure: reported(failure) });
    }
  }
  let response: AttributeValue | undefined;
  let error: AttributeValue | undefined;
  let errorText: string | undefined;
  try {
    let room = budget - (key === undefined ? 0 : attributeSize(names.keyId, { S: key.id }));
    if (json !== undefined) {
      response = codec.encode(json, 'response', outcome.key, key);
      const size = attributeSize(names.response, response);
      if (size <= room) room -= size;
      else {
        response = undefined;
        omitted = true;
      }
    }
    if (outcome.error !== undefined) {
      room -= omitted ? omittedSize : 0;
      // A sealed error is its plain text plus a fixed overhead: size the text before sealing it.
      const overhead = attributeSize(names.error, { S: '' }) + (key === undefined ? 0 : codec.sealOverhead);
      errorText = fitError(outcome.error, Math.min(room, smallest ? SMALLEST_ERROR_BYTES : room) - overhead);
      if (errorText === undefined) omitted = true;
      else error = codec.encode(errorText, 'error', outcome.key, key);
    }
  } catch (failure) {
    // A module written to `OutcomeEncryption` whose cipher refuses the key fails as a key provider
    // does: nothing can be sealed, but the record can still complete.
    if (key === undefined) throw failure;
    return lost({ omitted: true, sealFailure: reported(failure) });
  }
  if (response === undefined && error === undefined) return lost({ omitted });
  const stored: { omitted: boolean; response?: AttributeValue; error?: AttributeValue; keyId?: string; storedError?: string } = { omitted };
  if (response !== undefined) stored.response = response;
  if (error !== undefined) stored.error = error;
  if (errorText !== undefined && errorText !== outcome.error) stored.storedError = errorText;
  if (key !== undefined) stored.keyId = key.id;
  return stored;
}

/**
 * A key provider's failure as reported: one that throws or rejects with nothing (`Promise.reject()`)
 * has failed all the same, and an outcome lost or refused for it must still be reported (and logged). @internal
 */
export const reported = (failure: unknown): unknown =>
  failure === undefined ? new Error('The key provider failed without an error (it threw or rejected with `undefined`).') : failure;

/** The longest string field kept when a final error is cut short: a longer one, cut, would be another value, so it is dropped. */
const SMALL_STRING = 256;

/** A field worth keeping in a final error cut short (a `statusCode`, a flag, a reason): a primitive of bounded size. */
const isSmall = (value: unknown): boolean =>
  value === null || typeof value === 'number' || typeof value === 'boolean' || (typeof value === 'string' && value.length <= SMALL_STRING);

/**
 * A stored final error (`{ name, message, code?, …fields }`) in at most `maxBytes` of UTF-8: as it
 * is when it fits, else its name, code and small fields (an HTTP error's `statusCode` decides the
 * duplicate's status) with the message cut short and the large fields (objects, arrays, long
 * strings) dropped; `undefined` when not even the name and code fit.
 */
function fitError(json: string, maxBytes: number): string | undefined {
  if (Buffer.byteLength(json) <= maxBytes) return json;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(json) as Record<string, unknown>;
  } catch {
    parsed = {};
  }
  const clip = (value: unknown): string => String(value).slice(0, 256);
  const kept: Record<string, unknown> = { name: typeof parsed.name === 'string' ? clip(parsed.name) : 'Error', message: '' };
  if (typeof parsed.code === 'string') kept.code = clip(parsed.code);
  else if (parsed.code === null || typeof parsed.code === 'number' || typeof parsed.code === 'boolean') kept.code = parsed.code;
  // Fields as JSON members, appended as text: a field named `__proto__` stays a field.
  let fields = '';
  const withFields = (message: string): string => `${JSON.stringify({ ...kept, message }).slice(0, -1)}${fields}}`;
  for (const [field, value] of Object.entries(parsed)) {
    if (field === 'name' || field === 'message' || field === 'code' || !isSmall(value)) continue;
    const member = `,${JSON.stringify(field)}:${JSON.stringify(value)}`;
    // Room is left for a message cut to its ellipsis: a field never costs the name and code.
    if (Buffer.byteLength(withFields('…')) + Buffer.byteLength(member) <= maxBytes) fields += member;
  }
  const message = typeof parsed.message === 'string' ? parsed.message : '';
  // JSON escapes can make a character longer than its UTF-8: shrink until the whole text fits.
  for (let length = message.length; ; ) {
    let cut = message.slice(0, length);
    if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1); // never split a surrogate pair
    const text = withFields(length < message.length ? `${cut}…` : cut);
    const size = Buffer.byteLength(text);
    if (size <= maxBytes) return text;
    if (length === 0) return undefined;
    length = Math.max(0, Math.min(length - 1, Math.floor((length * maxBytes) / size) - 16));
  }
}
