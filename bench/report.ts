/**
 * Turns the measurements into one table (stdout) and bench/results.json. Every row carries its
 * unit and sample size; the project's performance targets are checked where one is set.
 */
import { writeFile } from 'node:fs/promises';
import type { CallScopeCost, OffOn } from './call-scope.js';
import type { ColdStart } from './cold-start.js';
import type { ContentionRun } from './contention.js';
import { PRICES } from './cost.js';
import type { EndToEnd } from './e2e.js';
import type { ChildResults } from './node-child.js';
import type { OverheadResult } from './overhead.js';
import type { RedisComparison } from './redis.js';
import type { RoundTrips, Scenario } from './round-trips.js';
import { SCENARIOS } from './round-trips.js';
import type { SingleFlightRun } from './single-flight.js';
import { ratio, type Summary } from './stats.js';
import type { ModeCall } from './transaction-modes.js';

export interface Machine {
  readonly node: string;
  readonly cpu: string;
  readonly cores: number;
  readonly platform: string;
  readonly loadAverageBefore: number;
  readonly loadAverageAfter: number;
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly versions: Record<string, string>;
}

export interface Results {
  readonly machine: Machine;
  readonly notes: string[];
  readonly roundTrips: RoundTrips;
  readonly transactionModes: ModeCall[];
  readonly overhead: OverheadResult[];
  readonly endToEnd: EndToEnd;
  readonly coldStart: ColdStart;
  readonly contention: ContentionRun[];
  readonly redis: RedisComparison;
  /** The call scope's cost on this process's Node. */
  readonly callScope: CallScopeCost;
  /** In-process duplicates on this process's Node. */
  readonly singleFlight: SingleFlightRun[];
  /** Sections repeated on Node 24 in a child process, or why they could not be. */
  readonly node24: ChildResults | { readonly unavailable: string };
  readonly contentionPlan: { requestedCalls: number; calls: number };
  readonly prices: typeof PRICES;
}

interface Row {
  readonly metric: string;
  readonly ours: string;
  readonly powertools: string;
  readonly ratio: string;
  readonly unit: string;
  readonly n: string;
  readonly target: string;
}

type Line = Row | string;

const µs = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1));
const ms = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2));
const kb = (bytes: number): string => (bytes / 1024).toFixed(1);
const times = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');

/** `≤ 0.85: met` or `≤ 0.85: NOT met (+0.06)`. */
function atMost(limit: number, value: number, digits = 2): string {
  if (!Number.isFinite(value)) return `≤ ${limit}: n/a`;
  return value <= limit ? `≤ ${limit}: met` : `≤ ${limit}: NOT met (${value.toFixed(digits + 1)})`;
}

function equals(expected: number, value: number): string {
  return value === expected ? `= ${expected}: met` : `= ${expected}: NOT met`;
}

function row(metric: string, ours: string, powertools: string, r: string, unit: string, n: string | number, target = ''): Row {
  return { metric, ours, powertools, ratio: r, unit, n: String(n), target };
}

function pair(
  metric: string,
  ours: Summary,
  theirs: Summary,
  key: 'median' | 'p99',
  unit: string,
  format: (x: number) => string,
  target?: (r: number) => string,
): Row {
  const r = ratio(ours[key], theirs[key]);
  return row(metric, format(ours[key]), format(theirs[key]), times(r), unit, ours.n, target ? target(r) : '');
}

function roundTripLines(results: Results): Line[] {
  const lines: Line[] = ['1. DynamoDB requests per call (counted by an SDK middleware on DynamoDB Local; 1 KB event)'];
  const targets: Partial<Record<Scenario, number>> = { 'first call': 2, replay: 1, 'replay, local cache': 0 };
  for (const scenario of SCENARIOS) {
    const ours = results.roundTrips.calls.find((c) => c.scenario === scenario && c.library === 'ours');
    const theirs = results.roundTrips.calls.find((c) => c.scenario === scenario && c.library === 'powertools');
    if (!ours || !theirs) continue;
    const target = targets[scenario];
    lines.push(
      row(
        `${scenario}`,
        String(ours.requests),
        String(theirs.requests),
        times(ratio(ours.requests, theirs.requests)),
        'requests',
        1,
        target === undefined ? '' : equals(target, ours.requests),
      ),
    );
    const made = (c: typeof ours) => `${c.operations.join(' + ') || 'no request'} → ${c.outcome}`;
    lines.push(`     ours: ${made(ours)}   |   Powertools: ${made(theirs)}`);
    if (scenario === 'in-progress rejection' && theirs.operations.includes('DeleteItem')) {
      lines.push("     (Powertools' middy onError deletes the record the other, still running attempt holds: powertools-lambda-typescript");
      lines.push('      issue #5675, fixed by PR #5676 after 2.35.0; duplicates then run again, see sections 5 and 7.)');
    }
  }
  return lines;
}

function transactionModeLines(results: Results): Line[] {
  const lines: Line[] = ['1b. Requests per call with one business write committed with the record (ours only; Powertools has no such mode)'];
  const targets: Record<ModeCall['mode'], Record<ModeCall['scenario'], number>> = {
    transaction: { 'first call': 2, replay: 1 },
    atomic: { 'first call': 1, replay: 1 },
  };
  for (const call of results.transactionModes) {
    const label = `${call.mode === 'atomic' ? 'atomic: true' : 'transaction()'}, ${call.scenario}`;
    lines.push(row(label, String(call.requests), '—', '', 'requests', 1, equals(targets[call.mode][call.scenario], call.requests)));
    const outcome =
      call.executions === 0
        ? 'replayed'
        : call.mode === 'atomic' && call.scenario === 'replay'
          ? 'the pure handler ran again; the stored response was returned'
          : 'ran';
    lines.push(`     ours: ${call.operations.join(' + ')} → ${outcome}`);
  }
  return lines;
}

function overheadLines(results: Results): Line[] {
  return [
    '2. In-process overhead per call on a zero-latency DynamoDB stand-in (a terminal SDK middleware below the deserializer',
    '   answers at once; whole event as key). Overhead = percentile of the idempotent handler − same percentile of the bare',
    '   middy handler. SDK plumbing = the exact requests the library sent, replayed with bare client.send on the same stand-in;',
    '   own work = overhead − plumbing. Ours runs with its call scope (AsyncLocalStorage) enabled, as in a container where it',
    '   has run once; the bare handler and Powertools without. CPU rows: process CPU time per call, robust to other load.',
    ...results.overhead.flatMap((o) => overheadRows(o, '')),
  ];
}

function overheadRows(o: OverheadResult, node: string): Line[] {
  const prefix = `${node}${o.size}, ${o.scenario}`;
  const r = (a: number, b: number) => ratio(a, b);
  const { ours, powertools } = o.overhead;
  const cpu = o.cpuOverhead;
  const lines: Line[] = [
    `   ${node}${o.size} = ${kb(o.eventBytes)} KB of JSON, ${o.scenario}: bare middy handler median ${µs(o.bare.median)} µs, p99 ${µs(o.bare.p99)} µs; ` +
      `requests: ours ${o.requests.ours.join(' + ')}, Powertools ${o.requests.powertools.join(' + ')}`,
    row(
      `${prefix}: overhead, median`,
      µs(ours.median),
      µs(powertools.median),
      times(r(ours.median, powertools.median)),
      'µs',
      o.lib.ours.n,
      atMost(0.85, r(ours.median, powertools.median)),
    ),
    row(`${prefix}: overhead, p99`, µs(ours.p99), µs(powertools.p99), times(r(ours.p99, powertools.p99)), 'µs', o.lib.ours.n),
    row(
      `${prefix}: overhead, median CPU`,
      µs(cpu.ours.median),
      µs(cpu.powertools.median),
      times(r(cpu.ours.median, cpu.powertools.median)),
      'µs CPU',
      o.lib.ours.n,
      atMost(0.85, r(cpu.ours.median, cpu.powertools.median)),
    ),
    row(
      `${prefix}: SDK plumbing of its requests`,
      µs(ours.plumbing),
      µs(powertools.plumbing),
      times(r(ours.plumbing, powertools.plumbing)),
      'µs',
      o.plumbing.ours.n,
    ),
    row(
      `${prefix}: library's own work`,
      µs(ours.own),
      µs(powertools.own),
      times(r(ours.own, powertools.own)),
      'µs',
      o.lib.ours.n,
      atMost(0.5, r(ours.own, powertools.own)),
    ),
    row(
      `${prefix}: library's own work, CPU`,
      µs(cpu.ours.own),
      µs(cpu.powertools.own),
      times(r(cpu.ours.own, cpu.powertools.own)),
      'µs CPU',
      o.lib.ours.n,
      atMost(0.5, r(cpu.ours.own, cpu.powertools.own)),
    ),
  ];
  const keyOurs = o.keyDerivation.ours.median * o.keyDerivationsPerCall.ours;
  const keyTheirs = o.keyDerivation.powertools.median * o.keyDerivationsPerCall.powertools;
  lines.push(
    row(
      `${prefix}:   of which key derivation (×${o.keyDerivationsPerCall.ours} / ×${o.keyDerivationsPerCall.powertools})`,
      µs(keyOurs),
      µs(keyTheirs),
      times(r(keyOurs, keyTheirs)),
      'µs',
      o.keyDerivation.ours.n,
    ),
  );
  return lines;
}

/** `+182 (58 → 240)`: the median with the scope on minus off, and both medians. */
function scopeDelta(x: OffOn, format: (x: number) => string): string {
  return `${x.on.median - x.off.median >= 0 ? '+' : ''}${format(x.on.median - x.off.median)} (${format(x.off.median)} → ${format(x.on.median)})`;
}

function callScopeLines(results: Results): Line[] {
  const lines: Line[] = [
    '2b. Call scope: what the AsyncLocalStorage scope every call of ours runs in costs, median on − off (off → on). Off = the same',
    '    middleware with AsyncLocalStorage run/enterWith made pass-throughs; on = as shipped, enabled by earlier calls. Node 20',
    '    propagates it with promise hooks (every promise in the process pays); Node 24 with AsyncContextFrame. Powertools 2.35.0',
    '    enters no AsyncLocalStorage in its default single-concurrency mode.',
  ];
  const costs = [results.callScope, ...('callScope' in results.node24 ? [results.node24.callScope] : [])];
  for (const c of costs) {
    const node = `Node ${c.node}`;
    lines.push(
      row(
        `${node}: per awaited async call (any code)`,
        scopeDelta(c.await, (x) => x.toFixed(0)),
        '—',
        '',
        'ns',
        c.await.on.n,
      ),
    );
    lines.push(
      row(`${node}: per bare SDK send on the stand-in (any code)`, `${scopeDelta(c.send, µs)}; CPU ${scopeDelta(c.sendCpu, µs)}`, '—', '', 'µs', c.send.on.n),
    );
    lines.push(
      row(
        `${node}: per bare middy call (no library)`,
        `${scopeDelta(c.bareHandler, µs)}; CPU ${scopeDelta(c.bareHandlerCpu, µs)}`,
        '—',
        '',
        'µs',
        c.bareHandler.on.n,
      ),
    );
    lines.push(
      row(`${node}: per call of our middleware, first call`, `${scopeDelta(c.first, µs)}; CPU ${scopeDelta(c.firstCpu, µs)}`, '—', '', 'µs', c.first.on.n),
    );
    lines.push(
      row(`${node}: per call of our middleware, replay`, `${scopeDelta(c.replay, µs)}; CPU ${scopeDelta(c.replayCpu, µs)}`, '—', '', 'µs', c.replay.on.n),
    );
  }
  if ('unavailable' in results.node24) lines.push(`    Node 24: not measured (${results.node24.unavailable})`);
  return lines;
}

function endToEndLines(results: Results): Line[] {
  const e = results.endToEnd;
  return [
    `3. End to end on DynamoDB Local (${kb(e.eventBytes)} KB event; bare conditional PutItem round trip: median ${ms(e.barePut.median / 1000)} ms, p99 ${ms(e.barePut.p99 / 1000)} ms, n ${e.barePut.n})`,
    ...endToEndRows(e, ''),
  ];
}

function endToEndRows(e: EndToEnd, node: string): Row[] {
  return [
    pair(
      `${node}first call, median`,
      e.first.ours,
      e.first.powertools,
      'median',
      'ms',
      (x) => ms(x / 1000),
      (r) => atMost(1, r),
    ),
    pair(`${node}first call, p99`, e.first.ours, e.first.powertools, 'p99', 'ms', (x) => ms(x / 1000)),
    pair(
      `${node}replay, median`,
      e.replay.ours,
      e.replay.powertools,
      'median',
      'ms',
      (x) => ms(x / 1000),
      (r) => atMost(1, r),
    ),
    pair(`${node}replay, p99`, e.replay.ours, e.replay.powertools, 'p99', 'ms', (x) => ms(x / 1000)),
    pair(`${node}first call, client CPU time, median`, e.firstCpu.ours, e.firstCpu.powertools, 'median', 'µs CPU', µs),
    pair(`${node}replay, client CPU time, median`, e.replayCpu.ours, e.replayCpu.powertools, 'median', 'µs CPU', µs),
  ];
}

/** `≤ 12 KB (stretch 8 KB): met`, or how far off. */
function sizeTarget(bytes: number): string {
  if (bytes <= 8 * 1024) return '≤ 12 KB (stretch ≤ 8 KB): both met';
  if (bytes <= 12 * 1024) return `≤ 12 KB: met; stretch ≤ 8 KB: NOT met (+${kb(bytes - 8 * 1024)} KB)`;
  return `≤ 12 KB: NOT met (+${kb(bytes - 12 * 1024)} KB)`;
}

function coldStartLines(results: Results): Line[] {
  const c = results.coldStart;
  const over = (v: 'ours' | 'main' | 'powertools' | 'full') => c.bundle[v].bytes - c.bundle.bare.bytes;
  const lines: Line[] = [
    `4. Bundle size and cold start: minimal middy handler, esbuild ${c.esbuild} (minified ESM, node20, @aws-sdk/* external); bare handler ${kb(c.bundle.bare.bytes)} KB.`,
    "   ours: idempotency from 'lambda-idempotency/middy' and DynamoDBStore from 'lambda-idempotency/dynamodb'; Powertools: its /middleware and /dynamodb.",
    '   "every feature": one file with our middleware (transaction() with transition(), isFinalError, a key selector), atomic mode,',
    '   httpIdempotency with server-issued keys, idempotentBatch, makeIdempotent, inspectRecord and forgetRecord, on a store with',
    '   encryption, all with observability.',
    row('bundle size', kb(c.bundle.ours.bytes), kb(c.bundle.powertools.bytes), times(ratio(c.bundle.ours.bytes, c.bundle.powertools.bytes)), 'KB', 1),
    row(
      'bundle size over bare handler',
      kb(over('ours')),
      kb(over('powertools')),
      times(ratio(over('ours'), over('powertools'))),
      'KB',
      1,
      sizeTarget(over('ours')),
    ),
    row(
      'bundle size, gzip',
      kb(c.bundle.ours.gzipBytes),
      kb(c.bundle.powertools.gzipBytes),
      times(ratio(c.bundle.ours.gzipBytes, c.bundle.powertools.gzipBytes)),
      'KB',
      1,
    ),
    row('the same handler from the main entry: over bare handler', kb(over('main')), '—', '', 'KB', 1),
    row('every feature: bundle size over bare handler (gzip)', `${kb(over('full'))} (${kb(c.bundle.full.gzipBytes)})`, '—', '', 'KB', 1),
  ];
  const parts = (v: 'ours' | 'powertools', count: number) =>
    c.bundle[v].inputs
      .slice(0, count)
      .map((i) => `${i.path.replace(/^lib\//, '')} ${kb(i.bytes)}`)
      .join(', ');
  lines.push(`   ours, largest inputs (KB): ${parts('ours', 14)}`);
  lines.push(`   Powertools, largest inputs (KB): ${parts('powertools', 6)}`);
  const bare = c.importWithSdk.bare.median;
  lines.push(
    row(
      `import, fresh process, SDK loaded by it (bare ${ms(bare)} ms)`,
      ms(c.importWithSdk.ours.median),
      ms(c.importWithSdk.powertools.median),
      times(ratio(c.importWithSdk.ours.median, c.importWithSdk.powertools.median)),
      'ms median',
      c.importWithSdk.ours.n,
    ),
  );
  const pre = c.importSdkPreloaded;
  lines.push(
    row(
      `import, fresh process, SDK preloaded, over bare (bare ${ms(pre.bare.median)} ms)`,
      ms(pre.ours.median - pre.bare.median),
      ms(pre.powertools.median - pre.bare.median),
      times(ratio(pre.ours.median - pre.bare.median, pre.powertools.median - pre.bare.median)),
      'ms median',
      pre.ours.n,
    ),
  );
  lines.push(row('every feature: import, SDK preloaded, over bare', ms(pre.full.median - pre.bare.median), '—', '', 'ms median', pre.full.n));
  return lines;
}

function contentionLines(results: Results): Line[] {
  const lines: Line[] = ['5. Contention on DynamoDB Local (1 KB events; handler executions must equal distinct keys)'];
  if (results.contentionPlan.calls !== results.contentionPlan.requestedCalls) {
    lines.push(
      `   NOTE: scaled down from ${results.contentionPlan.requestedCalls} to ${results.contentionPlan.calls} calls to stay within the 3-minute limit on this run.`,
    );
  }
  const errors = (r: ContentionRun) =>
    Object.entries(r.errors)
      .map(([code, count]) => `${code} ${count}`)
      .join(', ') || 'none';
  const tests = [...new Set(results.contention.map((r) => r.test))];
  for (const test of tests) {
    const ours = results.contention.find((r) => r.test === test && r.library === 'ours')!;
    const theirs = results.contention.find((r) => r.test === test && r.library === 'powertools' && !r.scoped)!;
    const control = results.contention.find((r) => r.test === test && r.scoped);
    if (ours.blocks > 1) {
      lines.push(
        `   ${test}: ${ours.blocks} blocks of ${Math.ceil(ours.calls / ours.blocks)} calls per subject, taking turns; the control is Powertools with each call in an AsyncLocalStorage scope (on Node 20: promise hooks on, as ours).`,
      );
    }
    lines.push(
      row(
        `${test}: executions`,
        String(ours.executions),
        String(theirs.executions),
        '',
        'executions',
        ours.calls,
        `${equals(ours.keys, ours.executions)}${theirs.executions === theirs.keys ? '' : ` (Powertools: ${theirs.executions})`}`,
      ),
    );
    for (const r of [ours, theirs, control]) {
      if (r && r.blocks > 1 && r.blocksWrong > 0)
        lines.push(`   NOTE: ${r.scoped ? 'control' : r.library}: executions differ from new keys in ${r.blocksWrong} of ${r.blocks} blocks.`);
    }
    lines.push(
      row(
        `${test}: throughput`,
        ours.throughput.toFixed(0),
        theirs.throughput.toFixed(0),
        times(ratio(ours.throughput, theirs.throughput)),
        'calls/s',
        ours.calls,
      ),
    );
    lines.push(
      row(
        `${test}: client CPU per call`,
        µs(ours.cpuMicrosPerCall),
        µs(theirs.cpuMicrosPerCall),
        times(ratio(ours.cpuMicrosPerCall, theirs.cpuMicrosPerCall)),
        'µs CPU',
        ours.calls,
      ),
    );
    if (control) {
      lines.push(
        row(
          `  control, Powertools in a scope: executions / throughput`,
          '',
          `${control.executions} / ${control.throughput.toFixed(0)}`,
          times(ratio(ours.throughput, control.throughput)),
          'calls/s',
          control.calls,
          equals(control.keys, control.executions),
        ),
      );
      lines.push(
        row(
          `  control, Powertools in a scope: client CPU per call`,
          '',
          µs(control.cpuMicrosPerCall),
          times(ratio(ours.cpuMicrosPerCall, control.cpuMicrosPerCall)),
          'µs CPU',
          control.calls,
        ),
      );
    }
    lines.push(row(`${test}: succeeded`, String(ours.succeeded), String(theirs.succeeded), '', 'calls', ours.calls));
    lines.push(row(`${test}: errors by code`, errors(ours), errors(theirs), '', 'calls', ours.calls));
    if (control) lines.push(row(`  control: succeeded / errors by code`, '', `${control.succeeded} / ${errors(control)}`, '', 'calls', control.calls));
  }
  return lines;
}

function costLines(results: Results): Line[] {
  const lines: Line[] = [
    `6. Cost model: capacity units per call from the item sizes written (1 WCU per started KB of the larger image; refused`,
    `   conditional writes consume the existing item's size, ≥ 1; transactions ×2, unused here; ALL_OLD returns cost no RCU),`,
    `   priced on demand at $${PRICES.perMillionWriteUnits}/M write units, $${PRICES.perMillionReadUnits}/M read units (${PRICES.region} list prices)`,
  ];
  for (const scenario of SCENARIOS) {
    const ours = results.roundTrips.calls.find((c) => c.scenario === scenario && c.library === 'ours');
    const theirs = results.roundTrips.calls.find((c) => c.scenario === scenario && c.library === 'powertools');
    if (!ours || !theirs) continue;
    lines.push(
      row(
        `${scenario}: WCU + RCU per call`,
        `${ours.cost.wcu} + ${ours.cost.rcu}`,
        `${theirs.cost.wcu} + ${theirs.cost.rcu}`,
        times(ratio(ours.cost.wcu + ours.cost.rcu, theirs.cost.wcu + theirs.cost.rcu)),
        'units',
        1,
      ),
    );
    lines.push(
      row(
        `${scenario}: per million calls`,
        ours.cost.usdPerMillion.toFixed(2),
        theirs.cost.usdPerMillion.toFixed(2),
        times(ratio(ours.cost.usdPerMillion, theirs.cost.usdPerMillion)),
        'USD',
        1,
      ),
    );
  }
  const b = results.roundTrips.recordBytes;
  lines.push(
    row(
      'record size: INPROGRESS / COMPLETED (small response)',
      `${b.ours.inProgress} / ${b.ours.completed}`,
      `${b.powertools.inProgress} / ${b.powertools.completed}`,
      '',
      'bytes',
      1,
    ),
  );
  lines.push(
    row(
      'record size: COMPLETED with ~40 KB response',
      String(b.ours.completedLarge),
      String(b.powertools.completedLarge),
      times(ratio(b.ours.completedLarge, b.powertools.completedLarge)),
      'bytes',
      1,
    ),
  );
  let checked = 0;
  let matched = 0;
  for (const call of results.roundTrips.calls) {
    for (const request of call.cost.requests) {
      if (request.reported === undefined || !request.ok || request.operation === 'GetItem') continue;
      checked++;
      if (request.reported === request.wcu) matched++;
    }
  }
  lines.push(
    row(
      'cross-check: model = ConsumedCapacity from DynamoDB Local (successful writes)',
      `${matched} of ${checked}`,
      '',
      '',
      'writes',
      checked,
      checked > 0 && matched === checked ? 'all match' : 'MISMATCH',
    ),
  );
  return lines;
}

function redisLines(results: Results): Line[] {
  const r = results.redis;
  const lines: Line[] = [
    `9. Redis ${r.redisVersion} on loopback, node-redis clients: ours on RedisStore vs Powertools' CachePersistenceLayer on the same server;`,
    `   ours on DynamoDBStore (DynamoDB Local) for scale. ${kb(r.eventBytes)} KB event; Redis commands counted at each client.`,
  ];
  const made = (calls: string[]) => calls.join(' + ') || 'no request';
  for (const scenario of ['first', 'replay'] as const) {
    const label = scenario === 'first' ? 'first call' : 'replay';
    lines.push(
      row(
        `${label}: requests`,
        String(r.requests.redis[scenario].length),
        String(r.requests.powertools[scenario].length),
        times(ratio(r.requests.redis[scenario].length, r.requests.powertools[scenario].length)),
        'requests',
        1,
      ),
    );
    lines.push(
      `     ours on Redis: ${made(r.requests.redis[scenario])}   |   Powertools: ${made(r.requests.powertools[scenario])}   |   ours on DynamoDB: ${made(r.requests.dynamodb[scenario])}`,
    );
    for (const key of ['median', 'p99'] as const) {
      lines.push(pair(`${label}, ${key}`, r[scenario].redis, r[scenario].powertools, key, 'ms', (x) => ms(x / 1000)));
    }
    lines.push(row(`${label}, median, ours on DynamoDBStore`, ms(r[scenario].dynamodb.median / 1000), '—', '', 'ms', r[scenario].dynamodb.n));
    lines.push(pair(`${label}, client CPU time, median`, r[`${scenario}Cpu`].redis, r[`${scenario}Cpu`].powertools, 'median', 'µs CPU', µs));
  }
  lines.push('   The first claim of each client also reads INFO memory once (the eviction-policy check); counted calls come after it.');
  return lines;
}

function singleFlightLines(results: Results): Line[] {
  const runs = [...results.singleFlight, ...('singleFlight' in results.node24 ? results.node24.singleFlight : [])];
  const plan = runs[0]?.plan;
  if (plan === undefined) return [];
  const lines: Line[] = [
    `7. In-process duplicates on DynamoDB Local: ${plan.callers} concurrent calls with one key in one process, the handler takes ${plan.workMillis} ms;`,
    `   ${plan.bursts} bursts per library and Node version (fresh key each, ${plan.warmupBursts} more as warm-up), libraries alternating. Ours: single-flight`,
    "   (default): one claim, every caller gets the leader's value. Latency: from the start of the burst to each caller's answer.",
  ];
  const nodes = [...new Set(runs.map((r) => r.node))];
  for (const node of nodes) {
    const ours = runs.find((r) => r.node === node && r.library === 'ours')!;
    const theirs = runs.find((r) => r.node === node && r.library === 'powertools')!;
    const callers = ours.plan.callers * ours.plan.bursts;
    const errors = (r: SingleFlightRun) =>
      Object.entries(r.errors)
        .map(([code, count]) => `${code} ${count}`)
        .join(', ') || 'none';
    const operations = (r: SingleFlightRun) =>
      Object.entries(r.operationsPerBurst)
        .map(([name, count]) => `${name} ${count}`)
        .join(', ');
    const label = `Node ${node}`;
    lines.push(
      row(
        `${label}: DynamoDB requests per burst`,
        ours.requestsPerBurst.toFixed(1),
        theirs.requestsPerBurst.toFixed(1),
        times(ratio(ours.requestsPerBurst, theirs.requestsPerBurst)),
        'requests',
        ours.plan.bursts,
      ),
    );
    lines.push(`     ours: ${operations(ours)}   |   Powertools: ${operations(theirs)}`);
    lines.push(
      row(
        `${label}: handler executions per burst (largest)`,
        `${ours.executionsPerBurst.toFixed(1)} (${ours.maxExecutions})`,
        `${theirs.executionsPerBurst.toFixed(1)} (${theirs.maxExecutions})`,
        '',
        'executions',
        ours.plan.bursts,
        equals(1, ours.maxExecutions),
      ),
    );
    lines.push(row(`${label}: callers that got the value`, String(ours.values), String(theirs.values), '', 'calls', callers, equals(callers, ours.values)));
    lines.push(row(`${label}: errors by code`, errors(ours), errors(theirs), '', 'calls', callers));
    lines.push(
      row(
        `${label}: latency per caller (value or error), median / max`,
        `${ms(ours.latency.median)} / ${ms(ours.latency.max)}`,
        `${ms(theirs.latency.median)} / ${ms(theirs.latency.max)}`,
        times(ratio(ours.latency.median, theirs.latency.median)),
        'ms',
        callers,
      ),
    );
  }
  if ('unavailable' in results.node24) lines.push(`   Node 24: not measured (${results.node24.unavailable})`);
  return lines;
}

function node24Lines(results: Results): Line[] {
  const other = results.node24;
  if ('unavailable' in other) return [`8. Node 24: not measured (${other.unavailable})`];
  const e = other.endToEnd;
  return [
    `8. Sections 2 and 3 again on Node ${other.node} (a child process, fewer samples, same DynamoDB Local; Node ${results.machine.node} figures above).`,
    ...other.overhead.flatMap((o) => overheadRows(o, `Node 24: `)),
    `   Node 24: end to end, bare conditional PutItem round trip: median ${ms(e.barePut.median / 1000)} ms`,
    ...endToEndRows(e, 'Node 24: '),
  ];
}

export function renderTable(results: Results): string {
  const m = results.machine;
  const header = [
    'lambda-idempotency vs @aws-lambda-powertools/idempotency 2.35.0 — `npm run bench`',
    `Node ${m.node} · ${m.cpu} × ${m.cores} cores · ${m.platform} · load average ${m.loadAverageBefore.toFixed(2)} → ${m.loadAverageAfter.toFixed(2)} · ${m.startedAt} · ${m.durationSeconds.toFixed(0)} s`,
    `Same handler, events, table settings (own on-demand table each, TTL on) and 24 h retention for both; warm-up excluded; libraries alternate in every loop.`,
    `ratio = ours / Powertools (lower is better, except throughput). n = samples per library.`,
  ];
  const lines: Line[] = [
    ...roundTripLines(results),
    ...transactionModeLines(results),
    ...overheadLines(results),
    ...callScopeLines(results),
    ...endToEndLines(results),
    ...coldStartLines(results),
    ...contentionLines(results),
    ...costLines(results),
    ...singleFlightLines(results),
    ...node24Lines(results),
    ...redisLines(results),
  ];
  const rows = lines.filter((l): l is Row => typeof l !== 'string');
  const head: Row = { metric: 'measurement', ours: 'ours', powertools: 'Powertools', ratio: 'ratio', unit: 'unit', n: 'n', target: 'target' };
  const columns = ['metric', 'ours', 'powertools', 'ratio', 'unit', 'n', 'target'] as const;
  const width = Object.fromEntries(columns.map((c) => [c, Math.max(...[head, ...rows].map((r) => [...r[c]].length))])) as Record<
    (typeof columns)[number],
    number
  >;
  const pad = (text: string, w: number, right = false) =>
    right ? text.padStart(w + text.length - [...text].length) : text.padEnd(w + text.length - [...text].length);
  const format = (r: Row) =>
    [
      pad(r.metric, width.metric),
      pad(r.ours, width.ours, true),
      pad(r.powertools, width.powertools, true),
      pad(r.ratio, width.ratio, true),
      pad(r.unit, width.unit),
      pad(r.n, width.n, true),
      r.target,
    ]
      .join('  ')
      .trimEnd();
  const rule = '─'.repeat(
    Math.min(
      200,
      Object.values(width).reduce((a, b) => a + b + 2, 0),
    ),
  );
  const body = lines.map((l) => (typeof l !== 'string' ? format(l) : /^\d/.test(l) ? `\n${l}` : l));
  return [...header, ...results.notes.map((n) => `NOTE: ${n}`), rule, format(head), rule, ...body, rule].join('\n');
}

export async function writeResults(path: string, results: Results): Promise<void> {
  await writeFile(path, `${JSON.stringify(results, (_key, value) => (value instanceof Uint8Array ? Buffer.from(value).toString('base64') : value), 2)}\n`);
}
