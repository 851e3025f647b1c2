import { existsSync } from "node:fs";
import { z } from "zod";
import { DEFAULT_QUERY_TIMEOUT_MS } from "@pesan/shared/db";
import { commonSettings, hostPort, int, pgUrl, port, loadConfig, type Env } from "@pesan/shared/config";
import { ConfigError } from "@pesan/shared/errors";
import { CLUSTER_NAME_RE, CLUSTER_NAME_RULE, isClusterName } from "@pesan/shared/names";
import { decodeInvite, type Invite } from "./membership/token.ts";

/** One linked cluster. `key` is shared by this pair of clusters only and signs both directions. */
export interface PeerConfig {
  name: string;
  /** Base URL of its peer-sync endpoint (http:// or https://, optional path prefix). */
  syncUrl: string;
  /** The host:port its clients use; shown in SERVERS until the peer announces another. */
  address: string;
  key: string;
  /** Rank in SERVERS: config order, nearest first (10, 20, ...). */
  proximity: number;
}

/** No `=` or `,` (the list's separators) and no spaces; `openssl rand -hex 32` fits. */
const KEY_RE = /^[A-Za-z0-9_.~+/-]{32,512}$/;
const ADDRESS = hostPort();
/**
 * Keys that are the shipped examples or obvious stand-ins (`change-me-...`, `replace-me`,
 * `your-key`, `example`, `placeholder`): 32 characters long enough for KEY_RE, but anyone who
 * read the Compose file or the README knows them, and the key is all that authenticates a peer.
 */
const PLACEHOLDER_KEY_RE = /(change|replace)[-_.]?me|placeholder|example|your[-_.]?(key|secret)/i;

/** A base URL peers are reached at: http(s), no query or fragment; returned without a trailing slash. */
export function parseSyncUrl(s: string): string | undefined {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return undefined;
  }
  if ((u.protocol !== "http:" && u.protocol !== "https:") || u.search || u.hash || u.username || u.password) return undefined;
  return u.toString().replace(/\/+$/, "");
}

type Issue = (message: string) => void;

function checkPeer(raw: { name?: unknown; syncUrl?: unknown; address?: unknown; key?: unknown }, where: string, issue: Issue): Omit<PeerConfig, "proximity"> | undefined {
  const name = typeof raw.name === "string" ? raw.name : "";
  const label = isClusterName(name) ? `peer ${name}` : where;
  let ok = true;
  const bad = (m: string) => {
    ok = false;
    issue(`${label}: ${m}`);
  };
  if (!isClusterName(name)) bad(`name must be ${CLUSTER_NAME_RULE}`);
  const syncUrl = typeof raw.syncUrl === "string" ? parseSyncUrl(raw.syncUrl) : undefined;
  if (!syncUrl) bad("sync URL must be an http:// or https:// URL without query");
  const address = typeof raw.address === "string" && ADDRESS.safeParse(raw.address).success ? raw.address : undefined;
  if (!address) bad("client address must be host:port");
  // Never echo the key: configuration errors end up in logs.
  const key = typeof raw.key === "string" && KEY_RE.test(raw.key) ? raw.key : undefined;
  if (!key) bad("key must be 32-512 of A-Z a-z 0-9 _ . ~ + / - (e.g. `openssl rand -hex 32`)");
  else if (PLACEHOLDER_KEY_RE.test(key)) bad("key looks like a placeholder (change-me, replace-me, example, placeholder): set a random one, e.g. `openssl rand -hex 32`");
  return ok ? { name, syncUrl: syncUrl!, address: address!, key: key! } : undefined;
}

/**
 * PEERS: either `name=syncUrl=clientAddress=key,...` (nearest first) or a JSON array of
 * `{name, syncUrl, address, key}` (what a PESAN_CONFIG_FILE holds). Exported for unit tests.
 */
export function parsePeers(s: string, self: string | undefined, issue: Issue): PeerConfig[] {
  const text = s.trim();
  if (text === "") return [];
  const raws: Array<{ name?: unknown; syncUrl?: unknown; address?: unknown; key?: unknown }> = [];
  if (text.startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      issue("must be a JSON array of {name, syncUrl, address, key} or name=syncUrl=address=key,...");
      return [];
    }
    if (!Array.isArray(parsed) || parsed.some((p) => typeof p !== "object" || p === null)) {
      issue("must be a JSON array of {name, syncUrl, address, key} objects");
      return [];
    }
    raws.push(...(parsed as object[]));
  } else {
    for (const item of text.split(",").map((x) => x.trim()).filter(Boolean)) {
      const parts = item.split("=");
      if (parts.length < 4) {
        raws.push({ name: parts[0] });
        continue;
      }
      // The URL sits in the middle and may itself hold '='; the name is first, the key last.
      raws.push({ name: parts[0], syncUrl: parts.slice(1, -2).join("="), address: parts.at(-2), key: parts.at(-1) });
    }
  }
  const out: PeerConfig[] = [];
  const seen = new Set<string>();
  raws.forEach((raw, i) => {
    const p = checkPeer(raw, `entry ${i + 1}`, issue);
    if (!p) return;
    if (p.name === self) return issue(`peer ${p.name}: is this server's own SERVER_NAME`);
    if (seen.has(p.name)) return issue(`peer ${p.name}: listed twice`);
    seen.add(p.name);
    out.push({ ...p, proximity: (i + 1) * 10 });
  });
  return out;
}

const readableFile = (what: string) =>
  z
    .string()
    .refine((f) => existsSync(f), { message: `${what} file not found` })
    .optional();

export const peerSyncSettings = {
  ...commonSettings,
  DATABASE_URL: pgUrl(),
  HTTP_PORT: port().default(9300),
  SERVER_NAME: z.string().regex(CLUSTER_NAME_RE, `must be ${CLUSTER_NAME_RULE}`).default("local"),
  PUBLIC_ADDRESS: hostPort().default("127.0.0.1:4999"),
  SYNC_LISTEN: hostPort().default("0.0.0.0:7000"),
  SYNC_URL: z.string().optional(),
  PEERS: z.string().default(""),
  LIVENESS_INTERVAL_MS: int(20, 3_600_000).default(2000),
  /** Checks failed in a row before a peer is DOWN. */
  LIVENESS_FAILURES: int(1, 1000).default(2),
  /** One check's deadline (connect + answer). */
  LIVENESS_TIMEOUT_MS: int(20, 120_000).default(1000),
  /** Accepted difference between a request's timestamp and our clock. */
  CLOCK_SKEW_MS: int(1000, 600_000).default(60_000),
  OUTBOX_POLL_MS: int(10, 60_000).default(250),
  OUTBOX_BATCH: int(1, 10_000).default(500),
  /**
   * A peer DOWN with frames waiting longer than this loses them (its outbox backlog is dropped)
   * and is bootstrapped again when it is back, so a peer gone for good cannot grow the outbox
   * without end. 0: kept until it acknowledges them, however long.
   */
  PEER_BACKLOG_MAX_AGE_MS: int(0, 365 * 86_400_000).default(3_600_000),
  /** How often this cluster's full session list is sent to the peers (0: never). */
  SNAPSHOT_INTERVAL_MS: int(0, 86_400_000).default(30_000),
  SYNC_TLS_CERT: readableFile("certificate"),
  SYNC_TLS_KEY: readableFile("private key"),
  SYNC_TLS_CA: readableFile("CA"),
  DB_POOL_MAX: int(1, 100).default(4),
  /** One statement's client-side limit (ms), as the router's. 0: none. */
  DB_QUERY_TIMEOUT_MS: int(0, 3_600_000).default(DEFAULT_QUERY_TIMEOUT_MS),
  /** An invite token (`invite --name <SERVER_NAME>` on a member): join that member's federation at start. */
  JOIN: z.string().optional(),
  LOCAL_KEY: z.undefined({ error: "not used: each pair of clusters has its own key, the last field of that peer's PEERS entry" }).optional(),
};

const SECRET_SETTINGS = new Set(["PEERS", "LOCAL_KEY", "JOIN"]);

export const peerSyncSchema = z.object(peerSyncSettings);
type BaseConfig = z.infer<typeof peerSyncSchema>;

export type PeerSyncConfig = BaseConfig & {
  peers: PeerConfig[];
  listen: { host: string; port: number };
  /** How peers reach us (announced to them); derived from SYNC_LISTEN when SYNC_URL is unset. */
  syncUrl: string;
  /** The invite of JOIN, checked against SERVER_NAME. */
  join: Invite | undefined;
};

export function splitHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(":");
  return { host: s.slice(0, i).replace(/^\[(.*)\]$/, "$1"), port: Number(s.slice(i + 1)) };
}

/** The checks that span settings, and the parsed peer list. */
function finish(c: BaseConfig): PeerSyncConfig {
  const issues: string[] = [];
  const peers = parsePeers(c.PEERS, c.SERVER_NAME, (m) => issues.push(`PEERS: ${m}`));
  if ((c.SYNC_TLS_CERT === undefined) !== (c.SYNC_TLS_KEY === undefined)) issues.push("SYNC_TLS_CERT, SYNC_TLS_KEY: set both (https) or neither (http)");
  if (c.SYNC_URL !== undefined && !parseSyncUrl(c.SYNC_URL)) issues.push("SYNC_URL: must be an http:// or https:// URL without query");
  let join: Invite | undefined;
  if (c.JOIN !== undefined && c.JOIN.trim() !== "") {
    const d = decodeInvite(c.JOIN);
    if (!d.ok) issues.push(`JOIN: ${d.error}`);
    else if (d.invite.name !== c.SERVER_NAME) issues.push(`JOIN: this invite is for a cluster named ${d.invite.name}, and SERVER_NAME is ${c.SERVER_NAME} (an invite admits only the name it was issued for)`);
    else if (d.invite.issuer === c.SERVER_NAME) issues.push(`JOIN: this invite was issued by this very cluster (${c.SERVER_NAME})`);
    else if (!parseSyncUrl(d.invite.syncUrl)) issues.push("JOIN: the invite's sync URL is not an http:// or https:// URL");
    else join = d.invite;
  }
  if (issues.length > 0) throw new ConfigError(issues);
  const listen = splitHostPort(c.SYNC_LISTEN);
  const scheme = c.SYNC_TLS_CERT ? "https" : "http";
  return { ...c, peers, listen, join, syncUrl: c.SYNC_URL ? parseSyncUrl(c.SYNC_URL)! : `${scheme}://127.0.0.1:${listen.port}` };
}

const peersOnly = z.object({ PEERS: z.string().default(""), SERVER_NAME: z.string().optional() });

export function loadPeerSyncConfig(env: Env = process.env): PeerSyncConfig {
  let base: BaseConfig;
  try {
    base = loadConfig(peerSyncSchema, env);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    // loadConfig quotes each bad value; for these that would print keys into the logs.
    const issues = e.issues.map((i) => (SECRET_SETTINGS.has(i.split(":", 1)[0]!) ? i.replace(/ \(got [\s\S]*\)$/, "") : i));
    // PEERS is checked after the rest; check it now too, so one run names every bad setting.
    try {
      const p = loadConfig(peersOnly, env);
      parsePeers(p.PEERS, p.SERVER_NAME, (m) => issues.push(`PEERS: ${m}`));
    } catch {
      // the config file itself is unreadable: already among the issues
    }
    throw new ConfigError(issues);
  }
  return finish(base);
}
