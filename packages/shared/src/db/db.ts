/**
 * One small database interface with two implementations: node-postgres (a real server) and
 * PGlite (Postgres in WASM, for the embedded mode). Business logic sees only this, so both
 * modes run every line of it.
 */
import pg from "pg";
import { Backoff } from "../retry/backoff.ts";
import { parsePgTarget } from "./hosts.ts";
import { PrimaryFinder, primaryClientClass } from "./primary.ts";
import { isConnectionUnusable } from "./transient.ts";

export type Row = Record<string, unknown>;
export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

/**
 * A statement Postgres parses and plans once per connection (a named prepared statement) and
 * then only executes: for the per-batch statements, whose parsing and planning cost more than
 * their execution (issue 13; README "Performance"). Only for statements that have one plan fit
 * for any parameters and any table statistics (each array element looked up by index, or only
 * inserts): after five executions Postgres may keep one generic plan, made with the statistics
 * of that moment (a fresh database's tables are empty) until the table is next analysed.
 * Make one with `prepared`.
 */
export interface Statement {
  readonly name: string;
  readonly text: string;
}

const STATEMENT_NAME = /^[a-z][a-zA-Z0-9_.]{0,62}$/;
/** A named statement; the name must be unique in the process (node-postgres refuses one name for two texts). */
export function prepared(name: string, text: string): Statement {
  if (!STATEMENT_NAME.test(name)) throw new Error(`bad prepared statement name ${JSON.stringify(name)}`);
  return { name, text };
}

export interface Queryable {
  /** sql: a statement's text (parsed and planned at every call) or a prepared one (`prepared`). */
  query<R extends Row = Row>(sql: string | Statement, params?: unknown[]): Promise<QueryResult<R>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface TransactionOptions {
  /**
   * false: COMMIT returns without waiting for the WAL flush (synchronous_commit off for this
   * transaction only). Only for writes whose loss in a server crash costs nothing but a
   * repetition (an acknowledgement, a lease renewal); never for anything a client was told is
   * stored. The transaction is still atomic and ordered; only its last ~200 ms may be lost.
   */
  durable?: boolean;
  /**
   * Overrides the database's query timeout for this transaction's statements (ms; 0: none).
   * For migrations, whose statements (an index over a large table) and wait for the migration
   * lock may take longer than any request's.
   */
  queryTimeoutMs?: number;
}

export interface Db extends Queryable {
  readonly kind: "pg" | "pglite";
  /** Runs fn in one transaction; retried on serialization failure or deadlock. */
  withTransaction<T>(fn: (tx: Queryable) => Promise<T>, opts?: TransactionOptions): Promise<T>;
  /**
   * Calls onNotify for each NOTIFY on the channel, and once more after every (re)connect, for
   * what was committed while nobody listened. A wake-up, not a delivery: callers still poll.
   */
  listen(channel: string, onNotify: () => void): Promise<Listener>;
  close(): Promise<void>;
}

export interface Listener {
  close(): Promise<void>;
}

/** NOTIFY channels of the messaging schema (migration 005 raises them; LISTEN with Db.listen). */
export const CHANNELS = {
  /** New peer_outbox rows: peer-sync's pumps send them. */
  outbox: "pesan_outbox",
  /** Pushes for this cluster's clients (pending_pushes rows, copies due now): the routers publish them. */
  pushes: "pesan_pushes",
  /** peer_members changed (a join, a member.join or member.revoke frame, the `revoke` command): peer-sync re-reads its links. */
  members: "pesan_members",
} as const;

const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;
function checkChannel(channel: string): void {
  if (!CHANNEL.test(channel)) throw new Error(`bad LISTEN channel name ${JSON.stringify(channel)}`);
}

/**
 * A dropped LISTEN connection is retried with backoff and jitter, at most a second apart, so it
 * is back within about a second of the server (the pollers cover the gap).
 */
const LISTEN_RETRY = { minMs: 100, maxMs: 500 };
/**
 * A server that does not answer at all (a cut network rather than a refused port) fails a
 * connect after this long instead of the kernel's minutes; TCP keep-alive finds a dead idle
 * connection the same way.
 */
const CONNECT_TIMEOUT_MS = 5000;
/**
 * TCP keep-alive probes start after this much silence (the OS default is two hours): a
 * connection whose server's machine or network died, not just its process, is found dead and
 * dropped in well under a minute (probes every second, nine of them, on Linux), idle or not.
 */
const KEEPALIVE_DELAY_MS = 10_000;
/**
 * Default client-side limit on one statement: one in flight on a connection to a machine that
 * vanished (no RST, nothing) fails after this instead of hanging the batch for minutes. Far
 * above the slowest legitimate statement of a request or a retention batch (milliseconds to a
 * second); the routers' and peer-sync's DB_QUERY_TIMEOUT_MS set it.
 */
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000;

/**
 * Runs a listener's callback. It is a wake-up (the caller's poll is the safety net), called
 * from the driver's event handlers, where a throw would be an uncaught exception that ends the
 * process: it is reported as a process warning instead.
 */
function wake(onNotify: () => void): void {
  try {
    onNotify();
  } catch (e) {
    process.emitWarning(`LISTEN callback threw: ${(e as Error)?.stack ?? String(e)}`);
  }
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
  private readonly url: string;
  private readonly applicationName: string;
  /** 0: none. */
  private readonly queryTimeoutMs: number;

  /** How this database's connections are made: pg's own, or one that finds the primary among several hosts. */
  private readonly Client: typeof pg.Client;

  /** url: one host, or libpq's multi-host form with target_session_attrs=read-write (hosts.ts). */
  /** queryTimeoutMs: each statement's client-side limit (DEFAULT_QUERY_TIMEOUT_MS; 0: none); a statement past it fails as transient. */
  constructor(url: string, opts: { max?: number; applicationName?: string; queryTimeoutMs?: number } = {}) {
    this.applicationName = opts.applicationName ?? "pesan";
    this.queryTimeoutMs = opts.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    const target = parsePgTarget(url);
    // Every host's URL differs only in the host, so the first one stands for all of them; the
    // finder sets the host per connection. A plain single-host URL is used as it always was.
    this.url = target.urls[0]!;
    this.Client =
      target.urls.length === 1 && !target.readWrite ? pg.Client : primaryClientClass(new PrimaryFinder(target, { connectionTimeoutMillis: CONNECT_TIMEOUT_MS, applicationName: this.applicationName }));
    this.pool = new pg.Pool({
      Client: this.Client,
      connectionString: this.url,
      max: opts.max ?? 10,
      application_name: this.applicationName,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    });
    // An idle client losing its server must not crash the process; the pool drops it and the
    // next query connects anew.
    this.pool.on("error", () => undefined);
  }

  /**
   * The statement as node-postgres takes it, with its timeout: set per statement rather than
   * on the connection (pg falls back from a statement's 0 to the connection's), so a
   * transaction can have none. pool.query releases a client whose statement failed as broken,
   * so a timed-out one is discarded there too.
   */
  private statement(sql: string | Statement, values: unknown[] | undefined, timeoutMs: number): pg.QueryConfig {
    const q: pg.QueryConfig = typeof sql === "string" ? { text: sql, values } : { name: sql.name, text: sql.text, values };
    return timeoutMs > 0 ? ({ ...q, query_timeout: timeoutMs } as pg.QueryConfig) : q;
  }

  async query<R extends Row = Row>(sql: string | Statement, params?: unknown[]): Promise<QueryResult<R>> {
    const r = await this.pool.query(this.statement(sql, params, this.queryTimeoutMs));
    return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(this.statement(sql, undefined, this.queryTimeoutMs));
  }

  async withTransaction<T>(fn: (tx: Queryable) => Promise<T>, opts: TransactionOptions = {}): Promise<T> {
    // One simple-protocol query for both statements: no extra round trip for the setting.
    const begin = opts.durable === false ? "BEGIN; SET LOCAL synchronous_commit TO off" : "BEGIN";
    const timeout = opts.queryTimeoutMs ?? this.queryTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      let broken = false;
      // A checked-out client has no listener of the pool's: the server going away between two
      // statements (a restart, a failover) would be an 'error' event nobody handles, which ends
      // the process. The statement in flight fails by itself; this only retires the client.
      const onError = () => {
        broken = true;
      };
      client.on("error", onError);
      try {
        await client.query(this.statement(begin, undefined, timeout));
        const tx: Queryable = {
          query: async <R extends Row>(sql: string | Statement, params?: unknown[]) => {
            const r = await client.query(this.statement(sql, params, timeout));
            return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
          },
          exec: async (sql: string) => void (await client.query(this.statement(sql, undefined, timeout))),
        };
        const result = await fn(tx);
        await client.query(this.statement("COMMIT", undefined, timeout));
        return result;
      } catch (e) {
        // A connection cut, timed out (its statement still running: a ROLLBACK would wait
        // behind it) or on a server that went read-only is not rolled back but discarded: the
        // server ends the transaction with the connection, and the pool's next one goes
        // through the PrimaryFinder to the writable host.
        if (isConnectionUnusable(e)) broken = true;
        else {
          try {
            await client.query(this.statement("ROLLBACK", undefined, timeout));
          } catch {
            broken = true;
          }
        }
        if (attempt < MAX_ATTEMPTS && isRetryable(e)) continue;
        throw e;
      } finally {
        client.off("error", onError);
        client.release(broken);
      }
    }
  }

  /** Its own connection (a pooled one would be handed to others); reconnects on its own. */
  async listen(channel: string, onNotify: () => void): Promise<Listener> {
    checkChannel(channel);
    let client: pg.Client | undefined;
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const backoff = new Backoff(LISTEN_RETRY);
    const retry = () => {
      const c = client;
      client = undefined;
      c?.end().catch(() => undefined);
      if (stopped || timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        void connect();
      }, backoff.next());
      timer.unref();
    };
    const connect = async () => {
      const c = new this.Client({
        connectionString: this.url,
        application_name: `${this.applicationName}-listen`,
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
        keepAlive: true,
        keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
      });
      c.on("notification", (n) => {
        if (n.channel === channel) wake(onNotify);
      });
      c.on("error", retry);
      c.on("end", () => {
        if (client === c) retry();
      });
      try {
        await c.connect();
        await c.query(`LISTEN ${channel}`);
      } catch {
        c.end().catch(() => undefined);
        retry();
        return;
      }
      if (stopped) {
        await c.end().catch(() => undefined);
        return;
      }
      client = c;
      backoff.reset();
      wake(onNotify);
    };
    await connect();
    return {
      close: async () => {
        stopped = true;
        clearTimeout(timer);
        const c = client;
        client = undefined;
        await c?.end().catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

const textOf = (sql: string | Statement): string => (typeof sql === "string" ? sql : sql.text);

/** Embedded Postgres. One connection, so transactions are serialized by PGlite itself. */
export class PgliteDb implements Db {
  readonly kind = "pglite";
  private closed = false;
  private readonly pg: import("@electric-sql/pglite").PGlite;

  private constructor(db: import("@electric-sql/pglite").PGlite) {
    this.pg = db;
  }

  /**
   * dataDir undefined: in memory. settings: postgresql.conf parameters (name -> value), given
   * to the server as `-c name=value` on top of PGlite's own start parameters, so the data
   * directory's postgresql.conf stays as initdb wrote it.
   */
  static async open(dataDir?: string, settings: Record<string, string> = {}): Promise<PgliteDb> {
    const { PGlite } = await import("@electric-sql/pglite");
    const startParams = [...PGlite.defaultStartParams, ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])];
    const db = new PGlite(dataDir, { startParams });
    await db.waitReady;
    return new PgliteDb(db);
  }

  /** PGlite's query takes no statement name: a prepared statement runs as its text here. */
  async query<R extends Row = Row>(sql: string | Statement, params?: unknown[]): Promise<QueryResult<R>> {
    const r = await this.pg.query<R>(textOf(sql), params);
    return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
  }

  async exec(sql: string): Promise<void> {
    await this.pg.exec(sql);
  }

  /** PGlite writes in this process: durable or not is the same to it (opts ignored). */
  async withTransaction<T>(fn: (tx: Queryable) => Promise<T>, _opts?: TransactionOptions): Promise<T> {
    return this.pg.transaction(async (t) =>
      fn({
        query: async <R extends Row>(sql: string | Statement, params?: unknown[]) => {
          const r = await t.query<R>(textOf(sql), params);
          return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
        },
        exec: async (sql: string) => void (await t.exec(sql)),
      }),
    );
  }

  async listen(channel: string, onNotify: () => void): Promise<Listener> {
    checkChannel(channel);
    const unlisten = await this.pg.listen(channel, () => wake(onNotify));
    let open = true;
    return {
      close: async () => {
        if (!open || this.closed) return;
        open = false;
        await unlisten();
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pg.close();
  }
}

/** pgliteSettings: postgresql.conf parameters for PGlite (ignored with databaseUrl). */
export async function openDb(opts: { databaseUrl?: string; dataDir?: string; applicationName?: string; poolMax?: number; queryTimeoutMs?: number; pgliteSettings?: Record<string, string> }): Promise<Db> {
  if (opts.databaseUrl) return new PgDb(opts.databaseUrl, { applicationName: opts.applicationName, max: opts.poolMax, queryTimeoutMs: opts.queryTimeoutMs });
  return PgliteDb.open(opts.dataDir, opts.pgliteSettings);
}
