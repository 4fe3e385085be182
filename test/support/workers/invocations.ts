/**
 * One worker thread of a Managed Instances test: a middy handler made idempotent on the shared
 * table, with `transaction()` writes. Each `go` message runs every order of the worker's list at
 * once, each with its own Lambda context, and answers with what every caller got and which keys
 * this worker executed.
 */

import { parentPort, workerData } from 'node:worker_threads';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { DynamoDBStore, idempotency, transaction } from '../../../lib/index.js';
import { localClient } from '../../../tools/dynamodb-local.js';
import { lambdaContext } from '../lambda.js';

export interface InvocationsData {
  readonly module: string;
  readonly endpoint: string;
  readonly tableName: string;
  readonly name: string;
  readonly worker: number;
  readonly orderIds: readonly string[];
}

export interface Receipt {
  readonly orderId: string;
  readonly worker: number;
  readonly requestId: string;
}

export type CallerOutcome =
  | { readonly value: Receipt; readonly requestId: string }
  | { readonly error: { readonly name: string; readonly code?: string }; readonly requestId: string };

export interface RoundReport {
  readonly outcomes: CallerOutcome[];
  readonly executed: string[];
}

const effectId = (name: string, orderId: string): string => `effect#${name}#${orderId}`;

const { endpoint, tableName, name, worker, orderIds } = workerData as InvocationsData;
const store = new DynamoDBStore({ tableName, client: localClient(endpoint) });
let executed: string[] = [];

const handler = middy(async (order: { orderId: string }, context: Context): Promise<Receipt> => {
  executed.push(order.orderId);
  transaction().put({ TableName: tableName, Item: { id: effectId(name, order.orderId), worker, requestId: context.awsRequestId } });
  return { orderId: order.orderId, worker, requestId: context.awsRequestId };
}).use(idempotency({ store, name, key: (order: { orderId: string }) => order.orderId, transactions: true }));

async function round(): Promise<RoundReport> {
  executed = [];
  const outcomes = await Promise.all(
    orderIds.map(async (orderId): Promise<CallerOutcome> => {
      const context = lambdaContext(name);
      try {
        return { value: await handler({ orderId }, context), requestId: context.awsRequestId };
      } catch (error) {
        const { name: errorName, code } = error as { name: string; code?: string };
        return { error: { name: errorName, ...(code === undefined ? {} : { code }) }, requestId: context.awsRequestId };
      }
    }),
  );
  return { outcomes, executed };
}

parentPort!.on('message', () => void round().then((report) => parentPort!.postMessage(report)));
parentPort!.postMessage('ready');
