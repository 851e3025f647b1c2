/**
 * One small database interface with two implementations: node-postgres (a real server) and
 * PGlite (Postgres in WASM, for the embedded mode). Business logic sees only this, so both
 * modes run every line of it.
 */
import pg from "pg";

export type Row = Record<string, unknown>;
export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

export interface Queryable {
  query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<QueryResult<R>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: "pg" | "pglite";
  /** Runs fn in one transaction; retried on serialization failure or deadlock. */
  withTransaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

const RETRYABLE = new Set(["40001", "40P01"]);
const MAX_ATTEMPTS = 5;

export function isRetryable(e: unknown): boolean {
  return typeof e === "object" && e !== null && RETRYABLE.has((e as { code?: string }).code ?? "");
}

export class PgDb implements Db {
  readonly kind = "pg";
  readonly pool: pg.Pool;
  private closed = false;

  constructor(url: string, opts: { max?: number; applicationName?: string } = {}) {
    this.pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, application_name: opts.applicationName ?? "pesan" });
    // An idle client losing its server must not crash the process; the next query reconnects.
    this.pool.on("error", () => undefined);
  }

  async query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<QueryResult<R>> {
    const r = await this.pool.query(sql, params);
    return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async withTransaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      let broken = false;
      try {
        await client.query("BEGIN");
        const tx: Queryable = {
          query: async <R extends Row>(sql: string, params?: unknown[]) => {
            const r = await client.query(sql, params);
            return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
          },
          exec: async (sql: string) => void (await client.query(sql)),
        };
        const result = await fn(tx);
        await client.query("COMMIT");
        return result;
      } catch (e) {
        try {
          await client.query("ROLLBACK");
        } catch {
          broken = true;
        }
        if (attempt < MAX_ATTEMPTS && isRetryable(e)) continue;
        throw e;
      } finally {
        client.release(broken);
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

/** Embedded Postgres. One connection, so transactions are serialized by PGlite itself. */
export class PgliteDb implements Db {
  readonly kind = "pglite";
  private closed = false;
  private readonly pg: import("@electric-sql/pglite").PGlite;

  private constructor(db: import("@electric-sql/pglite").PGlite) {
    this.pg = db;
  }

  /** dataDir undefined: in memory. */
  static async open(dataDir?: string): Promise<PgliteDb> {
    const { PGlite } = await import("@electric-sql/pglite");
    const db = dataDir === undefined ? new PGlite() : new PGlite(dataDir);
    await db.waitReady;
    return new PgliteDb(db);
  }

  async query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<QueryResult<R>> {
    const r = await this.pg.query<R>(sql, params);
    return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
  }

  async exec(sql: string): Promise<void> {
    await this.pg.exec(sql);
  }

  async withTransaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.pg.transaction(async (t) =>
      fn({
        query: async <R extends Row>(sql: string, params?: unknown[]) => {
          const r = await t.query<R>(sql, params);
          return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
        },
        exec: async (sql: string) => void (await t.exec(sql)),
      }),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pg.close();
  }
}

export async function openDb(opts: { databaseUrl?: string; dataDir?: string; applicationName?: string; poolMax?: number }): Promise<Db> {
  if (opts.databaseUrl) return new PgDb(opts.databaseUrl, { applicationName: opts.applicationName, max: opts.poolMax });
  return PgliteDb.open(opts.dataDir);
}
