/**
 * A peer linked later (taken out of PEERS and put back, as when a cluster is added to a running
 * one) is sent what the cluster had before the link: its accounts and its undelivered messages.
 * The outbox cannot do that by itself: with no peer configured the routers write no frames and
 * peer-sync prunes the outbox. And a peer whose database is recreated empty (a new epoch) is
 * sent it all again.
 */
import pg from "pg";
import { adminUrl } from "./support/db.ts";
import { RawClient } from "./support/udp.ts";
import { eventually, useLinkedClusters } from "./support/clusters.ts";

const fx = useLinkedClusters({ names: ["a", "b"], intervalMs: 200, env: { OUTBOX_POLL_MS: "50" } });
const { addr, sql } = fx;

const names = async (at: string) => (await sql<{ name: string }>(at, "SELECT name FROM users WHERE name LIKE 'bs\\_%' ORDER BY name")).map((r) => r.name);

test("accounts and an offline message made on a while it had no peers reach b once b is linked; delivered there once", async () => {
  const a = fx.lc.get("a");
  const peersOfA = a.peerSync.env.PEERS!;
  await a.peerSync.stop();
  a.peerSync.env.PEERS = "";
  await a.peerSync.restart();
  expect(await sql("a", "SELECT peer FROM peer_links")).toEqual([]);

  const onA = fx.track(await RawClient.open(addr("a")));
  expect(await onA.request("REGISTER bs_alice secret1")).toBe("OK REGISTERED bs_alice");
  expect(await onA.request("REGISTER bs_bob secret1")).toBe("OK REGISTERED bs_bob");
  expect(await onA.request("LOGIN bs_alice secret1")).toMatch(/^OK LOGIN bs_alice /);
  expect(await onA.request("SEND bs_bob from before the link")).toMatch(/^OK SENT \S+ STORED$/);
  // With no peer configured, peer-sync's housekeeping (every 10 s) empties the outbox: what
  // the routers wrote meanwhile (the accounts) is gone, and the message was never written.
  await eventually(async () => expect(await sql("a", "SELECT kind FROM peer_outbox")).toEqual([]), 20_000, 500);
  expect(await names("b")).toEqual([]);

  await a.peerSync.stop();
  a.peerSync.env.PEERS = peersOfA;
  await a.peerSync.restart();
  await eventually(async () => expect(await names("b")).toEqual(["bs_alice", "bs_bob"]), 10_000);
  // Bootstrapped once: a restart does not send it all again.
  expect((await sql<{ done: boolean }>("a", "SELECT bootstrapped_at IS NOT NULL AS done FROM peer_links WHERE peer = 'b'"))[0]!.done).toBe(true);

  const onB = fx.track(await RawClient.open(addr("b")));
  expect(await onB.request("LOGIN bs_bob secret1")).toMatch(/^OK LOGIN bs_bob /);
  await onB.waitFor(/^MSG \S+ bs_alice \S+ from before the link$/, 10_000);
  // Delivered on b: a's copy says so too, so a login on a would not offer it again.
  await eventually(async () => expect(await sql("a", "SELECT delivered FROM messages WHERE recipient = 'bs_bob'")).toEqual([{ delivered: true }]), 10_000);
  await new Promise((r) => setTimeout(r, 500));
  expect(onB.lines.filter((l) => l.includes("from before the link"))).toHaveLength(1);
}, 90_000);

test("b's database recreated empty: a sees b's new epoch and sends its accounts and undelivered messages again", async () => {
  const onA = fx.track(await RawClient.open(addr("a")));
  expect(await onA.request("REGISTER rs_carol secret1")).toBe("OK REGISTERED rs_carol");
  expect(await onA.request("REGISTER rs_dave secret1")).toBe("OK REGISTERED rs_dave");
  expect(await onA.request("LOGIN rs_carol secret1")).toMatch(/^OK LOGIN rs_carol /);
  expect(await onA.request("SEND rs_dave kept for dave")).toMatch(/^OK SENT \S+ STORED$/);
  const onB = (name: string) => sql<{ name: string }>("b", "SELECT name FROM users WHERE name = $1", [name]);
  await eventually(async () => expect(await onB("rs_dave")).toHaveLength(1), 10_000);

  // Every process of b down, its database dropped and made again, empty; then b starts again.
  const b = fx.lc.get("b");
  await Promise.all([b.peerSync.stop(), ...b.cluster!.routers.map((p) => p.stop()), ...b.cluster!.gateways.map((p) => p.stop())]);
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE ${b.db.name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${b.db.name}`);
  } finally {
    await admin.end();
  }
  for (const p of b.cluster!.routers) await p.restart();
  await Promise.all(b.cluster!.gateways.map((p) => p.restart()));
  await b.peerSync.restart();

  await eventually(async () => expect((await onB("rs_carol")).length + (await onB("rs_dave")).length).toBe(2), 15_000, 200);
  const dave = fx.track(await RawClient.open(addr("b")));
  expect(await dave.request("LOGIN rs_dave secret1")).toMatch(/^OK LOGIN rs_dave /);
  await dave.waitFor(/^MSG \S+ rs_carol \S+ kept for dave$/, 10_000);
}, 90_000);
