/**
 * The one writer of `users` rows: the router (REGISTER from a client of this cluster) and
 * peer-sync (a user.register from a peer, the winner of a name) create accounts.
 */
import type { Queryable } from "./db.ts";

export interface NewUser {
  name: string;
  passHash: string;
  createdAt: Date;
  /** The cluster the account was registered on. */
  home: string;
}

/**
 * Inserts an account. `ifAbsent`: a taken name is not an error, the result says whether the
 * row was written (REGISTER racing another REGISTER of the name). Without it a taken name
 * throws: peer-sync inserts only after locking and checking the name, so a conflict there is
 * a bug that must roll its batch back, not be skipped.
 */
export async function insertUser(q: Queryable, u: NewUser, opts: { ifAbsent: boolean }): Promise<boolean> {
  const r = await q.query(`INSERT INTO users (name, pass_hash, created_at, home_cluster) VALUES ($1, $2, $3, $4)${opts.ifAbsent ? " ON CONFLICT (name) DO NOTHING" : ""}`, [
    u.name,
    u.passHash,
    u.createdAt,
    u.home,
  ]);
  return r.rowCount === 1;
}
