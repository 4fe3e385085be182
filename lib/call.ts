import type { TransactWriteItem } from '@aws-sdk/client-dynamodb';
import type { IdempotencyStore, RecordItem } from './store.js';
import type { Transaction } from './transaction.js';

/**
 * How a call holds its record: `claimed` (an INPROGRESS record with this owner exists), `atomic`
 * (nothing is written until the call ends; its completion creates the record), or `unkeyed` (the
 * key is missing and `onMissingKey` is 'skip': no record, no transaction).
 */
export type CallMode = 'claimed' | 'atomic' | 'unkeyed';

/**
 * When the store requests of a call must have answered, by the monotonic clock
 * (`performance.now()`: Lambda's deadline is real time, timers run on it, and a wall clock may
 * step). No wait of the call lasts past `at` either. @internal
 */
export interface AnswerBy {
  /** A tenth of the call's time left, at most 100 ms, before its deadline: kept for the call to answer after a request it gave up on. */
  readonly at: number;
  /** The Lambda deadline. */
  readonly deadline: number;
  /** Whether the context's time left has been seen running down with real time, as Lambda's does. */
  readonly live: () => boolean;
}

/**
 * The state of one idempotent call, from its claim to its end: record key, owner token,
 * fingerprint, mode, lease, deadline bounds, tenant, the DynamoDB writes added through
 * `transaction()`, and whether its function has returned and the call has ended. The engine
 * creates it and ends it (once); entry points carry it, and mark its function returned where they
 * see it return. `transaction()` gives the function a {@link Transaction} view of it. @internal
 */
export class Call {
  readonly writes: TransactWriteItem[] = [];
  #ended = false;
  #abandoned = false;
  #returned = false;

  constructor(
    readonly key: string,
    readonly owner: string,
    readonly fingerprint: string | undefined,
    readonly mode: CallMode,
    /** When the call started (epoch ms): an atomic call's claim is judged at this instant. */
    readonly startedAt: number,
    /** Whether the store can commit writes with the record. */
    readonly transactional: boolean,
    /**
     * The time left (ms) until the Lambda invocation running it ends, by the clock of the engine
     * that started it, when known: calls nested in it given no context end by then too.
     */
    readonly timeLeft?: () => number,
    /**
     * When its store requests must have answered, so that the call still answers before the Lambda
     * deadline, when known: calls nested in it end by then too.
     */
    readonly answerBy?: AnswerBy,
    /** Until when its record holds the key for it (epoch ms, the engine's clock), when it claimed one. */
    readonly leaseUntil?: number,
    /** The tenant of the invocation running it (Lambda's tenant isolation mode), when known: calls nested in it given no context are that tenant's too. */
    readonly tenant?: string,
    /** The store of its record, when it names the record's item (only `transaction()` asks, so only a call with writes pays for it). */
    private readonly itemStore?: Pick<IdempotencyStore, 'recordItem'>,
  ) {}

  /** The item its record is kept in, when the store tells it: its commit writes that item, so no write of the call may name it. */
  get recordItem(): RecordItem | undefined {
    return this.itemStore?.recordItem?.(this.key);
  }

  /**
   * Marks the call ended; `false` when it had already ended (so it ends exactly once). `abandoned`:
   * with its outcome unknown, its function may still be running.
   */
  end(abandoned = false): boolean {
    if (this.#ended) return false;
    this.#ended = true;
    this.#abandoned = abandoned;
    return true;
  }

  get isEnded(): boolean {
    return this.#ended;
  }

  get isAbandoned(): boolean {
    return this.#abandoned;
  }

  /**
   * Marks the call's function as returned (or thrown): its outcome is settled, so writes that work
   * it left running adds later are refused, also before the call ends (while middy runs the
   * `after` hooks between the handler and the idempotency middleware).
   */
  functionReturned(): void {
    this.#returned = true;
  }

  get hasReturned(): boolean {
    return this.#returned;
  }
}
