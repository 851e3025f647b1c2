/**
 * Client addresses as the services write them: `ip:port`, or `[ipv6]:port`. Limits and budgets
 * hold per IP, and PLAIN_SESSIONS decides by IP where sessions without proofs are allowed.
 */
import { isIP } from "node:net";

/** Where sessions without proofs are allowed (docs/protocol.md "Plain sessions"). */
export const PLAIN_SESSION_POLICIES = ["all", "loopback", "none"] as const;
export type PlainSessionPolicy = (typeof PLAIN_SESSION_POLICIES)[number];

/** The host part of `host:port` / `[v6]:port`. */
export function ipOf(addr: string): string {
  const i = addr.lastIndexOf(":");
  const host = i < 0 ? addr : addr.slice(0, i);
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** 127.0.0.0/8, ::1, and IPv4-mapped loopback (::ffff:127.x.y.z). */
export function isLoopbackIp(ip: string): boolean {
  const v4 = ip.startsWith("::ffff:") ? ip.slice(7) : ip;
  if (isIP(v4) === 4) return v4.startsWith("127.");
  return ip === "::1";
}

export function plainSessionAllowed(policy: PlainSessionPolicy, addr: string): boolean {
  if (policy === "all") return true;
  if (policy === "none") return false;
  return isLoopbackIp(ipOf(addr));
}
