import {
  type AttributeValue,
  DeleteItemCommand,
  DynamoDBClient,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { gunzipSync, gzipSync } from 'node:zlib';
import type {
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  CompleteResult,
  IdempotencyRecord,
  IdempotencyStore,
  ReleaseRequest,
  ReleaseResult,
} from './store.js';
import { assertOptions } from './options.js';

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
});

export interface DynamoDBStoreOptions {
  readonly tableName: string;
  /** @default a new `DynamoDBClient` with the environment's region and credentials */
  readonly client?: DynamoDBClient;
  readonly attributes?: Partial<AttributeNames>;
  /** Responses whose JSON is larger than this are stored gzip-compressed. @default 32768 */
  readonly compressAboveBytes?: number;
}

/** DynamoDB's item size limit, less room for the record's other attributes. */
const MAX_RESPONSE_BYTES = 400 * 1024 - 2048;

const isConditionFailure = (error: unknown): error is { Item?: Record<string, AttributeValue> } =>
  (error as { name?: unknown } | null)?.name === 'ConditionalCheckFailedException';

const isItemTooLarge = (error: unknown): boolean =>
  (error as { name?: unknown } | null)?.name === 'ValidationException' && /size/i.test(String((error as Error).message));

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
  private readonly compressAboveBytes: number;
  private readonly names: Record<string, string>;

  constructor(options: DynamoDBStoreOptions) {
    assertOptions('DynamoDBStore', options, ['tableName', 'client', 'attributes', 'compressAboveBytes']);
    if (typeof options.tableName !== 'string' || options.tableName.length < 3) {
      throw new TypeError('DynamoDBStore: `tableName` must be the name of a DynamoDB table (3 to 255 characters).');
    }
    if (options.client !== undefined && typeof (options.client as { send?: unknown }).send !== 'function') {
      throw new TypeError('DynamoDBStore: `client` must be a DynamoDBClient from @aws-sdk/client-dynamodb.');
    }
    const compress = options.compressAboveBytes ?? 32 * 1024;
    if (!Number.isInteger(compress) || compress < 0) {
      throw new TypeError('DynamoDBStore: `compressAboveBytes` must be a whole number of bytes, 0 or more.');
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
    this.compressAboveBytes = compress;
    const a = this.attributes;
    this.names = {
      '#id': a.key,
      '#status': a.status,
      '#exp': a.expiration,
      '#lease': a.leaseUntil,
      '#owner': a.owner,
      '#response': a.response,
      '#omitted': a.responseOmitted,
    };
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const a = this.attributes;
    const item: Record<string, AttributeValue> = {
      [a.key]: { S: request.key },
      [a.status]: { S: 'INPROGRESS' },
      [a.expiration]: { N: String(request.expiresAt) },
      [a.leaseUntil]: { N: String(request.leaseUntil) },
      [a.owner]: { S: request.owner },
    };
    if (request.fingerprint !== undefined) item[a.fingerprint] = { S: request.fingerprint };
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(#id) OR #exp < :nowSeconds OR (#status = :inprogress AND #lease < :nowMillis)',
          ExpressionAttributeNames: { '#id': a.key, '#exp': a.expiration, '#status': a.status, '#lease': a.leaseUntil },
          ExpressionAttributeValues: {
            ':nowSeconds': { N: String(Math.floor(request.now / 1000)) },
            ':nowMillis': { N: String(request.now) },
            ':inprogress': { S: 'INPROGRESS' },
          },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { claimed: true };
    } catch (error) {
      const record = isConditionFailure(error) ? this.toRecord(error.Item) : undefined;
      if (record === undefined) throw error;
      return { claimed: false, record };
    }
  }

  async complete(request: CompleteRequest): Promise<CompleteResult> {
    const response = request.responseOmitted ? undefined : this.encode(request.response);
    const omitted = request.responseOmitted === true || response === null;
    try {
      return await this.sendComplete(request, response ?? undefined, omitted);
    } catch (error) {
      // The size estimate leaves room for the other attributes; should DynamoDB still refuse the
      // item, the call has completed all the same: record it without its response.
      if (omitted || !isItemTooLarge(error)) throw error;
      return await this.sendComplete(request, undefined, true);
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
      return { released: false, record: this.toRecord(error.Item) };
    }
  }

  private async sendComplete(request: CompleteRequest, response: AttributeValue | undefined, omitted: boolean): Promise<CompleteResult> {
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
    const names: Record<string, string> = {};
    for (const name of ['#status', '#exp', '#lease', '#owner', '#response', ...(omitted ? ['#omitted'] : [])]) names[name] = this.names[name]!;
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { [this.attributes.key]: { S: request.key } },
          UpdateExpression: `SET ${set} REMOVE ${remove.join(', ')}`,
          ConditionExpression: '#owner = :owner AND #status = :inprogress',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { completed: true, responseStored: !omitted };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      return { completed: false, record: this.toRecord(error.Item) };
    }
  }

  /** The response attribute: JSON text, gzip when large, `null` when even that does not fit. */
  private encode(json: string | undefined): AttributeValue | undefined | null {
    if (json === undefined) return undefined;
    // UTF-8 takes at most 3 bytes per UTF-16 unit; skip the exact count for small texts.
    const bytes = json.length * 3 <= this.compressAboveBytes ? json.length : Buffer.byteLength(json);
    if (bytes <= this.compressAboveBytes) return { S: json };
    const zipped = gzipSync(json);
    return zipped.byteLength <= MAX_RESPONSE_BYTES ? { B: zipped } : null;
  }

  private toRecord(item: Record<string, AttributeValue> | undefined): IdempotencyRecord | undefined {
    if (item === undefined) return undefined;
    const a = this.attributes;
    const key = item[a.key]?.S;
    const status = item[a.status]?.S;
    const owner = item[a.owner]?.S;
    const expiration = item[a.expiration]?.N;
    if (key === undefined || (status !== 'INPROGRESS' && status !== 'COMPLETED') || owner === undefined || expiration === undefined) {
      throw new Error(`The idempotency record ${key ?? '(no key)'} in ${this.tableName} is malformed.`);
    }
    const lease = item[a.leaseUntil]?.N;
    const fingerprint = item[a.fingerprint]?.S;
    const stored = item[a.response];
    const response = stored?.S ?? (stored?.B ? gunzipSync(stored.B).toString('utf8') : undefined);
    return {
      key,
      status,
      owner,
      expiresAt: Number(expiration),
      ...(lease === undefined ? {} : { leaseUntil: Number(lease) }),
      ...(fingerprint === undefined ? {} : { fingerprint }),
      ...(response === undefined ? {} : { response }),
      ...(item[a.responseOmitted]?.BOOL ? { responseOmitted: true } : {}),
    };
  }
}
