/**
 * The name rules every part of pesan shares: a user name (client protocol, replicated frames,
 * the monitor's probe user), a cluster name (SERVER_NAME, peer lists, signed peer headers,
 * frames) and a `host:port` address. One definition each, so a cluster can never accept a name
 * that its peers or its own router would refuse.
 */

/** A user name: 1-32 of A-Z a-z 0-9 _ . - (docs/protocol.md). */
export const USER_NAME_RE = /^[A-Za-z0-9_.-]{1,32}$/;
export const USER_NAME_RULE = "1-32 of A-Z a-z 0-9 _ . -";
export function isUserName(s: string): boolean {
  return USER_NAME_RE.test(s);
}

/**
 * Probe accounts: user names starting with `probe-` (in any case) are the monitor's (its
 * messaging probe logs in and sends to itself). They are invisible to users: not in WHO or the
 * login's ONLINE list, not counted by ALL, QUOTA, SERVERS or the monitor's user statistics, and
 * sent no broadcasts. REGISTER of such a name needs the router's PROBE_PASSWORD as its password
 * (docs/protocol.md "Probe accounts"). A rule on the name, not a flag, so every cluster that
 * an account replicates to sees the same property with nothing more in the frames.
 */
export const PROBE_NAME_PREFIX = "probe-";
export function isProbeName(user: string): boolean {
  return user.toLowerCase().startsWith(PROBE_NAME_PREFIX);
}
/** SQL: true when the column holds a probe account's name; the same rule as isProbeName. */
export const sqlIsProbeName = (col: string): string => `starts_with(lower(${col}), '${PROBE_NAME_PREFIX}')`;

/**
 * A cluster (server) name: 1-16 of A-Z a-z 0-9 _ -. No `.` (unlike user names): it is the
 * prefix of message ids (`name.seq`) and sits in `name=...` list entries.
 */
export const CLUSTER_NAME_RE = /^[A-Za-z0-9_-]{1,16}$/;
export const CLUSTER_NAME_RULE = "1-16 of A-Z a-z 0-9 _ -";
export function isClusterName(s: string): boolean {
  return CLUSTER_NAME_RE.test(s);
}

/**
 * The shape of a `host:port` address: a bracketed IPv6 literal or a host name / IPv4, then 1-5
 * digits. The shape only: the port's range is the caller's (configuration allows 0, a target
 * to connect to needs 1-65535), see parseHostPort.
 */
export const HOST_PORT_RE = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;

/**
 * The trailing `:port` of a string, whatever comes before it: configuration checks the range
 * of a port even when the host part is malformed, so an operator sees both problems at once.
 */
export function trailingPort(s: string): number | undefined {
  const m = /:(\d{1,5})$/.exec(s);
  return m ? Number(m[1]) : undefined;
}

export interface HostPort {
  /** As written, brackets of an IPv6 literal included. */
  host: string;
  port: number;
}

/** Splits a `host:port` of HOST_PORT_RE's shape; undefined for anything else. The port is not range-checked. */
export function parseHostPort(s: string): HostPort | undefined {
  const m = HOST_PORT_RE.exec(s);
  return m ? { host: m[1]!, port: Number(m[2]) } : undefined;
}

/**
 * One entry of a URL's host list, a server to connect to (DATABASE_URL's hosts, REDIS_URL's
 * sentinels or cluster nodes): `host`, `host:port`, `[v6]` or `[v6]:port`; the port is
 * defaultPort when omitted (or empty, `host:`), and must be 1-65535. Looser than HOST_PORT_RE
 * about the host (a URL may hold a percent-encoded socket directory), which the connect
 * checks. The host comes without the brackets of an IPv6 literal.
 */
export type ServerAddressResult = { ok: true; host: string; port: number } | { ok: false; bad: "address" } | { ok: false; bad: "port"; port: string };

const SERVER_ADDRESS_RE = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s,/?#@]+))(?::([0-9]*))?$/;

export function parseServerAddress(s: string, defaultPort: number): ServerAddressResult {
  const m = SERVER_ADDRESS_RE.exec(s);
  if (!m) return { ok: false, bad: "address" };
  const host = m[1] ?? m[2]!;
  if (m[3] === undefined || m[3] === "") return { ok: true, host, port: defaultPort };
  const port = Number(m[3]);
  if (!/^[0-9]{1,5}$/.test(m[3]) || port < 1 || port > 65535) return { ok: false, bad: "port", port: m[3] };
  return { ok: true, host, port };
}
