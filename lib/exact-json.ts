/*
 * Numbers of queue and stream messages, kept exact. JSON.parse turns 1234567890123456789 and
 * 1234567890123456788 into one double, so two orders would share a key and the second would never
 * run. A number a double cannot hold arrives as its exact text instead, as DynamoDB Streams numbers do.
 */

/**
 * A decimal number's value as `<sign><digits>e<exponent>` without leading or trailing zeros (`5`,
 * `5.0` and `0.5e1` alike): equal texts, equal values, exactly (a double would make numbers past
 * 2^53 one). A text that is no decimal number is its own value. @internal
 */
export function decimalValue(text: string): string {
  const parts = /^\s*([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/.exec(text);
  if (parts === null) return text;
  const [, sign, whole = '', fraction = '', exponent = '0'] = parts;
  const digits = `${whole}${fraction}`.replace(/^0+/, '');
  const significant = digits.replace(/0+$/, '');
  if (significant === '') return '0';
  return `${sign === '-' ? '-' : ''}${significant}e${Number(exponent) - fraction.length + digits.length - significant.length}`;
}

/**
 * A decimal number (JSON's or DynamoDB's text) as a JavaScript number when the double holds its
 * value, else its exact text. @internal
 */
export function exactNumber(text: string): number | string {
  const value = Number(text);
  return Number.isFinite(value) && decimalValue(String(value)) === decimalValue(text) ? value : text;
}

/** In valid JSON a number token is never inside a string, so strings are matched first and skipped. */
const TOKENS = /"(?:[^"\\]|\\.)*"|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

/**
 * Texts in which every number is exact in a double: no run of 16 digits (a single `.` may split it)
 * and no exponent of 3 digits. A decimal of at most 15 significant digits with an exponent of at
 * most 2 digits is the shortest text of its double, so such a text needs no second pass.
 */
const MAYBE_INEXACT = /\d(?:\.?\d){15}|[eE][+-]?\d{3}/;

/**
 * `JSON.parse`, except that a number a double cannot hold is its exact text. Throws JSON.parse's
 * `SyntaxError` for a text that is not JSON. @internal
 */
export function parseExactJson(text: string): unknown {
  const value: unknown = JSON.parse(text);
  if (!MAYBE_INEXACT.test(text)) return value;
  let inexact = false;
  const exact = text.replace(TOKENS, (token) => {
    if (token.startsWith('"') || typeof exactNumber(token) === 'number') return token;
    inexact = true;
    return JSON.stringify(token);
  });
  return inexact ? JSON.parse(exact) : value;
}

/** The first number of a JSON text that a double cannot hold, as written; `undefined` when there is none. @internal */
export function inexactNumberIn(text: string): string | undefined {
  if (!MAYBE_INEXACT.test(text)) return undefined;
  for (const [token] of text.matchAll(TOKENS)) if (!token.startsWith('"') && typeof exactNumber(token) === 'string') return token;
  return undefined;
}
