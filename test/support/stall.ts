/**
 * An event loop held by synchronous work while a store's answer arrives: from the moment a request
 * is on the wire until the store has applied it and a bound has passed. What a long
 * `JSON.stringify` or a 128 MB function's throttled CPU does to a call, made deterministic.
 */
import { execFileSync } from 'node:child_process';
import { Socket } from 'node:net';

/**
 * Holds the event loop, from the moment the first socket write that carries `marker` is flushed
 * (at once, or when its socket is uncorked: node-redis and Node's HTTP client cork their writes),
 * until `applied()` and then until `millis` have passed since: the answer is then in the socket,
 * unread, and every timer started before the write has expired. Fails instead of holding for ever
 * when the write never reaches the server. `restore()` puts the socket's methods back.
 */
export function stallOnWrite(marker: string, millis: number, applied: () => boolean): { readonly stalled: () => number; restore(): void } {
  const { write, uncork } = Socket.prototype;
  let carrier: Socket | undefined;
  let stalled = 0;
  const stallOnceFlushed = (socket: Socket) => {
    if (socket !== carrier || stalled > 0 || socket.writableCorked > 0) return;
    const started = performance.now();
    while (!applied()) {
      if (performance.now() - started > 10_000) throw new Error(`the write carrying ${marker} was not applied within 10 s`);
    }
    while (performance.now() - started < millis);
    stalled = performance.now() - started;
  };
  // biome-ignore lint/suspicious/noExplicitAny: Socket.write's overloads, passed through as they came
  Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: any[]): boolean {
    const written = write.call(this, chunk as string, ...rest);
    if (carrier === undefined && String(chunk).includes(marker)) carrier = this;
    stallOnceFlushed(this);
    return written;
  };
  Socket.prototype.uncork = function (this: Socket): void {
    uncork.call(this);
    stallOnceFlushed(this);
  };
  return {
    stalled: () => stalled,
    restore: () => {
      Socket.prototype.write = write;
      Socket.prototype.uncork = uncork;
    },
  };
}

/**
 * What a server on loopback `port` answers to `request` (raw bytes, ending with one that closes the
 * connection: `QUIT` to Redis, `Connection: close` over HTTP), asked by another process: this one
 * is held and cannot read its own sockets.
 */
export function askElsewhere(port: number, request: string): string {
  const script = `const s = require('node:net').connect(${port}, '127.0.0.1', () => s.write(${JSON.stringify(request)}));
s.setEncoding('utf8');
let answer = '';
s.on('data', (d) => (answer += d));
s.on('end', () => process.stdout.write(answer));`;
  return execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', env: {}, timeout: 10_000 });
}
