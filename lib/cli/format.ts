import type { RecordSummary } from '../store.js';

/** Human-readable output of the CLI; `--json` prints the values as they are instead. @internal */

/** `in 3 h` / `5 min ago`, rounded down to the largest unit that fits. */
export function relative(millis: number): string {
  return millis >= 0 ? `in ${span(millis)}` : `${span(millis)} ago`;
}

/** A length of time, `3 h`, without its sign: rounded down to the largest unit that fits. */
export function span(millis: number): string {
  const seconds = Math.floor(Math.abs(millis) / 1000);
  const [amount, unit] =
    seconds < 120
      ? [seconds, 's']
      : seconds < 7200
        ? [Math.floor(seconds / 60), 'min']
        : seconds < 172_800
          ? [Math.floor(seconds / 3600), 'h']
          : [Math.floor(seconds / 86_400), 'days'];
  return `${amount} ${unit}`;
}

/**
 * An instant as the CLI prints it: ISO to the millisecond (what `forget --lease-until` takes), and
 * how far from now; one with a fraction of a millisecond, which ISO would round, in epoch ms as well.
 */
export const instant = (millis: number, now: number): string =>
  isDate(millis)
    ? `${new Date(millis).toISOString()} (${Number.isInteger(millis) ? '' : `epoch ms ${millis}, `}${relative(millis - now)})`
    : outOfRange(millis);

/** Whether `millis` is an instant a `Date` can hold (a hand-written item may hold any number). */
export const isDate = (millis: number): boolean => !Number.isNaN(new Date(millis).getTime());

const outOfRange = (millis: number): string => `epoch ms ${millis} (beyond the dates JavaScript can show)`;

const bytes = (count: number | undefined): string => (count === undefined ? 'none' : `${count} bytes`);

/**
 * Text read from a record as a terminal may print it: control and format characters (an escape
 * sequence whoever can write the table put in a key id) as `\u` escapes, never sent as they are.
 */
export const printable = (text: string): string =>
  text.replace(/[\p{Cc}\p{Cf}]/gu, (char) => {
    const code = char.codePointAt(0)!;
    return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });

/** Text of several lines (an error's message, which may name attributes read from an item) as a terminal may print it: {@link printable} line by line. */
export const printableLines = (text: string): string => text.split('\n').map(printable).join('\n');

/**
 * `--json` output: `JSON.stringify` escapes only the C0 controls of the strings read from the
 * table (a record id `stuck` scanned, a key id), and leaves C1 controls (U+009B, a CSI) and format
 * characters as they are: those are written as `\u` escapes too (surrogate pairs beyond the BMP),
 * which a JSON reader reads back as the same string.
 */
export const jsonText = (value: unknown): string =>
  `${JSON.stringify(value, null, 2).replace(/(?!\n)[\p{Cc}\p{Cf}]/gu, (char) =>
    Array.from({ length: char.length }, (_, i) => `\\u${char.charCodeAt(i).toString(16).padStart(4, '0')}`).join(''),
  )}\n`;

/**
 * The last millisecond of a retention (epoch seconds, as records hold it): a record holds through the
 * second its retention names, and stores take it over only once the current second is past it.
 */
const retentionEnd = (expiresAt: number | undefined): number | undefined => (expiresAt === undefined ? undefined : (Math.floor(expiresAt) + 1) * 1000 - 1);

/** The lines `inspect` prints for a record. */
export function describeRecord(summary: RecordSummary, now: number): string {
  const expires = retentionEnd(summary.expiresAt);
  const rows: Array<[string, string]> = [
    ['status', summary.status],
    [
      'expires',
      expires === undefined
        ? 'none (written by hand or by an older version): the next call with this key sets one'
        : `${instant(expires, now)}${expires < now ? ', expired: the next call with this key runs again' : ''}`,
    ],
    [
      'lease',
      summary.leaseUntil === undefined
        ? 'none'
        : `${instant(summary.leaseUntil, now)}${summary.leaseUntil < now ? ', ended: the next call takes the record over' : ''}`,
    ],
    ['fingerprint', summary.hasFingerprint ? 'stored' : 'none'],
    [
      'response',
      summary.errorOmitted
        ? 'none'
        : summary.responseOmitted
          ? 'not stored (too large, not serialisable, or the key provider failed at completion); duplicates get RESPONSE_NOT_STORED'
          : bytes(summary.responseBytes),
    ],
    [
      'final error',
      summary.errorOmitted
        ? 'not stored (the key provider failed at completion); duplicates get ERROR_NOT_STORED'
        : summary.errorBytes === undefined
          ? 'none'
          : `${bytes(summary.errorBytes)}, replayed to duplicates`,
    ],
  ];
  // After a rotation, the records not yet sealed with the new key are the ones whose old key keyById() must still know.
  if (summary.keyId !== undefined) rows.push(['sealed with', `key \`${printable(summary.keyId)}\``]);
  return [summary.key, ...rows.map(([label, value]) => `  ${label.padEnd(12)} ${value}`)].join('\n');
}

/** The line `stuck` prints for a record. */
export function describeStuck(summary: RecordSummary, now: number): string {
  const expires = retentionEnd(summary.expiresAt);
  const expiration = expires === undefined ? 'no expiration' : `expires ${isDate(expires) ? new Date(expires).toISOString() : outOfRange(expires)}`;
  return `${printable(summary.key)}  lease ended ${instant(summary.leaseUntil ?? 0, now)}, ${expiration}`;
}

/** What to give when `table` is keyed by another attribute than `key`, the one the command used. */
export const keyAttributeAdvice = (table: string, key: string): string =>
  `the key attribute of ${table} is not \`${key}\`: give --attributes '{"key":"<its name>"}', with every name the functions' store uses.`;
