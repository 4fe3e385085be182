/**
 * Jest's order of test files, with one change for a run that has no timings of an earlier run (a
 * fresh clone, the first run in CI). Jest then starts the largest files first, guessing their time
 * from their size; the files below are small for the time they take (they wait on `npm pack`, child
 * processes, servers they start or a soak) and would start last and run on alone while the other
 * workers sit idle. They start first instead, longest first. With timings, Jest's order stands: it
 * starts the files that took longest last time.
 */
import { relative } from 'node:path';
import Sequencer from '@jest/test-sequencer';

/** Paths under test/, longest first (seconds each took on a 2-core machine, Node 20, 3 workers, in a fresh clone). */
export const LONG = [
  'package/package.test.ts', // 60
  'integration/soak.test.ts', // 28
  'stores/redis-outage.test.ts', // 22
  'integration/demo-serve.test.ts', // 22
  'integration/bundles.test.ts', // 21
  'stores/contract.test.ts', // 18
  'unit/response-codec.test.ts', // 18
  'docs/readme.test.ts', // 15
  'stores/redis-model.test.ts', // 14
  'stores/redis-replicas.test.ts', // 13
];

export default class LongFilesFirst extends Sequencer {
  sort(tests) {
    const sorted = super.sort(tests);
    // Jest's sort sets `duration` from its cache of the last run's timings.
    if (sorted.some((test) => test.duration != null)) return sorted;
    const rank = (test) => {
      const at = LONG.indexOf(relative(`${test.context.config.rootDir}/test`, test.path));
      return at < 0 ? LONG.length : at;
    };
    // Array.prototype.sort is stable: the other files keep Jest's order.
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}
