/**
 * A record as a flat map of strings, the form RedisStore keeps in a Redis hash and InMemoryStore in
 * a Map: the fields carry the names of {@link IdempotencyRecord}. The response is stored as the
 * response codec made it: JSON text in `response`, or bytes (gzip, ciphertext) as base64 in
 * `responseBase64`, because both Redis clients decode replies as UTF-8, which corrupts bytes.
 * @internal
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { DEFAULT_ATTRIBUTE_NAMES } from './dynamodb-store-options.js';
import { malformedRecord, type ResponseCodec } from './response-codec.js';
import type { CompleteRequest, CompleteResult, IdempotencyRecord, RecordSummary } from './store.js';
import { encodeOutcome, outcomeBudget, outcomeReport, sealedWith } from './stored-outcome.js';

/** A stored value as one string field: JSON text as is, bytes (gzip, ciphertext) as base64 under `<name>Base64`. */
function pushValue(fields: string[], name: string, value: AttributeValue | undefined): void {
  if (value?.S !== undefined) fields.push(name, value.S);
  else if (value?.B !== undefined) fields.push(`${name}Base64`, Buffer.from(value.B).toString('base64'));
}

function storedValue(hash: RecordHash, name: string): AttributeValue | undefined {
  const base64 = hash[`${name}Base64`];
  if (base64 !== undefined) return { B: Buffer.from(base64, 'base64') };
  const text = hash[name];
  return text === undefined ? undefined : { S: text };
}

/** @internal */
export type RecordHash = Readonly<Record<string, string>>;

/** A hash from the flat `[field, value, …]` array of HGETALL; `undefined` when the key had none. @internal */
export function hashOf(flat: unknown): RecordHash | undefined {
  if (!Array.isArray(flat) || flat.length % 2 !== 0) throw new Error('Redis answered with something that is not a hash.');
  if (flat.length === 0) return undefined;
  const hash: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) hash[String(flat[i])] = String(flat[i + 1]);
  return hash;
}

/**
 * The `[field, value, …]` pairs a completion writes besides status and retention, and the result
 * of the completion once they are written (the response is not among them when the request omits it
 * or the codec cannot store it).
 * The only place where these stores encode a response. The outcome gets the room a DynamoDB item
 * with the default attribute names leaves it: every store keeps the outcomes DynamoDB keeps. @internal
 */
export async function outcomeFields(
  codec: ResponseCodec,
  request: CompleteRequest,
): Promise<{ fields: string[]; result: CompleteResult & { readonly completed: true } }> {
  const stored = await encodeOutcome(codec, DEFAULT_ATTRIBUTE_NAMES, request, outcomeBudget(DEFAULT_ATTRIBUTE_NAMES, request));
  const fields: string[] = [];
  pushValue(fields, 'response', stored.response);
  pushValue(fields, 'error', stored.error);
  if (stored.keyId !== undefined) fields.push('keyId', stored.keyId);
  if (stored.omitted) fields.push('responseOmitted', '1');
  if (stored.errorOmitted) fields.push('errorOmitted', '1');
  return { fields, result: { completed: true, responseStored: !stored.omitted, ...outcomeReport(stored) } };
}

// A number as String() writes it: a lease is in the caller's milliseconds, which may have a fraction
// (a clock built on performance.now()) or a sign (a test's clock before 1970), as DynamoDB keeps them.
const NUMBER = /^-?\d+(?:\.\d+)?(?:e[+-]\d+)?$/;

// Fails closed until removed or expired, as DynamoDBStore's unreadable items do; the message says how.
const malformed = (key: string, where: string, problem: string): never => {
  throw malformedRecord(key, where, problem, '. Remove it with forgetRecord');
};

/** The fields every record has, checked: status, owner, and the retention and the lease when present. */
function checked(key: string, hash: RecordHash, where: string): Pick<IdempotencyRecord, 'key' | 'status' | 'owner' | 'leaseUntil'> & { expiresAt?: number } {
  const { status, owner, expiresAt, leaseUntil } = hash;
  if (status !== 'INPROGRESS' && status !== 'COMPLETED') return malformed(key, where, '`status` is neither INPROGRESS nor COMPLETED');
  if (owner === undefined) return malformed(key, where, 'no `owner`');
  if (expiresAt !== undefined && !NUMBER.test(expiresAt)) return malformed(key, where, 'no `expiresAt` number');
  if (leaseUntil !== undefined && !NUMBER.test(leaseUntil)) return malformed(key, where, '`leaseUntil` is not a number');
  // Read as absent, another value would replay the call as one that returned `undefined`.
  if (hash.responseOmitted !== undefined && hash.responseOmitted !== '1') return malformed(key, where, '`responseOmitted` is not 1');
  if (hash.errorOmitted !== undefined && hash.errorOmitted !== '1') return malformed(key, where, '`errorOmitted` is not 1');
  return {
    key,
    status,
    owner,
    ...(expiresAt === undefined ? {} : { expiresAt: Number(expiresAt) }),
    ...(leaseUntil === undefined ? {} : { leaseUntil: Number(leaseUntil) }),
  };
}

/** The fields of `checked`, the retention required: claims give a record without one the claim's before reading it. */
function required(key: string, hash: RecordHash, where: string): Pick<IdempotencyRecord, 'key' | 'status' | 'owner' | 'expiresAt' | 'leaseUntil'> {
  const fields = checked(key, hash, where);
  return fields.expiresAt === undefined ? malformed(key, where, 'no `expiresAt` number') : (fields as typeof fields & { expiresAt: number });
}

/** The record of `hash`, its response decoded (and decrypted) unless `withResponse` is false. @internal */
export async function recordOf(key: string, hash: RecordHash, codec: ResponseCodec, where: string, withResponse = true): Promise<IdempotencyRecord> {
  const record = required(key, hash, where);
  const { fingerprint } = hash;
  const response = withResponse ? await codec.decode(storedValue(hash, 'response'), 'response', hash.keyId, key) : undefined;
  const error = withResponse ? await codec.decode(storedValue(hash, 'error'), 'error', hash.keyId, key) : undefined;
  return {
    ...record,
    ...(fingerprint === undefined ? {} : { fingerprint }),
    ...(response === undefined ? {} : { response }),
    ...(hash.responseOmitted === '1' ? { responseOmitted: true } : {}),
    ...(hash.errorOmitted === '1' ? { errorOmitted: true } : {}),
    ...(error === undefined ? {} : { error }),
  };
}

/**
 * The record that refused a completion or release: its state alone, its outcome never opened (nor a
 * key provider asked), unless it is `owner`'s COMPLETED record (a completion sent again after its
 * answer was lost), whose outcome as stored is the call's: a final error cut short replays cut
 * short, from the local cache too. One that cannot be opened now leaves its state, as any other. @internal
 */
export function refusalRecord(key: string, hash: RecordHash, codec: ResponseCodec, where: string, owner?: string): Promise<IdempotencyRecord> {
  const state = () => recordOf(key, hash, codec, where, false);
  return hash.owner === owner && hash.status === 'COMPLETED' ? recordOf(key, hash, codec, where).catch(state) : state();
}

/**
 * What operations tools see of `hash`: never the response or the error themselves. A record without
 * a retention is shown without one, as claims read it (the first that meets it gives it one). @internal
 */
export function summaryOf(key: string, hash: RecordHash, where: string): RecordSummary {
  const { owner: _owner, ...record } = checked(key, hash, where);
  // The size of the value stored, as DynamoDBStore reports it: bytes, not their base64 text.
  const bytes = (name: string): number | undefined => {
    const stored = storedValue(hash, name);
    return stored?.S === undefined ? stored?.B?.byteLength : Buffer.byteLength(stored.S);
  };
  const responseBytes = bytes('response');
  const errorBytes = bytes('error');
  const keyId = sealedWith(hash.keyId, storedValue(hash, 'response'), storedValue(hash, 'error'));
  return {
    ...record,
    hasFingerprint: hash.fingerprint !== undefined,
    ...(responseBytes === undefined ? {} : { responseBytes }),
    responseOmitted: hash.responseOmitted === '1',
    ...(hash.errorOmitted === '1' ? { errorOmitted: true } : {}),
    ...(errorBytes === undefined ? {} : { errorBytes }),
    ...(keyId === undefined ? {} : { keyId }),
  };
}
