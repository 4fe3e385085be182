/**
 * Section 1 (and the data of section 6): DynamoDB requests per call, counted by an SDK middleware on
 * DynamoDB Local, for the same scenarios run by both libraries, alternating which goes first.
 */
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { type CallCost, keyOf, priceCall } from './cost.js';
import { itemSize } from './item-size.js';
import { benchClient, readItem, type Tables } from './local.js';
import { RequestCounter } from './request-counter.js';
import { rotation } from './stats.js';
import { errorCode, holdGate, LIBRARIES, type Library, lambdaContext, makeEvent, type OrderEvent, type Subject, subject } from './subjects.js';

type Item = Record<string, AttributeValue>;

export const SCENARIOS = [
  'first call',
  'replay',
  'replay, local cache',
  'in-progress rejection',
  'handler error',
  'first call, 40 KB response',
  'replay, 40 KB response',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface CallRecord {
  readonly scenario: Scenario;
  readonly library: Library;
  readonly requests: number;
  readonly operations: string[];
  /** `ran`, `replayed`, or the error code. */
  readonly outcome: string;
  readonly cost: CallCost;
}

export interface RoundTrips {
  readonly calls: CallRecord[];
  /** The COMPLETED record each library stored for a 1 KB event: the stand-in's replay answer. */
  readonly replayItems: Record<Library, Item>;
  /** Bytes of the stored records, by library. */
  readonly recordBytes: Record<Library, { inProgress: number; completed: number; completedLarge: number }>;
}

interface Rig {
  readonly client: DynamoDBClient;
  readonly counter: RequestCounter;
  readonly plain: Subject;
  readonly cached: Subject;
  /** The same handler in another container: its duplicates meet the record, not the in-process single-flight. */
  readonly elsewhere: Subject;
  readonly sizes: Map<string, number>;
  readonly tableName: string;
}

export async function measureRoundTrips(endpoint: string, tables: Tables, inspect: DynamoDBClient): Promise<RoundTrips> {
  const rigs = {} as Record<Library, Rig>;
  for (const library of LIBRARIES) {
    const client = benchClient(endpoint);
    const counter = new RequestCounter().attach(client, 'id', true);
    const tableName = tables[library];
    rigs[library] = {
      client,
      counter,
      tableName,
      plain: subject(library, { client, tableName }),
      cached: subject(library, { client, tableName, cacheSize: 100 }),
      elsewhere: subject(library, { client, tableName }),
      sizes: new Map(),
    };
  }
  const context = lambdaContext();
  const calls: CallRecord[] = [];
  const replayItems = {} as Record<Library, Item>;
  const recordBytes = {} as RoundTrips['recordBytes'];

  const call = async (scenario: Scenario, library: Library, target: Subject, event: OrderEvent): Promise<CallRecord> => {
    const rig = rigs[library];
    const mark = rig.counter.mark();
    const before = target.state.executions;
    let outcome: string;
    try {
      await target.handler(event, context);
      outcome = target.state.executions > before ? 'ran' : 'replayed';
    } catch (error) {
      outcome = target.state.executions > before ? `ran, then ${errorCode(error)}` : errorCode(error);
    }
    const requests = rig.counter.since(mark);
    // Updates do not carry their after-image: read each touched item once the call is over.
    const after = new Map<string, number>();
    for (const request of requests) {
      if (request.key && !after.has(keyOf(request.key))) {
        const item = await readItem(inspect, rig.tableName, request.key);
        if (item) after.set(keyOf(request.key), itemSize(item));
      }
    }
    const record = {
      scenario,
      library,
      requests: requests.length,
      operations: requests.map((r) => (r.ok ? r.operation : `${r.operation}✗`)),
      outcome,
      cost: priceCall(requests, rig.sizes, (key) => after.get(key)),
    };
    calls.push(record);
    return record;
  };

  let round = 0;
  for (const library of rotation(LIBRARIES, round++)) {
    const rig = rigs[library];
    const event = makeEvent(`rt-${library}-a`, 1024);
    await call('first call', library, rig.plain, event);
    const mark = rig.counter.mark();
    await call('replay', library, rig.plain, { ...event });
    const existing = rig.counter.since(mark)[0]?.existing;
    if (!existing) throw new Error(`${library}: the replay's refused PutItem returned no item (ALL_OLD)`);
    replayItems[library] = existing;
  }
  for (const library of rotation(LIBRARIES, round++)) {
    const rig = rigs[library];
    const event = makeEvent(`rt-${library}-b`, 1024);
    await rig.cached.handler(event, context); // fills the local cache; counted above as 'first call'
    await call('replay, local cache', library, rig.cached, { ...event });
  }
  for (const library of rotation(LIBRARIES, round++)) {
    const rig = rigs[library];
    const gateId = `gate-${library}`;
    const gate = holdGate(gateId);
    const event = { ...makeEvent(`rt-${library}-c`, 1024), hold: gateId };
    const holder = rig.plain.handler(event, context);
    await gate.entered;
    const mark = rig.counter.mark();
    await call('in-progress rejection', library, rig.elsewhere, { ...event });
    const inProgress = rig.counter.since(mark)[0]?.existing;
    gate.release();
    await holder;
    const completed = replayItems[library];
    recordBytes[library] = { inProgress: inProgress ? itemSize(inProgress) : Number.NaN, completed: itemSize(completed), completedLarge: Number.NaN };
  }
  for (const library of rotation(LIBRARIES, round++)) {
    await call('handler error', library, rigs[library].plain, { ...makeEvent(`rt-${library}-d`, 1024), fail: true });
  }
  for (const library of rotation(LIBRARIES, round++)) {
    const rig = rigs[library];
    const event = { ...makeEvent(`rt-${library}-e`, 40 * 1024), echo: true };
    await call('first call, 40 KB response', library, rig.plain, event);
    const mark = rig.counter.mark();
    await call('replay, 40 KB response', library, rig.plain, { ...event });
    const existing = rig.counter.since(mark)[0]?.existing;
    recordBytes[library].completedLarge = existing ? itemSize(existing) : Number.NaN;
  }
  for (const rig of Object.values(rigs)) rig.client.destroy();
  return { calls, replayItems, recordBytes };
}
