import { type AttributeValue, DeleteItemCommand, type DeleteItemCommandInput, GetItemCommand, type TransactWriteItem } from '@aws-sdk/client-dynamodb';
import { isConditionFailure, DynamoDBStore as LeanDynamoDBStore, WriteAttempts } from './dynamodb/dynamodb-store.js';
import type { AttributeNames, DynamoDBStoreOptions } from './dynamodb-store-options.js';
import { recordActionInvalid, refusedForSize, sendTransaction } from './dynamodb-transaction.js';
import { type ResponseEncryption, withEncryptionModule } from './encryption.js';
import { IdempotencyError } from './errors.js';
import type {
  ClaimCompletedRequest,
  ClaimResult,
  CompleteRequest,
  CompleteResult,
  IdempotencyRecord,
  RecordItem,
  RecordStatus,
  RecordSummary,
} from './store.js';
import { ITEM_LIMIT_BYTES, itemSize, outcomeReport, type StoredOutcome, sealedWith } from './stored-outcome.js';

/** Attribute values of an item as read, by attribute name (`undefined`: absent), that a delete is fenced on. @internal */
export type RecordFence = Readonly<Record<string, AttributeValue | undefined>>;

export type { AttributeNames, DynamoDBStoreOptions } from './dynamodb-store-options.js';
export { DEFAULT_ATTRIBUTE_NAMES } from './dynamodb-store-options.js';

/** The attributes of `item` that none of `attributes` is: a record written under these names holds none. @internal */
export function otherAttributeNames(item: Record<string, AttributeValue>, attributes: AttributeNames): string[] {
  const names = new Set<string>(Object.values(attributes));
  return Object.keys(item).filter((name) => !names.has(name));
}

/**
 * Throws, deleting nothing, when an item that lacks the attribute `missing` holds `otherNames`,
 * attributes none of the store's names is: a record written under other attribute names, whose
 * owner, lease or retention these names cannot see, so that `forget` could delete a live attempt. @internal
 */
export function assertSameNames(key: string, tableName: string, missing: string, otherNames: readonly string[]): void {
  if (otherNames.length === 0) return;
  throw new Error(
    `${key} in ${tableName} has no \`${missing}\` attribute but holds ${otherNames.map((name) => `\`${name}\``).join(', ')}, which none of these attribute names is: it was written under other attribute names than these, so nothing was deleted; give --attributes with every name the functions' store uses.`,
  );
}

/**
 * DynamoDB refused the record's write for its size: the transaction was cancelled at the record's
 * action, or refused as a whole for an item over 400 KB or for items over 4 MB in all (the stored
 * outcome may be what tips the call's writes over).
 */
const isTransactionTooLarge = (error: unknown): boolean =>
  error instanceof IdempotencyError && error.code === 'TRANSACTION_INVALID' && (refusedForSize(error.cause) || recordActionInvalid(error.cause));

/**
 * The record protocol on a DynamoDB table: claim is one conditional `PutItem`, complete one
 * conditional `UpdateItem`, release one conditional `DeleteItem`; complete and release are fenced
 * by the attempt's owner token, and a refused write returns the current item (`ALL_OLD`), so no
 * operation ever reads before it writes. Without options, the table and the retention come from
 * `IDEMPOTENCY_TABLE` and `IDEMPOTENCY_EXPIRES_AFTER_SECONDS`, as the CDK construct sets them.
 * Besides the protocol, it commits `transaction()` writes with the record, serves atomic mode
 * (`claimCompleted`, `read`) and the operations tools (`inspect`, `forget`); the `DynamoDBStore` of `lambda-idempotency/dynamodb`,
 * which it extends, is the protocol alone.
 *
 * @example
 * ```ts
 * const store = new DynamoDBStore(); // the table named by IDEMPOTENCY_TABLE
 * ```
 */
export class DynamoDBStore extends LeanDynamoDBStore {
  /** @deprecated Pass `encryption: aesGcmEncryption(provider)`: the key provider itself is the older shape of the option. */
  constructor(options: Omit<DynamoDBStoreOptions, 'encryption'> & { readonly encryption: ResponseEncryption });
  constructor(options?: DynamoDBStoreOptions);
  constructor(options: DynamoDBStoreOptions = {}) {
    super(withEncryptionModule('DynamoDBStore', options));
  }

  /**
   * One `TransactWriteItems`: the fenced completion of the record and the call's own writes.
   * A refused record condition returns the current record (nothing written).
   */
  async completeWithWrites(request: CompleteRequest, writes: readonly TransactWriteItem[]): Promise<CompleteResult> {
    return this.completeWith(request, isTransactionTooLarge, (update) => sendTransaction(this.client, [{ Update: update }, ...writes]));
  }

  /** The item of record `key`, which a call's `transaction()` writes may not name: its commit writes it. */
  recordItem(key: string): RecordItem {
    return { TableName: this.tableName, Key: { [this.attributes.key]: { S: key } } };
  }

  /** One `TransactWriteItems`: a claim that creates the record COMPLETED, and the call's own writes. */
  async claimCompleted(request: ClaimCompletedRequest, writes: readonly TransactWriteItem[]): Promise<ClaimResult> {
    return this.commitCompleted(request, writes, false);
  }

  /** {@link claimCompleted}; `adopted`: sent again after a record without a retention changed under it (see `adoptRetention`). */
  private async commitCompleted(request: ClaimCompletedRequest, writes: readonly TransactWriteItem[], adopted: boolean): Promise<ClaimResult> {
    const put = this.claimPut(request, 'COMPLETED');
    return this.withOutcome(request, ITEM_LIMIT_BYTES - itemSize(put.Item), isTransactionTooLarge, async (outcome) => {
      const refused = await sendTransaction(this.client, [{ Put: { ...put, Item: { ...put.Item, ...this.outcomeItem(outcome) } } }, ...writes]);
      if (refused === null) return { claimed: true, responseStored: !outcome.omitted, ...outcomeReport(outcome) };
      // Only an item refuses the claim: a refusal that came without it (see `refusingItem`) reads it,
      // and the commit is sent again, once, should it be gone since.
      const refusing = refused ?? (await this.refusedBy(() => this.refusingItem(request.key)));
      if (refusing === undefined && !adopted) return this.commitCompleted(request, writes, true);
      let item = refusing;
      // A record without a retention refuses every commit, and no TTL removes it: it gets this
      // commit's, as it gets a claim's, and is then replayed (or answers IN_PROGRESS) as any record.
      if (refusing !== undefined && refusing[this.attributes.expiration] === undefined && !adopted) {
        item = await this.refusedBy(() => this.adoptRetention(request, refusing));
        if (item === undefined) return this.commitCompleted(request, writes, true);
      }
      // The call's own COMPLETED record (a resent commit, applied before) is its outcome: one that cannot be decoded now leaves its state, as for a completion.
      const own = item?.[this.attributes.owner]?.S === request.owner && item?.[this.attributes.status]?.S === 'COMPLETED';
      // Gone when read after both refusals: a record claimed and released in between, each time (no item refuses no claim).
      const gone = () => {
        throw new Error(
          `DynamoDB refused the commit of ${request.key} twice, and the record that refused it was gone each time it was read: other attempts claimed and released it meanwhile.`,
        );
      };
      const read = async () => (await this.toRecord(item)) ?? gone();
      return { claimed: false, record: await this.refusedBy(own ? () => read().catch(async () => (await this.toRecord(item, false))!) : read) };
    });
  }

  /**
   * Runs `read`, a step in reading the record that refused a commit. The record is replayed from
   * here; if it cannot be read, fail closed with what is known: nothing of this call was written.
   */
  private async refusedBy<T>(read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (error) {
      throw new IdempotencyError('STORE_FAILURE', 'The idempotency record that refused this call could not be read; nothing was written.', { cause: error });
    }
  }

  /**
   * The record of `key` with its outcome decoded (and decrypted), for `atomic: true`: an atomic call
   * whose function failed replays the record a duplicate's commit would have met. Read as a refused
   * write's record is (see `refusingItem`): one `UpdateItem` that changes nothing, which sees the
   * latest write, as a strongly consistent read does, and needs only the actions the record protocol
   * is granted (no `GetItem`). Throws for an item that is not a record. Given `expiresAt`, a record
   * without a retention gets it as the commit would give it (see `adoptRetention`; an `UpdateItem`),
   * and is read again, once, should it change meanwhile.
   */
  async read(key: string, expiresAt?: number): Promise<IdempotencyRecord | undefined> {
    let item = await this.refusingItem(key);
    if (item !== undefined && expiresAt !== undefined && item[this.attributes.expiration] === undefined) {
      item = (await this.adoptRetention({ key, expiresAt }, item)) ?? (await this.refusingItem(key));
    }
    return this.toRecord(item);
  }

  /**
   * The record's state and the sizes of what it stores, from one strongly consistent `GetItem`,
   * for operations tools; the response is never decoded (nor decrypted). A record without a
   * retention is shown without one, as claims read it (the first that meets it gives it one).
   */
  async inspect(key: string): Promise<RecordSummary | undefined> {
    return (await this.inspectFenced(key))?.summary;
  }

  /**
   * {@link inspect}, with what a delete of exactly the record read is fenced on, for the CLI's
   * `forget`: its owner, status, lease and retention as read; and the item's attributes that none of
   * these names is (`otherNames`), which a record written under other names holds. @internal
   */
  async inspectFenced(key: string): Promise<{ summary: RecordSummary; fence: RecordFence; otherNames: readonly string[] } | undefined> {
    const a = this.attributes;
    const item = await this.storedItem(key);
    if (item === undefined) return undefined;
    const expiration = item[a.expiration];
    const record = await this.storedRecord(item);
    const sizeOf = (stored: AttributeValue | undefined) => (stored?.S !== undefined ? Buffer.byteLength(stored.S) : stored?.B?.byteLength);
    const responseBytes = sizeOf(item[a.response]);
    const errorBytes = sizeOf(item[a.error]);
    const keyId = sealedWith(item[a.keyId]?.S, item[a.response], item[a.error]);
    const summary: RecordSummary = {
      key: record.key,
      status: record.status,
      ...(expiration === undefined ? {} : { expiresAt: record.expiresAt }),
      ...(record.leaseUntil === undefined ? {} : { leaseUntil: record.leaseUntil }),
      hasFingerprint: record.fingerprint !== undefined,
      ...(responseBytes === undefined ? {} : { responseBytes }),
      responseOmitted: record.responseOmitted === true,
      ...(record.errorOmitted ? { errorOmitted: true } : {}),
      ...(errorBytes === undefined ? {} : { errorBytes }),
      ...(keyId === undefined ? {} : { keyId }),
    };
    return {
      summary,
      fence: Object.fromEntries([a.owner, a.status, a.leaseUntil, a.expiration].map((name) => [name, item[name]])),
      otherNames: this.otherNames(item),
    };
  }

  private otherNames(item: Record<string, AttributeValue>): string[] {
    return otherAttributeNames(item, this.attributes);
  }

  /**
   * Deletes an item this store cannot read as a record, for the CLI's `forget`: one strongly
   * consistent `GetItem`, then a `DeleteItem` fenced on the owner it read. No call holds such an
   * item (calls with its key fail closed) until its retention or lease ends and a claim replaces
   * it; every claim writes a new owner, so the claim is never deleted. `'record'`: the item reads as
   * a record now; `'changed'`: it changed between the read and the delete. Throws, deleting nothing,
   * for an item that holds a status under another attribute name: a record of a store with other
   * attribute names, whose live attempt these names could neither see nor fence. @internal
   */
  async forgetUnreadable(key: string): Promise<'deleted' | 'absent' | 'record' | 'changed'> {
    const item = await this.storedItem(key);
    if (item === undefined) return 'absent';
    const readable = await this.storedRecord(item).then(
      () => true,
      () => false,
    );
    if (readable) return 'record';
    // A status under another name: a record written under other attribute names (a live attempt's,
    // perhaps), which neither these names' lease check nor their owner fence would guard.
    const status =
      item[this.attributes.status] === undefined ? Object.keys(item).find((name) => /^(INPROGRESS|COMPLETED)$/.test(item[name]?.S ?? '')) : undefined;
    if (status !== undefined) {
      throw new Error(
        `${key} in ${this.tableName} holds its status under another attribute than \`${this.attributes.status}\` (\`${status}\`): it was written under other attribute names than these, so nothing was deleted; give --attributes with every name the functions' store uses.`,
      );
    }
    // The status under this name, but no owner, lease or retention under these, and attributes none of
    // these names is: a record whose store names those otherwise (a live attempt's, perhaps); a claim
    // by that store would write its owner under another name too, so this owner fence would not hold.
    const a = this.attributes;
    const missing = [a.owner, ...(item[a.status]?.S === 'INPROGRESS' ? [a.leaseUntil] : []), a.expiration].find((name) => item[name] === undefined);
    if (missing !== undefined) assertSameNames(key, this.tableName, missing, this.otherNames(item));
    return (await this.forgetFenced(key, { [a.owner]: item[a.owner] })) ? 'deleted' : 'changed';
  }

  /**
   * Deletes the item of `key` only while each attribute of `fence` holds the value read (or is
   * still absent), in one conditional `DeleteItem`. Every claim writes a new owner, a takeover a
   * later lease and a completion a new retention, so a call that claimed the key since the read
   * keeps its record. `true` when this request deleted the item. @internal
   */
  async forgetFenced(key: string, fence: RecordFence): Promise<boolean> {
    const names: Record<string, string> = { '#id': this.attributes.key };
    const values: Record<string, AttributeValue> = {};
    const conditions = ['attribute_exists(#id)'];
    for (const [index, [name, value]] of Object.entries(fence).entries()) {
      names[`#f${index}`] = name;
      if (value === undefined) {
        conditions.push(`attribute_not_exists(#f${index})`);
      } else {
        values[`:f${index}`] = value;
        conditions.push(`#f${index} = :f${index}`);
      }
    }
    return this.deleteIf(key, {
      TableName: this.tableName,
      Key: { [this.attributes.key]: { S: key } },
      ConditionExpression: conditions.join(' AND '),
      ExpressionAttributeNames: names,
      ...(Object.keys(values).length === 0 ? {} : { ExpressionAttributeValues: values }),
    });
  }

  /**
   * One conditional `DeleteItem`; `true` when it deleted the item. The SDK sends a delete again after
   * an attempt that got no answer (a timeout, a connection lost) or a 5xx, which DynamoDB may have
   * applied: the retry then finds no item, its condition fails, and the item is gone because this
   * delete removed it (its answer lost), as the engine reads its own release. An attempt answered
   * 4xx (throttled) applied nothing: after it, no item still means no record. A refusal without the
   * item is also what a client that drops `ReturnValuesOnConditionCheckFailure` returns for an item
   * still there (see `refusingItem`): the item is read to tell, a `GetItem` as operations tools do.
   * A role with `DeleteItem` alone (a forget by lease, or of a COMPLETED record: docs/operations.md)
   * may not read it: the refusal then reads as DynamoDB sends it, the item gone.
   */
  private async deleteIf(key: string, input: DeleteItemCommandInput): Promise<boolean> {
    const attempts = new WriteAttempts();
    const command = attempts.watch(new DeleteItemCommand({ ...input, ReturnValuesOnConditionCheckFailure: 'ALL_OLD' }));
    try {
      await this.client.send(command);
      return true;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      if (!attempts.mayHaveApplied || error.Item !== undefined) return false;
      return this.storedItem(key).then(
        (item) => item === undefined,
        (failure: unknown) => {
          if ((failure as { name?: unknown } | null)?.name === 'AccessDeniedException') return true;
          throw failure;
        },
      );
    }
  }

  /** The item of `key`, from one strongly consistent `GetItem`, for operations tools. */
  private async storedItem(key: string): Promise<Record<string, AttributeValue> | undefined> {
    const { Item: item } = await this.client.send(
      new GetItemCommand({ TableName: this.tableName, Key: { [this.attributes.key]: { S: key } }, ConsistentRead: true }),
    );
    return item;
  }

  /**
   * An item as the record it holds, the outcome left undecoded; read with a stand-in retention when
   * it has none, so that every other attribute is checked as a claim checks it. Throws on an item
   * that is not a record.
   */
  private async storedRecord(item: Record<string, AttributeValue>): Promise<IdempotencyRecord> {
    const a = this.attributes;
    return (await this.toRecord({ ...item, [a.expiration]: item[a.expiration] ?? { N: '0' } }, false))!;
  }

  /** `forget` honours `leaseUntil`. */
  readonly forgetChecksLease = true;

  /**
   * Deletes the record (one conditional `DeleteItem`), only while its status is `onlyIf` when
   * given, and only while it is INPROGRESS with this `leaseUntil` when given, for operations tools.
   * `true` when this request deleted a record.
   */
  async forget(key: string, onlyIf?: RecordStatus, leaseUntil?: number): Promise<boolean> {
    // A COMPLETED record has no lease: asked for both, nothing matches.
    if (leaseUntil !== undefined && onlyIf === 'COMPLETED') return false;
    const a = this.attributes;
    const status = onlyIf ?? (leaseUntil === undefined ? undefined : 'INPROGRESS');
    const names: Record<string, string> = status === undefined ? { '#id': a.key } : { '#status': a.status };
    const values: Record<string, AttributeValue> = status === undefined ? {} : { ':status': { S: status } };
    if (leaseUntil !== undefined) {
      names['#lease'] = a.leaseUntil;
      values[':lease'] = { N: String(leaseUntil) };
    }
    const condition = status === undefined ? 'attribute_exists(#id)' : `#status = :status${leaseUntil === undefined ? '' : ' AND #lease = :lease'}`;
    return this.deleteIf(key, {
      TableName: this.tableName,
      Key: { [a.key]: { S: key } },
      ConditionExpression: condition,
      ExpressionAttributeNames: names,
      ...(Object.keys(values).length === 0 ? {} : { ExpressionAttributeValues: values }),
    });
  }

  /** The outcome as item attributes, for a record created COMPLETED. */
  private outcomeItem(outcome: StoredOutcome): Record<string, AttributeValue> {
    const a = this.attributes;
    const item: Record<string, AttributeValue> = {};
    if (outcome.response !== undefined) item[a.response] = outcome.response;
    if (outcome.error !== undefined) item[a.error] = outcome.error;
    if (outcome.keyId !== undefined) item[a.keyId] = { S: outcome.keyId };
    if (outcome.omitted) item[a.responseOmitted] = { BOOL: true };
    if (outcome.errorOmitted) item[a.errorOmitted] = { BOOL: true };
    return item;
  }
}
