import { errorTypeOf } from './errors.js';
import { namespaceOf } from './key.js';
import { checkOptions, isBoolean, isFunction, type OptionCheck } from './options.js';

/**
 * Idempotency events for a listener of your own, or as CloudWatch lines (`cloudWatchLines`): Embedded
 * Metric Format (EMF) metrics and structured logs. Off by default. Nothing names a key or a payload.
 */

/** What happened to one call. */
export type IdempotencyEvent =
  | 'miss' // no live record: this attempt claimed the key
  | 'takeover' // claimed over an INPROGRESS record whose lease had ended
  | 'replay' // a duplicate answered with the stored outcome
  | 'cacheReplay' // … from the local cache, with no request
  | 'inProgress' // a duplicate rejected while another attempt holds the key
  | 'payloadMismatch'
  | 'superseded' // this attempt's record was taken over (it then returned or threw); nothing overwritten or deleted
  | 'storeFailure' // the store could not be reached, or its record (or stored outcome) could not be read; nothing ran (in atomic mode, the function had already run)
  | 'bookkeepingFailure'; // completion or release failed after the function ran, or its record was gone when its completion came

/** CloudWatch metric name of each event; the CDK dashboard and alarms read them from here. @internal */
export const METRIC_NAMES: Readonly<Record<IdempotencyEvent, string>> = {
  miss: 'Misses',
  takeover: 'Takeovers',
  replay: 'Replays',
  cacheReplay: 'CacheReplays',
  inProgress: 'InProgressRejections',
  payloadMismatch: 'PayloadMismatches',
  superseded: 'Superseded',
  storeFailure: 'StoreFailures',
  bookkeepingFailure: 'BookkeepingFailures',
};

/** Where an event happened. */
export interface IdempotencyEventDetail {
  /** The record namespace: the function, or the `name` option. */
  readonly namespace: string;
  /** The record id (`<namespace>#<hash>`): finds the record (the CLI's `--id`) without revealing the key. */
  readonly recordId: string;
  /** When it happened, epoch milliseconds, from the call's clock (the `now` option). */
  readonly time: number;
}

/**
 * Receives each idempotency event, synchronously. What it throws (or the promise it returns rejects
 * with) never changes a call's outcome; the first failure is logged through the `logger` option.
 *
 * @example
 * ```ts
 * // Powertools' Metrics: addMetric(name, unit, value); its own namespace and dimensions, not those addMonitoring watches.
 * const observability: IdempotencyListener = (event) => metrics.addMetric(event, MetricUnit.Count, 1);
 * ```
 */
export type IdempotencyListener = (event: IdempotencyEvent, detail: IdempotencyEventDetail) => void;

/** Options of {@link cloudWatchLines}. */
export interface ObservabilityOptions {
  /**
   * One EMF line per event (metrics `Misses`, `Replays`, `Takeovers`, …, dimension `Function`), with the `timestamp` and `level` of
   * the event's log line, so that a function logging JSON at `WARN` or `ERROR` keeps the metrics of failures (and so its alarms).
   * @default true (off in the deprecated object form of the `observability` option)
   */
  readonly metrics?: boolean | undefined;
  /**
   * One structured JSON log line per event, with its `timestamp` (RFC 3339), at `level` `ERROR` for `superseded`, `storeFailure` and
   * `bookkeepingFailure`, `WARN` for `takeover` and `payloadMismatch`, `INFO` for the others. @default false
   */
  readonly logs?: boolean | undefined;
  /** CloudWatch metric namespace. @default 'LambdaIdempotency' */
  readonly metricNamespace?: string | undefined;
  /** Where lines go; a promise it returns that rejects is logged once, as a listener's failure is. @default one line on standard output */
  readonly write?: ((line: string) => void) | undefined;
}

/** @internal */
export const DEFAULT_METRIC_NAMESPACE = 'LambdaIdempotency';

/** Reports an event of the record `key` (`<namespace>#<hash>`). @internal */
export type Emit = (event: IdempotencyEvent, key: string) => void;

/**
 * Turns the `observability` option into the engine's `Emit`; `warn` reports a listener that
 * failed, and never throws. @internal
 */
export type Observe = (where: string, option: unknown, now: () => number, warn: (message: string, fields: Record<string, unknown>) => void) => Emit;

const noop: Emit = () => undefined;

/** Failures this module's own listener raises: their message is its own text, never data, and is logged. */
const explained = new WeakSet<object>();

/**
 * The `Emit` of a listener (the only form the lean entry points take; anything else is a
 * `TypeError` naming `where`): its detail built per event.
 * What it throws, or the promise it returns rejects with, changes no outcome: the first such
 * failure is reported through `warn`, the others are dropped. @internal
 */
export const observeListener: Observe = (where, option, now, warn) => {
  if (option === undefined) return noop;
  if (typeof option !== 'function') {
    throw new TypeError(`${where}: \`observability\` must be a listener, such as \`cloudWatchLines(options)\` from lambda-idempotency.`);
  }
  const listener = option as IdempotencyListener;
  let warned = false;
  const failed = (error: unknown): void => {
    if (warned) return;
    warned = true;
    const fields = { error: errorTypeOf(error) };
    warn(
      `${where}'s observability listener failed; the call goes on, and later failures are not logged`,
      explained.has(error as object) ? { ...fields, reason: (error as Error).message } : fields,
    );
  };
  return (event, key) => {
    try {
      const result: unknown = listener(event, { namespace: namespaceOf(key), recordId: key, time: now() });
      if (typeof (result as PromiseLike<unknown> | null)?.then === 'function') (result as PromiseLike<unknown>).then(undefined, failed);
    } catch (error) {
      failed(error);
    }
  };
};

/**
 * The `Emit` of either form the main entry points take: a listener, or the options object of
 * {@link cloudWatchLines} (where both `metrics` and `logs` default to off). @internal
 */
export const observeAny: Observe = (where, option, now, warn) => {
  if (option === undefined || typeof option === 'function') return observeListener(where, option, now, warn);
  const options = option as ObservabilityOptions;
  checkOptions(where, options, LINE_CHECKS, [], 'observability');
  return options.metrics === true || options.logs === true ? observeListener(where, linesOf(options), now, warn) : noop;
};

/**
 * An {@link IdempotencyListener} that writes CloudWatch lines: an Embedded Metric Format line per
 * event (read by the CDK construct's dashboard and alarms) and, with `logs`, a structured log line.
 * Lines name the record namespace (the function) and, in logs, the record id; never a key or a
 * payload.
 *
 * @example
 * ```ts
 * idempotency({ store, observability: cloudWatchLines({ logs: true }) });
 * ```
 */
export function cloudWatchLines(options: ObservabilityOptions = {}): IdempotencyListener {
  if (typeof options === 'string') {
    // An event name: the function itself was given as the listener, not what it returns.
    const error = new TypeError(
      'cloudWatchLines takes an options object, not an event: give `observability` its result, `cloudWatchLines()`, not the function.',
    );
    explained.add(error);
    throw error;
  }
  checkOptions('cloudWatchLines', options, LINE_CHECKS, [], 'options');
  // An option given as `undefined` takes its default, as its type says, not the spread's `undefined`.
  return linesOf({ ...options, metrics: options.metrics ?? true });
}

/** Every option of `cloudWatchLines` and its check; a misspelt `metricNamespace` is unknown, so it cannot send metrics where no dashboard or alarm looks. */
const LINE_CHECKS = {
  metrics: isBoolean,
  logs: isBoolean,
  // CloudWatch drops, without a word, the metrics of a line whose namespace it does not accept.
  metricNamespace: (value) =>
    isMetricNamespace(value) ? undefined : 'must be a CloudWatch namespace: 1 to 255 letters, digits, spaces or . - _ / # :, not starting with AWS/ or a colon',
  write: isFunction,
} satisfies { readonly [K in keyof ObservabilityOptions]-?: OptionCheck };

/** The characters and length CloudWatch accepts in a namespace, with at least one that is not a space, and not a colon first. */
const CLOUDWATCH_NAMESPACE = /^(?=.*[^ ])(?!:)[A-Za-z0-9 ._/#:-]{1,255}$/;

/** A namespace `cloudWatchLines` accepts (CloudWatch's rule, and not one of AWS's own). @internal */
export const isMetricNamespace = (value: unknown): value is string =>
  typeof value === 'string' && CLOUDWATCH_NAMESPACE.test(value) && !value.startsWith('AWS/');

/** A CloudWatch dimension value: printable ASCII, at least one character that is not a space. */
const DIMENSION_VALUE = /^(?=.*[^ ])[ -~]{1,1024}$/;

/** A record namespace `cloudWatchLines` writes metrics for: one CloudWatch takes as the `Function` dimension. @internal */
export const isDimensionValue = (value: string): boolean => DIMENSION_VALUE.test(value);

/**
 * The level of an event's lines where it is not `INFO`: a failure, or an attempt that ran past
 * its lease, is seen (and counted) by a function whose application log level is `WARN` or `ERROR`.
 * @internal
 */
export const LINE_LEVELS: Partial<Record<IdempotencyEvent, 'WARN' | 'ERROR'>> = {
  takeover: 'WARN',
  payloadMismatch: 'WARN',
  superseded: 'ERROR',
  storeFailure: 'ERROR',
  bookkeepingFailure: 'ERROR',
};

function linesOf(options: ObservabilityOptions): IdempotencyListener {
  const { metrics, logs, metricNamespace = DEFAULT_METRIC_NAMESPACE } = options;
  const writeOption = options.write ?? ((line: string) => void process.stdout.write(`${line}\n`));
  return (event, { namespace, recordId, time }) => {
    // A `write` that returns a promise (an async log shipper) hands it back, so that its rejection
    // is logged as a listener's is, never an unhandled rejection that would end the process. A line
    // that fails at once is the failure logged; the other line is still written, and the promises
    // of those written are still handled.
    const pending: unknown[] = [];
    let failure: { readonly error: unknown } | undefined;
    const write = (line: string): void => {
      try {
        const result: unknown = writeOption(line);
        if (typeof (result as PromiseLike<unknown> | null)?.then === 'function') pending.push(result);
      } catch (error) {
        failure ??= { error };
      }
    };
    // Lambda's log-level filter reads `level` only beside a valid RFC 3339 `timestamp`: without
    // one it takes the line as INFO, and a function logging only `WARN` or `ERROR` drops it. Metric
    // lines carry both too, so that the alarmed events' metrics are kept at those levels.
    const date = new Date(time);
    const timestamp = Number.isNaN(date.getTime()) ? undefined : date.toISOString();
    const level = LINE_LEVELS[event] ?? 'INFO';
    if (logs) write(JSON.stringify({ timestamp, level, message: `lambda-idempotency: ${event}`, event, function: namespace, recordId }));
    if (metrics && !isDimensionValue(namespace)) {
      // CloudWatch drops such a line without a word; thrown, it is logged once through `logger`.
      const error = new TypeError(
        'cloudWatchLines writes no metrics for this function: its record namespace (the `name` option) must be 1 to 1,024 printable ASCII characters, not only spaces, to be a CloudWatch dimension value.',
      );
      explained.add(error);
      failure ??= { error };
    } else if (metrics) {
      const name = METRIC_NAMES[event];
      write(
        JSON.stringify({
          timestamp,
          level,
          _aws: {
            // The format takes whole epoch milliseconds; an injected clock may have a fraction.
            Timestamp: Math.floor(time),
            CloudWatchMetrics: [{ Namespace: metricNamespace, Dimensions: [['Function']], Metrics: [{ Name: name, Unit: 'Count' }] }],
          },
          Function: namespace,
          [name]: 1,
        }),
      );
    }
    if (failure !== undefined) {
      void Promise.allSettled(pending);
      throw failure.error;
    }
    return pending.length === 0 ? undefined : Promise.all(pending);
  };
}
