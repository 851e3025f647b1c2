/**
 * One check of one address of a component. Each resolves with a short detail when the address
 * is healthy and rejects with the reason when not; each is bounded by timeoutMs and leaves no
 * socket behind. The address is pinned (the name is not looked up again), so a check reports
 * on that replica only.
 */
import http from "node:http";
import https from "node:https";
import { connect as netConnect, type LookupFunction, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import pg from "pg";
import { askLive } from "@pesan/client";
import { TimeoutError, withTimeout } from "./schedule.ts";

export interface Endpoint {
  /** The IP address to reach. */
  address: string;
  family: number;
  port: number;
}

/** A lookup that answers every name with the pinned address (Host header and TLS SNI keep the name). */
function pinnedLookup(ep: Endpoint): LookupFunction {
  return ((_host: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void) => {
    if (opts?.all) cb(null, [{ address: ep.address, family: ep.family }]);
    else cb(null, ep.address, ep.family);
  }) as unknown as LookupFunction;
}

/** GET url at the pinned address; any 2xx is healthy. */
export function checkHttp(url: string, ep: Endpoint, timeoutMs: number): Promise<string> {
  const u = new URL(url);
  const mod = u.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, { method: "GET", lookup: pinnedLookup(ep), timeout: timeoutMs, headers: { "user-agent": "pesan-monitor" }, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        if (body.length < 300) body += d;
      });
      res.on("end", () => {
        const code = res.statusCode ?? 0;
        if (code >= 200 && code < 300) resolve(`HTTP ${code}`);
        else reject(new Error(`HTTP ${code}${body ? `: ${body.replace(/\s+/g, " ").slice(0, 200)}` : ""}`));
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new TimeoutError(`no HTTP answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** The protocol's heartbeat: `/@live?` must come back as `yes` (the whole path answers, not only the gateway). */
export function checkUdp(ep: Endpoint, timeoutMs: number): Promise<string> {
  return askLive(ep.address, ep.port, timeoutMs);
}

/** A TCP connection is accepted at the pinned address (then closed at once). */
export function checkTcp(ep: Endpoint, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: ep.address, port: ep.port });
    const timer = setTimeout(() => socket.destroy(new TimeoutError(`no TCP connection within ${timeoutMs} ms`)), timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve("TCP connected");
    });
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** Connects to the pinned address with the URL's credentials and runs SELECT 1. */
export async function checkPostgres(url: string, ep: Endpoint, timeoutMs: number): Promise<string> {
  const u = new URL(url);
  const sslmode = u.searchParams.get("sslmode") ?? "";
  const client = new pg.Client({
    host: ep.address,
    port: ep.port,
    user: decodeURIComponent(u.username) || undefined,
    password: decodeURIComponent(u.password) || undefined,
    database: decodeURIComponent(u.pathname.slice(1)) || undefined,
    ssl: ["require", "verify-ca", "verify-full"].includes(sslmode) ? { rejectUnauthorized: sslmode !== "require", servername: u.hostname } : undefined,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    application_name: "pesan-monitor",
  });
  client.on("error", () => undefined); // reported through connect/query
  try {
    await withTimeout(
      (async () => {
        await client.connect();
        await client.query("SELECT 1");
      })(),
      timeoutMs,
      "postgres check",
    );
    return "SELECT 1 ok";
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** RESP over a plain socket: AUTH when the URL has a password, then PING must answer +PONG. */
export function checkRedis(url: string, ep: Endpoint, timeoutMs: number): Promise<string> {
  const u = new URL(url);
  const commands: string[][] = [];
  const password = decodeURIComponent(u.password);
  if (password) commands.push(u.username ? ["AUTH", decodeURIComponent(u.username), password] : ["AUTH", password]);
  commands.push(["PING"]);
  const resp = commands.map((c) => `*${c.length}\r\n${c.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`).join("");
  return new Promise((resolve, reject) => {
    const socket: Socket =
      u.protocol === "rediss:" ? tlsConnect({ host: ep.address, port: ep.port, servername: u.hostname }) : netConnect({ host: ep.address, port: ep.port });
    let buffer = "";
    const replies: string[] = [];
    let done = false;
    const finish = (err: Error | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve("PONG");
    };
    const timer = setTimeout(() => finish(new TimeoutError(`no PONG within ${timeoutMs} ms`)), timeoutMs);
    socket.once(u.protocol === "rediss:" ? "secureConnect" : "connect", () => socket.write(resp));
    socket.on("data", (d: Buffer) => {
      buffer += d.toString("utf8");
      let i: number;
      while ((i = buffer.indexOf("\r\n")) >= 0) {
        replies.push(buffer.slice(0, i));
        buffer = buffer.slice(i + 2);
      }
      for (const r of replies) if (r.startsWith("-")) return finish(new Error(`redis answered ${r.slice(0, 120)}`));
      if (replies.length >= commands.length) finish(replies[replies.length - 1] === "+PONG" ? undefined : new Error(`expected +PONG, got ${replies.at(-1)}`));
    });
    socket.on("error", (e) => finish(e));
    socket.on("close", () => finish(new Error("connection closed before PONG")));
  });
}
