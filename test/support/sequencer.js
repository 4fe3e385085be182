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

/**
 * Paths under test/, longest first: the seconds each took in four runs on 2-core machines (Node 20
 * to 24, 3 workers; the first figure in a fresh clone, where `npm pack` and esbuild start cold).
 */
export const LONG = [
  'package/package.test.ts', // 117, 66, 37, 25
  'integration/bundles.test.ts', // 54, 13, 28, 18
  'stores/redis-cluster.test.ts', // 30, 32, 36, 31
  'integration/durable.test.ts', // 23, 23, 28, 25
  'stores/redis-outage.test.ts', // 27, 23, 24, 21
  'integration/cli.test.ts', // 21, 32, 23, 15
  'integration/soak.test.ts', // 21, 32, 13, 11
  'integration/demo-serve.test.ts', // 25, 21, 19, 18
  'docs/readme.test.ts', // 23, 7, 18, 14
  'stores/redis.test.ts', // 16, 31, 18, 11
  'integration/store-timeouts.test.ts', // 18, 18, 19, 18
  'stores/contract.test.ts', // 21, 19, 9, 6
  'unit/response-codec.test.ts', // 14, 16, 13, 9
  'stores/redis-replicas.test.ts', // 13, 11, 9, 15
  'infra/idempotency-table.test.ts', // 13, 7, 14, 9
  'integration/batch.test.ts', // 11, 16, 14, 8
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
