/**
 * A `logger` that keeps the lines it is sent, for tests whose calls warn (and that must not print),
 * and the warning a call whose outcome the store cannot keep sends as its record completes.
 */
import type { IdempotencyLogger } from '../../lib/index.js';

/** Why a call's outcome is left out of its record: its result is not JSON, or it is too large. */
export type OmittedWhy = 'json' | 'size';

const WHY: Record<OmittedWhy, string> = {
  json: "the call's result cannot be written as JSON (a BigInt, a cycle, nesting too deep)",
  size: "the call's outcome does not fit in the store's record",
};

/** The message of the warning about a record completed without its outcome. */
export function omittedMessage(why: OmittedWhy, code: 'RESPONSE_NOT_STORED' | 'ERROR_NOT_STORED' = 'RESPONSE_NOT_STORED'): string {
  return `lambda-idempotency: ${WHY[why]}; the record completed without it, and duplicates get ${code}`;
}

export interface CollectingLogger {
  readonly logger: IdempotencyLogger;
  /** Every line sent, `warn` and `error` alike, as sent. */
  readonly lines: string[];
  /** The lines about records completed without their outcome, parsed. */
  omitted(): { level: string; message: string; namespace: string; recordId: string }[];
}

/** A logger that keeps its lines instead of printing them. */
export function collectingLogger(): CollectingLogger {
  const lines: string[] = [];
  const keep = (line: string) => void lines.push(line);
  return {
    logger: { warn: keep, error: keep },
    lines,
    omitted: () =>
      lines
        .map((line) => JSON.parse(line) as { level: string; message: string; namespace: string; recordId: string })
        .filter((line) => line.message.includes('the record completed without it')),
  };
}
