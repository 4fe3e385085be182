/**
 * Turns the measurements into one table (stdout) and bench/results.json. Every row carries its
 * unit and sample size; targets from issue 5 are checked where the issue sets one.
 */
import { writeFile } from 'node:fs/promises';
import type { ColdStart } from './cold-start.js';
import type { ContentionRun } from './contention.js';
import { PRICES } from './cost.js';
import type { EndToEnd } from './e2e.js';
import type { OverheadResult } from './overhead.js';
import type { PromiseHookTax } from './promise-hooks.js';
import type { RedisComparison } from './redis.js';
import type { RoundTrips, Scenario } from './round-trips.js';
import { SCENARIOS } from './round-trips.js';
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
  readonly promiseHookTax: PromiseHookTax;
  readonly roundTrips: RoundTrips;
  readonly transactionModes: ModeCall[];
  readonly overhead: OverheadResult[];
  readonly endToEnd: EndToEnd;
  readonly coldStart: ColdStart;
  readonly contention: ContentionRun[];
  readonly redis: RedisComparison;
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

function pair(metric: string, ours: Summary, theirs: Summary, key: 'median' | 'p99', unit: string, format: (x: number) => string, target?: (r: number) => string): Row {
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
    lines.push(row(`${scenario}`, String(ours.requests), String(theirs.requests), times(ratio(ours.requests, theirs.requests)), 'requests', 1, target === undefined ? '' : equals(target, ours.requests)));
    const made = (c: typeof ours) => `${c.operations.join(' + ') || 'no request'} → ${c.outcome}`;
    lines.push(`     ours: ${made(ours)}   |   Powertools: ${made(theirs)}`);
    if (scenario === 'in-progress rejection' && theirs.operations.includes('DeleteItem')) {
      lines.push("     (Powertools' middy onError deletes the record the other, still running attempt holds: powertools-lambda-typescript");
      lines.push('      issue #5675, fixed by PR #5676 after 2.35.0; duplicates then run again, see section 5.)');
    }
  }
  return lines;
}

function transactionModeLines(results: Results): Line[] {
  const lines: Line[] = ["1b. Requests per call with one business write committed with the record (ours only; Powertools has no such mode)"];
  const targets: Record<ModeCall['mode'], Record<ModeCall['scenario'], number>> = { transactions: { 'first call': 2, replay: 1 }, atomic: { 'first call': 1, replay: 1 } };
  for (const call of results.transactionModes) {
    const label = `${call.mode === 'atomic' ? 'atomic: true' : 'transactions: true'}, ${call.scenario}`;
    lines.push(row(label, String(call.requests), '—', '', 'requests', 1, equals(targets[call.mode][call.scenario], call.requests)));
    const outcome = call.executions === 0 ? 'replayed' : call.mode === 'atomic' && call.scenario === 'replay' ? 'the pure handler ran again; the stored response was returned' : 'ran';
    lines.push(`     ours: ${call.operations.join(' + ')} → ${outcome}`);
  }
  return lines;
}

function overheadLines(results: Results): Line[] {
  const lines: Line[] = [
    '2. In-process overhead per call on a zero-latency DynamoDB stand-in (a terminal SDK middleware below the deserializer',
    '   answers at once; whole event as key). Overhead = percentile of the idempotent handler − same percentile of the bare',
    '   middy handler. SDK plumbing = the exact requests the library sent, replayed with bare client.send on the same stand-in;',
    '   own work = overhead − plumbing. Both run in their default configuration (ours without `transactions`, so without',
    '   AsyncLocalStorage promise hooks). CPU rows: process CPU time per call, robust to other load on the machine.',
  ];
  for (const o of results.overhead) {
    const prefix = `${o.size}, ${o.scenario}`;
    const r = (a: number, b: number) => ratio(a, b);
    lines.push(
      `   ${o.size} = ${kb(o.eventBytes)} KB of JSON, ${o.scenario}: bare middy handler median ${µs(o.bare.median)} µs, p99 ${µs(o.bare.p99)} µs; ` +
        `requests: ours ${o.requests.ours.join(' + ')}, Powertools ${o.requests.powertools.join(' + ')}`,
    );
    const { ours, powertools } = o.overhead;
    const cpu = o.cpuOverhead;
    lines.push(row(`${prefix}: overhead, median`, µs(ours.median), µs(powertools.median), times(r(ours.median, powertools.median)), 'µs', o.lib.ours.n, atMost(0.85, r(ours.median, powertools.median))));
    lines.push(row(`${prefix}: overhead, p99`, µs(ours.p99), µs(powertools.p99), times(r(ours.p99, powertools.p99)), 'µs', o.lib.ours.n));
    lines.push(row(`${prefix}: overhead, median CPU`, µs(cpu.ours.median), µs(cpu.powertools.median), times(r(cpu.ours.median, cpu.powertools.median)), 'µs CPU', o.lib.ours.n, atMost(0.85, r(cpu.ours.median, cpu.powertools.median))));
    lines.push(row(`${prefix}: SDK plumbing of its requests`, µs(ours.plumbing), µs(powertools.plumbing), times(r(ours.plumbing, powertools.plumbing)), 'µs', o.plumbing.ours.n));
    lines.push(row(`${prefix}: library's own work`, µs(ours.own), µs(powertools.own), times(r(ours.own, powertools.own)), 'µs', o.lib.ours.n, atMost(0.5, r(ours.own, powertools.own))));
    lines.push(row(`${prefix}: library's own work, CPU`, µs(cpu.ours.own), µs(cpu.powertools.own), times(r(cpu.ours.own, cpu.powertools.own)), 'µs CPU', o.lib.ours.n, atMost(0.5, r(cpu.ours.own, cpu.powertools.own))));
    const keyOurs = o.keyDerivation.ours.median * o.keyDerivationsPerCall.ours;
    const keyTheirs = o.keyDerivation.powertools.median * o.keyDerivationsPerCall.powertools;
    lines.push(row(`${prefix}:   of which key derivation (×${o.keyDerivationsPerCall.ours} / ×${o.keyDerivationsPerCall.powertools})`, µs(keyOurs), µs(keyTheirs), times(r(keyOurs, keyTheirs)), 'µs', o.keyDerivation.ours.n));
  }
  const tax = results.promiseHookTax;
  const delta = (x: { off: Summary; on: Summary }) => x.on.median - x.off.median;
  lines.push(row('with transactions: true, AsyncLocalStorage promise hooks: + per bare send', `${µs(delta(tax.send))} (${µs(delta(tax.sendCpu))} CPU)`, 'none', '', 'µs median', tax.send.on.n));
  lines.push(row('with transactions: true, AsyncLocalStorage promise hooks: + per middy call', `${µs(delta(tax.bareHandler))} (${µs(delta(tax.bareHandlerCpu))} CPU)`, 'none', '', 'µs median', tax.bareHandler.on.n));
  return lines;
}

function endToEndLines(results: Results): Line[] {
  const e = results.endToEnd;
  return [
    `3. End to end on DynamoDB Local (${kb(e.eventBytes)} KB event; bare conditional PutItem round trip: median ${ms(e.barePut.median / 1000)} ms, p99 ${ms(e.barePut.p99 / 1000)} ms, n ${e.barePut.n})`,
    pair('first call, median', e.first.ours, e.first.powertools, 'median', 'ms', (x) => ms(x / 1000), (r) => atMost(1, r)),
    pair('first call, p99', e.first.ours, e.first.powertools, 'p99', 'ms', (x) => ms(x / 1000)),
    pair('replay, median', e.replay.ours, e.replay.powertools, 'median', 'ms', (x) => ms(x / 1000), (r) => atMost(1, r)),
    pair('replay, p99', e.replay.ours, e.replay.powertools, 'p99', 'ms', (x) => ms(x / 1000)),
    pair('first call, client CPU time, median', e.firstCpu.ours, e.firstCpu.powertools, 'median', 'µs CPU', µs),
    pair('replay, client CPU time, median', e.replayCpu.ours, e.replayCpu.powertools, 'median', 'µs CPU', µs),
  ];
}

function coldStartLines(results: Results): Line[] {
  const c = results.coldStart;
  const over = (v: 'ours' | 'powertools') => c.bundle[v].bytes - c.bundle.bare.bytes;
  const lines: Line[] = [
    `4. Cold start: minimal middy handler, esbuild ${c.esbuild} (minified ESM, node20, @aws-sdk/* external); bare handler ${kb(c.bundle.bare.bytes)} KB`,
    row('bundle size', kb(c.bundle.ours.bytes), kb(c.bundle.powertools.bytes), times(ratio(c.bundle.ours.bytes, c.bundle.powertools.bytes)), 'KB', 1),
    row('bundle size over bare handler', kb(over('ours')), kb(over('powertools')), times(ratio(over('ours'), over('powertools'))), 'KB', 1, `≤ 8 KB: ${over('ours') <= 8 * 1024 ? 'met' : `NOT met (+${kb(over('ours') - 8 * 1024)} KB)`}`),
    row('bundle size, gzip', kb(c.bundle.ours.gzipBytes), kb(c.bundle.powertools.gzipBytes), times(ratio(c.bundle.ours.gzipBytes, c.bundle.powertools.gzipBytes)), 'KB', 1),
  ];
  const parts = (v: 'ours' | 'powertools') => c.bundle[v].largestInputs.map((i) => `${i.path.replace(/^lib\//, '')} ${kb(i.bytes)}`).join(', ');
  lines.push(`   ours, largest inputs (KB): ${parts('ours')}`);
  lines.push(`   Powertools, largest inputs (KB): ${parts('powertools')}`);
  const bare = c.importWithSdk.bare.median;
  lines.push(row(`import, fresh process, SDK loaded by it (bare ${ms(bare)} ms)`, ms(c.importWithSdk.ours.median), ms(c.importWithSdk.powertools.median), times(ratio(c.importWithSdk.ours.median, c.importWithSdk.powertools.median)), 'ms median', c.importWithSdk.ours.n));
  const pre = c.importSdkPreloaded;
  lines.push(row(`import, fresh process, SDK preloaded, over bare (bare ${ms(pre.bare.median)} ms)`, ms(pre.ours.median - pre.bare.median), ms(pre.powertools.median - pre.bare.median), times(ratio(pre.ours.median - pre.bare.median, pre.powertools.median - pre.bare.median)), 'ms median', pre.ours.n));
  return lines;
}

function contentionLines(results: Results): Line[] {
  const lines: Line[] = ['5. Contention on DynamoDB Local (1 KB events; handler executions must equal distinct keys)'];
  if (results.contentionPlan.calls !== results.contentionPlan.requestedCalls) {
    lines.push(`   NOTE: scaled down from ${results.contentionPlan.requestedCalls} to ${results.contentionPlan.calls} calls to stay within the 3-minute limit on this run.`);
  }
  const tests = [...new Set(results.contention.map((r) => r.test))];
  for (const test of tests) {
    const ours = results.contention.find((r) => r.test === test && r.library === 'ours')!;
    const theirs = results.contention.find((r) => r.test === test && r.library === 'powertools')!;
    const errors = (r: ContentionRun) => Object.entries(r.errors).map(([code, count]) => `${code} ${count}`).join(', ') || 'none';
    lines.push(row(`${test}: executions`, String(ours.executions), String(theirs.executions), '', 'executions', ours.calls, `${equals(ours.keys, ours.executions)}${theirs.executions === theirs.keys ? '' : ` (Powertools: ${theirs.executions})`}`));
    lines.push(row(`${test}: throughput`, ours.throughput.toFixed(0), theirs.throughput.toFixed(0), times(ratio(ours.throughput, theirs.throughput)), 'calls/s', ours.calls));
    lines.push(row(`${test}: client CPU per call`, µs(ours.cpuMicrosPerCall), µs(theirs.cpuMicrosPerCall), times(ratio(ours.cpuMicrosPerCall, theirs.cpuMicrosPerCall)), 'µs CPU', ours.calls));
    lines.push(row(`${test}: succeeded`, String(ours.succeeded), String(theirs.succeeded), '', 'calls', ours.calls));
    lines.push(row(`${test}: errors by code`, errors(ours), errors(theirs), '', 'calls', ours.calls));
  }
  return lines;
}

function costLines(results: Results): Line[] {
  const lines: Line[] = [
    `6. Cost model: capacity units per call from the item sizes written (1 WCU per started KB of the larger image; refused`,
    `   conditional writes consume the existing item's size, ≥ 1; transactions ×2, unused here; ALL_OLD returns cost no RCU),`,
    `   priced on demand at $${PRICES.perMillionWriteUnits}/M write units, $${PRICES.perMillionReadUnits}/M read units (${PRICES.region} list prices given in issue 5)`,
  ];
  for (const scenario of SCENARIOS) {
    const ours = results.roundTrips.calls.find((c) => c.scenario === scenario && c.library === 'ours');
    const theirs = results.roundTrips.calls.find((c) => c.scenario === scenario && c.library === 'powertools');
    if (!ours || !theirs) continue;
    lines.push(row(`${scenario}: WCU + RCU per call`, `${ours.cost.wcu} + ${ours.cost.rcu}`, `${theirs.cost.wcu} + ${theirs.cost.rcu}`, times(ratio(ours.cost.wcu + ours.cost.rcu, theirs.cost.wcu + theirs.cost.rcu)), 'units', 1));
    lines.push(row(`${scenario}: per million calls`, ours.cost.usdPerMillion.toFixed(2), theirs.cost.usdPerMillion.toFixed(2), times(ratio(ours.cost.usdPerMillion, theirs.cost.usdPerMillion)), 'USD', 1));
  }
  const b = results.roundTrips.recordBytes;
  lines.push(row('record size: INPROGRESS / COMPLETED (small response)', `${b.ours.inProgress} / ${b.ours.completed}`, `${b.powertools.inProgress} / ${b.powertools.completed}`, '', 'bytes', 1));
  lines.push(row('record size: COMPLETED with ~40 KB response', String(b.ours.completedLarge), String(b.powertools.completedLarge), times(ratio(b.ours.completedLarge, b.powertools.completedLarge)), 'bytes', 1));
  let checked = 0;
  let matched = 0;
  for (const call of results.roundTrips.calls) {
    for (const request of call.cost.requests) {
      if (request.reported === undefined || !request.ok || request.operation === 'GetItem') continue;
      checked++;
      if (request.reported === request.wcu) matched++;
    }
  }
  lines.push(row('cross-check: model = ConsumedCapacity from DynamoDB Local (successful writes)', `${matched} of ${checked}`, '', '', 'writes', checked, checked > 0 && matched === checked ? 'all match' : 'MISMATCH'));
  return lines;
}

function redisLines(results: Results): Line[] {
  const r = results.redis;
  const lines: Line[] = [
    `7. Redis ${r.redisVersion} on loopback, node-redis clients: ours on RedisStore vs Powertools' CachePersistenceLayer on the same server;`,
    `   ours on DynamoDBStore (DynamoDB Local) for scale. ${kb(r.eventBytes)} KB event; Redis commands counted at each client.`,
  ];
  const made = (calls: string[]) => calls.join(' + ') || 'no request';
  for (const scenario of ['first', 'replay'] as const) {
    const label = scenario === 'first' ? 'first call' : 'replay';
    lines.push(row(`${label}: requests`, String(r.requests.redis[scenario].length), String(r.requests.powertools[scenario].length), times(ratio(r.requests.redis[scenario].length, r.requests.powertools[scenario].length)), 'requests', 1));
    lines.push(`     ours on Redis: ${made(r.requests.redis[scenario])}   |   Powertools: ${made(r.requests.powertools[scenario])}   |   ours on DynamoDB: ${made(r.requests.dynamodb[scenario])}`);
    for (const key of ['median', 'p99'] as const) {
      lines.push(pair(`${label}, ${key}`, r[scenario].redis, r[scenario].powertools, key, 'ms', (x) => ms(x / 1000)));
    }
    lines.push(row(`${label}, median, ours on DynamoDBStore`, ms(r[scenario].dynamodb.median / 1000), '—', '', 'ms', r[scenario].dynamodb.n));
    lines.push(pair(`${label}, client CPU time, median`, r[`${scenario}Cpu`].redis, r[`${scenario}Cpu`].powertools, 'median', 'µs CPU', µs));
  }
  lines.push('   The first claim of each client also reads INFO memory once (the eviction-policy check); counted calls come after it.');
  return lines;
}

export function renderTable(results: Results): string {
  const m = results.machine;
  const header = [
    'lambda-idempotency vs @aws-lambda-powertools/idempotency 2.35.0 — `npm run bench`',
    `Node ${m.node} · ${m.cpu} × ${m.cores} cores · ${m.platform} · load average ${m.loadAverageBefore.toFixed(2)} → ${m.loadAverageAfter.toFixed(2)} · ${m.startedAt} · ${m.durationSeconds.toFixed(0)} s`,
    `Same handler, events, table settings (own on-demand table each, TTL on) and 24 h retention for both; warm-up excluded; libraries alternate in every loop.`,
    `ratio = ours / Powertools (lower is better, except throughput). n = samples per library.`,
  ];
  const lines: Line[] = [...roundTripLines(results), ...transactionModeLines(results), ...overheadLines(results), ...endToEndLines(results), ...coldStartLines(results), ...contentionLines(results), ...costLines(results), ...redisLines(results)];
  const rows = lines.filter((l): l is Row => typeof l !== 'string');
  const head: Row = { metric: 'measurement', ours: 'ours', powertools: 'Powertools', ratio: 'ratio', unit: 'unit', n: 'n', target: 'target (issue 5)' };
  const columns = ['metric', 'ours', 'powertools', 'ratio', 'unit', 'n', 'target'] as const;
  const width = Object.fromEntries(columns.map((c) => [c, Math.max(...[head, ...rows].map((r) => [...r[c]].length))])) as Record<(typeof columns)[number], number>;
  const pad = (text: string, w: number, right = false) => (right ? text.padStart(w + text.length - [...text].length) : text.padEnd(w + text.length - [...text].length));
  const format = (r: Row) =>
    [pad(r.metric, width.metric), pad(r.ours, width.ours, true), pad(r.powertools, width.powertools, true), pad(r.ratio, width.ratio, true), pad(r.unit, width.unit), pad(r.n, width.n, true), r.target].join('  ').trimEnd();
  const rule = '─'.repeat(Math.min(200, Object.values(width).reduce((a, b) => a + b + 2, 0)));
  const body = lines.map((l) => (typeof l !== 'string' ? format(l) : /^\d/.test(l) ? `\n${l}` : l));
  return [...header, ...results.notes.map((n) => `NOTE: ${n}`), rule, format(head), rule, ...body, rule].join('\n');
}

export async function writeResults(path: string, results: Results): Promise<void> {
  await writeFile(path, `${JSON.stringify(results, (_key, value) => (value instanceof Uint8Array ? Buffer.from(value).toString('base64') : value), 2)}\n`);
}
