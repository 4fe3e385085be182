/**
 * Jest runs the TypeScript sources as native ESM through SWC; `tsc --noEmit` type-checks them.
 * Two projects share one DynamoDB Local: every test on middy 7 (the version developed against),
 * and the tests that drive `@middy/core` once more on middy 6.4.5 (installed as `@middy/core-v6`),
 * the oldest major the peer range accepts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

const root = import.meta.dirname;

const shared = {
  rootDir: root,
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' } }],
  },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  setupFiles: ['<rootDir>/test/support/setup-env.ts'],
};

/**
 * Files that import `@middy/core` without depending on its version: durable execution mode exists
 * from middy 7 only, the CLI's tests use a middy handler only to write the records the command
 * reads (a slow file, twice for nothing), the store-failure tests
 * meet the failure in the claim, before any hook that differs between majors, the feature
 * combinations and nested-faults tests test stores, options and layers, which middleware tests run on both majors,
 * and the tenant tests of concurrent invocations test the call scope (tenant-isolation.test.ts runs on both).
 */
const middyOnce = [
  'durable.test.ts',
  'durable-writes.test.ts',
  'durable-faults.test.ts',
  'durable-http.test.ts',
  'durable-nesting.test.ts',
  'durable-replayed-calls.test.ts',
  'durable-combined.test.ts',
  'cli.test.ts',
  'store-failures.test.ts',
  'combinations.test.ts',
  'nested-faults.test.ts',
  'nested-faults-mixed.test.ts',
  'managed-instances-tenants.test.ts',
];

/**
 * Test files that import `@middy/core` itself. Tests that do not drive middy are kept out of these
 * files (`batch.test.ts` beside `batch-middy.test.ts`, `oversize.test.ts` beside
 * `oversize-middy.test.ts`, `store-timeouts.test.ts` beside `store-timeouts-middy.test.ts`), so that
 * they run once.
 */
const middyTests = readdirSync(join(root, 'test'), { recursive: true, encoding: 'utf8' })
  .filter((file) => file.endsWith('.test.ts') && !middyOnce.some((once) => file.endsWith(once)))
  .filter((file) => readFileSync(join(root, 'test', file), 'utf8').includes("from '@middy/core';"))
  .map((file) => join('<rootDir>/test', file));

export default {
  // Jest's default (one worker less than the cores) runs the files one after another on two cores,
  // although most of their time is spent waiting on DynamoDB Local, redis-server and child
  // processes: three workers there take the suite from about 340 s (two workers) to 275 s on Node 20.
  maxWorkers: Math.max(3, availableParallelism() - 1),
  // A worker ends by letting its event loop empty; Node then disposes its heap (about 600 MB by the
  // end of a run), which on a loaded 2-core machine takes longer than Jest's default 500 ms grace,
  // and Jest then reports a worker that "failed to exit gracefully". A worker that really leaks a
  // handle is still reported, after this longer grace.
  workerGracefulExitTimeout: 5000,
  testTimeout: 30000,
  testSequencer: '<rootDir>/test/support/sequencer.js',
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  projects: [
    { ...shared, displayName: 'middy 7', testMatch: ['<rootDir>/test/**/*.test.ts'] },
    {
      ...shared,
      displayName: 'middy 6',
      testMatch: middyTests,
      moduleNameMapper: { '^@middy/core$': '@middy/core-v6', ...shared.moduleNameMapper },
    },
  ],
};
