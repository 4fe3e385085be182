/**
 * Starts a `redis-server` (Debian's package) on a free loopback port with persistence off, for the
 * tests, the demo and the benchmarks; it never outlives the process that started it. Development
 * tooling, not part of the library.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tieToProcess } from './child-process.ts';
import { freePort } from './dynamodb-local.ts';

export interface RedisServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  /** @default 'noeviction' (the only policy under which RedisStore claims) */
  readonly maxmemoryPolicy?: string;
  /** A one-node Redis Cluster that serves every slot. @default false */
  readonly cluster?: boolean;
  /** Port of a primary on this machine: the server starts as its replica. */
  readonly replicaOf?: number;
  /** @default 10000 */
  readonly timeoutMillis?: number;
  /** @default a free port */
  readonly port?: number;
  /** Data directory, kept when the server stops (to start another on the same data). @default a temporary one, removed at stop */
  readonly dir?: string;
  /** Append every write to the AOF and fsync it before answering, so a crash loses no acknowledged write. @default false */
  readonly appendOnly?: boolean;
  /** Further configuration, as `redis-server` takes it on its command line (`['--rename-command', 'INFO', '']`). @default none */
  readonly extraArgs?: readonly string[];
}

const SERVER_MISSING =
  'The tests need `redis-server` on PATH, and it was not found. ' +
  'Install it (Debian/Ubuntu: `apt-get install -y redis-server`; macOS: `brew install redis`) and run again.';

/** Sends one inline command; resolves once `read` finds what it needs in the reply so far. */
function ask<T>(port: number, command: string, read: (reply: string) => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    socket.setTimeout(1000, () => socket.destroy(new Error('no reply')));
    socket.once('error', reject);
    socket.once('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
      const found = read(reply);
      if (found !== undefined) {
        socket.end();
        resolve(found);
      }
    });
  });
}

const firstLine = (reply: string): string | undefined => (reply.includes('\r\n') ? reply.slice(0, reply.indexOf('\r\n')) : undefined);

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  // Cluster mode writes its node table to a file: keep it out of the working directory.
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'redis-'));
  const aof = options.appendOnly ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...aof, '--dir', dir];
  args.push('--maxmemory-policy', options.maxmemoryPolicy ?? 'noeviction');
  // A replica syncs at once, not after the 5 s a primary waits by default for more replicas to share its transfer.
  args.push('--repl-diskless-sync-delay', '0');
  // Announced as 127.0.0.1: a node that does not know its address announces '', which ioredis cannot dial.
  if (options.cluster) args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-announce-ip', '127.0.0.1');
  if (options.replicaOf !== undefined) args.push('--replicaof', '127.0.0.1', String(options.replicaOf));
  args.push(...(options.extraArgs ?? []));
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  let failure: Error | undefined;
  child.once('error', (error: NodeJS.ErrnoException) => {
    failure = error.code === 'ENOENT' ? new Error(SERVER_MISSING) : error;
  });
  child.once('exit', (code) => {
    failure ??= new Error(`redis-server exited early with code ${code}`);
  });
  // A data directory of the caller's is kept, to start another server on the same data.
  const stop = tieToProcess(child, () => {
    if (options.dir === undefined) rmSync(dir, { recursive: true, force: true });
  });
  const timeout = options.timeoutMillis ?? 10_000;
  const deadline = Date.now() + timeout;
  try {
    for (;;) {
      if (failure) throw failure;
      const reply = await ask(port, 'PING', firstLine).catch(() => undefined);
      if (reply === '+PONG') break;
      if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port} within ${timeout} ms`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    if (options.cluster) {
      const added = await ask(port, 'CLUSTER ADDSLOTSRANGE 0 16383', firstLine);
      if (added !== '+OK') throw new Error(`redis-server refused the cluster slots: ${added}`);
      // A master keeps its cluster failed for 2 s after it starts counting (CLUSTER_WRITABLE_DELAY):
      // a bound of its own, as a loaded machine may have spent most of the first on starting it.
      const ready = Date.now() + timeout;
      for (;;) {
        const info = await ask(port, 'CLUSTER INFO', (reply) => /cluster_state:(\w+)/.exec(reply)?.[1]);
        if (info === 'ok') break;
        if (Date.now() > ready) throw new Error(`the one-node cluster on port ${port} did not become ready (state ${info})`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }
    return { host: '127.0.0.1', port, url: `redis://127.0.0.1:${port}`, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
