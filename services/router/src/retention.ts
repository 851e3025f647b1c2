/**
 * Bounded storage: the one module that deletes rows because they are old or too many
 * (README "Reliability"). Every router runs the sweep; each DELETE is one short transaction of
 * at most RETENTION_BATCH rows that first takes a transaction-level advisory lock without
 * waiting, so two routers never sweep at the same moment (the second skips its round: the first
 * covers it) and no lock outlives a batch. The deletes are idempotent, so a batch left half done
 * by a crash is simply done again by the next round.
 *
 * What goes:
 * - messages: delivered (or read) ones older than MESSAGE_RETENTION_MS, and beyond the newest
 *   MESSAGES_KEPT_PER_USER delivered ones of each recipient. Undelivered messages are never
 *   swept: they are bounded by the recipient's box (BOX_LIMIT, ERR BOX_FULL at SEND). Replicated
 *   copies are pruned by each cluster on its own, with no tombstone and no peer_outbox frame: a
 *   retention delete is not a user's DELETE, and the other clusters prune their copies by the
 *   same rule.
 * - connection_log: rows older than CONNECTION_LOG_RETENTION_MS, and all but the newest
 *   CONNECTION_LOG_MAX_ROWS.
 * - send_dedup (exactly-once SEND) and pending_caps: rows older than the protocol's 60 s retry
 *   window (DEDUP_WINDOW_MS), never sooner, so a retry inside the window always finds its reply.
 * - peer_outbox while no peer link exists (nobody reads it): rows older than an hour.
 */
import type { Db, Queryable } from "@pesan/shared/db";
import type { Logger } from "@pesan/shared/observability";
import { Loop, type Lifecycle } from "@pesan/shared/runtime";
import { DEDUP_WINDOW_MS } from "./batch/index.ts";
import type { RouterMetrics } from "./metrics.ts";

export interface RetentionSettings {
  /** Delivered messages older than this go; 0: no age limit. */
  messageRetentionMs: number;
  /** Delivered messages kept per recipient; 0: no cap. */
  messagesKeptPerUser: number;
  /** connection_log rows older than this go; 0: no age limit. */
  connectionLogRetentionMs: number;
  /** connection_log rows kept at most; 0: no cap. */
  connectionLogMaxRows: number;
  intervalMs: number;
  /** Rows per DELETE (one transaction each). */
  batch: number;
}

export interface RetentionDeps {
  db: Db;
  clock: () => Date;
  logger: Logger;
  metrics: Pick<RouterMetrics, "retentionDeleted">;
}

/** Outbox rows kept while no peer link exists (nobody reads them then). */
export const UNLINKED_OUTBOX_RETENTION_MS = 3_600_000;
/** The short-lived tables (dedup, pending CAP ACKs) are swept this often, whatever intervalMs says. */
const SHORT_LIVED_SWEEP_MS = 10_000;
/** Batches per table in one round; what is left waits for the next round (rounds stay short). */
const MAX_BATCHES_PER_ROUND = 200;
/** Recipients whose per-user cap one batch checks. */
const USERS_PER_BATCH = 200;
/** pg_try_advisory_xact_lock key of the sweep ("pert"). */
const RETENTION_LOCK_KEY = 0x7065_7274;

/** The instants before which rows go; undefined where that bound is off (0). Pure. */
export function retentionCutoffs(now: Date, s: Pick<RetentionSettings, "messageRetentionMs" | "connectionLogRetentionMs">): {
  messages: Date | undefined;
  connectionLog: Date | undefined;
  dedup: Date;
  unlinkedOutbox: Date;
} {
  const t = now.getTime();
  return {
    messages: s.messageRetentionMs > 0 ? new Date(t - s.messageRetentionMs) : undefined,
    connectionLog: s.connectionLogRetentionMs > 0 ? new Date(t - s.connectionLogRetentionMs) : undefined,
    dedup: new Date(t - DEDUP_WINDOW_MS),
    unlinkedOutbox: new Date(t - UNLINKED_OUTBOX_RETENTION_MS),
  };
}

/**
 * The highest connection_log id to delete so that at most maxRows remain, from the highest id
 * in use (ids come from one sequence, in order; gaps left by rolled-back inserts only make it
 * keep fewer). undefined: nothing to delete. Pure.
 */
export function connectionLogCutoffId(maxId: number, maxRows: number): number | undefined {
  if (maxRows <= 0 || maxId <= maxRows) return undefined;
  return maxId - maxRows;
}

type Step = (tx: Queryable, limit: number) => Promise<number>;

export class Retention implements Lifecycle {
  readonly name = "retention";
  private readonly d: RetentionDeps;
  private readonly s: RetentionSettings;
  private readonly loops: Loop[];
  /** Where the per-recipient cap walk got to (user names in order); "" starts over. */
  private capCursor = "";

  constructor(d: RetentionDeps, s: RetentionSettings) {
    this.d = d;
    this.s = s;
    this.loops = [
      new Loop("retention", s.intervalMs, async () => void (await this.sweep()), d.logger),
      new Loop("retention-short", Math.min(SHORT_LIVED_SWEEP_MS, s.intervalMs), async () => void (await this.sweepShortLived()), d.logger),
    ];
  }

  async start(): Promise<void> {
    for (const l of this.loops) await l.start();
  }

  async close(): Promise<void> {
    await Promise.all(this.loops.map((l) => l.close()));
  }

  /** One full round; returns the rows deleted, by `table/reason`. */
  async sweep(): Promise<Record<string, number>> {
    const c = retentionCutoffs(this.d.clock(), this.s);
    const out: Record<string, number> = {};
    const run = async (table: string, reason: string, step: Step) => {
      const n = await this.batches(table, reason, step);
      if (n > 0) out[`${table}/${reason}`] = n;
    };
    if (c.messages) {
      const before = c.messages;
      await run("messages", "age", async (tx, limit) =>
        (
          await tx.query(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE delivered AND sent_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            [before, limit],
          )
        ).rowCount,
      );
    }
    if (this.s.messagesKeptPerUser > 0) {
      const n = await this.capRound();
      if (n > 0) out["messages/cap"] = n;
    }
    if (c.connectionLog) {
      const before = c.connectionLog;
      await run("connection_log", "age", async (tx, limit) =>
        (await tx.query("DELETE FROM connection_log WHERE id IN (SELECT id FROM connection_log WHERE at < $1 LIMIT $2)", [before, limit])).rowCount,
      );
    }
    if (this.s.connectionLogMaxRows > 0) {
      const r = await this.d.db.query<{ max: string | null }>("SELECT max(id)::text AS max FROM connection_log");
      const upTo = connectionLogCutoffId(Number(r.rows[0]?.max ?? 0), this.s.connectionLogMaxRows);
      if (upTo !== undefined) {
        await run("connection_log", "cap", async (tx, limit) =>
          (await tx.query("DELETE FROM connection_log WHERE id IN (SELECT id FROM connection_log WHERE id <= $1 ORDER BY id LIMIT $2)", [upTo, limit])).rowCount,
        );
      }
    }
    Object.assign(out, await this.sweepShortLived());
    if (Object.keys(out).length > 0) this.d.logger.info({ deleted: out }, "retention sweep");
    return out;
  }

  /** send_dedup and pending_caps past the retry window, the unlinked outbox: every 10 s. */
  async sweepShortLived(): Promise<Record<string, number>> {
    const c = retentionCutoffs(this.d.clock(), this.s);
    const out: Record<string, number> = {};
    const run = async (table: string, reason: string, step: Step) => {
      const n = await this.batches(table, reason, step);
      if (n > 0) out[`${table}/${reason}`] = n;
    };
    await run("send_dedup", "window", async (tx, limit) =>
      (
        await tx.query("DELETE FROM send_dedup WHERE (token, tag) IN (SELECT token, tag FROM send_dedup WHERE created_at < $1 LIMIT $2)", [c.dedup, limit])
      ).rowCount,
    );
    await run("pending_caps", "window", async (tx, limit) =>
      (
        await tx.query("DELETE FROM pending_caps WHERE (gateway, addr) IN (SELECT gateway, addr FROM pending_caps WHERE created_at < $1 LIMIT $2)", [c.dedup, limit])
      ).rowCount,
    );
    // With links, peer-sync prunes what every peer acknowledged (and drops a dead peer's backlog).
    await run("peer_outbox", "unlinked", async (tx, limit) =>
      (
        await tx.query(
          "DELETE FROM peer_outbox WHERE id IN (SELECT id FROM peer_outbox WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM peer_links) ORDER BY id LIMIT $2)",
          [c.unlinkedOutbox, limit],
        )
      ).rowCount,
    );
    return out;
  }

  /**
   * The per-recipient cap, walking the users by name, USERS_PER_BATCH a batch: each loses its
   * delivered messages beyond the newest messagesKeptPerUser. A full batch stays on the same
   * users; the walk goes on where it stopped in the next round, and starts over at the end.
   */
  private async capRound(): Promise<number> {
    let total = 0;
    for (let i = 0; i < MAX_BATCHES_PER_ROUND; i++) {
      const from = this.capCursor;
      const r = await this.locked(async (tx) => {
        const users = await tx.query<{ name: string }>("SELECT name FROM users WHERE name > $1 ORDER BY name LIMIT $2", [from, USERS_PER_BATCH]);
        const names = users.rows.map((u) => u.name);
        if (names.length === 0) return { deleted: 0, next: "", done: true };
        const d = await tx.query(
          `DELETE FROM messages WHERE id IN (
             SELECT x.id FROM unnest($1::text[]) AS u(name)
             CROSS JOIN LATERAL (SELECT id FROM messages WHERE recipient = u.name AND delivered ORDER BY sent_at DESC, seq DESC, id DESC OFFSET $2) x
             LIMIT $3)`,
          [names, this.s.messagesKeptPerUser, this.s.batch],
        );
        return { deleted: d.rowCount, next: d.rowCount >= this.s.batch ? from : names.at(-1)!, done: false };
      });
      if (r === undefined) break;
      if (r.deleted > 0) {
        total += r.deleted;
        this.d.metrics.retentionDeleted.inc({ table: "messages", reason: "cap" }, r.deleted);
      }
      // Set only after COMMIT: a transaction retried after a deadlock must not skip users.
      this.capCursor = r.next;
      if (r.done) break;
    }
    return total;
  }

  /** fn in a transaction holding the sweep's advisory lock; undefined when another router holds it. */
  private async locked<T>(fn: (tx: Queryable) => Promise<T>): Promise<T | undefined> {
    return this.d.db.withTransaction(async (tx) => {
      const lock = await tx.query<{ ok: boolean }>("SELECT pg_try_advisory_xact_lock($1::bigint) AS ok", [RETENTION_LOCK_KEY]);
      return lock.rows[0]?.ok === true ? fn(tx) : undefined;
    });
  }

  /**
   * Runs step in batches, each its own transaction holding the sweep's advisory lock, until one
   * deletes less than a full batch. Another router holding the lock: this round stops.
   */
  private async batches(table: string, reason: string, step: Step): Promise<number> {
    let total = 0;
    for (let i = 0; i < MAX_BATCHES_PER_ROUND; i++) {
      const n = await this.locked((tx) => step(tx, this.s.batch));
      if (n === undefined) break;
      if (n > 0) {
        total += n;
        this.d.metrics.retentionDeleted.inc({ table, reason }, n);
      }
      if (n < this.s.batch) break;
    }
    return total;
  }
}
