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
import type {
  ClaimCompletedRequest,
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  CompleteResult,
  IdempotencyRecord,
  IdempotencyStore,
  ReleaseRequest,
  RecordStatus,
  RecordSummary,
  ReleaseResult,
} from './store.js';
import { sendTransaction } from './dynamodb-transaction.js';
import { IdempotencyError } from './errors.js';
import { assertOptions } from './options.js';
import { type EncodedResponse, ResponseCodec, type ResponseEncryption } from './response-codec.js';

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
  /** S (JSON) or B (gzip of the JSON). @default 'response' */
  readonly response: string;
  /** @default 'responseOmitted' */
  readonly responseOmitted: string;
  /** A stored final error, S (JSON). @default 'error' */
  readonly error: string;
  /** Id of the key that encrypted the response, with `encryption`. @default 'keyId' */
  readonly keyId: string;
}

export const DEFAULT_ATTRIBUTE_NAMES: AttributeNames = Object.freeze({
  key: 'id',
  status: 'status',
  expiration: 'expiration',
  leaseUntil: 'leaseUntil',
  owner: 'owner',
  fingerprint: 'fingerprint',
  response: 'response',
  responseOmitted: 'responseOmitted',
  error: 'error',
  keyId: 'keyId',
});

export interface DynamoDBStoreOptions {
  readonly tableName: string;
  /** @default a new `DynamoDBClient` with the environment's region and credentials */
  readonly client?: DynamoDBClient;
  readonly attributes?: Partial<AttributeNames>;
  /** Responses whose JSON is larger than this are stored gzip-compressed. @default 32768 */
  readonly compressAboveBytes?: number;
  /** Encrypt stored responses at rest (AES-256-GCM) with keys from your provider. @default none */
  readonly encryption?: ResponseEncryption;
}

const isConditionFailure = (error: unknown): error is { Item?: Record<string, AttributeValue> } =>
  (error as { name?: unknown } | null)?.name === 'ConditionalCheckFailedException';

const isItemTooLarge = (error: unknown): boolean =>
  (error as { name?: unknown } | null)?.name === 'ValidationException' && /item size/i.test(String((error as Error).message));

/**
 * The record protocol on a DynamoDB table: claim is one conditional `PutItem`, complete one
 * conditional `UpdateItem`, release one conditional `DeleteItem`; complete and release are fenced
 * by the attempt's owner token, and a refused write returns the current item (`ALL_OLD`), so no
 * operation ever reads before it writes.
 *
 * @example
 * ```ts
 * const store = new DynamoDBStore({ tableName: process.env.IDEMPOTENCY_TABLE! });
 * ```
 */
export class DynamoDBStore implements IdempotencyStore {
  readonly tableName: string;
  readonly attributes: AttributeNames;
  private readonly client: DynamoDBClient;
  private readonly codec: ResponseCodec;
  private readonly names: Record<string, string>;

  constructor(options: DynamoDBStoreOptions) {
    assertOptions('DynamoDBStore', options, ['tableName', 'client', 'attributes', 'compressAboveBytes', 'encryption']);
    const encryption = options.encryption;
    if (encryption !== undefined && (typeof encryption?.currentKey !== 'function' || typeof encryption.keyById !== 'function')) {
      throw new TypeError('DynamoDBStore: `encryption` must have `currentKey()` and `keyById(id)` functions.');
    }
    if (typeof options.tableName !== 'string' || options.tableName.length < 3) {
      throw new TypeError('DynamoDBStore: `tableName` must be the name of a DynamoDB table (3 to 255 characters).');
    }
    if (options.client !== undefined && typeof (options.client as { send?: unknown }).send !== 'function') {
      throw new TypeError('DynamoDBStore: `client` must be a DynamoDBClient from @aws-sdk/client-dynamodb.');
    }
    const compress = options.compressAboveBytes ?? 32 * 1024;
    if (!Number.isInteger(compress) || compress < 0 || compress > 400 * 1024) {
      throw new TypeError('DynamoDBStore: `compressAboveBytes` must be a whole number of bytes from 0 to 409600 (an item holds at most 400 KB).');
    }
    if (options.attributes !== undefined) {
      assertOptions('DynamoDBStore attributes', options.attributes, Object.keys(DEFAULT_ATTRIBUTE_NAMES));
      for (const [field, name] of Object.entries(options.attributes)) {
        if (typeof name !== 'string' || name.length === 0) {
          throw new TypeError(`DynamoDBStore: attribute name \`${field}\` must be a non-empty string.`);
        }
      }
    }
    this.tableName = options.tableName;
    this.attributes = Object.freeze({ ...DEFAULT_ATTRIBUTE_NAMES, ...options.attributes });
    if (new Set(Object.values(this.attributes)).size !== Object.keys(this.attributes).length) {
      throw new TypeError('DynamoDBStore: every attribute name must be different.');
    }
    this.client = options.client ?? new DynamoDBClient({});
    this.codec = new ResponseCodec(compress, encryption);
    const a = this.attributes;
    this.names = {
      '#id': a.key,
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
      const record = isConditionFailure(error) ? await this.toRecord(error.Item) : undefined;
      if (record === undefined) throw error;
      return { claimed: false, record };
    }
  }

  /**
   * One `TransactWriteItems`: the fenced completion of the record and the call's own writes.
   * A refused record condition returns the current record (nothing written).
   */
  async completeWithWrites(request: CompleteRequest, writes: readonly TransactWriteItem[]): Promise<CompleteResult> {
    let encoded = await this.encodeRequest(request);
    let record;
    try {
      record = await this.transact([{ Update: this.completionUpdate(request, encoded) }, ...writes]);
    } catch (error) {
      // As in `complete`: a record DynamoDB finds too large completes without its response.
      if (encoded.omitted || !(error instanceof IdempotencyError && error.code === 'TRANSACTION_INVALID' && isItemTooLarge(error.cause))) throw error;
      encoded = { response: undefined, omitted: true };
      record = await this.transact([{ Update: this.completionUpdate(request, encoded) }, ...writes]);
    }
    return record === null ? { completed: true, responseStored: !encoded.omitted } : { completed: false, record };
  }

  /** One `TransactWriteItems`: a claim that creates the record COMPLETED, and the call's own writes. */
  async claimCompleted(request: ClaimCompletedRequest, writes: readonly TransactWriteItem[]): Promise<ClaimResult> {
    const a = this.attributes;
    const item = this.claimItem(request);
    item[a.status] = { S: 'COMPLETED' };
    const { response, omitted, keyId } = await this.encodeRequest(request);
    if (response !== undefined) item[a.response] = response;
    if (keyId !== undefined) item[a.keyId] = { S: keyId };
    if (omitted) item[a.responseOmitted] = { BOOL: true };
    if (request.error !== undefined) item[a.error] = { S: request.error };
    const record = await this.transact([{ Put: this.claimPut(item, request.now) }, ...writes]);
    return record === null ? { claimed: true, responseStored: !omitted } : { claimed: false, record: record ?? this.malformed(request.key) };
  }

  async complete(request: CompleteRequest): Promise<CompleteResult> {
    const encoded = await this.encodeRequest(request);
    try {
      return await this.sendComplete(request, encoded);
    } catch (error) {
      // The size estimate leaves room for the other attributes; should DynamoDB still refuse the
      // item, the call has completed all the same: record it without its response.
      if (encoded.omitted || !isItemTooLarge(error)) throw error;
      return await this.sendComplete(request, { response: undefined, omitted: true });
    }
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
      return { released: false, record: await this.toRecord(error.Item) };
    }
  }

  private async sendComplete(request: CompleteRequest, encoded: EncodedResponse): Promise<CompleteResult> {
    try {
      await this.client.send(new UpdateItemCommand(this.completionUpdate(request, encoded)));
      return { completed: true, responseStored: !encoded.omitted };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      return { completed: false, record: await this.toRecord(error.Item) };
    }
  }

  /** The fenced COMPLETED update, shared by `complete` and `completeWithWrites`. */
  private completionUpdate(request: CompleteRequest, { response, omitted, keyId }: EncodedResponse): Update & { ReturnValuesOnConditionCheckFailure: 'ALL_OLD' } {
    const values: Record<string, AttributeValue> = {
      ':completed': { S: 'COMPLETED' },
      ':inprogress': { S: 'INPROGRESS' },
      ':owner': { S: request.owner },
      ':exp': { N: String(request.expiresAt) },
    };
    let set = '#status = :completed, #exp = :exp';
    const remove = ['#lease'];
    if (response !== undefined) {
      set += ', #response = :response';
      values[':response'] = response;
    } else remove.push('#response');
    if (omitted) {
      set += ', #omitted = :omitted';
      values[':omitted'] = { BOOL: true };
    }
    if (request.error !== undefined) {
      set += ', #error = :error';
      values[':error'] = { S: request.error };
    }
    if (keyId !== undefined) {
      set += ', #keyId = :keyId';
      values[':keyId'] = { S: keyId };
    }
    const names: Record<string, string> = {};
    const used = ['#status', '#exp', '#lease', '#owner', '#response'];
    if (omitted) used.push('#omitted');
    if (request.error !== undefined) used.push('#error');
    if (keyId !== undefined) used.push('#keyId');
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

  /** A transaction whose first action is the record's: `null` when it committed, else the record that refused it. */
  private async transact(items: TransactWriteItem[]): Promise<IdempotencyRecord | undefined | null> {
    const refused = await sendTransaction(this.client, items);
    return refused === null ? null : this.toRecord(refused);
  }

  private async encodeRequest(request: CompleteRequest | ClaimCompletedRequest): Promise<EncodedResponse> {
    if (request.responseOmitted) return { response: undefined, omitted: true };
    return this.codec.encode(request.response, request.key);
  }

  private malformed(key: string): never {
    throw new Error(`The idempotency record ${key} in ${this.tableName} is malformed.`);
  }

  private async toRecord(item: Record<string, AttributeValue> | undefined, withResponse = true): Promise<IdempotencyRecord | undefined> {
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
    const response = withResponse ? await this.codec.decode(item[a.response], item[a.keyId]?.S, key) : undefined;
    return {
      key,
      status,
      owner,
      expiresAt: Number(expiration),
      ...(lease === undefined ? {} : { leaseUntil: Number(lease) }),
      ...(fingerprint === undefined ? {} : { fingerprint }),
      ...(response === undefined ? {} : { response }),
      ...(item[a.responseOmitted]?.BOOL ? { responseOmitted: true } : {}),
      ...(item[a.error]?.S === undefined ? {} : { error: item[a.error]!.S }),
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
    const stored = output.Item![a.response];
    const responseBytes = stored?.S !== undefined ? Buffer.byteLength(stored.S) : stored?.B?.byteLength;
    return {
      key: record.key,
      status: record.status,
      expiresAt: record.expiresAt,
      ...(record.leaseUntil === undefined ? {} : { leaseUntil: record.leaseUntil }),
      hasFingerprint: record.fingerprint !== undefined,
      ...(responseBytes === undefined ? {} : { responseBytes }),
      responseOmitted: record.responseOmitted === true,
      ...(record.error === undefined ? {} : { errorBytes: Buffer.byteLength(record.error) }),
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
            : { ConditionExpression: '#status = :status', ExpressionAttributeNames: { '#status': a.status }, ExpressionAttributeValues: { ':status': { S: onlyIf } } }),
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }
}
