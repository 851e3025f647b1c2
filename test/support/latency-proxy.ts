/**
 * A TCP proxy on a loopback port that makes a server farther away: every chunk a client sends
 * is forwarded `delayMs` after it arrived (in order; answers come back at once). So each
 * request/answer over it takes about delayMs longer, over a new connection or a kept-alive
 * one alike, which is what "the link to that cluster has a longer round trip" means to the
 * caller. Test traffic is small: no backpressure beyond what the sockets' buffers hold.
 */
import net from "node:net";

export interface LatencyProxy {
  /** Where clients connect. */
  readonly port: number;
  /** Stops listening and cuts the connections in flight; idempotent. */
  close(): Promise<void>;
}

export interface LatencyProxyOptions {
  /** The port to listen on, 127.0.0.1 (from freePorts). */
  port: number;
  target: { host: string; port: number };
  delayMs: number;
}

export async function startLatencyProxy(o: LatencyProxyOptions): Promise<LatencyProxy> {
  if (!Number.isFinite(o.delayMs) || o.delayMs < 0) throw new RangeError(`delayMs must be >= 0, not ${o.delayMs}`);
  const sockets = new Set<net.Socket>();
  // Half-open both ways: a client's end is passed on after the data before it, not at once.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ port: o.target.port, host: o.target.host, allowHalfOpen: true });
    sockets.add(client).add(upstream);
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on("error", cut);
      s.on("close", () => {
        sockets.delete(s);
        cut();
      });
    }
    // Timers of one duration fire in the order they were set, so chunks (and the end) keep
    // their order.
    client.on("data", (chunk) => {
      setTimeout(() => {
        if (!upstream.destroyed) upstream.write(chunk);
      }, o.delayMs);
    });
    client.on("end", () => {
      setTimeout(() => {
        if (!upstream.destroyed) upstream.end();
      }, o.delayMs);
    });
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  let closed: Promise<void> | undefined;
  return {
    port: o.port,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      })),
  };
}
