/**
 * Section 2: in-process overhead per call on a zero-latency DynamoDB stand-in, over a bare middy
 * handler, at two event sizes. To split each library's overhead into the SDK's command plumbing
 * and the library's own work, the exact commands the library sent are captured once and replayed
 * with bare `client.send` calls on the same stand-in, interleaved with everything else.
 */

import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { type AttributeValue, DeleteItemCommand, type DynamoDBClient, GetItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { hashKey } from './library.js';
import { enterProcessState } from './process-state.js';
import { StandIn } from './stand-in.js';
import { measureCall, rotation, type Summary, summarize } from './stats.js';
import { bareSubject, type HandlerState, LIBRARIES, type Library, lambdaContext, makeEvent, type OrderEvent, RETENTION_SECONDS, subject } from './subjects.js';

type Item = Record<string, AttributeValue>;

export interface OverheadPlan {
  readonly label: string;
  readonly bytes: number;
  readonly warmup: number;
  readonly samples: number;
}

export type OverheadScenario = 'first call' | 'replay';

interface Split {
  /** Library median − bare handler median. */
  readonly median: number;
  /** Median of the library's own requests replayed with bare `client.send` calls. */
  readonly plumbing: number;
  /** `median − plumbing`: the library's own work. */
  readonly own: number;
}

export interface OverheadResult {
  readonly size: string;
  readonly eventBytes: number;
  readonly scenario: OverheadScenario;
  readonly warmup: number;
  /** Per-call latency, µs, of the bare middy handler. */
  readonly bare: Summary;
  /** Per-call latency, µs, of the same handler made idempotent. */
  readonly lib: Record<Library, Summary>;
  /** The requests each library made per call, as replayed for the plumbing figure. */
  readonly requests: Record<Library, string[]>;
  /** µs per call of the library's requests replayed with bare sends (no library code). */
  readonly plumbing: Record<Library, Summary>;
  /** Deriving the record key from the event once: ours SHA-256 of canonical JSON, Powertools MD5 of deep-sorted JSON. */
  readonly keyDerivation: Record<Library, Summary>;
  /** Key derivations per call: Powertools hashes the event again when it saves the result. */
  readonly keyDerivationsPerCall: Record<Library, number>;
  /** Wall clock, µs over the bare handler; `p99` is the library's p99 minus the bare handler's. */
  readonly overhead: Record<Library, Split & { readonly p99: number }>;
  /** The same split on CPU time (user + system) per call: robust to other load on the machine. */
  readonly cpuOverhead: Record<Library, Split>;
}

export async function measureOverhead(plans: readonly OverheadPlan[], replayItems: Record<Library, Item>): Promise<OverheadResult[]> {
  const results: OverheadResult[] = [];
  for (const plan of plans) {
    for (const scenario of ['first call', 'replay'] as const) results.push(await measureOne(plan, scenario, replayItems));
  }
  return results;
}

/** Powertools' key derivation, called as its persistence layer calls it (a protected method). */
function powertoolsKeyDerivation(): (event: OrderEvent) => string {
  const layer = new DynamoDBPersistenceLayer({ tableName: 'bench-stand-in', awsSdkV3Client: new StandIn().client() });
  layer.configure({ config: new IdempotencyConfig({ expiresAfterSeconds: RETENTION_SECONDS }) });
  const derive = (layer as unknown as { getHashedIdempotencyKey(data: unknown): string }).getHashedIdempotencyKey.bind(layer);
  return (event) => derive(event);
}

const COMMANDS = { PutItem: PutItemCommand, UpdateItem: UpdateItemCommand, DeleteItem: DeleteItemCommand, GetItem: GetItemCommand } as const;
type Operation = keyof typeof COMMANDS;

interface Captured {
  readonly operation: Operation;
  readonly input: object;
}

/** Records the inputs of the commands a client sends, until {@link stopCapture}. */
function capture(client: DynamoDBClient): Captured[] {
  const captured: Captured[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = String(context.commandName).replace(/Command$/, '') as Operation;
      if (!(operation in COMMANDS)) throw new Error(`bench: unexpected command ${operation}`);
      captured.push({ operation, input: structuredClone(args.input as object) });
      return next(args);
    },
    { step: 'initialize', priority: 'high', name: 'benchCapture' },
  );
  return captured;
}

/** Takes the capture out of the client's stack: the measured calls then run without it, as the replayed requests do. */
function stopCapture(client: DynamoDBClient): void {
  client.middlewareStack.remove('benchCapture');
}

/** A first call runs the handler once and a replay never: any other count is not the call the bench means to time. */
function checkExecutions(library: Library, scenario: OverheadScenario, executions: number): void {
  const expected = scenario === 'first call' ? 1 : 0;
  if (executions !== expected) throw new Error(`bench: a ${scenario} of ${library} ran the handler ${executions} times instead of ${expected}`);
}

/** Sends the captured requests in order, as the library would, without any library code. */
async function replayRequests(client: DynamoDBClient, requests: readonly Captured[]): Promise<void> {
  for (const { operation, input } of requests) {
    const Command = COMMANDS[operation] as new (input: object) => PutItemCommand;
    try {
      await client.send(new Command(input));
    } catch {
      // A refused PutItem is what a replay's request meets.
    }
  }
}

async function measureOne(plan: OverheadPlan, scenario: OverheadScenario, replayItems: Record<Library, Item>): Promise<OverheadResult> {
  const context = lambdaContext();
  const base = makeEvent('overhead', plan.bytes);
  const eventBytes = JSON.stringify(base).length;

  // Per library: a stand-in for the subject, and one for replaying its captured requests.
  const standIns = {} as Record<Library, { subject: StandIn; sdk: StandIn }>;
  const handlers = { bare: bareSubject().handler } as Record<Library | 'bare', ReturnType<typeof bareSubject>['handler']>;
  const sdkClients = {} as Record<Library, DynamoDBClient>;
  const requests = {} as Record<Library, Captured[]>;
  const states = {} as Record<Library, HandlerState>;
  for (const library of LIBRARIES) {
    const pair = { subject: new StandIn(), sdk: new StandIn() };
    if (scenario === 'replay') for (const s of Object.values(pair)) s.refusePutWith(replayItems[library]);
    standIns[library] = pair;
    const client = pair.subject.client();
    const captured = capture(client);
    const target = subject(library, { client, tableName: 'bench-stand-in' });
    handlers[library] = target.handler;
    states[library] = target.state;
    enterProcessState(library === 'ours' ? 'ours' : 'other');
    await handlers[library]({ ...base, orderId: 'capture' }, context);
    checkExecutions(library, scenario, target.state.executions);
    stopCapture(client);
    requests[library] = [...captured];
    sdkClients[library] = pair.sdk.client();
  }
  enterProcessState('other');
  const derive = { ours: (event: OrderEvent) => hashKey(event), powertools: powertoolsKeyDerivation() };

  const variants = ['bare', 'ours', 'powertools', 'sdk (ours)', 'sdk (powertools)', 'key (ours)', 'key (powertools)'] as const;
  const wall: Record<string, number[]> = Object.fromEntries(variants.map((v) => [v, []]));
  const cpu: Record<string, number[]> = Object.fromEntries(variants.map((v) => [v, []]));

  for (let round = 0; round < plan.warmup + plan.samples; round++) {
    // A first call needs a key never seen before: each round has its own orderId, and every
    // variant receives its own copy of the same event.
    const orderId = scenario === 'first call' ? `o-${round}` : 'replayed';
    for (const variant of rotation(variants, round)) {
      const event: OrderEvent = { ...base, orderId };
      enterProcessState(variant === 'ours' || variant === 'key (ours)' ? 'ours' : 'other');
      let call: () => unknown;
      if (variant === 'bare' || variant === 'ours' || variant === 'powertools') {
        const handler = handlers[variant];
        call = () => handler(event, context);
      } else if (variant === 'key (ours)' || variant === 'key (powertools)') {
        const fn = derive[variant === 'key (ours)' ? 'ours' : 'powertools'];
        call = () => fn(event);
      } else {
        const library: Library = variant === 'sdk (ours)' ? 'ours' : 'powertools';
        call = () => replayRequests(sdkClients[library], requests[library]);
      }
      const library = variant === 'ours' || variant === 'powertools' ? variant : undefined;
      const executionsBefore = library === undefined ? 0 : states[library].executions;
      const time = await measureCall(call);
      if (library !== undefined) checkExecutions(library, scenario, states[library].executions - executionsBefore);
      if (round >= plan.warmup) {
        wall[variant]!.push(time.wall);
        cpu[variant]!.push(time.cpu);
      }
    }
  }
  enterProcessState('other');
  for (const client of Object.values(sdkClients)) client.destroy();

  const w = Object.fromEntries(variants.map((v) => [v, summarize(wall[v]!)])) as Record<(typeof variants)[number], Summary>;
  const c = Object.fromEntries(variants.map((v) => [v, summarize(cpu[v]!)])) as Record<(typeof variants)[number], Summary>;
  const overhead = {} as OverheadResult['overhead'];
  const cpuOverhead = {} as OverheadResult['cpuOverhead'];
  for (const library of LIBRARIES) {
    const sdk = `sdk (${library})` as const;
    const median = w[library].median - w.bare.median;
    overhead[library] = { median, p99: w[library].p99 - w.bare.p99, plumbing: w[sdk].median, own: median - w[sdk].median };
    const cpuMedian = c[library].median - c.bare.median;
    cpuOverhead[library] = { median: cpuMedian, plumbing: c[sdk].median, own: cpuMedian - c[sdk].median };
  }
  return {
    size: plan.label,
    eventBytes,
    scenario,
    warmup: plan.warmup,
    bare: w.bare,
    lib: { ours: w.ours, powertools: w.powertools },
    requests: { ours: requests.ours.map((r) => r.operation), powertools: requests.powertools.map((r) => r.operation) },
    plumbing: { ours: w['sdk (ours)'], powertools: w['sdk (powertools)'] },
    keyDerivation: { ours: w['key (ours)'], powertools: w['key (powertools)'] },
    keyDerivationsPerCall: { ours: 1, powertools: scenario === 'first call' ? 2 : 1 },
    overhead,
    cpuOverhead,
  };
}
