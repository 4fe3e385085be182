/** Runs the scenarios of `npm run demo` against the test run's DynamoDB Local: CI proves the demo. */
import { scenarios } from '../../demo/scenarios.js';
import { useDemoTables } from '../support/demo-tables.js';

const { client, tables } = useDemoTables('demo-test');

test('the demo keeps every scenario it promises (double-click, burst, 422, late retry, provider failure, SQS, takeover, crash before completion)', () => {
  expect(scenarios.map((s) => s.name)).toEqual([
    'doubleClick',
    'burst',
    'differentPayload',
    'missingKey',
    'lateRetry',
    'competingRefunds',
    'downstreamFailure',
    'sqsBatch',
    'leaseTakeover',
    'crashBeforeCompletion',
  ]);
});

test.each(scenarios.map((scenario) => [scenario.name, scenario] as const))(
  '%s: as many charges or refunds as should happen, and the answers expected',
  async (_name, scenario) => {
    const result = await scenario(client, tables());
    expect({ [result.effect]: result.happened, problems: result.problems }).toEqual({ [result.effect]: result.expected, problems: [] });
    expect(result.ok).toBe(true);
  },
);
