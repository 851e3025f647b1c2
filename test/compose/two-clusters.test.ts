/**
 * docker-compose.two-clusters.yml end to end: register on cluster a, log in on b, chat across
 * (peer-sync carries the account and the messages); then `docker kill` of every container of
 * b while a's user keeps sending: b's client fails over to a with RESUME and every message a
 * accepted arrives exactly once.
 *
 * Why the failover is the client's doing here (docs: README "Deployment"): b's gateway knew
 * its clients only as nginx-b's container address and port, so a REDIRECT pushed by the
 * survivor to that address goes to a dead container; the client's heartbeats (3 missed) are
 * what moves it. The test checks that it moved for that reason.
 */
import { randomBytes } from "node:crypto";
import { freePorts } from "@pesan/cluster";
import { PesanClient, type FailoverEvent } from "@pesan/client";
import { RawClient } from "../support/udp.ts";
import { ComposeProject, docker, ensureImages, progress, randomSecret, sleep, waitUntil } from "./support.ts";
import { requireTools } from "../support/needs.ts";

// Not a skip: without Docker this file fails naming what is missing (./pesan test --without
// docker leaves it out).
requireTools("docker");

let project: ComposeProject;
let addrA = "";
let addrB = "";
const figures: Record<string, number> = {};

beforeAll(async () => {
  const images = await ensureImages();
  const [portA, portB] = await freePorts(2);
  addrA = `127.0.0.1:${portA}`;
  addrB = `127.0.0.1:${portB}`;
  project = new ComposeProject("docker-compose.two-clusters.yml", "two", {
    ...images.env,
    POSTGRES_PASSWORD: randomSecret(),
    PESAN_SYNC_KEY_AB: randomBytes(32).toString("hex"),
    PESAN_UDP_BIND: "127.0.0.1",
    PESAN_UDP_PORT_A: String(portA),
    PESAN_UDP_PORT_B: String(portB),
    PESAN_PASSWORD_HASH_COST: "14",
  });
  progress(`${project.name}: up -d (a ${addrA}, b ${addrB})`);
  const t0 = Date.now();
  await project.compose(["up", "-d"], { echo: true });
  await project.waitHealthy(120_000, 12);
  figures.upHealthySeconds = (Date.now() - t0) / 1000;
}, 30 * 60_000);

afterAll(async () => {
  process.stdout.write(`two-clusters e2e figures: ${JSON.stringify(figures)}\n`);
  await project?.down();
}, 300_000);

test("register on a, log in on b, chat across; docker kill of all of b: b's client RESUMEs on a, nothing a accepted is lost", async () => {
  const reg = await RawClient.open(addrA);
  try {
    expect(await reg.request("REGISTER tc_ani secret11")).toBe("OK REGISTERED tc_ani");
    expect(await reg.request("REGISTER tc_budi secret22")).toBe("OK REGISTERED tc_budi");
  } finally {
    reg.close();
  }
  const ani = new PesanClient({ servers: [addrA], heartbeatMs: 300, requestTimeoutMs: 1000, capAck: true });
  const budi = new PesanClient({ servers: [addrB, addrA], heartbeatMs: 300, missedHeartbeats: 3, requestTimeoutMs: 1000, capAck: true });
  const gotBudi = new Map<string, Set<string>>();
  const gotAni = new Set<string>();
  const failovers: FailoverEvent[] = [];
  const resumed: string[] = [];
  budi.on("push", (m) => {
    if (m.kind !== "MSG") return;
    const ids = gotBudi.get(m.text) ?? new Set<string>();
    ids.add(m.id);
    gotBudi.set(m.text, ids);
  });
  ani.on("message", (m) => gotAni.add(m.text));
  budi.on("failover", (e) => failovers.push(e));
  budi.on("resumed", (e) => resumed.push(e.server));
  budi.on("error", () => undefined);
  ani.on("error", () => undefined);
  await ani.start();
  await budi.start();
  try {
    await ani.login("tc_ani", "secret11");
    // The account was made on a; peer-sync brings it to b within moments.
    await waitUntil(
      "tc_budi's login on b",
      async () => {
        try {
          await budi.login("tc_budi", "secret22");
          return true;
        } catch {
          return undefined;
        }
      },
      20_000,
      500,
    );
    await ani.send("tc_budi", "hello across");
    await waitUntil("a's message at b", () => gotBudi.has("hello across") || undefined, 15_000);
    await budi.send("tc_ani", "and back");
    await waitUntil("b's reply at a", () => gotAni.has("and back") || undefined, 15_000);

    // A steady flow from a to b's user; each SEND retried with its own tag until accepted.
    let stopped = false;
    const confirmed: string[] = [];
    const loop = (async () => {
      for (let i = 0; !stopped; i++) {
        const body = `x ${i}`;
        for (let tries = 0; tries < 60; tries++) {
          try {
            const lines = await ani.request(`SEND tc_budi ${body}`, { tag: `x${i}`, timeoutMs: 1000 });
            if (lines[lines.length - 1]!.kind === "OK") {
              confirmed.push(body);
              break;
            }
          } catch {
            // no answer: the same tag again
          }
          await sleep(200);
        }
        await sleep(50);
      }
    })();
    await sleep(2000);
    const b = (await project.containers()).filter((c) => c.service.endsWith("-b"));
    expect(b.map((c) => c.service).sort()).toEqual(["nginx-b", "peer-sync-b", "postgres-b", "redis-b", "router-b", "udp-gateway-b"]);
    progress(`docker kill of every container of b (${b.length})`);
    const killedAt = Date.now();
    await docker(["kill", ...b.map((c) => c.id)]);
    await waitUntil("budi on a", () => (resumed.includes(addrA) ? true : undefined), 30_000);
    figures.failoverMs = Date.now() - killedAt;
    await sleep(3000);
    stopped = true;
    await loop;
    await waitUntil("every accepted message at budi", () => confirmed.every((c) => gotBudi.has(c)) || undefined, 60_000, 500);
    expect(confirmed.filter((c) => gotBudi.get(c)!.size !== 1)).toEqual([]);
    expect(confirmed.length).toBeGreaterThan(20);
    // The client moved by its own heartbeats: a REDIRECT from a could only go to nginx-b's
    // address, which died with b.
    expect(failovers.map((f) => [f.from, f.to, f.reason])).toEqual([[addrB, addrA, "heartbeat"]]);
    figures.confirmed = confirmed.length;
    progress(`two clusters: ${confirmed.length} accepted, all delivered once; failover ${figures.failoverMs} ms`);
  } finally {
    await ani.close();
    await budi.close();
  }
}, 240_000);
