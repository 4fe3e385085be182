/**
 * docs/performance.md against the run it reports (bench/results.json): the figures of its main
 * table are the file's, and a comparison that favours one side under one condition is shown with
 * the other condition the bench measured too.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from '@jest/globals';
import { ROOT } from './snippets.js';

interface Summary {
  readonly median: number;
}
type Pair = { readonly ours: Summary; readonly powertools: Summary };
interface Results {
  readonly overhead: { size: string; scenario: string; overhead: Record<'ours' | 'powertools', { median: number }> }[];
  readonly endToEnd: { first: Pair; replay: Pair };
  readonly coldStart: { importWithSdk: Pair & { bare: Summary }; importSdkPreloaded: Pair & { bare: Summary } };
  readonly roundTrips: { calls: { scenario: string; library: string; cost: { wcu: number } }[] };
}

const results = JSON.parse(readFileSync(`${ROOT}/bench/results.json`, 'utf8')) as Results;
const page = readFileSync(`${ROOT}/docs/performance.md`, 'utf8');

/** The cells (ours, Powertools, ratio) of the first table row whose measurement starts with `start`. */
function row(start: string): { ours: string; powertools: string; ratio: string } {
  const line = page.split('\n').find((l) => l.startsWith(`| ${start}`));
  if (line === undefined) throw new Error(`docs/performance.md has no row starting "${start}"`);
  const [, , ours, powertools, ratio] = line.split('|').map((cell) => cell.trim());
  return { ours: ours!, powertools: powertools!, ratio: ratio! };
}

const fixed = (x: number, digits: number) => x.toFixed(digits);

describe('docs/performance.md', () => {
  test('the overhead and end-to-end rows are the figures of bench/results.json', () => {
    const overhead = (size: string, scenario: string) => results.overhead.find((o) => o.size === size && o.scenario === scenario)!.overhead;
    const [first, replay] = [overhead('1 KB', 'first call'), overhead('1 KB', 'replay')];
    expect(row('overhead per call, 1 KB event').ours).toBe(`${fixed(first.ours.median, 0)} / ${fixed(replay.ours.median, 0)} µs`);
    expect(row('overhead per call, 1 KB event').powertools).toBe(`${fixed(first.powertools.median, 0)} / ${fixed(replay.powertools.median, 0)} µs`);
    const e2e = results.endToEnd;
    expect(row('end to end on DynamoDB Local').ours).toBe(`${fixed(e2e.first.ours.median / 1000, 2)} / ${fixed(e2e.replay.ours.median / 1000, 2)} ms`);
    expect(row('end to end on DynamoDB Local').powertools).toBe(
      `${fixed(e2e.first.powertools.median / 1000, 2)} / ${fixed(e2e.replay.powertools.median / 1000, 2)} ms`,
    );
  });

  test('the import time is shown both with the AWS SDK loaded by the import and loaded before it', () => {
    const withSdk = results.coldStart.importWithSdk;
    expect(row('import of the minimal bundle').ours).toBe(`${fixed(withSdk.ours.median, 0)} ms`);
    expect(row('import of the minimal bundle').powertools).toBe(`${fixed(withSdk.powertools.median, 0)} ms`);
    const pre = results.coldStart.importSdkPreloaded;
    const ours = pre.ours.median - pre.bare.median;
    const theirs = pre.powertools.median - pre.bare.median;
    const preloaded = row('same, the AWS SDK loaded before the import');
    expect(preloaded).toEqual({ ours: `+${fixed(ours, 1)} ms`, powertools: `+${fixed(theirs, 1)} ms`, ratio: `${fixed(ours / theirs, 2)}×` });
  });

  test('the write units of a 40 KB response are the run’s, and say that ours is compressed', () => {
    const wcu = (library: string) => results.roundTrips.calls.find((c) => c.scenario === 'first call, 40 KB response' && c.library === library)!.cost.wcu;
    const cells = row('write units per call, 40 KB response');
    expect(cells.ours).toMatch(new RegExp(`^${wcu('ours')}⁴$`));
    expect(cells.powertools).toBe(String(wcu('powertools')));
    expect(page).toMatch(/⁴ [^\n]*gzip/);
  });
});
