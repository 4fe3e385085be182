/**
 * Section 1b: DynamoDB requests per call when the handler's own writes commit with its record
 * (`transaction()`, in every call) and in one-round-trip mode (`atomic: true`). Powertools has
 * neither.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { DynamoDBStore, idempotency, transaction } from './library.js';
import { benchClient } from './local.js';
import { RequestCounter } from './request-counter.js';
import { lambdaContext, makeEvent, type OrderEvent, RETENTION_SECONDS } from './subjects.js';

export interface ModeCall {
  readonly mode: 'transaction' | 'atomic';
  readonly scenario: 'first call' | 'replay';
  readonly requests: number;
  readonly operations: string[];
  readonly executions: number;
}

export async function measureTransactionModes(endpoint: string, tableName: string): Promise<ModeCall[]> {
  const client: DynamoDBClient = benchClient(endpoint);
  const counter = new RequestCounter().attach(client, 'id');
  const store = new DynamoDBStore({ tableName, client });
  const context: Context = lambdaContext();
  const calls: ModeCall[] = [];
  for (const mode of ['transaction', 'atomic'] as const) {
    let executions = 0;
    const handler = middy<OrderEvent, { orderId: string }, Error, Context>(async (event: OrderEvent) => {
      executions++;
      // One business write (an order item in the same table, keyed apart from the records).
      transaction().put({ TableName: tableName, Item: { id: `order#${mode}#${event.orderId}`, lines: event.lines.length } });
      return { orderId: event.orderId };
    }).use(idempotency({ store, expiresAfterSeconds: RETENTION_SECONDS, ...(mode === 'atomic' ? { atomic: true } : {}) }));
    const event = makeEvent(`tx-${mode}`, 1024);
    for (const scenario of ['first call', 'replay'] as const) {
      const mark = counter.mark();
      const before = executions;
      await handler({ ...event }, context);
      const requests = counter.since(mark);
      calls.push({
        mode,
        scenario,
        requests: requests.length,
        operations: requests.map((r) => (r.ok ? r.operation : `${r.operation}✗`)),
        executions: executions - before,
      });
    }
  }
  client.destroy();
  return calls;
}
