/**
 * InMemoryStore answers as DynamoDBStore does: the same seeded sequence of claims, completions,
 * releases, inspections and deletions, with clocks, leases and retentions on and around each
 * other's boundaries (the exact millisecond, the second of a retention, a fraction of a
 * millisecond), gets the same answers from both, so a unit test that passes on the one passes on
 * DynamoDB.
 */
import type { IdempotencyRecord, IdempotencyStore } from '../../lib/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { useFreshTable } from '../support/dynamodb.js';

const { store: dynamodb } = useFreshTable({ prefix: 'parity' });

/** A small deterministic generator (a linear congruential one): the same sequence on every run. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x80000000;
  };
}

/** A refusal's record without the stored outcome, which a store may leave out there (the engine never reads it). */
function withoutOutcome(result: object): object {
  if (!('record' in result) || result.record === undefined) return result;
  const { response: _response, error: _error, responseOmitted: _omitted, ...state } = result.record as IdempotencyRecord;
  return { ...result, record: state };
}

test('the same operations at every boundary get the same answers from InMemoryStore and DynamoDBStore', async () => {
  const memory = new InMemoryStore();
  const next = random(20_260_101);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)]!;
  const t0 = Date.parse('2030-01-01T00:00:00Z');
  const seconds = t0 / 1000;
  const keys = ['a', 'b'].map((label) => `parity-${Date.now()}#${label}`);
  const differences: string[] = [];
  for (let step = 0; step < 300; step++) {
    const key = pick(keys);
    const owner = pick(['owner-1', 'owner-2', 'owner-3']);
    const operations: Record<string, () => [string, (store: IdempotencyStore) => Promise<object | boolean | undefined>]> = {
      claim: () => {
        const request = {
          key,
          owner,
          now: t0 + pick([-1, 0, 0.5, 1, 999, 1000, 1001]),
          leaseUntil: t0 + pick([0, 1, 1000]),
          expiresAt: seconds + pick([-1, 0, 1, 3600]),
          ...(next() < 0.5 ? { fingerprint: 'fp' } : {}),
        };
        return [`claim ${JSON.stringify(request)}`, (store) => store.claim(request)];
      },
      complete: () => {
        const request = {
          key,
          owner,
          expiresAt: seconds + pick([0, 1, 3600]),
          response: pick([undefined, '"x"', 'null']),
          ...(next() < 0.2 ? { error: '{"name":"Declined"}' } : {}),
          ...(next() < 0.1 ? { responseOmitted: true } : {}),
        };
        return [`complete ${JSON.stringify(request)}`, async (store) => withoutOutcome(await store.complete(request))];
      },
      release: () => [`release ${key} by ${owner}`, async (store) => withoutOutcome(await store.release({ key, owner }))],
      inspect: () => [`inspect ${key}`, (store) => store.inspect!(key)],
      forget: () => {
        const onlyIf = pick([undefined, 'COMPLETED', 'INPROGRESS'] as const);
        return [`forget ${key} ${onlyIf}`, (store) => store.forget!(key, onlyIf)];
      },
    };
    const [what, run] = operations[pick(['claim', 'claim', 'complete', 'release', 'inspect', 'forget'])]!();
    const [inMemory, onDynamoDB] = [JSON.stringify(await run(memory)), JSON.stringify(await run(dynamodb))];
    if (inMemory !== onDynamoDB) differences.push(`${step}: ${what}\n  InMemoryStore: ${inMemory}\n  DynamoDBStore: ${onDynamoDB}`);
  }
  expect(differences).toEqual([]);
});
