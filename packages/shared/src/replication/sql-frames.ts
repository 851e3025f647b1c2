/**
 * Frames built in SQL from a set of rows (a CTE's RETURNING, a table), written in the same
 * statement as the change they report: a message.state per message a batch acknowledged, the
 * message.new of a hand-over, a bootstrap's user.register per account. The payload is given as
 * one SQL expression per field, typed by the frame kind's schema (FramePayloads), so a field
 * the schema lacks, a missing field or a boolean where it wants text fails `tsc`. What each
 * expression yields in Postgres is what its helper promises (sqlText, sqlBool, sqlInstant);
 * test/replication-sql-frames.test.ts decodes the rows every set-based writer leaves with the
 * zod schemas against a real Postgres.
 */
import type { Queryable } from "../db/db.ts";
import { FRAME_PAYLOADS, type FrameKindName, type FramePayloads } from "./payloads.ts";

/** An SQL expression whose value, as jsonb, is a `T` of the payload (the phantom field is never set). */
export interface SqlValue<T> {
  readonly sql: string;
  readonly __value?: T;
}

/** A text column or expression (a name, an id, a body). */
export const sqlText = (expr: string): SqlValue<string> => ({ sql: expr });
/** A boolean column or expression. */
export const sqlBool = (expr: string): SqlValue<boolean> => ({ sql: expr });
/** The literal `true` (message.state's `deleted`). */
export const SQL_TRUE: SqlValue<true> = { sql: "true" };
/** A timestamptz column as the frames' instant text: ISO 8601, UTC, milliseconds, like Date#toISOString. */
export const sqlInstant = (col: string): SqlValue<string> => ({ sql: `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')` });

type KeysOfAny<U> = U extends unknown ? keyof U : never;
/**
 * A payload's fields as SQL expressions. For a union (message.state: deleted, or the whole
 * message) the fields must be those of one member exactly: the other members' own keys are
 * `never` here, so a mix fails.
 */
export type SqlPayload<P, All = P> = P extends unknown
  ? { readonly [F in keyof P]: SqlValue<Exclude<P[F], undefined>> } & { readonly [F in Exclude<KeysOfAny<All>, keyof P>]?: never }
  : never;

export interface FramesFromRows<K extends FrameKindName> {
  kind: K;
  /** Each payload field as an SQL expression over the rows of `from`. */
  payload: SqlPayload<FramePayloads[K]>;
  /** The rows: what follows FROM (a table or CTE, its alias, a WHERE). */
  from: string;
  /** The frames' order in the outbox, which is the order peers apply them in. */
  orderBy?: string;
  /** An SQL expression naming the one peer the frames are for (a bootstrap); every peer when absent. */
  target?: string;
  /** CTEs the rows come from, without the WITH (`h AS (UPDATE ... RETURNING ...)`); only at a statement's top level. */
  with?: string;
}

/** A message.new payload from a row with the messages table's columns (`p` its alias, with the dot). */
export function messageNewFromRow(p = ""): SqlPayload<FramePayloads["message.new"]> {
  return { id: sqlText(`${p}id`), sentAt: sqlInstant(`${p}sent_at`), sender: sqlText(`${p}sender`), recipient: sqlText(`${p}recipient`), body: sqlText(`${p}body`) };
}

/**
 * The INSERT of one frame per row, for a statement's CTE (`st AS (${framesFromRowsSql(...)})`)
 * where the change and its frames must be one statement. Everything else calls
 * enqueueFramesFromRows.
 */
export function framesFromRowsSql<K extends FrameKindName>(f: FramesFromRows<K>): string {
  // The kind and the keys are written into the statement: the types admit only the schema's,
  // and this keeps anything else (a cast from outside the types) out of the SQL.
  if (!Object.hasOwn(FRAME_PAYLOADS, f.kind)) throw new Error(`not a frame kind: ${String(f.kind)}`);
  const fields = Object.entries(f.payload as Record<string, SqlValue<unknown> | undefined>).filter((e): e is [string, SqlValue<unknown>] => e[1] !== undefined);
  for (const [key] of fields) if (!/^[A-Za-z]+$/.test(key)) throw new Error(`not a payload field: ${key}`);
  const payload = `jsonb_build_object(${fields.map(([key, v]) => `'${key}', ${v.sql}`).join(", ")})`;
  const target = f.target === undefined ? "" : `, ${f.target}`;
  return (
    (f.with === undefined ? "" : `WITH ${f.with}\n`) +
    `INSERT INTO peer_outbox (kind, payload${target === "" ? "" : ", target"})\n` +
    `SELECT '${f.kind}', ${payload}${target} FROM ${f.from}` +
    (f.orderBy === undefined ? "" : ` ORDER BY ${f.orderBy}`)
  );
}

/** Writes one frame per row in the caller's transaction; returns how many. */
export async function enqueueFramesFromRows<K extends FrameKindName>(q: Queryable, f: FramesFromRows<K>, params: unknown[] = []): Promise<number> {
  const r = await q.query(framesFromRowsSql(f), params);
  return r.rowCount;
}
