/**
 * Errors that say "the database (or the network to it) is away", as opposed to "this input is
 * bad": the first kind is retried until it comes back, the second is never retried blindly.
 */
const TRANSIENT_NODE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH"]);

/**
 * 25006 read_only_sql_transaction: the connection is on a server that no longer takes writes
 * (a primary demoted by a failover, or fenced with default_transaction_read_only). It happens
 * when a pooled connection outlived a failover, or in the gap between the PrimaryFinder's probe
 * and the connect. Retried on a new connection, which finds the writable host.
 */
const READ_ONLY = "25006";

/**
 * A prepared statement (db.ts `prepared`) that this connection can no longer run: node-postgres
 * prepares a name once per connection and never again, so these would repeat on every batch
 * that connection serves. 26000: the server forgot it (DISCARD ALL, a transaction-mode pooler
 * in front); 0A000 with this text: a migration changed the type of a column it returns. A new
 * connection prepares it afresh.
 */
function preparedStatementLost(code: string, msg: string): boolean {
  return code === "26000" || (code === "0A000" && /cached plan must not change result type/.test(msg));
}

/** node-postgres's error for a query past its query_timeout (PgDb's queryTimeoutMs). */
const QUERY_TIMEOUT = /^Query read timeout$/;

function codeOf(err: object): string {
  return String((err as { code?: unknown }).code ?? "");
}

function messageOf(err: object): string {
  return String((err as { message?: unknown }).message ?? "");
}

export function isTransientDbError(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const code = codeOf(err);
  if (TRANSIENT_NODE_CODES.has(code) || code === READ_ONLY || preparedStatementLost(code, messageOf(err))) return true;
  // SQLSTATE classes: 08 connection exception, 53 insufficient resources, 57 operator
  // intervention (shutdown, crash recovery), 40 rollback (serialization, deadlock).
  if (/^(08|53|57|40)[0-9A-Z]{3}$/.test(code)) return true;
  const msg = messageOf(err);
  if (QUERY_TIMEOUT.test(msg)) return true;
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connect ECONNREFUSED|Connection is closed/i.test(msg);
}

/**
 * Errors after which the connection that got them must not go back to the pool: it is cut,
 * on a server that is shutting down, on one that became read-only (a new connection goes
 * through the PrimaryFinder to the writable host), or still busy with a query that timed out
 * (the server may be gone; node-postgres's end() then destroys the socket). A serialization
 * failure or a deadlock (also transient) leaves a perfectly good connection.
 */
export function isConnectionUnusable(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const code = codeOf(err);
  const msg = messageOf(err);
  if (code === READ_ONLY || TRANSIENT_NODE_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code) || /^57P0[123]$/.test(code) || preparedStatementLost(code, msg)) return true;
  return QUERY_TIMEOUT.test(msg) || /Connection terminated|Client has encountered a connection error|Connection is closed/i.test(msg);
}
