/**
 * What a call reports while it runs, kept for the test: each observability event with the
 * namespace (the layer) it came from, and the lines its logger was sent.
 */
import type { IdempotencyEvent, IdempotencyListener, IdempotencyLogger } from '../../lib/index.js';
import { collectingLogger } from './warnings.js';

/** An observability event and the namespace of the layer that reported it. */
export interface SeenEvent {
  readonly event: IdempotencyEvent;
  readonly namespace: string;
}

export interface Listener {
  /** Every event reported, in order. */
  readonly seen: SeenEvent[];
  /** Every line the logger was sent, `warn` and `error` alike. */
  readonly warnings: string[];
  /** The events of one kind, in order. */
  events(event: IdempotencyEvent): SeenEvent[];
  /** The `logger` and `observability` options that feed it, to spread into a layer's options. */
  readonly options: { readonly logger: IdempotencyLogger; readonly observability: IdempotencyListener };
}

/** A listener for the layers of one test: spread its `options` into each. */
export function listen(): Listener {
  const seen: SeenEvent[] = [];
  const { logger, lines } = collectingLogger();
  return {
    seen,
    warnings: lines,
    events: (event) => seen.filter((each) => each.event === event),
    options: { logger, observability: (event, { namespace }) => void seen.push({ event, namespace }) },
  };
}
