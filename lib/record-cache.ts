import type { IdempotencyRecord } from './store.js';

/** A small LRU of completed records. */
export class RecordCache {
  readonly #records = new Map<string, IdempotencyRecord>();
  readonly #size: number;

  constructor(size: number) {
    this.#size = size;
  }

  get(key: string, now: number): IdempotencyRecord | undefined {
    const record = this.#records.get(key);
    if (record === undefined) return undefined;
    this.#records.delete(key);
    if (record.expiresAt * 1000 <= now) return undefined;
    this.#records.set(key, record);
    return record;
  }

  set(record: IdempotencyRecord): void {
    this.#records.delete(record.key);
    this.#records.set(record.key, record);
    if (this.#records.size > this.#size) this.#records.delete(this.#records.keys().next().value!);
  }
}
