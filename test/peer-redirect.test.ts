/**
 * When a cluster dies, a survivor pushes `REDIRECT <its address>` to the dead cluster's clients
 * it can reach (their addresses came with session.up), so they move at once, not after their
 * heartbeat timeout. Three clusters a, b, c; every process of b is killed with SIGKILL. Only one
 * survivor redirects (a: the first name among those UP), so a client is not sent two ways.
 */
import { PesanClient, type FailoverEvent } from "@pesan/client";
import { RawClient } from "./support/udp.ts";
import { eventually, useLinkedClusters } from "./support/clusters.ts";

const NAMES = ["a", "b", "c"];
const fx = useLinkedClusters({ names: NAMES, intervalMs: 200 }, 120_000);
const { addr, sql } = fx;

async function registered(name: string, home: string): Promise<void> {
  const r = fx.track(await RawClient.open(addr(home)));
  expect(await r.request(`REGISTER ${name} secret1`)).toBe(`OK REGISTERED ${name}`);
  for (const at of NAMES) await eventually(async () => expect(await sql(at, "SELECT 1 FROM users WHERE name = $1", [name])).toHaveLength(1), 5000);
}

function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

/** What the other clusters know of where the user's client is: cluster and reachable address. */
const seenFrom = async (at: string, user: string) => (await sql<{ cluster: string; reach: string }>(at, "SELECT cluster, reach FROM sessions WHERE user_name = $1", [user]))[0];

test("every process of b killed: a pushes REDIRECT to b's clients, which RESUME on a and chat on; c sends none", async () => {
  await registered("rd_a", "a");
  await registered("rd_b", "b");
  await registered("rd_raw", "b");

  const onA = fx.track(new PesanClient({ servers: [addr("a")], heartbeatMs: 1000, capAck: true }));
  onA.on("error", () => undefined);
  await onA.start();
  await onA.login("rd_a", "secret1");

  // Heartbeats every 60 s: left to them, failover would take minutes; only REDIRECT moves it.
  const onB = fx.track(new PesanClient({ servers: [addr("b")], heartbeatMs: 60_000, capAck: true, learnServers: true }));
  onB.on("error", () => undefined);
  const got: string[] = [];
  onB.on("message", (m) => got.push(m.text));
  await onB.start();
  await onB.login("rd_b", "secret1");
  // learnServers: SERVERS on b named a and c, so a REDIRECT from a's address is trusted.
  await eventually(async () => expect([...onB.servers].sort()).toEqual([addr("a"), addr("b"), addr("c")].sort()), 5000);

  const raw = fx.track(await RawClient.open(addr("b")));
  expect(await raw.request("LOGIN rd_raw secret1")).toMatch(/^OK LOGIN rd_raw \S+ \S+$/);

  for (const at of ["a", "c"]) {
    await eventually(async () => expect(await seenFrom(at, "rd_b")).toEqual({ cluster: "b", reach: `127.0.0.1:${onB.localPort}` }), 8000);
    await eventually(async () => expect(await seenFrom(at, "rd_raw")).toEqual({ cluster: "b", reach: `127.0.0.1:${raw.localPort}` }), 8000);
  }
  // a's gateway carried traffic lately (its routers send REDIRECT through it).
  expect(await onA.send("rd_b", "before the crash")).toMatchObject({ kind: "OK" });
  await eventually(async () => expect(got).toContain("before the crash"), 5000);

  const failover = within(20_000, "failover", new Promise<FailoverEvent>((resolve) => onB.once("failover", resolve)));
  const resumed = within(20_000, "resume", new Promise<{ server: string }>((resolve) => onB.once("resumed", resolve)));
  const b = fx.lc.get("b");
  const killedAt = Date.now();
  await Promise.all([b.peerSync.kill9(), ...b.cluster!.routers.map((p) => p.kill9()), ...b.cluster!.gateways.map((p) => p.kill9())]);

  expect(await failover).toEqual({ from: addr("b"), to: addr("a"), reason: "redirect" });
  expect(await resumed).toMatchObject({ server: addr("a") });
  console.log(`redirect: b's client resumed on a ${Date.now() - killedAt} ms after the kill (heartbeat: 60 s)`);

  // On a now: both ways work.
  expect(await onA.send("rd_b", "after the crash")).toMatchObject({ kind: "OK" });
  await eventually(async () => expect(got).toContain("after the crash"), 5000);
  expect((await onB.send("rd_a", "hello from the survivor")).raw).toMatch(/ DELIVERED$/);

  // The raw client was told once, by a; c (second name among the survivors) stayed quiet.
  await raw.waitFor(/^REDIRECT /, 10_000);
  await new Promise((r) => setTimeout(r, 1500));
  expect(raw.lines.filter((l) => l.startsWith("REDIRECT"))).toEqual([`REDIRECT ${addr("a")}`]);
}, 90_000);
