/**
 * The production topology without Docker: Debian's nginx balancing UDP over two gateways (two
 * routers behind), with the config rendered from the same template as Compose's.
 */
import { readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { PesanClient } from "@pesan/client";
import { COMPOSE_NGINX_FILES, composeNginxConfig, REPO_ROOT } from "@pesan/cluster";
import { sendsThroughKill, sleep, sql } from "./support/e2e.ts";
import { useTopology } from "./support/fixture.ts";
import { requireTools } from "./support/needs.ts";
import { RawClient } from "./support/udp.ts";

// Not a skip: without nginx this file fails naming it (./pesan test --without nginx leaves it out).
requireTools("nginx");
const fx = useTopology("nginx", { gateways: 2, routers: 2, env: { RESEND_BASE_MS: "100" }, setupTimeoutMs: 60_000 });

test("the committed Compose nginx configs are the template's renderings", () => {
  for (const name of Object.keys(COMPOSE_NGINX_FILES)) {
    expect([name, readFileSync(join(REPO_ROOT, "nginx", name), "utf8")]).toEqual([name, composeNginxConfig(name)]);
  }
});

test.each(["docker-compose.yml", "docker-compose.two-clusters.yml", "docker-compose.ha.yml"])("%s is a valid Compose file", (file) => {
  // The secrets have no defaults (test/deploy.test.ts checks that they are required).
  const env = { ...process.env, POSTGRES_PASSWORD: "p".repeat(24), PESAN_PROBE_PASSWORD: "q".repeat(24), PESAN_SYNC_KEY_AB: "k".repeat(64), PESAN_PG_REPLICATION_PASSWORD: "r".repeat(24), PESAN_PATRONI_API_PASSWORD: "s".repeat(24) };
  const r = spawnSync("docker-compose", ["-f", join(REPO_ROOT, file), "config", "-q"], { encoding: "utf8", env });
  if (r.error) throw new Error("docker-compose is not installed (apt-get install docker-compose)");
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
});

test("two netcat clients chat through nginx, and pushes come back through it", async () => {
  const a = await RawClient.open(fx.address);
  const b = await RawClient.open(fx.address);
  try {
    expect(await a.request("REGISTER nx_alice secret1")).toBe("OK REGISTERED nx_alice");
    expect(await b.request("REGISTER nx_bob secret2")).toBe("OK REGISTERED nx_bob");
    expect(await a.request("LOGIN nx_alice secret1")).toMatch(/^OK LOGIN nx_alice /);
    expect(await b.request("LOGIN nx_bob secret2")).toMatch(/^OK LOGIN nx_bob /);
    for (let i = 0; i < 5; i++) {
      const id = (await a.request(`SEND nx_bob via nginx ${i}`)).split(" ")[2];
      await b.waitFor(new RegExp(`^MSG ${id} nx_alice \\S+ via nginx ${i}$`));
      const back = (await b.request(`SEND nx_alice reply ${i}`)).split(" ")[2];
      await a.waitFor(new RegExp(`^MSG ${back} nx_bob \\S+ reply ${i}$`));
    }
    // Both sessions are held by gateways, bound to nginx's address, not the clients'.
    const rows = await sql<{ addr: string }>(fx.db.url, "SELECT addr FROM sessions WHERE user_name IN ('nx_alice', 'nx_bob')");
    expect(rows).toHaveLength(2);
    for (const r of rows) expect(r.addr).not.toMatch(new RegExp(`:(${a.localPort}|${b.localPort})$`));
  } finally {
    a.close();
    b.close();
  }
});

test("kill -9 the gateway a client is on while it sends 50 messages/s: it resumes through nginx, nothing is lost", async () => {
  const opts = { servers: [fx.address], heartbeatMs: 300, missedHeartbeats: 3, requestTimeoutMs: 1000, capAck: true };
  const sender = new PesanClient(opts);
  const receiver = new PesanClient(opts);
  await sender.start();
  await receiver.start();
  const got = new Set<string>();
  receiver.on("message", (m) => {
    if (m.text.startsWith("fo ")) got.add(m.text);
  });
  try {
    await sender.register("fo_alice", "secret1");
    await receiver.register("fo_bob", "secret2");
    await sender.login("fo_alice", "secret1");
    await receiver.login("fo_bob", "secret2");
    const [row] = await sql<{ gateway: string }>(fx.db.url, "SELECT gateway FROM sessions WHERE user_name = 'fo_alice'");
    const victim = fx.cluster.gateways.find((g) => g.id === row!.gateway)!;
    expect(victim).toBeDefined();

    // 50 SENDs a second for 6 s; each is retried with its own tag until it gets OK SENT.
    const total = 300;
    const { killedAt, gapMs } = await sendsThroughKill(sender, {
      total,
      everyMs: 20,
      killAt: 100,
      kill: () => victim.kill9(),
      line: (i) => `SEND fo_bob fo ${i}`,
      tag: (i) => `fo${i}`,
      retry: { timeoutMs: 300, pauseMs: 50, deadlineMs: 30_000 },
    });

    const deadline = Date.now() + 20_000;
    while (got.size < total && Date.now() < deadline) await sleep(100);
    expect(got.size).toBe(total);
    const [count] = await sql<{ n: number }>(fx.db.url, "SELECT count(*)::int AS n FROM messages WHERE sender = 'fo_alice'");
    expect(count!.n).toBe(total);

    // The gap: from the last reply before the kill to the first after it.
    process.stdout.write(`failover through nginx: gap ${gapMs} ms between replies around the kill\n`);
    expect(gapMs).toBeLessThan(10_000);
  } finally {
    await sender.close();
    await receiver.close();
    if (fx.cluster.gateways.some((g) => !g.running)) await Promise.all(fx.cluster.gateways.filter((g) => !g.running).map((g) => g.restart()));
  }
}, 90_000);

test("HTTP 8080 through nginx: one monitor-bot replica down keeps it answering, both down is 502, one back is 200", async () => {
  const { topology } = fx;
  const url = `${topology.httpUrl!}/api/userstats`;
  const status = async () => (await fetch(url, { signal: AbortSignal.timeout(5000) })).status;
  expect(topology.monitors).toHaveLength(2);
  expect(await status()).toBe(200);
  const [m1, m2] = topology.monitors as [(typeof topology.monitors)[0], (typeof topology.monitors)[0]];
  try {
    await m1.stop();
    for (let i = 0; i < 5; i++) expect(await status()).toBe(200);
    await m2.stop();
    expect(await status()).toBe(502);
    await m2.restart();
    // nginx retries a replica it marked failed once fail_timeout (5 s) has passed, or at once
    // when every replica is marked failed; allow it a few seconds either way.
    const deadline = Date.now() + 10_000;
    let s = await status();
    while (s !== 200 && Date.now() < deadline) {
      await sleep(250);
      s = await status();
    }
    expect(s).toBe(200);
  } finally {
    if (!m1.running) await m1.restart();
    if (!m2.running) await m2.restart();
  }
}, 60_000);
