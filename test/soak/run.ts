/**
 * `npm run soak`: 20,000 idempotent calls against an embedded DynamoDB Local behind the fault layer
 * (see soak.ts). Prints the figures, writes test/soak/results.json, and exits non-zero when an
 * invariant is violated. `npm run soak -- --calls 5000 --seed 7` changes the size or the seed.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { idempotencyTableSchema } from '../../lib/table-schema.js';
import { localClient, startDynamoDBLocal } from '../../tools/dynamodb-local.js';
import { createTable } from '../../tools/tables.js';
import { formatReport, runSoak } from './soak.js';

// The SDK's notice about future Node versions is noise in a report.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '20000' }, seed: { type: 'string' } } });
const calls = Number(values.calls);
if (!Number.isInteger(calls) || calls < 1) throw new TypeError('--calls must be a whole number, 1 or more.');

console.log('starting DynamoDB Local…');
const local = await startDynamoDBLocal();
let failed = true;
try {
  const admin = localClient(local.endpoint);
  await createTable(admin, 'idempotency-soak', idempotencyTableSchema);
  admin.destroy();
  // A cold JVM answers slowly for its first few thousand requests: warm it up, so the latency figures are of a running service.
  const warmUp = await runSoak({ endpoint: local.endpoint, tableName: 'idempotency-soak', calls: 2_000, faultRate: 0, handlerFailureRate: 0, seed: 1 });
  console.log(`warm-up: ${warmUp.calls} calls without faults in ${(warmUp.durationMs / 1000).toFixed(1)} s`);
  const report = await runSoak({ endpoint: local.endpoint, tableName: 'idempotency-soak', calls, ...(values.seed ? { seed: Number(values.seed) } : {}) });
  console.log(formatReport(report));
  const file = fileURLToPath(new URL('./results.json', import.meta.url));
  writeFileSync(file, `${JSON.stringify({ ranAt: new Date().toISOString(), node: process.version, ...report }, null, 2)}\n`);
  console.log(`results written to ${file}`);
  failed = report.violations.length > 0;
} finally {
  await local.stop();
}
process.exit(failed ? 1 : 0);
