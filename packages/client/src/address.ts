/** Server addresses as the client protocol writes them: `host:port` or `[ipv6]:port`. */
import { isIP } from "node:net";

export interface ServerAddress {
  host: string;
  port: number;
}

// Not HOST_PORT_RE (@pesan/shared/names) on purpose: the client takes what a user types or a
// server lists, so it also accepts an IPv6 zone (`[fe80::1%eth0]:5`) and needs the host without
// brackets to connect; host names here are DNS names (no `_`), and port 0 is refused.
const ADDRESS_RE_V6 = /^\[([0-9A-Fa-f:.]+(?:%[\w.-]+)?)\]:(\d{1,5})$/;
const ADDRESS_RE_V4 = /^([A-Za-z0-9.-]+):(\d{1,5})$/;

/** Parses `host:port` or `[ipv6]:port`; throws on anything else. */
export function parseServerAddress(s: string): ServerAddress {
  const m = ADDRESS_RE_V6.exec(s) ?? ADDRESS_RE_V4.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) {
    throw new Error(`bad server address ${JSON.stringify(s)}: expected host:port or [ipv6]:port`);
  }
  return { host: m[1]!, port };
}

export function formatServerAddress(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The canonical spelling of an address (`[::0:1]:5` -> `[::1]:5`); throws like parseServerAddress. */
export function normalizeServerAddress(s: string): string {
  const a = parseServerAddress(s);
  return formatServerAddress(normalizeIp(a.host), a.port);
}

/**
 * An IP literal in the form the socket reports a sender in (IPv6 compressed, lower case), so
 * that "did this come from that server" is a string comparison. Host names pass unchanged.
 */
export function normalizeIp(host: string): string {
  if (isIP(host) !== 6 || host.includes("%")) return host;
  try {
    return new URL(`udp://[${host}]`).hostname.slice(1, -1);
  } catch {
    return host;
  }
}

/** Every `host:port` token of a text (an `ERR FULL` reply lists the alternatives). */
export function addressesIn(text: string): string[] {
  const out: string[] = [];
  for (const word of text.split(/\s+/)) {
    const w = word.replace(/[,;]+$/, "");
    try {
      parseServerAddress(w);
      out.push(w);
    } catch {
      // a word of the human text
    }
  }
  return out;
}
