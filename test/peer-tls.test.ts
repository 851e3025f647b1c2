/**
 * Links over https: two peer-sync processes serving a self-signed certificate made here with
 * openssl, each trusting it as the CA for calls to the other.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newNonce, signedHeaders } from "../services/peer-sync/src/signing.ts";
import { eventually, sqlOn, startLinkedClusters, type LinkedClusters } from "./support/clusters.ts";
import { requireTools } from "./support/needs.ts";

requireTools("openssl");

let lc: LinkedClusters;
const dir = mkdtempSync(join(tmpdir(), "pesan-tls-"));
const cert = join(dir, "cert.pem");
const key = join(dir, "key.pem");

beforeAll(async () => {
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], {
    stdio: "ignore",
  });
  lc = await startLinkedClusters({ names: ["a", "b"], routers: false, intervalMs: 200, tls: { cert, key, ca: cert } });
}, 60_000);

afterAll(async () => {
  await lc?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** POSTs over https; resolves with the status, or rejects with the TLS error. */
function post(url: string, body: string, headers: Record<string, string>, ca?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: "POST", headers, ...(ca ? { ca } : {}), agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end(body);
  });
}

test("two clusters linked over https see each other UP", async () => {
  for (const [at, peer] of [
    ["a", "b"],
    ["b", "a"],
  ] as const) {
    await eventually(async () => {
      const rows = await sqlOn<{ name: string; active: boolean; sync_url: string }>(lc.get(at).db.url, "SELECT name, active, sync_url FROM server_list WHERE NOT is_self");
      expect(rows).toEqual([{ name: peer, active: true, sync_url: lc.get(peer).syncUrl }]);
    }, 10_000);
    const health = (await (await fetch(`http://127.0.0.1:${lc.get(at).peerSync.httpPort}/healthz`)).json()) as { links: Record<string, { state: string }> };
    expect(health.links[peer]!.state).toBe("UP");
  }
  expect(lc.get("a").syncUrl).toMatch(/^https:\/\//);
});

test("the endpoint speaks only TLS, and a client that does not trust the certificate cannot connect", async () => {
  const url = `${lc.get("a").syncUrl}/v1/hello`;
  const body = JSON.stringify({ v: 1, kind: "hello", server: { name: "b", address: lc.get("b").address, syncUrl: lc.get("b").syncUrl, quota: 0, online: 0 } });
  const headers = () => signedHeaders(lc.keyOf("a", "b"), { method: "POST", path: "/v1/hello", from: "b", to: "a", timestamp: Date.now(), nonce: newNonce(), body });
  // Without our CA: the system's CAs do not know a self-signed certificate.
  await expect(post(url, body, headers())).rejects.toThrow(/self-signed|self signed/i);
  // Plain http to the https port gets no answer it could use.
  await expect(fetch(url.replace(/^https:/, "http:"), { method: "POST", headers: headers(), body }).then((r) => r.status)).rejects.toThrow();
  // With it, the same signed request is answered.
  expect(await post(url, body, headers(), readFileSync(cert, "utf8"))).toBe(200);
});
