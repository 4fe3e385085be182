/**
 * The middleware's calls whose writes go over DynamoDB's limits on one transaction (see
 * `oversize.test.ts` for `makeIdempotent`'s and for outcomes larger than the item): apart, so that
 * only these tests run again on middy 6.
 */
import middy from '@middy/core';
import { idempotency } from '../../lib/index.js';
import { useCountingTables } from '../support/counting-function.js';
import { lambdaContext } from '../support/lambda.js';
import { transactionLimitTests, useProbedClients } from '../support/transaction-limits.js';

const { client: admin, tableName, bizTable } = useCountingTables('oversize-middy');
const { probedClient } = useProbedClients();

describe.each(['transactions', 'atomic'] as const)("%s mode: a transaction over DynamoDB's limits (4 MB, 100 actions)", (mode) => {
  describe('middleware', () =>
    transactionLimitTests(mode, { admin, tableName, bizTable, probedClient }, (body, options, name) => {
      const handler = middy(body).use(idempotency(options));
      return (input) => handler(input, lambdaContext(name));
    }));
});
