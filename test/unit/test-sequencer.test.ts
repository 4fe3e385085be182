/**
 * `test/support/sequencer.js`, the order Jest runs the test files in: without timings of an earlier
 * run, the files that are small for their time start first; with timings, Jest's own order stands.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from '@jest/test-result';
import LongFilesFirst, { LONG } from '../support/sequencer.js';

const rootDir = join(import.meta.dirname, '../..');

/** Tests as Jest hands them to a sequencer: sizes from `sizes`, no cache of an earlier run. */
function tests(sizes: Record<string, number>): Test[] {
  const hasteFS = { getSize: (path: string) => sizes[path.slice(rootDir.length + 1)] };
  const context = { config: { rootDir, cache: false }, hasteFS };
  return Object.keys(sizes).map((path) => ({ path: join(rootDir, path), context, duration: undefined }) as unknown as Test);
}

const order = (sorted: Test[]) => sorted.map((test) => test.path.slice(rootDir.length + 1));

const SIZES = {
  'test/integration/batch.test.ts': 114_855,
  'test/unit/key.test.ts': 20_000,
  'test/integration/soak.test.ts': 1_695,
  'test/unit/deadline.test.ts': 1_000,
  'test/package/package.test.ts': 17_187,
};

test('without timings, the listed long files start first, longest first; the others follow by size, as Jest orders them', async () => {
  expect(order(await new LongFilesFirst({}).sort(tests(SIZES)))).toEqual([
    'test/package/package.test.ts',
    'test/integration/soak.test.ts',
    'test/integration/batch.test.ts',
    'test/unit/key.test.ts',
    'test/unit/deadline.test.ts',
  ]);
});

test("with timings of an earlier run, Jest's order stands: the longest last time first, whatever the list says", async () => {
  const sequencer = new LongFilesFirst({});
  const last: Record<string, number> = {
    'test/unit/deadline.test.ts': 9_000,
    'test/integration/soak.test.ts': 1_000,
    'test/package/package.test.ts': 500,
    'test/integration/batch.test.ts': 200,
    'test/unit/key.test.ts': 100,
  };
  sequencer.time = (test) => last[test.path.slice(rootDir.length + 1)];
  expect(order(await sequencer.sort(tests(SIZES)))).toEqual([
    'test/unit/deadline.test.ts',
    'test/integration/soak.test.ts',
    'test/package/package.test.ts',
    'test/integration/batch.test.ts',
    'test/unit/key.test.ts',
  ]);
});

test('every listed file exists: a renamed one would lose its place without a word', () => {
  expect(LONG.length).toBeGreaterThan(0);
  for (const path of LONG) expect(existsSync(join(rootDir, 'test', path))).toBe(true);
});
