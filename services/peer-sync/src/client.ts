/**
 * Signed requests to one peer over HTTP/1.1 keep-alive (https with our CA when configured).
 * node:http rather than fetch: a per-peer Agent carries both the connection pool and the CA,
 * without a second copy of undici.
 */
import http from "node:http";
import https from "node:https";
import { HEADERS, newNonce, signedHeaders, verifyResponse, type RequestParts, type ResponseParts } from "./signing.ts";

/** How requests are signed and answers checked: a link's pair key by default; a join uses its invite's (membership/join.ts). */
export interface Signer {
  headers(key: string, p: RequestParts): Record<string, string>;
  verify(key: string, p: ResponseParts, signature: string | undefined): boolean;
}

const LINK_SIGNER: Signer = { headers: signedHeaders, verify: verifyResponse };

export interface PeerClientOptions {
  self: string;
  peer: string;
  baseUrl: string;
  key: string;
  timeoutMs: number;
  /** Trusted CAs for https peers (PEM); the system's when omitted. */
  ca?: Buffer;
  clock?: () => number;
  nonce?: () => string;
  signer?: Signer;
}

/** Why a call failed, for logs; every failure counts the same for liveness. */
export class PeerCallError extends Error {
  readonly kind: "network" | "timeout" | "refused" | "bad_response";
  readonly status: number | undefined;
  constructor(kind: PeerCallError["kind"], message: string, status?: number) {
    super(message);
    this.name = "PeerCallError";
    this.kind = kind;
    this.status = status;
  }
}

const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export class PeerClient {
  private readonly o: PeerClientOptions;
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly clock: () => number;
  private readonly nonce: () => string;

  constructor(o: PeerClientOptions) {
    this.o = o;
    this.url = new URL(o.baseUrl);
    this.clock = o.clock ?? Date.now;
    this.nonce = o.nonce ?? newNonce;
    const agentOpts = { keepAlive: true, maxSockets: 4, keepAliveMsecs: 10_000 };
    this.agent = this.url.protocol === "https:" ? new https.Agent({ ...agentOpts, ...(o.ca ? { ca: o.ca } : {}) }) : new http.Agent(agentOpts);
  }

  /** POSTs a JSON body to `path` (under the base URL's path); resolves with the verified JSON answer. */
  async post(path: string, body: unknown): Promise<unknown> {
    const fullPath = `${this.url.pathname.replace(/\/+$/, "")}${path}`;
    const text = JSON.stringify(body);
    const nonce = this.nonce();
    // The protocol path is signed, not the URL's prefix: a reverse proxy in front of the peer
    // may strip the prefix, and the peer verifies the path it receives.
    const signer = this.o.signer ?? LINK_SIGNER;
    const headers = signer.headers(this.o.key, { method: "POST", path, from: this.o.self, to: this.o.peer, timestamp: this.clock(), nonce, body: text });
    const { status, headers: resHeaders, raw } = await this.send(fullPath, headers, text);
    if (status < 200 || status >= 300) {
      let reason = "";
      try {
        reason = String((JSON.parse(raw.toString("utf8")) as { error?: unknown }).error ?? "");
      } catch {
        // not our JSON error: a proxy or another server
      }
      throw new PeerCallError("refused", `HTTP ${status}${reason ? ` (${reason})` : ""}`, status);
    }
    const sig = resHeaders[HEADERS.signature];
    if (!signer.verify(this.o.key, { status, from: this.o.peer, to: this.o.self, nonce, body: raw }, typeof sig === "string" ? sig : undefined)) {
      throw new PeerCallError("bad_response", "the answer is not signed with this link's key", status);
    }
    try {
      return JSON.parse(raw.toString("utf8")) as unknown;
    } catch {
      throw new PeerCallError("bad_response", "the answer is not JSON", status);
    }
  }

  private send(path: string, headers: Record<string, string>, body: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; raw: Buffer }> {
    const mod = this.url.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const fail = (e: PeerCallError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(e);
      };
      const req = mod.request(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname.replace(/^\[(.*)\]$/, "$1"),
          port: this.url.port || undefined,
          method: "POST",
          path,
          agent: this.agent,
          headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) {
              req.destroy();
              fail(new PeerCallError("bad_response", "answer too large"));
            } else chunks.push(c);
          });
          res.on("error", (e) => fail(new PeerCallError("network", e.message)));
          res.on("end", () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, headers: res.headers, raw: Buffer.concat(chunks) });
          });
        },
      );
      timer = setTimeout(() => {
        fail(new PeerCallError("timeout", `no answer within ${this.o.timeoutMs} ms`));
        req.destroy();
      }, this.o.timeoutMs);
      req.on("error", (e) => fail(new PeerCallError("network", e.message)));
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
