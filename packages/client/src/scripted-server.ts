/**
 * Test support for the client package's tests (not used by the library): a scripted UDP
 * server on 127.0.0.1 that records every datagram (proof and tag taken off, the proof checked
 * against the key it issued last) and answers through a handler.
 */
import dgram from "node:dgram";
import { once } from "node:events";
import { newProofKey, ReplayWindow, splitProof, verifyProof } from "@pesan/shared/protocol";

export interface Received {
  tag: string | undefined;
  /** The request, proof and tag removed. */
  text: string;
  from: dgram.RemoteInfo;
  /** The datagram as it came. */
  raw: string;
  /** The proof it carried (undefined: a plain datagram); valid against the server's key then. */
  proof: { seq: number; valid: boolean } | undefined;
}

export type Handler = (req: Received, srv: ScriptedServer) => string[] | undefined;

const TAG_RE = /^@([A-Za-z0-9_-]{1,32}) /;

export class ScriptedServer {
  readonly socket: dgram.Socket;
  readonly received: Received[] = [];
  handler: Handler;
  /** When true the server records but never answers (a dead server). */
  silent = false;
  /** The session key issued last (v2); proofs are checked against it. */
  key: string | undefined;
  private window = new ReplayWindow();
  private waiters: Array<() => void> = [];

  constructor(handler: Handler) {
    this.socket = dgram.createSocket("udp4");
    this.handler = handler;
    this.socket.on("message", (buf, rinfo) => {
      const raw = buf.toString("utf8");
      let text = raw;
      let proof: Received["proof"];
      const p = splitProof(text);
      if (p.kind === "proof") {
        const valid = this.key !== undefined && verifyProof(this.key, p.seq, p.mac, p.payload) && this.window.accept(p.seq);
        proof = { seq: p.seq, valid };
        text = p.payload;
      } else if (p.kind === "malformed") {
        proof = { seq: -1, valid: false };
      }
      let tag: string | undefined;
      const m = TAG_RE.exec(text);
      if (m) {
        tag = m[1];
        text = text.slice(m[0].length);
      }
      const req: Received = { tag, text, from: rinfo, raw, proof };
      this.received.push(req);
      for (const w of this.waiters.splice(0)) w();
      if (this.silent) return;
      const replies = this.handler(req, this) ?? [];
      for (const r of replies) this.push(tag === undefined ? r : `@${tag} ${r}`, rinfo);
    });
  }

  async listen(): Promise<this> {
    this.socket.bind(0, "127.0.0.1");
    await once(this.socket, "listening");
    return this;
  }

  get address(): string {
    return `127.0.0.1:${this.socket.address().port}`;
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** A fresh session key (what a v2 server puts in OK LOGIN); the old one is no longer valid. */
  issueKey(): string {
    this.key = newProofKey();
    this.window = new ReplayWindow();
    return this.key;
  }

  /** What a gateway restart does: every key is forgotten. */
  forgetKeys(): void {
    this.key = undefined;
  }

  push(text: string, to: { address: string; port: number }): void {
    this.socket.send(text, to.port, to.address);
  }

  /** Non-heartbeat requests, tags and proofs removed. */
  commands(): string[] {
    return this.received.map((r) => r.text).filter((t) => t !== "/@live?");
  }

  async waitFor(pred: (srv: this) => boolean, ms = 3000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred(this)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`condition not met within ${ms} ms; received: ${JSON.stringify(this.received.map((r) => r.raw))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** A well-behaved v1 fake: heartbeats, CAP ACK, LOGIN/RESUME with a fixed token, WHO. */
export function basicHandler(token = "tok123"): Handler {
  return (req) => {
    const t = req.text;
    if (t === "/@live?") return ["yes"];
    if (/^CAP ACK$/i.test(t)) return ["OK CAP ACK"];
    let m = /^\/?LOGIN (\S+) (.+)$/i.exec(t);
    if (m) return m[2] === "secret1" ? [`OK LOGIN ${m[1]} ${token}`] : ["ERR AUTH wrong user name, password or token"];
    m = /^\/?RESUME (\S+) (\S+)$/i.exec(t);
    if (m) return m[2] === token ? [`OK LOGIN ${m[1]} ${token}`] : ["ERR AUTH wrong user name, password or token"];
    if (/^\/?WHO$/i.test(t)) return ["ONLINE alice", "OK WHO 1"];
    if (/^\/?LOGOUT$/i.test(t)) return ["OK BYE"];
    if (/^ACK /.test(t)) return [];
    return [`ERR UNKNOWN_COMMAND ${t.split(" ")[0]}`];
  };
}

/**
 * A v2 fake (docs/protocol.md "Security"): LOGIN/RESUME answer with a fresh key; a datagram
 * whose proof does not check (e.g. after forgetKeys(), a gateway restart) gets
 * `ERR NOT_LOGGED_IN ...; RESUME` and does nothing; PING answers `OK PONG` to a valid proof.
 */
export function v2Handler(token = "tokv2"): Handler {
  const v1 = basicHandler(token);
  return (req, srv) => {
    const t = req.text;
    if (t === "/@live?") return ["yes"];
    if (req.proof && !req.proof.valid) return ["ERR NOT_LOGGED_IN proof not valid for this address; RESUME"];
    let m = /^\/?LOGIN (\S+) (.+)$/i.exec(t);
    if (m) return m[2] === "secret1" ? [`OK LOGIN ${m[1]} ${token} ${srv.issueKey()}`] : ["ERR AUTH wrong user name, password or token"];
    m = /^\/?RESUME (\S+) (\S+)$/i.exec(t);
    if (m) return m[2] === token ? [`OK LOGIN ${m[1]} ${token} ${srv.issueKey()}`] : ["ERR AUTH wrong user name, password or token"];
    if (/^PING$/i.test(t)) return [req.proof?.valid ? "OK PONG" : "ERR NOT_LOGGED_IN log in first"];
    if (/^SEND /i.test(t)) return [req.proof?.valid ? "OK SENT id1 DELIVERED" : "ERR NOT_LOGGED_IN log in first"];
    return v1(req, srv);
  };
}
