/**
 * Section 3: end-to-end latency per call on DynamoDB Local, first call and replay, the libraries
 * alternating call by call; a bare conditional PutItem gives the round-trip floor.
 */
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { benchClient, type Tables } from './local.js';
import { enterProcessState } from './process-state.js';
import { measureCall, rotation, type Summary, summarize } from './stats.js';
import { LIBRARIES, type Library, lambdaContext, makeEvent, subject } from './subjects.js';

export interface EndToEnd {
  readonly warmup: number;
  readonly eventBytes: number;
  readonly first: Record<Library, Summary>;
  readonly replay: Record<Library, Summary>;
  readonly barePut: Summary;
  /** CPU time of this process per call (user + system), µs. */
  readonly firstCpu: Record<Library, Summary>;
  readonly replayCpu: Record<Library, Summary>;
}

export async function measureEndToEnd(endpoint: string, tables: Tables, warmup: number, samples: number): Promise<EndToEnd> {
  const context = lambdaContext();
  const clients = { ours: benchClient(endpoint), powertools: benchClient(endpoint), bare: benchClient(endpoint) };
  const subjects = {
    ours: subject('ours', { client: clients.ours, tableName: tables.ours }),
    powertools: subject('powertools', { client: clients.powertools, tableName: tables.powertools }),
  };
  const base = makeEvent('e2e', 1024);
  const times: Record<string, number[]> = {};
  const record = (name: string, value: number) => (times[name] ??= []).push(value);
  const run = `${Date.now().toString(36)}`;
  for (let round = 0; round < warmup + samples; round++) {
    for (const library of rotation([...LIBRARIES, 'bare'] as const, round)) {
      enterProcessState(library === 'ours' ? 'ours' : 'other');
      if (library === 'bare') {
        const put = new PutItemCommand({
          TableName: tables.ours,
          Item: { id: { S: `bare#${run}-${round}` }, status: { S: 'INPROGRESS' } },
          ConditionExpression: 'attribute_not_exists(#id)',
          ExpressionAttributeNames: { '#id': 'id' },
        });
        const { wall } = await measureCall(() => clients.bare.send(put));
        if (round >= warmup) record('bare', wall);
        continue;
      }
      const event = { ...base, orderId: `e2e-${run}-${round}` };
      const { handler, state } = subjects[library];
      const before = state.executions;
      const first = await measureCall(() => handler(event, context));
      const replay = await measureCall(() => handler({ ...event }, context));
      // The first call runs the handler and the replay does not: otherwise neither is the call timed here.
      if (state.executions - before !== 1)
        throw new Error(`bench: ${library} ran the handler ${state.executions - before} times for a first call and its replay`);
      if (round >= warmup) {
        record(`first ${library}`, first.wall);
        record(`first cpu ${library}`, first.cpu);
        record(`replay ${library}`, replay.wall);
        record(`replay cpu ${library}`, replay.cpu);
      }
    }
  }
  for (const client of Object.values(clients)) client.destroy();
  enterProcessState('other');
  const pick = (kind: string) => ({ ours: summarize(times[`${kind} ours`]!), powertools: summarize(times[`${kind} powertools`]!) });
  return {
    warmup,
    eventBytes: JSON.stringify(base).length,
    first: pick('first'),
    replay: pick('replay'),
    barePut: summarize(times.bare!),
    firstCpu: pick('first cpu'),
    replayCpu: pick('replay cpu'),
  };
}
