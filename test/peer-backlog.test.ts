/**
 * The outbox bounded while a peer is gone (README "Reliability"): with b's peer-sync stopped,
 * a keeps writing frames for it (a session snapshot every 500 ms here, accounts, an offline
 * message). Once b has been DOWN with frames waiting longer than PEER_BACKLOG_MAX_AGE_MS (3 s
 * here), a drops that backlog, so its outbox stops growing; when b is back, a bootstraps it
 * (the catch-up of a newly linked peer): the accounts and the undelivered message made
 * meanwhile reach b all the same.
 */
import { RawClient } from "./support/udp.ts";
import { eventually, useLinkedClusters } from "./support/clusters.ts";
import { metricSum, sleep } from "./support/e2e.ts";

const MAX_AGE_MS = 3000;
const fx = useLinkedClusters({ names: ["a", "b"], intervalMs: 200, env: { OUTBOX_POLL_MS: "50", SNAPSHOT_INTERVAL_MS: "500", PEER_BACKLOG_MAX_AGE_MS: String(MAX_AGE_MS) } });
const { addr, sql } = fx;

const oldestAgeMs = async () =>
  Number((await sql<{ ms: number | null }>("a", "SELECT (extract(epoch FROM now() - min(created_at)) * 1000)::float8 AS ms FROM peer_outbox"))[0]!.ms ?? 0);

test("b DOWN past PEER_BACKLOG_MAX_AGE_MS: a's outbox for it is dropped and stays bounded; b back is bootstrapped and gets what it missed", async () => {
  const a = fx.lc.get("a");
  const b = fx.lc.get("b");
  await b.peerSync.stop();

  const onA = fx.track(await RawClient.open(addr("a")));
  expect(await onA.request("REGISTER bk_carol secret1")).toBe("OK REGISTERED bk_carol");
  expect(await onA.request("REGISTER bk_dave secret1")).toBe("OK REGISTERED bk_dave");
  expect(await onA.request("LOGIN bk_carol secret1")).toMatch(/^OK LOGIN bk_carol /);
  expect(await onA.request("SEND bk_dave while b was away")).toMatch(/^OK SENT \S+ STORED$/);

  // Dropped once the oldest waiting frame is older than the limit (checked every second).
  await eventually(async () => expect(await metricSum(a.peerSync, "pesan_peer_outbox_dropped_total")).toBeGreaterThan(0), 15_000, 250);
  expect((await sql<{ due: boolean }>("a", "SELECT bootstrapped_at IS NULL AS due FROM peer_links WHERE peer = 'b'"))[0]!.due).toBe(true);
  // And bounded from then on: snapshots keep coming, but nothing waits much longer than the
  // limit (plus the 1 s check and a housekeeping round).
  for (let i = 0; i < 4; i++) {
    await sleep(1500);
    expect(await oldestAgeMs()).toBeLessThan(MAX_AGE_MS + 2500);
  }
  expect((await sql("b", "SELECT name FROM users WHERE name LIKE 'bk\\_%'")).length).toBe(0);

  await b.peerSync.restart();
  await eventually(async () => expect((await sql<{ name: string }>("b", "SELECT name FROM users WHERE name LIKE 'bk\\_%' ORDER BY name")).map((r) => r.name)).toEqual(["bk_carol", "bk_dave"]), 15_000, 200);
  expect((await sql<{ due: boolean }>("a", "SELECT bootstrapped_at IS NULL AS due FROM peer_links WHERE peer = 'b'"))[0]!.due).toBe(false);
  const dave = fx.track(await RawClient.open(addr("b")));
  expect(await dave.request("LOGIN bk_dave secret1")).toMatch(/^OK LOGIN bk_dave /);
  await dave.waitFor(/^MSG \S+ bk_carol \S+ while b was away$/, 10_000);
}, 90_000);
