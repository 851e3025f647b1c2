/**
 * Migrations against a real Postgres (DATABASE_URL's server, or postgres://postgres@127.0.0.1:5432):
 * every test gets a database of its own, dropped at the end, and against in-memory PGlite.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { pathToFileURL } from "node:url";
import pg from "pg";
import { PgDb, type Db } from "./db.ts";
import { loadMigrations, migrate, MIGRATIONS_DIR, type Migration } from "./migrate.ts";
import { MigrationError } from "../errors.ts";

const SERVER_URL = (() => {
  const u = new URL(process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres");
  u.pathname = "/postgres";
  return u;
})();

const execFileP = promisify(execFile);
const created: string[] = [];
const opened: Db[] = [];

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: SERVER_URL.toString() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A new empty database; returns its URL. */
async function freshDatabase(): Promise<string> {
  const name = `pesan_t_${randomBytes(6).toString("hex")}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  created.push(name);
  const u = new URL(SERVER_URL.toString());
  u.pathname = `/${name}`;
  return u.toString();
}

function open(url: string): PgDb {
  const db = new PgDb(url, { max: 2, applicationName: "pesan-migrate-test" });
  opened.push(db);
  return db;
}

afterAll(async () => {
  await Promise.all(opened.splice(0).map((d) => d.close()));
  await admin(async (c) => {
    for (const name of created.splice(0)) await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
});

const tablesOf = async (db: Db): Promise<string[]> =>
  (await db.query<{ t: string }>("SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")).rows.map((r) => r.t);

const recorded = async (db: Db, table = "schema_migrations") =>
  (await db.query<{ version: number; name: string; applied_at: Date }>(`SELECT version, name, applied_at FROM ${table} ORDER BY version`)).rows;

describe("loadMigrations", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "pesan-migrations-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test("the shipped migrations are well formed and numbered from 1 without gaps", () => {
    const ms = loadMigrations();
    expect(ms.length).toBeGreaterThan(0);
    expect(ms.map((m) => m.version)).toEqual(ms.map((_, i) => i + 1));
    for (const m of ms) {
      expect(m.name).toMatch(/^[a-z0-9_]+$/);
      expect(m.sql.trim().length).toBeGreaterThan(0);
    }
    expect(loadMigrations(MIGRATIONS_DIR)).toEqual(ms);
  });

  test("files are read in numeric order; other files are ignored", () => {
    writeFileSync(join(dir, "010_later.sql"), "SELECT 10");
    writeFileSync(join(dir, "002_second.sql"), "SELECT 2");
    writeFileSync(join(dir, "001_first_one.sql"), "SELECT 1");
    writeFileSync(join(dir, "README.md"), "not a migration");
    expect(loadMigrations(dir)).toEqual([
      { version: 1, name: "first_one", sql: "SELECT 1" },
      { version: 2, name: "second", sql: "SELECT 2" },
      { version: 10, name: "later", sql: "SELECT 10" },
    ]);
  });

  test.each(["1_init.sql", "01_init.sql", "0001_init.sql", "001-init.sql", "001_Init.sql", "001_.sql", "001_in it.sql", "init.sql", "001_init.SQL.sql", "abc_init.sql"])(
    "a file named %j is refused",
    (bad) => {
      writeFileSync(join(dir, "001_ok.sql"), "SELECT 1");
      writeFileSync(join(dir, bad), "SELECT 2");
      expect(() => loadMigrations(dir)).toThrow(MigrationError);
      expect(() => loadMigrations(dir)).toThrow(bad);
    },
  );

  test("two migrations with one number are refused", () => {
    writeFileSync(join(dir, "001_a.sql"), "SELECT 1");
    writeFileSync(join(dir, "001_b.sql"), "SELECT 1");
    expect(() => loadMigrations(dir)).toThrow(MigrationError);
    expect(() => loadMigrations(dir)).toThrow(/001/);
  });
});

describe("migrate (Postgres)", () => {
  const shipped = loadMigrations();
  const versions = shipped.map((m) => m.version);

  test("applies every migration and records it", async () => {
    const db = open(await freshDatabase());
    expect(await migrate(db)).toEqual(versions);
    const rows = await recorded(db);
    expect(rows.map((r) => [Number(r.version), r.name])).toEqual(shipped.map((m) => [m.version, m.name]));
    for (const r of rows) expect(r.applied_at).toBeInstanceOf(Date);
    const tables = await tablesOf(db);
    for (const t of ["schema_migrations", "users", "sessions", "messages", "connection_log"]) expect(tables).toContain(t);
  });

  test("a second run applies nothing and changes nothing", async () => {
    const url = await freshDatabase();
    const db = open(url);
    await migrate(db);
    const rows = await recorded(db);
    const tables = await tablesOf(db);
    expect(await migrate(db)).toEqual([]);
    expect(await migrate(open(url))).toEqual([]);
    expect(await recorded(db)).toEqual(rows);
    expect(await tablesOf(db)).toEqual(tables);
  });

  test("only the missing migrations are applied", async () => {
    const db = open(await freshDatabase());
    const extra: Migration[] = [
      { version: 900, name: "add_table", sql: "CREATE TABLE extra_one (id int PRIMARY KEY)" },
      { version: 901, name: "add_column", sql: "ALTER TABLE extra_one ADD COLUMN note text NOT NULL DEFAULT ''" },
    ];
    expect(await migrate(db, shipped)).toEqual(versions);
    expect(await migrate(db, [...shipped, extra[0]!])).toEqual([900]);
    expect(await migrate(db, [...shipped, ...extra])).toEqual([901]);
    expect((await recorded(db)).map((r) => Number(r.version))).toEqual([...versions, 900, 901]);
    await db.query("INSERT INTO extra_one (id) VALUES (1)");
    expect((await db.query("SELECT note FROM extra_one")).rows).toEqual([{ note: "" }]);
  });

  test("4 concurrent migrate() calls on 4 pools all succeed and apply each migration once", async () => {
    const url = await freshDatabase();
    // A slow step widens the window in which an unserialized run would collide.
    const ms: Migration[] = [
      ...shipped,
      { version: 900, name: "slow", sql: "SELECT pg_sleep(0.3); CREATE TABLE slow_marker (n int)" },
      { version: 901, name: "count", sql: "INSERT INTO slow_marker VALUES (1)" },
    ];
    const dbs = [open(url), open(url), open(url), open(url)];
    const results = await Promise.all(dbs.map((db) => migrate(db, ms)));
    const all = results.flat().sort((a, b) => a - b);
    expect(all).toEqual(ms.map((m) => m.version));
    // one of them did the work, the others found it done
    expect(results.filter((r) => r.length > 0)).toHaveLength(1);
    expect((await recorded(dbs[0]!)).map((r) => Number(r.version))).toEqual(ms.map((m) => m.version));
    expect((await dbs[1]!.query("SELECT count(*)::int AS n FROM slow_marker")).rows).toEqual([{ n: 1 }]);
  });

  test("a database with a newer migration than this build knows is refused, untouched", async () => {
    const db = open(await freshDatabase());
    await db.query("CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
    await db.query("INSERT INTO schema_migrations (version, name) VALUES (998, 'from_the_future'), (999, 'also')");
    const err = await migrate(db).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as Error).message).toMatch(/998, 999|999, 998/);
    expect(await tablesOf(db)).toEqual(["schema_migrations"]);
    expect((await recorded(db)).map((r) => Number(r.version))).toEqual([998, 999]);
  });

  test("after an upgrade, running the older build is refused", async () => {
    const db = open(await freshDatabase());
    await migrate(db, [...shipped, { version: 900, name: "newer", sql: "SELECT 1" }]);
    await expect(migrate(db, shipped)).rejects.toThrow(MigrationError);
    await expect(migrate(db, shipped)).rejects.toThrow(/900/);
  });

  test("a failing migration leaves nothing behind", async () => {
    const db = open(await freshDatabase());
    const ms: Migration[] = [
      { version: 1, name: "good", sql: "CREATE TABLE good_one (id int)" },
      { version: 2, name: "bad", sql: "CREATE TABLE nope (" },
    ];
    await expect(migrate(db, ms)).rejects.toThrow();
    expect(await tablesOf(db)).toEqual([]);
    // fixed, it goes through
    ms[1] = { version: 2, name: "bad", sql: "CREATE TABLE fixed_one (id int)" };
    expect(await migrate(db, ms)).toEqual([1, 2]);
    expect(await tablesOf(db)).toEqual(["fixed_one", "good_one", "schema_migrations"]);
  });

  test("badly named migration files are refused before the database is touched", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pesan-migrations-"));
    try {
      writeFileSync(join(dir, "001_init.sql"), "CREATE TABLE should_not_exist (id int)");
      writeFileSync(join(dir, "2_more.sql"), "SELECT 1");
      const db = open(await freshDatabase());
      await expect((async () => migrate(db, loadMigrations(dir)))()).rejects.toThrow(MigrationError);
      expect(await tablesOf(db)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * PGlite loads its WASM through a dynamic import(), which jest's CommonJS sandbox refuses, so
 * this part runs the real modules in a child Node process (as the embedded mode runs them).
 */
describe("migrate (PGlite in memory)", () => {
  test("applies every migration once", async () => {
    const here = join(__dirname);
    const url = (f: string) => pathToFileURL(join(here, f)).href;
    const script = `
      const { PgliteDb } = await import(${JSON.stringify(url("db.ts"))});
      const { migrate, loadMigrations } = await import(${JSON.stringify(url("migrate.ts"))});
      const { MigrationError } = await import(${JSON.stringify(url("../errors.ts"))});
      const db = await PgliteDb.open();
      const out = {};
      out.versions = loadMigrations().map((m) => m.version);
      out.first = await migrate(db);
      out.second = await migrate(db);
      const extra = [...loadMigrations(), { version: 900, name: "extra", sql: "CREATE TABLE extra_one (id int)" }];
      out.together = await Promise.all([migrate(db, extra), migrate(db, extra), migrate(db, extra)]);
      out.recorded = (await db.query("SELECT version FROM schema_migrations ORDER BY version")).rows.map((r) => r.version);
      out.tables = (await db.query("SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public'")).rows.map((r) => r.t);
      try {
        await migrate(db, loadMigrations());
        out.refused = null;
      } catch (e) {
        out.refused = { migrationError: e instanceof MigrationError, message: e.message };
      }
      await db.close();
      console.log(JSON.stringify(out));
    `;
    const { stdout } = await execFileP(process.execPath, ["--input-type=module", "-e", script], { cwd: here, timeout: 60_000 });
    const out = JSON.parse(stdout.trim().split("\n").pop()!) as {
      versions: number[];
      first: number[];
      second: number[];
      together: number[][];
      recorded: number[];
      tables: string[];
      refused: { migrationError: boolean; message: string } | null;
    };
    expect(out.versions.length).toBeGreaterThan(0);
    expect(out.first).toEqual(out.versions);
    expect(out.second).toEqual([]);
    expect(out.together.flat()).toEqual([900]);
    expect(out.recorded).toEqual([...out.versions, 900]);
    for (const t of ["schema_migrations", "users", "sessions", "messages", "extra_one"]) expect(out.tables).toContain(t);
    expect(out.refused).toEqual({ migrationError: true, message: expect.stringMatching(/900/) });
  });
});
