/**
 * A netcat-like test client on the client core's Transport: sends raw datagrams, keeps every
 * line received (from anyone), and waits for lines matching a predicate. Assertions read
 * exactly what a user with `nc -u` would see. send() sends bytes as given, never signed;
 * with `{ proofs: true }` request()/requestAll()/sendSigned() sign once an `OK LOGIN` answering
 * a request of this client brought a session key (protocol v2), as the library does.
 */
import { RequestTimeoutError, Transport } from "@pesan/client";

export interface RawClientOptions {
  /** Take the session key from `OK LOGIN` replies and sign requests with it (default false). */
  proofs?: boolean;
}

export class RawClient {
  readonly lines: string[] = [];
  private readonly transport: Transport;
  private waiters: Array<() => void> = [];
  /** Drop the next n datagrams received (simulates loss on the way to the client). */
  dropNext = 0;

  private constructor(transport: Transport) {
    this.transport = transport;
  }

  static async open(address: string, o: RawClientOptions = {}): Promise<RawClient> {
    let self: RawClient | undefined;
    const transport = new Transport({
      target: address,
      bindHost: address.startsWith("[") ? "::1" : "127.0.0.1",
      // Like netcat: a reply counts whoever sent it.
      matchAnySource: true,
      // A test floods the gateway with thousands of small datagrams and checks the last reply
      // (flood.test's one ERR RATE_LIMITED): the kernel's default 208 KiB buffer holds a few
      // hundred of them, so a jest worker slowed by the others lost that reply in CI. The
      // server's behaviour is under test, not this socket's (the kernel caps it at rmem_max).
      recvBufferSize: 4 * 1024 * 1024,
      autoProof: o.proofs ?? false,
      inbound: () => {
        if (self && self.dropNext > 0) {
          self.dropNext--;
          return false;
        }
        return true;
      },
      onDatagram: (d) => self?.record(d.text),
    });
    self = new RawClient(transport);
    await transport.start();
    return self;
  }

  private record(line: string): void {
    this.lines.push(line);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  get localPort(): number {
    return this.transport.localPort!;
  }

  /** The session key in use (with `proofs: true`), if any. */
  get key(): string | undefined {
    return this.transport.key;
  }

  /** Sends exactly these bytes (never signed). */
  send(data: string | Buffer): void {
    this.transport.sendBytes(data);
  }

  /** Sends one datagram signed with the session key (as is while there is none). */
  sendSigned(text: string): void {
    this.transport.send(text);
  }

  /** Retargets the client at another server (failover by hand). */
  retarget(address: string): void {
    void this.transport.retarget(address);
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
    const all = await this.requestAll(line, timeoutMs);
    return all[all.length - 1]!;
  }

  /** Every line tagged for the given request, in order (for WHO, INBOX, SERVERS). */
  async requestAll(line: string, timeoutMs = 5000): Promise<string[]> {
    try {
      const lines = await this.transport.request(line, { timeoutMs });
      return lines.map((l) => l.raw.slice(l.tag!.length + 2));
    } catch (err) {
      if (err instanceof RequestTimeoutError) throw new Error(`no reply to ${JSON.stringify(line)} within ${timeoutMs} ms; got:\n${this.lines.join("\n")}`);
      throw err;
    }
  }

  /** Lets in-flight datagrams arrive, then returns lines received since `from`. */
  async settle(ms = 300, from = 0): Promise<string[]> {
    await new Promise((r) => setTimeout(r, ms));
    return this.lines.slice(from);
  }

  close(): void {
    // Transport.close() never rejects.
    void this.transport.close();
  }
}
