/**
 * The short soak: the same loop as `npm run soak` (test/soak/soak.ts), 1,500 calls, 30% duplicates,
 * concurrency 64, random handler failures and store faults, against the run's DynamoDB Local. The
 * SDK classifies and retries the faults as always, without its randomized backoff (up to seconds for
 * throttling), which would only lengthen the run; `npm run soak` keeps the SDK's backoff.
 */
import { runSoak } from '../soak/soak.js';
import { endpoint, useFreshTable } from '../support/dynamodb.js';

// runSoak makes its own clients and store on the table.
const { tableName } = useFreshTable({ prefix: 'soak' });

test('1,500 calls with duplicates, handler failures and store faults: no key runs twice, nothing stuck, every caller answered', async () => {
  const report = await runSoak({ endpoint: endpoint(), tableName, calls: 1_500, retries: 'immediate' });

  expect(report.violations).toEqual([]);
  expect(report.executions.maxSucceededPerKey).toBe(1);
  expect(report.executions.duplicatesExecuted).toBe(0);
  expect(report.records.stuck).toBe(0);
  expect(report.outcomes).not.toHaveProperty('never settled');
  // The run really exercised what it claims to: duplicates, replays, failures and faults.
  expect(report.duplicateCalls).toBeGreaterThan(300);
  expect(report.outcomes.replay).toBeGreaterThan(0);
  expect(report.outcomes['handler error']).toBeGreaterThan(0);
  expect(report.faultsInjected.total).toBeGreaterThan(20);
  expect(Object.keys(report.faultsInjected.byKind).sort()).toEqual(['drop-response', 'latency', 'reset', 'server-error', 'throttle']);
  // About 10 s on an idle 2-core machine; several times that when other suites share the cores.
}, 120_000);
