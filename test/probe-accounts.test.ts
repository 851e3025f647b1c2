/**
 * Probe accounts (names starting with `probe-`, docs/protocol.md "Probe accounts") are
 * invisible to users. A real cluster (1 gateway, 1 router, QUOTA=2) with the monitor's
 * messaging probe logged in as probe-mon-1, a second probe account logged in by hand, and two
 * users: WHO, the login's ONLINE, ALL's count, QUOTA, SERVERS and the monitor's user
 * statistics show and count only the users; REGISTER of a probe name needs PROBE_PASSWORD.
 */
import pg from "pg";
import { startCluster, type Cluster } from "@pesan/cluster";
import { createMonitorApp, parseMonitorConfig, type MonitorApp } from "../services/monitor-bot/src/index.ts";
import { createTestDatabase, deleteRedisKeys, uniquePrefix, type TestDatabase } from "./support/db.ts";
import { MONITOR_DIR, testLogger, waitFor } from "./support/monitor.ts";
import { RawClient } from "./support/udp.ts";

const PROBE_PASSWORD = "probe-pass-123";
let db: TestDatabase;
let cluster: Cluster;
let app: MonitorApp;
const prefix = uniquePrefix("probeacct");
const clients: RawClient[] = [];

async function userNames(): Promise<string[]> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return (await c.query<{ name: string }>("SELECT name FROM users ORDER BY name")).rows.map((r) => r.name);
  } finally {
    await c.end();
  }
}

async function open(): Promise<RawClient> {
  const c = await RawClient.open(cluster.addresses[0]!);
  clients.push(c);
  return c;
}

/** LOGIN, then the ONLINE push that follows it. */
async function login(c: RawClient, user: string, password: string): Promise<string> {
  const from = c.lines.length;
  expect(await c.request(`LOGIN ${user} ${password}`)).toMatch(new RegExp(`^OK LOGIN ${user} \\S+ \\S+$`));
  return c.waitFor(/^ONLINE/, 5000, from);
}

beforeAll(async () => {
  db = await createTestDatabase("probeacct");
  cluster = await startCluster({
    databaseUrl: db.url,
    redisUrl: process.env.REDIS_URL!,
    gateways: 1,
    routers: 1,
    busPrefix: prefix,
    env: { PASSWORD_HASH_COST: "10", QUOTA: "2", PROBE_PASSWORD, SERVER_NAME: "solo" },
  });
  const config = parseMonitorConfig({
    instance: "probe-test",
    http: { port: 0 },
    database: { url: db.url },
    defaults: { interval: 400, timeout: 2500 },
    components: [],
    messaging: [{ name: "msg1", gateway: cluster.addresses[0], user: "probe-mon-1", password: PROBE_PASSWORD, interval: 400, timeout: 2500, expiry: 2000 }],
  });
  app = createMonitorApp(config, { packageDir: MONITOR_DIR, logger: testLogger() });
  await app.start();
  // The monitor registered its probe account itself (with the router's PROBE_PASSWORD) and is logged in.
  await waitFor("an OK messaging probe", async () => ((await app.api.app.inject({ method: "GET", url: "/api/messaging" })).json() as Record<string, { status: string }>).msg1?.status === "OK", 20_000);
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await app?.close();
  await cluster?.stop();
  await db?.drop();
  await deleteRedisKeys(prefix);
});

test("REGISTER of a probe- name without the probe password is refused and writes nothing; with it, it works", async () => {
  const c = await open();
  for (const name of ["probe-intruder", "Probe-intruder", "PROBE-x"]) {
    expect(await c.request(`REGISTER ${name} not-the-password`)).toBe("ERR BAD_REQUEST names starting with probe- are reserved for the monitor's probe accounts");
  }
  expect(await userNames()).toEqual(["probe-mon-1"]);
  expect(await c.request(`REGISTER probe-hand ${PROBE_PASSWORD}`)).toBe("OK REGISTERED probe-hand");
  // An ordinary name is not affected by the rule.
  expect(await c.request("REGISTER monitor-probe secret1")).toBe("OK REGISTERED monitor-probe");
});

test("two users and two probe accounts online: WHO, ONLINE, ALL, QUOTA and SERVERS see the users only", async () => {
  const alice = await open();
  const bob = await open();
  const carol = await open();
  const probe = await open();
  for (const [c, u] of [[alice, "alice"], [bob, "bob"], [carol, "carol"]] as const) expect(await c.request(`REGISTER ${u} secret1`)).toBe(`OK REGISTERED ${u}`);

  expect(await login(alice, "alice", "secret1")).toBe("ONLINE alice");
  // QUOTA=2 with alice and probe-mon-1 online: bob fits only because a probe takes no place.
  expect(await login(bob, "bob", "secret1")).toBe("ONLINE alice bob");
  // Full now with two users: the quota still holds for users...
  expect(await carol.request("LOGIN carol secret1")).toMatch(/^ERR FULL /);
  // ...and a probe, which needs no place, still logs in; its own ONLINE list is the users'.
  expect(await login(probe, "probe-hand", PROBE_PASSWORD)).toBe("ONLINE alice bob");

  expect(await alice.requestAll("WHO")).toEqual(["ONLINE alice bob", "OK WHO 2"]);
  const bobFrom = bob.lines.length;
  const probeFrom = probe.lines.length;
  expect(await alice.request("ALL hello everyone")).toBe("OK SENT ALL 1");
  expect(await bob.waitFor(/^MSG \S+ \*alice /, 5000, bobFrom)).toMatch(/ hello everyone$/);
  expect((await probe.settle(500, probeFrom)).filter((l) => l.startsWith("MSG"))).toEqual([]);
  const servers = await alice.requestAll("SERVERS");
  expect(servers).toHaveLength(2);
  expect(servers[0]).toMatch(/^SERVER solo \S+ UP 2\/2$/);
});

test("the monitor's user statistics count the users, not the probe accounts", async () => {
  expect((await userNames()).filter((n) => n.startsWith("probe-"))).toEqual(["probe-hand", "probe-mon-1"]);
  await app.userStats?.refresh();
  const r = await app.api.app.inject({ method: "GET", url: "/api/userstats" });
  expect(r.statusCode).toBe(200);
  // monitor-probe, alice, bob and carol, all registered today.
  expect(r.json()).toEqual({ today: 4, yesterday: 0, week: 4, month: 4, total: 4 });
});
