/** The bot's members in Postgres (monitor_members, migration 002): every replica sees the same. */
import type { Queryable } from "@pesan/shared/db";
import type { Member, Stage } from "./bot-logic.ts";

interface Row {
  chat_id: string;
  stage: Stage;
  name: string | null;
  email: string | null;
  is_admin: boolean;
  admin_failures: number;
  admin_locked_until: Date | null;
  username: string | null;
}

const COLUMNS = "chat_id, stage, name, email, is_admin, admin_failures, admin_locked_until, username";

function toMember(r: Row): Member {
  return {
    // Telegram ids fit in 52 bits (its own promise), so a JS number holds them exactly.
    chatId: Number(r.chat_id),
    stage: r.stage,
    name: r.name,
    email: r.email,
    isAdmin: r.is_admin,
    adminFailures: Number(r.admin_failures),
    adminLockedUntil: r.admin_locked_until ? new Date(r.admin_locked_until) : null,
    username: r.username,
  };
}

export class MemberStore {
  private readonly db: Queryable;

  constructor(db: Queryable) {
    this.db = db;
  }

  async get(chatId: number): Promise<Member | undefined> {
    const r = await this.db.query<Row & Record<string, unknown>>(`SELECT ${COLUMNS} FROM monitor_members WHERE chat_id = $1`, [chatId]);
    return r.rows[0] ? toMember(r.rows[0]) : undefined;
  }

  /**
   * Inserts a new member unless the chat already has a row: a /start delivered twice, or
   * to two replicas at once, still makes one member. Returns false if the row existed.
   */
  async create(m: Member): Promise<boolean> {
    const r = await this.db.query(
      `INSERT INTO monitor_members (chat_id, stage, name, email, is_admin, username) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (chat_id) DO NOTHING`,
      [m.chatId, m.stage, m.name, m.email, m.isAdmin, m.username],
    );
    return r.rowCount === 1;
  }

  async save(m: Member): Promise<void> {
    await this.db.query(
      `UPDATE monitor_members SET stage = $2, name = $3, email = $4, is_admin = $5, admin_failures = $6, admin_locked_until = $7, updated_at = now(),
         registered_at = CASE WHEN $2 = 'member' THEN coalesce(registered_at, now()) ELSE registered_at END
       WHERE chat_id = $1`,
      [m.chatId, m.stage, m.name, m.email, m.isAdmin, m.adminFailures, m.adminLockedUntil?.toISOString() ?? null],
    );
  }

  async delete(chatId: number): Promise<void> {
    await this.db.query("DELETE FROM monitor_members WHERE chat_id = $1", [chatId]);
  }

  /** Who gets alerts: every member who finished /start. */
  async recipients(): Promise<number[]> {
    const r = await this.db.query<{ chat_id: string }>("SELECT chat_id FROM monitor_members WHERE stage = 'member' ORDER BY chat_id");
    return r.rows.map((x) => Number(x.chat_id));
  }

  async counts(): Promise<{ members: number; admins: number; registering: number }> {
    const r = await this.db.query<{ members: string; admins: string; registering: string }>(
      `SELECT count(*) FILTER (WHERE stage = 'member') AS members, count(*) FILTER (WHERE stage = 'member' AND is_admin) AS admins,
              count(*) FILTER (WHERE stage <> 'member') AS registering FROM monitor_members`,
    );
    const row = r.rows[0]!;
    return { members: Number(row.members), admins: Number(row.admins), registering: Number(row.registering) };
  }
}
