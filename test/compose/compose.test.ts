/**
 * docker-compose.yml end to end, on this machine's Docker engine, checked the way a user would:
 * the stack comes up healthy, two clients on the host chat through nginx on UDP, an offline
 * message arrives at the next login, SIGKILL of a gateway or a router and restarts of Postgres
 * and Redis lose nothing and need no hand, the dashboard shows every container, a Telegram
 * alert (fake Bot API on a network of the test's own) goes out once for two monitor replicas,
 * and `--scale udp-gateway=3` is balanced over without restarting nginx (and the new replica
 * shows in /api/svcstats as a service of its own).
 */
import { randomBytes } from "node:crypto";
import { freePorts } from "@pesan/cluster";
import { PesanClient, type MsgLine } from "@pesan/client";
import { FakeTelegram } from "../support/fake-telegram.ts";
import { loginClient, sendsThroughKill, sql } from "../support/e2e.ts";
import { startCountedLoad } from "../support/load.ts";
import { expectExactlyOnce, firstAnswerAfter } from "../support/outage.ts";
import { ComposeProject, createNetwork, docker, ensureImages, progress, randomSecret, run, sleep, waitUntil, type Container } from "./support.ts";
import { requireTools } from "../support/needs.ts";

// Not a skip: without Docker this file fails naming what is missing (./pesan test --without
// docker leaves it out).
requireTools("docker");

const HEALTHY_WITHIN_MS = 120_000;
const ALERT_INTERVAL_MS = 5000;
/** The monitor's component and service probes run every 5 s with a 3 s timeout (monitor.compose.yaml). */
const PROBE_MS = 5000 + 3000;
const CHAT = 4242;
const PESAN_SERVICES = ["udp-gateway", "router", "peer-sync", "monitor-bot", "nginx"];

let project: ComposeProject;
let fake: FakeTelegram;
let network: { name: string; gateway: string } | undefined;
let address = "";
let httpUrl = "";
let password = "";
const figures: Record<string, number> = {};

async function dbUrl(): Promise<string> {
  // The Compose network is the test's own (made by its `up`): the host reaches Postgres there.
  const [pg] = await project.service("postgres");
  return `postgres://postgres:${password}@${pg!.ip}:5432/pesan`;
}

/** The container holding `user`'s session (gateway ids are gw-<container hostname>-<port>). */
async function gatewayOf(user: string): Promise<Container> {
  const [row] = await sql<{ gateway: string }>(await dbUrl(), "SELECT gateway FROM sessions WHERE user_name = $1", [user]);
  const gws = await project.service("udp-gateway");
  const gw = gws.find((g) => row && row.gateway === `gw-${g.hostname}-4999`);
  if (!gw) throw new Error(`no gateway container holds ${user}'s session (${row?.gateway}; have ${gws.map((g) => g.hostname).join(", ")})`);
  return gw;
}

/**
 * After a container came back: every one healthy, and nginx done with the reload its new
 * address caused (a datagram may be lost while nginx reloads; a real client retries it, the
 * counted load's first steps do not).
 */
async function settled(): Promise<void> {
  await project.waitHealthy(60_000, 10);
  await sleep(3000);
  await waitUntil("10 fresh clients answered through nginx in a row", async () => {
    for (let i = 0; i < 10; i++) {
      const ms = await firstAnswerAfter(address, Date.now());
      if (ms < 0 || ms > 1000) return undefined;
    }
    return true;
  }, 30_000);
}

/** Brings a killed container back when its restart policy did not (docker kill counts as a stop). */
async function ensureRunning(c: Container): Promise<void> {
  const [now] = (await project.containers()).filter((x) => x.id === c.id);
  if (now && now.status !== "running") await docker(["start", c.id]);
}

function startTimes(cs: Container[]): Record<string, string> {
  return Object.fromEntries(cs.filter((c) => PESAN_SERVICES.includes(c.service)).map((c) => [c.name, `${c.startedAt} restarts=${c.restartCount}`]));
}

beforeAll(async () => {
  const images = await ensureImages();
  figures.imagesSeconds = images.seconds;
  progress(`images ready in ${images.seconds.toFixed(0)} s: ${JSON.stringify(images.env)}`);

  const [udpPort, httpPort, syncPort] = await freePorts(3);
  // The fake Bot API listens on the gateway address of a bridge network this test creates: a
  // host address the containers reach through their own bridge, nothing else off loopback.
  network = await createNetwork(`pesane2e-tg-${randomBytes(3).toString("hex")}`);
  fake = new FakeTelegram({ host: network.gateway, maxWaitMs: 1000 });
  await fake.start();
  password = randomSecret();
  project = new ComposeProject("docker-compose.yml", "one", {
    ...images.env,
    POSTGRES_PASSWORD: password,
    PESAN_PROBE_PASSWORD: randomSecret(),
    PESAN_UDP_BIND: "127.0.0.1",
    PESAN_UDP_PORT: String(udpPort),
    PESAN_HTTP_PORT: String(httpPort),
    PESAN_SYNC_PORT: String(syncPort),
    PESAN_PUBLIC_ADDRESS: `127.0.0.1:${udpPort}`,
    // Registrations are the load's first step; the default cost (17) takes ~350 ms a hash here.
    PESAN_PASSWORD_HASH_COST: "14",
    PESAN_MONITOR_CONFIG: "monitor.compose-telegram.yaml",
    TELEGRAM_BOT_TOKEN: fake.token,
    TELEGRAM_ADMIN_CODE: randomSecret(),
    TELEGRAM_API_ROOT: fake.url,
    TELEGRAM_ALERT_INTERVAL: `${ALERT_INTERVAL_MS}ms`,
  });
  address = `127.0.0.1:${udpPort}`;
  httpUrl = `http://127.0.0.1:${httpPort}`;
  progress(`${project.name}: up -d (UDP ${address}, HTTP ${httpUrl})`);
  const t0 = Date.now();
  await project.compose(["up", "-d"], { echo: true });
  await project.waitHealthy(HEALTHY_WITHIN_MS, 10);
  figures.upHealthySeconds = (Date.now() - t0) / 1000;
  progress(`healthy after ${figures.upHealthySeconds.toFixed(1)} s`);

  // A Telegram member, so alerts have someone to go to.
  await fake.ask(CHAT, "/start", 2, 20_000);
  await fake.ask(CHAT, "Ani", 1, 10_000);
  await fake.ask(CHAT, "ani@example.com", 1, 10_000);
}, 30 * 60_000);

afterAll(async () => {
  process.stdout.write(`compose e2e figures: ${JSON.stringify(figures)}\n`);
  if (project) {
    if (expect.getState().numPassingAsserts === 0) process.stderr.write(await project.logs());
    await project.down();
  }
  await fake?.close();
  if (network) await docker(["network", "rm", network.name]).catch((e: unknown) => progress(String(e)));
}, 300_000);

test("`docker-compose up -d` reaches healthy: 10 containers, each health-checked one healthy", async () => {
  const cs = await project.containers();
  expect(cs.map((c) => c.service).sort()).toEqual(["monitor-bot", "monitor-bot", "nginx", "peer-sync", "postgres", "redis", "router", "router", "udp-gateway", "udp-gateway"]);
  expect(cs.filter((c) => c.health !== "healthy")).toEqual([]);
  expect(figures.upHealthySeconds).toBeLessThan(HEALTHY_WITHIN_MS / 1000);
});

test("two clients on the host chat through nginx on UDP; an offline message arrives at the next login", async () => {
  const opts = { servers: [address], heartbeatMs: 1000, requestTimeoutMs: 3000, capAck: true };
  const ani = new PesanClient(opts);
  const budi = new PesanClient(opts);
  await ani.start();
  await budi.start();
  try {
    const got: MsgLine[] = [];
    const gotAni: MsgLine[] = [];
    budi.on("message", (m) => got.push(m));
    ani.on("message", (m) => gotAni.push(m));
    expect((await ani.register("c_ani", "secret11")).kind).toBe("OK");
    expect((await budi.register("c_budi", "secret22")).kind).toBe("OK");
    await ani.login("c_ani", "secret11");
    await budi.login("c_budi", "secret22");
    for (let i = 0; i < 3; i++) {
      await ani.send("c_budi", `hello ${i}`);
      await waitUntil(`message ${i} at budi`, () => got.some((m) => m.text === `hello ${i}`), 5000);
      await budi.send("c_ani", `back ${i}`);
      await waitUntil(`reply ${i} at ani`, () => gotAni.some((m) => m.text === `back ${i}`), 5000);
    }
    await budi.logout();
    await ani.send("c_budi", "while you were away");
    await budi.login("c_budi", "secret22");
    const offline = await waitUntil("the offline message at the next login", () => got.find((m) => m.text === "while you were away"), 10_000);
    expect(offline.from).toBe("c_ani");
  } finally {
    await ani.close();
    await budi.close();
  }
}, 60_000);

test("the dashboard and the API through nginx on HTTP show every container", async () => {
  const page = await fetch(`${httpUrl}/`, { signal: AbortSignal.timeout(5000) });
  expect(page.status).toBe(200);
  expect(await page.text()).toMatch(/<html/i);
  const cs = await project.containers();
  // The monitor's local target (its own container, monitor.compose.yaml) has every container
  // of the stack as a service, one per replica address: `<compose service>@<container ip>`.
  const expected = cs.map((c) => `${c.service}@${c.ip}`).sort();
  expect(cs.every((c) => c.ip !== "")).toBe(true);
  type Snapshot = { instance: string; servers: Array<{ name: string; cpu: number | null; mem: number | null; hdd: number | null; services: Array<{ name: string; status: string }> }> };
  // nginx spreads the requests over both monitor replicas: the first view of each (its
  // snapshot names the replica) shows this host with its gauges and every container On.
  const seen = new Map<string, Snapshot>();
  await waitUntil(
    "both monitor replicas' dashboards showing every container On",
    async () => {
      const r = await fetch(`${httpUrl}/api/dashboard`, { signal: AbortSignal.timeout(5000) });
      if (r.status !== 200) return undefined;
      const snap = (await r.json()) as Snapshot;
      const host = snap.servers.find((x) => x.name === "docker-host");
      const on = new Set(host?.services.filter((v) => v.status === "On").map((v) => v.name));
      if (host && host.cpu !== null && host.mem !== null && host.hdd !== null && expected.every((n) => on.has(n))) seen.set(snap.instance, snap);
      return seen.size >= 2 || undefined;
    },
    30_000,
    500,
  );
  expect([...seen.keys()].sort()).toEqual(cs.filter((c) => c.service === "monitor-bot").map((c) => c.hostname).sort());
  // /api/svcstats, whichever replica answers: the same host, every container On.
  for (let i = 0; i < 4; i++) {
    const r = await fetch(`${httpUrl}/api/svcstats`, { signal: AbortSignal.timeout(5000) });
    expect(r.status).toBe(200);
    const svc = (await r.json()) as Record<string, Record<string, { status: string; updatetime: string }>>;
    expect(Object.keys(svc)).toEqual(["docker-host"]);
    expect(expected.filter((n) => svc["docker-host"]![n]?.status !== "On")).toEqual([]);
  }
  // The components (HTTP, UDP, Postgres, Redis probes) cover every container too.
  const probed = await waitUntil(
    "every container among /api/components, up",
    async () => {
      const r = (await (await fetch(`${httpUrl}/api/components`, { signal: AbortSignal.timeout(5000) })).json()) as Record<string, Record<string, { status: string }>>;
      const up = new Set(Object.values(r).flatMap((byAddr) => Object.entries(byAddr).filter(([, v]) => v.status === "up").map(([a]) => a.replace(/:\d+$/, ""))));
      return cs.every((c) => up.has(c.ip)) ? up : undefined;
    },
    20_000,
    500,
  );
  expect(cs.filter((c) => !probed.has(c.ip)).map((c) => c.name)).toEqual([]);
}, 60_000);

test("docker kill (SIGKILL) of the gateway a client is on: it resumes, nothing is lost; one Telegram alert per interval for two monitors, then BACK UP", async () => {
  const opts = { servers: [address], heartbeatMs: 300, missedHeartbeats: 3, requestTimeoutMs: 1000, capAck: true };
  const sender = new PesanClient(opts);
  const receiver = new PesanClient(opts);
  await sender.start();
  await receiver.start();
  const got = new Set<string>();
  receiver.on("message", (m) => {
    if (m.text.startsWith("gk ")) got.add(m.text);
  });
  let victim: Container | undefined;
  try {
    await sender.register("gk_ani", "secret11");
    await receiver.register("gk_budi", "secret22");
    await sender.login("gk_ani", "secret11");
    await receiver.login("gk_budi", "secret22");
    victim = await gatewayOf("gk_ani");
    const total = 200;
    const { killedAt, gapMs } = await sendsThroughKill(sender, {
      total,
      everyMs: 25,
      killAt: 60,
      kill: async () => {
        progress(`docker kill ${victim!.name}`);
        await docker(["kill", victim!.id]);
      },
      line: (i) => `SEND gk_budi gk ${i}`,
      tag: (i) => `gk${i}`,
      retry: { timeoutMs: 500, pauseMs: 100, deadlineMs: 60_000 },
    });
    await waitUntil("every message at the receiver", () => got.size === total || undefined, 30_000);
    const [n] = await sql<{ n: number }>(await dbUrl(), "SELECT count(*)::int AS n, count(DISTINCT body)::int AS d FROM messages WHERE sender = 'gk_ani'");
    expect(n).toEqual({ n: total, d: total });
    figures.gatewayKillGapMs = gapMs;
    progress(`gateway kill: gap ${figures.gatewayKillGapMs} ms between replies`);

    // The alert: the dead gateway's address in a DOWN message, within a probe round and one
    // alert interval; the two monitor replicas share one lease, so never twice in an interval.
    const downs = () => fake.sent.filter((m) => m.chatId === CHAT && m.text.startsWith("🚨") && m.at > killedAt && m.text.includes(`${victim!.ip}:`));
    const first = await waitUntil("a DOWN alert naming the killed gateway", () => downs()[0], PROBE_MS + ALERT_INTERVAL_MS + 5000);
    figures.alertAfterKillMs = first.at - killedAt;
    await sleep(2 * ALERT_INTERVAL_MS);
    // Per component of the dead container (its HTTP health and its UDP port are probed
    // apart, so they may be alerted a moment apart): alerted again only an interval later.
    const alertsOf = new Map<string, number[]>();
    for (const m of downs()) for (const id of m.text.split("\n").filter((l) => l.startsWith("🔴 ") && l.includes(`${victim!.ip}:`))) alertsOf.set(id, [...(alertsOf.get(id) ?? []), m.at]);
    expect(alertsOf.size).toBeGreaterThan(0);
    for (const [id, times] of alertsOf) {
      const gaps = times.slice(1).map((t, i) => t - times[i]!);
      expect([id, gaps.filter((g) => g < ALERT_INTERVAL_MS * 0.7)]).toEqual([id, []]);
      expect(times.length).toBeGreaterThanOrEqual(2);
    }
    const restartedByPolicy = (await project.containers()).find((c) => c.id === victim!.id)?.status === "running";
    progress(`killed gateway ${restartedByPolicy ? "was restarted by its restart policy" : "stays down (docker kill counts as a stop): docker start"}`);
    await ensureRunning(victim);
    const back = await waitUntil("BACK UP for the gateway", () => fake.sent.find((m) => m.chatId === CHAT && m.text.startsWith("✅ BACK UP") && m.at > killedAt && m.text.includes(`${victim!.ip}:`)), 60_000, 500);
    expect(back.text).toMatch(/^✅ BACK UP\n/);
  } finally {
    await sender.close();
    await receiver.close();
    if (victim) await ensureRunning(victim);
  }
  await settled();
}, 240_000);

test("docker kill of a router under a counted load: 0 lost, 0 duplicated", async () => {
  const load = await startCountedLoad({ address, label: "rk", pairs: 3, window: 4, pauseMs: 20 });
  const [victim] = await project.service("router");
  try {
    await sleep(3000);
    progress(`docker kill ${victim!.name} under load (${load.sent.length} sent so far)`);
    await docker(["kill", victim!.id]);
    await sleep(6000);
    await load.finish();
    const r = await expectExactlyOnce(await dbUrl(), load, "rk");
    progress(`router kill: ${JSON.stringify(r)}`);
    figures.routerKillSent = r.sent;
  } finally {
    load.close();
    await ensureRunning(victim!);
  }
  await settled();
}, 240_000);

for (const dep of ["postgres", "redis"]) {
  test(`docker-compose restart ${dep} under load: every pesan container recovers by itself, nothing accepted is lost`, async () => {
    const before = startTimes(await project.containers());
    const label = `rs${dep.slice(0, 2)}`;
    const load = await startCountedLoad({ address, label, pairs: 3, window: 4, pauseMs: 20 });
    try {
      await sleep(2000);
      progress(`docker-compose restart ${dep} under load`);
      const t0 = Date.now();
      await project.compose(["restart", dep]);
      const restartedIn = Date.now() - t0;
      figures[`${dep}RestartAnsweredMs`] = await firstAnswerAfter(address, t0);
      figures[`${dep}RestartCommandMs`] = restartedIn;
      await sleep(3000);
      await load.finish();
      const r = await expectExactlyOnce(await dbUrl(), load, label);
      progress(`restart ${dep}: ${JSON.stringify(r)}`);
      figures[`${dep}RestartUnavailable`] = r.unavailable;
    } finally {
      load.close();
    }
    // By themselves: healthy again, and not one pesan container exited or was restarted.
    await project.waitHealthy(60_000, 10);
    expect(startTimes(await project.containers())).toEqual(before);
  }, 240_000);
}

test("`up -d --scale udp-gateway=3`: nginx balances over 3 gateways without being restarted", async () => {
  const [nginxBefore] = await project.service("nginx");
  progress("up -d --scale udp-gateway=3");
  await project.compose(["up", "-d", "--scale", "udp-gateway=3"], { echo: true });
  const cs = await project.waitHealthy(HEALTHY_WITHIN_MS, 11);
  const newest = cs.filter((c) => c.service === "udp-gateway").sort((a, b) => b.startedAt.localeCompare(a.startedAt))[0]!;
  // nginx/run.sh sees the new address (every 2 s) and reloads nginx.
  await waitUntil("nginx's reload for the new gateway", async () => (await nginxLog(nginxBefore!.id)).split("\n").some((l) => l.includes("changed from") && l.includes(` ${newest.ip} `)), 15_000, 500);
  // The monitor's DNS-expanded service lists the new replica on its own, On.
  const gateways = cs.filter((c) => c.service === "udp-gateway").map((c) => `udp-gateway@${c.ip}`);
  expect(gateways).toHaveLength(3);
  await waitUntil(
    "3 udp-gateway replicas On in /api/svcstats",
    async () => {
      const svc = (await (await fetch(`${httpUrl}/api/svcstats`, { signal: AbortSignal.timeout(5000) })).json()) as Record<string, Record<string, { status: string }>>;
      return gateways.every((g) => svc["docker-host"]?.[g]?.status === "On") || undefined;
    },
    PROBE_MS + 10_000,
    500,
  );
  // Fresh clients (one source port each: the hash spreads them) log in until all 3 hold some.
  const gatewaysUsed = new Set<string>();
  const clients: Array<Awaited<ReturnType<typeof loginClient>>["c"]> = [];
  try {
    for (let i = 0; i < 40 && gatewaysUsed.size < 3; i++) {
      const { c } = await loginClient(address, `sc${i}`, "secret11", { register: true });
      clients.push(c);
      gatewaysUsed.add((await gatewayOf(`sc${i}`)).name);
    }
  } finally {
    for (const c of clients) c.close();
  }
  expect(gatewaysUsed.size).toBe(3);
  const [nginxAfter] = await project.service("nginx");
  expect(nginxAfter!.startedAt).toBe(nginxBefore!.startedAt);
}, 240_000);

/** nginx's container log (run.sh says which addresses made it reload). */
async function nginxLog(id: string): Promise<string> {
  const r = await run("docker", ["logs", id]);
  return r.stdout + r.stderr;
}
