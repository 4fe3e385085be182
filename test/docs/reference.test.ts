/**
 * The reference tables of docs/options.md against the code they describe: the "Errors" table names every
 * error code with the status `httpIdempotency` answers, and the "Options" table names exactly the
 * options the entry points share.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from '@jest/globals';
import { problem } from '../../lib/http.js';
import { IdempotencyError, type IdempotencyErrorCode } from '../../lib/index.js';
import { sharedOptionsExcept } from '../../lib/options.js';
import { ROOT } from './snippets.js';

/** Every code, so that a new one fails the type-check until it is added here and to docs/options.md. */
const CODES: Readonly<Record<IdempotencyErrorCode, true>> = {
  IN_PROGRESS: true,
  PAYLOAD_MISMATCH: true,
  KEY_MISSING: true,
  INVALID_KEY: true,
  STORE_FAILURE: true,
  SUPERSEDED: true,
  RESPONSE_NOT_STORED: true,
  TRANSACTION_CONDITION_FAILED: true,
  TRANSACTION_INVALID: true,
  TRANSACTION_CONFLICT: true,
  COMMIT_FAILED: true,
};

/** The first cell of each row, and the rest, of the first table under the heading `## <heading>` of docs/options.md. */
function table(heading: string): Array<[string, ...string[]]> {
  const readme = readFileSync(`${ROOT}/docs/options.md`, 'utf8');
  const start = readme.indexOf(`\n## ${heading}\n`);
  expect(start).toBeGreaterThan(0);
  const section = readme.slice(start + heading.length + 5).split(/\n## /)[0]!;
  const lines = section.split('\n');
  const first = lines.findIndex((line) => line.startsWith('|'));
  const rows = lines.slice(
    first + 2,
    lines.findIndex((line, i) => i > first && !line.startsWith('|')),
  );
  return rows.map(
    (row) =>
      row
        .slice(1, -1)
        .split(' | ')
        .map((cell) => cell.trim()) as [string, ...string[]],
  );
}

describe('docs/options.md reference tables', () => {
  test('"Errors" lists every error code once, with the status httpIdempotency answers for it', () => {
    const rows = table('Errors');
    expect(rows.map(([code]) => code.replaceAll('`', '')).sort()).toEqual(Object.keys(CODES).sort());
    for (const [code, status] of rows) {
      const answer = problem(new IdempotencyError(code.replaceAll('`', '') as IdempotencyErrorCode, 'x'), 60);
      expect([code, status]).toEqual([code, answer === undefined ? 'thrown (500)' : String(answer.statusCode)]);
    }
  });

  test('"Options" names exactly the options the entry points share', () => {
    const names = table('Options').map(([option]) => /^`(\w+)/.exec(option)?.[1]);
    expect(names.sort()).toEqual(sharedOptionsExcept([]).sort());
  });
});
