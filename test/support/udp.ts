/**
 * A netcat-like test client: sends raw datagrams, keeps every line received, and waits for
 * lines matching a predicate. Assertions read exactly what a user with `nc -u` would see.
 */
import { createSocket, type Socket } from "node:dgram";
import { unframe } from "@pesan/shared/protocol";

export class RawClient {
  readonly lines: string[] = [];
  private readonly socket: Socket;
  private host: string;
  private port: number;
  private waiters: Array<() => void> = [];
  /** Drop the next n datagrams received (simulates loss on the way to the client). */
  dropNext = 0;

  private constructor(socket: Socket, host: string, port: number) {
    this.socket = socket;
    this.host = host;
    this.port = port;
    socket.on("message", (buf) => {
      if (this.dropNext > 0) {
        this.dropNext--;
        return;
      }
      this.lines.push(unframe(buf.toString("utf8")));
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  static async open(address: string): Promise<RawClient> {
    const i = address.lastIndexOf(":");
    const socket = createSocket("udp4");
    await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
    return new RawClient(socket, address.slice(0, i), Number(address.slice(i + 1)));
  }

  get localPort(): number {
    return this.socket.address().port;
  }

  send(data: string | Buffer): void {
    this.socket.send(data, this.port, this.host);
  }

  /** Retargets the client at another server (failover by hand). */
  retarget(address: string): void {
    const i = address.lastIndexOf(":");
    this.host = address.slice(0, i);
    this.port = Number(address.slice(i + 1));
  }

  /** Waits for the first line (at or after index `from`) that matches; returns it. */
  async waitFor(match: RegExp | ((l: string) => boolean), timeoutMs = 5000, from = 0): Promise<string> {
    const test = typeof match === "function" ? match : (l: string) => match.test(l);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.slice(from).find(test);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no line matching ${String(match)} within ${timeoutMs} ms; got:\n${this.lines.join("\n")}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Sends a request and waits for its final reply (tag-matched): OK, ERR, yes or MSG. */
  async request(line: string, timeoutMs = 5000): Promise<string> {
    const tag = `t${Math.random().toString(36).slice(2, 10)}`;
    const from = this.lines.length;
    this.send(`@${tag} ${line}`);
    const reply = await this.waitFor((l) => l.startsWith(`@${tag} `) && /^@\S+ (OK |ERR |yes$|MSG )/.test(l), timeoutMs, from);
    return reply.slice(tag.length + 2);
  }

  /** Every line tagged for the given request, in order (for WHO, INBOX, SERVERS). */
  async requestAll(line: string, timeoutMs = 5000): Promise<string[]> {
    const tag = `t${Math.random().toString(36).slice(2, 10)}`;
    const from = this.lines.length;
    this.send(`@${tag} ${line}`);
    await this.waitFor((l) => l.startsWith(`@${tag} `) && /^@\S+ (OK |ERR )/.test(l), timeoutMs, from);
    return this.lines.slice(from).filter((l) => l.startsWith(`@${tag} `)).map((l) => l.slice(tag.length + 2));
  }

  /** Lets in-flight datagrams arrive, then returns lines received since `from`. */
  async settle(ms = 300, from = 0): Promise<string[]> {
    await new Promise((r) => setTimeout(r, ms));
    return this.lines.slice(from);
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}
