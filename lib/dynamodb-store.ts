import {
  type AttributeValue,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  type TransactWriteItem,
  type Update,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { type AttributeNames, type DynamoDBStoreOptions, resolveStoreOptions } from './dynamodb-store-options.js';
import { recordActionInvalid, sendTransaction } from './dynamodb-transaction.js';
import { IdempotencyError } from './errors.js';
import { ResponseCodec } from './response-codec.js';
import type {
  ClaimCompletedRequest,
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  CompleteResult,
  IdempotencyRecord,
  IdempotencyStore,
  RecordStatus,
  RecordSummary,
  ReleaseRequest,
  ReleaseResult,
} from './store.js';
import { attributeSize, encodeOutcome, ITEM_LIMIT_BYTES, itemSize, type Outcome, type OutcomeNames, type StoredOutcome } from './stored-outcome.js';

export type { AttributeNames, DynamoDBStoreOptions } from './dynamodb-store-options.js';
export { DEFAULT_ATTRIBUTE_NAMES } from './dynamodb-store-options.js';

/** Room kept for the fingerprint a completion cannot see (the engine's: SHA-256 in hex). */
const FINGERPRINT_BYTES = 64;

const isConditionFailure = (error: unknown): error is { Item?: Record<string, AttributeValue> } =>
  (error as { name?: unknown } | null)?.name === 'ConditionalCheckFailedException';

const isSizeRefusal = (error: unknown): boolean =>
  (error as { name?: unknown } | null)?.name === 'ValidationException' && /item size/i.test(String((error as Error).message));

/** DynamoDB refused the record's write for its size: a whole-request refusal, or a transaction cancelled at the record's action. */
const isItemTooLarge = (error: unknown): boolean =>
  isSizeRefusal(error) ||
  (error instanceof IdempotencyError && error.code === 'TRANSACTION_INVALID' && (isSizeRefusal(error.cause) || recordActionInvalid(error.cause)));

/**
 * The record protocol on a DynamoDB table: claim is one conditional `PutItem`, complete one
 * conditional `UpdateItem`, release one conditional `DeleteItem`; complete and release are fenced
 * by the attempt's owner token, and a refused write returns the current item (`ALL_OLD`), so no
 * operation ever reads before it writes. Without options, the table and the retention come from
 * `IDEMPOTENCY_TABLE` and `IDEMPOTENCY_EXPIRES_AFTER_SECONDS`, as the CDK construct sets them.
 *
 * @example
 * ```ts
 * const store = new DynamoDBStore(); // the table named by IDEMPOTENCY_TABLE
 * ```
 */
export class DynamoDBStore implements IdempotencyStore {
  readonly tableName: string;
  readonly attributes: AttributeNames;
  /** Retention in seconds for calls whose options set none (the option, or `IDEMPOTENCY_EXPIRES_AFTER_SECONDS`). */
  readonly expiresAfterSeconds: number | undefined;
  private readonly client: DynamoDBClient;
  private readonly codec: ResponseCodec;
  private readonly names: Record<string, string>;
  private readonly outcomeNames: OutcomeNames;

  constructor(options: DynamoDBStoreOptions = {}) {
    const resolved = resolveStoreOptions(options);
    this.tableName = resolved.tableName;
    this.attributes = resolved.attributes;
    this.expiresAfterSeconds = resolved.expiresAfterSeconds;
    this.client = resolved.client ?? new DynamoDBClient({});
    this.codec = new ResponseCodec(resolved.compressAboveBytes, resolved.encryption);
    const a = this.attributes;
    this.outcomeNames = { response: a.response, error: a.error, keyId: a.keyId, responseOmitted: a.responseOmitted };
    this.names = {
      '#status': a.status,
      '#exp': a.expiration,
      '#lease': a.leaseUntil,
      '#owner': a.owner,
      '#response': a.response,
      '#omitted': a.responseOmitted,
      '#error': a.error,
      '#keyId': a.keyId,
    };
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const a = this.attributes;
    const item = this.claimItem(request);
    item[a.status] = { S: 'INPROGRESS' };
    item[a.leaseUntil] = { N: String(request.leaseUntil) };
    try {
      // ALL_OLD on success returns a replaced record (a takeover), at no extra capacity.
      const output = await this.client.send(new PutItemCommand({ ...this.claimPut(item, request.now), ReturnValues: 'ALL_OLD' }));
      // Only the replaced record's status matters here: its response is not decoded (or decrypted).
      const previous = output?.Attributes ? await this.toRecord(output.Attributes, false) : undefined;
      return previous === undefined ? { claimed: true } : { claimed: true, previous };
    } catch (error) {
      // A record that cannot be read (not authentic under encryption, say) throws: the claim fails closed.
      const record = isConditionFailure(error) ? await this.toRecord(error.Item) : undefined;
      if (record === undefined) throw error;
      return { claimed: false, record };
    }
  }

  async complete(request: CompleteRequest): Promise<CompleteResult> {
    return this.withOutcome(request, this.completionBudget(request), async (outcome) => {
      try {
        await this.client.send(new UpdateItemCommand(this.completionUpdate(request, outcome)));
        return { completed: true, responseStored: !outcome.omitted };
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        return { completed: false, record: await this.toRecord(error.Item, false) };
      }
    });
  }

  /**
   * One `TransactWriteItems`: the fenced completion of the record and the call's own writes.
   * A refused record condition returns the current record (nothing written).
   */
  async completeWithWrites(request: CompleteRequest, writes: readonly TransactWriteItem[]): Promise<CompleteResult> {
    return this.withOutcome(request, this.completionBudget(request), async (outcome) => {
      const refused = await sendTransaction(this.client, [{ Update: this.completionUpdate(request, outcome) }, ...writes]);
      return refused === null ? { completed: true, responseStored: !outcome.omitted } : { completed: false, record: await this.toRecord(refused, false) };
    });
  }

  /** One `TransactWriteItems`: a claim that creates the record COMPLETED, and the call's own writes. */
  async claimCompleted(request: ClaimCompletedRequest, writes: readonly TransactWriteItem[]): Promise<ClaimResult> {
    const item = this.claimItem(request);
    item[this.attributes.status] = { S: 'COMPLETED' };
    return this.withOutcome(request, ITEM_LIMIT_BYTES - itemSize(item), async (outcome) => {
      const refused = await sendTransaction(this.client, [{ Put: this.claimPut({ ...item, ...this.outcomeItem(outcome) }, request.now) }, ...writes]);
      if (refused === null) return { claimed: true, responseStored: !outcome.omitted };
      try {
        return { claimed: false, record: (await this.toRecord(refused)) ?? this.malformed(request.key) };
      } catch (error) {
        // The record that refused the claim is replayed from here; if it cannot be read, fail
        // closed with what is known: nothing of this call was written.
        throw new IdempotencyError('STORE_FAILURE', 'The idempotency record that refused this call could not be read; nothing was written.', { cause: error });
      }
    });
  }

  async release(request: ReleaseRequest): Promise<ReleaseResult> {
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: { [this.attributes.key]: { S: request.key } },
          ConditionExpression: '#owner = :owner AND #status = :inprogress',
          ExpressionAttributeNames: { '#owner': this.attributes.owner, '#status': this.attributes.status },
          ExpressionAttributeValues: { ':owner': { S: request.owner }, ':inprogress': { S: 'INPROGRESS' } },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { released: true };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      return { released: false, record: await this.toRecord(error.Item, false) };
    }
  }

  /**
   * Sends the record's write with its outcome encoded to fit the item. Should DynamoDB refuse the
   * item for its size all the same (a fingerprint larger than the room kept for it), the call has
   * completed all the same: the write is sent once more with the smallest outcome.
   */
  private async withOutcome<T>(request: Outcome, budget: number, send: (outcome: StoredOutcome) => Promise<T>): Promise<T> {
    const outcome = await encodeOutcome(this.codec, this.outcomeNames, request, budget);
    try {
      return await send(outcome);
    } catch (error) {
      if ((outcome.response === undefined && outcome.error === undefined) || !isItemTooLarge(error)) throw error;
    }
    return send(await encodeOutcome(this.codec, this.outcomeNames, request, budget, true));
  }

  /** Bytes left for the outcome once the completed record's other attributes are counted. */
  private completionBudget(request: CompleteRequest): number {
    const a = this.attributes;
    const kept: Record<string, AttributeValue> = {
      [a.key]: { S: request.key },
      [a.status]: { S: 'COMPLETED' },
      [a.expiration]: { N: String(request.expiresAt) },
      [a.owner]: { S: request.owner },
    };
    return ITEM_LIMIT_BYTES - itemSize(kept) - attributeSize(a.fingerprint, { S: '0'.repeat(FINGERPRINT_BYTES) });
  }

  /** The outcome as item attributes. */
  private outcomeItem(outcome: StoredOutcome): Record<string, AttributeValue> {
    const a = this.attributes;
    const item: Record<string, AttributeValue> = {};
    if (outcome.response !== undefined) item[a.response] = outcome.response;
    if (outcome.error !== undefined) item[a.error] = outcome.error;
    if (outcome.keyId !== undefined) item[a.keyId] = { S: outcome.keyId };
    if (outcome.omitted) item[a.responseOmitted] = { BOOL: true };
    return item;
  }

  /** The fenced COMPLETED update, shared by `complete` and `completeWithWrites`. */
  private completionUpdate(request: CompleteRequest, outcome: StoredOutcome): Update & { ReturnValuesOnConditionCheckFailure: 'ALL_OLD' } {
    const values: Record<string, AttributeValue> = {
      ':completed': { S: 'COMPLETED' },
      ':inprogress': { S: 'INPROGRESS' },
      ':owner': { S: request.owner },
      ':exp': { N: String(request.expiresAt) },
    };
    let set = '#status = :completed, #exp = :exp';
    const remove = ['#lease'];
    const used = ['#status', '#exp', '#lease', '#owner', '#response'];
    const attribute = (placeholder: string, value: AttributeValue | undefined): void => {
      if (value === undefined) return;
      set += `, #${placeholder} = :${placeholder}`;
      values[`:${placeholder}`] = value;
      if (placeholder !== 'response') used.push(`#${placeholder}`);
    };
    attribute('response', outcome.response);
    if (outcome.response === undefined) remove.push('#response');
    attribute('omitted', outcome.omitted ? { BOOL: true } : undefined);
    attribute('error', outcome.error);
    attribute('keyId', outcome.keyId === undefined ? undefined : { S: outcome.keyId });
    const names: Record<string, string> = {};
    for (const name of used) names[name] = this.names[name]!;
    return {
      TableName: this.tableName,
      Key: { [this.attributes.key]: { S: request.key } },
      UpdateExpression: `SET ${set} REMOVE ${remove.join(', ')}`,
      ConditionExpression: '#owner = :owner AND #status = :inprogress',
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    };
  }

  /** The attributes every claim writes: key, retention, owner, fingerprint. */
  private claimItem(request: Omit<ClaimRequest, 'leaseUntil'>): Record<string, AttributeValue> {
    const a = this.attributes;
    const item: Record<string, AttributeValue> = {
      [a.key]: { S: request.key },
      [a.expiration]: { N: String(request.expiresAt) },
      [a.owner]: { S: request.owner },
    };
    if (request.fingerprint !== undefined) item[a.fingerprint] = { S: request.fingerprint };
    return item;
  }

  /** A put that succeeds only when no live record exists: none, expired, or INPROGRESS past its lease. */
  private claimPut(item: Record<string, AttributeValue>, now: number) {
    const a = this.attributes;
    return {
      TableName: this.tableName,
      Item: item,
      ConditionExpression: 'attribute_not_exists(#id) OR #exp < :nowSeconds OR (#status = :inprogress AND #lease < :nowMillis)',
      ExpressionAttributeNames: { '#id': a.key, '#exp': a.expiration, '#status': a.status, '#lease': a.leaseUntil },
      ExpressionAttributeValues: {
        ':nowSeconds': { N: String(Math.floor(now / 1000)) },
        ':nowMillis': { N: String(now) },
        ':inprogress': { S: 'INPROGRESS' },
      },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const,
    };
  }

  private malformed(key: string): never {
    throw new Error(`The idempotency record ${key} in ${this.tableName} is malformed.`);
  }

  /**
   * The record of a raw item. The stored outcome is decoded only where it is replayed
   * (`withOutcome`): a refused completion or release, or a takeover, needs the record's state alone.
   */
  private async toRecord(item: Record<string, AttributeValue> | undefined, withOutcome = true): Promise<IdempotencyRecord | undefined> {
    if (item === undefined) return undefined;
    const a = this.attributes;
    const key = item[a.key]?.S;
    const status = item[a.status]?.S;
    const owner = item[a.owner]?.S;
    const expiration = item[a.expiration]?.N;
    if (key === undefined || (status !== 'INPROGRESS' && status !== 'COMPLETED') || owner === undefined || expiration === undefined) {
      return this.malformed(key ?? '(no key)');
    }
    const lease = item[a.leaseUntil]?.N;
    const fingerprint = item[a.fingerprint]?.S;
    const keyId = item[a.keyId]?.S;
    const response = withOutcome ? await this.codec.decode(item[a.response], 'response', keyId, key) : undefined;
    const error = withOutcome ? await this.codec.decode(item[a.error], 'error', keyId, key) : undefined;
    return {
      key,
      status,
      owner,
      expiresAt: Number(expiration),
      ...(lease === undefined ? {} : { leaseUntil: Number(lease) }),
      ...(fingerprint === undefined ? {} : { fingerprint }),
      ...(response === undefined ? {} : { response }),
      ...(item[a.responseOmitted]?.BOOL ? { responseOmitted: true } : {}),
      ...(error === undefined ? {} : { error }),
    };
  }

  /**
   * The record's state and the sizes of what it stores, from one strongly consistent `GetItem`,
   * for operations tools; the response is never decoded (nor decrypted).
   */
  async inspect(key: string): Promise<RecordSummary | undefined> {
    const a = this.attributes;
    const output = await this.client.send(new GetItemCommand({ TableName: this.tableName, Key: { [a.key]: { S: key } }, ConsistentRead: true }));
    const record = await this.toRecord(output.Item, false);
    if (record === undefined) return undefined;
    const sizeOf = (stored: AttributeValue | undefined) => (stored?.S !== undefined ? Buffer.byteLength(stored.S) : stored?.B?.byteLength);
    const responseBytes = sizeOf(output.Item![a.response]);
    const errorBytes = sizeOf(output.Item![a.error]);
    return {
      key: record.key,
      status: record.status,
      expiresAt: record.expiresAt,
      ...(record.leaseUntil === undefined ? {} : { leaseUntil: record.leaseUntil }),
      hasFingerprint: record.fingerprint !== undefined,
      ...(responseBytes === undefined ? {} : { responseBytes }),
      responseOmitted: record.responseOmitted === true,
      ...(errorBytes === undefined ? {} : { errorBytes }),
    };
  }

  /**
   * Deletes the record (one conditional `DeleteItem`), only while its status is `onlyIf` when
   * given, for operations tools. `true` when this request deleted a record.
   */
  async forget(key: string, onlyIf?: RecordStatus): Promise<boolean> {
    const a = this.attributes;
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: { [a.key]: { S: key } },
          ...(onlyIf === undefined
            ? { ConditionExpression: 'attribute_exists(#id)', ExpressionAttributeNames: { '#id': a.key } }
            : {
                ConditionExpression: '#status = :status',
                ExpressionAttributeNames: { '#status': a.status },
                ExpressionAttributeValues: { ':status': { S: onlyIf } },
              }),
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }
}
