/**
 * A loopback TCP proxy in front of a server, for outages a real server cannot stage by itself: `cut`
 * drops every connection and refuses new ones; `stall` keeps connections open but forwards nothing
 * (a black hole); `loseReplies` forwards requests but no replies; `cutRepliesShort` forwards a
 * reply's headers but not the rest of it (a connection dropped silently mid-reply); `hold` keeps requests until
 * `release` forwards those held so far (a server that answers late); `restore` lets traffic through
 * again on the same port; `retarget` sends new connections to another server (an endpoint's DNS
 * name moved to a promoted replica).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { freePort } from '../../tools/dynamodb-local.js';

export class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private stalled = false;
  private repliesLost = false;
  private shortReplies = 0;
  private held: Array<() => void> | undefined;
  /** Chunks of requests the proxy has received from clients, forwarded or not. */
  requests = 0;
  /** The connections whose requests went nowhere since the last {@link stall}, and who waits for how many. */
  private swallowedBy = new Set<Socket>();
  private swallowWaiters: Array<{ readonly count: number; readonly resolve: () => void }> = [];

  private constructor(
    readonly port: number,
    private targetPort: number,
  ) {}

  static async start(targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(await freePort(), targetPort);
    await proxy.listen();
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Drops every connection and stops listening: clients see a reset, then connection refused. */
  async cut(): Promise<void> {
    const closed = this.server ? new Promise<void>((resolve) => this.server!.close(() => resolve())) : Promise.resolve();
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await closed;
  }

  /** Connections stay open, bytes go nowhere. */
  stall(): void {
    this.stalled = true;
    this.swallowedBy = new Set();
  }

  /**
   * Settles once requests on `connections` connections (one request each: HTTP/1.1 sends the next
   * only after an answer) have gone nowhere since the last {@link stall}: their clients are now
   * waiting for answers that will not come.
   */
  swallowed(connections = 1): Promise<void> {
    return new Promise((resolve) => {
      this.swallowWaiters.push({ count: connections, resolve });
      this.settleSwallowWaiters();
    });
  }

  private settleSwallowWaiters(): void {
    this.swallowWaiters = this.swallowWaiters.filter((waiter) => this.swallowedBy.size < waiter.count || void waiter.resolve());
  }

  /** Requests wait at the proxy until {@link release}: the server sees them late. */
  hold(): void {
    this.held ??= [];
  }

  /** Forwards the requests held so far; later ones are held again, until {@link restore}. */
  release(): void {
    for (const forward of this.held?.splice(0) ?? []) forward();
  }

  /** Requests still reach the server, its replies go nowhere (a connection lost after a command was sent). */
  loseReplies(): void {
    this.repliesLost = true;
  }

  /**
   * The next `replies` HTTP replies get through up to their headers and the first byte of their
   * body, and nothing more comes on their connections, which stay open: a connection dropped
   * silently mid-reply. Other connections are not touched.
   */
  cutRepliesShort(replies = 1): void {
    this.shortReplies += replies;
  }

  /** New connections go to `port` (a DNS name that now points at another node); open ones stay where they are. */
  retarget(port: number): void {
    this.targetPort = port;
  }

  async restore(): Promise<void> {
    this.stalled = false;
    this.repliesLost = false;
    this.shortReplies = 0;
    this.release();
    this.held = undefined;
    if (!this.server) await this.listen();
  }

  private listen(): Promise<void> {
    const server = createServer((downstream) => {
      const upstream = connect(this.targetPort, '127.0.0.1');
      for (const socket of [downstream, upstream]) {
        this.sockets.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => {
          this.sockets.delete(socket);
          downstream.destroy();
          upstream.destroy();
        });
      }
      downstream.on('data', (chunk) => {
        this.requests++;
        if (this.held !== undefined) this.held.push(() => void upstream.write(chunk));
        else if (!this.stalled) upstream.write(chunk);
        else {
          this.swallowedBy.add(downstream);
          this.settleSwallowWaiters();
        }
      });
      let cutShort = false;
      upstream.on('data', (chunk: Buffer) => {
        if (this.stalled || this.repliesLost || cutShort) return;
        const headersEnd = this.shortReplies > 0 ? chunk.indexOf('\r\n\r\n') : -1;
        if (headersEnd === -1) return void downstream.write(chunk);
        this.shortReplies--;
        cutShort = true;
        downstream.write(chunk.subarray(0, headersEnd + 5));
      });
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
  }
}
