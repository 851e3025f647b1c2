/** All of the monitor's SQL: history writes, retention, the current-outage view, user counts. */
import { join } from "node:path";
import { loadMigrations, migrate, type Db, type Queryable } from "@pesan/shared/db";
import { sqlIsProbeName } from "@pesan/shared/names";
import type { EventKind, MonitorEvent } from "../alerting/events.ts";

/** Its own version table and lock key: independent of the messaging schema's migrations. */
export const MONITOR_MIGRATIONS_TABLE = "monitor_schema_migrations";
// "pesanmon" in ASCII, truncated to fit a bigint comfortably.
export const MONITOR_LOCK_KEY = 0x706573616e6d;

/** packageDir: services/monitor-bot (main.ts knows it from import.meta, tests from the repo root). */
export async function migrateMonitor(db: Db, packageDir: string): Promise<number[]> {
  return migrate(db, loadMigrations(join(packageDir, "migrations")), { table: MONITOR_MIGRATIONS_TABLE, lockKey: MONITOR_LOCK_KEY });
}

export interface SampleRow {
  at: Date;
  component: string;
  metric: string;
  value: number | null;
  ok: boolean;
  latencyMs: number | null;
  detail: string;
}

export async function insertSamples(db: Queryable, source: string, rows: readonly SampleRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.query(
    `INSERT INTO monitor_samples (at, source, component, metric, value, ok, latency_ms, detail)
     SELECT at, $1, component, metric, value, ok, latency_ms, detail
     FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::float8[], $6::bool[], $7::real[], $8::text[])
       AS t(at, component, metric, value, ok, latency_ms, detail)`,
    [
      source,
      rows.map((r) => r.at.toISOString()),
      rows.map((r) => r.component),
      rows.map((r) => r.metric),
      rows.map((r) => r.value),
      rows.map((r) => r.ok),
      rows.map((r) => r.latencyMs),
      rows.map((r) => r.detail.slice(0, 2000)),
    ],
  );
}

/** Inserted in array order, so ids follow the order the events happened in. */
export async function insertEvents(db: Queryable, source: string, events: readonly MonitorEvent[]): Promise<void> {
  if (events.length === 0) return;
  await db.query(
    `INSERT INTO monitor_events (component, kind, at, since, source, status, value, detail)
     SELECT component, kind, at, since, $1, status, value, detail
     FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[], $7::float8[], $8::text[])
       WITH ORDINALITY AS t(component, kind, at, since, status, value, detail, n)
     ORDER BY n`,
    [
      source,
      events.map((e) => e.component),
      events.map((e) => e.kind),
      events.map((e) => e.at.toISOString()),
      events.map((e) => e.since.toISOString()),
      events.map((e) => e.status),
      events.map((e) => e.value),
      events.map((e) => e.detail.slice(0, 2000)),
    ],
  );
}

/**
 * Deletes samples older than samplesBefore and events older than eventsBefore, in batches so a
 * big backlog never holds long locks. A component's latest event is kept however old, since it
 * says whether the component is down now. Returns the rows deleted.
 */
export async function pruneHistory(db: Queryable, samplesBefore: Date, eventsBefore: Date, batch = 5000): Promise<{ samples: number; events: number }> {
  let samples = 0;
  for (;;) {
    const r = await db.query("DELETE FROM monitor_samples WHERE id IN (SELECT id FROM monitor_samples WHERE at < $1 LIMIT $2)", [samplesBefore.toISOString(), batch]);
    samples += r.rowCount;
    if (r.rowCount < batch) break;
  }
  let events = 0;
  for (;;) {
    const r = await db.query(
      `DELETE FROM monitor_events WHERE id IN (
         SELECT e.id FROM monitor_events e
         WHERE e.at < $1 AND e.id <> (SELECT max(l.id) FROM monitor_events l WHERE l.component = e.component)
         LIMIT $2)`,
      [eventsBefore.toISOString(), batch],
    );
    events += r.rowCount;
    if (r.rowCount < batch) break;
  }
  return { samples, events };
}

export interface OpenCondition {
  component: string;
  kind: EventKind;
  since: Date;
  detail: string;
  status: string;
}

/**
 * Conditions open now according to the history: components whose latest down/up event is
 * `down`, and whose latest threshold/clear event is `threshold`.
 */
export async function openConditions(db: Queryable): Promise<OpenCondition[]> {
  const r = await db.query<{ component: string; kind: EventKind; since: Date; detail: string; status: string }>(
    `SELECT component, kind, since, detail, status FROM (
       SELECT DISTINCT ON (component, kind IN ('down', 'up')) component, kind, since, detail, status
       FROM monitor_events ORDER BY component, kind IN ('down', 'up'), id DESC
     ) latest WHERE kind IN ('down', 'threshold') ORDER BY since, component`,
  );
  return r.rows.map((row) => ({ ...row, since: new Date(row.since) }));
}

/** Components down now (from the history, so any replica can answer), oldest outage first. */
export async function listDown(db: Queryable): Promise<Array<{ component: string; since: Date; detail: string }>> {
  return (await openConditions(db)).filter((c) => c.kind === "down").map(({ component, since, detail }) => ({ component, since, detail }));
}

export interface UserCounts {
  today: number;
  yesterday: number;
  week: number;
  month: number;
  total: number;
}

/** New users per period: each bound is the inclusive start of its period. Probe accounts (`probe-...`) are no users. */
export async function countUsers(db: Queryable, b: { today: Date; yesterday: Date; week: Date; month: Date }): Promise<UserCounts> {
  const r = await db.query<Record<keyof UserCounts, string>>(
    `SELECT count(*) FILTER (WHERE created_at >= $1) AS today,
            count(*) FILTER (WHERE created_at >= $2 AND created_at < $1) AS yesterday,
            count(*) FILTER (WHERE created_at >= $3) AS week,
            count(*) FILTER (WHERE created_at >= $4) AS month,
            count(*) AS total
     FROM users WHERE NOT ${sqlIsProbeName("name")}`,
    [b.today.toISOString(), b.yesterday.toISOString(), b.week.toISOString(), b.month.toISOString()],
  );
  const row = r.rows[0]!;
  return { today: Number(row.today), yesterday: Number(row.yesterday), week: Number(row.week), month: Number(row.month), total: Number(row.total) };
}

/** When each component last came back up (its latest down/up event is an `up`), for "UP since". */
export async function upSince(db: Queryable): Promise<Map<string, Date>> {
  const r = await db.query<{ component: string; at: Date }>(
    `SELECT component, at FROM (
       SELECT DISTINCT ON (component) component, kind, at FROM monitor_events WHERE kind IN ('down', 'up') ORDER BY component, id DESC
     ) latest WHERE kind = 'up'`,
  );
  return new Map(r.rows.map((row) => [row.component, new Date(row.at)]));
}

/**
 * A component's samples since `from`, averaged per `stepSeconds` bucket (every replica's samples
 * together), oldest first: a chart needs a bounded number of points, not every sample.
 */
export async function sampleSeries(
  db: Queryable,
  component: string,
  metrics: readonly string[],
  from: Date,
  stepSeconds: number,
): Promise<Record<string, Array<[string, number]>>> {
  const r = await db.query<{ metric: string; t: Date; v: number }>(
    `SELECT metric, date_bin(make_interval(secs => $4), at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS t, avg(value) AS v
     FROM monitor_samples
     WHERE component = $1 AND metric = ANY($2::text[]) AND at >= $3 AND value IS NOT NULL
     GROUP BY metric, t ORDER BY t`,
    [component, metrics, from.toISOString(), stepSeconds],
  );
  const out: Record<string, Array<[string, number]>> = Object.fromEntries(metrics.map((m) => [m, []]));
  for (const row of r.rows) out[row.metric]?.push([new Date(row.t).toISOString(), Math.round(Number(row.v) * 100) / 100]);
  return out;
}
