/**
 * The consumer side of the batch tests: its table, clock and context, a logger that keeps its
 * lines, and what a batch response reports.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Context, SQSRecord } from 'aws-lambda';
import type { BatchResponse, DynamoDBStore } from '../../lib/index.js';
import { SENT } from './batch-events.js';
import { testClient, useTablePerTest } from './dynamodb.js';
import { lambdaContext } from './lambda.js';

/**
 * A client of DynamoDB Local, destroyed after the file's tests, and a fresh idempotency table for
 * each test, handed to `use` before it runs.
 */
export function useConsumerTables(prefix: string, use: (fresh: { tableName: string; store: DynamoDBStore }) => void): DynamoDBClient {
  const client = testClient();
  useTablePerTest(client, prefix, use);
  afterAll(() => client.destroy());
  return client;
}

/** The consumer's clock: a minute after the test messages were sent. */
export const consumerClock = () => SENT + 60_000;

/** The context of every invocation of the consumer: two minutes left. */
export const consumerContext = (): Context => lambdaContext('order-consumer', 120_000);

/** A logger that keeps its lines instead of printing them. */
export function quiet() {
  const lines: string[] = [];
  return { lines, warn: (line: string) => void lines.push(line), error: (line: string) => void lines.push(line) };
}

/** The identifiers a batch response reports failed, in its order. */
export const failuresOf = (response: BatchResponse) => response.batchItemFailures.map((failure) => failure.itemIdentifier);

/** The message ids of SQS records. */
export const ids = (...records: SQSRecord[]) => records.map((record) => record.messageId);
