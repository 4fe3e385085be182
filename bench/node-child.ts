/**
 * The sections `bench/run.ts` repeats on another Node.js version, run in a child process on that
 * version against the parent's DynamoDB Local. Reads its plan from `BENCH_CHILD_PLAN` and writes
 * its results as JSON to stdout. Loads the library from the parent's compiled build (bench/library.ts).
 */
import './env.js';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { type CallScopeCost, measureCallScope } from './call-scope.js';
import { type EndToEnd, measureEndToEnd } from './e2e.js';
import type { Tables } from './local.js';
import { decode, encode } from './other-node.js';
import { measureOverhead, type OverheadPlan, type OverheadResult } from './overhead.js';
import { measureSingleFlight, type SingleFlightPlan, type SingleFlightRun } from './single-flight.js';
import type { Library } from './subjects.js';

export interface ChildPlan {
  readonly endpoint: string;
  readonly tables: Tables;
  readonly replayItems: Record<Library, Record<string, AttributeValue>>;
  readonly callScope: { readonly warmup: number; readonly samples: number };
  readonly singleFlight: SingleFlightPlan;
  readonly overhead: readonly OverheadPlan[];
  readonly endToEnd: { readonly warmup: number; readonly samples: number };
}

export interface ChildResults {
  readonly node: string;
  readonly callScope: CallScopeCost;
  readonly singleFlight: SingleFlightRun[];
  readonly overhead: OverheadResult[];
  readonly endToEnd: EndToEnd;
}

const plan = decode<ChildPlan>(process.env.BENCH_CHILD_PLAN ?? '');
const progress = (what: string) => process.stderr.write(`[bench ${process.version}] ${what}\n`);

progress('call scope');
const callScope = await measureCallScope(plan.replayItems.ours, plan.callScope.warmup, plan.callScope.samples);
progress('single-flight');
const singleFlight = await measureSingleFlight(plan.endpoint, plan.tables, plan.singleFlight);
progress('in-process overhead');
const overhead = await measureOverhead(plan.overhead, plan.replayItems);
progress('end to end');
const endToEnd = await measureEndToEnd(plan.endpoint, plan.tables, plan.endToEnd.warmup, plan.endToEnd.samples);
const results: ChildResults = { node: process.version, callScope, singleFlight, overhead, endToEnd };
process.stdout.write(`${encode(results)}\n`);
