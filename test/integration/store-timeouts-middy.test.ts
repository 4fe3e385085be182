/**
 * The middy middleware in front of a DynamoDB that stops answering (see `store-timeouts.test.ts`
 * for every other entry point): apart, so that only this test runs again on middy 6.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { jest } from '@jest/globals';
import middy from '@middy/core';
import { DynamoDBStore, idempotency } from '../../lib/index.js';
import { useFreshTable } from '../support/dynamodb.js';
import { lambdaContext } from '../support/lambda.js';
import { byDeadlineOnClock, onFakeClock, REMAINING, useStalledDynamoDB } from '../support/stalled-dynamodb.js';

const { tableName } = useFreshTable({ prefix: 'timeouts-middy' });
const proxy = useStalledDynamoDB();

// Without the bound, the test waits until Jest gives up on it.
jest.setTimeout(15_000);

// On a fake clock moved to the deadline once the claim is in flight (see `onFakeClock`).
test('with a client of your own, whose requests the SDK never bounds, a claim that is never answered rejects the invocation with STORE_FAILURE before its deadline; the handler did not run', () =>
  onFakeClock(async () => {
    const unbounded = new DynamoDBClient({});
    try {
      let runs = 0;
      const handler = middy(async () => ++runs).use(
        idempotency({ store: new DynamoDBStore({ tableName, client: unbounded }), key: (event: { id: string }) => event.id }),
      );
      proxy.stall();
      const invocation = handler({ id: 'k' }, lambdaContext('own-middy-hangs', REMAINING));
      expect(await byDeadlineOnClock(invocation, proxy.swallowed())).toMatchObject({ error: { code: 'STORE_FAILURE' } });
      expect(runs).toBe(0);
    } finally {
      unbounded.destroy();
    }
  }));
