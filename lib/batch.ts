import { types } from 'node:util';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type {
  Context,
  DynamoDBRecord,
  DynamoDBStreamEvent,
  KinesisStreamEvent,
  KinesisStreamRecord,
  KinesisStreamRecordPayload,
  SQSEvent,
  SQSRecord,
} from 'aws-lambda';
import { untilAnswer } from './deadline.js';
import { IdempotencyEngine, type IdempotencyLogger, type IdempotencyOptions, runCall } from './engine.js';
import { errorTypeOf, IdempotencyError, type IdempotencyErrorCode, isIdempotencyError } from './errors.js';
import { exactNumber, parseExactJson } from './exact-json.js';
import { isStoredError } from './final-error.js';
import { remainingMillisOf } from './invocation.js';
import { observeAny } from './observability.js';
import { isFunction, logLine, optionChecks, type SharedOptionName, sharedOptionsExcept, validateOptions, wholeNumber } from './options.js';

/** A batch as a Lambda event source mapping delivers it: SQS, Kinesis or DynamoDB Streams records under `Records`. */
export type BatchEvent = SQSEvent | KinesisStreamEvent | DynamoDBStreamEvent;
/** One record of a {@link BatchEvent}, as the record handler, `key` and `parse` receive it (a pipe's flat Kinesis record nested as Lambda nests it). */
export type BatchRecord = SQSRecord | KinesisStreamRecord | DynamoDBRecord;

/** A Kinesis record as an EventBridge pipe delivers it: the fields Lambda nests under `kinesis` sit at the top level. */
export interface PipesKinesisRecord extends Omit<KinesisStreamRecord, 'kinesis'>, KinesisStreamRecordPayload {}

/**
 * What an EventBridge pipe delivers to a Lambda target: its source's records as a bare JSON array
 * (also a batch of one). A pipe's Kinesis records are flat; `idempotentBatch` hands them on in the
 * event source mapping's shape (`record.kinesis.data`), so one record function serves both paths.
 *
 * @example
 * ```ts
 * const event: PipesBatchEvent = [sqsRecord]; // what a pipe from an SQS queue sends
 * await handler(event, context); // { batchItemFailures: [{ itemIdentifier: messageId }] } for the records that failed
 * ```
 */
export type PipesBatchEvent = ReadonlyArray<SQSRecord | PipesKinesisRecord | DynamoDBRecord>;

/** The change a DynamoDB Streams record carries, unmarshalled to plain values; a binary attribute stays the base64 text the stream carries. */
export interface StreamChange {
  readonly eventName: 'INSERT' | 'MODIFY' | 'REMOVE' | undefined;
  readonly keys: Record<string, unknown> | undefined;
  readonly newImage: Record<string, unknown> | undefined;
  readonly oldImage: Record<string, unknown> | undefined;
}

/** What the batch handler answers: the records to deliver again (with `ReportBatchItemFailures` on the event source mapping). */
export interface BatchResponse {
  /**
   * The records that failed, each by its `messageId` (SQS) or sequence number (Kinesis, DynamoDB
   * Streams; an EventBridge pipe's: `eventID`); empty when none failed.
   */
  batchItemFailures: Array<{ itemIdentifier: string }>;
  /** With a tumbling window (Kinesis, DynamoDB Streams): the window's `state` as the event brought it, `{}` when it brought none. */
  state?: { readonly [name: string]: unknown };
}

/** A tumbling window's event: Lambda adds the `window` (and the `state` so far) to a Kinesis or DynamoDB Streams batch. */
type WindowEvent = BatchEvent & { readonly window: { readonly start: string; readonly end: string } };

/**
 * The handler `idempotentBatch` returns. Its answer to a tumbling window's event always carries
 * `state`, so it is also a `KinesisStreamTumblingWindowHandler`.
 *
 * @example
 * ```ts
 * export const handler: KinesisStreamTumblingWindowHandler = idempotentBatch(ship, { store }); // { batchItemFailures, state }
 * ```
 */
export interface BatchHandler {
  (event: WindowEvent, context: Context): Promise<BatchResponse & { state: NonNullable<BatchResponse['state']> }>;
  (event: BatchEvent | PipesBatchEvent, context: Context): Promise<BatchResponse>;
}

/**
 * The state of a tumbling window's event. Lambda counts a response without `state` as a failed
 * invocation, which would hold the shard at this batch: the helper gives the state back unchanged
 * (it cannot aggregate); a handler that aggregates returns its own. A window whose event brings no
 * state object (a fresh window's `null`) gets an empty one: there is nothing to keep, and a missing
 * `state` would fail the invocation.
 */
const windowStateOf = (event: unknown): BatchResponse['state'] => {
  const { window, state } = (event ?? {}) as { window?: unknown; state?: unknown };
  if (window === undefined || window === null) return undefined;
  return typeof state === 'object' && state !== null ? (state as BatchResponse['state']) : {};
};

/**
 * What middy (6 and 7) passes a handler beside the event and the context: a `signal` it aborts at
 * its early timeout. Not in the handler's type, which stays assignable to `SQSHandler` (whose third
 * parameter is the runtime's callback, which has no `signal`).
 */
interface BatchHandlerOptions {
  readonly signal?: AbortSignal | undefined;
}

/** The function `idempotentBatch` runs once per distinct record: the parsed message, the record and the invocation's context. */
export type RecordHandler<TMessage, TResult> = (message: TMessage, record: BatchRecord, context: Context) => Promise<TResult> | TResult;

/** The shared options `idempotentBatch` replaces with its own (`key`, `fingerprint`) or has no use for. */
const BATCH_REPLACED = ['key', 'fingerprint', 'onMissingKey'] as const satisfies readonly SharedOptionName[];

const BATCH_OPTIONS = optionChecks(sharedOptionsExcept(BATCH_REPLACED), {
  key: isFunction,
  fingerprint: isFunction,
  parse: isFunction,
  concurrency: wholeNumber(1),
  throwOnFullBatchFailure: (value) => (typeof value === 'boolean' ? undefined : 'must be a boolean'),
});

/** The options of `idempotentBatch`: the shared options but `onMissingKey`, its own `key` and `fingerprint` of the message, and those of a batch. */
export interface IdempotentBatchOptions<TMessage> extends Omit<IdempotencyOptions<TMessage>, (typeof BATCH_REPLACED)[number]> {
  /**
   * Selects the key from the parsed message. A message whose key is missing (as for `makeIdempotent`'s
   * `key`: also an object or array key with a top-level part `undefined`) is poison: reported failed,
   * never run, and logged with the part's name, so that its redeliveries reach the dead-letter queue
   * (a stream's, the on-failure destination, once the event source mapping's retries or record age run out).
   * @default SQS and Kinesis: the whole message (a producer's resend gets a new message id);
   * DynamoDB Streams: the record's `eventID` (the same change made again is another change)
   */
  readonly key?: ((message: TMessage, record: BatchRecord) => unknown) | undefined;
  /** Selects the payload a duplicate must match (e.g. the amount); a different one fails with `PAYLOAD_MISMATCH`. */
  readonly fingerprint?: ((message: TMessage) => unknown) | undefined;
  /**
   * Reads a record's message, synchronously, in place of the built-in parsing: for payloads that
   * are not JSON (text, CSV, XML, Avro, Protocol Buffers) or records another middleware has already
   * parsed. What it returns is the message the record handler, `key` and `fingerprint` receive; a
   * record it throws for is poison (reported failed, never run). Kinesis data arrives base64-encoded;
   * a binary message (a Buffer, a Uint8Array) is keyed by its bytes, as their base64 text: return
   * one kind for every record, since a text message equal to that text shares the key.
   * @default SQS: the body as JSON; Kinesis: the data as UTF-8 JSON (data that is not UTF-8, or gzip-compressed, is poison); a leading byte order mark dropped; DynamoDB Streams: the change, unmarshalled (64-bit numbers kept exact)
   */
  readonly parse?: ((record: BatchRecord) => TMessage) | undefined;
  /** How many records of a standard SQS batch run at once (FIFO: groups at once): a whole number, 1 or more. @default 10 */
  readonly concurrency?: number | undefined;
  /**
   * When no record of a batch succeeded, throw (an `AggregateError` of the records' errors)
   * instead of returning every record as failed, so that Lambda retries the batch also where the
   * event source does not report batch item failures. @default true
   */
  readonly throwOnFullBatchFailure?: boolean | undefined;
}

/**
 * What a record's call is keyed by: the message, with the record so the key selector can see both.
 * A stream change's eventID is read before `parse` sees the record: what `parse` does to the
 * record never moves a key.
 */
interface Input<TMessage> {
  readonly message: TMessage;
  readonly record: BatchRecord;
  readonly change?: string | undefined;
}

interface Item<TMessage> {
  readonly id: string;
  readonly record: BatchRecord;
  /** Messages that could not be parsed or keyed are poison: failed, never run. */
  readonly input?: Input<TMessage>;
  readonly key?: string | undefined;
  readonly poison?: string;
  /** The FIFO message group, read before `parse` sees the record. */
  readonly group?: string;
}

type Source = 'sqs' | 'kinesis' | 'dynamodb';

/** Who delivered the batch: a Lambda event source mapping (`{ Records }`) or an EventBridge pipe (a bare array). */
type Delivery = 'mapping' | 'pipe';

/** The source an event or a record names, for a refusal to say what it got: SNS spells it `EventSource`. */
const namedSource = (value: unknown): unknown => {
  const named = value as { eventSource?: unknown; EventSource?: unknown } | null | undefined;
  return named?.eventSource ?? named?.EventSource;
};

function sourceOf(record: BatchRecord, index: number, delivery: Delivery): Source {
  const source = (record as { eventSource?: unknown } | null)?.eventSource;
  if (source === 'aws:sqs') return 'sqs';
  if (source === 'aws:kinesis') return 'kinesis';
  if (source === 'aws:dynamodb') return 'dynamodb';
  if (delivery === 'pipe' && typeof source !== 'string') {
    // Acknowledging these as done would drop the messages: without the record, no failure can be reported.
    throw new TypeError(
      `idempotentBatch: item ${index} of the EventBridge Pipes array is not an SQS, Kinesis or DynamoDB Streams record (it has no \`eventSource\`): ` +
        "a target input transformer or an enrichment reshaped it, and the id that reports the record's failure went with it. " +
        'Deliver the records as the source gives them (no target input transformer) and select the key with `key`, or read the payload with `parse`.',
    );
  }
  throw new TypeError(`idempotentBatch: unsupported event source ${JSON.stringify(namedSource(record))}: expected SQS, Kinesis or DynamoDB Streams records.`);
}

/** The member a batch item failure names: a pipe names a stream record by its `eventID`, Lambda by its sequence number. */
const IDENTIFIER: Record<Delivery, Record<Source, string>> = {
  mapping: { sqs: 'messageId', kinesis: 'kinesis.sequenceNumber', dynamodb: 'dynamodb.SequenceNumber' },
  pipe: { sqs: 'messageId', kinesis: 'eventID', dynamodb: 'eventID' },
};

/** The member at a dotted path (`kinesis.sequenceNumber`), `undefined` where a part is missing. */
const memberAt = (record: BatchRecord, path: string): unknown =>
  path.split('.').reduce<unknown>((value, name) => (value as Record<string, unknown> | null | undefined)?.[name], record);

const DELIVERER: Record<Delivery, string> = { mapping: "Lambda's event source mapping", pipe: 'an EventBridge pipe' };

/** The id a batch item failure names. Without it a failure could not be reported: Lambda would read the answer as a failed batch, or as no failure at all. */
function identify(record: BatchRecord, source: Source, index: number, delivery: Delivery): string {
  const path = IDENTIFIER[delivery][source];
  const id = memberAt(record, path);
  if (typeof id === 'string' && id !== '') return id;
  throw new TypeError(
    `idempotentBatch: record ${index} has no \`${path}\`, the identifier a batch item failure reports: expected the records ${DELIVERER[delivery]} delivers.`,
  );
}

/** A pipe's flat Kinesis record in the event source mapping's shape: `parse`, `key` and the record function read one shape whichever path delivered it. */
function nested(record: BatchRecord): BatchRecord {
  if ((record as { eventSource?: unknown }).eventSource !== 'aws:kinesis' || 'kinesis' in record) return record;
  const { kinesisSchemaVersion, partitionKey, sequenceNumber, data, approximateArrivalTimestamp, ...rest } = record as PipesKinesisRecord;
  return { ...rest, kinesis: { kinesisSchemaVersion, partitionKey, sequenceNumber, data, approximateArrivalTimestamp } };
}

const ATTRIBUTE_TYPES = new Set(['S', 'N', 'B', 'SS', 'NS', 'BS', 'M', 'L', 'NULL', 'BOOL']);

/** An image as DynamoDB Streams delivers it: each attribute an object with one type key (`{ S: 'x' }`). */
const isMarshalled = (image: unknown): boolean =>
  image === undefined ||
  (image !== null &&
    typeof image === 'object' &&
    Object.values(image).every(
      (value) => value !== null && typeof value === 'object' && Object.keys(value).length === 1 && ATTRIBUTE_TYPES.has(Object.keys(value)[0]!),
    ));

/**
 * Kinesis data as Lambda and EventBridge Pipes deliver it: padded standard base64. Text a middleware
 * decoded and could not parse as an object (`@middy/event-normalizer` leaves a JSON string holding
 * JSON, a number or plain text as text) is no base64: decoded a second time, it would be poison
 * named for an encoding the producer never used, or another message.
 */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const isBase64 = (text: string): boolean => text.length % 4 === 0 && BASE64.test(text);

/** Kinesis data a middleware decoded to text: the field is still a string, but no longer base64. */
const DECODED = 'decoded';

/** The field a middleware such as `@middy/event-normalizer` has already parsed, if any. */
function parsedField(record: BatchRecord, source: Source): string | undefined {
  if (source === 'sqs') return typeof (record as SQSRecord).body === 'string' ? undefined : 'body';
  if (source === 'kinesis') {
    const { data } = (record as KinesisStreamRecord).kinesis;
    return typeof data !== 'string' ? 'kinesis.data' : isBase64(data) ? undefined : DECODED;
  }
  const change = (record as DynamoDBRecord).dynamodb ?? {};
  return (['Keys', 'NewImage', 'OldImage'] as const).map((name) => (isMarshalled(change[name]) ? undefined : `dynamodb.${name}`)).find(Boolean);
}

/**
 * Refuses a record another middleware has already parsed. Accepting its value would key messages
 * by numbers JSON.parse rounded (two ids differing past the 16th digit would share a key) and
 * unmarshall images twice; every record would otherwise be reported as poison.
 */
function assertUnparsed(record: BatchRecord, source: Source, index: number, delivery: Delivery): void {
  const parsed = parsedField(record, source);
  if (parsed === undefined) return;
  const decoded = parsed === DECODED;
  const field = decoded ? 'kinesis.data' : parsed;
  // A payload that is not there was never parsed: saying a middleware parsed it would send the reader to look for one.
  if (memberAt(record, field) === undefined) {
    throw new TypeError(`idempotentBatch: record ${index} has no \`${field}\`, the payload it carries: expected the records ${DELIVERER[delivery]} delivers.`);
  }
  const deliverer = delivery === 'pipe' ? 'an EventBridge pipe' : 'Lambda';
  const by =
    delivery === 'pipe'
      ? "the pipe's target input transformer (such as `<aws.pipes.event.json>`) or a middleware (such as @middy/event-normalizer) decoded it"
      : 'a middleware (such as @middy/event-normalizer) ran first';
  const what = decoded ? `is text, not the base64 ${deliverer} delivers` : `is already parsed, not as ${deliverer} delivers it`;
  throw new TypeError(
    `idempotentBatch: record ${index}'s \`${field}\` ${what}: ${by}. ` +
      `idempotentBatch parses each record itself, keeping 64-bit numbers exact: remove that ${delivery === 'pipe' ? 'transformer or middleware' : 'middleware from this handler'}.`,
  );
}

/**
 * Kinesis data as text, refusing bytes that are not UTF-8: decoded with replacement characters,
 * two messages that differ only there (JSON a producer wrote in Latin-1) would share one key, and
 * the second would never run. A leading byte order mark (.NET writes one) is dropped: JSON.parse
 * refuses it, which would make the record poison forever, and a producer's retry without it is
 * the same message.
 */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** An SQS body that starts with U+FEFF, a byte order mark decoded as text, is the same JSON as without it. */
const withoutBom = (text: string): string => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

/** Node's code for bytes a fatal TextDecoder refuses. */
const NOT_UTF8 = 'ERR_ENCODING_INVALID_ENCODED_DATA';

/**
 * The bytes a Kinesis Producer Library aggregated record starts with. They are no UTF-8 either,
 * but named for what they are, the poison log points at the producer rather than at an encoding.
 */
const KPL_MAGIC = Buffer.from([0xf3, 0x89, 0x9a, 0xc2]);
const KPL_AGGREGATED = 'KPL_AGGREGATED';

/**
 * The bytes gzip data starts with: a CloudWatch Logs subscription writes every record so. No
 * UTF-8 either (0x8b cannot start a character), but named, the log points at the compression.
 */
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const GZIPPED = 'GZIPPED';

function parse(record: BatchRecord, source: Source): unknown {
  if (source === 'sqs') return parseExactJson(withoutBom((record as SQSRecord).body));
  if (source === 'kinesis') {
    const bytes = Buffer.from((record as KinesisStreamRecord).kinesis.data, 'base64');
    if (bytes.subarray(0, KPL_MAGIC.length).equals(KPL_MAGIC)) throw Object.assign(new Error('KPL-aggregated record'), { code: KPL_AGGREGATED });
    if (bytes.subarray(0, GZIP_MAGIC.length).equals(GZIP_MAGIC)) throw Object.assign(new Error('gzip-compressed record'), { code: GZIPPED });
    return parseExactJson(UTF8.decode(bytes));
  }
  const change = (record as DynamoDBRecord).dynamodb ?? {};
  const image = (value: unknown) => (value ? unmarshall(value as Record<string, AttributeValue>, { wrapNumbers: exactNumber }) : undefined);
  return { eventName: (record as DynamoDBRecord).eventName, keys: image(change.Keys), newImage: image(change.NewImage), oldImage: image(change.OldImage) };
}

/**
 * A binary message (what a `parse` of Kinesis data returns) keyed by its bytes, as base64: JSON
 * would write a Buffer as an array of numbers and a Uint8Array as an object of index members, two
 * keys for the same bytes, the second costing seconds per megabyte.
 */
const bytesAsText = (message: unknown): unknown =>
  ArrayBuffer.isView(message) ? Buffer.from(message.buffer, message.byteOffset, message.byteLength).toString('base64') : message;

/** What the built-in parsing's own failures say, by their `code`. */
const UNPARSEABLE = new Map<unknown, string>([
  [NOT_UTF8, 'unparseable payload: data that is not UTF-8'],
  [KPL_AGGREGATED, 'unparseable payload: a KPL-aggregated record (de-aggregate it in the `parse` option)'],
  [GZIPPED, 'unparseable payload: gzip-compressed data, as a CloudWatch Logs subscription writes it (decompress it in the `parse` option)'],
]);

// Only what went wrong, never the payload: parse errors quote it, so they are named, not printed;
// the path at which a key holds a value JSON refuses is made of the message's member names, which may be data.
const describe = (error: unknown): string =>
  error instanceof IdempotencyError
    ? error.code === 'INVALID_KEY'
      ? error.message.replace(/ at \$.*, which JSON /s, ', which JSON ')
      : error.message
    : error instanceof SyntaxError
      ? 'unparseable payload'
      : (UNPARSEABLE.get((error as { code?: unknown } | null)?.code) ?? `unreadable record (${errorTypeOf(error)})`);

/** The code of an `IdempotencyError`, else `undefined`. Never throws, whatever the record function threw. */
const codeOf = (error: unknown): IdempotencyErrorCode | undefined => (isIdempotencyError(error) ? error.code : undefined);

/**
 * Why a started record failed, and how loud: the record function's error by its type, the
 * library's by its code and message (which quote no payload), an error an earlier attempt stored
 * as final by its type, any other error the call met (a `now` that returns no number) by its type.
 * A key another consumer holds is a warning.
 */
const failureOf = (error: unknown, threw: boolean, ran: boolean): [reason: string, level: 'warn' | 'error'] => {
  const code = codeOf(error);
  // A nested idempotent call's rejection is named by its code too: it says which call to look at.
  if (threw) return [`the record function threw (${errorTypeOf(error)}${code === undefined ? '' : ` ${code}`})`, 'error'];
  if (code !== undefined) return [describe(error), code === 'IN_PROGRESS' ? 'warn' : 'error'];
  // An atomic call runs its (pure) function before its commit meets the stored error.
  if (isStoredError(error)) return [`the error an earlier attempt stored as final${ran ? '' : ', not run again'} (${errorTypeOf(error)})`, 'error'];
  return [`the idempotent call failed ${ran ? 'after' : 'before'} the record function ran (${errorTypeOf(error)})`, 'error'];
};

/**
 * Rejections that mean the record's effect already happened, so reporting it failed would only bring
 * it back (to run again once the record's lease ends): a completed record whose result JSON could not
 * hold, and, after an in-batch twin succeeded, the twin's record still INPROGRESS because its
 * completion write failed. A different payload is still `PAYLOAD_MISMATCH`. Only as the record's
 * own call meets them: the record function's own rejection is its failure.
 */
const alreadyDone = (error: unknown, twinSucceeded: boolean): boolean => {
  const code = codeOf(error);
  return code === 'RESPONSE_NOT_STORED' || (twinSucceeded && code === 'IN_PROGRESS');
};

/**
 * Lambda ends an invocation at its deadline as a failure of the whole batch: the records done come
 * back with the rest, and a stream spends one of its retries (past its quota it discards the
 * batch, records never tried among them). So a record starts only while more time is left than the
 * slowest record of this batch took, or has taken so far (records that run side by side: one still
 * running shows how long a record can take), and the time kept for the answer ({@link untilAnswer}:
 * building it, a few ms on 10,000 records, as a store request keeps it);
 * the rest are reported failed, unstarted, in time to answer.
 * A context that read time left when the batch began and reads none now is past its deadline
 * (a busy event loop, a slow CPU): nothing more starts. Only one that read none from the start
 * sets no deadline (a stub in a unit test). Once a wrapper has answered the invocation (middy's
 * early timeout aborts the `signal` it passes its handler), nothing more starts either: the
 * invocation is over, and a record started now would run in an environment Lambda freezes, to
 * thaw past its lease beside the redelivery that took its key over.
 */
function deadlineOf(context: Context, now: () => number, signal: AbortSignal | undefined) {
  let slowest = 0;
  /** The start times of the records running now (at most `concurrency`). */
  const running = new Set<{ readonly start: number }>();
  const bounded = remainingMillisOf(context) !== undefined;
  const longest = (): number => {
    const at = now();
    let millis = slowest;
    for (const { start } of running) millis = Math.max(millis, at - start);
    return millis;
  };
  return {
    allows: (): boolean => {
      if (signal?.aborted === true) return false;
      const left = remainingMillisOf(context) ?? (bounded ? 0 : Number.POSITIVE_INFINITY);
      return untilAnswer(left) > longest();
    },
    time: <T>(run: () => Promise<T>): Promise<T> => {
      const started = { start: now() };
      running.add(started);
      return run().finally(() => {
        running.delete(started);
        slowest = Math.max(slowest, now() - started.start);
      });
    },
  };
}

/**
 * Runs `tasks` with at most `limit` at once, each only while `canStart()` says so; how many it
 * started (those after are left to the caller).
 */
async function pool(tasks: Array<() => Promise<void>>, limit: number, canStart: () => boolean = () => true): Promise<number> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length && canStart()) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return next;
}

/**
 * Turns a per-record function into an idempotent batch handler for SQS, Kinesis and DynamoDB
 * Streams, returning `{ batchItemFailures }` (enable `reportBatchItemFailures` on the event source).
 * It takes an event source mapping's `{ Records }` and the bare array an EventBridge pipe sends a
 * Lambda target: the same message gets the same key either way; a pipe's failures are named by
 * `messageId` (SQS) or `eventID` (Kinesis, DynamoDB Streams), and its flat Kinesis records reach the
 * record function in the event source mapping's shape.
 * Each record runs through the idempotency engine, keyed by its parsed payload unless `key` selects
 * a business key; duplicates inside one batch run once and share the outcome. SQS standard records
 * run with bounded concurrency; FIFO records run in order per message group, and a failure fails
 * the rest of its group unprocessed; stream records run in order and the batch stops at the first
 * failure. Poison records (unparseable, no key) are reported failed and logged, never retried inline.
 * A record starts only while more time is left before the deadline than the slowest record took
 * (or one still running has taken so far), with a tenth of it (at most 100 ms) kept for the answer;
 * the rest are reported failed unstarted, so the batch answers instead of timing out.
 * When no record succeeded, it throws an `AggregateError` of their errors instead (unless
 * `throwOnFullBatchFailure: false`), so the batch comes back even without `reportBatchItemFailures`.
 * With a tumbling window it gives the window's `state` back unchanged, which Lambda requires.
 *
 * @example
 * ```ts
 * export const handler = idempotentBatch(async (order: Order) => ship(order), { store, key: (order) => order.orderId });
 * ```
 */
export function idempotentBatch<TMessage = unknown, TResult = unknown>(
  // Not inferred: from a function that returns a value for some messages and a promise of another type for others, it would be the promise's, and the value would not compile.
  recordHandler: RecordHandler<TMessage, NoInfer<TResult>>,
  options: IdempotentBatchOptions<TMessage>,
): BatchHandler {
  if (typeof recordHandler !== 'function') throw new TypeError('idempotentBatch: the first argument must be the record handler.');
  validateOptions('idempotentBatch', options, BATCH_OPTIONS);
  const { key, fingerprint, parse: parseOption, concurrency = 10, throwOnFullBatchFailure = true, ...common } = options;
  const engine = new IdempotencyEngine<Input<TMessage>, Context>(
    'idempotentBatch',
    {
      ...common,
      // A stream change is one event: equal content at another time is another change, so its eventID
      // is the key. A queue message is keyed by its content, which a producer's resend repeats.
      key: key ? (input) => key(input.message, input.record) : (input) => ('change' in input ? input.change : bytesAsText(input.message)),
      ...(fingerprint ? { fingerprint: (input: Input<TMessage>) => fingerprint(input.message) } : {}),
    },
    observeAny,
    // The default key passes the message on: a message of null members is a message like any other.
    key !== undefined,
  );
  const log: IdempotencyLogger = common.logger ?? console;

  // Two declared parameters: Lambda's nodejs24.x runtime (and nodejs22.x on Managed Instances)
  // refuses to load a handler that declares three or more (`length`), as a callback-style handler.
  async function batchHandler(event: BatchEvent | PipesBatchEvent, context: Context, ...[options]: [BatchHandlerOptions?]): Promise<BatchResponse> {
    // An EventBridge pipe sends a Lambda target its batch as a bare array; an event source mapping, as `{ Records }`.
    const delivery: Delivery = Array.isArray(event) ? 'pipe' : 'mapping';
    const delivered = (delivery === 'pipe' ? event : (event as { Records?: unknown } | undefined)?.Records) as BatchRecord[] | undefined;
    // Acknowledging an event of another source (Kafka, Amazon MQ) as an empty batch would drop its messages.
    if (!Array.isArray(delivered)) {
      const source = namedSource(event);
      const named = typeof source === 'string' ? ` (its eventSource is ${JSON.stringify(source)})` : '';
      throw new TypeError(
        `idempotentBatch: the event${named} has no \`Records\` array and is no array of records: expected an SQS, Kinesis or DynamoDB Streams event, from an event source mapping or an EventBridge pipe.`,
      );
    }
    const state = windowStateOf(event);
    const response = (batchItemFailures: BatchResponse['batchItemFailures']): BatchResponse =>
      state === undefined ? { batchItemFailures } : { batchItemFailures, state };
    // A tumbling window's last invocation may bring no records, and needs its state back all the same;
    // an empty array holds no message that answering could drop.
    if (delivered.length === 0) return response([]);
    const sources = delivered.map((record, index) => sourceOf(record, index, delivery));
    const source = sources[0]!;
    const other = sources.findIndex((each) => each !== source);
    if (other !== -1) {
      const mixed = [delivered[0]!, delivered[other]!].map((record) => (record as { eventSource?: string }).eventSource).join(' and ');
      throw new TypeError(`idempotentBatch: the batch mixes records of ${mixed}; an event source mapping or a pipe delivers records of one source.`);
    }
    const records = delivery === 'pipe' ? delivered.map(nested) : delivered;
    const fifo = source === 'sqs' && ((records[0] as SQSRecord).eventSourceARN?.endsWith('.fifo') ?? false);
    const items: Array<Item<TMessage>> = records.map((record, index) => {
      const id = identify(record, source, index, delivery);
      const group = fifo ? ((record as SQSRecord).attributes?.MessageGroupId ?? '') : undefined;
      const change = source === 'dynamodb' ? { change: (record as DynamoDBRecord).eventID } : {};
      if (parseOption === undefined) assertUnparsed(record, source, index, delivery);
      let message: TMessage;
      try {
        message = parseOption === undefined ? (parse(record, source) as TMessage) : parseOption(record);
      } catch (error) {
        return { id, record, group, poison: parseOption === undefined ? describe(error) : `the parse option threw (${errorTypeOf(error)})` };
      }
      if (parseOption !== undefined && typeof (message as { then?: unknown } | null)?.then === 'function') {
        // Keyed by a promise, every record would share one key; run on one, each would get a promise.
        // Never an unhandled rejection: this TypeError reports it. Another thenable's `then` is not
        // called: it may start work (a query builder runs its query) that was never meant to run.
        if (types.isPromise(message)) message.catch(() => undefined);
        throw new TypeError('idempotentBatch: the parse option returned a promise: it must return the message itself, synchronously.');
      }
      try {
        const input = { message, record, ...change };
        return { id, record, group, input, key: engine.keyOf(input, context) };
      } catch (error) {
        // A key the record lacks or that cannot be hashed is the record's fault; any other error (no namespace) is the function's.
        if (!(error instanceof IdempotencyError)) throw error;
        // The default key of a queue message is the message: then nothing is what parse returned, or
        // what the message's JSON holds, and no selector of the user's is to blame.
        const empty = key === undefined && source !== 'dynamodb' && error.code === 'KEY_MISSING';
        const poison = !empty
          ? describe(error)
          : parseOption !== undefined
            ? 'KEY_MISSING: the parse option returned no message (undefined, null or empty)'
            : 'KEY_MISSING: the message holds no value (its JSON is null or empty), and the default key is the whole message';
        return { id, record, group, poison };
      }
    });

    // In-batch duplicates (same record key) run one after another: after a success the next one
    // replays it (or meets PAYLOAD_MISMATCH); after a failure it fails too, unrun, for redelivery.
    // Not after a rejection of the earlier record's own payload (PAYLOAD_MISMATCH, a fingerprint that
    // cannot be read): it says nothing of this one, which meets the key's record itself, and
    // failing it would send a message whose effect happened to the dead-letter queue with its
    // conflicting twin, both coming back in one batch on every redelivery.
    const runs = new Map<string, Promise<'succeeded' | 'failed' | 'rejected'>>();
    const logPoison = (item: Item<TMessage>, reason: string): void =>
      logLine(log, 'error', 'poison record reported as failed', { itemIdentifier: item.id, reason });
    // The answer names a failed record but not why, and no error reaches Lambda's log as it would
    // from a handler of one message: without this line a record that keeps failing (its function's
    // error, a conflict, a key another consumer holds) ends in the dead-letter queue unexplained.
    // Its error's type or code, never its message, which may quote the payload. A key held
    // elsewhere is a warning: the record comes back once that attempt has ended.
    const logFailure = (item: Item<TMessage>, reason: string, level: 'warn' | 'error' = 'error'): void =>
      logLine(log, level, 'record reported as failed', { itemIdentifier: item.id, reason });
    const runItem = (item: Item<TMessage>): Promise<void> => {
      if (item.poison !== undefined) {
        logPoison(item, item.poison);
        return Promise.reject(new Error(item.poison));
      }
      const input = item.input!;
      const previous = runs.get(item.key!);
      let rejected = false;
      const current = (async () => {
        const twin = await previous;
        const twinSucceeded = twin === 'succeeded';
        if (twin === 'failed') {
          logFailure(item, 'an in-batch duplicate of this record failed before it (not run)');
          throw new Error('an in-batch duplicate of this record failed');
        }
        let ran = false;
        /** What the record function threw, if it did: only that error is its own failure. */
        let thrown: { readonly error: unknown } | undefined;
        try {
          // The key computed to find poison records is the call's: the message is not hashed twice.
          await runCall(
            engine,
            input,
            context,
            async () => {
              ran = true;
              try {
                return await recordHandler(input.message, item.record, context);
              } catch (error) {
                thrown = { error };
                throw error;
              }
            },
            item.key,
          );
        } catch (error) {
          // With the key known, a key error before the record function runs is the fingerprint's: the
          // message alone decides it, so every redelivery would fail the same way.
          const code = codeOf(error);
          const poisoned = !ran && code === 'INVALID_KEY';
          if (poisoned) logPoison(item, `fingerprint: ${describe(error)}`);
          // An atomic call answers from the record its commit met, or that it read after its function
          // threw: another error than the function's, which judges the record as a claim would have.
          const own = thrown !== undefined && thrown.error === error;
          // A payload the key's record refuses, before the function ran or (atomic) at its commit.
          if ((!ran && code === 'INVALID_KEY') || (!own && code === 'PAYLOAD_MISMATCH')) rejected = true;
          // The record function's own rejection is its failure, whatever its code: a nested
          // idempotent call's RESPONSE_NOT_STORED or IN_PROGRESS says nothing of this record's work.
          if (own || !alreadyDone(error, twinSucceeded)) {
            if (!poisoned) logFailure(item, ...failureOf(error, own, ran));
            throw error;
          }
        }
      })();
      // A rejection is the record's own: the next duplicate follows what came before it (a success
      // whose completion write failed leaves the key INPROGRESS, which only a success explains).
      runs.set(
        item.key!,
        current.then(
          () => 'succeeded',
          async () => (rejected ? ((await previous) ?? 'rejected') : 'failed'),
        ),
      );
      return current;
    };

    const failed = new Set<string>();
    /**
     * Messages done by one of their copies: a message received twice in one batch whose second copy
     * failed or was not started is done all the same (that copy would replay the first), never named.
     */
    const done = new Set<string>();
    const errors: unknown[] = [];
    const deadline = deadlineOf(context, engine.now, options?.signal);
    /** Records not started for the deadline, and those after them that a stream or a FIFO group leaves: reported failed. */
    const unstarted = new Set<Item<TMessage>>();
    /** Runs a record unless the deadline is too near: `late` leaves it, and what follows it, unstarted. */
    const attempt = (item: Item<TMessage>): Promise<'done' | 'failed' | 'late'> => {
      const fail = (error: unknown) => {
        failed.add(item.id);
        errors.push(error);
      };
      if (!deadline.allows()) {
        fail(new Error("not started: the invocation's deadline is near"));
        return Promise.resolve('late');
      }
      return deadline
        .time(() => runItem(item))
        .then(
          () => {
            done.add(item.id);
            return 'done';
          },
          (error: unknown) => {
            fail(error);
            return 'failed';
          },
        );
    };
    /**
     * Failed records come back; when none succeeded, the batch is thrown back whole: an event source
     * without `reportBatchItemFailures` ignores the answer and would delete every message.
     */
    const answer = (failures: Array<Item<TMessage>>, noneSucceeded: boolean): BatchResponse => {
      // A copy of a message done by another copy is not reported, nor counted.
      const notStarted = [...unstarted].filter((item) => !done.has(item.id)).length;
      if (notStarted > 0) {
        logLine(log, 'warn', "records not started, the invocation's deadline is near; reported as failed", { notStarted });
      }
      if (noneSucceeded && throwOnFullBatchFailure) {
        // A stream batch stops at its first failure: the records after it did not fail, they never ran.
        // So does a FIFO group at its first failure: the records held back behind it never ran.
        const what =
          source !== 'sqs' && records.length > 1
            ? `the first record of the stream batch failed, and nothing after it ran (${records.length} records)`
            : fifo && errors.length < records.length
              ? `no record of the batch succeeded (${records.length}): ${errors.length} failed, the others were held back behind a failure of their message group`
              : `every record of the batch failed (${records.length})`;
        throw new AggregateError(errors, `idempotentBatch: ${what}; the batch is thrown back to be retried whole.`);
      }
      // A message received twice in one batch (its visibility timeout lapsed while Lambda was still
      // gathering the batch) is one message: named once.
      return response([...new Set(failures.map((item) => item.id))].map((itemIdentifier) => ({ itemIdentifier })));
    };
    if (source !== 'sqs') {
      // Streams: in order; report the first failure, Lambda resumes from it. A pipe is told of every
      // record from it on: its documentation does not say that it resumes from the first one named,
      // and a record never run that it took for done would be lost.
      for (const [index, item] of items.entries()) {
        const outcome = await attempt(item);
        if (outcome === 'late') for (const late of items.slice(index)) unstarted.add(late);
        if (outcome !== 'done') return answer(delivery === 'pipe' ? items.slice(index) : [item], index === 0);
      }
      return answer([], false);
    }
    if (!fifo) {
      // Once the deadline is too near for one record, it is for every record after it (the time
      // left only shrinks, the longest record only grows): those are reported in one pass. One by
      // one through the pool, thousands of them (a batch of 10,000) would hold the event loop for
      // hundreds of milliseconds past the cut-off, and the records still running, and the answer,
      // with it, past the deadline.
      const started = await pool(
        items.map((item) => async () => {
          if ((await attempt(item)) === 'late') unstarted.add(item);
        }),
        concurrency,
        deadline.allows,
      );
      const late = new Error("not started: the invocation's deadline is near");
      for (const item of items.slice(started)) {
        failed.add(item.id);
        errors.push(late);
        unstarted.add(item);
      }
    } else {
      const groups = new Map<string, Array<Item<TMessage>>>();
      for (const item of items) {
        groups.set(item.group!, [...(groups.get(item.group!) ?? []), item]);
      }
      const runGroup = async (group: Array<Item<TMessage>>): Promise<void> => {
        for (let i = 0; i < group.length; i++) {
          const outcome = await attempt(group[i]!);
          if (outcome === 'late') for (const late of group.slice(i)) unstarted.add(late);
          if (outcome !== 'done') {
            // Order within a group must hold: the rest go back to the queue unprocessed.
            for (const rest of group.slice(i)) failed.add(rest.id);
            return;
          }
        }
      };
      await pool(
        [...groups.values()].map((group) => () => runGroup(group)),
        concurrency,
      );
    }
    const failures = items.filter((item) => failed.has(item.id) && !done.has(item.id));
    return answer(failures, failures.length === items.length);
  }
  // A window's event always has its state answered (`windowStateOf`), which the first signature states.
  return batchHandler as BatchHandler;
}
