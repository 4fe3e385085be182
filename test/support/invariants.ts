/**
 * The invariants every fault, soak and model run must keep, checked from the outside: a ledger of
 * the handler's executions and of what every caller got, and the records left in the table.
 *
 * - No handler runs twice for one key: at most one execution per key succeeds, none starts
 *   after one succeeded, and none starts while another is still running (within the retention and
 *   the lease: runs that advance the clock past a lease check the recovery separately).
 * - Every caller gets the handler's result (its own execution's, or the stored one replayed), its
 *   own execution's error, or a typed `IdempotencyError`. A `STORE_FAILURE` or `IN_PROGRESS` caller
 *   ran nothing.
 * - No record is stuck: COMPLETED records hold the successful execution's response; INPROGRESS
 *   records end at their lease.
 */

import { gunzipSync } from 'node:zlib';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IdempotencyError, type IdempotencyErrorCode } from '../../lib/index.js';
import { scanItems } from './dynamodb.js';

export interface Execution {
  readonly key: string;
  /** The call that ran it. */
  readonly call: number;
  /** 0 for the key's first execution. */
  readonly index: number;
  outcome: 'running' | 'ok' | 'threw';
  value?: unknown;
  error?: unknown;
}

export type Settled = { readonly kind: 'value'; readonly value: unknown } | { readonly kind: 'error'; readonly error: unknown };

export interface CallRecord {
  readonly id: number;
  readonly key: string;
  settled?: Settled;
  millis?: number;
}

/** The handler's own failure (a random or scheduled one), told apart from the library's errors. */
export class HandlerError extends Error {
  override readonly name = 'HandlerError';
  constructor(
    readonly key: string,
    readonly call: number,
  ) {
    super(`handler failed for ${key} (call ${call})`);
  }
}

export interface LedgerOptions {
  /** Codes a caller may get in this run. @default IN_PROGRESS and STORE_FAILURE */
  readonly allowedCodes?: readonly IdempotencyErrorCode[];
}

export class Ledger {
  readonly executions: Execution[] = [];
  readonly calls: CallRecord[] = [];
  private readonly executionsByKey = new Map<string, Execution[]>();
  private readonly executionByCall = new Map<number, Execution>();
  /** Executions that started while another of their key was still running, as sentences. */
  private readonly overlaps: string[] = [];
  private readonly allowedCodes: readonly IdempotencyErrorCode[];
  private nextCall = 0;

  constructor(options: LedgerOptions = {}) {
    this.allowedCodes = options.allowedCodes ?? ['IN_PROGRESS', 'STORE_FAILURE'];
  }

  /** Called first thing in the handler. */
  start(key: string, call: number): Execution {
    const list = this.executionsByKey.get(key) ?? [];
    // A second execution while the first still runs is a double run, whether or not the first then fails.
    const running = list.find((e) => e.outcome === 'running');
    if (running) this.overlaps.push(`${key}: execution ${list.length} started while execution ${running.index} was still running`);
    const execution: Execution = { key, call, index: list.length, outcome: 'running' };
    list.push(execution);
    this.executionsByKey.set(key, list);
    this.executionByCall.set(call, execution);
    this.executions.push(execution);
    return execution;
  }

  succeed<T>(execution: Execution, value: T): T {
    execution.outcome = 'ok';
    execution.value = value;
    return value;
  }

  fail(execution: Execution): never {
    const error = new HandlerError(execution.key, execution.call);
    execution.outcome = 'threw';
    execution.error = error;
    throw error;
  }

  /** Makes one call with a fresh call id and records what its caller got. */
  async call(key: string, send: (call: number) => Promise<unknown>): Promise<CallRecord> {
    const record: CallRecord = { id: this.nextCall++, key };
    this.calls.push(record);
    const started = performance.now();
    try {
      record.settled = { kind: 'value', value: await send(record.id) };
    } catch (error) {
      record.settled = { kind: 'error', error };
    }
    record.millis = performance.now() - started;
    return record;
  }

  executionsOf(key: string): readonly Execution[] {
    return this.executionsByKey.get(key) ?? [];
  }

  /** The key's successful execution, if any. */
  success(key: string): Execution | undefined {
    return this.executionsOf(key).find((e) => e.outcome === 'ok');
  }

  /** Keys whose handler succeeded more than once, or ran again after it had succeeded. */
  duplicateExecutions(): string[] {
    const keys: string[] = [];
    for (const [key, list] of this.executionsByKey) {
      const first = list.findIndex((e) => e.outcome === 'ok');
      if (first >= 0 && list.length > first + 1) keys.push(key);
    }
    return keys;
  }

  /** How many keys had n executions, and the most successful executions of one key. */
  executionsPerKey(): { readonly histogram: Record<string, number>; readonly maxSucceeded: number } {
    const histogram: Record<string, number> = {};
    let maxSucceeded = 0;
    for (const list of this.executionsByKey.values()) {
      histogram[list.length] = (histogram[list.length] ?? 0) + 1;
      maxSucceeded = Math.max(maxSucceeded, list.filter((e) => e.outcome === 'ok').length);
    }
    return { histogram, maxSucceeded };
  }

  /** What callers got: `value`, `replay`, `handler error` or an `IdempotencyError` code. */
  outcomes(): Record<string, number> {
    const counts: Record<string, number> = {};
    const add = (name: string): void => void (counts[name] = (counts[name] ?? 0) + 1);
    for (const call of this.calls) {
      if (call.settled === undefined) add('never settled');
      else if (call.settled.kind === 'value') add(this.executionByCall.has(call.id) ? 'value' : 'replay');
      else if (call.settled.error instanceof IdempotencyError) add(call.settled.error.code);
      else if (call.settled.error instanceof HandlerError) add('handler error');
      else add(`unexpected ${(call.settled.error as Error)?.name}`);
    }
    return counts;
  }

  /** Every broken invariant of the callers and executions, as sentences; empty when all hold. */
  violations(): string[] {
    const problems = this.duplicateExecutions().map((key) => `${key}: the handler ran again after it had succeeded`);
    problems.push(...this.overlaps);
    for (const call of this.calls) {
      const { settled } = call;
      if (settled === undefined) continue; // a crashed invocation: its caller gets nothing
      const own = this.executionByCall.get(call.id);
      const at = `call ${call.id} (${call.key})`;
      if (settled.kind === 'value') {
        if (own) {
          if (own.outcome !== 'ok' || settled.value !== own.value) problems.push(`${at}: got a value that is not its own execution's result`);
          continue;
        }
        const success = this.success(call.key);
        if (!success) problems.push(`${at}: got a value although no execution succeeded`);
        else if (JSON.stringify(settled.value) !== JSON.stringify(success.value))
          problems.push(`${at}: replayed ${JSON.stringify(settled.value)}, stored ${JSON.stringify(success.value)}`);
        continue;
      }
      const { error } = settled;
      if (error instanceof HandlerError) {
        if (!own || own.error !== error) problems.push(`${at}: got another execution's handler error`);
      } else if (error instanceof IdempotencyError) {
        if (!this.allowedCodes.includes(error.code)) problems.push(`${at}: unexpected ${error.code}`);
        if (own && (error.code === 'STORE_FAILURE' || error.code === 'IN_PROGRESS')) problems.push(`${at}: ${error.code} after the handler ran`);
      } else {
        problems.push(`${at}: an untyped error reached the caller: ${String(error)}`);
      }
    }
    return problems;
  }

  /**
   * Broken invariants of the records: a COMPLETED record must hold the key's successful result; an
   * INPROGRESS record must end by `leaseEnd` (and is only allowed when `inProgressAllowed`).
   */
  recordViolations(records: readonly StoredRecord[], keyOf: (recordId: string) => string | undefined, leaseEnd: number, inProgressAllowed: boolean): string[] {
    const problems: string[] = [];
    for (const record of records) {
      const key = keyOf(record.id);
      if (key === undefined) {
        problems.push(`${record.id}: a record no call made`);
        continue;
      }
      if (record.status === 'COMPLETED') {
        const success = this.success(key);
        if (!success) problems.push(`${key}: COMPLETED although no execution succeeded`);
        else if (record.response !== JSON.stringify(success.value))
          problems.push(`${key}: stored ${record.response}, the execution returned ${JSON.stringify(success.value)}`);
      } else if (!inProgressAllowed) {
        problems.push(`${key}: left INPROGRESS`);
      } else if (record.leaseUntil === undefined || record.leaseUntil > leaseEnd) {
        problems.push(`${key}: INPROGRESS with a lease (${record.leaseUntil}) beyond ${leaseEnd}`);
      }
    }
    return problems;
  }
}

export interface StoredRecord {
  readonly id: string;
  readonly status: string;
  readonly owner: string | undefined;
  readonly leaseUntil: number | undefined;
  readonly response: string | undefined;
}

/** Every record whose id starts with `prefix`, read consistently. */
export async function scanRecords(client: DynamoDBClient, tableName: string, prefix: string): Promise<StoredRecord[]> {
  return (await scanItems(client, tableName, prefix)).map((item) => ({
    id: item.id!.S!,
    status: item.status?.S ?? '(none)',
    owner: item.owner?.S,
    leaseUntil: item.leaseUntil?.N === undefined ? undefined : Number(item.leaseUntil.N),
    response: item.response?.S ?? (item.response?.B ? gunzipSync(item.response.B).toString('utf8') : undefined),
  }));
}

/** The p-th percentile (0–100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
