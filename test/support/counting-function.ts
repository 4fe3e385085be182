/**
 * A function made idempotent on DynamoDB Local in each way a call can commit (its record alone, a
 * transaction written with its record, atomic), which counts its runs and, outside plain mode,
 * increments a counter in a business table with its record. The two counts tell whether the
 * function ran twice and whether its writes committed once, whatever became of its outcome.
 */
import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { type DynamoDBStore, type IdempotencyLogger, makeIdempotent, transaction } from '../../lib/index.js';
import { readItem, recordId, useBusinessTable, useFreshTable } from './dynamodb.js';

export type Mode = 'plain' | 'transactions' | 'atomic';
export const MODES = ['plain', 'transactions', 'atomic'] as const;

/** The counting functions' clock at start. */
export const T0 = 1_700_000_000_000;
export const LEASE_SECONDS = 10;

export interface CountingTables {
  /** The client that creates, inspects and drops both tables. */
  readonly client: DynamoDBClient;
  /** The idempotency table. */
  readonly tableName: string;
  /** The business table the counters are in. */
  readonly bizTable: string;
  /** How many times an increment of the counter `id` was applied (0 when it does not exist). */
  applied(id: string): Promise<number>;
  /**
   * `body` made idempotent on `store` (whose table must be `tableName`) in `mode`, keyed by the
   * input's `id`, on a clock the test moves, every error final.
   */
  countingFunction<R>(
    mode: Mode,
    store: DynamoDBStore,
    body: (input: { id: string }) => R,
    options?: { errorFields?: string[]; logger?: IdempotencyLogger },
  ): CountingFunction<R>;
}

export interface CountingFunction<R> {
  /** The function's record namespace. */
  readonly name: string;
  /** The function's clock, in milliseconds since the epoch. */
  readonly clock: { t: number };
  readonly fn: (input: { id: string }) => Promise<R>;
  /** How many times `body` ran. */
  runs(): number;
  /** How many times the increment of the call `id` committed. */
  counter(id: string): Promise<number>;
  /** The record of the call `id`, read consistently. */
  record(id: string): ReturnType<typeof readItem>;
  /** Moves the clock past the lease: a record left INPROGRESS would be taken over and the function run again. */
  pastLease(): void;
}

/** A fresh idempotency table and a business table shared by the tests of one file. */
export function useCountingTables(prefix: string): CountingTables {
  const { client, tableName } = useFreshTable({ prefix });
  const bizTable = useBusinessTable(client);

  const applied = async (id: string): Promise<number> => Number((await readItem(client, bizTable, id))?.n?.N ?? 0);

  function countingFunction<R>(
    mode: Mode,
    store: DynamoDBStore,
    body: (input: { id: string }) => R,
    options: { errorFields?: string[]; logger?: IdempotencyLogger; cacheSize?: number } = {},
  ) {
    const name = `f${randomUUID().slice(0, 8)}`;
    const clock = { t: T0 };
    let runs = 0;
    const fn = makeIdempotent(
      async (input: { id: string }) => {
        runs++;
        if (mode !== 'plain')
          transaction().update({
            TableName: bizTable,
            Key: { id: `${name}-${input.id}` },
            UpdateExpression: 'ADD n :one',
            ExpressionAttributeValues: { ':one': 1 },
          });
        return body(input);
      },
      {
        store,
        name,
        key: (input) => input.id,
        now: () => clock.t,
        leaseSeconds: LEASE_SECONDS,
        transactions: mode === 'transactions',
        atomic: mode === 'atomic',
        isFinalError: () => true,
        errorFields: options.errorFields ?? [],
        ...(options.logger === undefined ? {} : { logger: options.logger }),
        ...(options.cacheSize === undefined ? {} : { cacheSize: options.cacheSize }),
      },
    );
    return {
      name,
      clock,
      fn,
      runs: () => runs,
      counter: (id: string) => applied(`${name}-${id}`),
      record: (id: string) => readItem(client, tableName, recordId(name, id)),
      pastLease: () => void (clock.t += (LEASE_SECONDS + 1) * 1000),
    };
  }

  return { client, tableName, bizTable, applied, countingFunction };
}
