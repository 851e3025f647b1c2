/**
 * Numbered SQL migrations (migrations/NNN_name.sql), applied in order at start-up. Several
 * processes may start at once: a transaction-scoped advisory lock makes them take turns, and
 * each migration commits together with its row in schema_migrations.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { MIGRATIONS_DIR } from "./migrations-dir.ts";
import { MigrationError } from "../errors.ts";
import type { Db } from "./db.ts";

// Any constant shared by every pesan process; "pesan" in ASCII.
const LOCK_KEY = 0x706573616e;

export { MIGRATIONS_DIR };

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const files = readdirSync(dir).filter((f) => f.endsWith(".sql")).sort();
  const out: Migration[] = [];
  for (const f of files) {
    const m = /^(\d{3})_([a-z0-9_]+)\.sql$/.exec(f);
    if (!m) throw new MigrationError(`migration file ${f} must be named NNN_name.sql`);
    const version = Number(m[1]);
    if (out.length > 0 && out[out.length - 1]!.version === version) throw new MigrationError(`two migrations numbered ${m[1]}`);
    out.push({ version, name: m[2]!, sql: readFileSync(join(dir, f), "utf8") });
  }
  return out;
}

/**
 * Where a set of migrations keeps its versions. A service with its own migrations (e.g.
 * monitor-bot) passes its own table and lock key, so its numbering is independent of the
 * messaging schema's and the two never wait on each other.
 */
export interface MigrateOptions {
  /** Version table; default schema_migrations. */
  table?: string;
  /** pg_advisory_xact_lock key; default the one every pesan messaging process shares. */
  lockKey?: number;
}

/** Applies what is missing; returns the versions applied by this call. */
export async function migrate(db: Db, migrations: Migration[] = loadMigrations(), opts: MigrateOptions = {}): Promise<number[]> {
  const table = opts.table ?? "schema_migrations";
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(table)) throw new MigrationError(`bad migrations table name ${JSON.stringify(table)}`);
  return db.withTransaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [opts.lockKey ?? LOCK_KEY]);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS ${table} (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = await tx.query<{ version: number }>(`SELECT version FROM ${table}`);
    const have = new Set(done.rows.map((r) => Number(r.version)));
    const newest = Math.max(0, ...migrations.map((m) => m.version));
    const unknown = [...have].filter((v) => v > newest);
    if (unknown.length > 0) throw new MigrationError(`database has migrations ${unknown.join(", ")} newer than this build knows; upgrade pesan`);
    const applied: number[] = [];
    for (const m of migrations) {
      if (have.has(m.version)) continue;
      await tx.exec(m.sql);
      await tx.query(`INSERT INTO ${table} (version, name) VALUES ($1, $2)`, [m.version, m.name]);
      applied.push(m.version);
    }
    return applied;
    // No statement timeout: a migration may build an index over a large table, and a process
    // waits here for another's migration to finish.
  }, { queryTimeoutMs: 0 });
}
