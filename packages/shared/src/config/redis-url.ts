/**
 * The forms REDIS_URL takes, parsed in this one place (the config schemas validate with it, the
 * bus connects with what it returns):
 *
 * - `redis://[[user]:password@]host[:port][/db]` or `rediss://...` (TLS): one Redis server, passed
 *   to ioredis as is.
 * - `redis+sentinel://[[user]:password@]host1[:port1],host2[:port2],.../<master-name>[/db]`:
 *   Redis Sentinel. The hosts are sentinels (port 26379 when omitted; IPv6 in brackets); the
 *   client asks them for the current primary of `<master-name>` and follows a failover. The user
 *   and password are those of the Redis servers (the primary and its replicas), not of the
 *   sentinels, which are expected to need none.
 * - `redis+cluster://[[user]:password@]host1:port1,host2:port2,...`: Redis Cluster. The hosts are
 *   seed nodes (port 6379 when omitted); the client learns the rest from them. No path: a
 *   cluster has database 0 only.
 */
import { parseServerAddress } from "../names.ts";

export interface SentinelAddress {
  host: string;
  port: number;
}

export type RedisTarget =
  | { kind: "single"; url: string }
  | { kind: "sentinel"; sentinels: SentinelAddress[]; name: string; db: number; username?: string; password?: string }
  | { kind: "cluster"; nodes: SentinelAddress[]; username?: string; password?: string };

export const SENTINEL_SCHEME = "redis+sentinel:";
export const CLUSTER_SCHEME = "redis+cluster:";
const DEFAULT_SENTINEL_PORT = 26379;
const DEFAULT_REDIS_PORT = 6379;
const MASTER_NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** A REDIS_URL that is none of the forms above; the message says what is wrong, not the setting's name (the caller's). */
export class RedisUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RedisUrlError";
  }
}

export function parseRedisUrl(raw: string): RedisTarget {
  const s = raw.trim();
  if (/^rediss?:\/\//i.test(s)) {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw new RedisUrlError("is not a valid URL");
    }
    if (!u.hostname) throw new RedisUrlError("has no host");
    return { kind: "single", url: s };
  }
  const cluster = s.toLowerCase().startsWith(`${CLUSTER_SCHEME}//`);
  if (!cluster && !s.toLowerCase().startsWith(`${SENTINEL_SCHEME}//`)) {
    throw new RedisUrlError("must be redis://host:port, rediss://host:port, redis+sentinel://host:port,host:port/<master-name> or redis+cluster://host:port,host:port");
  }
  const what = cluster ? "node" : "sentinel";
  // new URL() takes one host only; the host list is split by hand.
  let rest = s.slice((cluster ? CLUSTER_SCHEME : SENTINEL_SCHEME).length + 2);
  if (/[?#]/.test(rest)) throw new RedisUrlError("takes no query string or fragment");
  let username: string | undefined;
  let password: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    const auth = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = auth.indexOf(":");
    const user = decode(colon >= 0 ? auth.slice(0, colon) : auth);
    const pass = colon >= 0 ? decode(auth.slice(colon + 1)) : undefined;
    if (user) username = user;
    if (pass) password = pass;
  }
  const slash = rest.indexOf("/");
  const hostList = slash >= 0 ? rest.slice(0, slash) : rest;
  const path = slash >= 0 ? rest.slice(slash + 1).split("/") : [];
  const sentinels: SentinelAddress[] = [];
  for (const h of hostList.split(",")) {
    if (h === "") throw new RedisUrlError(`has an empty ${what} address`);
    const a = parseServerAddress(h, cluster ? DEFAULT_REDIS_PORT : DEFAULT_SENTINEL_PORT);
    if (!a.ok && a.bad === "port") throw new RedisUrlError(`${what} ${JSON.stringify(h)}: port must be 1-65535`);
    if (!a.ok) throw new RedisUrlError(`has a bad ${what} address ${JSON.stringify(h)} (host or host:port)`);
    sentinels.push({ host: a.host, port: a.port });
  }
  const auth = { ...(username ? { username } : {}), ...(password ? { password } : {}) };
  if (cluster) {
    if (path.some((p) => p !== "")) throw new RedisUrlError("takes no path: a Redis Cluster has database 0 only");
    return { kind: "cluster", nodes: sentinels, ...auth };
  }
  const name = decode(path[0] ?? "");
  if (!name) throw new RedisUrlError("names no master: redis+sentinel://host:port,.../<master-name>");
  if (!MASTER_NAME_RE.test(name)) throw new RedisUrlError(`master name ${JSON.stringify(name)} must be 1-64 of A-Z a-z 0-9 _ . -`);
  if (path.length > 2 || (path.length === 2 && !/^\d{1,2}$/.test(path[1]!))) throw new RedisUrlError("path must be /<master-name> or /<master-name>/<db number>");
  const db = path.length === 2 ? Number(path[1]) : 0;
  return { kind: "sentinel", sentinels, name, db, ...auth };
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new RedisUrlError("has a badly percent-encoded user or password");
  }
}
