import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@pesan/shared/errors";
import { loadPeerSyncConfig, parsePeers } from "./config.ts";
import { encodeInvite, newInvite } from "./membership/token.ts";

const KB = "b".repeat(64);
const KC = "c".repeat(64);
const DB = "postgres://postgres@127.0.0.1:5432/x";

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("no ConfigError");
}

test("defaults", () => {
  const c = loadPeerSyncConfig({ DATABASE_URL: DB });
  expect(c).toMatchObject({ SERVER_NAME: "local", PUBLIC_ADDRESS: "127.0.0.1:4999", listen: { host: "0.0.0.0", port: 7000 }, syncUrl: "http://127.0.0.1:7000" });
  expect(c).toMatchObject({ LIVENESS_INTERVAL_MS: 2000, LIVENESS_FAILURES: 2, LIVENESS_TIMEOUT_MS: 1000, CLOCK_SKEW_MS: 60_000, HTTP_PORT: 9300, peers: [] });
});

test("PEERS as name=syncUrl=address=key, nearest first", () => {
  const c = loadPeerSyncConfig({
    DATABASE_URL: DB,
    SERVER_NAME: "a",
    SYNC_LISTEN: "[::1]:7100",
    PEERS: ` b=http://10.0.0.2:7000/=10.0.0.2:4999=${KB} , c=https://sync.example.org/pesan?=c.example.org:4999=${KC}`.replace("?", ""),
  });
  expect(c.listen).toEqual({ host: "::1", port: 7100 });
  expect(c.peers).toEqual([
    { name: "b", syncUrl: "http://10.0.0.2:7000", address: "10.0.0.2:4999", key: KB, proximity: 10 },
    { name: "c", syncUrl: "https://sync.example.org/pesan", address: "c.example.org:4999", key: KC, proximity: 20 },
  ]);
});

test("PEERS as a JSON array, from PESAN_CONFIG_FILE", () => {
  const dir = mkdtempSync(join(tmpdir(), "pesan-peer-config-"));
  try {
    const file = join(dir, "peer-sync.json");
    writeFileSync(file, JSON.stringify({ DATABASE_URL: DB, SERVER_NAME: "a", PEERS: [{ name: "b", syncUrl: "http://b:7000", address: "b:4999", key: KB }] }));
    expect(loadPeerSyncConfig({ PESAN_CONFIG_FILE: file }).peers).toEqual([{ name: "b", syncUrl: "http://b:7000", address: "b:4999", key: KB, proximity: 10 }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("every bad peer is named, and no key is ever printed", () => {
  const secret = "s3cr3t".repeat(8);
  const e = errorOf(() =>
    loadPeerSyncConfig({
      DATABASE_URL: DB,
      SERVER_NAME: "a",
      PEERS: `b=http://b:1=b:1=short,c=ftp://c=c:1=${secret},a=http://a:1=a:1=${KB},d=http://d:1=nowhere=${secret},b=http://b:2=b:2=${KB},e=http://e:1,f=http://f:1=f:1=${KB}`,
    }),
  );
  expect(e.issues).toEqual([
    "PEERS: peer b: key must be 32-512 of A-Z a-z 0-9 _ . ~ + / - (e.g. `openssl rand -hex 32`)",
    "PEERS: peer c: sync URL must be an http:// or https:// URL without query",
    "PEERS: peer a: is this server's own SERVER_NAME",
    "PEERS: peer d: client address must be host:port",
    "PEERS: peer e: sync URL must be an http:// or https:// URL without query",
    "PEERS: peer e: client address must be host:port",
    "PEERS: peer e: key must be 32-512 of A-Z a-z 0-9 _ . ~ + / - (e.g. `openssl rand -hex 32`)",
  ]);
  expect(e.message).not.toContain(secret);
  expect(errorOf(() => loadPeerSyncConfig({ DATABASE_URL: DB, PEERS: `b=http://b:1=b:1=${KB},b=http://b:2=b:2=${KB}` })).issues).toEqual(["PEERS: peer b: listed twice"]);
});

test("bad settings are all named in one error, PEERS included, without echoing secrets", () => {
  const e = errorOf(() => loadPeerSyncConfig({ LIVENESS_INTERVAL_MS: "0", SYNC_LISTEN: "7000", LOCAL_KEY: "topsecretvalue", PEERS: "b=http://b:1=b:1=tiny" }));
  const keys = e.issues.map((i) => i.split(":", 1)[0]);
  expect(keys).toEqual(expect.arrayContaining(["DATABASE_URL", "LIVENESS_INTERVAL_MS", "SYNC_LISTEN", "LOCAL_KEY", "PEERS"]));
  expect(e.message).not.toContain("topsecretvalue");
  expect(e.message).not.toContain("tiny");
});

test("TLS: certificate and key go together; missing files are named", () => {
  const dir = mkdtempSync(join(tmpdir(), "pesan-peer-tls-"));
  try {
    const f = join(dir, "cert.pem");
    writeFileSync(f, "x");
    expect(errorOf(() => loadPeerSyncConfig({ DATABASE_URL: DB, SYNC_TLS_CERT: f })).issues).toEqual(["SYNC_TLS_CERT, SYNC_TLS_KEY: set both (https) or neither (http)"]);
    expect(errorOf(() => loadPeerSyncConfig({ DATABASE_URL: DB, SYNC_TLS_CA: join(dir, "nope.pem") })).issues).toEqual([`SYNC_TLS_CA: CA file not found (got "${join(dir, "nope.pem")}")`]);
    const c = loadPeerSyncConfig({ DATABASE_URL: DB, SYNC_TLS_CERT: f, SYNC_TLS_KEY: f, SYNC_LISTEN: "0.0.0.0:7443" });
    expect(c.syncUrl).toBe("https://127.0.0.1:7443");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("parsePeers on its own: empty is no peers; a broken JSON list is one issue", () => {
  const issues: string[] = [];
  expect(parsePeers("  ", "a", (m) => issues.push(m))).toEqual([]);
  expect(parsePeers("[{", "a", (m) => issues.push(m))).toEqual([]);
  expect(parsePeers('[1, "x"]', "a", (m) => issues.push(m))).toEqual([]);
  expect(issues).toHaveLength(2);
});

test("a short key, or one that looks like a placeholder, is refused naming PEERS and the peer, without echoing it", () => {
  // The shipped Compose files once defaulted to this one: long enough, but public.
  for (const key of ["change-me-to-a-long-random-secret", "CHANGE_ME_0123456789abcdef0123456789", "replace-me-with-openssl-rand-hex-32", "your-key-here-your-key-here-your-key", "example-example-example-example-exa", "placeholder-placeholder-placeholder"]) {
    const e = errorOf(() => loadPeerSyncConfig({ DATABASE_URL: DB, SERVER_NAME: "a", PEERS: `b=http://b:7000=b:4999=${key}` }));
    expect(e.issues).toEqual(["PEERS: peer b: key looks like a placeholder (change-me, replace-me, example, placeholder): set a random one, e.g. `openssl rand -hex 32`"]);
    expect(e.message).not.toContain(key);
  }
  expect(errorOf(() => loadPeerSyncConfig({ DATABASE_URL: DB, SERVER_NAME: "a", PEERS: "b=http://b:7000=b:4999=0123456789abcdef" })).issues).toEqual([
    "PEERS: peer b: key must be 32-512 of A-Z a-z 0-9 _ . ~ + / - (e.g. `openssl rand -hex 32`)",
  ]);
  // A real random key passes.
  const good = "3f9c1a7e52b04d8e9a6c0b1f2e3d4c5b6a798897a6b5c4d3e2f1a0b9c8d7e6f5";
  expect(loadPeerSyncConfig({ DATABASE_URL: DB, SERVER_NAME: "a", PEERS: `b=http://b:7000=b:4999=${good}` }).peers[0]!.key).toBe(good);
});

describe("JOIN", () => {
  const invite = newInvite({ issuer: "a", syncUrl: "http://127.0.0.1:7101", name: "c", expiresAt: new Date("2030-01-01T00:00:00Z") });
  const token = encodeInvite(invite);

  test("an invite for this SERVER_NAME is read into the config", () => {
    expect(loadPeerSyncConfig({ DATABASE_URL: DB, SERVER_NAME: "c", JOIN: token }).join).toEqual(invite);
    expect(loadPeerSyncConfig({ DATABASE_URL: DB, SERVER_NAME: "c" }).join).toBeUndefined();
  });

  test("an invite for another name, from this cluster, or damaged stops the start, naming JOIN and never quoting the token", () => {
    const other = errorOf(() => loadPeerSyncConfig({ DATABASE_URL: DB, SERVER_NAME: "d", JOIN: token }));
    expect(other.issues).toEqual(["JOIN: this invite is for a cluster named c, and SERVER_NAME is d (an invite admits only the name it was issued for)"]);
    const own = errorOf(() => loadPeerSyncConfig({ DATABASE_URL: DB, SERVER_NAME: "c", JOIN: encodeInvite({ ...invite, issuer: "c" }) }));
    expect(own.issues).toEqual(["JOIN: this invite was issued by this very cluster (c)"]);
    const damaged = errorOf(() => loadPeerSyncConfig({ DATABASE_URL: DB, SERVER_NAME: "c", JOIN: token.slice(0, 40) }));
    expect(damaged.issues).toEqual([expect.stringMatching(/^JOIN: the invite token is damaged/)]);
    for (const e of [other, own, damaged]) expect(e.message).not.toContain(invite.secret);
  });
});
