/**
 * libpq's multi-host connection URL, which node-postgres does not understand (pg 8 parses a URL
 * with WHATWG `URL`, which rejects `h1:5432,h2:5432`, and ignores target_session_attrs):
 *
 *   postgres://user:pw@h1:5432,h2:5432/db?target_session_attrs=read-write
 *
 * Pure: this only splits such a URL into one ordinary single-host URL per host, which pg parses
 * as before. PgDb (db.ts) tries them in order for each new connection and keeps the first
 * writable one, so after a failover (Patroni promoting the replica) reconnects find the new
 * primary. The config validator (`pgUrl()`) uses the same parser, so a bad URL fails at start-up.
 */

import { parseServerAddress } from "../names.ts";

export interface PgHost {
  host: string;
  port: number;
}

export interface PgTarget {
  hosts: PgHost[];
  /** One URL per host, in order, each the original with only that host (and without target_session_attrs). */
  urls: string[];
  /** target_session_attrs=read-write: a connection must land on a server that accepts writes. */
  readWrite: boolean;
}

const DEFAULT_PORT = 5432;
const PREFIX = /^(postgres(?:ql)?:\/\/)/;
const SESSION_ATTRS = ["any", "read-write"];

/** A bad connection URL; the message never repeats the URL (it may hold a password). */
export class PgUrlError extends Error {}

export function parsePgTarget(url: string): PgTarget {
  const scheme = PREFIX.exec(url)?.[1];
  if (scheme === undefined) throw new PgUrlError("must be a postgres:// URL");
  const afterScheme = url.slice(scheme.length);
  // The authority ends at the first / ? or #; the user part, if any, ends at its last @.
  const authEnd = afterScheme.search(/[/?#]/);
  const authority = authEnd < 0 ? afterScheme : afterScheme.slice(0, authEnd);
  const rest = authEnd < 0 ? "" : afterScheme.slice(authEnd);
  const at = authority.lastIndexOf("@");
  const userinfo = at < 0 ? "" : authority.slice(0, at + 1);
  const hostList = authority.slice(at + 1);

  const hosts = hostList.split(",").map(parseHost);
  const { query, attrs } = splitSessionAttrs(rest);
  if (attrs !== undefined && !SESSION_ATTRS.includes(attrs)) {
    throw new PgUrlError(`target_session_attrs=${attrs} is not supported (read-write or any)`);
  }
  if (hosts.length > 1 && attrs !== "read-write") {
    throw new PgUrlError("a URL with several hosts needs target_session_attrs=read-write: pesan writes, so it must find the primary among them");
  }
  const urls =
    hosts.length === 1 && attrs === undefined
      ? [url] // exactly what it was before multi-host URLs existed
      : hosts.map((h) => `${scheme}${userinfo}${formatHost(h)}${query}`);
  for (const u of urls) {
    try {
      // pg reads a host-less URL with a placeholder host the same way.
      new URL(hosts[0]!.host === "" ? u.replace("@/", "@localhost/").replace("///", "//localhost/") : u);
    } catch {
      throw new PgUrlError("is not a valid URL");
    }
  }
  return { hosts, urls, readWrite: attrs === "read-write" };
}

function parseHost(s: string, i: number, all: string[]): PgHost {
  const where = all.length > 1 ? ` (host ${i + 1} of ${all.length})` : "";
  // One empty host is libpq's (and pg's) "the local socket" (`postgres://u@/db?host=/run/postgresql`).
  if (s === "" && all.length === 1) return { host: "", port: DEFAULT_PORT };
  const a = parseServerAddress(s, DEFAULT_PORT);
  if (a.ok) return { host: a.host, port: a.port };
  if (a.bad === "port") throw new PgUrlError(`has a bad port ${JSON.stringify(a.port)}${where}: must be 1-65535`);
  throw new PgUrlError(s === "" ? `has an empty host${where}` : `has a bad host ${JSON.stringify(s)}${where}`);
}

function formatHost(h: PgHost): string {
  return `${h.host.includes(":") ? `[${h.host}]` : h.host}:${h.port}`;
}

/** The path and query with target_session_attrs taken out (node-postgres does not know it). */
function splitSessionAttrs(rest: string): { query: string; attrs: string | undefined } {
  const q = rest.indexOf("?");
  if (q < 0) return { query: rest, attrs: undefined };
  const hash = rest.indexOf("#", q);
  const path = rest.slice(0, q);
  const params = rest.slice(q + 1, hash < 0 ? undefined : hash).split("&");
  let attrs: string | undefined;
  const kept = params.filter((p) => {
    const eq = p.indexOf("=");
    if ((eq < 0 ? p : p.slice(0, eq)) !== "target_session_attrs") return true;
    try {
      attrs = decodeURIComponent(eq < 0 ? "" : p.slice(eq + 1));
    } catch {
      throw new PgUrlError("has a badly encoded target_session_attrs");
    }
    return false;
  });
  const keptQuery = kept.filter((p) => p !== "").join("&");
  return { query: `${path}${keptQuery === "" ? "" : `?${keptQuery}`}`, attrs };
}
