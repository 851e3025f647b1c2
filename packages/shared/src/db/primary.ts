/**
 * The one place a multi-host DATABASE_URL (hosts.ts) is turned into connections: a pg.Client
 * class that, on each connect, asks the hosts in turn which one accepts writes and connects to
 * that one, as libpq does for target_session_attrs=read-write. The pool (and Db.listen) create
 * their connections with it, so a connection lost to a failover is replaced, through the usual
 * retry of the caller, by one to the promoted replica.
 */
import pg from "pg";
import type { PgHost, PgTarget } from "./hosts.ts";

/** A connection error isTransientDbError retries (SQLSTATE 08001: could not establish a connection). */
function noPrimary(tried: string[]): Error {
  return Object.assign(new Error(`no writable Postgres among ${tried.join("; ")}`), { code: "08001" });
}

/**
 * Asks one host whether it takes writes (libpq's check for read-write: a hot standby, or a
 * primary set read-only, answers on). Resolves true/false; rejects when it cannot be reached.
 */
async function writable(url: string, connectionTimeoutMillis: number, applicationName: string): Promise<boolean> {
  // The question gets as long as the connect: a host that accepts and then says nothing (its
  // machine frozen) is passed over instead of holding up every new connection.
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis, query_timeout: connectionTimeoutMillis, application_name: applicationName });
  // An error after connect (the server going away mid-probe) must not be an unhandled event.
  c.on("error", () => undefined);
  try {
    await c.connect();
    const r = await c.query<{ transaction_read_only: string }>("SHOW transaction_read_only");
    return r.rows[0]?.transaction_read_only === "off";
  } finally {
    await c.end().catch(() => undefined);
  }
}

export interface PrimaryFinderOptions {
  connectionTimeoutMillis: number;
  applicationName: string;
}

/**
 * Which host to connect to next. Starts with the one that was writable last time (after a
 * failover the others are mostly replicas, and asking each of them first on every new
 * connection would cost a connection each), then the rest in the URL's order.
 */
export class PrimaryFinder {
  private readonly target: PgTarget;
  private readonly opts: PrimaryFinderOptions;
  private last = 0;

  constructor(target: PgTarget, opts: PrimaryFinderOptions) {
    this.target = target;
    this.opts = opts;
  }

  async find(): Promise<PgHost> {
    const n = this.target.hosts.length;
    const tried: string[] = [];
    let lastError: unknown;
    for (let k = 0; k < n; k++) {
      const i = (this.last + k) % n;
      const h = this.target.hosts[i]!;
      const name = `${h.host}:${h.port}`;
      try {
        if (!this.target.readWrite || (await writable(this.target.urls[i]!, this.opts.connectionTimeoutMillis, `${this.opts.applicationName}-probe`))) {
          this.last = i;
          return h;
        }
        tried.push(`${name} read-only`);
      } catch (e) {
        lastError = e;
        tried.push(`${name} ${(e as { code?: string }).code ?? (e as Error).message}`);
      }
    }
    // Every host refused: the last refusal is as transient as a single host's would be.
    if (tried.every((t) => !t.endsWith(" read-only")) && lastError !== undefined) throw lastError;
    throw noPrimary(tried);
  }
}

type ConnectCallback = ((err: Error) => void) | ((err: null, c: pg.Client) => void);

/**
 * A pg.Client that connects to the host the finder picks. pg's Client connects to its `host`
 * and `port` fields as they are when connect() runs, so setting them first is all it takes;
 * the rest (credentials, database, options) comes from the first host's URL, which every host
 * shares. Both of connect's forms are kept: pg-pool calls it with a callback.
 */
export function primaryClientClass(finder: PrimaryFinder): typeof pg.Client {
  return class PrimaryClient extends pg.Client {
    override connect(): Promise<pg.Client>;
    override connect(callback: ConnectCallback): void;
    override connect(callback?: ConnectCallback): Promise<pg.Client> | void {
      const done = finder.find().then((h) => {
        // pg-pool gives a connect connectionTimeoutMillis by destroying the client's socket; if
        // that happened while the hosts were asked, this connect is over (the next one starts
        // with the host found, as the finder remembers it).
        if ((this as unknown as { connection: { stream: { destroyed?: boolean } } }).connection.stream.destroyed) {
          throw Object.assign(new Error(`timeout expired while looking for the primary (found ${h.host}:${h.port})`), { code: "ETIMEDOUT" });
        }
        this.host = h.host;
        this.port = h.port;
        const params = (this as unknown as { connectionParameters: { host: string; port: number } }).connectionParameters;
        params.host = h.host;
        params.port = h.port;
        return super.connect();
      });
      if (!callback) return done;
      const cb = callback as (err: Error | null, c?: pg.Client) => void;
      done.then(
        (c) => cb(null, c),
        (e: unknown) => cb(e as Error),
      );
    }
  };
}
