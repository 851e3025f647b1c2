/**
 * Mutes and acks in Postgres (monitor_silences, migration 003), shared by every replica. Reads
 * are cached for a moment: the alerter asks every tick and the dashboard every 2 s per viewer,
 * and a silence set a second ago may take that long to apply. When the database cannot be read,
 * the last list read applies, so an outage of the database neither floods nor silences members.
 */
import type { Queryable } from "@pesan/shared/db";
import type { Logger } from "@pesan/shared/observability";
import { activeSilences, suppressedBy, type ActiveSilence, type MaintenanceWindow, type Silence } from "./suppression.ts";

const CACHE_MS = 500;

interface Row {
  component: string;
  kind: "mute" | "ack";
  until: Date | null;
  by_name: string;
  created_at: Date;
}

export class SilenceStore {
  private readonly db: Queryable;
  private readonly logger: Logger;
  private readonly now: () => Date;
  private cached: { at: number; list: Silence[] } | undefined;
  private loading: Promise<Silence[]> | undefined;
  /** Logged once per outage of the database, not on every read. */
  private failing = false;

  constructor(db: Queryable, logger: Logger, now: () => Date) {
    this.db = db;
    this.logger = logger;
    this.now = now;
  }

  /** Every stored silence (expired mutes included until pruned; activeSilences() skips them). */
  async list(): Promise<Silence[]> {
    const t = Date.now();
    if (this.cached && t - this.cached.at < CACHE_MS) return this.cached.list;
    this.loading ??= this.load().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async load(): Promise<Silence[]> {
    try {
      const r = await this.db.query<Row & Record<string, unknown>>("SELECT component, kind, until, by_name, created_at FROM monitor_silences ORDER BY created_at, component");
      const list = r.rows.map((x) => ({ component: x.component, kind: x.kind, until: x.until ? new Date(x.until) : null, by: x.by_name, at: new Date(x.created_at) }));
      this.cached = { at: Date.now(), list };
      if (this.failing) this.logger.info("the silences can be read again");
      this.failing = false;
      return list;
    } catch (err) {
      const first = !this.failing;
      this.failing = true;
      if (!this.cached) {
        if (first) this.logger.warn({ err }, "cannot read the silences; only the maintenance windows apply");
        throw err;
      }
      if (first) this.logger.warn({ err }, "cannot read the silences; the last ones read apply");
      return this.cached.list;
    }
  }

  /** Sets (or replaces) a mute of component until `until`. */
  async mute(component: string, until: Date, byChat: number, byName: string): Promise<void> {
    await this.db.query(
      `INSERT INTO monitor_silences (component, kind, until, by_chat, by_name) VALUES ($1, 'mute', $2, $3, $4)
       ON CONFLICT (component, kind) DO UPDATE SET until = EXCLUDED.until, by_chat = EXCLUDED.by_chat, by_name = EXCLUDED.by_name, created_at = now()`,
      [component, until.toISOString(), byChat, byName],
    );
    this.cached = undefined;
  }

  async ack(component: string, byChat: number, byName: string): Promise<void> {
    await this.db.query(
      `INSERT INTO monitor_silences (component, kind, until, by_chat, by_name) VALUES ($1, 'ack', NULL, $2, $3)
       ON CONFLICT (component, kind) DO UPDATE SET by_chat = EXCLUDED.by_chat, by_name = EXCLUDED.by_name, created_at = now()`,
      [component, byChat, byName],
    );
    this.cached = undefined;
  }

  /** Ends the mute and the ack of exactly this component id or pattern; returns what was removed. */
  async unmute(component: string): Promise<Array<"mute" | "ack">> {
    const r = await this.db.query<{ kind: "mute" | "ack" }>("DELETE FROM monitor_silences WHERE component = $1 RETURNING kind", [component]);
    this.cached = undefined;
    return r.rows.map((x) => x.kind).sort();
  }

  /** The component recovered: its ack has done its job. True if there was one. */
  async clearAck(component: string): Promise<boolean> {
    const r = await this.db.query("DELETE FROM monitor_silences WHERE component = $1 AND kind = 'ack'", [component]);
    if ((r.rowCount ?? 0) > 0) this.cached = undefined;
    return (r.rowCount ?? 0) > 0;
  }

  /** Drops mutes that ended (they hold nothing any more). */
  async pruneExpired(): Promise<number> {
    const r = await this.db.query("DELETE FROM monitor_silences WHERE kind = 'mute' AND until <= $1", [this.now().toISOString()]);
    return r.rowCount ?? 0;
  }
}

/**
 * What holds alerts now: the stored mutes and acks plus the config's maintenance windows. If the
 * store has never been readable, the windows alone apply.
 */
export class Silences {
  readonly store: SilenceStore;
  private readonly windows: readonly MaintenanceWindow[];

  constructor(store: SilenceStore, windows: readonly MaintenanceWindow[]) {
    this.store = store;
    this.windows = windows;
  }

  async active(now: Date): Promise<ActiveSilence[]> {
    // The store logs its own failures (once per outage).
    const stored = await this.store.list().catch((): Silence[] => []);
    return activeSilences(now, stored, this.windows);
  }

  async reason(component: string, now: Date): Promise<ActiveSilence | undefined> {
    return suppressedBy(component, await this.active(now));
  }
}
