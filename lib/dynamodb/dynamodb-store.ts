import {
  type AttributeValue,
  DeleteItemCommand,
  DynamoDBClient,
  PutItemCommand,
  type PutItemInput,
  type Update,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { delay } from '../deadline.js';
import { type AttributeNames, DEFAULT_ATTRIBUTE_NAMES, type LeanDynamoDBStoreOptions, resolveStoreOptions } from '../dynamodb-store-options.js';
import { detailStoreFailure, storeFailureDetail } from '../errors.js';
import { malformedRecord, ResponseCodec } from '../response-codec.js';
import { shellCommand } from '../shell-words.js';
import {
  adoptedRetention,
  type ClaimRequest,
  type ClaimResult,
  type CompleteRequest,
  type CompleteResult,
  type IdempotencyRecord,
  type IdempotencyStore,
  type RecordStatus,
  type ReleaseRequest,
  type ReleaseResult,
} from '../store.js';
import { encodeOutcome, type Outcome, type OutcomeNames, outcomeBudget, outcomeReport, type StoredOutcome } from '../stored-outcome.js';

/** A raw item (`ALL_OLD`), or `null` when the write applied. @internal */
export type Refusal = Record<string, AttributeValue> | undefined | null;

/** @internal */
export const isConditionFailure = (error: unknown): error is { Item?: Record<string, AttributeValue> } =>
  (error as { name?: unknown } | null)?.name === 'ConditionalCheckFailedException';

/** DynamoDB refused a request because an item would exceed its size limit. @internal */
export const isSizeRefusal = (error: unknown): boolean =>
  (error as { name?: unknown } | null)?.name === 'ValidationException' && /item size/i.test(String((error as Error).message));

/** The pause before the `attempt`-th resend of a write refused for a conflict that ends within milliseconds: 20, 40, 80 ms… @internal */
export const conflictBackoff = (attempt: number): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, 10 * 2 ** attempt));

/**
 * Sends one of the record's writes (a claim's put, a completion's update, a release's delete).
 * DynamoDB refuses a write to an item while a transaction on it is in flight (another attempt
 * completing with its `transaction()` writes, or committing in atomic mode), and the SDK does not
 * retry that: nothing was written, and the transaction ends within milliseconds, so the write is
 * sent again a few times, briefly, to meet its outcome (a replay, a takeover) rather than fail as
 * the store's fault: a completion that failed so would leave its record INPROGRESS until its lease,
 * after which a retry runs the function again. @internal
 */
export async function sendWrite<T>(send: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (error) {
      if ((error as { name?: unknown } | null)?.name !== 'TransactionConflictException' || attempt >= 4) throw error;
      await conflictBackoff(attempt);
    }
  }
}

/** Node's codes of a connection lost or never made, as the SDK's own retry classifies them. */
const NETWORK_CODES = ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'];

/** The SDK's names of a request refused for going faster than the table's or the account's capacity allows. @internal */
export const THROTTLED_NAMES: readonly string[] = ['ProvisionedThroughputExceededException', 'ThrottlingException', 'RequestLimitExceeded'];

/** The SDK's names of a request throttled, refused by a server fault, or unanswered within the client's request timeout. */
const TRANSIENT_NAMES = [...THROTTLED_NAMES, 'InternalServerError', 'ServiceUnavailable', 'TimeoutError', 'RequestTimeout', 'RequestTimeoutException'];

/**
 * A request the SDK gave up on for a cause that passes: throttled, a server fault (5xx:
 * `InternalServerError`, `ServiceUnavailable`), a network error or a timeout. Not a refusal that
 * another attempt meets again (`AccessDeniedException`, `ResourceNotFoundException`, a
 * `ValidationException`: an item too large). @internal
 */
export const isTransient = (error: unknown): boolean => {
  const e = error as { name?: unknown; code?: unknown; $retryable?: unknown; $metadata?: { httpStatusCode?: unknown } } | null;
  const status = e?.$metadata?.httpStatusCode;
  return (
    TRANSIENT_NAMES.includes(String(e?.name)) ||
    NETWORK_CODES.includes(String(e?.code)) ||
    (e?.$retryable !== undefined && e.$retryable !== null) ||
    (typeof status === 'number' && (status === 429 || status >= 500))
  );
};

/** How long after its first send a completion or a release is still sent again (see {@link resendWhileTransient}). */
const RESEND_MILLIS = 5_000;
/** The pause before the first resend of a completion or a release, doubled before each next one, to at most {@link MAX_RESEND_PAUSE_MILLIS}. */
const RESEND_PAUSE_MILLIS = 50;
const MAX_RESEND_PAUSE_MILLIS = 1_000;

/**
 * Sends a completion or a release, and sends it again, after a pause (50 ms, doubled each time, at
 * most 1 s), while the SDK gives up on it for a transient cause ({@link isTransient}): a completion
 * that failed so would leave its record INPROGRESS until its lease, after which a retry runs the
 * function (which has run) again; a release, until its lease, every retry `IN_PROGRESS`. Fenced by
 * its owner, a resend applies at most once, and one that meets the call's own COMPLETED record (an
 * earlier completion, or the commit a release settles, applied, its answer lost) reads it as its
 * outcome; a release that finds no item has released. No resend starts more than
 * {@link RESEND_MILLIS} after the first send (a throttle or a server fault passes within seconds,
 * an outage does not, and the answer waits for every resend; a first send that took the SDK's
 * three attempts against a DynamoDB that never answers, 2 s each with the store's own client, gets
 * none), nor after `resendBy` (`performance.now()`), when the call must answer. @internal
 */
export async function resendWhileTransient<T>(send: () => Promise<T>, resendBy = Number.POSITIVE_INFINITY): Promise<T> {
  const until = Math.min(performance.now() + RESEND_MILLIS, resendBy);
  for (let pause = RESEND_PAUSE_MILLIS; ; pause = Math.min(pause * 2, MAX_RESEND_PAUSE_MILLIS)) {
    try {
      return await send();
    } catch (error) {
      if (!isTransient(error) || performance.now() + pause > until) throw error;
      await delay(pause).elapsed;
    }
  }
}

/**
 * The attempts the SDK made of one or more write commands (its own retries included), watched from
 * inside its retry loop, and whether one may have been applied: one that got no answer (a timeout, a
 * connection lost after sending) or an answer other than a 4xx. An attempt DynamoDB answered 4xx
 * (throttled, refused), or whose connection was refused, applied nothing. A command's middleware
 * runs only in an SDK client: a stand-in `send` shows no attempt. @internal
 */
export class WriteAttempts {
  attempts = 0;
  mayHaveApplied = false;

  /** `command`, its attempts counted here. */
  watch<C extends PutItemCommand | DeleteItemCommand>(command: C): C {
    (command.middlewareStack as DeleteItemCommand['middlewareStack']).add(
      (next) => async (args) => {
        this.attempts++;
        try {
          const output = await next(args);
          if (!isRefusal((output.response as { statusCode?: number } | undefined)?.statusCode)) this.mayHaveApplied = true;
          return output;
        } catch (error) {
          const status = (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
          const refusedConnection = ['ECONNREFUSED', 'ENOTFOUND'].includes((error as { code?: string } | null)?.code ?? '');
          if (status === undefined ? !refusedConnection : !isRefusal(status)) this.mayHaveApplied = true;
          throw error;
        }
      },
      { step: 'deserialize', name: 'idempotencyWriteAttempts' },
    );
    return command;
  }

  /** At least one attempt was made, and none may have been applied. */
  get appliedNothing(): boolean {
    return this.attempts > 0 && !this.mayHaveApplied;
  }
}

/** An HTTP status with which DynamoDB refuses a request, applying nothing. */
const isRefusal = (status: number | undefined): boolean => status !== undefined && status >= 400 && status < 500;

/** The condition of a completion or a release: the record is still INPROGRESS and held by this attempt's owner. */
const HELD_BY_OWNER = '#owner = :owner AND #status = :inprogress';

/**
 * The bounds of each request attempt of the client the store builds when given none. The SDK sets
 * none: a request that is never answered (a VPC without a route to DynamoDB, a connection dropped
 * silently) would hold the call until the Lambda times out, past its answer (a 503 for a claim),
 * and a completion held so would leave its record to the lease, after which a retry runs the
 * function again. A timed-out attempt is retried by the SDK as any network error. The request
 * timeout only logs unless `throwOnRequestTimeout` is set, and ends once the reply's headers have
 * come: a reply whose body stops coming (its connection dropped silently mid-reply) is bounded by
 * the socket timeout, 2 s without a byte. (`@smithy/node-http-handler` before 4.4, which the SDK of
 * some Lambda runtimes uses, reads `requestTimeout` as that socket timeout and ignores the rest.) The
 * CLI's client has the same bounds, so that a command answers instead of hanging. @internal
 */
export const REQUEST_TIMEOUTS = Object.freeze({ connectionTimeout: 1_000, requestTimeout: 2_000, throwOnRequestTimeout: true, socketTimeout: 2_000 });

/**
 * Refuses a client that cannot send this library's commands. Since 3.928.0 a command of
 * `@aws-sdk/client-dynamodb` carries a schema and its client the serializer; a client of an older
 * copy installed beside this library's (an app's own, pinned older) has none, and every send would
 * fail in its middleware stack, a store failure on every call. Resolving a command's middleware
 * against the client, as `send` does first, sends nothing. Any other refusal is left to the first
 * call, which reports it as a store failure with the SDK's error as its cause: only the one known
 * cause stops a store from being built.
 */
function checkClient(client: DynamoDBClient): void {
  const { middlewareStack, config } = client as Partial<DynamoDBClient>;
  if (typeof middlewareStack?.resolve !== 'function') return; // a stand-in with its own `send`
  try {
    new PutItemCommand({ TableName: 'probe', Item: {} }).resolveMiddleware(middlewareStack, config!, undefined);
  } catch (error) {
    if (!/^serializerMiddleware is not found/.test((error as Error | undefined)?.message ?? '')) return;
    throw new TypeError(
      'DynamoDBStore: `client` cannot send the commands of the @aws-sdk/client-dynamodb this library uses: it comes from another copy, older than 3.928.0, installed beside it. Update the one your code imports to 3.928.0 or newer (`npm ls @aws-sdk/client-dynamodb` lists the copies), or leave `client` out.',
      { cause: error },
    );
  }
}

/**
 * The record protocol on a DynamoDB table: claim is one conditional `PutItem`, complete one
 * conditional `UpdateItem`, release one conditional `DeleteItem`; complete and release are fenced
 * by the attempt's owner token, and a refused write returns the current item (`ALL_OLD`), so no
 * operation ever reads before it writes. Without options, the table and the retention come from
 * `IDEMPOTENCY_TABLE` and `IDEMPOTENCY_EXPIRES_AFTER_SECONDS`, as the CDK construct sets them.
 *
 * This is the store of `lambda-idempotency/dynamodb`: the protocol and nothing else, for the
 * smallest bundle. It has no `transaction()` writes, no atomic mode and no operations tools
 * (`inspect`, `forget`), and its `encryption` is the module (`aesGcmEncryption(provider)`). The
 * `DynamoDBStore` of `lambda-idempotency` extends it with all of those.
 *
 * @example
 * ```ts
 * import { idempotency } from 'lambda-idempotency';
 * import { DynamoDBStore } from 'lambda-idempotency/dynamodb';
 *
 * const store = new DynamoDBStore(); // the table named by IDEMPOTENCY_TABLE
 * export const handler = middy(charge).use(idempotency({ store }));
 * ```
 */
export class DynamoDBStore implements IdempotencyStore {
  readonly tableName: string;
  readonly attributes: AttributeNames;
  /** Retention in seconds for calls whose options set none (the option, or `IDEMPOTENCY_EXPIRES_AFTER_SECONDS`). */
  readonly expiresAfterSeconds: number | undefined;
  /** @internal */
  protected readonly client: DynamoDBClient;
  private readonly codec: ResponseCodec;
  private readonly names: Record<string, string>;
  private readonly outcomeNames: OutcomeNames;
  /** The errors of claims that DynamoDB refused on every attempt, which applied nothing (see `release`). */
  private readonly refusedClaims = new WeakSet<object>();

  constructor(options: LeanDynamoDBStoreOptions = {}) {
    const resolved = resolveStoreOptions(options);
    this.tableName = resolved.tableName;
    this.attributes = resolved.attributes;
    this.expiresAfterSeconds = resolved.expiresAfterSeconds;
    if (resolved.client !== undefined) checkClient(resolved.client);
    // A table given by its ARN is in the ARN's Region, which may not be the function's: its requests go there.
    const region = this.tableName.startsWith('arn:') ? this.tableName.split(':')[3] : undefined;
    this.client = resolved.client ?? new DynamoDBClient({ requestHandler: REQUEST_TIMEOUTS, ...(region ? { region } : {}) });
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
      '#errorOmitted': a.errorOmitted,
      '#error': a.error,
      '#keyId': a.keyId,
    };
  }

  claim(request: ClaimRequest): Promise<ClaimResult> {
    return this.putClaim(request, false);
  }

  /** The claim; `adopted`: sent again after the record that refused it changed (see `adoptRetention`) or went (see `refusingItem`). */
  private async putClaim(request: ClaimRequest, adopted: boolean): Promise<ClaimResult> {
    const put: PutItemInput = this.claimPut(request, 'INPROGRESS', request.leaseUntil);
    // ALL_OLD on success returns a replaced record (a takeover), at no extra capacity.
    put.ReturnValues = 'ALL_OLD';
    const attempts = new WriteAttempts();
    try {
      const output = await sendWrite(() => this.client.send(attempts.watch(new PutItemCommand(put))));
      const old = output?.Attributes;
      // A record without a retention, past its lease, is replaced without first getting one (see
      // `adoptRetention`): it is returned with the one it would have got, as the other stores return it.
      if (old !== undefined && old[this.attributes.expiration] === undefined) {
        old[this.attributes.expiration] = { N: String(adoptedRetention(request.expiresAt, Number(old[this.attributes.leaseUntil]?.N))) };
      }
      // Only the replaced record's status matters here: its response is not decoded (or decrypted),
      // and an item that was not a record (written by hand, say) is replaced like any other.
      const previous = old ? await this.toRecord(old, false).catch(() => undefined) : undefined;
      return previous === undefined ? { claimed: true } : { claimed: true, previous };
    } catch (error) {
      if (!isConditionFailure(error)) this.refused(error, attempts.appliedNothing);
      // Only an item refuses a claim: a refusal that came without it (see `refusingItem`) reads it, and
      // the claim is sent again, once, should it be gone since (released).
      const refusing = error.Item ?? (await this.refusingItem(request.key).catch((failure: unknown) => this.refused(failure, attempts.appliedNothing)));
      if (refusing === undefined) return adopted ? this.refused(error, attempts.appliedNothing) : this.putClaim(request, true);
      const item = refusing[this.attributes.expiration] === undefined && !adopted ? await this.adoptRetention(request, refusing) : refusing;
      if (item === undefined) return this.putClaim(request, true);
      // A record that cannot be read (not authentic under encryption, say) throws: the claim fails
      // closed. Another attempt's record refused it, and no earlier attempt may have applied (one
      // that got no answer could land after it): it applied nothing, and no release follows.
      const refusedBy = refusing[this.attributes.owner]?.S !== request.owner && !attempts.mayHaveApplied;
      return { claimed: false, record: (await this.toRecord(item).catch((failure: unknown) => this.refused(failure, refusedBy)))! };
    }
  }

  /** Throws `error`, the failure of a claim, remembered as one that applied nothing when `nothing` (see `release`). */
  private refused(error: unknown, nothing: boolean): never {
    if (nothing && typeof error === 'object' && error !== null) this.refusedClaims.add(error);
    throw error;
  }

  /**
   * A record without a retention (written by hand, or by an older version) would never expire: the
   * table's TTL ignores it and no claim takes it over. The first claim that meets it gives it the
   * claim's retention (never earlier than its lease), by one write conditioned on the retention
   * still missing, and then reads it as any record: a COMPLETED one replays until then, rather than
   * run again, and holds the key no longer. The item with its retention, or `undefined` when the
   * record changed meanwhile: the claim is then sent again, once. @internal
   */
  protected async adoptRetention(
    request: Pick<ClaimRequest, 'key' | 'expiresAt'>,
    item: Record<string, AttributeValue>,
  ): Promise<Record<string, AttributeValue> | undefined> {
    const a = this.attributes;
    const expiresAt = adoptedRetention(request.expiresAt, Number(item[a.leaseUntil]?.N));
    try {
      const output = await sendWrite(() =>
        this.client.send(
          new UpdateItemCommand({
            TableName: this.tableName,
            Key: { [a.key]: { S: request.key } },
            UpdateExpression: 'SET #exp = :exp',
            ConditionExpression: 'attribute_exists(#id) AND attribute_not_exists(#exp)',
            ExpressionAttributeNames: { '#id': a.key, '#exp': a.expiration },
            ExpressionAttributeValues: { ':exp': { N: String(expiresAt) } },
            ReturnValues: 'ALL_NEW',
          }),
        ),
      );
      return output.Attributes ?? this.malformed(request.key, 'DynamoDB returned no item with its update');
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      return undefined;
    }
  }

  async complete(request: CompleteRequest): Promise<CompleteResult> {
    return this.completeWith(request, isSizeRefusal, async (update) => {
      try {
        await resendWhileTransient(() => sendWrite(() => this.client.send(new UpdateItemCommand(update))), request.resendBy);
        return null;
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        return error.Item;
      }
    });
  }

  async release(request: ReleaseRequest): Promise<ReleaseResult> {
    // A claim DynamoDB refused on its every attempt (throttled, a missing grant) claimed nothing: its
    // release would find nothing of this owner's, and sent again while throttled, by a table that
    // throttles every request, would only hold the call's failure for seconds and add to the load.
    if (typeof request.claimFailure === 'object' && request.claimFailure !== null && this.refusedClaims.has(request.claimFailure)) {
      return { released: false, record: undefined };
    }
    try {
      const command = new DeleteItemCommand({
        TableName: this.tableName,
        Key: { [this.attributes.key]: { S: request.key } },
        ConditionExpression: HELD_BY_OWNER,
        ExpressionAttributeNames: { '#owner': this.attributes.owner, '#status': this.attributes.status },
        ExpressionAttributeValues: { ':owner': { S: request.owner }, ':inprogress': { S: 'INPROGRESS' } },
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      });
      await resendWhileTransient(() => sendWrite(() => this.client.send(command)), request.resendBy);
      return { released: true };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      return { released: false, record: await this.toRecord(error.Item ?? (await this.refusingItem(request.key, 'release')), false) };
    }
  }

  /**
   * The item of `key` as it is now, for a write refused without the item (`undefined`: there is
   * none). DynamoDB returns the item that refused a write (`ReturnValuesOnConditionCheckFailure`),
   * but a client middleware, DAX or a proxy in front of it may drop the parameter, and the refusal
   * then comes back without it, as one for an item that does not exist does: a completion taken for
   * one of a deleted record would answer a call taken over as a success. Read by one `UpdateItem`
   * that changes nothing (no update expression), fenced on the item existing, which returns it
   * (`ReturnValues`, strongly consistent) with the actions the record protocol is granted (no
   * `GetItem`). Should that come back without the item too, the store fails, naming why. The main
   * entry's store reads a record for atomic mode so too: one way to read the record, which no
   * dropped `ReturnValuesOnConditionCheckFailure` hides. A read that fails after a refused
   * `write` of this attempt's own says so in its detail: the record is no longer this attempt's
   * INPROGRESS one, which the caller's warning would otherwise say it stays until its lease. @internal
   */
  protected async refusingItem(key: string, write?: 'completion' | 'release'): Promise<Record<string, AttributeValue> | undefined> {
    const read = new UpdateItemCommand({
      TableName: this.tableName,
      Key: { [this.attributes.key]: { S: key } },
      ConditionExpression: 'attribute_exists(#id)',
      ExpressionAttributeNames: { '#id': this.attributes.key },
      ReturnValues: 'ALL_NEW',
    });
    try {
      const { Attributes: item } = await sendWrite(() => this.client.send(read));
      if (item !== undefined) return item;
    } catch (error) {
      if (isConditionFailure(error)) return undefined;
      if (write !== undefined && typeof error === 'object' && error !== null) {
        detailStoreFailure(
          error,
          `${storeFailureDetail(error, this.tableName)} reading the record after a refused ${write}: this attempt holds it no more (taken over, deleted, or completed by this call)`,
        );
      }
      throw error;
    }
    const blind = new Error('DynamoDB returned no item with a refused write, nor with an applied one.');
    blind.name = 'ConditionalCheckFailedException';
    detailStoreFailure(
      blind,
      'ConditionalCheckFailedException without the item: the client, or DAX or a proxy in front of DynamoDB, drops ReturnValuesOnConditionCheckFailure and ReturnValues, which the store needs; give it a client that sends them to DynamoDB',
    );
    throw blind;
  }

  /**
   * The fenced completion of the record, written by `send` (an `UpdateItem`, or a transaction that
   * holds it), which answers `null` when it applied or the item that refused it. `tooLarge` tells
   * a refusal of the item for its size from `send`'s errors (see {@link withOutcome}). @internal
   */
  protected async completeWith(
    request: CompleteRequest,
    tooLarge: (error: unknown) => boolean,
    send: (update: Update & { ReturnValuesOnConditionCheckFailure: 'ALL_OLD' }) => Promise<Refusal>,
  ): Promise<CompleteResult> {
    return this.withOutcome(request, outcomeBudget(this.attributes, request), tooLarge, async (outcome) => {
      const sent = await send(this.completionUpdate(request, outcome));
      if (sent === null) return { completed: true, responseStored: !outcome.omitted, ...outcomeReport(outcome) };
      const refused = sent ?? (await this.refusingItem(request.key, 'completion'));
      // The call's own COMPLETED record (a retried request, already applied) is its outcome as stored:
      // a final error cut short replays cut short, from the local cache too. Any other needs its state alone.
      const own = refused?.[this.attributes.owner]?.S === request.owner && refused?.[this.attributes.status]?.S === 'COMPLETED';
      // An outcome that cannot be decoded (a key provider failing now) leaves the record's state, as before.
      return { completed: false, record: await (own ? this.toRecord(refused).catch(() => this.toRecord(refused, false)) : this.toRecord(refused, false)) };
    });
  }

  /**
   * Sends the record's write with its outcome encoded to fit the item. Should DynamoDB refuse the
   * item for its size all the same (a fingerprint larger than the room kept for it), the call has
   * completed all the same: the write is sent once more with the smallest outcome. @internal
   */
  protected async withOutcome<T>(
    request: Outcome,
    budget: number,
    tooLarge: (error: unknown) => boolean,
    send: (outcome: StoredOutcome) => Promise<T>,
  ): Promise<T> {
    const outcome = await encodeOutcome(this.codec, this.outcomeNames, request, budget);
    try {
      return await send(outcome);
    } catch (error) {
      if ((outcome.response === undefined && outcome.error === undefined) || !tooLarge(error)) throw error;
    }
    return send(await encodeOutcome(this.codec, this.outcomeNames, request, budget, true));
  }

  /** The fenced COMPLETED update. */
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
    attribute('errorOmitted', outcome.errorOmitted ? { BOOL: true } : undefined);
    attribute('error', outcome.error);
    attribute('keyId', outcome.keyId === undefined ? undefined : { S: outcome.keyId });
    const names: Record<string, string> = {};
    for (const name of used) names[name] = this.names[name]!;
    return {
      TableName: this.tableName,
      Key: { [this.attributes.key]: { S: request.key } },
      UpdateExpression: `SET ${set} REMOVE ${remove.join(', ')}`,
      ConditionExpression: HELD_BY_OWNER,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    };
  }

  /**
   * A put of the record with the attributes every claim writes (key, retention, owner,
   * fingerprint), its `status` and, when given, its lease, that succeeds only when no live record
   * exists: none, expired, or INPROGRESS past its lease. @internal
   */
  protected claimPut(
    request: Omit<ClaimRequest, 'leaseUntil'>,
    status: RecordStatus,
    leaseUntil?: number,
  ): PutItemInput & { Item: Record<string, AttributeValue>; ReturnValuesOnConditionCheckFailure: 'ALL_OLD' } {
    const a = this.attributes;
    const item: Record<string, AttributeValue> = {
      [a.key]: { S: request.key },
      [a.expiration]: { N: String(request.expiresAt) },
      [a.owner]: { S: request.owner },
    };
    if (request.fingerprint !== undefined) item[a.fingerprint] = { S: request.fingerprint };
    item[a.status] = { S: status };
    if (leaseUntil !== undefined) item[a.leaseUntil] = { N: String(leaseUntil) };
    return {
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
    };
  }

  /** Rejects with the error for an item this store cannot read as a record (see {@link malformedRecord}). @internal */
  protected async malformed(key: string, problem: string): Promise<never> {
    throw malformedRecord(
      key,
      this.tableName,
      problem,
      `, or under other attribute names. Remove it with forgetRecord or \`${await this.forgetCommand(key)}\``,
    );
  }

  /**
   * The `lambda-idempotency` command that deletes the item of `key`: in the Region of this store's
   * client, which an operator's shell may not default to, and with the attribute names of this store
   * that differ from the defaults: the item is found under them. @internal
   */
  protected async forgetCommand(key: string): Promise<string> {
    // The client's configured Region, resolved from its configuration (no request); none when it has none.
    const region = await (async () => this.client.config.region())().catch(() => undefined);
    const names = Object.entries(this.attributes).filter(([field, name]) => DEFAULT_ATTRIBUTE_NAMES[field as keyof AttributeNames] !== name);
    const attributes = names.length === 0 ? [] : ['--attributes', JSON.stringify(Object.fromEntries(names))];
    const where = typeof region === 'string' && region !== '' ? ['--region', region] : [];
    return shellCommand(['lambda-idempotency', 'forget', '--table', this.tableName, ...where, ...attributes, '--id', key, '--yes']);
  }

  /**
   * The record of a raw item. The stored outcome is decoded only where it is replayed
   * (`withOutcome`): a refused completion or release, or a takeover, needs the record's state alone. @internal
   */
  protected async toRecord(item: Record<string, AttributeValue> | undefined, withOutcome = true): Promise<IdempotencyRecord | undefined> {
    if (item === undefined) return undefined;
    const a = this.attributes;
    const key = item[a.key]?.S;
    const status = item[a.status]?.S;
    const owner = item[a.owner]?.S;
    const expiration = item[a.expiration]?.N;
    if (key === undefined) return this.malformed('(no key)', `no \`${a.key}\` string`);
    if (status !== 'INPROGRESS' && status !== 'COMPLETED') return this.malformed(key, `\`${a.status}\` is neither INPROGRESS nor COMPLETED`);
    if (owner === undefined) return this.malformed(key, `no \`${a.owner}\` string`);
    if (expiration === undefined) return this.malformed(key, `no \`${a.expiration}\` number`);
    // An INPROGRESS record without a lease (written by hand, or by an older version) is held until its retention.
    const lease = item[a.leaseUntil]?.N;
    // An attribute of a type this store never writes would be read as absent: a `responseOmitted` of
    // `{ S: 'true' }` replayed as `undefined`, a fingerprint of another type as none.
    for (const [name, type] of [
      [a.leaseUntil, 'N'],
      [a.fingerprint, 'S'],
      [a.keyId, 'S'],
      [a.responseOmitted, 'BOOL'],
      [a.errorOmitted, 'BOOL'],
    ] as const) {
      if (item[name] !== undefined && item[name][type] === undefined) return this.malformed(key, `\`${name}\` is not of type ${type}`);
    }
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
      ...(item[a.errorOmitted]?.BOOL ? { errorOmitted: true } : {}),
      ...(error === undefined ? {} : { error }),
    };
  }
}
