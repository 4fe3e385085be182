/** The types of `sequencer.js` (plain JavaScript: Jest loads a sequencer without compiling it), as far as the tests use it. */
import type { Test } from '@jest/test-result';

/** Paths under test/ of the files that start first in a run without timings, longest first. */
export declare const LONG: readonly string[];

/** Jest's sequencer, with the listed files first when no timings are known. */
export default class LongFilesFirst {
  constructor(options: object);
  /** Jest's order, or the listed files first when no test has a timing. */
  sort(tests: Test[]): Test[];
  /** A test's time in the last run, from Jest's cache. */
  time(test: Test): number | undefined;
}
