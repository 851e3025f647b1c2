/**
 * The monitor's history in Postgres: its own migrations beside the messaging schema, retention,
 * the "down since" view the alerting reads, a restart that neither repeats nor loses an outage,
 * and writes that survive a database hiccup.
 */
import { createServer } from "node:net";
import { migrate, PgDb, type Db, type Queryable } from "@pesan/shared/db";
import { createLogger } from "@pesan/shared/observability";
import { createMonitorApp, listDown, migrateMonitor, openConditions, parseMonitorConfig, type MonitorEvent } from "../services/monitor-bot/src/index.ts";
import { HistoryWriter } from "../services/monitor-bot/src/history/history.ts";
import { eventFrom } from "../services/monitor-bot/src/alerting/events.ts";
import { insertEvents, insertSamples, pruneHistory } from "../services/monitor-bot/src/history/store.ts";
import { createTestDatabase, type TestDatabase } from "./support/db.ts";
import { MONITOR_DIR, testLogger, waitFor } from "./support/monitor.ts";

const logger = createLogger("monitor-history-test", "silent");
let db: TestDatabase;
let pgdb: PgDb;

beforeAll(async () => {
  db = await createTestDatabase("monhist");
  pgdb = new PgDb(db.url, { max: 4 });
});
afterAll(async () => {
  await pgdb?.close();
  await db?.drop();
});

const ev = (component: string, kind: MonitorEvent["kind"], at: string, since = at): MonitorEvent =>
  eventFrom({ component, kind, at: new Date(at), since: new Date(since), detail: "" }, kind, null);

test("own migrations, own version table and lock: independent of the messaging schema", async () => {
  expect(await migrateMonitor(pgdb, MONITOR_DIR)).toEqual([1, 2, 3]);
  expect(await migrateMonitor(pgdb, MONITOR_DIR)).toEqual([]);
  // The messaging schema's migrations, default arguments, in the same database.
  expect((await migrate(pgdb))[0]).toBe(1);
  const tables = await pgdb.query<{ t: string }>("SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' AND table_name LIKE '%migrations' ORDER BY 1");
  expect(tables.rows.map((r) => r.t)).toEqual(["monitor_schema_migrations", "schema_migrations"]);
  const v = await pgdb.query<{ version: number; name: string }>("SELECT version, name FROM monitor_schema_migrations ORDER BY version");
  expect(v.rows).toEqual([
    { version: 1, name: "monitor" },
    { version: 2, name: "telegram" },
    { version: 3, name: "silences" },
  ]);
});

test("retention deletes old samples and events but keeps each component's latest event", async () => {
  await insertSamples(pgdb, "t", [
    { at: new Date("2026-01-01T00:00:00Z"), component: "host:a", metric: "cpu", value: 1, ok: true, latencyMs: 1, detail: "" },
    { at: new Date("2026-11-20T00:00:00Z"), component: "host:a", metric: "cpu", value: 2, ok: true, latencyMs: 1, detail: "" },
  ]);
  await insertEvents(pgdb, "t", [
    ev("ret:a", "down", "2026-01-01T00:00:00Z"),
    ev("ret:a", "up", "2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"),
    ev("ret:b", "down", "2026-01-03T00:00:00Z"), // old, but still the open outage
    ev("ret:c", "down", "2026-11-20T00:00:00Z"),
  ]);
  const r = await pruneHistory(pgdb, new Date("2026-06-01T00:00:00Z"), new Date("2026-06-01T00:00:00Z"), 1);
  expect(r).toEqual({ samples: 1, events: 1 });
  const left = await pgdb.query<{ component: string; kind: string }>("SELECT component, kind FROM monitor_events WHERE component LIKE 'ret:%' ORDER BY id");
  expect(left.rows).toEqual([
    { component: "ret:a", kind: "up" },
    { component: "ret:b", kind: "down" },
    { component: "ret:c", kind: "down" },
  ]);
  expect((await pgdb.query("SELECT 1 FROM monitor_samples")).rowCount).toBe(1);
});

test("listDown and openConditions: the latest down/up and threshold/clear per component", async () => {
  await insertEvents(pgdb, "t", [
    ev("x:1", "down", "2026-11-23T10:00:00Z"),
    ev("x:1", "threshold", "2026-11-23T10:00:01Z"),
    ev("x:2", "down", "2026-11-23T09:00:00Z"),
    ev("x:2", "up", "2026-11-23T09:30:00Z", "2026-11-23T09:00:00Z"),
    ev("x:3", "threshold", "2026-11-23T08:00:00Z"),
    ev("x:3", "clear", "2026-11-23T08:10:00Z", "2026-11-23T08:00:00Z"),
  ]);
  const down = (await listDown(pgdb)).filter((d) => d.component.startsWith("x:"));
  expect(down).toEqual([{ component: "x:1", since: new Date("2026-11-23T10:00:00Z"), detail: "" }]);
  const open = (await openConditions(pgdb)).filter((d) => d.component.startsWith("x:")).map((c) => `${c.component} ${c.kind}`);
  expect(open).toEqual(["x:1 down", "x:1 threshold"]);
});

test("a restarted monitor keeps an open outage's since and sends no second down; forgets what the config dropped", async () => {
  const refused = await closedTcpPort();
  const address = `127.0.0.1:${refused}`;
  const base = { instance: "restart", http: { port: 0 }, database: { url: db.url }, userStats: { enabled: false }, history: { flushEvery: 50 } };
  const components = [{ type: "http", name: "svc", url: `http://svc.test:${refused}/healthz`, interval: "1h", timeout: 500 }];
  const comp = { type: "http" as const, name: "svc", url: "http://svc.test/healthz", intervalMs: 1, timeoutMs: 1, forgetAfterMs: 1 };
  // Before the restart: svc's address and a component the next config no longer has go down.
  const first = createMonitorApp(parseMonitorConfig(base), { packageDir: MONITOR_DIR, logger: testLogger() });
  await first.start();
  first.monitor.component(comp, address, false, 1, "refused");
  first.monitor.component({ ...comp, name: "retired" }, "10.9.9.9:80", false, 1, "refused");
  const since = first.monitor.down().find((d) => d.component === `http:svc@${address}`)!.since;
  await first.close();

  const second = createMonitorApp(parseMonitorConfig({ ...base, components }), {
    packageDir: MONITOR_DIR,
    logger: testLogger(),
    // svc.test no longer resolves to the old address: it is probed anyway, being down.
    resolve: async () => [],
  });
  const events: MonitorEvent[] = [];
  second.monitor.events.on("event", (e) => events.push(e));
  await second.start();
  try {
    expect(second.monitor.down().find((d) => d.component === `http:svc@${address}`)?.since).toEqual(since);
    expect(events.map((e) => `${e.kind} ${e.status} ${e.component} ${e.detail}`)).toEqual(["up gone http:retired@10.9.9.9:80 no longer in the config"]);
    // The probe's first round (refused again, then unresolvable as a whole) adds no event for the address.
    await waitFor("the first round", () => second.monitor.componentStates().some((c) => c.address === address));
    expect(events.filter((e) => e.component === `http:svc@${address}`)).toEqual([]);
    second.monitor.component(comp, address, true, 1, "HTTP 200");
    expect(events.filter((e) => e.component === `http:svc@${address}`)).toMatchObject([{ kind: "up", since }]);
    await second.history.flush();
    const rows = await pgdb.query<{ kind: string; source: string }>("SELECT kind, source FROM monitor_events WHERE component = $1 ORDER BY id", [`http:svc@${address}`]);
    expect(rows.rows).toEqual([
      { kind: "down", source: "restart" },
      { kind: "up", source: "restart" },
    ]);
    expect((await listDown(pgdb)).map((d) => d.component)).not.toContain("http:retired@10.9.9.9:80");
  } finally {
    await second.close();
  }
});

async function closedTcpPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Fails every transaction while `down` is set, like a database restarting. */
class FlakyDb implements Db {
  readonly kind = "pg";
  down = true;
  private readonly inner: Db;
  constructor(inner: Db) {
    this.inner = inner;
  }
  query: Db["query"] = (sql, params) => this.inner.query(sql, params);
  exec = (sql: string) => this.inner.exec(sql);
  listen: Db["listen"] = (channel, onNotify) => this.inner.listen(channel, onNotify);
  async withTransaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    if (this.down) throw new Error("connection refused (simulated)");
    return this.inner.withTransaction(fn);
  }
  close = async () => undefined;
}

test("history rows survive a database outage and keep their order", async () => {
  const flaky = new FlakyDb(pgdb);
  const h = new HistoryWriter({ db: flaky, logger, now: () => new Date() }, { source: "flaky", flushEveryMs: 60_000, pruneEveryMs: 60_000, retentionMs: 86_400_000, eventRetentionMs: 86_400_000 });
  h.event(ev("flaky:1", "down", "2026-11-23T10:00:00Z"));
  h.sample({ at: new Date(), component: "flaky:1", metric: "status", value: 0, ok: false, latencyMs: 1, detail: "" });
  await h.flush();
  h.event(ev("flaky:1", "up", "2026-11-23T10:00:05Z", "2026-11-23T10:00:00Z"));
  await h.flush();
  flaky.down = false;
  await h.flush();
  const rows = await pgdb.query<{ kind: string }>("SELECT kind FROM monitor_events WHERE component = 'flaky:1' ORDER BY id");
  expect(rows.rows.map((r) => r.kind)).toEqual(["down", "up"]);
  expect((await pgdb.query("SELECT 1 FROM monitor_samples WHERE component = 'flaky:1'")).rowCount).toBe(1);
  await h.close();
});

/** Holds every transaction until released, like a slow database. */
class SlowDb extends FlakyDb {
  private gate: Promise<void> = Promise.resolve();
  private open: () => void = () => undefined;
  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  release(): void {
    this.open();
  }
  override async withTransaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    await this.gate;
    return super.withTransaction(fn);
  }
}

test("a flush called while another is writing still writes what was buffered at its call", async () => {
  const slow = new SlowDb(pgdb);
  slow.down = false;
  const h = new HistoryWriter({ db: slow, logger, now: () => new Date() }, { source: "slow", flushEveryMs: 60_000, pruneEveryMs: 60_000, retentionMs: 86_400_000, eventRetentionMs: 86_400_000 });
  const sample = (metric: string) => h.sample({ at: new Date(), component: "slow:1", metric, value: 1, ok: true, latencyMs: 1, detail: "" });
  slow.hold();
  sample("first");
  const f1 = h.flush(); // takes "first", then waits on the database
  sample("second");
  const f2 = h.flush();
  slow.release();
  await f2;
  const stored = await pgdb.query<{ metric: string }>("SELECT metric FROM monitor_samples WHERE component = 'slow:1' ORDER BY id");
  expect(stored.rows.map((r) => r.metric)).toEqual(["first", "second"]);
  await f1;
  await h.close();
});
