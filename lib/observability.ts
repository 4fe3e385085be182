import { namespaceOf } from './key.js';

/**
 * Structured log lines and CloudWatch Embedded Metric Format (EMF) lines for idempotency events.
 * Off by default. Lines name the record namespace (the function), never a key or a payload.
 */

/** What happened to one call. */
export type IdempotencyEvent =
  | 'miss' // no live record: this attempt claimed the key
  | 'takeover' // claimed over an INPROGRESS record whose lease had ended
  | 'replay' // a duplicate answered with the stored outcome
  | 'cacheReplay' // … from the local cache, with no request
  | 'inProgress' // a duplicate rejected while another attempt holds the key
  | 'payloadMismatch'
  | 'superseded' // this attempt's record was taken over; nothing overwritten
  | 'storeFailure' // the store could not be reached; nothing ran
  | 'bookkeepingFailure'; // completion or release failed after the function ran

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

export interface ObservabilityOptions {
  /** One EMF line per event (metrics `Misses`, `Replays`, `Takeovers`, …, dimension `Function`). @default false */
  readonly metrics?: boolean;
  /** One structured JSON log line per event. @default false */
  readonly logs?: boolean;
  /** CloudWatch metric namespace. @default 'LambdaIdempotency' */
  readonly metricNamespace?: string;
  /** Where lines go. @default one line on standard output */
  readonly write?: (line: string) => void;
}

/** @internal */
export const DEFAULT_METRIC_NAMESPACE = 'LambdaIdempotency';

/** Reports an event of the record `key` (`<namespace>#<hash>`). @internal */
export type Emit = (event: IdempotencyEvent, key: string) => void;

const noop: Emit = () => undefined;

/** @internal */
export function createEmitter(where: string, options: ObservabilityOptions | undefined, now: () => number): Emit {
  if (options === undefined) return noop;
  if (options === null || typeof options !== 'object') throw new TypeError(`${where}: \`observability\` must be an object.`);
  const {
    metrics = false,
    logs = false,
    metricNamespace = DEFAULT_METRIC_NAMESPACE,
    write = (line: string) => void process.stdout.write(`${line}\n`),
  } = options;
  if (typeof metrics !== 'boolean' || typeof logs !== 'boolean') throw new TypeError(`${where}: \`observability.metrics\` and \`.logs\` must be booleans.`);
  if (typeof write !== 'function') throw new TypeError(`${where}: \`observability.write\` must be a function.`);
  if (!metrics && !logs) return noop;
  return (event, key) => {
    const namespace = namespaceOf(key);
    // The record id is a hash: it finds the record (the CLI's `--id`), never the key or payload.
    if (logs) write(JSON.stringify({ level: 'INFO', message: `lambda-idempotency: ${event}`, event, function: namespace, recordId: key }));
    if (metrics) {
      const name = METRIC_NAMES[event];
      write(
        JSON.stringify({
          _aws: {
            Timestamp: now(),
            CloudWatchMetrics: [{ Namespace: metricNamespace, Dimensions: [['Function']], Metrics: [{ Name: name, Unit: 'Count' }] }],
          },
          Function: namespace,
          [name]: 1,
        }),
      );
    }
  };
}
