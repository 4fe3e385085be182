/**
 * `npm run demo`: starts DynamoDB Local, creates the tables the stack defines, runs the real demo
 * handlers through the scenarios and prints what was charged; exits 1 if anything was charged a
 * different number of times than it should have been.
 *
 * `npm run demo -- --serve [--port 3000]`: serves the payment API on 127.0.0.1 instead (`PORT` also
 * sets the port; 0 takes any free one), until Ctrl-C or a SIGTERM/SIGHUP to this process, which also stops DynamoDB Local.
 *
 * `npm run demo -- --store redis`: the scenarios with the idempotency records on a redis-server
 * started for the run (RedisStore, ioredis), instead of DynamoDB Local.
 */
import './quiet.js';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { type DynamoDBLocal, localClient, startDynamoDBLocal } from '../tools/dynamodb-local.js';
import { type RedisServer, startRedisServer } from '../tools/redis-server.js';
import { runRedisScenarios } from './redis-scenarios.js';
import { createDemoTables, runScenarios, type ScenarioResult } from './scenarios.js';
import { serve } from './serve.js';

const { values: args } = parseArgs({
  options: {
    serve: { type: 'boolean', default: false },
    port: { type: 'string', default: process.env.PORT ?? '3000' },
    store: { type: 'string', default: 'dynamodb' },
  },
});

function line(result: ScenarioResult): string {
  const mark = result.ok ? '✓' : '✗';
  const counts = `${result.effect} ${String(result.happened).padStart(2)} (expected ${result.expected})`;
  let out = `  ${mark} ${result.name.padEnd(60)} ${counts.padEnd(24)} ${result.detail}`;
  for (const problem of result.problems) out += `\n      ✗ ${problem}`;
  return out;
}

/** Prints the summary line of a run; 0 when every scenario kept its count. */
function summary(results: readonly ScenarioResult[], started: number): number {
  const failed = results.filter((r) => !r.ok);
  console.log(
    failed.length === 0
      ? `\nAll ${results.length} scenarios charged and refunded exactly as often as they should (${Date.now() - started} ms).`
      : `\n${failed.length} of ${results.length} scenarios did not: ${failed.map((r) => r.name).join('; ')}.`,
  );
  return failed.length === 0 ? 0 : 1;
}

async function mainRedis(started: number): Promise<number> {
  let server: RedisServer;
  try {
    server = await startRedisServer();
  } catch (error) {
    console.error(`Could not start redis-server: ${(error as Error).message}`);
    return 1;
  }
  const client = new Redis(server.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 2000 });
  try {
    console.log(`redis-server on ${server.url} (started in ${Date.now() - started} ms; maxmemory-policy noeviction, persistence off)\n`);
    console.log('Scenarios (idempotency records in Redis through RedisStore, a fake card processor that counts):\n');
    return summary(await runRedisScenarios(client, (result) => console.log(line(result))), started);
  } finally {
    client.disconnect();
    await server.stop();
  }
}

async function main(): Promise<number> {
  const started = Date.now();
  if (args.store !== 'dynamodb' && args.store !== 'redis') {
    console.error(`--store must be dynamodb or redis (got ${args.store}).`);
    return 1;
  }
  if (args.store === 'redis') {
    if (args.serve) {
      console.error('--serve runs the payment API on DynamoDB only (its payments commit with their records in one transaction).');
      return 1;
    }
    return mainRedis(started);
  }
  let local: DynamoDBLocal;
  try {
    local = await startDynamoDBLocal({ quickStart: true });
  } catch (error) {
    console.error(`Could not start DynamoDB Local: ${(error as Error).message}`);
    return 1;
  }
  const client = localClient(local.endpoint);
  const stop = async () => {
    client.destroy();
    await local.stop();
  };
  try {
    const tables = await createDemoTables(client);
    console.log(`DynamoDB Local on ${local.endpoint} (started in ${Date.now() - started} ms); tables ${tables.idempotencyTable}, ${tables.paymentsTable}\n`);

    if (args.serve) {
      const port = Number(args.port);
      if (args.port.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65_535) {
        console.error(`--port must be a TCP port number, or 0 for any free one (got ${args.port}).`);
        return 1;
      }
      const server = await serve(client, tables, port);
      // With port 0 the system chose one: print the port the server has.
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      // The process to signal is this one: `npm run` does not pass a kill of its own PID on through its shell.
      console.log(`Payment API on ${base} (process ${process.pid}: Ctrl-C or \`kill ${process.pid}\` stops it and DynamoDB Local). Try:\n`);
      console.log(
        `  curl -i -X POST ${base}/payments -H 'Idempotency-Key: order-42' -H 'Content-Type: application/json' -d '{"amount": 4999, "currency": "EUR"}'`,
      );
      console.log('  # the same command again: the same payment, with Idempotent-Replayed: true');
      console.log(
        `  curl -i -X POST ${base}/payments -H 'Idempotency-Key: order-42' -H 'Content-Type: application/json' -d '{"amount": 5000, "currency": "EUR"}'   # 422`,
      );
      console.log(
        `  curl -i -X POST ${base}/payments/<paymentId>/refunds -H 'Idempotency-Key: refund-1' -H 'Content-Type: application/json' -d '{"amount": 1000}'`,
      );
      console.log(`  curl -i ${base}/payments/<paymentId>   # the payment as it stands (the Location of the 201)`);
      console.log(`  curl -i -X POST ${base}/idempotency-keys   # a server-issued key, to send as the Idempotency-Key\n`);
      await new Promise<void>((resolve) => {
        const shutdown = () => {
          server.close(() => resolve());
          // DynamoDB Local stops on the same signal: a request still open (a stalled client, a
          // keep-alive connection) would otherwise hold the server, and the process, open.
          server.closeAllConnections();
        };
        // SIGHUP: the terminal was closed.
        for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, shutdown);
      });
      return 0;
    }

    console.log('Scenarios (real handlers from infra/functions, real DynamoDB Local, a fake card processor that counts):\n');
    return summary(await runScenarios(client, tables, (result) => console.log(line(result))), started);
  } finally {
    await stop();
  }
}

process.exitCode = await main();
